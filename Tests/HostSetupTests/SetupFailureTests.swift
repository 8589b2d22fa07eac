import Common
import Foundation
import Testing
import TestSupport

/// Acceptance item 4: every failure leaves the whole tree (sshd_config, sshd_config.d, CA key,
/// KRL, principals, backup dir) byte-identical; a second run, --dry-run and undo behave.
@Suite("host setup: failure paths, idempotency, dry run, undo")
struct SetupFailureTests {
    enum BadCAKey: String, CaseIterable, Sendable, CustomStringConvertible {
        case privateKey = "a private key"
        case garbage = "random bytes"
        case keyLikeGarbage = "a key line with a damaged blob"
        case dsa = "a DSA key"
        var description: String { rawValue }
    }

    /// Checks a refused run: the exit code, an "error: " line mentioning one of `mentions`.
    func expectRefused(_ result: ProcessResult, exitCode: Int32, mentions: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!result.timedOut && !result.terminatedBySignal, "crashed or hung:\n\(result)", sourceLocation: sourceLocation)
        #expect(result.exitCode == exitCode, "expected exit \(exitCode):\n\(result)", sourceLocation: sourceLocation)
        let errorLines = result.stderrText.split(separator: "\n").filter { $0.hasPrefix("error: ") }.joined(separator: "\n").lowercased()
        #expect(mentions.contains { errorLines.contains($0.lowercased()) },
                "no error line mentions any of \(mentions):\n\(result)", sourceLocation: sourceLocation)
    }

    @Test("an invalid CA key file is refused (65) and nothing changes", arguments: BadCAKey.allCases)
    func invalidCAKey(_ kind: BadCAKey) async throws {
        try await withTreeDirectory("badca") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let file: URL
            switch kind {
            case .privateKey:
                file = try await SSHKeygen.generate(.ed25519, at: dir.child("ca_private")).privateKey
            case .garbage:
                file = dir.child("garbage.pub")
                try writeData(Data((0..<300).map { _ in UInt8.random(in: 0...255) }), to: file)
            case .keyLikeGarbage:
                file = dir.child("damaged.pub")
                try writeText("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDamagedDamagedDamaged sshca-user-ca\n", to: file)
            case .dsa:
                file = try await SSHKeygen.generate(["-t", "dsa", "-b", "1024"], at: dir.child("dsa_ca"), typeName: "dsa").publicKey
            }
            let before = try tree.snapshot()
            let result = try await tree.setup(caKey: file)
            expectRefused(result, exitCode: 65, mentions: ["key", "ca"])
            expectIdentical(try tree.snapshot(), before, "setup with \(kind)")
        }
    }

    @Test("an sshd_config that already fails `sshd -t` is left alone (65)")
    func brokenConfig() async throws {
        try await withTreeDirectory("broken") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"), extra: ["NoSuchDirectiveForSshcaTests yes"])
            let precheck = try await runProcess("/usr/sbin/sshd", ["-t", "-f", tree.sshdConfig.path])
            try #require(!precheck.succeeded, "the broken config passes sshd -t:\n\(precheck)")
            let ca = try await CAFixture.create(in: dir)
            let before = try tree.snapshot()
            let result = try await tree.setup(caKey: ca.userCAPublicKey, ["--disable-passwords"])
            expectRefused(result, exitCode: 65, mentions: ["sshd -t", "NoSuchDirectiveForSshcaTests"])
            expectIdentical(try tree.snapshot(), before, "setup on a config sshd -t rejects")
        }
    }

    @Test("a read-only drop-in directory (a read-only tmpfs: chmod does not stop root): failure, everything rolled back")
    func readOnlyDirectory() async throws {
        try await withTreeDirectory("rofs") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)
            let cloudInit = try Data(contentsOf: tree.dropInDirectory.child("50-cloud-init.conf"))
            let mountPoint = tree.dropInDirectory.path
            let mount = try await runProcess("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", mountPoint])
            guard mount.succeeded else {
                Issue.record("cannot mount a tmpfs here (not permitted in this environment?); the read-only directory case was NOT tested:\n\(mount)")
                return
            }
            do {
                try writeData(cloudInit, to: tree.dropInDirectory.child("50-cloud-init.conf"), mode: 0o644)
                try checked(await runProcess("mount", ["-o", "remount,ro", mountPoint]))
                let probe = FileManager.default.createFile(atPath: tree.dropInDirectory.child("probe").path, contents: Data())
                try #require(!probe, "the read-only mount is writable")

                let before = try tree.snapshot()
                let result = try await tree.setup(caKey: ca.userCAPublicKey, ["--disable-passwords"])
                expectRefused(result, exitCode: 1, mentions: [mountPoint, "read-only"])
                expectIdentical(try tree.snapshot(), before, "setup with a read-only sshd_config.d")
                #expect(!fileExists(tree.caKeyPath) && !fileExists(tree.krlPath), "CA key or KRL left behind")
            } catch {
                _ = try? await runProcess("umount", [mountPoint])
                throw error
            }
            let umount = try await runProcess("umount", [mountPoint])
            #expect(umount.succeeded, "\(umount)")
        }
    }

    struct Override: Sendable, CustomStringConvertible {
        var name: String
        /// The line placed before the Include; "{DIR}" stands for the test directory.
        var line: String
        var setupArguments: [String]
        var keyword: String
        var description: String { name }
    }

    static let overrides: [Override] = [
        Override(name: "TrustedUserCAKeys before the Include", line: "TrustedUserCAKeys {DIR}/other_ca.pub",
                 setupArguments: [], keyword: "trustedusercakeys"),
        Override(name: "PasswordAuthentication yes before the Include, with --disable-passwords",
                 line: "PasswordAuthentication yes", setupArguments: ["--disable-passwords"], keyword: "passwordauthentication"),
    ]

    @Test("an earlier setting that overrides sshca's is named (65) and everything is rolled back", arguments: overrides)
    func overriddenSetting(_ override: Override) async throws {
        try await withTreeDirectory("override") { dir in
            try await SSHKeygen.generate(.ed25519, at: dir.child("other_ca"), comment: "other-ca")
            let line = override.line.replacingOccurrences(of: "{DIR}", with: dir.path)
            let tree = try await DebianTree.create(in: dir.child("tree"), beforeInclude: [line])
            let ca = try await CAFixture.create(in: dir)
            // A running sshd for this config must not be reloaded by a failed setup.
            let sshd = try await TreeSSHD.start(tree)
            defer { sshd.stop() }
            let mark = sshd.logMark()
            let before = try tree.snapshot()
            let result = try await tree.setup(caKey: ca.userCAPublicKey, override.setupArguments)
            expectRefused(result, exitCode: 65, mentions: [override.keyword])
            #expect(result.stderrText.lowercased().contains("overrides"), "the error does not say it is overridden:\n\(result)")
            expectIdentical(try tree.snapshot(), before, "setup against \(override.name)")
            try await Task.sleep(for: .milliseconds(200))
            #expect(sshd.isRunning && !sshd.log(since: mark).contains("SIGHUP"), "a failed setup reloaded sshd:\n\(sshd.log(since: mark))")
        }
    }

    @Test("a second identical run says \"already set up\" and changes nothing")
    func idempotent() async throws {
        try await withTreeDirectory("twice") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)
            let arguments = ["--disable-passwords", "--principal", "deploy=alice,bob"]
            let first = try await tree.setup(caKey: ca.userCAPublicKey, arguments)
            try #require(first.succeeded, "\(first)")
            let afterFirst = try tree.snapshot()
            #expect(afterFirst.paths.contains("sshd_config.d/00-sshca.conf") && afterFirst.paths.contains("sshca_principals/deploy"),
                    "first run wrote:\n\(afterFirst)")

            let second = try await tree.setup(caKey: ca.userCAPublicKey, arguments)
            #expect(second.succeeded, "\(second)")
            #expect(second.stdoutText.contains("already set up"), "second run:\n\(second)")
            #expect(!second.stdoutText.contains("created") && !second.stdoutText.contains("updated"), "second run:\n\(second)")
            expectIdentical(try tree.snapshot(), afterFirst, "second identical setup")

            let dryRun = try await tree.setup(caKey: ca.userCAPublicKey, arguments + ["--dry-run"])
            #expect(dryRun.succeeded && dryRun.stdoutText.contains("already set up"), "dry run after setup:\n\(dryRun)")
            expectIdentical(try tree.snapshot(), afterFirst, "dry run after setup")
        }
    }

    /// Found by fuzzing: a line ending in a stray "\r" lost it each time the managed block was
    /// rewritten (the "\r" and the line's "\n" were taken as one line break).
    @Test("an sshd_config with CRLF line ends and stray carriage returns: setup, a second run changes nothing, a changed one only its blocks, undo restores it byte for byte")
    func carriageReturns() async throws {
        try await withTreeDirectory("crlf") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"), includeDirectory: false)
            let original = try readText(tree.sshdConfig)
            let edited = "# edited elsewhere\r\r\r\n" + original.replacingOccurrences(of: "\n", with: "\r\n")
            try writeText(edited, to: tree.sshdConfig)
            // sshd_config without sshca's blocks, split at "\n" bytes only.
            func withoutBlocks() throws -> String {
                var kept: [String] = [], inside = false
                let text = try readText(tree.sshdConfig)
                for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map({ String(decoding: $0, as: UTF8.self) }) {
                    if line.hasPrefix("# BEGIN sshca") { inside = true; continue }
                    if inside { if line.hasPrefix("# END sshca") { inside = false }; continue }
                    kept.append(line)
                }
                return kept.joined(separator: "\n")
            }
            let ca = try await CAFixture.create(in: dir)
            let before = try tree.snapshot()
            let arguments = ["--disable-passwords", "--principal", "deploy=alice"]
            let first = try await tree.setup(caKey: ca.userCAPublicKey, arguments)
            try #require(first.succeeded, "\(first)")
            let afterFirst = try tree.snapshot()
            let effective = try await runProcess("/usr/sbin/sshd", ["-T", "-f", tree.sshdConfig.path, "-C", "user=nobody,host=localhost,addr=127.0.0.1"])
            #expect(effective.stdoutText.contains("trustedusercakeys \(tree.caKeyPath.path)\n")
                    && effective.stdoutText.contains("passwordauthentication no\n"), "sshd -T after setup:\n\(effective)")

            #expect(try withoutBlocks() == edited, "setup changed sshd_config outside its block")
            let second = try await tree.setup(caKey: ca.userCAPublicKey, arguments)
            #expect(second.succeeded && second.stdoutText.contains("already set up"), "second run:\n\(second)")
            expectIdentical(try tree.snapshot(), afterFirst, "second setup on a CRLF sshd_config")
            // A changed mapping rewrites the blocks; every other byte stays.
            let third = try await tree.setup(caKey: ca.userCAPublicKey, ["--disable-passwords", "--principal", "deploy=alice,bob"])
            #expect(third.succeeded, "\(third)")
            #expect(try withoutBlocks() == edited, "rewriting the blocks changed sshd_config outside them")

            let undo = try await tree.undo()
            #expect(undo.succeeded, "\(undo)")
            expectIdentical(try tree.snapshot(), before, "setup then undo on a CRLF sshd_config")
        }
    }

    @Test("a --principal user name that would leave the principals directory, or is no account name, is refused (65) with nothing changed")
    func principalUserNames() async throws {
        try await withTreeDirectory("names") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)
            let before = try tree.snapshot()
            for user in ["..", ".", "-deploy", "de/ploy", "de ploy", ""] {
                let result = try await tree.setup(caKey: ca.userCAPublicKey, ["--principal=\(user)=alice"])
                #expect(result.exitCode == 65 && result.stderrText.contains("not a valid user name"), "--principal \(user)=alice:\n\(result)")
                expectIdentical(try tree.snapshot(), before, "--principal \(user)=alice")
            }
        }
    }

    @Test("--dry-run prints the planned content and changes nothing")
    func dryRun() async throws {
        try await withTreeDirectory("dry") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)
            let before = try tree.snapshot()
            let result = try await tree.setup(caKey: ca.userCAPublicKey, ["--dry-run", "--disable-passwords", "--principal", "deploy=alice,bob"])
            #expect(result.succeeded, "\(result)")
            let out = result.stdoutText
            let caBlob = keyTypeAndBlob(try readText(ca.userCAPublicKey))
            for expected in [
                tree.dropIn.path, "+TrustedUserCAKeys \(tree.caKeyPath.path)", "+RevokedKeys \(tree.krlPath.path)",
                "+PasswordAuthentication no", "+KbdInteractiveAuthentication no", "+Match User deploy",
                "AuthorizedPrincipalsFile \(tree.principalsDirectory.path)/%u", tree.caKeyPath.path, "+" + caBlob,
                tree.krlPath.path, tree.principalsDirectory.child("deploy").path, "+alice", "+bob",
            ] {
                #expect(out.contains(expected), "the dry run does not show \"\(expected)\":\n\(out)")
            }
            expectIdentical(try tree.snapshot(), before, "--dry-run")
        }
    }

    enum Layout: String, CaseIterable, Sendable, CustomStringConvertible {
        case dropIn = "Include dir: drop-in, with --principal"
        case managedBlock = "no Include: managed block"
        case managedBlockWithPrincipals = "no Include: managed block, with --principal"
        var includeDirectory: Bool { self == .dropIn }
        var mapsPrincipals: Bool { self != .managedBlock }
        var description: String { rawValue }
    }

    @Test("host setup then host undo returns the tree to its byte-identical pre-setup state", arguments: Layout.allCases)
    func undo(_ layout: Layout) async throws {
        try await withTreeDirectory("undo") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"), includeDirectory: layout.includeDirectory)
            let ca = try await CAFixture.create(in: dir)
            let before = try tree.snapshot()
            let configBefore = try readText(tree.sshdConfig)
            let arguments = ["--disable-passwords"] + (layout.mapsPrincipals ? ["--principal", "deploy=alice"] : [])
            let setup = try await tree.setup(caKey: ca.userCAPublicKey, arguments)
            try #require(setup.succeeded, "host setup failed in layout \(layout):\n\(setup)")
            let afterSetup = try tree.snapshot()
            #expect(!afterSetup.differences(from: before).isEmpty, "setup changed nothing")
            if layout.includeDirectory {
                #expect(fileExists(tree.dropIn), "no drop-in in the Include dir")
                #expect(try readText(tree.sshdConfig) == configBefore, "sshd_config changed although it has an Include dir")
            } else {
                // No Include dir: a managed block at the top of sshd_config.
                let config = try readText(tree.sshdConfig)
                #expect(config != configBefore && config.contains("TrustedUserCAKeys \(tree.caKeyPath.path)"), "sshd_config:\n\(config)")
                #expect(!fileExists(tree.dropIn))
            }
            // Whatever the layout, sshd reads the intended values, and the rest of the config still
            // applies to everyone (the Port after the block, an unmapped user's principals rule).
            let port = try tree.port()
            let effective = try await runProcess("/usr/sbin/sshd", ["-T", "-f", tree.sshdConfig.path, "-C", "user=nobody,host=localhost,addr=127.0.0.1"])
            #expect(effective.stdoutText.contains("trustedusercakeys \(tree.caKeyPath.path)\n")
                    && effective.stdoutText.contains("passwordauthentication no\n")
                    && effective.stdoutText.contains("usepam no\n")
                    && effective.stdoutText.contains("port \(port)\n")
                    && effective.stdoutText.contains("authorizedprincipalsfile none\n"), "sshd -T after setup:\n\(effective)")

            let undo = try await tree.undo()
            #expect(undo.succeeded, "\(undo)")
            expectIdentical(try tree.snapshot(), before, "setup then undo")
        }
    }

    @Test("an existing valid KRL is never replaced; an invalid one is refused (65) with nothing changed")
    func existingKRL() async throws {
        try await withTreeDirectory("krl") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)

            // Invalid: sshd would refuse every key login with it; setup must not point sshd at it.
            try writeText("not a KRL\n", to: tree.krlPath, mode: 0o644)
            let before = try tree.snapshot()
            let refused = try await tree.setup(caKey: ca.userCAPublicKey)
            expectRefused(refused, exitCode: 65, mentions: [tree.krlPath.path, "krl"])
            expectIdentical(try tree.snapshot(), before, "setup with an invalid installed KRL")

            // Valid (the CA's own, version > 0): kept byte for byte.
            let valid = try Data(contentsOf: ca.krlFile)
            try writeData(valid, to: tree.krlPath, mode: 0o644)
            let setup = try await tree.setup(caKey: ca.userCAPublicKey)
            #expect(setup.succeeded, "\(setup)")
            #expect(try Data(contentsOf: tree.krlPath) == valid, "setup replaced an installed valid KRL")
        }
    }

    @Test("a pid file naming a process that is not sshd: no signal is sent to it")
    func stalePidFile() async throws {
        try await withTreeDirectory("stalepid") { dir in
            let tree = try await DebianTree.create(in: dir.child("tree"))
            let ca = try await CAFixture.create(in: dir)
            // `sleep` dies of SIGHUP (default disposition): if setup signals it, it is gone.
            let bystander = try BackgroundProcess("sleep", ["120"], stdoutFile: tree.run.child("sleep.out"), stderrFile: tree.run.child("sleep.err"))
            defer { bystander.stop() }
            try writeText("\(bystander.pid)\n", to: tree.pidFile)
            let setup = try await tree.setup(caKey: ca.userCAPublicKey)
            #expect(setup.succeeded, "\(setup)")
            #expect(!setup.stdoutText.contains("SIGHUP"), "setup claims to have signalled pid \(bystander.pid):\n\(setup)")
            try await Task.sleep(for: .milliseconds(200))
            #expect(bystander.isRunning, "setup signalled a process that is not sshd (pid \(bystander.pid) from the pid file)")
        }
    }
}
