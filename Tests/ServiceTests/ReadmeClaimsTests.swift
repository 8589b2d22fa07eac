import Common
import Foundation
import SSHFormat
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What the README promises about the service, each against the real peers: a running
/// `sshca serve`, sshd, ssh, ssh-agent, ssh-keygen and sqlite3.
@Suite("README claims")
struct ReadmeClaimsTests {
    /// Appends TOML to a CA home's sshca.toml (new tables go at the end of the file).
    static func appendConfig(_ text: String, to home: URL) throws {
        let file = home.child("sshca.toml")
        try writeText(try readText(file) + "\n" + text + "\n", to: file)
    }

    static func replaceConfig(_ old: String, _ new: String, in home: URL) throws {
        let file = home.child("sshca.toml")
        let text = try readText(file)
        guard text.contains(old) else { throw SubprocessError.timedOut("sshca.toml has no \(old)") }
        try writeText(text.replacingOccurrences(of: old, with: new), to: file)
    }

    // MARK: 1. Tokens

    @Test("tokens: --ttl expiry, token revoke and token list as the README says; the ledger keeps only SHA-256 hashes of the secrets")
    func tokenLifecycle() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            // --ttl: a token of two seconds is refused once they have passed (a long one works).
            let shortLived = try checked(try await server.sshca(["token", "create", "--role", "engineer", "--name", "tina", "--ttl", "2s"]))
                .stdoutText.split(separator: "\n").last.map(String.init) ?? ""
            let createdBy = ContinuousClock.now  // it expires at most 2 s after this
            let revocable = try await server.token(role: "engineer", name: "tony")
            let idOf = { (token: String) in String(token.dropFirst("sshca_".count).prefix(12)) }

            #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(revocable)").status == 201)
            let listed = try checked(try await server.sshca(["token", "list"])).stdoutText
            #expect(listed.contains(idOf(shortLived)) && listed.contains("name=tina") && listed.contains(idOf(revocable)) && listed.contains("name=tony"), "\(listed)")
            #expect(!listed.contains(shortLived) && !listed.contains(revocable), "token list shows a secret:\n\(listed)")

            // token revoke: refused at once.
            _ = try checked(try await server.sshca(["token", "revoke", idOf(revocable)]))
            let afterRevoke = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(revocable)")
            #expect(afterRevoke.status == 401, "\(afterRevoke.status) \(String(decoding: afterRevoke.body, as: UTF8.self))")
            let listedAfter = try checked(try await server.sshca(["token", "list"])).stdoutText
            let tonyLine = listedAfter.split(separator: "\n").first { $0.contains(idOf(revocable)) } ?? ""
            #expect(tonyLine.contains("revoked"), "\(listedAfter)")

            // --ttl: refused once it has passed.
            try await Task.sleep(until: createdBy + .seconds(3))
            let expired = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(shortLived)")
            #expect(expired.status == 401, "an expired token still works: \(expired.status) \(String(decoding: expired.body, as: UTF8.self))")
            let tinaLine = try checked(try await server.sshca(["token", "list"])).stdoutText.split(separator: "\n").first { $0.contains(idOf(shortLived)) } ?? ""
            #expect(tinaLine.contains("expired"), "\(tinaLine)")

