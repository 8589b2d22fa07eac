import Common
import SSHFormat
#if canImport(Glibc)
import Glibc
#endif

/// `sshca host cert`: signs a server's host keys with the host CA and makes sshd present the
/// certificates, so clients with an `@cert-authority` line never see a host-key prompt.
public enum HostCertificates {
    public struct Request: Sendable {
        /// Public host key files; empty means every HostKey that `sshd -T` lists.
        public var hostKeys: [String] = []
        /// Names clients use for this server; empty means the host's full and short name.
        public var principals: [String] = []
        public var sshdConfigPath = "/etc/ssh/sshd_config"
        public var sshdPath = "/usr/sbin/sshd"
        /// Where `host undo` finds what was there before (default: sshca-backup beside the sshd config).
        public var backupDirectory: String?

        public init() {}
    }

    public struct Issued: Sendable {
        public var keyPath: String
        public var certificatePath: String
        public var serial: UInt64
    }

    public static let dropInName = "00-sshca-hostcerts.conf"

    /// Signs one host key for these principals (the CA home here, or the service).
    public typealias Certifier = @Sendable (PublicKey, [String]) async throws(SSHCAError) -> Certificate

    /// Certifies the host keys and installs the certificates. With `renewBefore`, a key whose
    /// current certificate (signed by `hostCA`, same principals) has longer than that left is kept.
    public static func issue(_ request: Request, certify: Certifier, renewBefore: UInt64?, hostCA: PublicKey?,
                             reload: Bool, now: UInt64 = Clock.now()) async throws(SSHCAError) -> (issued: [Issued], kept: [String], reload: String) {
        let check = SSHDCheck(sshdPath: request.sshdPath)
        try check.validate(configPath: request.sshdConfigPath)
        let keyPaths = request.hostKeys.isEmpty
            ? try check.all(configPath: request.sshdConfigPath, keyword: "hostkey").map { $0 + ".pub" }
            : request.hostKeys
        guard !keyPaths.isEmpty else { throw SSHCAError(.badConfig, "sshd lists no HostKey; give --hostkey PATH") }
        let principals = request.principals.isEmpty ? hostNames() : request.principals

        // Sign everything first: nothing is written unless every key could be certified.
        var certificates: [(key: String, path: String, certificate: Certificate, comment: String)] = []
        var kept: [String] = []
        for keyPath in keyPaths {
            let subject = try KeyFiles.readPublicKey(keyPath)
            let certificatePath = KeyFiles.certificatePath(forKey: keyPath)
            if let renewBefore, let hostCA,
               let text = try? Files.readText(certificatePath, what: "host certificate"),
               let current = try? Certificate(parsingText: text),
               current.body.publicKey == subject.key, current.body.signatureKey == hostCA, current.body.type == .host,
               Set(current.body.principals) == Set(principals), current.verifySignature() == .valid,
               current.body.validAfter <= now, current.body.validBefore > now.addingClamped(renewBefore) {
                kept.append(certificatePath)
                continue
            }
            certificates.append((keyPath, certificatePath, try await certify(subject.key, principals), subject.comment))
        }
        if certificates.isEmpty {
            return ([], kept, "not reloaded (nothing changed)")
        }

        var changes: [FileChange] = []
        for entry in certificates {
            if let change = try FileChange.toward(entry.path, Array(KeyFiles.certificateLine(entry.certificate, comment: entry.comment).utf8), mode: 0o644) {
                changes.append(change)
            }
        }
        let lines = (certificates.map(\.path) + kept).sorted().map { "HostCertificate \($0)" }.joined(separator: "\n") + "\n"
        let config = try SSHDConfigFile(path: request.sshdConfigPath)
        if let dropIn = config.dropInDirectory {
            let text = "# Written by `sshca host cert`: the host certificates sshd presents.\n" + lines
            if let change = try FileChange.toward(dropIn.directory + "/" + dropInName, Array(text.utf8), mode: 0o644) { changes.append(change) }
        } else if let change = try FileChange.toward(config.path, Array(config.withManagedBlock(lines, .hostCertificates).utf8), mode: 0o644) {
            changes.append(change)
        }
        let reloaded = try FileTransaction.apply(changes) { () throws(SSHCAError) -> String in
            try check.validate(configPath: request.sshdConfigPath)
            let presented = try check.all(configPath: request.sshdConfigPath, keyword: "hostcertificate")
            for entry in certificates where !presented.contains(entry.path) {
                throw SSHCAError(.badConfig, "sshd -T does not list HostCertificate \(entry.path) after the change; nothing was changed")
            }
            // Recorded like setup's changes, so `host undo` takes the certificates and the
            // drop-in away again.
            let backup = request.backupDirectory ?? Files.parentDirectory(of: request.sshdConfigPath) + "/sshca-backup"
            try Backup.record(SetupPlan(changes: changes, dropInPath: nil, directoriesToCreate: []), directory: backup)
            return reload ? try Reloader.reload(configPath: request.sshdConfigPath, check: check) : "not reloaded (--no-reload)"
        }
        return (certificates.map { Issued(keyPath: $0.key, certificatePath: $0.path, serial: $0.certificate.body.serial) }, kept, reloaded)
    }

    /// The host's full name (as the resolver knows it) and its short name.
    static func hostNames() -> [String] {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var names = [name]
        if let dot = name.firstIndex(of: "."), dot != name.startIndex { names.append(String(name[..<dot])) }
        return names
    }
}
