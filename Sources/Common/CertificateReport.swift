public import SSHFormat
import SSHCrypto

/// What `sshca inspect` shows of a certificate: its fields, who signed it and whether the
/// signature verifies. Printed like `ssh-keygen -L`, or encoded as JSON for scripts.
public struct CertificateReport: Encodable, Sendable, Equatable {
    public struct Option: Codable, Sendable, Equatable {
        public var name: String
        /// The nested string value; nil for a flag.
        public var value: String?
        /// Hex of data that is neither a flag nor one string (never written by sshca).
        public var rawHex: String?
    }

    public struct Key: Encodable, Sendable, Equatable {
        public var type: String
        public var fingerprint: String
    }

    public var type: String
    public var certificateType: String
    public var keyId: String
    public var serial: UInt64
    public var principals: [String]
    public var validAfter: UInt64
    public var validBefore: UInt64
    public var criticalOptions: [Option]
    public var extensions: [Option]
    public var publicKey: Key
    public var signingCA: Key
    public var signatureAlgorithm: String
    public var signatureValid: Bool
    /// Why the signature does not verify, when it does not.
    public var signatureProblem: String?

    public init(_ certificate: Certificate) {
        let body = certificate.body
        type = body.type.description
        certificateType = body.typeName
        keyId = body.keyID
        serial = body.serial
        principals = body.principals
        validAfter = body.validAfter
        validBefore = body.validBefore
        criticalOptions = body.criticalOptions.map(Self.option)
        extensions = body.extensions.map(Self.option)
        publicKey = Key(type: body.publicKey.typeName, fingerprint: body.publicKey.fingerprint)
        signingCA = Key(type: body.signatureKey.typeName, fingerprint: body.signatureKey.fingerprint)
        signatureAlgorithm = certificate.signature.algorithm
        switch certificate.verifySignature() {
        case .valid:
            signatureValid = true
        case .invalid(let why), .unsupported(let why):
            signatureValid = false
            signatureProblem = why
        }
        shortKeyName = body.publicKey.shortName
        shortCAName = body.signatureKey.shortName
    }

    private var shortKeyName: String
    private var shortCAName: String

    private enum CodingKeys: String, CodingKey {
        case type, certificateType, keyId, serial, principals, validAfter, validBefore, criticalOptions,
             extensions, publicKey, signingCA, signatureAlgorithm, signatureValid, signatureProblem
    }

    public static func option(_ option: CertificateOption) -> Option {
        if option.isFlag { return Option(name: option.name, value: nil, rawHex: nil) }
        if let value = option.stringValue { return Option(name: option.name, value: value, rawHex: nil) }
        return Option(name: option.name, value: nil, rawHex: option.data.hexString)
    }

    public var validityDescription: String {
        ValidityWindow(validAfter: validAfter, validBefore: validBefore).description
    }

    /// The text `sshca inspect` prints, laid out like `ssh-keygen -L`.
    public func text(source: String) -> String {
        let indent = "        "
        var out = "\(source):\n"
        out += "\(indent)Type: \(certificateType) \(type) certificate\n"
        out += "\(indent)Public key: \(shortKeyName)-CERT \(publicKey.fingerprint)\n"
        out += "\(indent)Signing CA: \(shortCAName) \(signingCA.fingerprint) (using \(signatureAlgorithm))\n"
        out += "\(indent)Key ID: \"\(keyId)\"\n"
        out += "\(indent)Serial: \(serial)\n"
        out += "\(indent)Valid: \(validityDescription)\n"
        out += "\(indent)Principals: " + (principals.isEmpty ? "(none)\n" : "\n" + principals.map { "\(indent)\(indent)\($0)\n" }.joined())
        for (title, options) in [("Critical Options", criticalOptions), ("Extensions", extensions)] {
            out += "\(indent)\(title): " + (options.isEmpty ? "(none)\n" : "\n")
            for option in options {
                out += "\(indent)\(indent)\(option.name)"
                if let value = option.value { out += " \(value)" }
                if let raw = option.rawHex { out += " (data \(raw))" }
                out += "\n"
            }
        }
        out += "\(indent)Signature: " + (signatureValid ? "valid, by CA \(signingCA.fingerprint)\n" : "INVALID (\(signatureProblem ?? "does not verify"))\n")
        return out
    }
}
