public import SSHFormat

/// Reading keys and certificates from files and writing certificates next to them, as
/// `ssh-keygen -s` does.
public enum KeyFiles {
    /// `id_ed25519.pub` -> `id_ed25519-cert.pub`; a name without `.pub` gets `-cert.pub` appended.
    public static func certificatePath(forKey path: String) -> String {
        path.hasSuffix(".pub") ? String(path.dropLast(4)) + "-cert.pub" : path + "-cert.pub"
    }

    public static func parsePublicKey(_ text: String, source: String) throws(SSHCAError) -> PublicKeyText {
        do {
            return try PublicKeyText(parsing: text)
        } catch {
            throw SSHCAError(.badInput, "\(source): \(error)")
        }
    }

    /// The one reader of OpenSSH public-key files (a user's key, a host key, the CA's own .pub, an
    /// identity key): at most `PublicKeyText.maximumLength` bytes of UTF-8, one key line, its
    /// comment kept. A file that is missing or unreadable is `.io`; one that is not a public key,
    /// `.badInput` naming the path.
    public static func readPublicKey(_ path: String, what: String = "public key file") throws(SSHCAError) -> PublicKeyText {
        let bytes = try Files.read(path, maximumBytes: PublicKeyText.maximumLength, what: what)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SSHCAError(.badInput, "\(path): not a text file; a public key file is one line like \"ssh-ed25519 AAAA... user@host\"")
        }
        return try parsePublicKey(text, source: path)
    }

    public static func parseCertificate(_ bytes: [UInt8], source: String) throws(SSHCAError) -> Certificate {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SSHCAError(.badInput, "\(source): not a text file; a certificate file is one line \"TYPE-cert-v01@openssh.com AAAA...\"")
        }
        do {
            return try Certificate(parsingText: text)
        } catch {
            throw SSHCAError(.badInput, "\(source): \(error)")
        }
    }

    /// The certificate as one OpenSSH line, carrying the key's comment as ssh-keygen does.
    public static func certificateLine(_ certificate: Certificate, comment: String) -> String {
        certificate.openSSHLine(comment: comment) + "\n"
    }

    /// Writes a certificate atomically, mode 0644 (it is public, like the .pub it certifies). No
    /// fsync: a reader never sees a torn file, and a certificate lost to a power cut is re-signed.
    public static func writeCertificate(_ certificate: Certificate, comment: String, to path: String) throws(SSHCAError) {
        try Files.writeAtomically(path, Array(certificateLine(certificate, comment: comment).utf8), mode: 0o644, durability: .renameOnly)
    }

    /// Fails early when a certificate could not be written to `path` (missing directory), so a
    /// certificate is not recorded as issued and then lost.
    public static func checkWritable(_ path: String) throws(SSHCAError) {
        let directory = Files.parentDirectory(of: path)
        guard Files.isDirectory(directory) else {
            throw SSHCAError(.io, "cannot write \(path): the directory \(directory) does not exist")
        }
        if Files.isDirectory(path) {
            throw SSHCAError(.io, "cannot write \(path): it is a directory; give a file name")
        }
    }
}
