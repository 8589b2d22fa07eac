import Common
import Foundation
import Service
import Testing
import TestSupport
import SSHFormat
import Authority

/// Signs `message` as `ssh-keygen -Y sign -n NAMESPACE` does and returns the SSHSIG blob in
/// base64, as the Authorization header carries it.
func sshsig(_ message: String, key: URL, namespace: String = "sshca", in directory: URL) async throws -> String {
    let file = directory.child("challenge-\(UUID().uuidString)")
    try writeText(message, to: file)
    let signed = try await runProcess("ssh-keygen", ["-q", "-Y", "sign", "-f", key.path, "-n", namespace, file.path])
    guard signed.succeeded else { throw SubprocessError.failed(signed) }
    let armored = try readText(URL(fileURLWithPath: file.path + ".sig"))
    return armored.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
}

func decodeJSON(_ data: Data) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}

/// The `{"error": {...}}` body's fields.
func errorFields(_ data: Data) -> (code: String?, message: String?, rule: String?) {
    let error = decodeJSON(data)["error"] as? [String: Any]
    return (error?["code"] as? String, error?["message"] as? String, error?["rule"] as? String)
}

extension CAServer {
    /// An engineer's machine: `home` (made if missing) with an Ed25519 identity key at
    /// home/identity, enrolled as `name` with `role`. Returns the key pair.
    func enroll(_ name: String, role: String = "engineer", home: URL) async throws -> KeyPair {
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let identity = try await SSHKeygen.generate(.ed25519, at: home.child("identity"), comment: "identity")
        try checked(try await sshca(["user", "add", name, "--role", role, "--identity-key", identity.publicKey.path]))
        return identity
    }

    /// `sshca token create --role ROLE --name NAME`: the secret (last line of stdout).
    func token(role: String, name: String) async throws -> String {
        let result = try await sshca(["token", "create", "--role", role, "--name", name])
        guard result.succeeded, let last = result.stdoutText.split(separator: "\n").last else { throw SubprocessError.failed(result) }
        return String(last)
    }

    /// A challenge for `identity`, answered with `key` for one request (by default the
    /// POST /v1/certificates that sends `body`): the Authorization header value. The signed
    /// text is the sign-in message sshca login builds (ServiceAPI.SignInMessage).
    func signedChallenge(identity: String, key: URL, namespace: String = "sshca", for body: String,
                         method: String = "POST", path: String = "/v1/certificates", in directory: URL) async throws -> String {
        let (status, reply) = try await http("POST", "/v1/challenge", json: "{\"identity\":\"\(identity)\"}")
        guard status == 200, let nonce = decodeJSON(reply)["nonce"] as? String else {
            throw ParseError("challenge failed: \(status) \(String(decoding: reply, as: UTF8.self))")
        }
        let caKey = try PublicKeyText(parsing: String(decoding: try await http("GET", "/v1/ca/user.pub").body, as: UTF8.self)).key
        let certifies = (decodeJSON(Data(body.utf8))["publicKey"] as? String).flatMap { try? PublicKeyText(parsing: $0).key }
        let message = ServiceAPI.SignInMessage(caFingerprint: caKey.fingerprint, identity: identity, nonce: nonce, method: method, path: path,
                                               certifies: method == "POST" && path == "/v1/certificates" ? certifies?.fingerprint : nil,
                                               body: Array(body.utf8))
        let signature = try await sshsig(message.text, key: key, namespace: namespace, in: directory)
        return "SSHSIG identity=\(identity),nonce=\(nonce),signature=\(signature)"
    }

    /// POST /v1/certificates with a JSON body and an Authorization header.
    func requestCertificate(_ json: String, authorization: String?) async throws -> (status: Int, body: Data) {
        try await http("POST", "/v1/certificates", json: json, headers: authorization.map { ["Authorization": $0] } ?? [:])
    }
}

/// Writes the certificate line of a 201 answer to `file` (as `ssh-keygen -L` and sshd read it).
@discardableResult
func writeIssuedCertificate(_ body: Data, to file: URL) throws -> URL {
    try writeText((decodeJSON(body)["certificate"] as? String ?? "") + "\n", to: file)
    return file
}

func publicKeyJSON(_ key: KeyPair, extra: String = "") throws -> String {
    let line = try readText(key.publicKey).trimmingCharacters(in: .whitespacesAndNewlines)
    return "{\"publicKey\":\"\(line)\"\(extra)}"
}

/// The sign-in message text for an in-process `CAService` (the tests that drive it directly):
/// a GET /v1/certificates by default, which has no body.
func signInText(_ service: CAService, identity: String, nonce: String, method: String = "GET", path: String = "/v1/certificates",
                body: [UInt8] = []) throws -> String {
    let caKey = try PublicKeyText(parsing: service.caPublicKey(.user)).key
    return ServiceAPI.SignInMessage(caFingerprint: caKey.fingerprint, identity: identity, nonce: nonce, method: method, path: path,
                                    certifies: nil, body: body).text
}
