import Common
import Foundation
import Testing
import TestSupport
import Authority
import Service

/// Hostile and broken requests: each is a 4xx with the one JSON error shape and a sentence a
/// person can act on, failed sign-ins are audited and rate-limited, and the service keeps serving.
@Suite("service: bad input")
struct ServiceBadInputTests {
    @Test("malformed JSON, oversized bodies, bad, weak and private keys, unknown endpoints: 4xx with a clear JSON error, then a good request still works")
    func malformedRequests() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "dave")
            let auth = ["Authorization": "Bearer \(token)"]
            let good = try await SSHKeygen.generate(.ed25519, at: dir.child("good"), comment: "good")
            let weak = try await runProcess("ssh-keygen", ["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", dir.child("weak").path])
            try #require(weak.succeeded)
            let weakLine = try readText(dir.child("weak.pub")).trimmingCharacters(in: .whitespacesAndNewlines)
            let privateText = try readText(good.privateKey).replacingOccurrences(of: "\n", with: "\\n")

            let big = dir.child("big.json")
            try writeText("{\"publicKey\":\"" + String(repeating: "A", count: 70_000) + "\"}", to: big)
            let cases: [(String, String?, URL?, Int, String, String)] = [
                ("not JSON", "{\"publicKey\": ", nil, 400, "bad-json", "not the JSON"),
                ("missing key", "{\"principals\":[\"dave\"]}", nil, 400, "bad-json", "publicKey"),
                ("wrong type", "{\"publicKey\": 42}", nil, 400, "bad-json", "publicKey"),
                ("garbage key", "{\"publicKey\":\"ssh-ed25519 AAAA!!!!\"}", nil, 400, "bad-key", "base64"),
                ("weak RSA", "{\"publicKey\":\"\(weakLine)\"}", nil, 400, "bad-key", "1024"),
                ("private key", "{\"publicKey\":\"\(privateText)\"}", nil, 400, "bad-key", "private key"),
                ("bad validity", try publicKeyJSON(good, extra: ",\"validity\":\"forever\""), nil, 400, "bad-request", "validity"),
                ("oversized", nil, big, 413, "too-large", "over 65536 bytes"),
            ]
            for (name, json, file, status, code, words) in cases {
                let reply = try await server.http("POST", "/v1/certificates", json: json, headers: auth, bodyFile: file)
                let error = errorFields(reply.body)
                #expect(reply.status == status && error.code == code, "\(name): \(reply.status) \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
                #expect((error.message ?? "").lowercased().contains(words.lowercased()), "\(name): message \(error.message ?? "none")")
            }
            let audit = try checked(try await server.sshca(["audit", "list"])).stdoutText
            #expect(audit.components(separatedBy: "code=bad-json").count - 1 == 3 && audit.contains("code=bad-key") && audit.contains("code=too-large"),
                    "refused requests are not audited:\n\(audit)")
            let unknown = try await server.http("GET", "/v1/nothing")
            #expect(unknown.status == 404 && errorFields(unknown.body).code == "not-found")

            let ok = try await server.requestCertificate(try publicKeyJSON(good), authorization: "Bearer \(token)")
            #expect(ok.status == 201, "the service stopped serving after bad input: \(ok.status)")
            let health = try await server.http("GET", "/healthz")
            #expect(health.status == 200 && decodeJSON(health.body)["status"] as? String == "ok")
            let metrics = try await server.http("GET", "/metrics")
            let text = String(decoding: metrics.body, as: UTF8.self)
            #expect(text.contains("sshca_certificates_issued_total{type=\"user\"} 1"), "\(text)")
            #expect(text.contains("sshca_requests_refused_total{reason=\"bad-key\"} 3"), "\(text)")
        }
    }

    @Test("missing and invalid tokens, replayed challenges, wrong namespace, another key: 401, audited; repeated failures: 429")
    func authenticationFailures() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir)
            defer { server.stop() }
            let identity = try await SSHKeygen.generate(.ed25519, at: dir.child("erin"), comment: "erin")
            let stranger = try await SSHKeygen.generate(.ed25519, at: dir.child("stranger"), comment: "stranger")
            let subject = try await SSHKeygen.generate(.ed25519, at: dir.child("subject"), comment: "subject")
            _ = try checked(try await server.sshca(["user", "add", "erin", "--role", "engineer", "--identity-key", identity.publicKey.path]))
            let body = try publicKeyJSON(subject)

            let none = try await server.requestCertificate(body, authorization: nil)
            #expect(none.status == 401 && errorFields(none.body).code == "unauthenticated")
            let forged = try await server.requestCertificate(body, authorization: "Bearer sshca_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            #expect(forged.status == 401 && (errorFields(forged.body).message ?? "").contains("not valid"))

            let authorization = try await server.signedChallenge(identity: "erin", key: identity.privateKey, for: body, in: dir)
            #expect(try await server.requestCertificate(body, authorization: authorization).status == 201)
            let replay = try await server.requestCertificate(body, authorization: authorization)
            #expect(replay.status == 401 && (errorFields(replay.body).message ?? "").contains("already used"), "\(String(decoding: replay.body, as: UTF8.self))")

            let namespace = try await server.signedChallenge(identity: "erin", key: identity.privateKey, namespace: "git", for: body, in: dir)
            let wrongNamespace = try await server.requestCertificate(body, authorization: namespace)
            #expect(wrongNamespace.status == 401 && (errorFields(wrongNamespace.body).message ?? "").contains("namespace"))
            let otherKey = try await server.signedChallenge(identity: "erin", key: stranger.privateKey, for: body, in: dir)
            let byStranger = try await server.requestCertificate(body, authorization: otherKey)
            #expect(byStranger.status == 401 && (errorFields(byStranger.body).message ?? "").contains("enrolled key"))

            let audit = try checked(try await server.sshca(["audit", "list"])).stdoutText
            for reason in ["not valid", "already used", "namespace", "enrolled key"] {
                #expect(audit.contains("auth-failed") && audit.contains(reason), "not audited: \(reason)\n\(audit)")
            }

            // failures_per_minute = 10 per identity and per address, in a sliding minute: counted
            // from an address and a token id of their own, so that the ten fit in one minute
            // however long the steps above took on a busy machine.
            let fresh = "127.0.0.3", unknownToken = "Bearer sshca_111111111111_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            var statuses: [Int] = []
            for _ in 0..<12 {
                statuses.append(try await server.http("POST", "/v1/certificates", json: body, headers: ["Authorization": unknownToken], from: fresh).status)
            }
            #expect(statuses.prefix(10).allSatisfy { $0 == 401 } && statuses.suffix(2).allSatisfy { $0 == 429 }, "\(statuses)")
            let limited = try await server.http("POST", "/v1/certificates", json: body, headers: ["Authorization": unknownToken], from: fresh)
            #expect(limited.status == 429 && errorFields(limited.body).code == "rate-limited")
            // A valid sign-in from the same address still works: someone else's failures behind a
            // shared address (a proxy) lock nobody out.
            let signed = try await server.signedChallenge(identity: "erin", key: identity.privateKey, for: body, in: dir)
            let valid = try await server.http("POST", "/v1/certificates", json: body, headers: ["Authorization": signed], from: fresh)
            #expect(valid.status == 201, "a correct sign-in from an address with many failures was refused: \(valid.status)")
            let audit2 = try checked(try await server.sshca(["audit", "list"])).stdoutText
            #expect(audit2.components(separatedBy: "auth-failed").count - 1 == 14 && audit2.contains("rate-limited"),
                    "the four failures above and these ten are audited, those past the limit not one by one:\n\(audit2)")
            #expect(try await server.http("GET", "/healthz").status == 200)
        }
    }

    @Test("an expired challenge is refused even with a good signature (library level, with a clock)")
    func expiredChallenge() async throws {
        try await withTemporaryDirectory { dir in
            let created = try await SSHCA.run(["init", "--home", dir.child("ca").path, "--no-passphrase"])
            try #require(created.succeeded)
            let identity = try await SSHKeygen.generate(.ed25519, at: dir.child("frank"), comment: "frank")
            let authority = try CertificateAuthority(home: CAHome(path: dir.child("ca").path), use: .service)
            let key = try KeyFiles.readPublicKey(identity.publicKey.path).key
            _ = try await authority.addUser(name: "frank", role: "engineer", key: key, by: "test")
            let service = try await CAService(authority: authority, passphrase: .none)
            defer { service.shutdown() }
            let now = Clock.now()
            let challenge = try await service.challenge(.init(identity: "frank"), now: now)
            let signature = try await sshsig(try signInText(service, identity: "frank", nonce: challenge.nonce), key: identity.privateKey, in: dir)
            let header = ServiceAPI.SignatureCredential(identity: "frank", nonce: challenge.nonce, signature: signature).headerValue
            // Refused as expired (not for any other reason), then consumed: a nonce never answers
            // twice, even after a failure.
            for expected in ["the challenge expired", "unknown or was already used"] {
                do {
                    _ = try await service.authenticate(authorization: header, address: "127.0.0.1", request: .init(method: "GET", path: "/v1/certificates", body: []), now: now + 121)
                    Issue.record("an expired challenge signed in")
                } catch let error as ServiceError {
                    #expect(error.status == 401 && error.message.contains(expected), "\(error.status) \(error.message)")
                }
            }
            let fresh = try await service.challenge(.init(identity: "frank"), now: now)
            let freshSignature = try await sshsig(try signInText(service, identity: "frank", nonce: fresh.nonce), key: identity.privateKey, in: dir)
            let applicant = try await service.authenticate(
                authorization: ServiceAPI.SignatureCredential(identity: "frank", nonce: fresh.nonce, signature: freshSignature).headerValue,
                address: "127.0.0.1", request: .init(method: "GET", path: "/v1/certificates", body: []), now: now + 119)
            #expect(applicant.name == "frank" && applicant.role.name == "engineer")
        }
    }
}
