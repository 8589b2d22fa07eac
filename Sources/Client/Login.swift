import Common
public import SSHFormat
import SSHCrypto
import Foundation

/// Where `sshca login` keeps the day's key pair and certificate.
public struct LoginFiles: Sendable, Equatable {
    public var key: String
    public var publicKey: String { key + ".pub" }
    public var certificate: String { key + "-cert.pub" }

    public init(key: String) { self.key = key }

    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> LoginFiles {
        LoginFiles(key: (environment["HOME"] ?? "/root") + "/.ssh/sshca_ed25519")
    }
}

public struct LoginOutcome: Sendable {
    public var certificate: Certificate
    /// True when a still-valid certificate was kept instead of asking for a new one.
    public var reused: Bool
    /// nil when the key and certificate are in ssh-agent; else why not.
    public var agentProblem: String?
    public var files: LoginFiles
    /// Set when the certificate on disk was still valid but revoked, and so was replaced.
    public var replacedRevoked: String? = nil
    /// Set when a kept certificate could not be checked against the service's KRL.
    public var revocationUnknown: String? = nil
}

/// The engineer's daily flow: a fresh Ed25519 key that never leaves the machine, a certificate
/// for it from the service, both handed to ssh-agent until the certificate expires.
public enum Login {
    /// A certificate closer than this to its end is renewed rather than reused.
    public static let renewalMargin: UInt64 = 300

    /// `renewBefore`: a current certificate with more than this left is kept (at least
    /// `renewalMargin`).
    public static func login(client: ServiceClient, credential: Credential, principals: [String]?, validity: String?,
                             force: Bool, files: LoginFiles, renewBefore: UInt64 = renewalMargin,
                             now: @escaping @Sendable () -> UInt64 = { Clock.now() }) async throws(SSHCAError) -> LoginOutcome {
        try checkOurs(files)
        let caKey = try await client.caPublicKey(.user)
        var replacedRevoked: String? = nil
        if !force, let (certificate, seed) = reusable(files: files, caKey: caKey, principals: principals, now: now(), margin: max(renewBefore, renewalMargin)) {
            // Valid by its dates is not enough: sshd also reads the KRL, and a revoked
            // certificate kept here would only end in "Permission denied (publickey)".
            let checked = await revocation(of: certificate, client: client)
            if case .success(let verdict?) = checked {
                replacedRevoked = "the certificate with serial \(certificate.body.serial) is revoked (\(verdict)); getting a new one"
            } else {
                var outcome = LoginOutcome(certificate: certificate, reused: true, agentProblem: addToAgent(certificate, seed: seed, now: now()), files: files)
                if case .failure(let error) = checked { outcome.revocationUnknown = error.reason }
                return outcome
            }
        }
        let privateKey: PrivateKey
        let components: PrivateKeyComponents
        do {
            privateKey = try PrivateKey.generate(.ed25519)
            components = try privateKey.components()
        } catch {
            throw SSHCAError(.key, "cannot generate the login key: \(error)")
        }
        guard case .ed25519(let seed, _) = components else { throw SSHCAError(.key, "unexpected key type") }
        let publicKey = privateKey.publicKey
        let issued = try await client.requestCertificate(
            ServiceAPI.CertificateRequest(publicKey: publicKey.openSSHLine(), type: "user", principals: principals, validity: validity),
            credential: credential)
        let certificate = try check(issued.certificate, caKey: caKey, publicKey: publicKey)
        // The key and certificate being replaced leave the agent too: ssh offers every key the
        // agent holds, and a pile of old login keys ends in "Too many authentication failures".
        forgetInAgent(files)
        let comment = "\(commentPrefix)\(certificate.body.keyID) serial \(certificate.body.serial)"
        try makeDirectory(for: files.key)
        try Files.writeAtomically(files.key, Array(components.openSSHPrivateKeyFile(comment: comment, checkInt: UInt32.random(in: 0...UInt32.max)).utf8), mode: 0o600)
        try Files.writeAtomically(files.publicKey, Array((publicKey.openSSHLine(comment: comment) + "\n").utf8), mode: 0o600)
        try Files.writeAtomically(files.certificate, Array((certificate.openSSHLine(comment: comment) + "\n").utf8), mode: 0o600)
        let problem = addToAgent(certificate, seed: seed, now: now())
        return LoginOutcome(certificate: certificate, reused: false, agentProblem: problem, files: files, replacedRevoked: replacedRevoked)
    }

