import Synchronization
import SSHCrypto

/// Single-use login challenges, kept in memory for a short lifetime. A nonce is handed to
/// anyone who asks (so unknown names learn nothing), but only answers for the name it was
/// issued to, once, before it expires.
final class ChallengeStore: Sendable {
    struct Entry { var identity: String; var expires: UInt64 }
    struct State {
        var entries: [String: Entry] = [:]
        /// Expiry times of the open challenges each client address asked for.
        var perAddress: [String: [UInt64]] = [:]
    }
    private let state = Mutex(State())
    let lifetime: UInt64
    /// Bounds memory when someone asks for challenges in a loop.
    static let capacity = 100_000
    /// Open challenges one client address may hold: a login needs one; a loop from one
    /// address cannot fill the store and lock everyone else out.
    static let perAddressLimit = 100

    enum Refusal: Error { case addressBusy, full }

    init(lifetime: UInt64) { self.lifetime = lifetime }

    func issue(for identity: String, address: String, now: UInt64) -> Result<(nonce: String, expires: UInt64), Refusal> {
        let nonce = SecureRandom.bytes(24).hexString
        let expires = now + lifetime
        return state.withLock { s -> Result<(nonce: String, expires: UInt64), Refusal> in
            var open = (s.perAddress[address] ?? []).filter { $0 > now }
            guard open.count < Self.perAddressLimit else { return .failure(.addressBusy) }
            if s.entries.count >= Self.capacity {
                s.entries = s.entries.filter { $0.value.expires > now }
                s.perAddress = s.perAddress.compactMapValues { times in
                    let live = times.filter { $0 > now }
                    return live.isEmpty ? nil : live
                }
                if s.entries.count >= Self.capacity { return .failure(.full) }
            }
            s.entries[nonce] = Entry(identity: identity, expires: expires)
            open.append(expires)
            s.perAddress[address] = open
            return .success((nonce, expires))
        }
    }

    enum Verdict: Equatable { case valid, unknown, expired, otherIdentity }

    /// Consumes the nonce whatever the outcome: a nonce is never answered twice.
    func redeem(_ nonce: String, identity: String, now: UInt64) -> Verdict {
        guard let entry = state.withLock({ $0.entries.removeValue(forKey: nonce) }) else { return .unknown }
        if entry.expires <= now { return .expired }
        if entry.identity != identity { return .otherIdentity }
        return .valid
    }
}

/// Failed authentications per identity and per client address in a sliding minute; once a key
/// reaches the limit, further attempts are refused with 429 before any signature is checked.
final class FailureLimiter: Sendable {
    private let failures = Mutex<[String: [UInt64]]>([:])
    let limit: Int
    let window: UInt64 = 60

    init(limit: Int) { self.limit = limit }

    func isLimited(_ keys: [String], now: UInt64) -> Bool {
        failures.withLock { table in
            keys.contains { key in (table[key]?.filter { $0 + window > now }.count ?? 0) >= limit }
        }
    }

    /// Most keys kept: past this (after dropping stale ones) the table starts afresh, so memory
    /// stays bounded whatever names and addresses are thrown at it.
    static let capacity = 100_000

    func recordFailure(_ keys: [String], now: UInt64) {
        failures.withLock { table in
            if table.count > 50_000 {
                table = table.filter { $0.value.contains { $0 + window > now } }
                if table.count > Self.capacity { table.removeAll() }
            }
            for key in keys {
                var times = table[key, default: []].filter { $0 + window > now }
                // Only the count within the window matters; no more than the limit is kept.
                if times.count < limit { times.append(now) }
                table[key] = times
            }
        }
    }
}
