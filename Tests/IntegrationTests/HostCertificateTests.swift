import Common
import Foundation
import Testing
import TestSupport

@Suite("Host certificates served by sshd and trusted through @cert-authority")
struct HostCertificateTests {
    /// sshd with its host key certified by `home`'s host CA for `principals`; a user cert for login.
    private func startCertifiedServer(
        dir: URL, home: URL, principals: String
    ) async throws -> (SSHD, KeyPair, URL) {
        let sshd = try await SSHD.prepare(in: dir.child("sshd"))
        let hostKey = KeyPair(privateKey: sshd.hostKey, type: "ed25519")
        let signed = try await sshcaSign(
            home: home, ["--host", "--key-id", "test sshd", "--principals", principals], publicKey: hostKey.publicKey)
        try #require(signed.succeeded, "\(signed)")
        let hostCert = hostKey.certificate
        let listing = try await SSHKeygen.listCertificate(hostCert)
        #expect(listing.kind == "host")
        #expect(listing.criticalOptions.isEmpty && listing.extensions.isEmpty, "host certs carry no options:\n\(listing.raw)")
        #expect(listing.signingCAFingerprint == (try await SSHKeygen.fingerprint(home.child("host_ca.pub"))))

        try await sshd.start(trustedUserCAKeys: home.child("user_ca.pub"), extraConfig: ["HostCertificate \(hostCert.path)"])
        let user = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id_user")
        let userCert = try await signForLogin(home: home, key: user)
        return (sshd, user, userCert)
    }

    @Test("ssh with StrictHostKeyChecking=yes trusts the host CA, and only it")
    func hostCertificateIsTrusted() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let (sshd, user, userCert) = try await startCertifiedServer(dir: dir, home: home, principals: "localhost,127.0.0.1")
            defer { sshd.stop() }
            let hostCA = keyTypeAndBlob(try readText(home.child("host_ca.pub")))

            let wildcard = dir.child("known_hosts_wildcard")
            try writeText("@cert-authority * \(hostCA)\n", to: wildcard)
            let r1 = try await sshd.ssh(
                identity: user.privateKey, certificate: userCert, knownHosts: wildcard, extraOptions: ["-v"])
            expectLogin(r1, sshd: sshd)
            #expect(r1.stderrText.contains("Server host certificate: ssh-ed25519-cert-v01@openssh.com"), "\(r1)")
            #expect(r1.stderrText.contains("ID \"test sshd\""), "\(r1)")

            let explicit = dir.child("known_hosts_explicit")
            try writeText("@cert-authority 127.0.0.1,[127.0.0.1]:\(sshd.port) \(hostCA)\n", to: explicit)
            expectLogin(
                try await sshd.ssh(identity: user.privateKey, certificate: userCert, knownHosts: explicit), sshd: sshd)

            // Another CA's host key in known_hosts: strict checking must fail.
            let other = try await Fixtures.copyCAHome(.ecdsaP256, into: dir, name: "other-home")
            let wrong = dir.child("known_hosts_wrong")
            try writeText("@cert-authority * \(keyTypeAndBlob(try readText(other.child("host_ca.pub"))))\n", to: wrong)
            let r3 = try await sshd.ssh(identity: user.privateKey, certificate: userCert, knownHosts: wrong)
            #expect(!r3.succeeded && !r3.stdoutText.contains("ok"), "\(r3)")
            #expect(r3.stderrText.contains("Host key verification failed"), "\(r3)")

            // The user CA is not the host CA either.
            let userCAFile = dir.child("known_hosts_user_ca")
            try writeText("@cert-authority * \(keyTypeAndBlob(try readText(home.child("user_ca.pub"))))\n", to: userCAFile)
            let r4 = try await sshd.ssh(identity: user.privateKey, certificate: userCert, knownHosts: userCAFile)
            #expect(!r4.succeeded && r4.stderrText.contains("Host key verification failed"), "\(r4)")
        }
    }

    @Test("a host certificate for another name is rejected by the client")
    func hostCertificateForOtherNameIsRejected() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let (sshd, user, userCert) = try await startCertifiedServer(dir: dir, home: home, principals: "other.example.com")
            defer { sshd.stop() }
            let knownHosts = dir.child("known_hosts")
            try writeText("@cert-authority * \(keyTypeAndBlob(try readText(home.child("host_ca.pub"))))\n", to: knownHosts)
            let result = try await sshd.ssh(identity: user.privateKey, certificate: userCert, knownHosts: knownHosts)
            #expect(!result.succeeded, "\(result)")
            #expect(result.stderrText.contains("Host key verification failed"), "\(result)")
            #expect(result.stderrText.contains("not a listed principal") || result.stderrText.contains("Certificate invalid"), "\(result)")
        }
    }
}
