import Common
import Foundation
import Testing
import TestSupport
import Authority
import Ledger

/// Listings come in pages (the service answers at most 1000 certificates unless asked); the
/// client follows `next` so a listing through the service is as complete as a local one.
@Suite("service: listing in pages")
struct ListingTests {
    @Test("list --ca-url follows the pages: 2,100 certificates, each once and in order; --limit and --after cut it as locally")
    func pages() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let security = try await server.token(role: "security", name: "sec")
            // Straight into the server's ledger through the library (as `sshca sign` would).
            let authority = try CertificateAuthority(home: CAHome(path: server.home.path))
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let publicKey = try KeyFiles.readPublicKey(key.publicKey.path).key
            for i in 1...2100 {
                _ = try await authority.issue(CertificateRequest(publicKey: publicKey, keyID: "bulk-\(i)", principals: ["bulk"]),
                                        requestedBy: Requester(name: "test", channel: "test"), passphrase: .none)
            }
            func serials(_ result: ProcessResult) throws -> [Int] {
                ((try JSONSerialization.jsonObject(with: try checked(result).stdout) as? [[String: Any]]) ?? []).compactMap { $0["serial"] as? Int }
            }
            func remote(_ extra: [String]) async throws -> [Int] {
                try serials(try await SSHCA.run(["list", "--ca-url", server.url, "--json"] + extra, environment: ["SSHCA_TOKEN": security]))
            }
            func local(_ extra: [String]) async throws -> [Int] { try serials(try await server.sshca(["list", "--json"] + extra)) }
            for extra in [[], ["--limit", "1500"], ["--after", "2000"], ["--after", "999", "--limit", "1200"], ["--revoked"]] {
                let expected: [Int] = switch extra {
                case []: Array(1...2100)
                case ["--limit", "1500"]: Array(1...1500)
                case ["--after", "2000"]: Array(2001...2100)
                case ["--after", "999", "--limit", "1200"]: Array(1000...2100)
                default: []
                }
                #expect(try await remote(extra) == expected, "list --ca-url \(extra)")
                #expect(try await local(extra) == expected, "list \(extra)")
            }
            // The raw page: 1000 by default, and `next` names its last serial.
            let page = try await server.http("GET", "/v1/certificates", headers: ["Authorization": "Bearer \(security)"])
            let body = decodeJSON(page.body)
            #expect((body["certificates"] as? [Any])?.count == 1000 && (body["next"] as? Int) == 1000, "\(body["next"] ?? "no next")")
        }
    }
}
