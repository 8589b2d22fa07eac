import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// KRLs carry no signature section (OpenSSH removed them in 9.4 and may refuse KRLs with one);
/// they are authenticated by a detached SSHSIG that ssh-keygen -Y verify accepts, served at
/// /v1/krl.sig with the KRL's ETag (issue 12 item 13).
@Suite("service: detached KRL signatures")
struct KRLSignatureTests {
    @Test("every KRL the service publishes has no signature section; /v1/krl.sig verifies with ssh-keygen -Y verify and carries the KRL's ETag; an old KRL with the new signature is refused by krl-sync")
    func detachedSignature() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let security = try await server.token(role: "security", name: "sec")
            let engineer = try await server.token(role: "engineer", name: "dave")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let caKey = server.home.child("user_ca.pub")
            var previous: (krl: URL, etag: String)? = nil
            for round in 0..<3 {
                if round > 0 {
                    #expect(try await server.requestCertificate(try publicKeyJSON(key), authorization: "Bearer \(engineer)").status == 201)
                    let revoke = try await server.http("POST", "/v1/revocations", json: "{\"serial\":\(round),\"reason\":\"test\"}",
                                                       headers: ["Authorization": "Bearer \(security)"])
                    #expect(revoke.status == 201)
                }
                let krlReply = try await server.http("GET", "/v1/krl")
                let sigReply = try await server.http("GET", "/v1/krl.sig")
                #expect(krlReply.status == 200 && sigReply.status == 200, "\(krlReply.status) \(sigReply.status)")
                let krl = dir.child("served-\(round).krl"), sig = dir.child("served-\(round).krl.sig")
                try krlReply.body.write(to: krl)
                try sigReply.body.write(to: sig)
                #expect(try KRL.parse(Array(krlReply.body)).signatures.isEmpty, "round \(round): the served KRL has a signature section")
                #expect(try KRL.parse(Array(try Data(contentsOf: server.home.child("revoked.krl")))).signatures.isEmpty, "round \(round): revoked.krl has a signature section")
                let verified1 = try await sshKeygenVerify(krl: krl, signature: sig, caKey: caKey, in: dir)
                #expect(verified1.verified, "ssh-keygen -Y verify: \(verified1.result)")
                let verified2 = try await sshKeygenVerify(krl: server.home.child("revoked.krl"), signature: server.home.child("revoked.krl.sig"), caKey: caKey, in: dir)
                #expect(verified2.verified, "ssh-keygen -Y verify: \(verified2.result)")
                let etags = try await (runProcess("curl", ["-sS", "-D", "-", "-o", "/dev/null", server.url + "/v1/krl"]), runProcess("curl", ["-sS", "-D", "-", "-o", "/dev/null", server.url + "/v1/krl.sig"]))
                func etag(_ r: ProcessResult) -> String? {
                    r.stdoutText.split(separator: "\r\n").first { $0.lowercased().hasPrefix("etag:") }.map { String($0.dropFirst(5)).trimmingCharacters(in: .whitespaces) }
                }
                #expect(etag(etags.0) != nil && etag(etags.0) == etag(etags.1), "ETags differ: \(etags.0.stdoutText) / \(etags.1.stdoutText)")
                if let previous { #expect(previous.etag != etag(etags.0)) }
                previous = (krl, etag(etags.0) ?? "")
            }
            // The newest signature with an older KRL does not verify: they do not belong together.
            let mixed = dir.child("mixed.krl")
            try Data(contentsOf: dir.child("served-1.krl")).write(to: mixed)
            try Data(contentsOf: dir.child("served-2.krl.sig")).write(to: URL(fileURLWithPath: mixed.path + ".sig"))
            let installed = dir.child("installed.krl")
            let sync = try await SSHCA.run(["host", "krl-sync", "--from", mixed.path, "--to", installed.path, "--ca-key", caKey.path])
            #expect(sync.exitCode == 65 && sync.stderrText.contains("does not verify"), "\(sync)")
            #expect(!fileExists(installed))
            // From the service, the pair is fetched together and installed.
            let fromURL = try await SSHCA.run(["host", "krl-sync", "--from", server.url, "--to", installed.path, "--ca-key", caKey.path])
            #expect(fromURL.succeeded, "\(fromURL)")
            #expect(try Data(contentsOf: installed) == (try Data(contentsOf: dir.child("served-2.krl"))))
        }
    }
}
