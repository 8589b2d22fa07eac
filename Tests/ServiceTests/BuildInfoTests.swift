import Common
import Foundation
import Testing
import TestSupport

/// An operator can tell which sshca runs: `--version` and /metrics name the commit the build
/// scripts stamped in; the unauthenticated /healthz says nothing of it.
@Suite("build info")
struct BuildInfoTests {
    /// What the build was given: scripts/test exports what it stamped; otherwise the stamp file
    /// the last stamped build left (a plain `swift build` compiles it in too), else nothing.
    static var expectedCommit: String {
        if let exported = ProcessInfo.processInfo.environment["SSHCA_BUILD_COMMIT"] { return exported }
        guard let stamp = try? readText(packageRoot.child("Sources/CBuildStamp/stamp.h")),
              let open = stamp.firstIndex(of: "\""), let close = stamp.lastIndex(of: "\""), open < close else { return "unknown" }
        return String(stamp[stamp.index(after: open)..<close])
    }

    @Test("sshca --version and the sshca_build_info metric name the stamped commit; /healthz does not")
    func versionAndMetric() async throws {
        let commit = Self.expectedCommit
        let version = try await SSHCA.run(["--version"])
        #expect(version.succeeded && version.stdoutText == "0.1.0 (commit \(commit))\n", "\(version)")
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let metrics = try await server.http("GET", "/metrics")
            let text = String(decoding: metrics.body, as: UTF8.self)
            #expect(text.contains("sshca_build_info{version=\"0.1.0\",commit=\"\(commit)\"} 1"), "\(text.prefix(400))")
            // The ledger's durability as its writing connection has it (the bench prints this).
            #expect(text.contains("sshca_ledger_durability_info{backend=\"sqlite\",journal_mode=\"wal\",synchronous=\"full\"} 1"), "\(text)")
            let health = try await server.http("GET", "/healthz")
            let healthText = String(decoding: health.body, as: UTF8.self)
            #expect(health.status == 200 && !healthText.contains(commit) && !healthText.contains("0.1.0"), "\(healthText)")
        }
    }
}
