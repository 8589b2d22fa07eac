import Common
import SSHCrypto
import SSHFormat
import Foundation

/// How a client command proves who it is to the service.
public enum Credential: Sendable {
    /// A bearer token (`sshca token create`), for automation and hosts.
    case token(String)
    /// An enrolled user's long-term key: the client signs the service's challenge with it,
    /// through ssh-agent when the agent holds the key, else with `ssh-keygen -Y sign`, which
    /// asks for the key's passphrase or a security key's touch itself.
    case identity(user: String, keyFile: String)

    /// `--token` / `$SSHCA_TOKEN`, else the identity key (`--identity`, default ~/.ssh/id_ed25519).
    public static func resolve(token: String?, tokenFile: String?, user: String?, identity: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws(SSHCAError) -> Credential {
        if let tokenFile { return .token(try Self.token(fromFile: tokenFile)) }
        if let token = token ?? environment["SSHCA_TOKEN"], !token.isEmpty { return .token(token) }
        let name = user ?? environment["USER"] ?? environment["LOGNAME"] ?? ""
        guard !name.isEmpty else { throw SSHCAError(.badInput, "who are you? give --user NAME (the name you were enrolled under)") }
        let home = environment["HOME"] ?? "/root"
        let key = identity ?? "\(home)/.ssh/id_ed25519"
        return .identity(user: name, keyFile: key)
    }

    /// A bearer token kept in a file (`--token-file`): its text without surrounding white space.
    public static func token(fromFile path: String) throws(SSHCAError) -> String {
        try Files.readText(path, maximumBytes: 4096, what: "token file").trimmingCharacters(in: " \t\r\n")
    }

    /// The Authorization header for one request. With an identity key, the client signs only a
    /// message it builds itself (ServiceAPI.SignInMessage), in sshca's own namespace: whatever
    /// namespace or "nonce" a service asks for, it never signs the service's text.
    func authorization(_ client: ServiceClient, method: String, path: String, certifies: PublicKey? = nil, body: [UInt8]) async throws(SSHCAError) -> String {
        switch self {
        case .token(let text):
            return "Bearer \(text)"
        case .identity(let user, let keyFile):
            let caKey = try await client.caPublicKey(.user)
            let challenge = try await client.challenge(identity: user)
            guard challenge.namespace == ServiceAPI.namespace else {
                throw SSHCAError(.refused, "the service at \(client.endpoint.url) asks for a signature in namespace \"\(challenge.namespace.prefix(40).debugEscaped)\"; sshca signs only in its own (\(ServiceAPI.namespace)). Refusing: this is not an sshca service, or not an honest one")
            }
            guard ServiceAPI.SignInMessage.isNonce(challenge.nonce), challenge.identity == user else {
                throw SSHCAError(.refused, "the service at \(client.endpoint.url) sent a challenge that is not an sshca nonce (\"\(challenge.nonce.prefix(60).debugEscaped)\"); refusing to sign it")
            }
            let message = ServiceAPI.SignInMessage(caFingerprint: caKey.fingerprint, identity: user, nonce: challenge.nonce, method: method, path: path,
                                                   certifies: certifies?.fingerprint, body: body)
            let signature = try Self.sign(Array(message.text.utf8), keyFile: keyFile, namespace: ServiceAPI.namespace)
            return ServiceAPI.SignatureCredential(identity: user, nonce: challenge.nonce, signature: signature.blob.base64EncodedString()).headerValue
        }
    }

    /// Whether signing in needs no person: a token, or an identity key that ssh-agent holds
    /// (otherwise ssh-keygen would ask for a passphrase or a touch). A renewal timer runs only then.
    public var isUnattended: Bool {
        switch self {
        case .token: return true
        case .identity(_, let keyFile):
            guard let key = try? Self.publicKey(keyFile: keyFile) else { return false }
            return Self.agentHolding(key) != nil
        }
    }

    /// The ssh-agent at $SSH_AUTH_SOCK when it holds `key`, else nil.
    static func agentHolding(_ key: PublicKey) -> SSHAgentClient? {
        guard let agent = try? SSHAgentClient.fromEnvironment(), let held = try? agent.identities(),
              held.contains(where: { $0.key == key.blob }) else { return nil }
        return agent
    }

    /// The identity key's public half: KEYFILE.pub, or KEYFILE itself when it is a .pub file
    /// (a key that lives only in ssh-agent or on a token).
    static func publicKey(keyFile: String) throws(SSHCAError) -> PublicKey {
        let path = keyFile.hasSuffix(".pub") ? keyFile : keyFile + ".pub"
        do {
            return try KeyFiles.readPublicKey(path, what: "identity public key").key
        } catch {
            throw SSHCAError(.badInput, "--identity \(keyFile): \(error.reason) (the public key must be at \(path))")
        }
    }

    static func sign(_ message: [UInt8], keyFile: String, namespace: String) throws(SSHCAError) -> SSHSig {
        let key = try publicKey(keyFile: keyFile)
        if let agent = agentHolding(key) {
            let signed = SSHSig.signedData(message: message, namespace: namespace, hashAlgorithm: "sha512")
            let flags: UInt32 = if case .rsa = key { 4 } else { 0 }
            do {
                let signature = try agent.sign(keyBlob: key.blob, data: signed, flags: flags)
                return SSHSig(publicKey: key, namespace: namespace, hashAlgorithm: "sha512", signature: signature)
            } catch {
                throw SSHCAError(.key, "ssh-agent could not sign the login challenge with \(key.fingerprint): \(error)")
            }
        }
        guard !keyFile.hasSuffix(".pub") else {
            throw SSHCAError(.key, "the identity key \(key.fingerprint) is not in ssh-agent; add it (ssh-add) or give the private key file with --identity")
        }
        return try signWithSSHKeygen(message, keyFile: keyFile, namespace: namespace)
    }

    /// `ssh-keygen -Y sign` handles every private key format, passphrases and security keys.
    static func signWithSSHKeygen(_ message: [UInt8], keyFile: String, namespace: String) throws(SSHCAError) -> SSHSig {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sshca-sign-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SSHCAError(.io, "cannot create a temporary directory: \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let messagePath = directory + "/challenge"
        try Files.writeAtomically(messagePath, message, mode: 0o600)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.sshKeygen())
        process.arguments = ["-q", "-Y", "sign", "-f", keyFile, "-n", namespace, messagePath]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw SSHCAError(.io, "cannot run ssh-keygen to sign the login challenge: \(error) (install openssh-client)")
        }
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SSHCAError(.key, "ssh-keygen could not sign with \(keyFile): \(errorText.trimmingCharacters(in: " \n"))")
        }
        do {
            return try SSHSig(armored: try Files.readText(messagePath + ".sig", what: "signature"))
        } catch let error as SSHCAError {
            throw error
        } catch {
            throw SSHCAError(.key, "ssh-keygen wrote a signature that does not parse: \(error)")
        }
    }

    static func sshKeygen() -> String {
        for directory in ["/usr/bin", "/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: directory + "/ssh-keygen") {
            return directory + "/ssh-keygen"
        }
        return "/usr/bin/ssh-keygen"
    }
}
