import Common
import Foundation
import Testing
import TestSupport

/// People and their certificates: every key id names the person, the credential and the
/// serial, so revoking a person never locks the name out for good (issue 12 item 11).
@Suite("service: people and key ids")
struct PersonTests {
    /// Issues through the API and returns the certificate file, its key id and serial.
    static func issue(_ server: CAServer, _ json: String, authorization: String, in dir: URL, name: String) async throws -> (file: URL, keyId: String, serial: UInt64) {
        let reply = try await server.requestCertificate(json, authorization: authorization)
        try #require(reply.status == 201, "\(name): \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
        let object = decodeJSON(reply.body)
        let file = dir.child("\(name)-cert.pub")
        try writeText((object["certificate"] as? String ?? "") + "\n", to: file)
        return (file, object["keyId"] as? String ?? "", (object["serial"] as? NSNumber)?.uint64Value ?? 0)
    }

    static func revoked(_ server: CAServer, _ certificate: URL, in dir: URL) async throws -> Bool {
        let krl = dir.child("served-\(UUID().uuidString).krl")
        try Data(try await server.http("GET", "/v1/krl").body).write(to: krl)
        return !(try await runProcess("ssh-keygen", ["-Q", "-f", krl.path, certificate.path])).succeeded
    }

    @Test("key ids are NAME:CREDENTIAL:SERIAL for keys, tokens and hosts; ssh-keygen -L shows them")
    func keyIDFormat() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let identity = try await SSHKeygen.generate(.ed25519, at: dir.child("alice-id"), comment: "alice")
            _ = try checked(try await server.sshca(["user", "add", "alice", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let ci = try await server.token(role: "engineer", name: "ci")
            let host = try await server.token(role: "host", name: "web-01.example.com")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let hostKey = try await SSHKeygen.generate(.ed25519, at: dir.child("h"), comment: "h")
            let a = try await Self.issue(server, try publicKeyJSON(key), authorization: try await server.signedChallenge(identity: "alice", key: identity.privateKey, for: try publicKeyJSON(key), in: dir), in: dir, name: "alice")
            let c = try await Self.issue(server, try publicKeyJSON(key), authorization: "Bearer \(ci)", in: dir, name: "ci")
            let h = try await Self.issue(server, try publicKeyJSON(hostKey, extra: ",\"type\":\"host\""), authorization: "Bearer \(host)", in: dir, name: "host")
            #expect(a.keyId == "alice:key:\(a.serial)" && c.keyId == "ci:token:\(c.serial)" && h.keyId == "web-01.example.com:token:\(h.serial)",
                    "\(a.keyId) \(c.keyId) \(h.keyId)")
            #expect(Set([a.serial, c.serial, h.serial]).count == 3)
            let listing = try await SSHKeygen.listCertificate(a.file)
            #expect(listing.keyID == "alice:key:\(a.serial)" && listing.serial == a.serial, "\(listing.raw)")
        }
    }

    @Test("revoke --user: every unexpired certificate of the person by serial, key disabled, tokens revoked; user enable gives access back and new certificates are not revoked")
    func revokeUserThenEnable() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let identity = try await SSHKeygen.generate(.ed25519, at: dir.child("alice-id"), comment: "alice")
            _ = try checked(try await server.sshca(["user", "add", "alice", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let aliceToken = try await server.token(role: "engineer", name: "alice")
            let bob = try await server.token(role: "engineer", name: "bob")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let login = { try await server.signedChallenge(identity: "alice", key: identity.privateKey, for: try publicKeyJSON(key), in: dir) }
            let first = try await Self.issue(server, try publicKeyJSON(key), authorization: try await login(), in: dir, name: "a1")
            let second = try await Self.issue(server, try publicKeyJSON(key), authorization: "Bearer \(aliceToken)", in: dir, name: "a2")
            let bobs = try await Self.issue(server, try publicKeyJSON(key), authorization: "Bearer \(bob)", in: dir, name: "b1")

            let revoke = try checked(try await server.sshca(["revoke", "--user", "alice", "--reason", "left the company"]))
            #expect(revoke.stdoutText.contains("2 certificate(s)") && revoke.stdoutText.contains("user enable alice"), "\(revoke)")
            let firstRevoked = try await Self.revoked(server, first.file, in: dir)
            let secondRevoked = try await Self.revoked(server, second.file, in: dir)
            let bobRevoked = try await Self.revoked(server, bobs.file, in: dir)
            #expect(firstRevoked && secondRevoked && !bobRevoked, "alice's: \(firstRevoked) \(secondRevoked); bob's: \(bobRevoked)")
            let users = try checked(try await server.sshca(["user", "list"])).stdoutText
            #expect(users.contains("alice") && users.contains("DISABLED"), "\(users)")
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: try await login()).status == 401)
            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(aliceToken)").status == 401)

            _ = try checked(try await server.sshca(["user", "enable", "alice"]))
            let back = try await Self.issue(server, try publicKeyJSON(key), authorization: try await login(), in: dir, name: "a3")
            #expect(back.keyId == "alice:key:\(back.serial)")
            let backRevoked = try await Self.revoked(server, back.file, in: dir)
            #expect(!backRevoked, "alice's new certificate is revoked: the name is locked out")
            // Through the API too (security staff), for a person with no enrolled key.
            let security = try await server.token(role: "security", name: "sec")
            let viaAPI = try await server.http("POST", "/v1/revocations", json: "{\"user\":\"bob\",\"reason\":\"left\"}", headers: ["Authorization": "Bearer \(security)"])
            #expect(viaAPI.status == 201 && decodeJSON(viaAPI.body)["certificatesAffected"] as? Int == 1, "\(String(decoding: viaAPI.body, as: UTF8.self))")
            #expect(try await Self.revoked(server, bobs.file, in: dir))
        }
    }

    @Test("a key-id revocation an older sshca made (bare name) stays in force for those certificates and does not refuse the person's new ones")
    func olderKeyIDRevocations() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            // What an older sshca issued through the service: key id = the bare name.
            let old = dir.child("old-cert.pub")
            _ = try checked(try await server.sshca(["sign", "--key-id", "carol", "--principals", "carol", "--output", old.path, key.publicKey.path]))
            _ = try checked(try await server.sshca(["revoke", "--key-id", "carol", "--reason", "left the company"]))
            #expect(try await Self.revoked(server, old, in: dir))
            let carol = try await server.token(role: "engineer", name: "carol")
            let fresh = try await Self.issue(server, try publicKeyJSON(key), authorization: "Bearer \(carol)", in: dir, name: "new")
            let freshRevoked = try await Self.revoked(server, fresh.file, in: dir)
            #expect(fresh.keyId.hasPrefix("carol:token:") && !freshRevoked, "\(fresh.keyId) revoked: \(freshRevoked)")
            let again = try await server.sshca(["sign", "--key-id", "carol", "--principals", "carol", "--output", dir.child("again-cert.pub").path, key.publicKey.path])
            #expect(!again.succeeded, "the revoked key id was issued again: \(again)")
        }
    }
}
