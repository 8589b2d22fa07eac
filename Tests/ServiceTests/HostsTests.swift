import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// Servers introduce themselves when they sync the KRL; `sshca hosts` and GET /v1/hosts list
/// them and flag those behind.
@Suite("servers that sync the KRL")
struct HostsTests {
    static func hosts(_ server: CAServer, token: String) async throws -> (status: Int, list: [[String: Any]]) {
        let reply = try await server.http("GET", "/v1/hosts", headers: ["Authorization": "Bearer \(token)"])
        return (reply.status, (try? JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]]) ?? [])
    }

    @Test("krl-sync with a host token and without one: both listed with the KRL version and pin; a revocation makes them behind (exit 1) until they sync; a claim cannot take over a token's name; only security staff may list")
    func hostsAreListed() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let security = try await server.token(role: "security", name: "sec")
            let engineer = try await server.token(role: "engineer", name: "eng")
            let hostToken = try await server.token(role: "host", name: "web-01.example.test")
            let tokenFile = dir.child("host_token")
            try writeText(hostToken + "\n", to: tokenFile, mode: 0o600)
            let userCA = server.home.child("user_ca.pub")
            let pin = try await SSHKeygen.fingerprint(userCA)
            func sync(_ name: String, token: Bool) async throws -> ProcessResult {
                try await SSHCA.run(["host", "krl-sync", "--from", server.url, "--to", dir.child("\(name).krl").path, "--ca-key", userCA.path]
                                    + (token ? ["--token-file", tokenFile.path] : []))
            }
            // A server reports the version it has installed, and confirms a new one as soon as it
            // is installed: current after one sync.
            try checked(try await sync("a", token: true))
            try checked(try await sync("b", token: false))
            let version = try #require(KRL.headerVersion(Array(try Data(contentsOf: server.home.child("revoked.krl")))))
            var listed = try await Self.hosts(server, token: security)
            #expect(listed.status == 200 && listed.list.count == 2, "\(listed)")
            let web = listed.list.first { $0["name"] as? String == "web-01.example.test" }
            #expect(web?["identifiedBy"] as? String == "token:web-01.example.test" && web?["caFingerprint"] as? String == pin
                    && (web?["krlVersion"] as? Int).map(UInt64.init) == version && (web?["behind"] as? [String])?.isEmpty == true, "\(String(describing: web))")
            let claimed = listed.list.first { $0["identifiedBy"] as? String == "claimed" }
            var buffer = [CChar](repeating: 0, count: 256)
            _ = gethostname(&buffer, buffer.count - 1)
            #expect(claimed?["name"] as? String == String(cString: buffer), "the server without a token is listed by its host name: \(listed.list)")
            let local = try await server.sshca(["hosts"])
            #expect(local.exitCode == 0 && local.stdoutText.contains("web-01.example.test") && local.stdoutText.contains("current"), "\(local)")

            // A revocation: both are behind until they sync again.
            try checked(try await server.sshca(["revoke", "--key-id", "lost", "--reason", "test"]))
            let behind = try await server.sshca(["hosts", "--behind"])
            #expect(behind.exitCode == 1 && behind.stdoutText.contains("BEHIND") && behind.stdoutText.contains("web-01.example.test"), "\(behind)")
            // What a sync only fetched is not installed: a GET that says it holds the old version
            // leaves it behind; the sync that installs the new KRL makes it current at once.
            _ = try await server.http("GET", "/v1/krl", headers: ["Authorization": "Bearer \(hostToken)", "X-SSHCA-Host": "web-01.example.test",
                                                                "X-SSHCA-KRL-Version": String(version)])
            let fetched = try await server.sshca(["hosts", "--behind"])
            #expect(fetched.exitCode == 1 && fetched.stdoutText.contains("web-01.example.test"), "fetched is not installed: still behind until it says so: \(fetched)")
            try checked(try await sync("a", token: true))
            let after = try await server.sshca(["hosts", "--behind", "--json"])
            let stillBehind = (try JSONSerialization.jsonObject(with: after.stdout) as? [[String: Any]]) ?? []
            #expect(after.exitCode == 1 && stillBehind.count == 1 && stillBehind.first?["identifiedBy"] as? String == "claimed", "\(after)")

            // Claims: one cannot take over a token's name; a name with spaces is not recorded.
            _ = try await server.http("GET", "/v1/krl", headers: ["X-SSHCA-Host": "web-01.example.test", "X-SSHCA-CA-Key": "SHA256:forged"])
            _ = try await server.http("GET", "/v1/krl", headers: ["X-SSHCA-Host": "evil host"])
            listed = try await Self.hosts(server, token: security)
            #expect(listed.list.count == 2 && listed.list.contains { $0["identifiedBy"] as? String == "token:web-01.example.test" && $0["caFingerprint"] as? String == pin }, "\(listed.list)")
            // An engineer's token does not name a server; a claim from another address does not take over a claimed name.
            let engineerFetch = try await server.http("GET", "/v1/krl", headers: ["Authorization": "Bearer \(engineer)"])
            #expect(engineerFetch.status == 200)
            let claimedName = try #require(listed.list.first { $0["identifiedBy"] as? String == "claimed" }?["name"] as? String)
            _ = try await server.http("GET", "/v1/krl", headers: ["X-SSHCA-Host": claimedName, "X-SSHCA-KRL-Version": "999"], from: "127.0.0.2")
            listed = try await Self.hosts(server, token: security)
            #expect(listed.list.count == 2 && !listed.list.contains { ($0["krlVersion"] as? Int) == 999 }, "\(listed.list)")
            // Only security staff.
            #expect(try await Self.hosts(server, token: engineer).status == 403)
            #expect(try await server.http("GET", "/v1/hosts").status == 401)
        }
    }
}
