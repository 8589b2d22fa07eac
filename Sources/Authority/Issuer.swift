import Common
public import SSHFormat
public import SSHCrypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a caller asks the CA to certify.
public struct CertificateRequest: Sendable, Equatable {
    public var publicKey: PublicKey
    public var type: CertificateType
    public var keyID: String
    public var principals: [String]
    /// nil: the configured default validity, backdated by the configured skew margin.
    public var validity: ValidityWindow?
    /// nil: a serial chosen by the CA.
    public var serial: UInt64?
    public var forceCommand: String?
    public var sourceAddresses: [String]?
    public var verifyRequired: Bool
    /// Extensions asked for on top of (or, without defaults, instead of) the configured ones.
    public var extensions: [CertificateOption]
    public var includeDefaultExtensions: Bool
    /// The key id is `NAME:CREDENTIAL:` and the serial goes on its end when the ledger hands
    /// it out (PersonKeyID).
    public var keyIDNamesSerial = false

    public init(publicKey: PublicKey, type: CertificateType = .user, keyID: String, principals: [String],
                validity: ValidityWindow? = nil, serial: UInt64? = nil, forceCommand: String? = nil,
                sourceAddresses: [String]? = nil, verifyRequired: Bool = false,
                extensions: [CertificateOption] = [], includeDefaultExtensions: Bool = true) {
        self.publicKey = publicKey
        self.type = type
        self.keyID = keyID
        self.principals = principals
        self.validity = validity
        self.serial = serial
        self.forceCommand = forceCommand
        self.sourceAddresses = sourceAddresses
        self.verifyRequired = verifyRequired
        self.extensions = extensions
        self.includeDefaultExtensions = includeDefaultExtensions
    }
}

/// Turns requests into signed certificates: rules first, then the body, then one signature.
public struct Issuer: Sendable {
    public let signer: any Signer
    public let configuration: Configuration
    /// Every CA key of the home (the signer's among them): none is ever a subject key.
    public let caKeys: [PublicKey]

    public init(signer: any Signer, configuration: Configuration, caKeys: [PublicKey] = []) {
        self.signer = signer
        self.configuration = configuration
        self.caKeys = caKeys.contains(signer.publicKey) ? caKeys : caKeys + [signer.publicKey]
    }

    /// Checks the request against the rules and builds the certificate body, unsigned.
    public func body(for request: CertificateRequest, now: UInt64, nonce: [UInt8]? = nil) throws(SSHCAError) -> CertificateBody {
        try Self.body(for: request, configuration: configuration, signatureKey: signer.publicKey, caKeys: caKeys, now: now, nonce: nonce)
    }

