import Common
public import Ledger
import SSHFormat
import Foundation

/// The service's batching of `CertificateAuthority.commit`: concurrent requests queue here, one
/// thread takes everything queued and commits it in one transaction (one fsync), and only then
/// answers every waiting request. A request that fails (a revoked key, a bad body) fails alone.
public final class GroupCommitter: @unchecked Sendable {
    struct Pending {
        var issuance: PendingIssuance
        var continuation: CheckedContinuation<Result<IssuedCertificate, SSHCAError>, Never>
    }

    private let ledger: any Ledger
    private let maintenance: any LedgerMaintenance
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [Pending] = []
    private var stopped = false
    private var finished = false
    private var thread: Thread? = nil
    /// Most certificates in one transaction: bounds the time the first request of a group waits.
    public let maximumGroup: Int
    /// Groups committed and certificates in them (for /metrics and the benchmark).
    private(set) var groups: UInt64 = 0
    /// Why the last group failed to commit, until a group commits again (for /healthz).
    private var lastFailure: String? = nil
    private(set) var committed: UInt64 = 0

    public init(ledger: any Ledger, maintenance: any LedgerMaintenance, maximumGroup: Int = 256) {
        self.ledger = ledger
        self.maintenance = maintenance
        self.maximumGroup = maximumGroup
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "sshca-commit"
        self.thread = thread
        thread.start()
    }

    /// Signs and commits; returns once the certificate is durable in the ledger (or refused).
    public func issue(_ issuance: PendingIssuance) async -> Result<IssuedCertificate, SSHCAError> {
        await withCheckedContinuation { continuation in
            condition.lock()
            if stopped {
                condition.unlock()
                continuation.resume(returning: .failure(SSHCAError(.ledger, "the service is shutting down; try again")))
                return
            }
            queue.append(Pending(issuance: issuance, continuation: continuation))
            condition.signal()
            condition.unlock()
        }
    }

    /// nil while commits succeed; else why the last one failed.
    public var writeFailure: String? {
        condition.lock()
        defer { condition.unlock() }
        return lastFailure
    }

    /// A write outside the committer failed (a revocation): /healthz says so until a probe succeeds.
    public func noteWriteFailure(_ reason: String) {
        condition.lock()
        lastFailure = reason
        condition.unlock()
    }

    /// After a failed commit: tries a write that changes nothing, and forgets the failure when it
    /// succeeds, so /healthz recovers with the disk even when no request comes.
    public func probeAfterFailure() {
        guard writeFailure != nil else { return }
        let result: String?
        do { try maintenance.probeWrite(); result = nil } catch { result = "\(error)" }
        condition.lock()
        lastFailure = result
        condition.unlock()
    }

    public var statistics: (groups: UInt64, certificates: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        return (groups, committed)
    }

    /// Finishes what is queued, then stops taking requests; returns once the commit thread has
    /// finished (nothing writes to the ledger through it afterwards).
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            if queue.isEmpty && stopped {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let take = min(queue.count, maximumGroup)
            let group = Array(queue.prefix(take))
            queue.removeFirst(take)
            condition.unlock()
            commit(group)
        }
    }

    private func commit(_ group: [Pending]) {
        let results: [Result<IssuedCertificate, SSHCAError>]
        var failure: String? = nil
        do {
            // This thread is the service's own, not one of the task pool's: it waits here for
            // the ledger, which is the point of it (one group at a time, one transaction each).
            let issuances = group.map(\.issuance), ledger = self.ledger
            results = try blocking { () throws(SSHCAError) in try await CertificateAuthority.commit(issuances, to: ledger, now: Clock.now()) }
        } catch {
            // The transaction did not commit: nothing of this group was issued.
            failure = error.reason
            results = Array(repeating: .failure(error), count: group.count)
        }
        condition.lock()
        lastFailure = failure
        groups += 1
        committed += UInt64(results.filter { if case .success = $0 { return true } else { return false } }.count)
        condition.unlock()
        for (pending, result) in zip(group, results) {
            pending.continuation.resume(returning: result)
        }
    }
}
