import Common
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `sshca configure` keeps the CA's URL, pin and the user's name, so the daily command is
/// `sshca login`; renewal by timer (`--renew-before`, `--unattended`) happens only when no
/// person is needed.
@Suite("client configuration and renewal")
struct ClientConfigurationTests {
    static func serial(_ home: URL) async throws -> UInt64 {
        try await SSHKeygen.listCertificate(home.child(".ssh").child("sshca_ed25519-cert.pub")).serial
    }

    @Test("configure refuses a pin the service does not match, writes 0600 config, adds the host CA to known_hosts once; then a bare `sshca login` is pinned; flags and $SSHCA_* override; unpinned use warns")
    func configureThenLogin() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let home = dir.child("home")
            let identity = try await server.enroll("ivy", home: home)
            let userCA = try await SSHKeygen.fingerprint(server.home.child("user_ca.pub"))
            let hostCA = try await SSHKeygen.fingerprint(server.home.child("host_ca.pub"))
            let env: [String: String?] = ["HOME": home.path]
            let config = home.child(".config/sshca/client.toml")

            let wrong = try await SSHCA.run(["configure", "--ca-url", server.url, "--ca-fingerprint", hostCA, "--user", "ivy"], environment: env)
            #expect(!wrong.succeeded && wrong.stderrText.contains(userCA) && wrong.stderrText.contains("refusing"), "\(wrong)")
            #expect(!FileManager.default.fileExists(atPath: config.path), "a refused pin was written")

