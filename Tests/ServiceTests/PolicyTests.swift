import Common
import Foundation
import Testing
import TestSupport

/// The issuance policy as the service applies it: each refusal is a 403 naming the rule, and
/// nothing is issued. Requests go over HTTP to a real `sshca serve`.
@Suite("service: policy")
struct PolicyTests {
    @Test("a role gets its own principals by default; root, other users' names and over-long validity are refused by the rule that says so")
    func principalsAndValidity() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "bob")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("bob"), comment: "bob")

            let (status, body) = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            #expect(status == 201, "\(String(decoding: body, as: UTF8.self))")
            let issued = decodeJSON(body)
            #expect(issued["principals"] as? [String] == ["bob"])
            let validAfter = issued["validAfter"] as? Int ?? 0, validBefore = issued["validBefore"] as? Int ?? 0
            #expect(validBefore - validAfter == 16 * 3600 + 300, "default validity is 16h plus the 5 min backdate: \(issued)")
            // The certificate ssh-keygen reads is the one described.
            let certificateFile = dir.child("bob-cert.pub")
            try writeText((issued["certificate"] as? String ?? "") + "\n", to: certificateFile)
            let listed = try await runProcess("ssh-keygen", ["-L", "-f", certificateFile.path])
            #expect(listed.succeeded && listed.stdoutText.contains("Principals: \n                bob\n"), "\(listed)")

            for (extra, rule) in [(",\"principals\":[\"root\"]", "role.engineer.principals"),
                                  (",\"principals\":[\"bob\",\"alice\"]", "role.engineer.principals"),
                                  (",\"validity\":\"48h\"", "role.engineer.max_validity"),
                                  (",\"type\":\"host\",\"principals\":[\"bob\"]", "role.engineer.host_certificates")] {
                let (status, body) = try await server.requestCertificate(try publicKeyJSON(key, extra: extra), authorization: "Bearer \(token)")
                let error = errorFields(body)
                #expect(status == 403 && error.code == "policy" && error.rule == rule,
                        "\(extra): \(status) \(String(decoding: body, as: UTF8.self))")
            }
            let shorter = try await server.requestCertificate(try publicKeyJSON(key, extra: ",\"validity\":\"2h\""), authorization: "Bearer \(token)")
            #expect(shorter.status == 201)
            let listing = try checked(try await server.sshca(["list", "--json"]))
            let all = try JSONSerialization.jsonObject(with: listing.stdout) as? [[String: Any]] ?? []
            #expect(all.count == 2, "only the two allowed requests were issued: \(listing.stdoutText)")
            let audit = try checked(try await server.sshca(["audit", "list"]))
            #expect(audit.stdoutText.contains("rule=role.engineer.principals"), "refusals are audited:\n\(audit.stdoutText)")
        }
    }

    @Test("host certificates only for host roles; a host token certifies only its own name")
    func hostRoles() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let hostToken = try await server.token(role: "host", name: "web-01.example.com")
            let hostKey = try await SSHKeygen.generate(.ed25519, at: dir.child("ssh_host_ed25519_key"), comment: "host")

            let ok = try await server.requestCertificate(try publicKeyJSON(hostKey, extra: ",\"type\":\"host\""), authorization: "Bearer \(hostToken)")
            #expect(ok.status == 201, "\(String(decoding: ok.body, as: UTF8.self))")
            #expect(decodeJSON(ok.body)["type"] as? String == "host")
            #expect(decodeJSON(ok.body)["principals"] as? [String] == ["web-01.example.com"])
            let other = try await server.requestCertificate(try publicKeyJSON(hostKey, extra: ",\"type\":\"host\",\"principals\":[\"db-01.example.com\"]"),
                                                            authorization: "Bearer \(hostToken)")
            #expect(other.status == 403 && errorFields(other.body).rule == "role.host.principals")
            let user = try await server.requestCertificate(try publicKeyJSON(hostKey), authorization: "Bearer \(hostToken)")
            #expect(user.status == 403 && errorFields(user.body).rule == "role.host.user_certificates")
            // The host certificate is signed by the host CA, which ssh-keygen names.
            let certificateFile = dir.child("host-cert.pub")
            try writeIssuedCertificate(ok.body, to: certificateFile)
            let hostCA = try checked(try await server.sshca(["ca-key", "--host"]))
            let hostFingerprint = try checked(try await runProcess("ssh-keygen", ["-l", "-f", "-"], stdin: hostCA.stdout)).stdoutText.split(separator: " ")[1]
            let listed = try checked(try await runProcess("ssh-keygen", ["-L", "-f", certificateFile.path]))
            #expect(listed.stdoutText.contains("host certificate") && listed.stdoutText.contains(String(hostFingerprint)), "\(listed)")
        }
    }

    @Test("a disabled user, a rekeyed user's old key and a revoked identity key get nothing; the new key works")
    func identityLifecycle() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let old = try await SSHKeygen.generate(.ed25519, at: dir.child("old"), comment: "old")
            let new = try await SSHKeygen.generate(.ecdsa256, at: dir.child("new"), comment: "new")
            let subject = try await SSHKeygen.generate(.ed25519, at: dir.child("subject"), comment: "subject")
            _ = try checked(try await server.sshca(["user", "add", "carol", "--role", "engineer", "--identity-key", old.publicKey.path]))

            func attempt(_ key: KeyPair) async throws -> (status: Int, body: Data) {
                let body = try publicKeyJSON(subject)
                let authorization = try await server.signedChallenge(identity: "carol", key: key.privateKey, for: body, in: dir)
                return try await server.requestCertificate(body, authorization: authorization)
            }
            #expect(try await attempt(old).status == 201)

            _ = try checked(try await server.sshca(["user", "disable", "carol"]))
            let disabled = try await attempt(old)
            // The answer does not say why (that would tell strangers who is enrolled); the audit log does.
            #expect(disabled.status == 401 && (errorFields(disabled.body).message ?? "").contains("cannot sign in"), "\(String(decoding: disabled.body, as: UTF8.self))")
            #expect(!(errorFields(disabled.body).message ?? "").contains("disabled"))
            _ = try checked(try await server.sshca(["user", "enable", "carol"]))

            _ = try checked(try await server.sshca(["user", "rekey", "carol", "--identity-key", new.publicKey.path]))
            let oldKey = try await attempt(old)
            #expect(oldKey.status == 401 && (errorFields(oldKey.body).message ?? "").contains("cannot sign in"), "\(String(decoding: oldKey.body, as: UTF8.self))")
            #expect(try await attempt(new).status == 201, "the new (ECDSA) identity key works")

            _ = try checked(try await server.sshca(["revoke", "--key", new.publicKey.path, "--reason", "token lost"]))
            let revoked = try await attempt(new)
            #expect(revoked.status == 401 && !(errorFields(revoked.body).message ?? "").contains("token lost"), "\(String(decoding: revoked.body, as: UTF8.self))")

            let audit = try checked(try await server.sshca(["audit", "list"]))
            #expect(audit.stdoutText.components(separatedBy: "auth-failed").count - 1 == 3, "three failures audited:\n\(audit.stdoutText)")
            for detail in ["is disabled", "not by carol's enrolled key", "is revoked: token lost"] {
                #expect(audit.stdoutText.contains(detail), "the audit log does not say why: \(detail)\n\(audit.stdoutText)")
            }
        }
    }
}
