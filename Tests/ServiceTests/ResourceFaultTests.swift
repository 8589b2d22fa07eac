import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Faults around the service: the database locked by another process, the disk full during a
/// KRL write. Each gives a clear error, /healthz tells the truth, nothing committed is lost, and
/// the service recovers by itself when the fault goes.
@Suite("service: resource faults")
struct ResourceFaultTests {
    static func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("timed out waiting: \(what)")
    }

    static func healthStatus(_ server: CAServer) async throws -> (Int, String) {
        let reply = try await server.http("GET", "/healthz")
        return (reply.status, String(decoding: reply.body, as: UTF8.self))
    }

    @Test("the ledger locked by another process: 503 naming the lock, /healthz failing, then it recovers")
    func lockedLedger() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "lou")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)").status == 201)

            // Another process takes the write lock for 16 s (an admin poking with sqlite3); the
            // service waits 10 s for it, then answers.
            let ledger = server.home.child("ledger.sqlite").path
            let locker = try BackgroundProcess("bash", ["-c", "printf 'BEGIN EXCLUSIVE;\\n.system sleep 16\\nCOMMIT;\\n' | sqlite3 \(ledger)"],
                                               stdoutFile: dir.child("locker.out"), stderrFile: dir.child("locker.err"))
            defer { locker.stop() }
            try await Task.sleep(for: .milliseconds(700))
            let blocked = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            #expect(blocked.status == 503 && (errorFields(blocked.body).message ?? "").contains("locked by another process"),
                    "\(blocked.status) \(String(decoding: blocked.body, as: UTF8.self))")
            let (status, body) = try await Self.healthStatus(server)
            #expect(status == 503 && body.contains("writes fail"), "health during the lock: \(status) \(body)")

            try await Self.waitFor("the lock is released") { !locker.isRunning }
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
            let mountPoint = dir.child("fs")
            try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
            let mount = try await runProcess("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint.path])
            try #require(mount.succeeded, "cannot mount a tmpfs (the full-disk case needs root): \(mount)")
            defer { umount2(mountPoint.path, Int32(MNT_DETACH)) }
            let server = try await CAServer.start(in: mountPoint.child("run"))
            defer { server.stop() }
            let engineer = try await server.token(role: "engineer", name: "mia")
            let security = try await server.token(role: "security", name: "sec")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let issued = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            try #require(issued.status == 201)
            let certificate = dir.child("k-cert.pub")
            try writeText((decodeJSON(issued.body)["certificate"] as? String ?? "") + "\n", to: certificate)
            let serial = decodeJSON(issued.body)["serial"] as? Int ?? 0
            let krl = server.home.child("revoked.krl")
            let krlBefore = try Data(contentsOf: krl)

            // Fill the disk to the last block.
            _ = try await runProcess("dd", ["if=/dev/zero", "of=\(mountPoint.child("filler").path)", "bs=64k"])
            let revoke = try await server.http("POST", "/v1/revocations", json: "{\"serial\": \(serial), \"reason\": \"disk test\"}",
                                               headers: ["Authorization": "Bearer \(security)"])
            #expect(revoke.status == 503, "\(revoke.status) \(String(decoding: revoke.body, as: UTF8.self))")
            let message = errorFields(revoke.body).message ?? ""
            #expect(message.contains("disk") || message.contains("space") || message.contains("KRL could not be written"), "\(message)")
            // The KRL on disk is the old, valid one: never a partial file.
            #expect(try Data(contentsOf: krl) == krlBefore)
            let (status, body) = try await Self.healthStatus(server)
            #expect(status == 503, "health on a full disk after a failed write: \(status) \(body)")

            try FileManager.default.removeItem(at: mountPoint.child("filler"))
            try await Self.waitFor("/healthz recovers") { try await Self.healthStatus(server).0 == 200 }
            let shown = try checked(try await server.sshca(["show", "--json", String(serial)]))
            let revokedInLedger = shown.stdoutText.contains("\"status\" : \"revoked\"")
            let query = try await runProcess("ssh-keygen", ["-Q", "-f", krl.path, certificate.path])
            if revokedInLedger {
                #expect(query.exitCode == 1 && query.stdoutText.contains("REVOKED"), "the ledger has the revocation, the KRL does not:\n\(query)")
            } else {
                // The commit itself failed: nothing was recorded, and the KRL does not revoke it either.
                #expect(query.exitCode == 0, "\(query)")
            }
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)").status == 201)
            #expect(try await server.sshca(["audit", "verify"]).succeeded)
        }
    }
}
