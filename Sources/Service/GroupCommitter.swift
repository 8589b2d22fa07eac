public import Authority
public import Ledger
import SSHCrypto
import SSHFormat
import Foundation

/// Turns many concurrent issuance requests into few durable transactions: requests queue here,
/// one thread takes everything queued, signs each certificate with its serial and commits them
/// in one SQLite transaction (one fsync), and only then answers every waiting request. A request
/// that fails (a revoked key, a bad body) fails alone.
public final class GroupCommitter: @unchecked Sendable {
    struct Pending {
        var body: CertificateBody
        var issuer: Issuer
        var requester: Requester
        var continuation: CheckedContinuation<Result<IssuedCertificate, AuthorityError>, Never>
    }

    private let ledger: any Ledger
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [Pending] = []
    private var stopped = false
    private var thread: Thread? = nil
    /// Most certificates in one transaction: bounds the time the first request of a group waits.
    public let maximumGroup: Int
    /// Groups committed and certificates in them (for /metrics and the benchmark).
    private(set) var groups: UInt64 = 0
    private(set) var committed: UInt64 = 0

    public init(ledger: any Ledger, maximumGroup: Int = 256) {
        self.ledger = ledger
        self.maximumGroup = maximumGroup
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "sshca-commit"
        self.thread = thread
        thread.start()
    }

    /// Signs and commits; returns once the certificate is durable in the ledger (or refused).
    public func issue(body: CertificateBody, issuer: Issuer, requester: Requester) async -> Result<IssuedCertificate, AuthorityError> {
        await withCheckedContinuation { continuation in
            condition.lock()
            if stopped {
                condition.unlock()
                continuation.resume(returning: .failure(AuthorityError(.ledger, "the service is shutting down; try again")))
                return
            }
            queue.append(Pending(body: body, issuer: issuer, requester: requester, continuation: continuation))
            condition.signal()
            condition.unlock()
        }
    }

    public var statistics: (groups: UInt64, certificates: UInt64) {
        condition.lock()
        defer { condition.unlock() }
        return (groups, committed)
    }

    /// Finishes what is queued, then stops taking requests.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            if queue.isEmpty && stopped {
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
        let now = Clock.now()
        let requests = group.map { pending in
            let body = pending.body, issuer = pending.issuer
            return GroupIssuance(requestedBy: pending.requester) { serial in
                var numbered = body
                numbered.serial = serial
                return try issuer.sign(numbered)
            }
        }
        let results: [Result<IssuedCertificate, AuthorityError>]
        do {
            results = try ledger.issueGroup(requests, now: now).map { result in
                result.mapError { AuthorityError(ledger: $0) }
            }
        } catch {
            // The transaction did not commit: nothing of this group was issued.
            let failure = AuthorityError(ledger: error as? LedgerError ?? LedgerError(.storage, "\(error)"))
            results = Array(repeating: .failure(failure), count: group.count)
        }
        condition.lock()
        groups += 1
        committed += UInt64(results.filter { if case .success = $0 { return true } else { return false } }.count)
        condition.unlock()
        for (pending, result) in zip(group, results) {
            pending.continuation.resume(returning: result)
        }
    }
}
