import Common
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

    @Test("a serial range is read by one rule through the API and on the CA home: the same texts revoke, the same are refused, and the KRL revokes exactly the range")
    func serialRangesOneRule() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let security = try await server.token(role: "security", name: "sec")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            for n in 1...4 {
                let sign = try await server.sshca(["sign", "--key-id", "c\(n)", "--principals", "alice", "--output", dir.child("c\(n)-cert.pub").path, key.publicKey.path])
                #expect(sign.succeeded, "\(sign)")
            }
            // Refused by both: a sign, doubled or dangling dashes, 0, a reversed range, a space, a
            // number past 2^64-1, a non-ASCII digit.
            // Serials 1-4 exist, so a text read loosely as one of them would revoke it.
            for text in ["+2", "2--3", "-2-3", "2-3-", "2-", "-2", "0", "0-3", "3-2", " 2", "2 ", "18446744073709551618", "\u{0662}", "", "1-2-3"] {
                let body = try JSONSerialization.data(withJSONObject: ["serials": text, "reason": "test"])
                let api = try await server.http("POST", "/v1/revocations", json: String(decoding: body, as: UTF8.self),
                                                headers: ["Authorization": "Bearer \(security)"])
                #expect(api.status == 400, "the service took serials \"\(text)\": \(api.status) \(String(decoding: api.body, as: UTF8.self))")
                let cli = try await server.sshca(["revoke", "--serial=\(text)", "--reason", "test"])
                // An empty value is a usage error (64) to the argument parser; the rest are bad values (65).
                #expect(cli.exitCode == (text.isEmpty ? 64 : 65), "sshca revoke took --serial \"\(text)\":\n\(cli)")
            }
            // Taken by both: a single serial and a range; each lands in the KRL as written.
            let api = try await server.http("POST", "/v1/revocations", json: "{\"serials\":\"1\",\"reason\":\"test\"}",
                                            headers: ["Authorization": "Bearer \(security)"])
            #expect(api.status == 201, "\(api.status) \(String(decoding: api.body, as: UTF8.self))")
            let cli = try await server.sshca(["revoke", "--serial", "3-4", "--reason", "test"])
            #expect(cli.succeeded, "\(cli)")
            let krl = try KRL.parse(Array(try Data(contentsOf: server.home.child("revoked.krl")))).krl
            let revoked = krl.certificates.flatMap { Array($0.serials.runs) }
            #expect(revoked == [1...1, 3...4], "the KRL revokes \(revoked)")
        }
    }
}