    /// The same, for a CA key given by its public half: lets a caller reject bad input before it
    /// unlocks the CA key (a passphrase prompt, an agent round trip).
    /// `caKeys`: the home's other CA keys (the signature key is always included).
    public static func body(for request: CertificateRequest, configuration: Configuration, signatureKey: PublicKey,
                            caKeys: [PublicKey] = [], now: UInt64, nonce: [UInt8]? = nil) throws(SSHCAError) -> CertificateBody {
        try IssuanceRules.checkSubjectKey(request.publicKey, type: request.type, minimumRSABits: configuration.minimumRSABits,
                                          caKeys: caKeys + [signatureKey])
        try NameRules.checkKeyID(request.keyID)
        try NameRules.checkPrincipals(request.principals)
        guard request.type == .user || request.type == .host else {
            throw SSHCAError(.badInput, "unknown certificate type \(request.type.rawValue)")
        }

        var critical: [CertificateOption] = []
        if let command = request.forceCommand {
            try IssuanceRules.checkForceCommand(command)
            critical.append(.value(CertificateOption.forceCommand, command))
        }
        if let addresses = request.sourceAddresses {
            try IssuanceRules.checkSourceAddresses(addresses)
            critical.append(.value(CertificateOption.sourceAddress, addresses.joined(separator: ",")))
        }
        if request.verifyRequired { critical.append(.flag(CertificateOption.verifyRequired)) }

        var extensions: [CertificateOption] = []
        if request.type == .user, request.includeDefaultExtensions {
            extensions = configuration.userExtensions.map(CertificateOption.flag)
        }
        for option in request.extensions {
            try IssuanceRules.checkExtensionName(option.name, hasValue: !option.data.isEmpty)
            if let existing = extensions.firstIndex(where: { $0.name == option.name }) {
                extensions[existing] = option
            } else {
                extensions.append(option)
            }
        }
        if request.type == .host {
            // sshd refuses host certificates with critical options; extensions mean nothing there.
            guard critical.isEmpty else {
                throw SSHCAError(.badInput, "host certificates cannot carry critical options (force-command, source-address, verify-required); sshd would reject the certificate")
            }
            guard extensions.isEmpty else {
                throw SSHCAError(.badInput, "host certificates carry no extensions; drop --extension for --host")
            }
        }

        // PROTOCOL.certkeys: each option and extension appears once, and they are written in
        // strcmp order; the body holds them in that order so it equals the certificate read back.
        critical = CertificateOption.sortedForWriting(critical)
        extensions = CertificateOption.sortedForWriting(extensions)
        for options in [critical, extensions] {
            // Sorted, so a repeated name sits next to itself.
            if let repeated = zip(options, options.dropFirst()).first(where: { $0.name == $1.name })?.0.name {
                throw SSHCAError(.badInput, "\(repeated) is given twice; a certificate carries each option and extension once")
            }
        }

        let serial = request.serial ?? Self.randomSerial()
        guard serial >= SerialSet.firstSerial else { throw SSHCAError(.badInput, SerialSet.zeroSerialRefusal) }
        let validity = request.validity ?? ValidityWindow(
            validAfter: now.subtractingClamped(configuration.backdate),
            validBefore: now.addingClamped(request.type == .host ? configuration.hostValidity : configuration.userValidity))
        guard validity.validAfter < validity.validBefore else {
            throw SSHCAError(.badInput, "the validity window ends before it starts")
        }
        return CertificateBody(
            nonce: Data(nonce ?? SecureRandom.bytes(32)), publicKey: request.publicKey, serial: serial,
            type: request.type, keyID: request.keyID, principals: request.principals,
            validAfter: validity.validAfter, validBefore: validity.validBefore,
            criticalOptions: critical, extensions: extensions, signatureKey: signatureKey)
    }

    /// The body with the serial the ledger handed out (and, for a PersonKeyID, that serial on
    /// the end of the key id), ready to sign.
    public static func numbered(_ body: CertificateBody, serial: UInt64, keyIDNamesSerial: Bool) -> CertificateBody {
        var numbered = body
        numbered.serial = serial
        if keyIDNamesSerial { numbered.keyID += String(serial) }
        return numbered
    }

    /// Checks, builds and signs. Nothing is written anywhere: the caller decides where it goes.
    public func issue(_ request: CertificateRequest, now: UInt64) throws(SSHCAError) -> Certificate {
        try sign(try body(for: request, now: now))
    }

    public func sign(_ body: CertificateBody) throws(SSHCAError) -> Certificate {
        guard body.signatureKey == signer.publicKey else {
            throw SSHCAError(.key, "the certificate names CA key \(body.signatureKey.fingerprint) but the signer holds \(signer.publicKey.fingerprint)")
        }
        let signable = body.signableBytes()
        do {
            return Certificate(body: body, signableBytes: signable, signature: try signer.sign(signable))
        } catch {
            throw SSHCAError(.key, "signing failed: \(error.reason)")
        }
    }

    /// A random non-zero 63-bit serial, used until a ledger hands out serials.
    public static func randomSerial() -> UInt64 {
        while true {
            let serial = SecureRandom.uint64() >> 1
            if serial >= SerialSet.firstSerial { return serial }
        }
    }
}
