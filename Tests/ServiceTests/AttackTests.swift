import Common
import Foundation
import Testing
import TestSupport

/// What an outsider, a host token or a security token tried against the service and did not
/// get: each case is an attack that once worked (issue 12), against a real `sshca serve` over
/// HTTP, with `sshca audit verify` and `ssh-keygen` as the judges.
@Suite("service: attacks")
struct ServiceAttackTests {
    /// `sshca audit verify` on the server's home: intact or not, and what it printed.
    static func auditIntact(_ server: CAServer) async throws -> (ok: Bool, text: String) {
        let verify = try await server.sshca(["audit", "verify"])
        return (verify.succeeded && verify.stdoutText.lowercased().contains("intact"), verify.stdoutText + verify.stderrText)
    }

    @Test("a NUL or other control character in request text: 400 before the ledger, and the audit chain stays intact")
    func controlCharactersInRequests() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let host = try await server.token(role: "host", name: "web-01.example.com")
            let security = try await server.token(role: "security", name: "sec")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let line = try readText(key.publicKey).trimmingCharacters(in: .whitespacesAndNewlines)
            let cases: [(String, String, String)] = [
                ("principal with NUL", "/v1/certificates", "{\"publicKey\":\"\(line)\",\"principals\":[\"x\\u0000y\"]}"),
                ("principal with newline", "/v1/certificates", "{\"publicKey\":\"\(line)\",\"principals\":[\"x\\ny\"]}"),
                ("validity with NUL", "/v1/certificates", "{\"publicKey\":\"\(line)\",\"validity\":\"1h\\u0000\"}"),
                ("type with NUL", "/v1/certificates", "{\"publicKey\":\"\(line)\",\"type\":\"host\\u0000x\"}"),
            ]
            for (name, path, json) in cases {
                let reply = try await server.http("POST", path, json: json, headers: ["Authorization": "Bearer \(host)"])
                let error = errorFields(reply.body)
                #expect(reply.status == 400 && (error.message ?? "").contains("control character"),
                        "\(name): \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
            }
            let revocations: [(String, String)] = [
                ("key id with NUL", "{\"keyId\":\"a\\u0000b\",\"reason\":\"test\"}"),
                ("principal with NUL", "{\"principal\":\"a\\u0000b\",\"reason\":\"test\"}"),
                ("reason with NUL", "{\"serial\":1,\"reason\":\"te\\u0000st\"}"),
                ("reason with a forged line", "{\"serial\":1,\"reason\":\"ok\\n2026-12-07 revoke #9 serial=1\"}"),
            ]
            for (name, json) in revocations {
                let reply = try await server.http("POST", "/v1/revocations", json: json, headers: ["Authorization": "Bearer \(security)"])
                #expect(reply.status == 400 && (errorFields(reply.body).message ?? "").contains("control character"),
                        "\(name): \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
            }
            // Nothing named "a" was revoked by the cut-off key id.
            let ok = try await server.http("POST", "/v1/revocations", json: "{\"keyId\":\"a\",\"reason\":\"check\"}",
                                           headers: ["Authorization": "Bearer \(security)"])
            #expect(ok.status == 201, "a key id \"a\" was already revoked: \(String(decoding: ok.body, as: UTF8.self))")
            let audit = try await Self.auditIntact(server)
            #expect(audit.ok, "the audit chain broke on input:\n\(audit.text)")
            // And the refusals are on record.
            let list = try checked(try await server.sshca(["audit", "list"])).stdoutText
            #expect(list.contains("control character"), "\(list)")
        }
    }

    @Test("the CLI refuses control characters in a key id, principal or reason, and a NUL never cuts a key id short")
    func controlCharactersFromTheCLI() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let badReason = try await server.sshca(["revoke", "--key-id", "bob", "--reason", "left\nrevoke serial=1"])
            #expect(!badReason.succeeded && badReason.stderrText.contains("control character"), "\(badReason)")
            let badPrincipal = try await server.sshca(["revoke", "--principal", "ro\tot", "--reason", "x"])
            #expect(!badPrincipal.succeeded && badPrincipal.stderrText.contains("control character"), "\(badPrincipal)")
            let sign = try await server.sshca(["sign", "--key-id", "a\u{7f}b", "--principals", "alice", key.publicKey.path])
            #expect(!sign.succeeded && sign.stderrText.contains("control character"), "\(sign)")
            let audit = try await Self.auditIntact(server)
            #expect(audit.ok, "\(audit.text)")
        }
    }

    @Test("the CA's own public keys are never certified, through the API or sshca sign, as user or host keys")
    func caKeyAsSubject() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let host = try await server.token(role: "host", name: "web-01.example.com")
            let engineer = try await server.token(role: "engineer", name: "dave")
            for file in ["user_ca.pub", "host_ca.pub"] {
                let line = try readText(server.home.child(file)).trimmingCharacters(in: .whitespacesAndNewlines)
                for (token, type) in [(engineer, "user"), (host, "host")] {
                    let reply = try await server.requestCertificate("{\"publicKey\":\"\(line)\",\"type\":\"\(type)\"}",
                                                                    authorization: "Bearer \(token)")
                    #expect(reply.status == 400 && (errorFields(reply.body).message ?? "").contains("CA's own keys"),
                            "\(file) as a \(type) key: \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
                }
                for extra in [[], ["--host"]] {
                    let output = dir.child("out-\(file)-\(extra.count)-cert.pub")
                    let sign = try await server.sshca(["sign", "--key-id", "x", "--principals", "x", "--output", output.path]
                                                      + extra + [server.home.child(file).path])
                    #expect(!sign.succeeded && sign.stderrText.contains("CA's own keys"), "sshca sign \(extra) \(file): \(sign)")
                    #expect(!fileExists(output))
                }
            }
            let listed = try checked(try await server.sshca(["list", "--json"])).stdoutText
            let issued = try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [Any]
            #expect(issued?.count == 0, "something was issued: \(listed)")
        }
    }

    @Test("revoking a CA key as a plain publicKey is refused (it is --ca-key-compromised's act), and the KRL does not change")
    func caKeyRevokedAsPlainKey() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let security = try await server.token(role: "security", name: "sec")
            let before = try Data(contentsOf: server.home.child("revoked.krl"))
            for file in ["user_ca.pub", "host_ca.pub"] {
                let line = try readText(server.home.child(file)).trimmingCharacters(in: .whitespacesAndNewlines)
                let reply = try await server.http("POST", "/v1/revocations", json: "{\"publicKey\":\"\(line)\",\"reason\":\"oops\"}",
                                                  headers: ["Authorization": "Bearer \(security)"])
                let message = errorFields(reply.body).message ?? ""
                #expect(reply.status == 400 && message.contains("--ca-key-compromised"), "\(file): \(reply.status) \(message)")
                let cli = try await server.sshca(["revoke", "--key", server.home.child(file).path, "--reason", "oops"])
                #expect(!cli.succeeded && cli.stderrText.contains("--ca-key-compromised"), "\(cli)")
            }
            #expect(try Data(contentsOf: server.home.child("revoked.krl")) == before, "the KRL was rewritten")
            let krl = try await runProcess("ssh-keygen", ["-Q", "-f", server.home.child("revoked.krl").path, server.home.child("user_ca.pub").path])
            #expect(krl.succeeded, "the user CA key is in the KRL: \(krl)")
            let health = try await server.http("GET", "/healthz")
            #expect(health.status == 200)
        }
    }

    @Test("after --ca-key-compromised, sshca sign, host cert and the service refuse to sign with that CA key, naming the revocation and the way out")
    func revokedCAKeySignsNothing() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let engineer = try await server.token(role: "engineer", name: "dave")
            let host = try await server.token(role: "host", name: "web-01.example.com")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let hostKey = try await SSHKeygen.generate(.ed25519, at: dir.child("h"), comment: "h")
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)").status == 201)
            _ = try checked(try await server.sshca(["revoke", "--ca-key-compromised", "--reason", "key copied off the CA"]))
            _ = try checked(try await server.sshca(["revoke", "--ca-key-compromised", "--host", "--reason", "key copied off the CA"]))

            let api = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            let message = errorFields(api.body).message ?? ""
            #expect(api.status == 403 && message.contains("was revoked (revocation #") && message.contains("sshca init"),
                    "the service signed with the revoked CA key: \(api.status) \(message)")
            let hostAPI = try await server.requestCertificate(try publicKeyJSON(hostKey, extra: ",\"type\":\"host\""), authorization: "Bearer \(host)")
            #expect(hostAPI.status == 403, "host certificate from the revoked host CA: \(hostAPI.status)")
            let sign = try await server.sshca(["sign", "--key-id", "x", "--principals", "x", key.publicKey.path])
            #expect(!sign.succeeded && sign.stderrText.contains("sshca init") && sign.stderrText.contains("host setup"), "\(sign)")
            let hostSign = try await server.sshca(["sign", "--host", "--key-id", "h", "--principals", "h.example.com", hostKey.publicKey.path])
            #expect(!hostSign.succeeded && hostSign.stderrText.contains("was revoked"), "\(hostSign)")
            let listed = try checked(try await server.sshca(["list", "--json"])).stdoutText
            let issued = try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [Any]
            #expect(issued?.count == 1, "more than the first certificate was issued: \(listed)")
        }
    }

    @Test("a refusal's audit entry is bounded: 60 KB principals do not put 60 KB into the ledger")
    func refusalsAreBounded() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let engineer = try await server.token(role: "engineer", name: "dave")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let line = try readText(key.publicKey).trimmingCharacters(in: .whitespacesAndNewlines)
            // Many long principals, and one principal of 60 KB.
            let many = (0..<50).map { "\"p\($0)-" + String(repeating: "x", count: 1000) + "\"" }.joined(separator: ",")
            let one = "\"" + String(repeating: "y", count: 60_000) + "\""
            let bodies = [dir.child("many.json"), dir.child("one.json")]
            try writeText("{\"publicKey\":\"\(line)\",\"principals\":[\(many)]}", to: bodies[0])
            try writeText("{\"publicKey\":\"\(line)\",\"principals\":[\(one)]}", to: bodies[1])
            let ledger = server.home.child("ledger.sqlite").path
            func auditBytes() async throws -> Int {
                let r = try checked(try await runProcess("sqlite3", [ledger, "SELECT COALESCE(SUM(LENGTH(details) + LENGTH(actor)), 0) FROM audit"]))
                return Int(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            }
            let before = try await auditBytes()
            for i in 0..<6 {
                let reply = try await server.http("POST", "/v1/certificates", headers: ["Authorization": "Bearer \(engineer)"], bodyFile: bodies[i % 2])
                #expect(reply.status == 403 || reply.status == 400, "\(reply.status)")
            }
            let grown = try await auditBytes() - before
            #expect(grown > 0 && grown < 6 * 1024, "6 refusals added \(grown) bytes of audit text")
        }
    }
}

@Suite("service: logins behind one address")
struct SharedAddressLoginTests {
    @Test("120 key logins in a row from one address (everyone behind one NAT or proxy) all succeed")
    func manyLoginsOneAddress() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let identity = try await SSHKeygen.generate(.ed25519, at: dir.child("erin"), comment: "erin")
            _ = try checked(try await server.sshca(["user", "add", "erin", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let subject = try await SSHKeygen.generate(.ed25519, at: dir.child("subject"), comment: "subject")
            let body = try publicKeyJSON(subject)
            for i in 0..<120 {
                let authorization = try await server.signedChallenge(identity: "erin", key: identity.privateKey, for: body, in: dir)
                let reply = try await server.requestCertificate(body, authorization: authorization)
                #expect(reply.status == 201, "login \(i): \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
                if reply.status != 201 { return }
            }
        }
    }
}
