import Foundation

/// Debian's `openssh-tests` FIDO middleware that needs no hardware.
public let skDummyProvider = "/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so"

/// The key types a user may ask to have certified.
public enum UserKeyType: String, CaseIterable, Sendable, CustomStringConvertible {
    case ed25519
    case ecdsa256 = "ecdsa-256"
    case ecdsa384 = "ecdsa-384"
    case ecdsa521 = "ecdsa-521"
    case rsa2048 = "rsa-2048"
    case rsa3072 = "rsa-3072"
    case skEd25519 = "sk-ed25519"
    case skEcdsa = "sk-ecdsa"

    public var description: String { rawValue }

    /// `ssh-keygen` options selecting this type.
    public var sshKeygenArguments: [String] {
        switch self {
        case .ed25519: return ["-t", "ed25519"]
        case .ecdsa256: return ["-t", "ecdsa", "-b", "256"]
        case .ecdsa384: return ["-t", "ecdsa", "-b", "384"]
        case .ecdsa521: return ["-t", "ecdsa", "-b", "521"]
        case .rsa2048: return ["-t", "rsa", "-b", "2048"]
        case .rsa3072: return ["-t", "rsa", "-b", "3072"]
        case .skEd25519: return ["-t", "ed25519-sk", "-w", skDummyProvider]
        case .skEcdsa: return ["-t", "ecdsa-sk", "-w", skDummyProvider]
        }
    }

    public var isSecurityKey: Bool { self == .skEd25519 || self == .skEcdsa }
    public var isRSA: Bool { self == .rsa2048 || self == .rsa3072 }

    /// The public key's type name as written in an OpenSSH public key line.
    public var publicKeyTypeName: String {
        switch self {
        case .ed25519: return "ssh-ed25519"
        case .ecdsa256: return "ecdsa-sha2-nistp256"
        case .ecdsa384: return "ecdsa-sha2-nistp384"
        case .ecdsa521: return "ecdsa-sha2-nistp521"
        case .rsa2048, .rsa3072: return "ssh-rsa"
        case .skEd25519: return "sk-ssh-ed25519@openssh.com"
        case .skEcdsa: return "sk-ecdsa-sha2-nistp256@openssh.com"
        }
    }

    /// The certificate type name for a certificate on this key.
    public var certificateTypeName: String {
        switch self {
        case .skEd25519: return "sk-ssh-ed25519-cert-v01@openssh.com"
        case .skEcdsa: return "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"
        default: return "\(publicKeyTypeName)-cert-v01@openssh.com"
        }
    }
}

/// A private key file and its `.pub` next to it.
public struct KeyPair: Sendable, CustomStringConvertible {
    public var privateKey: URL
    public var publicKey: URL
    public var type: String

    public init(privateKey: URL, publicKey: URL? = nil, type: String) {
        self.privateKey = privateKey
        self.publicKey = publicKey ?? URL(fileURLWithPath: privateKey.path + ".pub")
        self.type = type
    }

    /// Where `ssh-keygen -s` (and `sshca sign`) put the certificate for this key.
    public var certificate: URL {
        var path = publicKey.path
        if path.hasSuffix(".pub") { path.removeLast(4) }
        return URL(fileURLWithPath: path + "-cert.pub")
    }

    /// Copies both files into `directory` under `name` / `name.pub` (mode 0600 for the private key).
    public func copy(to directory: URL, name: String) throws -> KeyPair {
        let priv = directory.child(name)
        let pub = directory.child(name + ".pub")
        try FileManager.default.copyItem(at: privateKey, to: priv)
        try FileManager.default.copyItem(at: publicKey, to: pub)
        try setMode(0o600, of: priv)
        return KeyPair(privateKey: priv, publicKey: pub, type: type)
    }

    public var description: String { "\(type) key \(privateKey.path)" }
}

/// `ssh-keygen` wrappers.
public enum SSHKeygen {
    public static let environment: [String: String?] = ["TZ": "UTC", "SSH_AUTH_SOCK": nil]

    /// Generates an unencrypted key pair at `path` / `path.pub`.
    @discardableResult
    public static func generate(
        _ arguments: [String], at path: URL, comment: String = "sshca-test", typeName: String
    ) async throws -> KeyPair {
        try await runChecked(
            "ssh-keygen", ["-q"] + arguments + ["-N", "", "-C", comment, "-f", path.path],
            environment: environment, timeout: .seconds(120))
        return KeyPair(privateKey: path, type: typeName)
    }

