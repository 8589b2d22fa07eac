import Foundation
import Testing
import TestSupport

/// krl-sync against a service that lies, and against itself (issue 13, items 5 and 6).
@Suite("host krl-sync: lying services and concurrent runs")
struct KRLSyncSafetyTests {
    @Test("an unsolicited 304 Not Modified (no ETag was sent) is refused: no success, nothing installed")
    func unsolicited304() async throws {
        try await withTreeDirectory("krl304") { dir in
            let ca = try await CAFixture.create(in: dir)
            // A service that presents the real CA's public key (anyone can) and answers every
            // KRL request with 304.
            let port = try findFreePort()
            let script = dir.child("liar.py")
            try writeText("""
            import http.server, sys
            key = open(sys.argv[2], "rb").read()
            class Liar(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    if self.path.startswith("/v1/ca/"):
                        self.send_response(200); self.send_header("Content-Length", str(len(key))); self.end_headers(); self.wfile.write(key)
                    else:
                        self.send_response(304); self.send_header("ETag", '"' + "0" * 32 + '"'); self.end_headers()
                def log_message(self, *args): pass
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Liar).serve_forever()
            """, to: script)
            let liar = try BackgroundProcess("python3", [script.path, String(port), ca.userCAPublicKey.path],
                                             stdoutFile: dir.child("liar.out"), stderrFile: dir.child("liar.err"))
            defer { liar.stop() }
            for _ in 0..<100 where !canConnect(port: port) { try await Task.sleep(for: .milliseconds(50)) }
            let target = dir.child("installed.krl")
            let sync = try await SSHCA.run(["host", "krl-sync", "--from", "http://127.0.0.1:\(port)", "--to", target.path,
                                            "--ca-key", ca.userCAPublicKey.path])
            #expect(sync.exitCode == 65 && sync.stderrText.contains("304") && !sync.stdoutText.contains("already"), "\(sync)")
            #expect(!fileExists(target))
        }
    }

    @Test("two krl-sync runs at once (the timer and a manual run) never end with the older KRL installed: 30 rounds")
    func concurrentRuns() async throws {
        try await withTreeDirectory("krlrace") { dir in
            let ca = try await CAFixture.create(in: dir)
            var versions: [URL] = []
            for i in 0..<3 {
                let file = dir.child("v\(i).krl")
                try await ca.writeKRL(to: file)
                try? FileManager.default.removeItem(atPath: file.path + ".sig")
                versions.append(file)
            }
            let newest = try Data(contentsOf: versions[2])
            var older = 0
            for round in 0..<30 {
                let target = dir.child("round-\(round)").child("installed.krl")
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: versions[0], to: target)
                let newerPath = versions[2].path, olderPath = versions[1].path, targetPath = target.path
                async let newer = SSHCA.run(["host", "krl-sync", "--from", newerPath, "--to", targetPath])
                async let old = SSHCA.run(["host", "krl-sync", "--from", olderPath, "--to", targetPath])
                let results = try await (newer, old)
                #expect(results.0.succeeded, "\(results.0)")
                // The older one is installed first, or refused as a rollback: either is right.
                #expect(results.1.succeeded || results.1.stderrText.contains("older"), "\(results.1)")
                if try Data(contentsOf: target) != newest { older += 1 }
            }
            #expect(older == 0, "\(older) of 30 rounds ended with the older KRL installed")
        }
    }
}
