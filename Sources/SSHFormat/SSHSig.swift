#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A detached signature in OpenSSH's SSHSIG format (PROTOCOL.sshsig), as `ssh-keygen -Y sign`
/// writes it: who signed, in which namespace, with which hash, and the signature itself. The
/// namespace keeps a signature made for one purpose (say, "file") from being replayed for another.
public struct SSHSig: Hashable, Sendable {
    public static let magic = Array("SSHSIG".utf8)
    public static let version: UInt32 = 1
    public static let armorBegin = "-----BEGIN SSH SIGNATURE-----"
    public static let armorEnd = "-----END SSH SIGNATURE-----"

    public var publicKey: PublicKey
    public var namespace: String
    public var hashAlgorithm: String
    public var signature: SSHSignature

    public init(publicKey: PublicKey, namespace: String, hashAlgorithm: String, signature: SSHSignature) {
        self.publicKey = publicKey
        self.namespace = namespace
        self.hashAlgorithm = hashAlgorithm
        self.signature = signature
    }

    /// Parses the armored text ("-----BEGIN SSH SIGNATURE-----" ... "-----END SSH SIGNATURE-----").
    public init(armored text: String) throws(SSHFormatError) {
        guard text.utf8.count <= 64 * 1024 else { throw .notAKey("input too large for an SSH signature") }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        guard let begin = lines.firstIndex(of: Substring(Self.armorBegin)), let end = lines.firstIndex(of: Substring(Self.armorEnd)), begin < end else {
            throw .notAKey("not an SSH signature: expected \(Self.armorBegin) ... \(Self.armorEnd)")
        }
        guard let blob = Data(base64Encoded: lines[(begin + 1)..<end].joined()) else {
            throw .notAKey("the SSH signature's base64 text is corrupt")
        }
        try self.init(blob: blob)
    }

    public init(blob: some Collection<UInt8>) throws(SSHFormatError) {
        var r = SSHReader(blob)
        guard try r.readBytes(6) == Self.magic else { throw .notAKey("not an SSHSIG blob (bad magic)") }
        let version = try r.readUInt32()
        guard version == Self.version else { throw .invalid("unsupported SSHSIG version \(version)") }
        publicKey = try PublicKey(blob: try r.readString())
        namespace = try r.readText("signature namespace")
        _ = try r.readString()
        hashAlgorithm = try r.readText("hash algorithm")
        guard hashAlgorithm == "sha256" || hashAlgorithm == "sha512" else {
            throw .invalid("unsupported SSHSIG hash algorithm \"\(hashAlgorithm.prefix(20))\"")
        }
        signature = try SSHSignature(blob: try r.readString())
        try r.expectEnd("the SSH signature")
    }

    public var blob: Data {
        var w = SSHWriter(reservingCapacity: 256)
        w.writeRaw(Self.magic)
        w.writeUInt32(Self.version)
        w.writeString(publicKey.blob)
        w.writeString(namespace)
        w.writeString([UInt8]())
        w.writeString(hashAlgorithm)
        w.writeString(signature.blob)
        return w.data
    }

    public var armored: String {
        let encoded = blob.base64EncodedString()
        var text = Self.armorBegin + "\n"
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            text += encoded[index..<end] + "\n"
            index = end
        }
        return text + Self.armorEnd + "\n"
    }

    /// The bytes the signer signed for `message` in `namespace` with `hashAlgorithm`.
    public static func signedData(message: some Collection<UInt8>, namespace: String, hashAlgorithm: String) -> [UInt8] {
        let digest: Digest = hashAlgorithm == "sha256" ? .sha256 : .sha512
        var w = SSHWriter(reservingCapacity: 128)
        w.writeRaw(magic)
        w.writeString(namespace)
        w.writeString([UInt8]())
        w.writeString(hashAlgorithm)
        w.writeString(digest.hash(message))
        return w.bytes
    }
}
