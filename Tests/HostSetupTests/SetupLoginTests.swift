import Common
import Foundation
import Testing
import TestSupport

/// Acceptance items 1-3: after `sshca host setup` in a Debian-style tree, a real sshd started from
/// that tree's sshd_config accepts certificate logins (and only the intended ones).
@Suite("host setup: logins on a real sshd")
struct SetupLoginTests {
    @Test("setup on a running sshd: SIGHUP to the pid file's sshd, then a certificate login works with no authorized_keys")
    func certificateLoginAfterReload() async throws {
        try await withTreeDirectory("login") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)
            let key = try await makeClientKey(tree.client, "id_me")
            let certificate = try await ca.sign(key, keyID: "me-login", principals: [currentUserName])
            let configBefore = try readText(tree.sshdConfig)
            #expect(configBefore.contains("AuthorizedKeysFile none\n"))

            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }
            let pid = try #require(sshd.pid)

            // Before setup the server trusts no CA and has no authorized_keys: refused.
            let before = try await sshd.ssh(identity: key.privateKey, certificate: certificate)
            #expect(!before.succeeded, "certificate login worked before setup:\n\(before)")
            #expect(before.stderrText.contains("Permission denied"), "\(before)")

            let mark = sshd.logMark()
            let setup = try await tree.setup(caKey: ca.userCAPublicKey)
            try #require(setup.succeeded, "host setup failed:\n\(setup)")
            #expect(setup.stdoutText.contains("sent SIGHUP to sshd (pid \(pid) from \(tree.pidFile.path))"),
                    "setup did not signal the pid file's sshd:\n\(setup)")

            // Debian layout: a drop-in read first, sshd_config itself untouched.
            #expect(try readText(tree.sshdConfig) == configBefore, "sshd_config changed although it has an Include dir")
            let dropIn = try readText(tree.dropIn)
            #expect(dropIn.contains("TrustedUserCAKeys \(tree.caKeyPath.path)\n"), "drop-in:\n\(dropIn)")
            #expect(dropIn.contains("RevokedKeys \(tree.krlPath.path)\n"), "drop-in:\n\(dropIn)")
            #expect(keyTypeAndBlob(try readText(tree.caKeyPath)) == keyTypeAndBlob(try readText(ca.userCAPublicKey)),
                    "the installed CA key is not the one given")
            let krlCheck = try await runProcess("ssh-keygen", ["-Q", "-f", tree.krlPath.path, key.publicKey.path])
            #expect(krlCheck.exitCode == 0, "ssh-keygen cannot use the installed KRL or it revokes the key:\n\(krlCheck)")

            let after = try await sshd.sshEventually(identity: key.privateKey, certificate: certificate)
            let log = sshd.log(since: mark)
            #expect(after.succeeded && after.stdoutText == "ok\n", "certificate login after setup failed:\n\(after)\n--- sshd log ---\n\(log)")
            #expect(log.contains("Received SIGHUP; restarting."), "sshd did not get a SIGHUP:\n\(log)")
            #expect(sshd.isRunning && sshd.pid == pid, "the sshd we started is gone (pid \(pid))")
            #expect(log.contains("Accepted publickey for \(currentUserName)") && log.contains("ID me-login (serial"),
                    "the accepted login was not the certificate:\n\(log)")
            // Without the certificate the same key is refused: nothing but the CA grants access.
            // (A copy under another name: ssh would pick up id_me-cert.pub next to id_me by itself.)
            let plainKey = try key.copy(to: tree.client, name: "id_me_plain")
            let plain = try await sshd.ssh(identity: plainKey.privateKey, certificate: nil)
            #expect(!plain.succeeded, "the plain key logged in without a certificate:\n\(plain)")
        }
    }

    @Test("--disable-passwords refuses a throwaway user's password; a control setup without it accepts the password")
    func disablePasswords() async throws {
        try await ensureSSHPass()
        try await withThrowawayUser(prefix: "sshcapw") { user in
            try await withTreeDirectory("nopw") { dir in
                let ca = try await CAFixture.create(in: dir)
                let flagTree = try await DebianTree.create(in: dir.child("flag"))
                let controlTree = try await DebianTree.create(in: dir.child("control"))
                let flagSetup = try await flagTree.setup(caKey: ca.userCAPublicKey, ["--disable-passwords"])
                try #require(flagSetup.succeeded, "\(flagSetup)")
                let controlSetup = try await controlTree.setup(caKey: ca.userCAPublicKey)
                try #require(controlSetup.succeeded, "\(controlSetup)")
                #expect(try readText(flagTree.dropIn).contains("PasswordAuthentication no\n"))
                #expect(!(try readText(controlTree.dropIn).contains("PasswordAuthentication")))

                let flagSSHD = try await TreeSSHD.start(flagTree)
                defer { flagSSHD.stop() }
                let controlSSHD = try await TreeSSHD.start(controlTree)
                defer { controlSSHD.stop() }

                // Control: cloud-init's `PasswordAuthentication yes` is in force; the password works
                // and a wrong one does not (so the password really is what is checked).
                let control = try await controlSSHD.passwordLogin(user: user.name, password: user.password, command: "id -un")
                #expect(control.succeeded && control.stdoutText == "\(user.name)\n",
                        "control: password login failed:\n\(control)\n--- sshd log ---\n\(controlSSHD.log)")
                let wrong = try await controlSSHD.passwordLogin(user: user.name, password: user.password + "x")
                #expect(!wrong.succeeded, "control: a wrong password logged in:\n\(wrong)")

                // With --disable-passwords the 00-sshca.conf drop-in wins over 50-cloud-init.conf.
                let refused = try await flagSSHD.passwordLogin(user: user.name, password: user.password)
                #expect(!refused.succeeded, "password login worked after --disable-passwords:\n\(refused)")
                #expect(refused.stderrText.contains("Permission denied (publickey)"),
                        "sshd still offers password or keyboard-interactive authentication:\n\(refused)")

                // ...while certificate login for that user works.
                let key = try await makeClientKey(flagTree.client, "id_user")
                let certificate = try await ca.sign(key, keyID: "pw-user", principals: [user.name])
                let login = try await flagSSHD.ssh(identity: key.privateKey, certificate: certificate, user: user.name, command: "id -un")
                #expect(login.succeeded && login.stdoutText == "\(user.name)\n",
                        "certificate login failed after --disable-passwords:\n\(login)\n--- sshd log ---\n\(flagSSHD.log)")
            }
        }
    }

    @Test("--principal deploy_X=alice,bob: alice and bob log in as deploy_X, mallory does not; unmapped users keep principal == login name")
    func principalMapping() async throws {
        try await withThrowawayUser(prefix: "deploy_") { deploy in
            try await withTreeDirectory("map") { dir in
                let ca = try await CAFixture.create(in: dir)
                let tree = try await DebianTree.create(in: dir.child("tree"))
                let setup = try await tree.setup(caKey: ca.userCAPublicKey, ["--principal", "\(deploy.name)=alice,bob"])
                try #require(setup.succeeded, "\(setup)")
                #expect(try readText(tree.principalsDirectory.child(deploy.name)) == "alice\nbob\n")

                let sshd = try await TreeSSHD.start(tree)
                defer { sshd.stop() }

                func certificate(_ name: String, principals: [String]) async throws -> KeyPair {
                    let key = try await makeClientKey(tree.client, "id_\(name)")
                    try await ca.sign(key, keyID: name, principals: principals)
                    return key
                }
                let alice = try await certificate("alice", principals: ["alice"])
                let bob = try await certificate("bob", principals: ["bob"])
                let mallory = try await certificate("mallory", principals: ["mallory"])
                let ownName = try await certificate("own-name", principals: [deploy.name])
                let me = try await certificate("me", principals: [currentUserName])

                func login(_ key: KeyPair, as user: String) async throws -> ProcessResult {
                    try await sshd.ssh(identity: key.privateKey, certificate: key.certificate, user: user, command: "id -un")
                }
                for key in [alice, bob] {
                    let result = try await login(key, as: deploy.name)
                    #expect(result.succeeded && result.stdoutText == "\(deploy.name)\n",
                            "\(key.privateKey.lastPathComponent) could not log in as \(deploy.name):\n\(result)\n--- sshd log ---\n\(sshd.log)")
                }
                let refusedMallory = try await login(mallory, as: deploy.name)
                #expect(!refusedMallory.succeeded, "mallory logged in as \(deploy.name):\n\(refusedMallory)")
                // A mapped user accepts only its mapped principals, not its own name.
                let refusedOwn = try await login(ownName, as: deploy.name)
                #expect(!refusedOwn.succeeded, "a certificate for principal \(deploy.name) logged in although only alice,bob are mapped:\n\(refusedOwn)")
                // The mapping does not leak to other users.
                let aliceAsMe = try await login(alice, as: currentUserName)
                #expect(!aliceAsMe.succeeded, "alice logged in as the unmapped user \(currentUserName):\n\(aliceAsMe)")
                // Unmapped users keep the default rule.
                let mine = try await login(me, as: currentUserName)
                #expect(mine.succeeded && mine.stdoutText == "\(currentUserName)\n",
                        "the unmapped user \(currentUserName) cannot log in with a certificate for its own name:\n\(mine)\n--- sshd log ---\n\(sshd.log)")
            }
        }
    }
}
