import Common
import Synchronization
import SSHCrypto
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Open login challenges: single use, short-lived, bounded per client and in total. A nonce is
/// handed to anyone who asks (so unknown names learn nothing), but only answers for the name
/// it was issued to, once, before it expires.
///
/// A challenge counts against its client's address until it is answered or expires, so the
/// people behind one NAT or proxy can log in as often as they like, one challenge at a time.
/// When the store is full, the newest request does not get a 503: the oldest challenge of
/// whoever holds the most is dropped, so a flood from many addresses can only take challenges
/// from itself, never lock out a client that holds few. Every operation is O(1) or O(limit).
final class ChallengeStore: Sendable {
    struct Entry { var identity: String; var client: String; var expires: UInt64 }
    struct State {
        var entries: [String: Entry] = [:]
        /// Nonces in the order they were issued, which is the order they expire (one lifetime
        /// for all); answered ones stay here until they reach the front.
        var order = CircularBuffer<String>()
        /// Each client's open nonces, oldest first.
        var perClient: [String: [String]] = [:]
        /// Clients by how many challenges they hold (index = count), to find the largest holder.
        var byCount: [Set<String>] = []
    }
    private let state: Mutex<State>
    let lifetime: UInt64
    let capacity: Int
    /// Bounds memory when someone asks for challenges in a loop.
    static let defaultCapacity = 100_000
    /// Open challenges one client may hold: a login needs one at a time.
    static let perAddressLimit = 100

    enum Refusal: Error { case addressBusy }

    init(lifetime: UInt64, capacity: Int = ChallengeStore.defaultCapacity) {
        self.lifetime = lifetime
        self.capacity = capacity
        state = Mutex(State(byCount: Array(repeating: [], count: Self.perAddressLimit + 1)))
    }

    /// The client a request is counted against: its address, or for IPv6 its /64, which one
    /// machine usually holds whole.
    static func client(of address: String) -> String {
        guard address.contains(":") else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
    }

    /// How many open challenges a client holds (for tests and metrics).
    func openCount(client: String, now: UInt64) -> Int {
        state.withLock { s in
            Self.expire(&s, now: now)
            return s.perClient[client]?.count ?? 0
        }
    }

    var count: Int { state.withLock { $0.entries.count } }

    func issue(for identity: String, address: String, now: UInt64) -> Result<(nonce: String, expires: UInt64), Refusal> {
        let nonce = SecureRandom.bytes(24).hexString
        let expires = now + lifetime
        let client = Self.client(of: address)
        return state.withLock { s -> Result<(nonce: String, expires: UInt64), Refusal> in
            Self.expire(&s, now: now)
            let held = s.perClient[client]?.count ?? 0
            guard held < Self.perAddressLimit else { return .failure(.addressBusy) }
            if s.entries.count >= capacity {
                // The largest holder gives up its oldest challenge (the asker holds fewer than
                // the limit, so some holder has at least as many as it does).
                guard let largest = s.byCount.lastIndex(where: { !$0.isEmpty }), let victim = s.byCount[largest].first,
                      let oldest = s.perClient[victim]?.first else { return .failure(.addressBusy) }
                Self.remove(&s, nonce: oldest)
            }
            s.entries[nonce] = Entry(identity: identity, client: client, expires: expires)
            s.order.append(nonce)
            Self.setHeld(&s, client: client, from: held) { $0.append(nonce) }
            // Answered challenges wait in `order` until they reach its front; never let them
            // outnumber the open ones by much.
            if s.order.count > 2 * max(capacity, 1) {
                let live = s.order.filter { s.entries[$0] != nil }
                s.order = CircularBuffer(live)
            }
            return .success((nonce, expires))
        }
    }

    enum Verdict: Equatable { case valid, unknown, expired, otherIdentity }

    /// Consumes the nonce whatever the outcome: a nonce is never answered twice, and an answered
    /// one no longer counts against its client.
    func redeem(_ nonce: String, identity: String, now: UInt64) -> Verdict {
        guard let entry = state.withLock({ s in Self.remove(&s, nonce: nonce) }) else { return .unknown }
        if entry.expires <= now { return .expired }
        if entry.identity != identity { return .otherIdentity }
        return .valid
    }

    /// Drops expired challenges from the front of the issue order: each is dropped once.
    private static func expire(_ s: inout State, now: UInt64) {
        while let first = s.order.first {
            if let entry = s.entries[first] {
                guard entry.expires <= now else { return }
                remove(&s, nonce: first)
            }
            s.order.removeFirst()
        }
    }

    @discardableResult
    private static func remove(_ s: inout State, nonce: String) -> Entry? {
        guard let entry = s.entries.removeValue(forKey: nonce) else { return nil }
        let held = s.perClient[entry.client]?.count ?? 0
        setHeld(&s, client: entry.client, from: held) { nonces in
            if let i = nonces.firstIndex(of: nonce) { nonces.remove(at: i) }
        }
        return entry
    }

    /// Changes one client's open nonces and keeps `byCount` in step.
    private static func setHeld(_ s: inout State, client: String, from held: Int, _ change: (inout [String]) -> Void) {
        var nonces = s.perClient[client] ?? []
        change(&nonces)
        s.byCount[held].remove(client)
        if nonces.isEmpty {
            s.perClient[client] = nil
        } else {
            s.perClient[client] = nonces
            s.byCount[nonces.count].insert(client)
        }
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
