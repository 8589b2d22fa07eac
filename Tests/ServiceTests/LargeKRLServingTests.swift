import Authority
import Foundation
import LedgerSQLite
import SSHFormat
import Testing
import TestSupport

/// A CA that has revoked many scattered serials publishes a KRL of megabytes; the service must
/// serve it whole, like the file it wrote.
@Suite("service: a KRL over a mebibyte")
struct LargeKRLServingTests {
    @Test("160,000 scattered revoked serials (a KRL of about 1.3 MB): GET /v1/krl serves it byte for byte with its ETag, and 304 for that ETag")
    func servesLargeKRL() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"), configure: { home in
                let ca = CAHome(path: home.path)
                let serials = (0..<160_000).map { UInt64($0) * 1000 + 1 }
                try ca.openLedger().revokeSerialsBulk(serials, caKey: try ca.publicKey(.user), reason: "test", by: "test", now: UInt64(Date().timeIntervalSince1970))
            })
            defer { server.stop() }
            let file = try Data(contentsOf: server.home.child("revoked.krl"))
            #expect(file.count > 1 << 20, "the KRL is only \(file.count) bytes")
            let served = try await server.http("GET", "/v1/krl")
            #expect(served.status == 200, "\(served.status) \(String(decoding: served.body.prefix(300), as: UTF8.self))")
            // A Bool, not the two Data: swift-testing diffs collections it is given, and a diff of
            // megabytes takes minutes.
            let same = served.body == file
            #expect(same, "served \(served.body.count) bytes, the file has \(file.count)")
            let head = try await runProcess("curl", ["-sS", "-D", "-", "-o", "/dev/null", server.url + "/v1/krl"])
            let etag = try #require(head.stdoutText.split(separator: "\r\n").first { $0.lowercased().hasPrefix("etag:") }?.dropFirst(5)
                .trimmingCharacters(in: .whitespaces))
            let again = try await server.http("GET", "/v1/krl", headers: ["If-None-Match": etag])
            #expect(again.status == 304, "\(again.status)")
        }
    }
}
