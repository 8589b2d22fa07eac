import Common
import Foundation
import Testing
import TestSupport

@Suite("Which CA home the CLI uses: --home, then $SSHCA_HOME, then ./ca-data")
struct HomeResolutionTests {
    @Test("SSHCA_HOME and ./ca-data are used when --home is absent")
    func homeResolution() async throws {
        try await withTemporaryDirectory { dir in
            // $SSHCA_HOME
            let envHome = dir.child("env-home")
            let created = try await SSHCA.run(
                ["init", "--no-passphrase"], environment: ["SSHCA_HOME": envHome.path], currentDirectory: dir)
            try #require(created.succeeded, "\(created)")
            #expect(fileExists(envHome.child("user_ca.pub")), "init ignored SSHCA_HOME")
            #expect(!fileExists(dir.child("ca-data")), "init used ./ca-data although SSHCA_HOME was set")

            let viaEnv = try await SSHCA.run(["ca-key"], environment: ["SSHCA_HOME": envHome.path], currentDirectory: dir)
            #expect(viaEnv.succeeded, "\(viaEnv)")
            #expect(keyTypeAndBlob(viaEnv.stdoutText) == keyTypeAndBlob(try readText(envHome.child("user_ca.pub"))))

            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
            let signed = try await SSHCA.run(
                ["sign", "--key-id", "env", "--principals", "alice", key.publicKey.path],
                environment: ["SSHCA_HOME": envHome.path], currentDirectory: dir)
            try #require(signed.succeeded, "\(signed)")
            let listing = try await SSHKeygen.listCertificate(key.certificate)
            #expect(listing.signingCAFingerprint == (try await SSHKeygen.fingerprint(envHome.child("user_ca.pub"))))

            // --home wins over $SSHCA_HOME.
            let other = try await Fixtures.copyCAHome(.ecdsaP256, into: dir, name: "explicit-home")
            let explicit = try await SSHCA.run(
                ["ca-key", "--home", other.path], environment: ["SSHCA_HOME": envHome.path], currentDirectory: dir)
            #expect(keyTypeAndBlob(explicit.stdoutText) == keyTypeAndBlob(try readText(other.child("user_ca.pub"))), "\(explicit)")

            // Neither: ./ca-data in the working directory.
            let work = try dir.child("work").creatingDirectory()
            let defaultInit = try await SSHCA.run(["init", "--no-passphrase"], currentDirectory: work)
            try #require(defaultInit.succeeded, "\(defaultInit)")
            #expect(fileExists(work.child("ca-data").child("user_ca.pub")), "init did not create ./ca-data")
            let defaultKey = try await SSHCA.run(["ca-key"], currentDirectory: work)
            #expect(keyTypeAndBlob(defaultKey.stdoutText) == keyTypeAndBlob(try readText(work.child("ca-data").child("user_ca.pub"))))
        }
    }

    @Test("plain sshca inspect prints the certificate and a verdict")
    func plainInspect() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
            let signed = try await sshcaSign(home: home, ["--key-id", "plain-inspect-id", "--principals", "alice,bob"], publicKey: key.publicKey)
            try #require(signed.succeeded, "\(signed)")
            let result = try await SSHCA.run(["inspect", key.certificate.path])
            #expect(result.exitCode == 0, "\(result)")
            #expect(result.stdoutText.contains("plain-inspect-id"), "\(result)")
            #expect(result.stdoutText.contains("alice") && result.stdoutText.contains("bob"), "\(result)")
            #expect(result.stdoutText.contains(try await SSHKeygen.fingerprint(home.child("user_ca.pub"))), "no CA fingerprint:\n\(result)")
        }
    }
}
