import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// Acceptance item 4: serials stay unique and consecutive when several `sshca sign` processes
/// share one CA home; and concurrent revocations all reach the published KRL.
@Suite("Concurrent use of one CA home")
struct ConcurrencyTests {
    static let workers = 6
    static let perWorker = 25

    @Test("parallel sshca sign processes get distinct, consecutive serials, all recorded")
    func parallelSigning() async throws {
        try await withTemporaryDirectory(prefix: "ledger-conc") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            var workerKeys: [KeyPair] = []
            for w in 0..<Self.workers {
                workerKeys.append(try await makeUserKey(try makeDirectory(dir.child("w\(w)")), "key"))
            }
            let keys = workerKeys
            // Each worker runs its 25 signs one after another; the workers run at the same time.
            let results = try await withThrowingTaskGroup(of: [(file: URL, result: ProcessResult)].self) { group in
                for w in 0..<Self.workers {
                    group.addTask {
                        var done: [(URL, ProcessResult)] = []
                        for i in 0..<Self.perWorker {
                            let out = dir.child("w\(w)").child("cert-\(i).pub")
                            let result = try await ca.run(["sign"], ["--key-id", "w\(w)-\(i)", "--principals", "root",
                                                                     "--output", out.path, keys[w].publicKey.path])
                            done.append((out, result))
                        }
                        return done
                    }
                }
                var all: [(file: URL, result: ProcessResult)] = []
                for try await part in group { all += part }
                return all
            }
            let total = Self.workers * Self.perWorker
            #expect(results.count == total)
            let failures = results.filter { !$0.result.succeeded }
            #expect(failures.isEmpty, "\(failures.count) sign runs failed; first:\n\(failures.first.map { "\($0.result)" } ?? "")")

            let listed = try await ca.list()
            let ledgerSerials = listed.map(\.serial)
            #expect(ledgerSerials.count == total, "the ledger holds \(ledgerSerials.count) certificates, \(total) were signed")
            #expect(Set(ledgerSerials).count == ledgerSerials.count, "duplicate serials in the ledger")
            #expect(ledgerSerials.sorted() == Array(1...UInt64(total)), "ledger serials are not 1...\(total): \(ledgerSerials.sorted())")

            // Each written certificate: its serial (per sshca inspect --json) is in the ledger, and
            // the ledger's certificate under that serial is this very certificate.
            let bySerial = Dictionary(listed.map { ($0.serial, $0) }, uniquingKeysWith: { first, _ in first })
            var fileSerials: [UInt64] = []
            var problems: [String] = []
            for (file, _) in results where fileExists(file) {
                let (inspected, result) = try await SSHCA.inspect(file)
                #expect(result.succeeded && inspected.signatureValid, "\(result)")
                fileSerials.append(inspected.serial)
                guard let entry = bySerial[inspected.serial] else {
                    problems.append("\(file.lastPathComponent): serial \(inspected.serial) is not in the ledger")
                    continue
                }
                if typeAndBlob(entry.certificate) != typeAndBlob(try readText(file)) {
                    problems.append("\(file.lastPathComponent): the ledger's certificate \(inspected.serial) is a different certificate")
                }
                if entry.keyId != inspected.keyId { problems.append("\(file.lastPathComponent): key id \(inspected.keyId) vs ledger \(entry.keyId)") }
            }
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
            #expect(fileSerials.count == total, "only \(fileSerials.count) certificate files were written")
            #expect(Set(fileSerials).count == fileSerials.count, "two certificate files carry the same serial")

            let audit = try await ca.auditVerify()
            #expect(audit.succeeded, "\(audit)")
        }
    }

    @Test("concurrent revocations: every one reaches the final KRL, versions only grow, the file is always valid")
    func parallelRevocations() async throws {
        try await withTemporaryDirectory(prefix: "ledger-conc-rev") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            var serials: [UInt64] = []
            for i in 0..<8 {
                serials.append(try await ca.sign(key, keyID: "c\(i)", principals: ["root"], output: dir.child("c\(i)-cert.pub")).certificate.body.serial)
            }
            let startVersion = try ca.publishedKRL().version

            // Watch the published file while the revocations run: every read must parse, and
            // versions must never go down.
            let watching = Locked(true)
            let krlFile = ca.krlFile
            let watcher = Task { () -> [String] in
                var problems: [String] = []
                var last: UInt64 = 0
                while watching.current {
                    if let data = try? Data(contentsOf: krlFile) {
                        do {
                            let version = try KRL.parse(Array(data)).krl.version
                            if version < last { problems.append("version went down: \(last) -> \(version)") }
                            last = max(last, version)
                        } catch {
                            problems.append("unparsable revoked.krl (\(data.count) bytes): \(error)")
                        }
                    } else {
                        problems.append("revoked.krl missing")
                    }
                    try? await Task.sleep(for: .milliseconds(2))
                }
                return problems
            }
            defer { watching.withLock { $0 = false } }
            let results = try await withThrowingTaskGroup(of: ProcessResult.self) { group in
                for serial in serials {
                    group.addTask { try await ca.run(["revoke"], ["--serial", "\(serial)", "--reason", "parallel"]) }
                }
                var all: [ProcessResult] = []
                for try await r in group { all.append(r) }
                return all
            }
            watching.withLock { $0 = false }
            let watchProblems = await watcher.value
            #expect(results.allSatisfy { $0.succeeded }, "\(results.filter { !$0.succeeded })")
            #expect(watchProblems.isEmpty, "\(watchProblems.prefix(10))")
            try await expectKRLLoadable(ca.krlFile)

            let final = try ca.publishedKRL()
            #expect(final.version == startVersion + UInt64(serials.count), "final version \(final.version), started at \(startVersion)")
            let revokedInKRL = final.certificates.flatMap { section in serials.filter { section.serials.contains($0) } }
            #expect(Set(revokedInKRL) == Set(serials), "the final KRL misses revocations: has \(revokedInKRL.sorted()) of \(serials)")
            for i in 0..<8 {
                #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: dir.child("c\(i)-cert.pub")))
            }
        }
    }
}
