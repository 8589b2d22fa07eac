#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// The private fields of a key, as OpenSSH's own "openssh-key-v1" format lists them (PROTOCOL.key).
public enum PrivateKeyComponents: Sendable {
    case ed25519(seed: Data, publicKey: Data)
    case ecdsa(curve: ECCurve, point: Data, scalar: Data)
    case rsa(n: Data, e: Data, d: Data, iqmp: Data, p: Data, q: Data)

    public var publicKey: PublicKey {
        switch self {
        case .ed25519(_, let pk): return .ed25519(pk)
        case .ecdsa(let curve, let point, _): return .ecdsa(curve: curve, point: point)
        case .rsa(let n, let e, _, _, _, _): return .rsa(e: e, n: n)
        }
    }

    /// Writes an unencrypted "-----BEGIN OPENSSH PRIVATE KEY-----" file, the format `ssh-add`
    /// and OpenSSH 9.2 read for every key type (it cannot read Ed25519 keys from PKCS#8).
    public func openSSHPrivateKeyFile(comment: String, checkInt: UInt32) -> String {
        var inner = SSHWriter(reservingCapacity: 4096)
        inner.writeUInt32(checkInt)
        inner.writeUInt32(checkInt)
        inner.writeString(publicKey.typeName)
        switch self {
        case .ed25519(let seed, let pk):
            inner.writeString(pk)
            inner.writeString(seed + pk)
        case .ecdsa(let curve, let point, let scalar):
            inner.writeString(curve.rawValue)
            inner.writeString(point)
            inner.writeMPInt(unsigned: scalar)
        case .rsa(let n, let e, let d, let iqmp, let p, let q):
            inner.writeMPInt(unsigned: n)
            inner.writeMPInt(unsigned: e)
            inner.writeMPInt(unsigned: d)
            inner.writeMPInt(unsigned: iqmp)
            inner.writeMPInt(unsigned: p)
            inner.writeMPInt(unsigned: q)
        }
        inner.writeString(comment)
        // Pad to the cipher block size ("none" uses 8) with 1, 2, 3, ...
        var pad: UInt8 = 1
        while inner.bytes.count % 8 != 0 {
            inner.writeByte(pad)
            pad += 1
        }

        var w = SSHWriter(reservingCapacity: 4096)
        w.writeRaw(Array("openssh-key-v1".utf8) + [0])
        w.writeString("none")
        w.writeString("none")
        w.writeString([UInt8]())
        w.writeUInt32(1)
        w.writeString(publicKey.blob)
        w.writeString(inner.bytes)

        let encoded = w.data.base64EncodedString()
        var text = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 70, limitedBy: encoded.endIndex) ?? encoded.endIndex
            text += encoded[index..<end] + "\n"
            index = end
        }
        text += "-----END OPENSSH PRIVATE KEY-----\n"
        return text
    }
}

extension PrivateKeyComponents {
    /// Reads an unencrypted Ed25519 "openssh-key-v1" file, as `sshca login` writes them (to put
    /// a still-valid login key back into ssh-agent). Encrypted files and other types are refused.
    public init(openSSHEd25519File text: String) throws(SSHFormatError) {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: " \t") }
        guard lines.first == "-----BEGIN OPENSSH PRIVATE KEY-----", let end = lines.firstIndex(of: "-----END OPENSSH PRIVATE KEY-----") else {
            throw .notAKey("not an OpenSSH private key file")
        }
        guard let data = Data(base64Encoded: lines[1..<end].joined()) else { throw .invalid("the key file is not valid base64") }
        var r = SSHReader(data)
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard (try? r.readBytes(magic.count)) == magic else { throw .notAKey("not an openssh-key-v1 file") }
        guard try r.readString() == Array("none".utf8), try r.readString() == Array("none".utf8) else {
            throw .notAKey("the key file is encrypted")
        }
        _ = try r.readString()
        guard try r.readUInt32() == 1 else { throw .notAKey("the file holds several keys") }
        _ = try r.readString()
        var inner = SSHReader(try r.readString())
        guard try inner.readUInt32() == (try inner.readUInt32()) else { throw .notAKey("the key file's check bytes differ") }
        guard try inner.readString() == Array(PublicKey.ed25519Name.utf8) else { throw .notAKey("not an Ed25519 key") }
        let pk = try inner.readString()
        let sk = try inner.readString()
        guard pk.count == 32, sk.count == 64, Array(sk[32...]) == Array(pk) else { throw .notAKey("malformed Ed25519 key") }
        self = .ed25519(seed: Data(sk[0..<32]), publicKey: Data(pk))
    }
}
