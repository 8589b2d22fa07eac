import Foundation
import Testing
import TestSupport
import SSHFormat

/// Revoking what is already revoked changes nothing: not the ledger, not the KRL's version.
@Suite("revoking again")
struct RevocationRepeatTests {
    static func krlVersion(_ file: URL) throws -> UInt64 {
        try KRL.parse(Array(try Data(contentsOf: file))).krl.version
    }

    @Test("a revocation repeated through the API and on the CA home keeps the KRL version and bytes; the CLI says so and says how servers get it")
    func repeatKeepsTheVersion() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let security = try await server.token(role: "security", name: "sec")
            let json = "{\"keyId\":\"lost-laptop\",\"reason\":\"stolen\"}"
            let first = try await server.http("POST", "/v1/revocations", json: json, headers: ["Authorization": "Bearer \(security)"])
            let second = try await server.http("POST", "/v1/revocations", json: json, headers: ["Authorization": "Bearer \(security)"])
            #expect(first.status == 201 || first.status == 200, "\(first.status) \(String(decoding: first.body, as: UTF8.self))")
            let a = try JSONSerialization.jsonObject(with: first.body) as? [String: Any]
            let b = try JSONSerialization.jsonObject(with: second.body) as? [String: Any]
            #expect(b?["isNew"] as? Bool == false)
            #expect(a?["krlVersion"] as? Int == b?["krlVersion"] as? Int, "a repeated revocation raised the KRL version: \(String(describing: a)) then \(String(describing: b))")
            let krl = server.home.child("revoked.krl")
            let before = try Data(contentsOf: krl)
            let again = try await server.sshca(["revoke", "--key-id", "lost-laptop", "--reason", "stolen"])
            #expect(again.succeeded && again.stdoutText.contains("Nothing changed") && again.stdoutText.contains("stays at version"), "\(again)")
            #expect(again.stdoutText.contains("krl-sync") && !again.stdoutText.contains("copy it to your servers"), "\(again)")
            #expect(try Data(contentsOf: krl) == before, "the KRL file was rewritten for a revocation it already held")
            // Something new still makes a new version.
            let versionBefore = try Self.krlVersion(krl)
            let fresh = try await server.sshca(["revoke", "--key-id", "other-laptop", "--reason", "stolen"])
            #expect(fresh.succeeded && fresh.stdoutText.contains("Published"), "\(fresh)")
            #expect(try Self.krlVersion(krl) > versionBefore)
        }
    }
}
