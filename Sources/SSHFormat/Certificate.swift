#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Certificate type (PROTOCOL.certkeys): 1 for users, 2 for hosts.
public struct CertificateType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let user = CertificateType(rawValue: 1)
    public static let host = CertificateType(rawValue: 2)
    public var description: String {
        switch self {
        case .user: return "user"
        case .host: return "host"
        default: return "unknown type \(rawValue)"
        }
    }
}

/// A critical option or extension: a name and its data. A flag has empty data; a valued option
/// nests its value as a string inside the data (sshd rejects a flat value).
public struct CertificateOption: Hashable, Sendable {
    public var name: String
    public var data: Data

    public init(name: String, data: Data) {
        self.name = name
        self.data = data
    }

    public static func flag(_ name: String) -> CertificateOption {
        CertificateOption(name: name, data: Data())
    }

    public static func value(_ name: String, _ value: String) -> CertificateOption {
        var w = SSHWriter()
        w.writeString(value)
        return CertificateOption(name: name, data: w.data)
    }

    public var isFlag: Bool { data.isEmpty }

    /// The nested string value, if the data is exactly one string.
    public var stringValue: String? {
        var r = SSHReader(data)
        guard let raw = try? r.readString(), r.isAtEnd else { return nil }
        return String(validating: raw, as: UTF8.self)
    }

    public static let forceCommand = "force-command"
    public static let sourceAddress = "source-address"
    public static let verifyRequired = "verify-required"

    /// The extensions ssh-keygen grants by default on user certificates.
    public static let defaultUserExtensions = [
        "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
        "permit-pty", "permit-user-rc",
    ]
}

extension CertificateOption {
    /// Options are written in strcmp order of their names (PROTOCOL.certkeys).
    public static func sortedForWriting(_ options: [CertificateOption]) -> [CertificateOption] {
        let precedes = { (a: CertificateOption, b: CertificateOption) in a.name.utf8.lexicographicallyPrecedes(b.name.utf8) }
        // Usually already in order (the issuer sorts once): then no copy is made.
        if zip(options, options.dropFirst()).allSatisfy({ !precedes($1, $0) }) { return options }
        return options.sorted(by: precedes)
    }
}

/// Every field of a certificate up to, not including, the signature.
public struct CertificateBody: Hashable, Sendable {
    public var nonce: Data
    public var publicKey: PublicKey
    public var serial: UInt64
    public var type: CertificateType
    public var keyID: String
    public var principals: [String]
    public var validAfter: UInt64
    public var validBefore: UInt64
    public var criticalOptions: [CertificateOption]
    public var extensions: [CertificateOption]
    public var reserved: Data
    public var signatureKey: PublicKey

    public init(nonce: Data, publicKey: PublicKey, serial: UInt64, type: CertificateType, keyID: String,
                principals: [String], validAfter: UInt64, validBefore: UInt64,
                criticalOptions: [CertificateOption], extensions: [CertificateOption],
                reserved: Data = Data(), signatureKey: PublicKey) {
        self.nonce = nonce
        self.publicKey = publicKey
        self.serial = serial
        self.type = type
        self.keyID = keyID
        self.principals = principals
        self.validAfter = validAfter
        self.validBefore = validBefore
        self.criticalOptions = criticalOptions
        self.extensions = extensions
        self.reserved = reserved
        self.signatureKey = signatureKey
    }

    /// The certificate type name, e.g. "ssh-ed25519-cert-v01@openssh.com".
    public var typeName: String { publicKey.certificateTypeName }

    /// The bytes the CA signs. Both signing and serialising go through this one writer, so the
    /// signed bytes and the written bytes cannot drift apart. Options are written sorted.
    public func signableBytes() -> [UInt8] {
        var w = SSHWriter(reservingCapacity: 512)
        w.writeString(typeName)
        w.writeString(nonce)
        publicKey.writeFields(to: &w)
        w.writeUInt64(serial)
        w.writeUInt32(type.rawValue)
        w.writeString(keyID)
        w.writeComposite { w in
            for principal in principals { w.writeString(principal) }
        }
        w.writeUInt64(validAfter)
        w.writeUInt64(validBefore)
        for options in [criticalOptions, extensions] {
            w.writeComposite { w in
                for option in CertificateOption.sortedForWriting(options) {
                    w.writeString(option.name)
                    w.writeString(option.data)
                }
            }
        }
        w.writeString(reserved)
        w.writeString(signatureKey.blob)
        return w.bytes
    }