            let configure = ["configure", "--ca-url", server.url, "--ca-fingerprint", userCA, "--user", "ivy",
                             "--identity", identity.privateKey.path, "--known-hosts", "*.example.test,10.9.*"]
            let first = try await SSHCA.run(configure, environment: env)
            #expect(first.succeeded && first.stdoutText.contains("Wrote \(config.path)") && first.stdoutText.contains("Added the host CA"), "\(first)")
            let attributes = try FileManager.default.attributesOfItem(atPath: config.path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let again = try await SSHCA.run(configure, environment: env)
            #expect(again.succeeded && again.stdoutText.contains("already"), "\(again)")
            let knownHosts = try readText(home.child(".ssh/known_hosts"))
            let hostLine = try readText(server.home.child("host_ca.pub")).split(separator: " ").prefix(2).joined(separator: " ")
            #expect(knownHosts.components(separatedBy: "@cert-authority *.example.test,10.9.* \(hostLine)").count == 2, "not exactly once: \(knownHosts)")
            // ssh-keygen reads the line back as a CA for the pattern.
            let found = try await runProcess("ssh-keygen", ["-F", "web.example.test", "-f", home.child(".ssh/known_hosts").path])
            #expect(found.succeeded && found.stdoutText.contains("@cert-authority"), "\(found)")

            let login = try await SSHCA.run(["login"], environment: env)
            #expect(login.succeeded && login.stdoutText.contains("Principals: ivy") && !login.stderrText.contains("no CA key is pinned"), "\(login)")
            let show = try await SSHCA.run(["configure", "--show"], environment: env)
            #expect(show.succeeded && show.stdoutText.contains("ca_fingerprints = [\"\(userCA)\"]"), "\(show)")

            // The environment beats the file, and the pin still bites.
            let overridden = try await SSHCA.run(["login", "--force"], environment: env.merging(["SSHCA_CA_FINGERPRINT": hostCA]) { $1 })
            #expect(!overridden.succeeded && overridden.stderrText.contains("refusing to proceed"), "\(overridden)")
            // The file's pin belongs to its URL: another URL (here the same service by another
            // name) is not pinned by it, and says so.
            let otherURL = server.url.replacingOccurrences(of: "127.0.0.1", with: "localhost")
            let unpinned = try await SSHCA.run(["login", "--force", "--ca-url", otherURL], environment: env)
            #expect(unpinned.succeeded && unpinned.stderrText.contains("no CA key is pinned for \(otherURL)"), "\(unpinned)")
            // XDG_CONFIG_HOME moves the file.
            let xdg = dir.child("xdg")
            let moved = try await SSHCA.run(configure.dropLast(2).map { $0 }, environment: env.merging(["XDG_CONFIG_HOME": xdg.path]) { $1 })
            #expect(moved.succeeded && FileManager.default.fileExists(atPath: xdg.child("sshca/client.toml").path), "\(moved)")
            // A configured laptop still revokes on a CA home it names, not through the service.
            let local = try await server.sshca(["revoke", "--key-id", "nobody", "--reason", "test"], environment: env)
            #expect(local.succeeded && local.stdoutText.contains("Published"), "\(local)")
            // known-hosts from the service: the pinned service's host CA, and nothing when the pin fails.
            let line = try await SSHCA.run(["known-hosts", "--ca-url", server.url, "--ca-fingerprint", userCA, "--hosts", "*.example.test"])
            #expect(line.succeeded && line.stdoutText == "@cert-authority *.example.test \(hostLine) sshca-host-ca\n", "\(line)")
            let badPin = try await SSHCA.run(["known-hosts", "--ca-url", server.url, "--ca-fingerprint", hostCA, "--hosts", "*.example.test"])
            #expect(!badPin.succeeded && badPin.stdoutText.isEmpty, "\(badPin)")
            // A broken file is an error naming the line, not ignored.
            try writeText("ca_url = \"\(server.url)\"\nca_fingerprint = \"x\"\n", to: config)
            let broken = try await SSHCA.run(["login"], environment: env)
            #expect(!broken.succeeded && broken.stderrText.contains("client.toml:2"), "\(broken)")
        }
    }

    @Test("login --renew-before keeps a certificate with more left and renews one with less; --unattended stays silent when kept and does nothing when the identity key is not in ssh-agent")
    func renewal() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir.child("run"))
            defer { server.stop() }
            let home = dir.child("home")
            let identity = try await server.enroll("ivy", home: home)
            let userCA = try await SSHKeygen.fingerprint(server.home.child("user_ca.pub"))
            let agent = try await SSHAgent.start(in: dir.child("agent"))
            defer { agent.stop() }
            let env: [String: String?] = ["HOME": home.path].merging(agent.environment) { $1 }
            try checked(try await SSHCA.run(["configure", "--ca-url", server.url, "--ca-fingerprint", userCA, "--user", "ivy",
                                             "--identity", identity.publicKey.path], environment: env))
            // The identity is a .pub whose key is not in the agent yet: a timer run does nothing.
            let skipped = try await SSHCA.run(["login", "--renew-before", "2h", "--unattended"], environment: env)
            #expect(skipped.succeeded && skipped.stderrText.contains("needs you") && skipped.stdoutText.isEmpty, "\(skipped)")
            #expect(!FileManager.default.fileExists(atPath: home.child(".ssh/sshca_ed25519-cert.pub").path))
            try checked(try await agent.sshAdd([identity.privateKey.path]))
            let issued = try await SSHCA.run(["login", "--renew-before", "2h", "--unattended"], environment: env)
            #expect(issued.succeeded && issued.stdoutText.contains("Certificate issued"), "\(issued)")
            let first = try await Self.serial(home)
            // 16 h left (the engineer role's default): kept at 2 h, silently when unattended.
            let kept = try await SSHCA.run(["login", "--renew-before", "2h", "--unattended"], environment: env)
            #expect(kept.succeeded && kept.stdoutText.isEmpty && kept.stderrText.isEmpty, "\(kept)")
            #expect(try await Self.serial(home) == first)
            // Less than 20 h left: renewed.
            let renewed = try await SSHCA.run(["login", "--renew-before", "20h", "--unattended"], environment: env)
            #expect(renewed.succeeded && renewed.stdoutText.contains("Certificate issued"), "\(renewed)")
            #expect(try await Self.serial(home) != first)
            // The key leaves the agent: the next timer run renews nothing and says why.
            try checked(try await agent.sshAdd(["-D"]))
            let second = try await Self.serial(home)
            let none = try await SSHCA.run(["login", "--renew-before", "20h", "--unattended"], environment: env)
            #expect(none.succeeded && none.stderrText.contains("needs you"), "\(none)")
            #expect(try await Self.serial(home) == second)
        }
    }
}
