public import SSHFormat
public import SSHCrypto

/// The detached signature of a KRL: `ssh-keygen -Y sign` format (an armored SSHSIG) over the
/// KRL file's exact bytes, by the user CA key, in a namespace of sshca's own. It authenticates a
/// KRL for `krl-sync` without a signature section inside the KRL, which OpenSSH no longer
/// supports (removed in 9.4; PROTOCOL.krl says KRLs holding one will be refused). Being over the
/// bytes, it names the KRL's version and content: a KRL and a signature fetched separately
/// verify only when they belong together. Anyone can check it:
///
///     echo "sshca namespaces=\"sshca-krl\" $(cat user_ca.pub)" > allowed_signers
///     ssh-keygen -Y verify -f allowed_signers -I sshca -n sshca-krl -s revoked.krl.sig < revoked.krl
public enum DetachedKRLSignature {
    public static let namespace = "sshca-krl"

    /// FILE.sig beside FILE.
    public static func path(for krlPath: String) -> String { krlPath + ".sig" }

    public static func sign(_ krl: [UInt8], with signer: any Signer) throws(CryptoError) -> String {
        let hash = "sha512"
        let signed = SSHSig.signedData(message: krl, namespace: namespace, hashAlgorithm: hash)
        return SSHSig(publicKey: signer.publicKey, namespace: namespace, hashAlgorithm: hash, signature: try signer.sign(signed)).armored
    }

    /// nil when `armored` is a valid signature by `key` over `krl` in the KRL namespace; else why not.
    public static func problem(_ armored: String, over krl: [UInt8], by key: PublicKey) -> String? {
        let signature: SSHSig
        do { signature = try SSHSig(armored: armored) } catch { return "the signature file is not an SSH signature (\(error))" }
        guard signature.publicKey == key else {
            return "it is not signed by the pinned key \(key.fingerprint) (its signature is by \(signature.publicKey.fingerprint))"
        }
        switch signature.verify(message: krl, namespace: namespace) {
        case .valid: return nil
        case .invalid(let why): return "the signature does not verify over this KRL (\(why)): the KRL was altered, or the two do not belong together"
        case .unsupported(let why): return "the signature cannot be checked here (\(why))"
        }
    }

    /// `sshca krl show`'s line for the signature file beside a KRL (nil when there is none):
    /// who signed it and whether it verifies over that KRL.
    public static func describe(signatureAt path: String, over krlPath: String) throws(SSHCAError) -> String? {
        guard Files.exists(path) else { return nil }
        let text = try Files.readText(path, maximumBytes: 64 * 1024, what: "KRL signature")
        let krl = try Files.read(krlPath, maximumBytes: 1 << 30, what: "KRL")
        guard let signature = try? SSHSig(armored: text) else { return "Signature:     \(path): not an SSH signature" }
        let verdict = signature.verify(message: krl, namespace: namespace)
        return "Signature:     \(path) (detached) by \(signature.publicKey.shortName) \(signature.publicKey.fingerprint): \(verdict.isValid ? "valid" : "INVALID (\(verdict))")"
    }
}