    public func isValid(at time: UInt64) -> Bool {
        validAfter <= time && time < validBefore
    }
}

/// An SSH signature blob: the algorithm name and the algorithm-specific signature bytes.
public struct SSHSignature: Hashable, Sendable {
    public var algorithm: String
    public var bytes: Data
    /// Security-key (sk-) signatures carry the authenticator's flags and counter after the
    /// signature (PROTOCOL.u2f); nil for other algorithms.
    public var securityKey: SecurityKeyFields?

    public struct SecurityKeyFields: Hashable, Sendable {
        public var flags: UInt8
        public var counter: UInt32

        public init(flags: UInt8, counter: UInt32) {
            self.flags = flags
            self.counter = counter
        }
        /// Bit 0: the user touched the key (user presence).
        public var userPresent: Bool { flags & 0x01 != 0 }
    }

    public init(algorithm: String, bytes: Data, securityKey: SecurityKeyFields? = nil) {
        self.algorithm = algorithm
        self.bytes = bytes
        self.securityKey = securityKey
    }

    public init(blob: some Collection<UInt8>) throws(SSHFormatError) {
        var r = SSHReader(blob)
        algorithm = try r.readText("signature algorithm")
        bytes = Data(try r.readString())
        if algorithm.hasPrefix("sk-") {
            securityKey = SecurityKeyFields(flags: try r.readByte(), counter: try r.readUInt32())
        }
        try r.expectEnd("the signature")
    }

    public var blob: Data {
        var w = SSHWriter(reservingCapacity: 24 + bytes.count + algorithm.utf8.count)
        w.writeString(algorithm)
        w.writeString(bytes)
        if let securityKey {
            w.writeByte(securityKey.flags)
            w.writeUInt32(securityKey.counter)
        }
        return w.data
    }
}

/// A signed OpenSSH certificate. A parsed certificate keeps the exact bytes it came from.
public struct Certificate: Hashable, Sendable {
    public let body: CertificateBody
    public let signature: SSHSignature
    /// The whole certificate blob as it was parsed or built.
    public let bytes: Data
    /// How many leading bytes of `bytes` the signature covers.
    public let signedLength: Int

    /// Assembles a certificate from its body and the CA's signature over `body.signableBytes()`.
    public init(body: CertificateBody, signature: SSHSignature) {
        var w = SSHWriter(reservingCapacity: 1024)
        w.writeRaw(body.signableBytes())
        let signed = w.bytes.count
        w.writeString(signature.blob)
        self.init(body: body, signature: signature, bytes: w.data, signedLength: signed)
    }

    /// Appends an already-encoded signature to bytes produced by `body.signableBytes()`.
    public init(body: CertificateBody, signableBytes: [UInt8], signature: SSHSignature) {
        var w = SSHWriter(reservingCapacity: signableBytes.count + signature.bytes.count + 32)
        w.writeRaw(signableBytes)
        w.writeString(signature.blob)
        self.init(body: body, signature: signature, bytes: w.data, signedLength: signableBytes.count)
    }

    private init(body: CertificateBody, signature: SSHSignature, bytes: Data, signedLength: Int) {
        self.body = body
        self.signature = signature
        self.bytes = bytes
        self.signedLength = signedLength
    }

    /// The bytes the signature covers.
    public var signedBytes: Data { bytes.prefix(signedLength) }

    public var typeName: String { body.typeName }

