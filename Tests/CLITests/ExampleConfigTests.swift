import Common
import Foundation
import Testing
import TestSupport
@testable import sshca

/// ca-config/sshca.toml is what `sshca init` writes, and the README's role examples work on it.
@Suite("ca-config/sshca.toml")
struct ExampleConfigTests {
    @Test("ca-config/sshca.toml is byte for byte what sshca init writes (and init --print-config prints); the README's deploy token works on a fresh home")
    func exampleIsWhatInitWrites() async throws {
        try await withTemporaryDirectory { dir in
            let example = try readText(packageRoot.child("ca-config").child("sshca.toml"))
            let printed = try await SSHCA.run(["init", "--print-config"])
            #expect(printed.succeeded && printed.stdoutText == example, "init --print-config differs from ca-config/sshca.toml (regenerate it: sshca init --print-config > ca-config/sshca.toml)")
            let home = dir.child("ca")
            try checked(try await SSHCA.run(["init", "--home", home.path, "--no-passphrase"]))
            #expect(try readText(home.child("sshca.toml")) == example, "sshca init wrote another sshca.toml than ca-config/sshca.toml")
            #expect(!FileManager.default.fileExists(atPath: dir.child("ca-data").path), "--print-config created a CA")
            let token = try await SSHCA.run(["token", "create", "--role", "deploy", "--name", "ci", "--ttl", "30d", "--home", home.path])
            #expect(token.succeeded, "the README's `token create --role deploy` fails on a fresh home: \(token)")
        }
    }
}

/// The completion scripts ArgumentParser writes load in their shells and know the subcommands.
@Suite("shell completion")
struct CompletionTests {
    @Test("bash: the script loads, registers a completion for sshca, and completes `sshca con` to configure and `sshca host s` to setup")
    func bash() async throws {
        try await withTemporaryDirectory { dir in
            let script = try await SSHCA.run(["--generate-completion-script", "bash"])
            #expect(script.succeeded && script.stdoutText.contains("complete"), "\(script)")
            let file = dir.child("sshca.bash")
            try writeText(script.stdoutText, to: file)
            let sshca = try SSHCA.executableURL().path
            // Complete as bash would: COMP_WORDS/COMP_CWORD, then the registered function.
            let probe = """
            PATH="\(URL(fileURLWithPath: sshca).deletingLastPathComponent().path):$PATH"
            source \(file.path)
            spec=$(complete -p sshca) || exit 3
            fn=$(echo "$spec" | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')
            COMP_WORDS=(sshca con); COMP_CWORD=1; COMP_LINE="sshca con"; COMP_POINT=${#COMP_LINE}
            $fn sshca con sshca; echo "1:${COMPREPLY[*]}"
            COMP_WORDS=(sshca host s); COMP_CWORD=2; COMP_LINE="sshca host s"; COMP_POINT=${#COMP_LINE}
            $fn sshca s host; echo "2:${COMPREPLY[*]}"
            """
            let run = try await runProcess("bash", ["-c", probe])
            #expect(run.succeeded && run.stdoutText.contains("1:configure") && run.stdoutText.contains("setup"), "\(run)")
        }
    }
}

/// The launchd agent in the README (no macOS here to load it): it is a property list Python's
/// plistlib reads, and its command line is one sshca accepts.
@Suite("README's launchd agent")
struct LaunchdAgentTests {
    @Test("the README's plist parses (plistlib), runs every 15 minutes, and its ProgramArguments are `sshca login --renew-before 2h --unattended`, which parses")
    func plist() async throws {
        let readme = try readText(packageRoot.child("README.md"))
        let start = try #require(readme.range(of: "<?xml version=\"1.0\""))
        let end = try #require(readme.range(of: "</plist>", range: start.upperBound..<readme.endIndex))
        let xml = String(readme[start.lowerBound..<end.upperBound])
        let script = """
        import plistlib, sys, json
        p = plistlib.loads(sys.stdin.buffer.read())
        print(json.dumps({"args": p["ProgramArguments"], "interval": p["StartInterval"], "label": p["Label"]}))
        """
        let parsed = try await runProcess("python3", ["-c", script], stdin: Data(xml.utf8))
        #expect(parsed.succeeded, "\(parsed)")
        let json = try #require(try JSONSerialization.jsonObject(with: parsed.stdout) as? [String: Any])
        let args = try #require(json["args"] as? [String])
        #expect(args == ["/usr/local/bin/sshca", "login", "--renew-before", "2h", "--unattended"] && json["interval"] as? Int == 900, "\(json)")
        #expect(throws: Never.self, "\(args)") { _ = try sshca.SSHCA.parseAsRoot(Array(args.dropFirst())) }
    }
}
