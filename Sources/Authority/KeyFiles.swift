public import SSHFormat

/// Reading keys and certificates from files and writing certificates next to them, as
/// `ssh-keygen -s` does.
public enum KeyFiles {
    /// `id_ed25519.pub` -> `id_ed25519-cert.pub`; a name without `.pub` gets `-cert.pub` appended.
    public static func certificatePath(forKey path: String) -> String {
        path.hasSuffix(".pub") ? String(path.dropLast(4)) + "-cert.pub" : path + "-cert.pub"
    }

    public static func parsePublicKey(_ text: String, source: String) throws(AuthorityError) -> PublicKeyText {
        do {
            return try PublicKeyText(parsing: text)
        } catch {
            throw AuthorityError(.badInput, "\(source): \(error)")
        }
    }

    public static func readPublicKey(_ path: String) throws(AuthorityError) -> PublicKeyText {
        let bytes = try Files.read(path, maximumBytes: PublicKeyText.maximumLength, what: "public key file")
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw AuthorityError(.badInput, "\(path): not a text file; a public key file is one line like \"ssh-ed25519 AAAA... user@host\"")
        }
        return try parsePublicKey(text, source: path)
    }

    public static func parseCertificate(_ bytes: [UInt8], source: String) throws(AuthorityError) -> Certificate {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw AuthorityError(.badInput, "\(source): not a text file; a certificate file is one line \"TYPE-cert-v01@openssh.com AAAA...\"")
        }
        do {
            return try Certificate(parsingText: text)
        } catch {
            throw AuthorityError(.badInput, "\(source): \(error)")
        }
    }

    /// The certificate as one OpenSSH line, carrying the key's comment as ssh-keygen does.
    public static func certificateLine(_ certificate: Certificate, comment: String) -> String {
        certificate.openSSHLine(comment: comment) + "\n"
    }

    /// Writes a certificate atomically, mode 0644 (it is public, like the .pub it certifies). No
    /// fsync: a reader never sees a torn file, and a certificate lost to a power cut is re-signed.
    public static func writeCertificate(_ certificate: Certificate, comment: String, to path: String) throws(AuthorityError) {
        try Files.writeAtomically(path, Array(certificateLine(certificate, comment: comment).utf8), mode: 0o644, durability: .renameOnly)
    }

    /// Fails early when a certificate could not be written to `path` (missing directory), so a
    /// certificate is not recorded as issued and then lost.
    public static func checkWritable(_ path: String) throws(AuthorityError) {
        let directory = Files.parentDirectory(of: path)
        guard Files.isDirectory(directory) else {
            throw AuthorityError(.io, "cannot write \(path): the directory \(directory) does not exist")
        }
        if Files.isDirectory(path) {
            throw AuthorityError(.io, "cannot write \(path): it is a directory; give a file name")
        }
    }
}
