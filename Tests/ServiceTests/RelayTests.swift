import Common
import Foundation
import Testing
import TestSupport

/// A service in the middle (issue 13, items 1 and 2), played by a small Python program on
/// loopback: it relays sshca login to the real CA but swaps in its own key, or asks the client
/// to sign a text of its choosing in another namespace. Neither gets anything signed it can use.
@Suite("client: relays and hostile services")
struct RelayTests {
    static let program = """
    import http.server, json, sys, urllib.request
    mode, port, upstream, swap_key, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    class Middle(http.server.BaseHTTPRequestHandler):
        def relay(self, method, body=None):
            request = urllib.request.Request(upstream + self.path, data=body, method=method)
            for name in ("Authorization", "Content-Type"):
                if self.headers.get(name): request.add_header(name, self.headers[name])
            try:
                with urllib.request.urlopen(request) as answer: status, data, ctype = answer.status, answer.read(), answer.headers.get("Content-Type", "")
            except urllib.error.HTTPError as error:
                status, data, ctype = error.code, error.read(), error.headers.get("Content-Type", "")
            self.send_response(status); self.send_header("Content-Type", ctype); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
        def do_GET(self): self.relay("GET")
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with open(log, "a") as f: f.write(f"POST {self.path} {self.headers.get('Authorization', '-')[:20]}\\n")
            if self.path == "/v1/challenge" and mode != "relay":
                identity = json.loads(body)["identity"]
                nonce = "I, %s, authorize the deploy of release 42" % identity if mode in ("text", "nonce") else "ab" * 24
                namespace = "file" if mode in ("text", "namespace") else "sshca"
                data = json.dumps({"identity": identity, "nonce": nonce, "namespace": namespace, "expiresAt": 4102444800}).encode()
                self.send_response(200); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
                return
            if self.path == "/v1/certificates" and mode == "relay":
                request = json.loads(body); request["publicKey"] = swap_key; body = json.dumps(request).encode()
            self.relay("POST", body)
        def log_message(self, *args): pass
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Middle).serve_forever()
    """

    static func middle(_ mode: String, server: CAServer, swapKey: String, in dir: URL) async throws -> (BackgroundProcess, String, URL) {
        let script = dir.child("middle.py"), log = dir.child("middle-\(mode).log")
        try writeText(Self.program, to: script)
        let port = try findFreePort()
        let process = try BackgroundProcess("python3", [script.path, mode, String(port), server.url, swapKey, log.path],
                                            stdoutFile: dir.child("middle.out"), stderrFile: dir.child("middle-\(mode).err"))
        for _ in 0..<100 where !canConnect(port: port) { try await Task.sleep(for: .milliseconds(50)) }
        return (process, "http://127.0.0.1:\(port)", log)
    }

    @Test("a relay that forwards the challenge to the real CA and swaps in its own key gets nothing: the signed message names the key, the service refuses")
    func relaySwapsKey() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let home = dir.child("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let identity = try await SSHKeygen.generate(.ed25519, at: home.child("identity"), comment: "erin")
            _ = try checked(try await server.sshca(["user", "add", "erin", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let attacker = try await SSHKeygen.generate(.ed25519, at: dir.child("attacker"), comment: "attacker")
            let attackerLine = try readText(attacker.publicKey).trimmingCharacters(in: .whitespacesAndNewlines)
            let caLine = try readText(server.home.child("user_ca.pub"))
            let fingerprint = String(try checked(try await runProcess("ssh-keygen", ["-l", "-f", "-"], stdin: Data(caLine.utf8))).stdoutText.split(separator: " ")[1])
            let (relay, url, _) = try await Self.middle("relay", server: server, swapKey: attackerLine, in: dir)
            defer { relay.stop() }
            let login = try await SSHCA.run(["login", "--ca-url", url, "--ca-fingerprint", fingerprint, "--user", "erin", "--identity", identity.privateKey.path],
                                            environment: ["HOME": home.path, "SSH_AUTH_SOCK": nil])
            #expect(!login.succeeded, "login through the relay succeeded:\n\(login)")
            let listed = try checked(try await server.sshca(["list", "--json"])).stdoutText
            #expect((try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [Any])?.count == 0, "the CA issued through the relay: \(listed)")
            let audit = try checked(try await server.sshca(["audit", "list"])).stdoutText
            #expect(audit.contains("auth-failed") && audit.contains("does not verify"), "\(audit)")
            // The same login straight to the CA works.
            let direct = try await SSHCA.run(["login", "--ca-url", server.url, "--ca-fingerprint", fingerprint, "--user", "erin", "--identity", identity.privateKey.path],
                                             environment: ["HOME": home.path, "SSH_AUTH_SOCK": nil])
            #expect(direct.succeeded, "\(direct)")
        }
    }

    @Test("a service that asks for a signature in another namespace, or over a text of its own, gets none: login refuses before signing")
    func hostileChallenges() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let home = dir.child("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let identity = try await SSHKeygen.generate(.ed25519, at: home.child("identity"), comment: "erin")
            for (mode, words) in [("text", "namespace \"file\""), ("namespace", "namespace \"file\""), ("nonce", "not an sshca nonce")] {
                let (middle, url, log) = try await Self.middle(mode, server: server, swapKey: "-", in: dir)
                defer { middle.stop() }
                let login = try await SSHCA.run(["login", "--ca-url", url, "--user", "erin", "--identity", identity.privateKey.path],
                                                environment: ["HOME": home.path, "SSH_AUTH_SOCK": nil])
                #expect(!login.succeeded, "\(mode): \(login)")
                #expect(login.stderrText.contains(words), "\(mode): \(login)")
                let posts = (try? readText(log)) ?? ""
                // Only the challenge was asked for: no signature went anywhere.
                #expect(posts.split(separator: "\n").allSatisfy { $0.hasPrefix("POST /v1/challenge") }, "\(mode): something was sent after the challenge:\n\(posts)")
                #expect(!fileExists(home.child(".ssh").child("sshca_ed25519")), "\(mode): login wrote a key")
            }
        }
    }
}
