import Synchronization
import SSHCrypto

/// Single-use login challenges, kept in memory for a short lifetime. A nonce is handed to
/// anyone who asks (so unknown names learn nothing), but only answers for the name it was
/// issued to, once, before it expires.
final class ChallengeStore: Sendable {
    struct Entry { var identity: String; var expires: UInt64 }
    private let entries = Mutex<[String: Entry]>([:])
    let lifetime: UInt64
    /// Bounds memory when someone asks for challenges in a loop.
    static let capacity = 100_000

    init(lifetime: UInt64) { self.lifetime = lifetime }

    func issue(for identity: String, now: UInt64) -> (nonce: String, expires: UInt64)? {
        let nonce = SecureRandom.bytes(24).map { String($0, radix: 16).leftPadded }.joined()
        let expires = now + lifetime
        let stored = entries.withLock { table -> Bool in
            if table.count >= Self.capacity {
                table = table.filter { $0.value.expires > now }
                if table.count >= Self.capacity { return false }
            }
            table[nonce] = Entry(identity: identity, expires: expires)
            return true
        }
        return stored ? (nonce, expires) : nil
    }

    enum Verdict: Equatable { case valid, unknown, expired, otherIdentity }

    /// Consumes the nonce whatever the outcome: a nonce is never answered twice.
    func redeem(_ nonce: String, identity: String, now: UInt64) -> Verdict {
        guard let entry = entries.withLock({ $0.removeValue(forKey: nonce) }) else { return .unknown }
        if entry.expires <= now { return .expired }
        if entry.identity != identity { return .otherIdentity }
        return .valid
    }
}

extension String {
    var leftPadded: String { count >= 2 ? self : "0" + self }
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

    func recordFailure(_ keys: [String], now: UInt64) {
        failures.withLock { table in
            if table.count > 50_000 {
                table = table.filter { $0.value.contains { $0 + window > now } }
            }
            for key in keys {
                var times = table[key, default: []].filter { $0 + window > now }
                times.append(now)
                table[key] = times
            }
        }
    }
}