            // Only hashes: sqlite3 reads SHA-256(secret) in secret_hash, and no byte of the
            // ledger's files holds a secret, in text or in binary.
            let rows = try checked(try await runProcess("sqlite3", ["-separator", " ", server.home.child("ledger.sqlite").path,
                                                                    "SELECT id, hex(secret_hash) FROM tokens ORDER BY id"])).stdoutText
            for token in [shortLived, revocable] {
                let secretText = String(token.dropFirst("sshca_".count + 13))
                var base64 = secretText.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
                while base64.count % 4 != 0 { base64 += "=" }
                let secret = try #require(Data(base64Encoded: base64))
                let hash = Digest.sha256.hash(secret).map { String(format: "%02X", $0) }.joined()
                #expect(rows.contains("\(idOf(token)) \(hash)"), "token \(idOf(token)): the ledger does not hold SHA-256 of its secret:\n\(rows)")
                for file in ["ledger.sqlite", "ledger.sqlite-wal"] {
                    let bytes = (try? Data(contentsOf: server.home.child(file))) ?? Data()
                    #expect(bytes.range(of: Data(secretText.utf8)) == nil && bytes.range(of: secret) == nil, "\(file) holds a token secret")
                }
            }
        }
    }

    // MARK: 2. Role options enforced by sshd

    @Test("a role's force_command, source_address and extensions reach certificates issued through the service, and a real sshd enforces them")
    func roleOptionsEnforced() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir, configure: { home in
                try Self.appendConfig("""
                    [role.backup]
                    principals = ["backup"]
                    default_validity = "1h"
                    max_validity = "1h"
                    force_command = "/bin/echo forced-by-the-ca"
                    source_address = ["127.0.0.1/32"]
                    extensions = ["permit-pty"]

                    [role.faraway]
                    principals = ["faraway"]
                    default_validity = "1h"
                    max_validity = "1h"
                    source_address = ["192.0.2.0/24"]
                    """, to: home)
            })
            defer { server.stop() }
            let principals = dir.child("principals")
            try writeText("backup\nfaraway\n", to: principals)
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: server.home.child("user_ca.pub"),
                                            extraConfig: ["AuthorizedPrincipalsFile \(principals.path)"])
            defer { sshd.stop() }

            let backupKey = try await SSHKeygen.generate(.ed25519, at: dir.child("backup"), comment: "backup")
            let backup = try await server.requestCertificate(try publicKeyJSON(backupKey), authorization: "Bearer \(try await server.token(role: "backup", name: "nightly"))")
            try #require(backup.status == 201, "\(String(decoding: backup.body, as: UTF8.self))")
            let backupCert = try writeIssuedCertificate(backup.body, to: dir.child("backup-cert.pub"))
            let listing = try checked(try await runProcess("ssh-keygen", ["-L", "-f", backupCert.path])).stdoutText
            #expect(listing.contains("force-command /bin/echo forced-by-the-ca") && listing.contains("source-address 127.0.0.1/32"), "\(listing)")
            let extensions = listing.components(separatedBy: "Extensions:").last ?? ""
            #expect(extensions.contains("permit-pty") && !extensions.contains("permit-port-forwarding") && !extensions.contains("permit-agent-forwarding"), "\(listing)")

            // The forced command runs instead of the one asked for.
            let forced = try await sshd.ssh(identity: backupKey.privateKey, certificate: backupCert, command: "echo asked-for")
            #expect(forced.succeeded && forced.stdoutText == "forced-by-the-ca\n", "\(forced)\n\(sshd.log)")

            // A certificate for another network is refused from 127.0.0.1; the same key with a
            // certificate without source_address is the control.
            let farKey = try await SSHKeygen.generate(.ed25519, at: dir.child("far"), comment: "far")
            let far = try await server.requestCertificate(try publicKeyJSON(farKey), authorization: "Bearer \(try await server.token(role: "faraway", name: "far"))")
            try #require(far.status == 201)
            let farCert = try writeIssuedCertificate(far.body, to: dir.child("far-cert.pub"))
            let mark = sshd.logMark()
            let refused = try await sshd.ssh(identity: farKey.privateKey, certificate: farCert)
            #expect(!refused.succeeded, "a certificate limited to 192.0.2.0/24 logged in from 127.0.0.1:\n\(refused)")
            #expect(sshd.log(since: mark).lowercased().contains("source address"), "sshd did not refuse it for its source address:\n\(sshd.log(since: mark))")
            let control = try checked(try await server.sshca(["sign", "--key-id", "control", "--principals", "faraway", "--validity", "+1h",
                                                              "--output", dir.child("far-control-cert.pub").path, farKey.publicKey.path]))
            _ = control
            let allowed = try await sshd.ssh(identity: farKey.privateKey, certificate: dir.child("far-control-cert.pub"))
            #expect(allowed.succeeded, "the control (no source-address) must log in:\n\(allowed)")
        }
    }

    // MARK: 3. security_staff

    @Test("[service] security_staff grants staff rights by name: an enrolled engineer listed there may list and revoke; another engineer, and a token that only bears the name, may not")
    func securityStaffByName() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir, configure: { home in
                try Self.replaceConfig("security_staff = []", "security_staff = [\"alice\"]", in: home)
            })
            defer { server.stop() }
            let aliceHome = dir.child("alice"), bobHome = dir.child("bob")
            for home in [aliceHome, bobHome] { try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true) }
            let alice = try await server.enroll("alice", role: "engineer", home: aliceHome)
            let bob = try await server.enroll("bob", role: "engineer", home: bobHome)
            let tokenNamedAlice = try await server.token(role: "engineer", name: "alice")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let issued = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(tokenNamedAlice)")
            try #require(issued.status == 201)
            let serial = decodeJSON(issued.body)["serial"] as? Int ?? 0
            // Signed in through the environment: on revoke, --user names whom to revoke.
            func run(_ person: String, _ identity: KeyPair, _ arguments: [String]) async throws -> ProcessResult {
                try await SSHCA.run(arguments + ["--ca-url", server.url],
                                    environment: ["SSHCA_USER": person, "SSHCA_IDENTITY": identity.privateKey.path])
            }

            let bobList = try await run("bob", bob, ["list", "--json"])
            #expect(!bobList.succeeded && bobList.stderrText.contains("not security staff"), "\(bobList)")
            let bobRevoke = try await run("bob", bob, ["revoke", "--serial", String(serial), "--reason", "test"])
            #expect(!bobRevoke.succeeded && bobRevoke.stderrText.contains("not security staff"), "\(bobRevoke)")
            // A token is a credential of automation: its name alone is not the person alice.
            let tokenList = try await server.http("GET", "/v1/certificates", headers: ["Authorization": "Bearer \(tokenNamedAlice)"])
            #expect(tokenList.status == 403 && errorFields(tokenList.body).rule == "service.security_staff", "\(tokenList.status)")

            let aliceList = try await run("alice", alice, ["list", "--json"])
            #expect(aliceList.succeeded && aliceList.stdoutText.contains("\"serial\" : \(serial)"), "\(aliceList)")
            let aliceRevoke = try await run("alice", alice, ["revoke", "--serial", String(serial), "--reason", "test"])
            #expect(aliceRevoke.succeeded, "\(aliceRevoke)")
            let shown = try checked(try await server.sshca(["show", "--json", String(serial)])).stdoutText
            #expect(shown.contains("\"status\" : \"revoked\""), "\(shown)")
        }
    }

    // MARK: 4. KRL republished at start

    @Test("a revocation committed before a crash reaches the KRL at the next start, though its KRL write never happened")
    func republishAtStart() async throws {
        try await withTemporaryDirectory { dir in
            let first = try await CAServer.start(in: dir.child("first"))
            let home = first.home
            let engineer = try await first.token(role: "engineer", name: "ed")
            let security = try await first.token(role: "security", name: "sec")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let issued = try await first.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)")
            try #require(issued.status == 201)
            let certificate = try writeIssuedCertificate(issued.body, to: dir.child("k-cert.pub"))
            let serial = decodeJSON(issued.body)["serial"] as? Int ?? 0
            let krlBefore = try Data(contentsOf: home.child("revoked.krl"))
            let revoked = try await first.http("POST", "/v1/revocations", json: "{\"serial\": \(serial), \"reason\": \"crash test\"}",
                                               headers: ["Authorization": "Bearer \(security)"])
            try #require(revoked.status == 201, "\(String(decoding: revoked.body, as: UTF8.self))")
            // The crash: SIGKILL, and the KRL file as it was before the revocation, as if the
            // process died between the ledger's commit and the KRL write.
            kill(first.process.pid, SIGKILL)
            first.stop()
            try krlBefore.write(to: home.child("revoked.krl"))
            let stale = try await runProcess("ssh-keygen", ["-Q", "-f", home.child("revoked.krl").path, certificate.path])
            try #require(stale.exitCode == 0, "the set-up did not put back a KRL without the revocation: \(stale)")

            let second = try await CAServer.start(in: dir.child("second"), home: home)
            defer { second.stop() }
            let served = dir.child("served.krl")
            let (status, body) = try await second.http("GET", "/v1/krl")
            try #require(status == 200)
            try body.write(to: served)
            for krl in [served, home.child("revoked.krl")] {
                let query = try await runProcess("ssh-keygen", ["-Q", "-f", krl.path, certificate.path])
                #expect(query.exitCode == 1 && query.stdoutText.contains("REVOKED"), "\(krl.lastPathComponent) after the restart does not revoke serial \(serial):\n\(query)")
            }
        }
    }

    // MARK: 5. login and ssh-agent

    @Test("login: the agent holds key and certificate exactly as long as the certificate; --principals, --validity and --force do what they say")
    func loginAgentLifetime() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir, configure: { home in
                try Self.appendConfig("""
                    [role.ops]
                    principals = ["{user}", "deploy"]
                    default_validity = "8h"
                    max_validity = "1d"
                    """, to: home)
            })
            defer { server.stop() }
            let home = dir.child("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            let identity = try await server.enroll("olga", role: "ops", home: home)
            let agent = try await SSHAgent.start(in: dir.child("agent"))
            defer { agent.stop() }
            _ = try checked(try await agent.sshAdd([identity.privateKey.path]))
            let env: [String: String?] = agent.environment.merging(["HOME": home.path]) { $1 }
            let base = ["login", "--ca-url", server.url, "--user", "olga", "--identity", identity.publicKey.path]
            let certFile = home.child(".ssh").child("sshca_ed25519-cert.pub")

            let first = try await SSHCA.run(base + ["--principals", "olga,deploy", "--validity", "10m"], environment: env)
            try #require(first.succeeded, "\(first)\n\(server.log)")
            let (one, _) = try await SSHCA.inspect(certFile)
            #expect(one.principals == ["olga", "deploy"])
            #expect(one.validBefore - UInt64(Date().timeIntervalSince1970) <= 600, "--validity 10m gave \(one.validBefore - UInt64(Date().timeIntervalSince1970)) s")
            #expect(try checked(try await agent.sshAdd(["-l"])).stdoutText.contains("ED25519-CERT"))

            // Still valid (more than the 5 min renewal margin left): the same certificate again.
            let again = try await SSHCA.run(base, environment: env)
            #expect(again.succeeded && again.stdoutText.contains("Still valid"), "\(again)")
            #expect(try await SSHCA.inspect(certFile).0.serial == one.serial)
            // The renewal timer's command replaces a revoked certificate (it has hours left).
            _ = try checked(try await server.sshca(["revoke", "--serial", String(one.serial), "--reason", "lost laptop"]))
            let timer = try await SSHCA.run(base + ["--renew-before", "2m", "--unattended"], environment: env)
            #expect(timer.succeeded, "\(timer)")
            #expect(try await SSHCA.inspect(certFile).0.serial != one.serial, "login --unattended kept a revoked certificate:\n\(timer)")
            // --force: a new one, here for one principal.
            let forced = try await SSHCA.run(base + ["--force", "--principals", "deploy", "--validity", "20s"], environment: env)
            try #require(forced.succeeded, "\(forced)")
            let (two, _) = try await SSHCA.inspect(certFile)
            #expect(two.serial != one.serial && two.principals == ["deploy"], "--force --principals deploy gave serial \(two.serial), \(two.principals)")
            // Only the new certificate is in the agent: each one login replaced left it.
            let held = try checked(try await agent.sshAdd(["-l"])).stdoutText
            let logins = held.split(separator: "\n").filter { $0.contains(" sshca ") }
            #expect(logins.count == 1 && logins.first?.contains("serial \(two.serial) (ED25519-CERT)") == true, "\(held)")

            // The agent forgets both at the certificate's end, by itself.
            let remaining = Double(two.validBefore) - Date().timeIntervalSince1970
            try await Task.sleep(for: .seconds(max(0, remaining) + 2))
            let after = try await agent.sshAdd(["-l"])
            #expect(!after.stdoutText.contains("ED25519-CERT"), "the agent still holds the certificate after it expired:\n\(after)")
            let loginKey = try await SSHKeygen.fingerprint(home.child(".ssh").child("sshca_ed25519.pub"))
            #expect(!after.stdoutText.contains(loginKey), "the agent still holds the login key after its certificate expired:\n\(after)")
            // The identity key, added without a lifetime, is still there (the control).
            #expect(after.stdoutText.contains(try await SSHKeygen.fingerprint(identity.publicKey)), "\(after)")
        }
    }

    // MARK: 6. verify-required

    @Test("--verify-required: sshd refuses a FIDO key that signs without user verification and accepts one that verifies")
    func verifyRequired() async throws {
        try await withTemporaryDirectory { dir in
            let created = try await SSHCA.run(["init", "--home", dir.child("ca").path, "--no-passphrase"])
            try #require(created.succeeded)
            let home = dir.child("ca")
            // sk-dummy signs with user verification when the key was made with verify-required.
            let verifying = try await SSHKeygen.generate(UserKeyType.skEd25519.sshKeygenArguments + ["-O", "verify-required"],
                                                         at: dir.child("verifying"), typeName: "sk-ed25519")
            let presenceOnly = try await SSHKeygen.generate(.skEd25519, at: dir.child("presence"))
            func sign(_ key: KeyPair, _ name: String, verify: Bool) async throws -> URL {
                let output = dir.child("\(name)-cert.pub")
                _ = try checked(try await SSHCA.run(["sign", "--home", home.path, "--key-id", name, "--principals", currentUserName,
                                                     "--validity", "+1h", "--output", output.path, key.publicKey.path]
                                                    + (verify ? ["--verify-required"] : [])))
                return output
            }
            let sshd = try await SSHD.start(in: dir.child("sshd"), trustedUserCAKeys: home.child("user_ca.pub"))
            defer { sshd.stop() }
            let accepted = try await sshd.ssh(identity: verifying.privateKey, certificate: try await sign(verifying, "v", verify: true),
                                              securityKeyProvider: skDummyProvider)
            #expect(accepted.succeeded, "a verifying key with a verify-required certificate must log in:\n\(accepted)")
            let refused = try await sshd.ssh(identity: presenceOnly.privateKey, certificate: try await sign(presenceOnly, "p", verify: true),
                                             securityKeyProvider: skDummyProvider)
            #expect(!refused.succeeded, "a key that did not verify the user logged in with a verify-required certificate:\n\(refused)")
            // The control: the same key without the option logs in.
            let control = try await sshd.ssh(identity: presenceOnly.privateKey, certificate: try await sign(presenceOnly, "p2", verify: false),
                                             securityKeyProvider: skDummyProvider)
            #expect(control.succeeded, "\(control)")
        }
    }

    // MARK: 7. Encrypted CA keys

    @Test("serve with encrypted CA keys through SSHCA_PASSPHRASE_FILE issues certificates; a wrong passphrase stops it at start with a clear error")
    func encryptedKeysAtStart() async throws {
        try await withTemporaryDirectory { dir in
            let home = dir.child("ca")
            let passphrase = dir.child("passphrase")
            try writeText("correct horse battery staple\n", to: passphrase, mode: 0o600)
            _ = try checked(try await SSHCA.run(["init", "--home", home.path, "--passphrase-file", passphrase.path]))
            #expect(try readText(home.child("user_ca.key")).contains("ENCRYPTED PRIVATE KEY"), "init did not encrypt the CA key")

            let wrong = dir.child("wrong")
            try writeText("not it\n", to: wrong, mode: 0o600)
            let refused = try await SSHCA.run(["serve", "--home", home.path, "--listen", "127.0.0.1:0"],
                                              environment: ["SSHCA_PASSPHRASE_FILE": wrong.path], timeout: .seconds(60))
            #expect(!refused.succeeded && refused.exitCode != 0, "serve started with a wrong passphrase:\n\(refused)")
            #expect(refused.stderrText.lowercased().contains("passphrase") && !refused.stdoutText.contains("listening"), "\(refused)")

            let server = try await CAServer.start(in: dir.child("run"), home: home, environment: ["SSHCA_PASSPHRASE_FILE": passphrase.path])
            defer { server.stop() }
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let token = try checked(try await server.sshca(["token", "create", "--role", "engineer", "--name", "eve"]))
                .stdoutText.split(separator: "\n").last.map(String.init) ?? ""
            let issued = try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(token)")
            #expect(issued.status == 201, "\(String(decoding: issued.body, as: UTF8.self))")
            let certificate = try writeIssuedCertificate(issued.body, to: dir.child("k-cert.pub"))
            let listed = try checked(try await runProcess("ssh-keygen", ["-L", "-f", certificate.path])).stdoutText
            let caFingerprint = try await SSHKeygen.fingerprint(home.child("user_ca.pub"))
            #expect(listed.contains(caFingerprint), "not signed by the encrypted CA key:\n\(listed)")
        }
    }

    // MARK: 8 and 10. Durability under load

    /// Issues certificates over HTTP from `threads` threads of scripts/crash_test_client.py (a
    /// process of its own, so a busy test pool cannot starve it) until stopped; every 201 goes
    /// to a file as "SERIAL<TAB>CERTIFICATE LINE" the moment it is answered.
    final class Load: @unchecked Sendable {
        let process: BackgroundProcess
        let certificates: URL

        init(_ server: CAServer, token: String, key: KeyPair, threads: Int, in dir: URL) throws {
            var script = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { script.deleteLastPathComponent() }
            script = script.appendingPathComponent("scripts").appendingPathComponent("crash_test_client.py")
            certificates = dir.child("answered.tsv")
            process = try BackgroundProcess("python3", [script.path, "load", "--url", server.url, "--token", token,
                                                        "--keys", key.publicKey.path, "--certs", certificates.path, "--threads", String(threads)],
                                            stdoutFile: dir.child("load.out"), stderrFile: dir.child("load.err"))
        }

        /// The 201 answers so far.
        var answered: [(serial: Int, certificate: String)] {
            ((try? String(contentsOf: certificates, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
                let parts = line.split(separator: "\t", maxSplits: 1)
                guard parts.count == 2, let serial = Int(parts[0]) else { return nil }
                return (serial, String(parts[1]))
            }
        }

        /// Waits until at least `count` were answered (or `limit` passed).
        func wait(for count: Int, limit: Duration = .seconds(120)) async throws {
            let deadline = ContinuousClock.now + limit
            while answered.count < count && process.isRunning && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The ledger of a CA home as `sshca list --json` reads it: serial to certificate line.
    static func ledgerCertificates(home: URL) async throws -> [Int: String] {
        let listed = try checked(try await SSHCA.run(["list", "--home", home.path, "--json", "--limit", "100000"]))
        let rows = try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]] ?? []
        var result: [Int: String] = [:]
        for row in rows { if let serial = row["serial"] as? Int { result[serial] = row["certificate"] as? String ?? "" } }
        return result
    }

    @Test("every certificate answered 201 is in the ledger, byte for byte, after the service is killed with SIGKILL under load")
    func answeredSurvivesSIGKILL() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "loader")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let load = try Load(server, token: token, key: key, threads: 4, in: dir)
            defer { load.process.stop() }
            // Killed while requests are in flight, once at least 150 were answered.
            try await load.wait(for: 150)
            kill(server.process.pid, SIGKILL)
            try await Task.sleep(for: .milliseconds(500))
            load.process.stop()
            let received = load.answered
            #expect(received.count >= 100, "too few certificates under load to judge: \(received.count)")
            let ledger = try await Self.ledgerCertificates(home: server.home)
            var missing: [Int] = [], differing: [Int] = []
            for (serial, line) in received {
                guard let stored = ledger[serial] else { missing.append(serial); continue }
                if stored.split(separator: " ").prefix(2) != line.split(separator: " ").prefix(2) { differing.append(serial) }
            }
            #expect(missing.isEmpty, "answered 201 but not in the ledger after SIGKILL: \(missing.sorted().prefix(20))")
            #expect(differing.isEmpty, "in the ledger with other bytes than answered: \(differing.sorted().prefix(20))")
            // Serials 1, 2, 3, ... without a gap, and the audit chain intact.
            #expect(ledger.keys.sorted() == Array(1...max(1, ledger.count)), "serials with gaps: \(ledger.count) certificates, highest \(ledger.keys.max() ?? 0)")
            let verified = try await SSHCA.run(["audit", "verify", "--home", server.home.path])
            #expect(verified.succeeded, "\(verified)")
        }
    }

    @Test("sshca backup taken while the service issues certificates restores to a consistent CA: serials without gaps, every certificate as answered, the audit chain verifying")
    func backupWhileIssuing() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "loader")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let passphrase = dir.child("backup-passphrase")
            try writeText("backup secret\n", to: passphrase, mode: 0o600)
            let load = try Load(server, token: token, key: key, threads: 4, in: dir)
            defer { load.process.stop() }
            try await load.wait(for: 50)
            let backupFile = dir.child("ca.backup")
            let backup = try await server.sshca(["backup", "--output", backupFile.path, "--passphrase-file", passphrase.path])
            let atBackup = load.answered.count
            try await load.wait(for: atBackup + 50)
            load.process.stop()
            let received = load.answered
            try #require(backup.succeeded, "\(backup)")
            let restoredHome = dir.child("restored")
            let restored = try await SSHCA.run(["restore", "--home", restoredHome.path, "--passphrase-file", passphrase.path, backupFile.path])
            try #require(restored.succeeded, "\(restored)")
            let inBackup = try await Self.ledgerCertificates(home: restoredHome)
            let answeredBySerial = Dictionary(received.map { ($0.serial, $0.certificate) }, uniquingKeysWith: { a, _ in a })
            // Taken while issuing: certificates were answered before it and after it.
            #expect(inBackup.count >= 10 && received.count > inBackup.count,
                    "the backup should hold the certificates issued before it, and not those after: \(inBackup.count) of \(received.count)")
            #expect(inBackup.keys.sorted() == Array(1...max(1, inBackup.count)), "serials with gaps in the backup")
            for (serial, line) in inBackup {
                guard let sent = answeredBySerial[serial] else { Issue.record("serial \(serial) is in the backup but was never answered"); continue }
                #expect(line.split(separator: " ").prefix(2) == sent.split(separator: " ").prefix(2), "serial \(serial) differs")
            }
            let verified = try await SSHCA.run(["audit", "verify", "--home", restoredHome.path])
            #expect(verified.succeeded, "\(verified)")
            let integrity = try await runProcess("sqlite3", [restoredHome.child("ledger.sqlite").path, "PRAGMA integrity_check"])
            #expect(integrity.stdoutText == "ok\n", "\(integrity)")
        }
    }
}
