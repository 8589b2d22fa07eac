import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import SSHCrypto
import SSHFormat

/// A private ssh-agent (`ssh-agent -D -a SOCKET`) for one test, stopped when the test ends.
final class TestAgent {
    let dir: TempDir
    let socketPath: String
    private let process: Process

    init() throws {
        dir = try TempDir()
        socketPath = dir.file("agent.sock")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-agent")
        process.arguments = ["-D", "-a", socketPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                stop()
                throw CocoaError(.fileNoSuchFile)
            }
            usleep(10_000)
        }
    }

    /// SIGKILL: Foundation's Process starts children with the spawning thread's signal mask, in
    /// which SIGTERM is blocked, so ssh-agent would never see a SIGTERM.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    var client: SSHAgentClient { SSHAgentClient(socketPath: socketPath) }

    /// Adds a key through `ssh-add`, from the OpenSSH-format export.
    func add(_ key: PrivateKey, comment: String) throws {
        let path = try dir.write("key-\(UUID().uuidString)", try key.components().openSSHPrivateKeyFile(comment: comment, checkInt: 7), mode: 0o600)
        try run("ssh-add", ["-q", path], environment: ["SSH_AUTH_SOCK": socketPath])
    }

    func removeAll() throws {
        try run("ssh-add", ["-D"], environment: ["SSH_AUTH_SOCK": socketPath])
    }
}

@Suite("ssh-agent signer")
struct AgentTests {
    @Test func identitiesAndSignaturesThroughARealAgent() throws {
        let agent = try TestAgent()
        defer { agent.stop() }
        let keys: [(PrivateKey, String)] = [
            (SharedKeys.ed25519, "agent ed25519"), (SharedKeys.rsa3072, "agent rsa"), (SharedKeys.ecdsaP384, "agent ecdsa"),
        ]
        for (key, comment) in keys { try agent.add(key, comment: comment) }

        let identities = try agent.client.identities()
        #expect(identities.count == 3)
        for (key, comment) in keys {
            #expect(identities.contains { $0.key == key.publicKey.blob && $0.comment == comment }, "\(comment)")
        }

        let data = Array("certificate body bytes".utf8)
        for (key, comment) in keys {
            let signer = try AgentSigner(agent: agent.client, publicKey: key.publicKey)
            #expect(signer.publicKey == key.publicKey)
            let signature = try signer.sign(data)
            #expect(key.publicKey.verify(signature, over: data) == .valid, "\(comment)")
            #expect(!key.publicKey.verify(signature, over: data + [1]).isValid)
            #expect(signature.algorithm == key.signatureAlgorithm)
        }
        // RSA through the agent is rsa-sha2-512, never ssh-rsa.
        let rsaSignature = try AgentSigner(agent: agent.client, publicKey: SharedKeys.rsa3072.publicKey).sign(data)
        #expect(rsaSignature.algorithm == "rsa-sha2-512")
        // Ed25519 is deterministic: the agent's signature equals the one made in-process.
        let edSignature = try AgentSigner(agent: agent.client, publicKey: SharedKeys.ed25519.publicKey).sign(data)
        #expect(edSignature == (try SharedKeys.ed25519.sign(data)))
    }

    @Test func certificateSignedThroughTheAgentVerifies() throws {
        let agent = try TestAgent()
        defer { agent.stop() }
        try agent.add(SharedKeys.ecdsaP256, comment: "ca")
        let signer = try AgentSigner(agent: agent.client, publicKey: SharedKeys.ecdsaP256.publicKey)
        let body = sampleBody(ca: signer.publicKey)
        let signable = body.signableBytes()
        let certificate = Certificate(body: body, signableBytes: signable, signature: try signer.sign(signable))
        #expect(certificate.verifySignature() == .valid)
        let path = try agent.dir.write("cert.pub", certificate.openSSHLine() + "\n")
        try run("ssh-keygen", ["-L", "-f", path])
    }

    @Test func keyNotInAgentIsReported() throws {
        let agent = try TestAgent()
        defer { agent.stop() }
        try agent.add(SharedKeys.ed25519, comment: "only this one")
        let missing = SharedKeys.ecdsaP521.publicKey
        let error = cryptoError { _ = try AgentSigner(agent: agent.client, publicKey: missing) }
        #expect(error?.code == .keyNotInAgent)
        #expect(error?.reason.contains(missing.fingerprint) == true)
        #expect(error?.reason.contains("ssh-add") == true)

        // A key removed after the signer was made: signing fails with an agent error.
        let signer = try AgentSigner(agent: agent.client, publicKey: SharedKeys.ed25519.publicKey)
        try agent.removeAll()
        #expect(try agent.client.identities().isEmpty)
        #expect(cryptoError { _ = try signer.sign([1, 2, 3]) }?.code == .agent)
    }

    @Test func noAgentAtTheSocket() throws {
        let dir = try TempDir()
        let client = SSHAgentClient(socketPath: dir.file("nothing-here.sock"))
        let error = cryptoError { _ = try client.identities() }
        #expect(error?.code == .agent)
        #expect(error?.reason.contains("nothing-here.sock") == true)
        let tooLong = SSHAgentClient(socketPath: "/tmp/" + String(repeating: "x", count: 200))
        #expect(cryptoError { _ = try tooLong.identities() }?.code == .agent)
    }
}
