public import SSHFormat
import SSHCrypto

/// One certificate from the ledger as `sshca list` and `sshca show` print it.
public struct CertificateSummary: Codable, Sendable, Equatable {
    public struct Revocation: Codable, Sendable, Equatable {
        public var id: Int64
        public var kind: String
        public var target: String
        public var reason: String
        public var by: String
        public var at: UInt64

        public init(id: Int64, kind: String, target: String, reason: String, by: String, at: UInt64) {
            self.id = id
            self.kind = kind
            self.target = target
            self.reason = reason
            self.by = by
            self.at = at
        }
    }

    public var serial: UInt64
    public var type: String
    public var keyId: String
    public var principals: [String]
    public var validAfter: UInt64
    public var validBefore: UInt64
    /// "active", "expired", "not-yet-valid" or "revoked".
    public var status: String
    public var keyFingerprint: String
    public var keyType: String
    public var caFingerprint: String
    public var requestedBy: String
    public var channel: String
    public var issuedAt: UInt64
    public var revocation: Revocation?
    public var criticalOptions: [CertificateReport.Option]
    public var extensions: [CertificateReport.Option]
    /// The certificate itself, one OpenSSH line.
    public var certificate: String

    public init(serial: UInt64, type: String, keyId: String, principals: [String], validAfter: UInt64, validBefore: UInt64,
                status: String, keyFingerprint: String, keyType: String, caFingerprint: String, requestedBy: String,
                channel: String, issuedAt: UInt64, revocation: Revocation?, criticalOptions: [CertificateReport.Option],
                extensions: [CertificateReport.Option], certificate: String) {
        self.serial = serial
        self.type = type
        self.keyId = keyId
        self.principals = principals
        self.validAfter = validAfter
        self.validBefore = validBefore
        self.status = status
        self.keyFingerprint = keyFingerprint
        self.keyType = keyType
        self.caFingerprint = caFingerprint
        self.requestedBy = requestedBy
        self.channel = channel
        self.issuedAt = issuedAt
        self.revocation = revocation
        self.criticalOptions = criticalOptions
        self.extensions = extensions
        self.certificate = certificate
    }

    /// Column layout for `sshca list`.
    public static let tableHeader = "SERIAL      TYPE  STATUS         VALID UNTIL                KEY ID                PRINCIPALS"

    public var tableRow: String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        return pad(String(serial), 12) + pad(type, 6) + pad(status, 15) + pad(CertificateTime.format(validBefore), 27)
            + pad(keyId, 22) + principals.joined(separator: ",")
    }

    /// The text `sshca show` prints.
    public var detail: String {
        var lines = [
            "Serial:        \(serial)",
            "Type:          \(type) certificate (\(keyType))",
            "Status:        \(status)",
            "Key ID:        \"\(keyId)\"",
            "Principals:    \(principals.joined(separator: ", "))",
            "Valid:         \(ValidityWindow(validAfter: validAfter, validBefore: validBefore))",
            "Key:           \(keyFingerprint)",
            "Signing CA:    \(caFingerprint)",
            "Requested by:  \(requestedBy) (\(channel)) at \(CertificateTime.format(issuedAt))",
        ]
        if !criticalOptions.isEmpty {
            lines.append("Critical:      " + criticalOptions.map { option in option.value.map { "\(option.name) \($0)" } ?? option.name }.joined(separator: "; "))
        }
        lines.append("Extensions:    " + (extensions.isEmpty ? "(none)" : extensions.map(\.name).joined(separator: ", ")))
        if let r = revocation {
            lines.append("Revoked:       #\(r.id) by \(r.by) at \(CertificateTime.format(r.at)) (\(r.kind) \(r.target)): \(r.reason)")
        }
        lines.append("Certificate:   \(certificate)")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A KRL file read back: what it revokes, and whether its signatures verify.
public struct KRLInspection: Sendable {
    public var krl: KRL
    public var signatures: [(key: PublicKey, verdict: SignatureVerdict)]

    /// Parses strictly and verifies every signature, as sshd does when it loads `RevokedKeys`:
    /// a bad signature, or signatures only by keys the KRL itself revokes, make the whole file
    /// invalid (sshd then refuses every public-key login).
    public init(bytes: [UInt8], source: String) throws(SSHCAError) {
        let parsed: (krl: KRL, signatures: [KRLSignature])
        do {
            parsed = try KRL.parse(bytes)
        } catch {
            throw SSHCAError(.badInput, "\(source) is not a KRL OpenSSH would accept: \(error)")
        }
        krl = parsed.krl
        signatures = parsed.signatures.map { ($0.signingKey, $0.signingKey.verify($0.signature, over: $0.signedBytes)) }
        for (key, verdict) in signatures where !verdict.isValid {
            throw SSHCAError(.badInput, "\(source): the signature by \(key.fingerprint) does not verify (\(verdict)); sshd would reject this KRL and refuse every key login")
        }
        if !signatures.isEmpty, signatures.allSatisfy({ krl.revocation(of: $0.key) != nil }) {
            throw SSHCAError(.badInput, "\(source) is signed only by keys it revokes; sshd would reject it and refuse every key login")
        }
    }

    public static func read(_ path: String) throws(SSHCAError) -> KRLInspection {
        try KRLInspection(bytes: try Files.read(path, maximumBytes: 1 << 30, what: "KRL"), source: path)
    }

    /// `sshca krl show`: everything in the file, readable.
    public var text: String {
        var out = """
        KRL version:   \(krl.version)
        Generated:     \(CertificateTime.format(krl.generatedDate))
        Comment:       \(krl.comment)
        Flags:         \(krl.flags)

        """
        for section in krl.certificates {
            out += "Certificates signed by \(section.caKey.map { "\($0.shortName) \($0.fingerprint)" } ?? "any CA"):\n"
            let runCount = section.serials.runCount
            out += "  serials: \(section.serials.count) in \(runCount) run(s)\n"
            for range in section.serials.runs.prefix(200) {
                out += "    \(SerialSet.rangeText(range))\n"
            }
            if runCount > 200 { out += "    ... \(runCount - 200) more run(s)\n" }
            for id in section.keyIDs { out += "  key id: \"\(id)\"\n" }
        }
        for blob in krl.explicitKeys {
            if let key = try? PublicKey(blob: blob) { out += "Key: \(key.shortName) \(key.fingerprint)\n" } else { out += "Key: (unparsable blob of \(blob.count) bytes)\n" }
        }
        for hash in krl.sha1Fingerprints { out += "SHA1 fingerprint: \(hash.hexString)\n" }
        for hash in krl.sha256Fingerprints { out += "SHA256 fingerprint: SHA256:\(hash.base64EncodedStringWithoutPadding())\n" }
        if signatures.isEmpty { out += "Signature:     none\n" }
        for (key, verdict) in signatures {
            out += "Signature:     by \(key.shortName) \(key.fingerprint): \(verdict.isValid ? "valid" : "INVALID")\n"
        }
        return out
    }
}
