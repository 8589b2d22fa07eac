import SSHFormat
import Synchronization

/// A KRL as servers are given it: its version, its bytes, the detached signature over them
/// (`ssh-keygen -Y sign` armor, nil when unsigned) and the SHA-256 of the bytes (the ETag's
/// source, computed once when the KRL is kept or read, never per request).
public struct StoredKRL: Sendable, Equatable {
    public var version: UInt64
    public var bytes: [UInt8]
    public var signature: String?
    public var digest: [UInt8]

    public init(version: UInt64, bytes: [UInt8], signature: String?) {
        self.version = version
        self.bytes = bytes
        self.signature = signature
        digest = Digest.sha256.hash(bytes)
    }
}

/// The KRL every node of one CA serves, and the order its publishers take turns in. State that
/// several nodes must share, so it sits behind the ledger: a single node may keep it in files
/// beside its ledger, a shared database keeps it in the database.
public protocol PublishedKRLs: Sendable {
    /// Runs `publish` while every other publisher of this ledger waits: the next KRL version is
    /// taken, built and kept by one publisher at a time, so a slower one never puts an older
    /// KRL back over a newer one.
    func inPublishOrder<T: Sendable>(_ publish: @Sendable () async throws -> T) async throws -> T

    /// Makes `krl` the one served (called inside `inPublishOrder`). A reader sees the old KRL or
    /// this one, never a part.
    func keep(_ krl: StoredKRL) async throws

    /// The KRL served now; nil before the first is kept.
    func current() async throws -> StoredKRL?
}

/// One turn at a time among this process's tasks, waited for without holding a thread (a task
/// that waits is suspended, not blocked): the in-process half of a publish order.
public final class Turns: Sendable {
    private let state = Mutex<(busy: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Runs `body` when it is this caller's turn; callers get their turns in the order they asked.
    public func inTurn<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.busy { s.waiting.append(turn); return false }
                s.busy = true
                return true
            }
            if now { turn.resume() }
        }
        defer {
            // The next caller in line gets the turn, or nobody holds it.
            let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
                if s.waiting.isEmpty { s.busy = false; return nil }
                return s.waiting.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}

/// `PublishedKRLs` in this process's memory (tests, and a ledger opened without a home).
public final class MemoryPublishedKRLs: PublishedKRLs {
    private let kept = Mutex<StoredKRL?>(nil)
    private let turns = Turns()

    public init() {}

    public func inPublishOrder<T: Sendable>(_ publish: @Sendable () async throws -> T) async throws -> T {
        try await turns.inTurn(publish)
    }

    public func keep(_ krl: StoredKRL) async throws { kept.withLock { $0 = krl } }

    public func current() async throws -> StoredKRL? { kept.withLock { $0 } }
}
