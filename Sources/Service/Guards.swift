import Common
import Ledger
import SSHCrypto
#if canImport(Glibc)
import Glibc
#endif

/// The service's side of login challenges: makes the nonce, decides which client a request
/// counts against, and keeps the open challenges in the ledger's `LoginChallenges` (shared by
/// every node on one ledger). A nonce is handed to anyone who asks (so unknown names learn
/// nothing), but only answers for the name it was issued to, once, before it expires.
final class ChallengeStore: Sendable {
    let lifetime: UInt64
    let store: any LoginChallenges
    static let perAddressLimit = ChallengeRules.perClientLimit
    static let defaultCapacity = ChallengeRules.defaultCapacity

    enum Refusal: Error { case addressBusy }
    typealias Verdict = ChallengeVerdict

    init(lifetime: UInt64, store: any LoginChallenges) {
        self.lifetime = lifetime
        self.store = store
    }

    /// A store of its own in memory (tests).
    convenience init(lifetime: UInt64, capacity: Int = ChallengeRules.defaultCapacity) {
        self.init(lifetime: lifetime, store: MemoryLoginChallenges(capacity: capacity))
    }

    /// The client a request is counted against: its address, or for IPv6 its /64, which one
    /// machine usually holds whole.
    static func client(of address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
    }

    func openCount(client: String, now: UInt64) async throws(SSHCAError) -> Int {
        do { return try await store.openCount(client: client, now: now) } catch { throw Self.unavailable(error) }
    }

    var count: Int {
        get async throws(SSHCAError) {
            do { return try await store.count } catch { throw Self.unavailable(error) }
        }
    }

    func issue(for identity: String, address: String, now: UInt64) async throws(SSHCAError) -> Result<(nonce: String, expires: UInt64), Refusal> {
        let nonce = SecureRandom.bytes(24).hexString
        let expires = now + lifetime
        let opened: Result<Void, ChallengeRefusal>
        do { opened = try await store.open(nonce, identity: identity, client: Self.client(of: address), expires: expires, now: now) } catch { throw Self.unavailable(error) }
        switch opened {
        case .success: return .success((nonce, expires))
        case .failure(.clientBusy): return .failure(.addressBusy)
        case .failure(.nonceInUse):
            // 24 random bytes that came out twice: something is wrong with the random source
            // or the store, not with the caller.
            throw SSHCAError(.ledger, "the login challenge store already holds the nonce just drawn; try again")
        }
    }

    /// Consumes the nonce whatever the outcome: a nonce is never answered twice, and an answered
    /// one no longer counts against its client.
    func redeem(_ nonce: String, identity: String, now: UInt64) async throws(SSHCAError) -> Verdict {
        do { return try await store.redeem(nonce, identity: identity, now: now) } catch { throw Self.unavailable(error) }
    }

    /// The shared store failed: the service answers 503 (a `.ledger` error), never lets a
    /// challenge or a count it could not keep pass.
    static func unavailable(_ error: any Error) -> SSHCAError {
        SSHCAError(.ledger, "the login challenges cannot be kept right now: \(error)")
    }
}

/// Failed authentications per identity and per client address in a sliding minute, counted in
/// the ledger's `FailureCounts`; once a key reaches the limit, further attempts are refused with
/// 429 before any signature is checked.
final class FailureLimiter: Sendable {
    let counts: any FailureCounts
    let limit: Int
    let window: UInt64 = 60

    init(limit: Int, counts: any FailureCounts = MemoryFailureCounts()) {
        self.limit = limit
        self.counts = counts
    }

    /// A count that cannot be read is a `.ledger` error (the service answers 503): a shared
    /// store that is away never switches the limit off.
    func isLimited(_ keys: [String], now: UInt64) async throws(SSHCAError) -> Bool {
        do { return try await counts.isLimited(keys, limit: limit, window: window, now: now) } catch { throw Self.unavailable(error) }
    }

    func recordFailure(_ keys: [String], now: UInt64) async throws(SSHCAError) {
        do { try await counts.recordFailure(keys, limit: limit, window: window, now: now) } catch { throw Self.unavailable(error) }
    }

    static func unavailable(_ error: any Error) -> SSHCAError {
        SSHCAError(.ledger, "the sign-in failure counts cannot be kept right now: \(error)")
    }
}
