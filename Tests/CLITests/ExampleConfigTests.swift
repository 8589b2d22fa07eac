import Foundation
import Testing
import TestSupport

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
