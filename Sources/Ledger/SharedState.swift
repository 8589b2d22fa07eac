import Synchronization

/// Rules every backend's login challenges follow (the same numbers on one node or many).
public enum ChallengeRules {
    /// Bounds the open challenges when someone asks for them in a loop.
    public static let defaultCapacity = 100_000
    /// Open challenges one client may hold: a login needs one at a time.
    public static let perClientLimit = 100
}

public enum ChallengeVerdict: Equatable, Sendable { case valid, unknown, expired, otherIdentity }

public enum ChallengeRefusal: Error, Equatable, Sendable {
    /// The client already holds `ChallengeRules.perClientLimit` open challenges.
    case clientBusy
    /// The nonce is open already (for whoever asked for it first, which it stays).
    case nonceInUse
}

/// Open login challenges: single use, short-lived, bounded per client and in total. State that
/// every node of one CA must share (a challenge handed out by one node is answered at another),
/// so it sits behind the ledger: a single-node backend may keep it in memory, a shared database
/// keeps it there. Asynchronous and throwing like the ledger (a database may be away); the
/// in-memory store answers at once and never fails.
public protocol LoginChallenges: Sendable {
    /// Records `nonce` for `identity`, counted against `client` until answered or `expires`.
    /// A nonce that is open already is refused and left as it was.
    func open(_ nonce: String, identity: String, client: String, expires: UInt64, now: UInt64) async throws -> Result<Void, ChallengeRefusal>
    /// Consumes the nonce whatever the outcome: a nonce is never answered twice.
    func redeem(_ nonce: String, identity: String, now: UInt64) async throws -> ChallengeVerdict
    /// How many open challenges a client holds.
    func openCount(client: String, now: UInt64) async throws -> Int
    /// Open challenges in all.
    var count: Int { get async throws }
}

/// Failed sign-ins per key (an identity, a client address) in a sliding window, shared by every
/// node like the challenges, so a guesser cannot spread attempts over the nodes.
public protocol FailureCounts: Sendable {
    /// Whether any key has `limit` failures within `window` seconds before `now`.
    func isLimited(_ keys: [String], limit: Int, window: UInt64, now: UInt64) async throws -> Bool
    func recordFailure(_ keys: [String], limit: Int, window: UInt64, now: UInt64) async throws
}

/// Nonces in issue order: a first-in, first-out queue without moving the whole array on each pop.
struct NonceQueue {
    private var items: [String] = []
    private var head = 0

    var first: String? { head < items.count ? items[head] : nil }
    var count: Int { items.count - head }

    mutating func append(_ nonce: String) { items.append(nonce) }

    mutating func removeFirst() {
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    /// Keeps only the nonces `keep` says to, in order.
    mutating func keep(_ keep: (String) -> Bool) {
        items = items[head...].filter(keep)
        head = 0
    }
}

/// `LoginChallenges` in this process's memory, for a single node.
///
/// A challenge counts against its client until it is answered or expires, so the people behind
/// one NAT or proxy can log in as often as they like, one challenge at a time. When the store is
/// full, the newest request does not get a refusal: the oldest challenge of whoever holds the
/// most is dropped, so a flood from many addresses can only take challenges from itself, never
/// lock out a client that holds few. Every operation is O(1) or O(limit).
public final class MemoryLoginChallenges: LoginChallenges {
    struct Entry { var identity: String; var client: String; var expires: UInt64 }
    struct State {
        var entries: [String: Entry] = [:]
        /// Nonces in the order they were issued, which is the order they expire (one lifetime
        /// for all); answered ones stay here until they reach the front.
        var order = NonceQueue()
        /// Each client's open nonces, oldest first.
        var perClient: [String: [String]] = [:]
        /// Clients by how many challenges they hold (index = count), to find the largest holder.
        var byCount: [Set<String>] = []
    }
    private let state: Mutex<State>
    public let capacity: Int

    public init(capacity: Int = ChallengeRules.defaultCapacity) {
        self.capacity = capacity
        state = Mutex(State(byCount: Array(repeating: [], count: ChallengeRules.perClientLimit + 1)))
    }

    public func openCount(client: String, now: UInt64) -> Int {
        state.withLock { s in
            Self.expire(&s, now: now)
            return s.perClient[client]?.count ?? 0
        }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    public func open(_ nonce: String, identity: String, client: String, expires: UInt64, now: UInt64) -> Result<Void, ChallengeRefusal> {
        state.withLock { s -> Result<Void, ChallengeRefusal> in
            Self.expire(&s, now: now)
            // Overwriting it would hand the first asker's challenge to the second, and leave it
            // counted against the first client.
            guard s.entries[nonce] == nil else { return .failure(.nonceInUse) }
            let held = s.perClient[client]?.count ?? 0
            guard held < ChallengeRules.perClientLimit else { return .failure(.clientBusy) }
            if s.entries.count >= capacity {
                // The largest holder gives up its oldest challenge (the asker holds fewer than
                // the limit, so some holder has at least as many as it does).
                guard let largest = s.byCount.lastIndex(where: { !$0.isEmpty }), let victim = s.byCount[largest].first,
                      let oldest = s.perClient[victim]?.first else { return .failure(.clientBusy) }
                Self.remove(&s, nonce: oldest)
            }
            s.entries[nonce] = Entry(identity: identity, client: client, expires: expires)
            s.order.append(nonce)
            Self.setHeld(&s, client: client, from: held) { $0.append(nonce) }
            // Answered challenges wait in `order` until they reach its front; never let them
            // outnumber the open ones by much.
            if s.order.count > 2 * max(capacity, 1) {
                s.order.keep { s.entries[$0] != nil }
            }
            return .success(())
        }
    }

    /// Consumes the nonce whatever the outcome: a nonce is never answered twice, and an answered
    /// one no longer counts against its client.
    public func redeem(_ nonce: String, identity: String, now: UInt64) -> ChallengeVerdict {
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

/// `FailureCounts` in this process's memory, for a single node.
public final class MemoryFailureCounts: FailureCounts {
    private let failures = Mutex<[String: [UInt64]]>([:])

    public init() {}

    /// Most keys kept: past this (after dropping stale ones) the table starts afresh, so memory
    /// stays bounded whatever names and addresses are thrown at it.
    static let capacity = 100_000

    public func isLimited(_ keys: [String], limit: Int, window: UInt64, now: UInt64) -> Bool {
        failures.withLock { table in
            keys.contains { key in (table[key]?.filter { $0 + window > now }.count ?? 0) >= limit }
        }
    }

    public func recordFailure(_ keys: [String], limit: Int, window: UInt64, now: UInt64) {
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
