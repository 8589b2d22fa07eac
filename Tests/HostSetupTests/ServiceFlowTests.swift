import Common
import Foundation
import Testing
import TestSupport

/// The engineer's day through the CA service, against real peers: `sshca serve`, a real
/// ssh-agent, `sshca login`, a real sshd configured by `sshca host setup --ca-url`, revocation
/// through the API and `sshca host krl-sync --from URL`.
@Suite("service: login, host setup --ca-url, revoke, krl-sync")
struct ServiceFlowTests {
    /// The user CA fingerprint as ssh-keygen prints it.
    /// The statuses of the service's answers to GET /v1/krl, in order, from its request log.
    static func krlAnswers(in log: String) -> [String] {
        log.split(separator: "\n").filter { $0.contains("path=/v1/krl ") && $0.contains("method=GET") }.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("status=") }.map { String($0.dropFirst(7)) }
        }
    }

    static func fingerprint(_ server: CAServer) async throws -> String {
        let caKey = try checked(try await server.sshca(["ca-key"]))
        let listed = try checked(try await runProcess("ssh-keygen", ["-l", "-f", "-"], stdin: caKey.stdout))
        return String(listed.stdoutText.split(separator: " ")[1])
    }

    /// `ssh` that uses only the agent (no key files), host key checked against the tree.
    static func sshThroughAgent(_ sshd: TreeSSHD, agent: SSHAgent, user: String = currentUserName) async throws -> ProcessResult {
        try await runProcess("ssh", [
            "-F", "/dev/null", "-p", String(sshd.port), "-T",
            "-o", "BatchMode=yes", "-o", "IdentityAgent=\(agent.socket.path)", "-o", "IdentityFile=none",
            "-o", "ConnectTimeout=15", "-o", "UpdateHostKeys=no", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UserKnownHostsFile=\(sshd.tree.knownHosts.path)", "-o", "StrictHostKeyChecking=yes",
            "\(user)@127.0.0.1", "echo ok",
        ], environment: ["SSH_AUTH_SOCK": agent.socket.path, "TZ": "UTC"], timeout: .seconds(60))
    }

    @Test("enroll, login through ssh-agent, ssh into a host set up with --ca-url; revoke through the API, krl-sync --from URL, refused")
    func engineerDay() async throws {
        try await withTreeDirectory("service") { dir in
            let server = try await CAServer.start(in: dir.child("service"))
            defer { server.stop() }
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let home = try makeDirectory(dir.child("home"), mode: 0o700)
            let identity = try await makeClientKey(home, "alice_identity")
            let fingerprint = try await Self.fingerprint(server)

            let enrolled = try await server.sshca(["user", "add", "alice", "--role", "engineer", "--identity-key", identity.publicKey.path])
            try #require(enrolled.succeeded, "\(enrolled)")
            let securityToken = try checked(try await server.sshca(["token", "create", "--role", "security", "--name", "secops"]))
                .stdoutText.split(separator: "\n").last.map(String.init) ?? ""

            // The identity key lives in a real ssh-agent: login signs the challenge through it.
            let agent = try await SSHAgent.start(in: dir.child("agent"))
            defer { agent.stop() }
            _ = try checked(try await agent.sshAdd([identity.privateKey.path]))
            let env: [String: String?] = agent.environment.merging(["HOME": home.path]) { $1 }
            let login = try await SSHCA.run(["login", "--ca-url", server.url, "--ca-fingerprint", fingerprint,
                                             "--user", "alice", "--identity", identity.publicKey.path], environment: env)
            try #require(login.succeeded, "login failed:\n\(login)\n--- service log ---\n\(server.log)")
            #expect(login.stdoutText.contains("Principals: alice"), "\(login)")
            #expect(login.stdoutText.contains("Loaded into ssh-agent") && !login.stdoutText.contains("IdentityFile"), "with the agent holding it, no config lines: \(login)")
            let keyFile = home.child(".ssh").child("sshca_ed25519")
            for path in [keyFile.path, keyFile.path + ".pub", keyFile.path + "-cert.pub"] {
                let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
                #expect(mode == 0o600, "\(path) has mode \(String(mode ?? 0, radix: 8))")
            }
            let listed = try checked(try await agent.sshAdd(["-l"]))
            #expect(listed.stdoutText.contains("ED25519-CERT"), "the certificate is not in the agent:\n\(listed)")
            let inspected = try await SSHCA.inspect(URL(fileURLWithPath: keyFile.path + "-cert.pub"))
            let serial = inspected.0.serial
            #expect(inspected.0.principals == ["alice"] && inspected.0.keyId == "alice:key:\(serial)" && inspected.0.signatureValid)
            // ssh-keygen agrees on the certificate the service issued.
            let keygen = try checked(try await runProcess("ssh-keygen", ["-L", "-f", keyFile.path + "-cert.pub"]))
            #expect(keygen.stdoutText.contains("Key ID: \"alice:key:\(serial)\"") && keygen.stdoutText.contains("Serial: \(serial)"), "\(keygen)")

            // A second login reuses the still-valid certificate.
            let again = try await SSHCA.run(["login", "--ca-url", server.url, "--ca-fingerprint", fingerprint,
                                             "--user", "alice", "--identity", identity.publicKey.path], environment: env)
            #expect(again.succeeded && again.stdoutText.contains("Still valid"), "\(again)")

            // The server: set up from the service (CA key and KRL pinned by fingerprint); root
            // accepts certificates for alice. No authorized_keys anywhere.
            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }
            let refusedBefore = try await Self.sshThroughAgent(sshd, agent: agent)
            #expect(!refusedBefore.succeeded, "logged in before the server trusted the CA:\n\(refusedBefore)")
            let setup = try await SSHCA.run(["host", "setup", "--ca-url", server.url, "--ca-fingerprint", fingerprint,
                                             "--principal", "\(currentUserName)=alice"] + tree.pathArguments)
            try #require(setup.succeeded, "host setup --ca-url failed:\n\(setup)")
            #expect(setup.stdoutText.contains("installed the service's KRL version"), "\(setup)")
            let mark = sshd.logMark()
            var accepted = try await Self.sshThroughAgent(sshd, agent: agent)
            for _ in 0..<50 where !accepted.succeeded {  // sshd re-executes after the SIGHUP
                try await Task.sleep(for: .milliseconds(100))
                accepted = try await Self.sshThroughAgent(sshd, agent: agent)
            }
            #expect(accepted.succeeded && accepted.stdoutText == "ok\n", "login with the certificate failed:\n\(accepted)\n\(sshd.log(since: mark))")
            #expect(sshd.log(since: mark).contains("ID alice:key:\(serial) (serial \(serial))"), "not the certificate:\n\(sshd.log(since: mark))")

            // Security staff revoke it through the API; the server pulls the new KRL by URL.
            let revoke = try await SSHCA.run(["revoke", "--ca-url", server.url, "--ca-fingerprint", fingerprint,
                                              "--token", securityToken, "--serial", String(serial), "--reason", "laptop stolen"])
            try #require(revoke.succeeded, "\(revoke)")
            let sync = try await SSHCA.run(["host", "krl-sync", "--from", server.url, "--to", tree.krlPath.path,
                                            "--ca-key", tree.caKeyPath.path])
            try #require(sync.succeeded, "\(sync)")
            #expect(sync.stdoutText.contains("Installed KRL version"), "\(sync)")
            let query = try await runProcess("ssh-keygen", ["-Q", "-f", tree.krlPath.path, keyFile.path + "-cert.pub"])
            #expect(query.exitCode != 0 && query.stdoutText.contains("REVOKED"), "the installed KRL does not revoke it:\n\(query)")
            let mark2 = sshd.logMark()
            let refused = try await Self.sshThroughAgent(sshd, agent: agent)
            #expect(!refused.succeeded, "a revoked certificate still logs in:\n\(refused)")
            #expect(sshd.log(since: mark2).contains("revoked"), "sshd did not refuse it as revoked:\n\(sshd.log(since: mark2))")

            // Unchanged KRL: the ETag makes the next sync a no-op. Judged on the exchange itself:
            // the service answered 304 (no body) to that request, and the file was not replaced.
            let installedBefore = try FileManager.default.attributesOfItem(atPath: tree.krlPath.path)[.systemFileNumber] as? UInt64
            let krlAnswersBefore = Self.krlAnswers(in: server.log)
            let unchanged = try await SSHCA.run(["host", "krl-sync", "--from", server.url, "--to", tree.krlPath.path,
                                                 "--ca-key", tree.caKeyPath.path])
            #expect(unchanged.succeeded && unchanged.stdoutText.contains("already"), "\(unchanged)")
            let krlAnswersAfter = Self.krlAnswers(in: server.log)
            #expect(Array(krlAnswersAfter.dropFirst(krlAnswersBefore.count)) == ["304"],
                    "the unchanged sync must be one GET /v1/krl answered 304, the service logged: \(krlAnswersAfter.dropFirst(krlAnswersBefore.count))")
            #expect(try FileManager.default.attributesOfItem(atPath: tree.krlPath.path)[.systemFileNumber] as? UInt64 == installedBefore,
                    "an unchanged KRL was installed again")

            // Logout takes the certificate out of the agent and deletes the files.
            let logout = try await SSHCA.run(["logout"], environment: env)
            #expect(logout.succeeded, "\(logout)")
            #expect(!FileManager.default.fileExists(atPath: keyFile.path + "-cert.pub"))
            let after = try checked(try await agent.sshAdd(["-l"]))
            #expect(!after.stdoutText.contains("ED25519-CERT"), "the certificate is still in the agent:\n\(after)")
        }
    }

    @Test("a wrong --ca-fingerprint makes login, revoke, list, host setup and krl-sync refuse before sending anything")
    func wrongFingerprint() async throws {
        try await withTreeDirectory("pin") { dir in
            let server = try await CAServer.start(in: dir.child("service"))
            defer { server.stop() }
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let other = try await makeClientKey(dir, "other")
            let otherFingerprint = String(try checked(try await runProcess("ssh-keygen", ["-l", "-f", other.publicKey.path]))
                .stdoutText.split(separator: " ")[1])
            let home = try makeDirectory(dir.child("home"), mode: 0o700)
            let identity = try await makeClientKey(home, "id")
            _ = try checked(try await server.sshca(["user", "add", "bob", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let before = try tree.snapshot()
            let pinned = ["--ca-url", server.url, "--ca-fingerprint", otherFingerprint]
            let runs: [[String]] = [
                ["login"] + pinned + ["--user", "bob", "--identity", identity.privateKey.path],
                ["revoke"] + pinned + ["--as", "bob", "--identity", identity.privateKey.path, "--serial", "1", "--reason", "x"],
                ["list"] + pinned + ["--user", "bob", "--identity", identity.privateKey.path],
                ["host", "setup"] + pinned + tree.pathArguments,
                ["host", "krl-sync", "--from", server.url, "--to", tree.krlPath.path, "--ca-key", other.publicKey.path],
            ]
            for arguments in runs {
                let result = try await SSHCA.run(arguments, environment: ["HOME": home.path])
                #expect(!result.succeeded, "\(arguments.prefix(2)) went ahead with a wrong pin:\n\(result)")
                #expect(result.stderrText.contains("pins") || result.stderrText.contains("not signed by the pinned key"),
                        "\(arguments.prefix(2)): \(result.stderrText)")
            }
            expectIdentical(try tree.snapshot(), before, "a refused pin")
            #expect(!FileManager.default.fileExists(atPath: home.child(".ssh").child("sshca_ed25519").path), "login wrote a key")
            // Nothing reached the ledger: no certificate was issued.
            let list = try checked(try await server.sshca(["list", "--json"]))
            let issued = try JSONSerialization.jsonObject(with: list.stdout) as? [Any]
            #expect(issued?.isEmpty == true, "\(list)")
        }
    }

    @Test("host setup --ca-url installs the KRL and host certificate timers with this service's URL and pins (systemd-analyze verify; each ExecStart runs); host undo removes them, the host certificates, their drop-in and the ETag file: /etc back byte for byte")
    func timersAndUndo() async throws {
        try await withTreeDirectory("svc-timers") { dir in
            let server = try await CAServer.start(in: dir.child("service"))
            defer { server.stop() }
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let before = try tree.snapshot()
            let fingerprint = try await Self.fingerprint(server)
            let token = try checked(try await server.sshca(["token", "create", "--role", "host", "--name", "127.0.0.1"])).stdoutText
                .split(separator: "\n").last.map(String.init) ?? ""
            let tokenFile = dir.child("host_token")
            try writeText(token + "\n", to: tokenFile, mode: 0o600)
            let setup = try await SSHCA.run(["host", "setup", "--ca-url", server.url, "--ca-fingerprint", fingerprint, "--token-file", tokenFile.path,
                                             "--host-names", "127.0.0.1", "--no-reload"] + tree.pathArguments)
            try #require(setup.succeeded, "\(setup)")
            #expect(setup.stdoutText.contains("timers: systemd does not run here"), "\(setup)")
            // Setup's own KRL fetch is identified as the timer's will be: by the host token, one
            // entry in the service's record, current at once (no second, claimed entry).
            let hosts = try await server.sshca(["hosts", "--json"])
            let listed = (try? JSONSerialization.jsonObject(with: hosts.stdout) as? [[String: Any]]) ?? []
            #expect(hosts.exitCode == 0 && listed.count == 1 && listed.first?["identifiedBy"] as? String == "token:127.0.0.1", "\(hosts)")
            let units = ["sshca-krl-sync.service", "sshca-krl-sync.timer", "sshca-host-cert.service", "sshca-host-cert.timer"]
            for unit in units { #expect(FileManager.default.fileExists(atPath: tree.systemdDirectory.child(unit).path), "\(unit) not installed") }
            let verify = try await runProcess("systemd-analyze", ["verify"] + units.map { tree.systemdDirectory.child($0).path },
                                              environment: ["SYSTEMD_LOG_LEVEL": "warning"])
            #expect(verify.succeeded && verify.stderrText.isEmpty, "\(verify)")
            // Each service's ExecStart is the real command: run it as systemd would.
            for service in ["sshca-krl-sync.service", "sshca-host-cert.service"] {
                let text = try readText(tree.systemdDirectory.child(service))
                #expect(text.contains(server.url) && !text.contains("example.com") && !text.contains("REPLACE"), "\(service):\n\(text)")
                let exec = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
                var words = exec.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
                let binary = try SSHCA.executableURL()
                #expect(words.first == binary.resolvingSymlinksInPath().path || words.first == binary.path, "\(words)")
                if service == "sshca-host-cert.service" { words += ["--sshd-config", tree.sshdConfig.path, "--backup-dir", tree.backupDirectory.path, "--no-reload"] }
                let ran = try await runProcess(words[0], Array(words.dropFirst()), environment: SSHCA.baseEnvironment)
                #expect(ran.succeeded, "\(service): \(ran)\n\(server.log)")
            }
            #expect(FileManager.default.fileExists(atPath: tree.krlPath.path + ".etag"))
            #expect(FileManager.default.fileExists(atPath: tree.etc.child("ssh_host_ed25519_key-cert.pub").path), "the host certificate timer's command certified nothing")
            // host undo takes all of it away: the units, the host certificates and their drop-in, the ETag file.
            let undo = try await SSHCA.run(["host", "undo", "--sshd-config", tree.sshdConfig.path, "--no-reload"])
            #expect(undo.succeeded, "\(undo)")
            expectIdentical(try tree.snapshot(), before, "after setup --ca-url, the timers' runs and undo")
        }
    }

    @Test("host cert --ca-url with a host token: sshd presents a certificate ssh trusts through @cert-authority; a second run keeps it, --renew-before renews it")
    func hostCertificateThroughService() async throws {
        try await withTreeDirectory("svc-hostcert") { dir in
            let server = try await CAServer.start(in: dir.child("service"))
            defer { server.stop() }
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let hostCA = try checked(try await server.sshca(["ca-key", "--host"]))
            let hostFingerprint = String(try checked(try await runProcess("ssh-keygen", ["-l", "-f", "-"], stdin: hostCA.stdout)).stdoutText.split(separator: " ")[1])
            let token = try checked(try await server.sshca(["token", "create", "--role", "host", "--name", "127.0.0.1"])).stdoutText
                .split(separator: "\n").last.map(String.init) ?? ""
            let tokenFile = tree.etc.child("sshca_host_token")
            try writeText(token + "\n", to: tokenFile, mode: 0o600)
            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }

            let arguments = ["host", "cert", "--ca-url", server.url, "--ca-fingerprint", hostFingerprint, "--token-file", tokenFile.path,
                             "--principals", "127.0.0.1", "--sshd-config", tree.sshdConfig.path]
            let first = try await SSHCA.run(arguments)
            try #require(first.succeeded, "host cert --ca-url failed:\n\(first)\n\(server.log)")
            #expect(first.stdoutText.contains("certified \(tree.hostPublicKey.path)"), "\(first)")
            let certificateFile = tree.etc.child("ssh_host_ed25519_key-cert.pub")
            let listing = try await SSHKeygen.listCertificate(certificateFile)
            #expect(listing.kind == "host" && listing.principals == ["127.0.0.1"], "\(listing.raw)")

            // A client that trusts only the host CA connects with strict host key checking.
            let user = try await makeClientKey(tree.client, "id_user")
            let userCert = try await server.sshca(["sign", "--key-id", "u", "--principals", currentUserName, user.publicKey.path])
            try #require(userCert.succeeded, "\(userCert)")
            let setup = try await tree.setup(caKey: server.home.child("user_ca.pub"))
            try #require(setup.succeeded, "\(setup)")
            let knownHosts = tree.client.child("known_hosts_ca")
            let lines = try checked(try await server.sshca(["known-hosts", "--hosts", "[127.0.0.1]:\(sshd.port)"])).stdoutText
            try writeText(lines, to: knownHosts)
            var connected = try await SSHClient.run(port: sshd.port, identity: user.privateKey, certificate: user.certificate, knownHosts: knownHosts)
            for _ in 0..<50 where !connected.succeeded {
                try await Task.sleep(for: .milliseconds(100))
                connected = try await SSHClient.run(port: sshd.port, identity: user.privateKey, certificate: user.certificate, knownHosts: knownHosts)
            }
            #expect(connected.succeeded, "ssh did not trust the service-issued host certificate:\n\(connected)\n\(sshd.log)")

            let second = try await SSHCA.run(arguments)
            #expect(second.succeeded && second.stdoutText.contains("kept \(certificateFile.path)") && !second.stdoutText.contains("certified"), "\(second)")
            let renewed = try await SSHCA.run(arguments + ["--renew-before", "365d"])
            #expect(renewed.succeeded && renewed.stdoutText.contains("certified"), "\(renewed)")
            #expect(try await SSHKeygen.listCertificate(certificateFile).serial != listing.serial, "--renew-before did not renew")

            // A token for another name gets nothing for this host, and the installed certificate stays.
            let otherToken = try checked(try await server.sshca(["token", "create", "--role", "host", "--name", "db-01"])).stdoutText
                .split(separator: "\n").last.map(String.init) ?? ""
            let before = try readText(certificateFile)
            let refused = try await SSHCA.run(["host", "cert", "--ca-url", server.url, "--ca-fingerprint", hostFingerprint, "--token", otherToken,
                                               "--principals", "127.0.0.1", "--renew-before", "365d", "--sshd-config", tree.sshdConfig.path])
            #expect(refused.exitCode == 65 && refused.stderrText.contains("role.host.principals"), "\(refused)")
            #expect(try readText(certificateFile) == before)
        }
    }
}
