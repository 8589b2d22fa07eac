#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// The NIST curves OpenSSH uses for ECDSA keys.
public enum ECCurve: String, Sendable, CaseIterable, Hashable {
    case nistp256, nistp384, nistp521

    /// The name libcrypto uses for this curve.
    public var opensslName: String {
        switch self {
        case .nistp256: return "P-256"
        case .nistp384: return "P-384"
        case .nistp521: return "P-521"
        }
    }

    public var coordinateByteCount: Int {
        switch self {
        case .nistp256: return 32
        case .nistp384: return 48
        case .nistp521: return 66
        }
    }

    /// RFC 5656: the hash that goes with the curve size.
    public var digest: Digest {
        switch self {
        case .nistp256: return .sha256
        case .nistp384: return .sha384
        case .nistp521: return .sha512
        }
    }

    public var bits: Int {
        switch self {
        case .nistp256: return 256
        case .nistp384: return 384
        case .nistp521: return 521
        }
    }

    public var keyTypeName: String { "ecdsa-sha2-\(rawValue)" }
}

/// An SSH public key, by its wire components.
public enum PublicKey: Hashable, Sendable {
    case ed25519(Data)
    case ecdsa(curve: ECCurve, point: Data)
    /// RSA exponent and modulus, as unsigned big-endian magnitudes.
    case rsa(e: Data, n: Data)
    case skEd25519(publicKey: Data, application: String)
    case skECDSA(point: Data, application: String)

    public static let ed25519Name = "ssh-ed25519"
    public static let rsaName = "ssh-rsa"
    public static let skEd25519Name = "sk-ssh-ed25519@openssh.com"
    public static let skECDSAName = "sk-ecdsa-sha2-nistp256@openssh.com"

    /// The key type name as written in blobs and OpenSSH lines.
    public var typeName: String {
        switch self {
        case .ed25519: return Self.ed25519Name
        case .ecdsa(let curve, _): return curve.keyTypeName
        case .rsa: return Self.rsaName
        case .skEd25519: return Self.skEd25519Name
        case .skECDSA: return Self.skECDSAName
        }
    }

    /// The certificate type that certifies this kind of key (PROTOCOL.certkeys).
    public var certificateTypeName: String {
        let base = typeName
        if base.hasSuffix("@openssh.com") {
            return String(base.dropLast("@openssh.com".count)) + "-cert-v01@openssh.com"
        }
        return base + "-cert-v01@openssh.com"
    }

    /// Short name as ssh-keygen prints it ("ED25519", "ECDSA", "RSA", "ED25519-SK", "ECDSA-SK").
    public var shortName: String {
        switch self {
        case .ed25519: return "ED25519"
        case .ecdsa: return "ECDSA"
        case .rsa: return "RSA"
        case .skEd25519: return "ED25519-SK"
        case .skECDSA: return "ECDSA-SK"
        }
    }

    public var bits: Int {
        switch self {
        case .ed25519, .skEd25519: return 256
        case .ecdsa(let curve, _): return curve.bits
        case .skECDSA: return 256
        case .rsa(_, let n):
            guard let first = n.first else { return 0 }
            return (n.count - 1) * 8 + (8 - first.leadingZeroBitCount)
        }
    }

    public var isSecurityKey: Bool {
        switch self {
        case .skEd25519, .skECDSA: return true
        default: return false
        }
    }

    /// Writes the key's own fields, without the type name (the part a certificate embeds).
    public func writeFields(to w: inout SSHWriter) {
        switch self {
        case .ed25519(let pk):
            w.writeString(pk)
        case .ecdsa(let curve, let point):
            w.writeString(curve.rawValue)
            w.writeString(point)
        case .rsa(let e, let n):
            w.writeMPInt(unsigned: e)
            w.writeMPInt(unsigned: n)
        case .skEd25519(let pk, let application):
            w.writeString(pk)
            w.writeString(application)
        case .skECDSA(let point, let application):
            w.writeString(ECCurve.nistp256.rawValue)
            w.writeString(point)
            w.writeString(application)
        }
    }

    /// The public key blob: string type name, then the fields.
    public var blob: Data {
        var w = SSHWriter(reservingCapacity: 64)
        w.writeString(typeName)
        writeFields(to: &w)
        return w.data
    }

    /// "SHA256:..." as ssh-keygen -l prints it.
    public var fingerprint: String {
        "SHA256:" + Data(Digest.sha256.hash(blob)).base64EncodedStringWithoutPadding()
    }

    /// One OpenSSH line: "type base64 [comment]".
    public func openSSHLine(comment: String? = nil) -> String {
        var line = typeName + " " + blob.base64EncodedString()
        if let comment, !comment.isEmpty { line += " " + comment }
        return line
    }

    /// Parses a whole public key blob; trailing bytes are an error.
    public init(blob: some Collection<UInt8>) throws(SSHFormatError) {
        var r = SSHReader(blob)
        let name = try r.readText("key type")
        try self.init(typeName: name, fieldsFrom: &r)
        try r.expectEnd("the public key")
    }

    /// Reads the fields of a key whose type name was already read.
    public init(typeName name: String, fieldsFrom r: inout SSHReader) throws(SSHFormatError) {
        switch name {
        case Self.ed25519Name:
            let pk = try r.readString()
            guard pk.count == 32 else { throw .invalid("Ed25519 public key must be 32 bytes, found \(pk.count)") }
            self = .ed25519(Data(pk))
        case Self.rsaName:
            let e = try r.readUnsignedMPInt()
            let n = try r.readUnsignedMPInt()
            guard !e.isEmpty, !n.isEmpty else { throw .invalid("RSA key with a zero exponent or modulus") }
            self = .rsa(e: Data(e), n: Data(n))
        case Self.skEd25519Name:
            let pk = try r.readString()
            guard pk.count == 32 else { throw .invalid("Ed25519 public key must be 32 bytes, found \(pk.count)") }
            let app = try r.readText("security key application")
            self = .skEd25519(publicKey: Data(pk), application: app)
        case Self.skECDSAName:
            let point = try Self.readECPoint(curve: .nistp256, from: &r)
            let app = try r.readText("security key application")
            self = .skECDSA(point: point, application: app)
        case "ssh-dss":
            throw .unsupportedKeyType("DSA (ssh-dss) keys are refused: they are limited to 1024 bits and OpenSSH no longer accepts them; use an Ed25519 key (ssh-keygen -t ed25519)")
        default:
            if let curve = ECCurve.allCases.first(where: { $0.keyTypeName == name }) {
                self = .ecdsa(curve: curve, point: try Self.readECPoint(curve: curve, from: &r))
            } else if name.hasSuffix("-cert-v01@openssh.com") {
                throw .certificateGiven
            } else {
                throw .unsupportedKeyType("unsupported key type \"\(name.prefix(64))\"; sshca accepts ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa, sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com")
            }
        }
    }

    private static func readECPoint(curve: ECCurve, from r: inout SSHReader) throws(SSHFormatError) -> Data {
        let curveName = try r.readText("curve name")
        guard curveName == curve.rawValue else {
            throw .invalid("key type says \(curve.rawValue) but the key names curve \"\(curveName.prefix(32))\"")
        }
        let point = try r.readString()
        guard point.count == 1 + 2 * curve.coordinateByteCount, point.first == 0x04 else {
            throw .invalid("ECDSA \(curve.rawValue) point must be uncompressed (\(1 + 2 * curve.coordinateByteCount) bytes starting 0x04)")
        }
        return Data(point)
    }
}