    /// The largest KRL a client reads to check its own certificate: far above what a CA of
    /// tens of thousands of revocations publishes, and a bound on what a hostile service can
    /// make it parse.
    public static let maximumKRLBytes = 16 << 20

    /// Whether the service's current KRL revokes this certificate (its key, key id, serial, or
    /// the CA key that signed it), as sshd would decide.
    public static func revocation(of certificate: Certificate, client: ServiceClient) async -> Result<KRL.Verdict?, SSHCAError> {
        do throws(SSHCAError) {
            guard let (bytes, _) = try await client.krl() else {
                return .failure(SSHCAError(.io, "the service sent no KRL"))
            }
            guard bytes.count <= maximumKRLBytes else {
                return .failure(SSHCAError(.io, "the service's KRL is \(bytes.count) bytes, more than a client reads (\(maximumKRLBytes))"))
            }
            let krl: KRL
            do { krl = try KRL.parse(bytes).krl } catch {
                return .failure(SSHCAError(.io, "the service's KRL does not parse: \(error)"))
            }
            if let verdict = krl.revocation(of: certificate.body.signatureKey) { return .success(verdict) }
            return .success(krl.revocation(of: certificate))
        } catch {
            return .failure(SSHCAError(error.code, "cannot check the certificate against the service's KRL: \(error.reason)"))
        }
    }

    /// The service's answer must be a certificate for our key, signed by the (pinned) CA key.
    public static func check(_ line: String, caKey: PublicKey, publicKey: PublicKey) throws(SSHCAError) -> Certificate {
        let certificate: Certificate
        do { certificate = try Certificate(parsingText: line) } catch {
            throw SSHCAError(.io, "the service sent a certificate that does not parse: \(error)")
        }
        guard certificate.body.signatureKey == caKey else {
            throw SSHCAError(.refused, "the certificate is signed by \(certificate.body.signatureKey.fingerprint), not by the CA key \(caKey.fingerprint); refusing it")
        }
        guard certificate.body.publicKey == publicKey else {
            throw SSHCAError(.refused, "the service certified another key than the one sent; refusing it")
        }
        let verdict = certificate.verifySignature()
        guard verdict == .valid else {
            throw SSHCAError(.refused, "the certificate's signature does not verify (\(verdict)); refusing it")
        }
        return certificate
    }

    static func reusable(files: LoginFiles, caKey: PublicKey, principals: [String]?, now: UInt64, margin: UInt64 = renewalMargin) -> (Certificate, Data)? {
        guard let text = try? Files.readText(files.certificate, what: "certificate"),
              let certificate = try? Certificate(parsingText: text),
              let keyText = try? Files.readText(files.key, what: "login key"),
              case .ed25519(let seed, let pk)? = try? PrivateKeyComponents(openSSHEd25519File: keyText),
              certificate.body.publicKey == .ed25519(pk),
              certificate.body.signatureKey == caKey,
              certificate.verifySignature() == .valid,
              certificate.body.validAfter <= now,
              certificate.body.validBefore > now &+ margin else { return nil }
        if let principals, !Set(principals).isSubset(of: Set(certificate.body.principals)) { return nil }
        return (certificate, seed)
    }

    /// nil when added; else a sentence saying why not (no agent running is normal on servers).
    static func addToAgent(_ certificate: Certificate, seed: Data, now: UInt64) -> String? {
        guard let agent = try? SSHAgentClient.fromEnvironment() else { return "no ssh-agent is running (SSH_AUTH_SOCK is not set)" }
        let remaining = certificate.body.validBefore > now ? certificate.body.validBefore - now : 1
        do {
            try agent.addCertificate(certificate, ed25519Seed: seed, comment: "sshca \(certificate.body.keyID) serial \(certificate.body.serial)",
                                     lifetime: UInt32(clamping: remaining))
            return nil
        } catch {
            return "ssh-agent did not take the certificate: \(error)"
        }
    }

