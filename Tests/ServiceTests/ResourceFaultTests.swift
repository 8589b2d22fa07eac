import Common
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Faults around the service: the database locked by another process, the disk full during
/// issuance and during a KRL write, a ledger on a read-only file system. Each gives a clear error,
/// /healthz tells the truth, nothing committed is lost, and the service recovers by itself when
/// the fault goes.
@Suite("service: resource faults")
struct ResourceFaultTests {
    static func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return }
            // Checked once more after a sleep that overran the deadline (a busy test pool).
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("timed out waiting: \(what)")
    }

    static func healthStatus(_ server: CAServer) async throws -> (Int, String) {
        let reply = try await server.http("GET", "/healthz")
        return (reply.status, String(decoding: reply.body, as: UTF8.self))
    }

    /// A tmpfs of `size` mounted in `dir` (the disk and read-only cases need root, as CI runs).
    static func mountTmpfs(in dir: URL, size: String = "8m") async throws -> URL {
        let mountPoint = dir.child("fs")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        let mount = try await runProcess("mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", mountPoint.path])
        try #require(mount.succeeded, "cannot mount a tmpfs (this fault case needs root): \(mount)")
        return mountPoint
    }

    @Test("the ledger locked by another process: 503 naming the lock, /healthz failing, then it recovers")
    func lockedLedger() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "lou")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)").status == 201)

            // Another process takes the write lock (an admin poking with sqlite3) and holds it
            // until this test has seen the service's answer and /healthz (the file `release`
            // appears), at least 12 s: the service waits 10 s for it, then answers. A fixed hold
            // (16 s, then 26 s) let a loaded machine see the lock go before /healthz was asked.
            let ledger = server.home.child("ledger.sqlite").path
            let release = dir.child("release")
            let hold = "sleep 12; while [ ! -e \(release.path) ]; do sleep 0.2; done"
            let locker = try BackgroundProcess("bash", ["-c", "printf 'BEGIN EXCLUSIVE;\\n.system \(hold)\\nCOMMIT;\\n' | sqlite3 \(ledger)"],
                                               stdoutFile: dir.child("locker.out"), stderrFile: dir.child("locker.err"))
            defer {
                try? writeText("", to: release)
                locker.stop()
            }
            try await Task.sleep(for: .milliseconds(700))
            let blocked = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            #expect(blocked.status == 503 && (errorFields(blocked.body).message ?? "").contains("locked by another process"),
                    "\(blocked.status) \(String(decoding: blocked.body, as: UTF8.self))")
            let (status, body) = try await Self.healthStatus(server)
            #expect(status == 503 && body.contains("writes fail"), "health during the lock: \(status) \(body)")
            try writeText("", to: release)

            try await Self.waitFor("the lock is released", timeout: .seconds(40)) { !locker.isRunning }
            try await Self.waitFor("/healthz recovers") { try await Self.healthStatus(server).0 == 200 }
            let after = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            #expect(after.status == 201)
            let list = try checked(try await server.sshca(["list", "--json"]))
            #expect((try JSONSerialization.jsonObject(with: list.stdout) as? [Any])?.count == 2, "\(list.stdoutText)")
            #expect(try await server.sshca(["audit", "verify"]).succeeded)
        }
    }

    @Test("a full disk during a revocation: 503, the KRL on disk stays the old valid one, /healthz failing; space back, it recovers and the KRL matches the ledger")
    func fullDisk() async throws {
        try await withTemporaryDirectory { dir in
            let mountPoint = try await Self.mountTmpfs(in: dir)
            defer { umount2(mountPoint.path, Int32(MNT_DETACH)) }
            let server = try await CAServer.start(in: mountPoint.child("run"))
            defer { server.stop() }
            let engineer = try await server.token(role: "engineer", name: "mia")
            let security = try await server.token(role: "security", name: "sec")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let issued = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            try #require(issued.status == 201)
            let certificate = dir.child("k-cert.pub")
            try writeIssuedCertificate(issued.body, to: certificate)
            let serial = decodeJSON(issued.body)["serial"] as? Int ?? 0
            let krl = server.home.child("revoked.krl")
            let krlBefore = try Data(contentsOf: krl)

            // Fill the disk to the last block.
            _ = try await runProcess("dd", ["if=/dev/zero", "of=\(mountPoint.child("filler").path)", "bs=64k"])
            let revoke = try await server.http("POST", "/v1/revocations", json: "{\"serial\": \(serial), \"reason\": \"disk test\"}",
                                               headers: ["Authorization": "Bearer \(security)"])
            #expect(revoke.status == 503, "\(revoke.status) \(String(decoding: revoke.body, as: UTF8.self))")
            let message = errorFields(revoke.body).message ?? ""
            // The answer says which step failed, and the ledger must agree with it: either the
            // revocation was committed and only its KRL is behind, or nothing was recorded.
            let committedPerAnswer = message.contains("is recorded, but the KRL could not be written")
            #expect(committedPerAnswer || message.contains("disk") || message.contains("space"), "\(message)")
            let shownOnFullDisk = try checked(try await server.sshca(["show", "--json", String(serial)]))
            let revokedOnFullDisk = shownOnFullDisk.stdoutText.contains("\"status\" : \"revoked\"")
            #expect(revokedOnFullDisk == committedPerAnswer,
                    "the 503 said \(committedPerAnswer ? "committed" : "not recorded") but the ledger says \(revokedOnFullDisk ? "revoked" : "not revoked"): \(message)")
            // The KRL on disk is the old, valid one: never a partial file.
            #expect(try Data(contentsOf: krl) == krlBefore)
            let (status, body) = try await Self.healthStatus(server)
            #expect(status == 503, "health on a full disk after a failed write: \(status) \(body)")
            if committedPerAnswer {
                #expect(body.contains("not in the published KRL"), "/healthz must name the unpublished revocation: \(body)")
            }

            try FileManager.default.removeItem(at: mountPoint.child("filler"))
            try await Self.waitFor("/healthz recovers") { try await Self.healthStatus(server).0 == 200 }
            let shown = try checked(try await server.sshca(["show", "--json", String(serial)]))
            #expect(shown.stdoutText.contains("\"status\" : \"revoked\"") == committedPerAnswer, "\(shown.stdoutText)")
            let query = try await runProcess("ssh-keygen", ["-Q", "-f", krl.path, certificate.path])
            if committedPerAnswer {
                // Published by the retry loop once there was space, without anyone asking again.
                #expect(query.exitCode == 1 && query.stdoutText.contains("REVOKED"), "the ledger has the revocation, the KRL does not:\n\(query)")
            } else {
                // The commit itself failed: nothing was recorded, and the KRL does not revoke it either.
                #expect(query.exitCode == 0, "\(query)")
            }
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)").status == 201)
            #expect(try await server.sshca(["audit", "verify"]).succeeded)
        }
    }

    @Test("a full disk during issuance: 503 naming the full disk, /healthz failing, every certificate answered 201 is in the ledger; space back, it recovers")
    func fullDiskDuringIssuance() async throws {
        try await withTemporaryDirectory { dir in
            let mountPoint = try await Self.mountTmpfs(in: dir)
            defer { umount2(mountPoint.path, Int32(MNT_DETACH)) }
            let server = try await CAServer.start(in: mountPoint.child("run"))
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "ned")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            func issue() async throws -> (status: Int, body: Data) {
                try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            }
            var answered: Set<Int> = []
            let first = try await issue()
            try #require(first.status == 201)
            answered.insert(decodeJSON(first.body)["serial"] as? Int ?? 0)

            _ = try await runProcess("dd", ["if=/dev/zero", "of=\(mountPoint.child("filler").path)", "bs=64k"])
            // The WAL may have a few pages of room left: issue until a commit needs a new block.
            var refusal: (status: Int, body: Data)? = nil
            for _ in 0..<300 {
                let reply = try await issue()
                guard reply.status == 201 else { refusal = reply; break }
                answered.insert(decodeJSON(reply.body)["serial"] as? Int ?? 0)
            }
            let refused = try #require(refusal, "300 certificates were committed on a full disk")
            let message = errorFields(refused.body).message ?? ""
            #expect(refused.status == 503 && message.contains("disk is full") && message.contains("nothing was written"),
                    "\(refused.status) \(message)")
            let (status, body) = try await Self.healthStatus(server)
            #expect(status == 503 && body.contains("full"), "health on a full disk: \(status) \(body)")

            try FileManager.default.removeItem(at: mountPoint.child("filler"))
            try await Self.waitFor("/healthz recovers") { try await Self.healthStatus(server).0 == 200 }
            let after = try await issue()
            #expect(after.status == 201)
            answered.insert(decodeJSON(after.body)["serial"] as? Int ?? 0)
            // Every certificate a client received is in the ledger, and nothing else is.
            let list = try checked(try await server.sshca(["list", "--json"]))
            let stored = Set(((try JSONSerialization.jsonObject(with: list.stdout) as? [[String: Any]]) ?? []).compactMap { $0["serial"] as? Int })
            #expect(stored == answered, "ledger \(stored.sorted()) vs answered \(answered.sorted())")
            #expect(try await server.sshca(["audit", "verify"]).succeeded)
        }
    }

    @Test("a ledger on a read-only file system: the service starts, serves what is committed, refuses issuance naming the cause, /healthz failing; remounted read-write, it recovers by itself")
    func readOnlyLedger() async throws {
        try await withTemporaryDirectory { dir in
            let mountPoint = try await Self.mountTmpfs(in: dir)
            defer { umount2(mountPoint.path, Int32(MNT_DETACH)) }
            let before = try await CAServer.start(in: mountPoint.child("run"))
            let engineer = try await before.token(role: "engineer", name: "ro")
            let security = try await before.token(role: "security", name: "sec")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let issued = try await before.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            try #require(issued.status == 201)
            let serial = decodeJSON(issued.body)["serial"] as? Int ?? 0
            before.stop()
            let home = before.home
            let krlBefore = try Data(contentsOf: home.child("revoked.krl"))

            let readOnly = try await runProcess("mount", ["-o", "remount,ro", mountPoint.path])
            try #require(readOnly.succeeded, "\(readOnly)")
            let server = try await CAServer.start(in: dir.child("run2"), home: home)
            defer { server.stop() }
            let (status, body) = try await Self.healthStatus(server)
            #expect(status == 503 && body.contains("read-only") && body.contains("mounted read-only"), "health: \(status) \(body)")
            // What is committed is still served.
            let shown = try await server.http("GET", "/v1/certificates/\(serial)", headers: ["Authorization": "Bearer \(security)"])
            #expect(shown.status == 200 && (decodeJSON(shown.body)["serial"] as? Int) == serial,
                    "\(shown.status) \(String(decoding: shown.body, as: UTF8.self))")
            let krl = try await server.http("GET", "/v1/krl")
            #expect(krl.status == 200 && krl.body == krlBefore)
            // Writes are refused with the cause and the fix.
            let refused = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            let message = errorFields(refused.body).message ?? ""
            #expect(refused.status == 503 && message.contains("read-only") && message.contains("remount,rw"), "\(refused.status) \(message)")
            let revoke = try await server.http("POST", "/v1/revocations", json: "{\"serial\": \(serial), \"reason\": \"ro test\"}",
                                               headers: ["Authorization": "Bearer \(security)"])
            #expect(revoke.status == 503, "\(revoke.status) \(String(decoding: revoke.body, as: UTF8.self))")
            #expect(server.process.isRunning)

            let writable = try await runProcess("mount", ["-o", "remount,rw", mountPoint.path])
            try #require(writable.succeeded, "\(writable)")
            try await Self.waitFor("/healthz recovers") { try await Self.healthStatus(server).0 == 200 }
            let after = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            #expect(after.status == 201)
            #expect((decodeJSON(after.body)["serial"] as? Int ?? 0) > serial)
            let list = try checked(try await server.sshca(["list", "--json"]))
            #expect((try JSONSerialization.jsonObject(with: list.stdout) as? [Any])?.count == 2, "\(list.stdoutText)")
            #expect(try await server.sshca(["audit", "verify"]).succeeded)
        }
    }
}