    @discardableResult
    public static func generate(_ type: UserKeyType, at path: URL, comment: String = "sshca-test") async throws -> KeyPair {
        try await generate(type.sshKeygenArguments, at: path, comment: comment, typeName: type.rawValue)
    }

    /// `SHA256:...` fingerprint of a public key (or certificate, or private key) file.
    public static func fingerprint(_ file: URL) async throws -> String {
        let result = try await runChecked("ssh-keygen", ["-l", "-E", "sha256", "-f", file.path], environment: environment)
        let fields = result.stdoutText.split(separator: " ")
        guard fields.count >= 2 else { throw SubprocessError.failed(result) }
        return String(fields[1])
    }

    /// `ssh-keygen -L -f cert`, parsed (run with TZ=UTC).
    public static func listCertificate(_ file: URL) async throws -> CertificateListing {
        let result = try await runProcess("ssh-keygen", ["-L", "-f", file.path], environment: environment)
        guard result.succeeded else { throw SubprocessError.failed(result) }
        return try CertificateListing(parsing: result.stdoutText)
    }

    /// Signs with ssh-keygen itself (reference behaviour).
    public static func sign(
        caKey: URL, publicKey: URL, keyID: String, principals: [String], extraArguments: [String] = []
    ) async throws {
        var args = ["-q", "-s", caKey.path, "-I", keyID]
        if !principals.isEmpty { args += ["-n", principals.joined(separator: ",")] }
        try await runChecked("ssh-keygen", args + extraArguments + [publicKey.path], environment: environment)
    }
}

/// `puttygen` wrappers (PuTTY 0.78).
public enum PuTTYgen {
    /// Generates an unencrypted PPK. `type` is puttygen's `-t` value (ed25519, rsa, ecdsa, ...).
    public static func generate(type: String, bits: Int? = nil, ppk: URL, comment: String = "putty-test") async throws {
        var args = ["-q", "-t", type]
        if let bits { args += ["-b", String(bits)] }
        args += ["-C", comment, "-O", "private", "-o", ppk.path, "--new-passphrase", "/dev/null"]
        try await runChecked("puttygen", args, timeout: .seconds(120))
    }

    /// Exports the public key in RFC 4716 format (`-O public`).
    public static func exportRFC4716(ppk: URL, to output: URL) async throws {
        try await runChecked("puttygen", [ppk.path, "-O", "public", "-o", output.path])
    }

    /// Exports the public key as an OpenSSH one-line key.
    public static func exportOpenSSH(ppk: URL, to output: URL) async throws {
        try await runChecked("puttygen", [ppk.path, "-O", "public-openssh", "-o", output.path])
    }

    /// Embeds a certificate into a PPK (`--certificate`).
    public static func addCertificate(ppk: URL, certificate: URL, output: URL) async throws {
        try await runChecked("puttygen", [ppk.path, "--certificate", certificate.path, "-O", "private", "-o", output.path])
    }
}

/// The first two fields (type, base64) of an OpenSSH public key line, for comparisons that
/// ignore the comment.
public func keyTypeAndBlob(_ line: String) -> String {
    line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })
        .prefix(2).joined(separator: " ")
}

/// `ssh-keygen -Y verify` of `signature` (a file) over the bytes of `krl`, with the key in
/// `caKey` as the one allowed signer, in sshca's KRL namespace. `verified` says whether it
/// printed the good-signature line.
public func sshKeygenVerify(krl: URL, signature: URL, caKey: URL, in dir: URL, namespace: String = "sshca-krl") async throws -> (verified: Bool, result: ProcessResult) {
    let allowed = dir.child("allowed_signers-\(UUID().uuidString)")
    try writeText("sshca namespaces=\"\(namespace)\" \(try readText(caKey).trimmingCharacters(in: .whitespacesAndNewlines))\n", to: allowed)
    let verify = try await runProcess("ssh-keygen", ["-Y", "verify", "-f", allowed.path, "-I", "sshca", "-n", namespace, "-s", signature.path],
                                      stdin: try Data(contentsOf: krl))
    return (verify.succeeded && verify.stdoutText.contains("Good \"\(namespace)\" signature"), verify)
}