    /// Parses a certificate blob strictly: known key type, every field present, nothing left over.
    public init(blob: some Collection<UInt8>) throws(SSHFormatError) {
        var r = SSHReader(blob)
        let typeName = try r.readText("certificate type")
        guard typeName.hasSuffix("-cert-v01@openssh.com") else {
            throw .notAKey("\"\(typeName.prefix(64))\" is not an OpenSSH certificate type (expected a name ending in -cert-v01@openssh.com)")
        }
        let keyTypeName: String
        let stem = String(typeName.dropLast("-cert-v01@openssh.com".count))
        keyTypeName = stem.hasPrefix("sk-") ? stem + "@openssh.com" : stem
        let nonce = Data(try r.readString())
        let key = try PublicKey(typeName: keyTypeName, fieldsFrom: &r)
        let serial = try r.readUInt64()
        let type = CertificateType(rawValue: try r.readUInt32())
        let keyID = try r.readText("key id")
        var principalReader = SSHReader(try r.readString())
        var principals: [String] = []
        while !principalReader.isAtEnd { principals.append(try principalReader.readText("principal")) }
        let validAfter = try r.readUInt64()
        let validBefore = try r.readUInt64()
        let critical = try Self.readOptions(&r, what: "critical option")
        let extensions = try Self.readOptions(&r, what: "extension")
        let reserved = Data(try r.readString())
        let signatureKey = try PublicKey(blob: try r.readString())
        let signedLength = r.offset
        let signature = try SSHSignature(blob: try r.readString())
        try r.expectEnd("the certificate")
        let body = CertificateBody(
            nonce: nonce, publicKey: key, serial: serial, type: type, keyID: keyID, principals: principals,
            validAfter: validAfter, validBefore: validBefore, criticalOptions: critical, extensions: extensions,
            reserved: reserved, signatureKey: signatureKey)
        self.init(body: body, signature: signature, bytes: Data(blob), signedLength: signedLength)
    }

    private static func readOptions(_ r: inout SSHReader, what: String) throws(SSHFormatError) -> [CertificateOption] {
        var inner = SSHReader(try r.readString())
        var options: [CertificateOption] = []
        while !inner.isAtEnd {
            let name = try inner.readText("\(what) name")
            options.append(CertificateOption(name: name, data: Data(try inner.readString())))
        }
        return options
    }

    /// One OpenSSH line: "type-cert-v01@openssh.com base64 [comment]".
    public func openSSHLine(comment: String? = nil) -> String {
        var line = typeName + " " + bytes.base64EncodedString()
        if let comment, !comment.isEmpty { line += " " + comment }
        return line
    }

    /// Parses a certificate file's text: one OpenSSH line ("type-cert-v01@openssh.com base64 [comment]").
    public init(parsingText text: String) throws(SSHFormatError) {
        guard text.utf8.count <= 256 * 1024 else {
            throw .notAKey("input is \(text.utf8.count) bytes, too large for a certificate")
        }
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { $0.trimmingWhitespace() }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1, let line = lines.first else {
            throw .notAKey(lines.isEmpty
                ? "no certificate found: the input is empty"
                : "found \(lines.count) lines; a certificate file holds exactly one line")
        }
        let fields = line.split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else { throw .notAKey("not an OpenSSH certificate line: expected \"type base64 [comment]\"") }
        guard fields[0].hasSuffix("-cert-v01@openssh.com") else {
            if PublicKey.ed25519Name == fields[0] || fields[0].hasPrefix("ssh-") || fields[0].hasPrefix("ecdsa-") || fields[0].hasPrefix("sk-") {
                throw .notAKey("this is a plain public key, not a certificate (certificate types end in -cert-v01@openssh.com)")
            }
            throw .notAKey("not an OpenSSH certificate: the line starts with \"\(fields[0].prefix(40))\"")
        }
        guard let blob = Data(base64Encoded: String(fields[1])) else {
            throw .notAKey("the certificate's base64 text is corrupt or truncated")
        }
        let certificate = try Certificate(blob: blob)
        guard certificate.typeName == fields[0] else {
            throw .invalid("the line says \"\(fields[0].prefix(64))\" but the certificate data is \"\(certificate.typeName)\"")
        }
        self = certificate
    }
}