    static func makeDirectory(for path: String) throws(SSHCAError) {
        let directory = (path as NSString).deletingLastPathComponent
        guard !FileManager.default.fileExists(atPath: directory) else { return }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SSHCAError(.io, "cannot create \(directory): \(error)")
        }
    }

    public struct Status: Sendable {
        public var certificate: Certificate?
        public var inAgent: Bool
        public var problem: String?
    }

    public static func status(files: LoginFiles) -> Status {
        guard let text = try? Files.readText(files.certificate, what: "certificate") else {
            return Status(certificate: nil, inAgent: false, problem: "not logged in: \(files.certificate) does not exist (run sshca login)")
        }
        guard let certificate = try? Certificate(parsingText: text) else {
            return Status(certificate: nil, inAgent: false, problem: "\(files.certificate) is not a certificate; run sshca login --force")
        }
        var inAgent = false
        if let agent = try? SSHAgentClient.fromEnvironment(), let held = try? agent.identities() {
            inAgent = held.contains { $0.key == certificate.bytes }
        }
        return Status(certificate: certificate, inAgent: inAgent, problem: nil)
    }

    /// The comment every file `login` writes starts with.
    static let commentPrefix = "sshca login "

    /// A key file that is there must be one `login` wrote (its .pub says so): `--key-file
    /// ~/.ssh/id_ed25519` must never overwrite or delete someone's own key.
    static func checkOurs(_ files: LoginFiles) throws(SSHCAError) {
        guard FileManager.default.fileExists(atPath: files.key) else { return }
        guard let parsed = try? KeyFiles.readPublicKey(files.publicKey), parsed.comment.hasPrefix(commentPrefix) else {
            throw SSHCAError(.badInput, "\(files.key) exists and was not written by sshca login (its .pub does not say so); give another --key-file, or move that key away")
        }
    }

    /// Takes the certificate out of ssh-agent and deletes the three files. Returns what was done.
    /// Takes the certificate in `files` and its key out of ssh-agent, if it holds them; says what it removed.
    @discardableResult
    static func forgetInAgent(_ files: LoginFiles) -> [String] {
        var done: [String] = []
        if wroteByLogin(files.certificate, files: files),
           let text = try? Files.readText(files.certificate, what: "certificate"), let certificate = try? Certificate(parsingText: text),
           let agent = try? SSHAgentClient.fromEnvironment() {
            if (try? agent.remove(keyBlob: certificate.bytes)) == true { done.append("removed the certificate from ssh-agent") }
            if (try? agent.remove(keyBlob: certificate.body.publicKey.blob)) == true { done.append("removed the key from ssh-agent") }
        }
        return done
    }

    public static func logout(files: LoginFiles) throws(SSHCAError) -> [String] {
        try checkOurs(files)
        var done = forgetInAgent(files)
        // Each file on its own: a regular file (not a link, not a directory) that says login
        // wrote it. Whatever else sits at these paths is someone's, and stays.
        // (Judged before anything is deleted: the key is recognised through its .pub.)
        let verdicts = [files.certificate, files.publicKey, files.key].compactMap { path -> (String, Bool)? in
            var info = stat()
            guard lstat(path, &info) == 0 else { return nil }
            return (path, (info.st_mode & S_IFMT) == S_IFREG && wroteByLogin(path, files: files))
        }
        for (path, ours) in verdicts {
            guard ours else {
                done.append("left \(path): not a file sshca login wrote")
                continue
            }
            if unlink(path) == 0 { done.append("deleted \(path)") }
        }
        return done
    }

    /// Whether the file at `path` (one of `files`) carries login's mark: the .pub and -cert.pub
    /// their comment, the key the public half of a marked .pub.
    static func wroteByLogin(_ path: String, files: LoginFiles) -> Bool {
        func marked(_ path: String) -> PublicKeyText? {
            guard let parsed = try? KeyFiles.readPublicKey(path), parsed.comment.hasPrefix(commentPrefix) else { return nil }
            return parsed
        }
        switch path {
        case files.publicKey:
            return marked(path) != nil
        case files.certificate:
            guard let text = try? Files.readText(path, maximumBytes: 64 * 1024, what: "certificate"),
                  let comment = text.split(separator: " ", maxSplits: 2).dropFirst(2).first else { return false }
            return (try? Certificate(parsingText: text)) != nil && comment.hasPrefix(commentPrefix)
        default:
            guard let ours = marked(files.publicKey),
                  let keyText = try? Files.readText(path, maximumBytes: 64 * 1024, what: "login key"),
                  case .ed25519(_, let pk)? = try? PrivateKeyComponents(openSSHEd25519File: keyText) else { return false }
            return ours.key == .ed25519(pk)
        }
    }
}
