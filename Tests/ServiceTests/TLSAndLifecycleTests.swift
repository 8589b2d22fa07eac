import Common
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// TLS from configured files, plain HTTP only on loopback, SIGTERM, one log line per request.
@Suite("service: TLS and lifecycle")
struct TLSAndLifecycleTests {
    /// A self-signed certificate for 127.0.0.1, made by openssl.
    static func selfSigned(in dir: URL, name: String) async throws -> (certificate: URL, key: URL) {
        let certificate = dir.child("\(name).crt"), key = dir.child("\(name).key")
        try checked(try await runProcess("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", key.path, "-out", certificate.path,
        ]))
        return (certificate, key)
    }

    @Test("https from tls_certificate/tls_key: login trusts it through --ca-bundle, and refuses without it or with another certificate")
    func tls() async throws {
        try await withTemporaryDirectory { dir in
            let (certificate, key) = try await Self.selfSigned(in: dir, name: "server")
            let (otherCertificate, _) = try await Self.selfSigned(in: dir, name: "other")
            let server = try await CAServer.start(in: dir.child("run")) { home in
                let config = home.child("sshca.toml")
                let text = try readText(config).replacingOccurrences(
                    of: "# tls_certificate = \"tls.crt\"\n# tls_key = \"tls.key\"",
                    with: "tls_certificate = \"\(certificate.path)\"\ntls_key = \"\(key.path)\"")
                #expect(text.contains("tls_certificate = "), "the init config has no tls lines to switch on")
                try writeText(text, to: config)
            }
            defer { server.stop() }
            #expect(server.url.hasPrefix("https://127.0.0.1:"), "\(server.url)")
            let home = dir.child("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let identity = try await SSHKeygen.generate(.ed25519, at: home.child("id"), comment: "id")
            try checked(try await server.sshca(["user", "add", "gina", "--role", "engineer", "--identity-key", identity.publicKey.path]))

            let base = ["login", "--ca-url", server.url, "--user", "gina", "--identity", identity.privateKey.path]
            let untrusted = try await SSHCA.run(base, environment: ["HOME": home.path])
            #expect(!untrusted.succeeded && untrusted.stderrText.contains("TLS"), "\(untrusted)")
            let wrongPin = try await SSHCA.run(base + ["--ca-bundle", otherCertificate.path], environment: ["HOME": home.path])
            #expect(!wrongPin.succeeded, "\(wrongPin)")
            let trusted = try await SSHCA.run(base + ["--ca-bundle", certificate.path], environment: ["HOME": home.path])
            #expect(trusted.succeeded && trusted.stdoutText.contains("Principals: gina"), "\(trusted)\n\(server.log)")
            // curl agrees that it is TLS with that certificate.
            let curl = try await runProcess("curl", ["-sS", "--cacert", certificate.path, server.url + "/healthz"])
            #expect(curl.succeeded && curl.stdoutText.contains("\"status\":\"ok\""), "\(curl)")
        }
    }

    @Test("plain HTTP off loopback is refused at start with the fix in the message")
    func plainHTTPElsewhere() async throws {
        try await withTemporaryDirectory { dir in
            let result = try await SSHCA.run(["serve", "--init", "--home", dir.child("ca").path, "--listen", "0.0.0.0:0"])
            #expect(result.exitCode == 65, "\(result)")
            #expect(result.stderrText.contains("refusing plain HTTP") && result.stderrText.contains("tls_certificate"), "\(result)")
        }
    }

    @Test("sshca tls: one command gives the service https (key 0600, certificate with the names, [service] set); configure pins it as the bundle and a bare login works; curl trusts it; https to a plain-HTTP port says so")
    func tlsCommand() async throws {
        try await withTemporaryDirectory { dir in
            let caHome = dir.child("ca")
            try checked(try await SSHCA.run(["init", "--home", caHome.path, "--no-passphrase"]))
            let tls = try await SSHCA.run(["tls", "--home", caHome.path, "--name", "localhost", "--name", "127.0.0.1"])
            #expect(tls.succeeded && tls.stdoutText.contains("--ca-bundle tls.crt"), "\(tls)")
            let keyMode = try FileManager.default.attributesOfItem(atPath: caHome.child("tls.key").path)[.posixPermissions] as? Int
            #expect(keyMode == 0o600)
            let text = try await runProcess("openssl", ["x509", "-in", caHome.child("tls.crt").path, "-noout", "-ext", "subjectAltName"])
            #expect(text.stdoutText.contains("DNS:localhost") && text.stdoutText.contains("IP Address:127.0.0.1"), "\(text)")
            let again = try await SSHCA.run(["tls", "--home", caHome.path, "--name", "localhost"])
            #expect(again.exitCode != 0 && again.stderrText.contains("--force"), "\(again)")
            let server = try await CAServer.start(in: dir.child("run"), home: caHome)
            defer { server.stop() }
            #expect(server.url.hasPrefix("https://127.0.0.1:"), "\(server.url)")
            let curl = try await runProcess("curl", ["-sS", "--cacert", caHome.child("tls.crt").path, server.url + "/healthz"])
            #expect(curl.succeeded, "curl does not trust the certificate: \(curl)")
            let home = dir.child("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let identity = try await SSHKeygen.generate(.ed25519, at: home.child("id"), comment: "id")
            try checked(try await server.sshca(["user", "add", "gina", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let userCA = try await SSHKeygen.fingerprint(caHome.child("user_ca.pub"))
            let env: [String: String?] = ["HOME": home.path]
            let configure = try await SSHCA.run(["configure", "--ca-url", server.url, "--ca-fingerprint", userCA, "--ca-bundle", caHome.child("tls.crt").path,
                                                 "--user", "gina", "--identity", identity.privateKey.path], environment: env)
            #expect(configure.succeeded, "\(configure)")
            let login = try await SSHCA.run(["login"], environment: env)
            #expect(login.succeeded && login.stdoutText.contains("Principals: gina"), "\(login)")
            // https to a port that speaks plain HTTP.
            let plain = try await CAServer.start(in: dir.child("plain"))
            defer { plain.stop() }
            let wrongScheme = plain.url.replacingOccurrences(of: "http://", with: "https://")
            let confused = try await SSHCA.run(["login", "--ca-url", wrongScheme, "--user", "gina", "--identity", identity.privateKey.path], environment: env)
            #expect(!confused.succeeded && confused.stderrText.contains("answers plain HTTP, not TLS"), "\(confused)")
            // And the opposite: http:// to the TLS port.
            let tlsAsPlain = server.url.replacingOccurrences(of: "https://", with: "http://")
            let closed = try await SSHCA.run(["login", "--ca-url", tlsAsPlain, "--user", "gina", "--identity", identity.privateKey.path], environment: env)
            #expect(!closed.succeeded && closed.stderrText.contains("use https://"), "\(closed)")
        }
    }

    @Test("SIGTERM stops the service cleanly; every request was logged with its identity and outcome")
    func sigterm() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            let token = try await server.token(role: "engineer", name: "hank")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let issued = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            #expect(issued.status == 201)
            let refused = try await server.requestCertificate(try publicKeyJSON(key, extra: ",\"principals\":[\"root\"]"), authorization: "Bearer \(token)")
            #expect(refused.status == 403)
            kill(server.process.pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(10)
            while server.process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!server.process.isRunning, "still running 10 s after SIGTERM")
            #expect(server.process.exitStatus == 0, "exit status \(server.process.exitStatus ?? -1)\n\(server.log)")
            let lines = server.log.split(separator: "\n").filter { $0.contains("path=/v1/certificates") }
            #expect(lines.count == 2, "\(server.log)")
            #expect(lines.first?.contains("identity=token:hank") == true && lines.first?.contains("status=201") == true, "\(lines)")
            #expect(lines.last?.contains("outcome=policy") == true && lines.last?.contains("status=403") == true, "\(lines)")
            #expect(server.log.contains("SIGTERM received") && server.log.contains("stopped on SIGTERM"), "the stop is not logged:\n\(server.log.suffix(600))")
            let started = try readText(dir.child("serve.out"))
            let hostFingerprint = try await SSHKeygen.fingerprint(server.home.child("host_ca.pub"))
            #expect(started.contains("host CA \(hostFingerprint)"), "serve does not print the host CA: \(started)")
            // The WAL was moved into the ledger file at the stop: nothing is left to replay.
            let wal = server.home.child("ledger.sqlite-wal").path
            let walBytes = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
            #expect(walBytes == 0, "\(walBytes) bytes of WAL left behind")
            // The ledger is intact after the stop.
            let verify = try await SSHCA.run(["audit", "verify", "--home", server.home.path])
            #expect(verify.succeeded, "\(verify)")
        }
    }

    @Test("--config FILE replaces the home's sshca.toml for the service; a broken one stops it with the line named")
    func configFile() async throws {
        try await withTemporaryDirectory { dir in
            let created = try await SSHCA.run(["init", "--home", dir.child("ca").path, "--no-passphrase"])
            try #require(created.succeeded)
            let text = try readText(dir.child("ca").child("sshca.toml"))
            let other = dir.child("other.toml")
            try writeText(text.replacingOccurrences(of: "[role.engineer]\nprincipals = [\"{user}\"]", with: "[role.engineer]\nprincipals = [\"{user}\", \"deploy\"]"), to: other)
            let broken = dir.child("broken.toml")
            try writeText(text + "\n[role.engineer2]\nmax_validity = \"soon\"\n", to: broken)
            let refused = try await SSHCA.run(["serve", "--home", dir.child("ca").path, "--config", broken.path, "--listen", "127.0.0.1:0"])
            #expect(refused.exitCode == 65 && refused.stderrText.contains("broken.toml:") && refused.stderrText.contains("max_validity"), "\(refused)")

            let server = try await CAServer.start(in: dir, extraArguments: ["--config", other.path])
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "nia")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let reply = try await server.requestCertificate(try publicKeyJSON(key, extra: ",\"principals\":[\"nia\",\"deploy\"]"), authorization: "Bearer \(token)")
            #expect(reply.status == 201, "the --config role was not used: \(String(decoding: reply.body, as: UTF8.self))")
        }
    }
}
