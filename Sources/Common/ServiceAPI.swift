import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON shapes of the service's API (docs/openapi.yaml), shared by `sshca serve` and the
/// client commands so the two cannot drift apart. Names are camelCase, as in `sshca list --json`.
public enum ServiceAPI {
    /// The SSHSIG namespace of login signatures (`ssh-keygen -Y sign -n sshca`).
    public static let namespace = "sshca"

    public struct ChallengeRequest: Codable, Sendable {
        public var identity: String
        public init(identity: String) { self.identity = identity }
    }

    public struct Challenge: Codable, Sendable {
        public var identity: String
        /// Sign exactly these bytes (the text, UTF-8) with the identity key, namespace "sshca".
        public var nonce: String
        public var namespace: String
        public var expiresAt: UInt64
        public init(identity: String, nonce: String, namespace: String, expiresAt: UInt64) {
            self.identity = identity
            self.nonce = nonce
            self.namespace = namespace
            self.expiresAt = expiresAt
        }
    }

    public struct CertificateRequest: Codable, Sendable {
        /// One OpenSSH public key line.
        public var publicKey: String
        /// "user" (default) or "host".
        public var type: String?
        /// Defaults to every principal the role allows.
        public var principals: [String]?
        /// A duration (16h, 30d); defaults to the role's default validity.
        public var validity: String?
        public init(publicKey: String, type: String? = nil, principals: [String]? = nil, validity: String? = nil) {
            self.publicKey = publicKey
            self.type = type
            self.principals = principals
            self.validity = validity
        }
    }

    public struct IssuedCertificate: Codable, Sendable {
        /// One OpenSSH certificate line, to save as NAME-cert.pub.
        public var certificate: String
        public var serial: UInt64
        public var type: String
        public var keyId: String
        public var principals: [String]
        public var validAfter: UInt64
        public var validBefore: UInt64
        public var caFingerprint: String
        public init(certificate: String, serial: UInt64, type: String, keyId: String, principals: [String],
                    validAfter: UInt64, validBefore: UInt64, caFingerprint: String) {
            self.certificate = certificate
            self.serial = serial
            self.type = type
            self.keyId = keyId
            self.principals = principals
            self.validAfter = validAfter
            self.validBefore = validBefore
            self.caFingerprint = caFingerprint
        }
    }

    /// Exactly one of serial, serials, keyId, publicKey, principal.
    public struct RevocationRequest: Codable, Sendable {
        public var serial: UInt64?
        /// "LOW-HIGH"
        public var serials: String?
        public var keyId: String?
        public var publicKey: String?
        public var principal: String?
        /// A person (sshca revoke --user).
        public var user: String?
        public var reason: String
        public init(serial: UInt64? = nil, serials: String? = nil, keyId: String? = nil, publicKey: String? = nil,
                    principal: String? = nil, user: String? = nil, reason: String) {
            self.user = user
            self.serial = serial
            self.serials = serials
            self.keyId = keyId
            self.publicKey = publicKey
            self.principal = principal
            self.reason = reason
        }
    }

    /// A server as `GET /v1/hosts` lists it.
    public struct Host: Codable, Sendable, Equatable {
        public var name: String
        public var identifiedBy: String
        public var address: String
        public var lastSync: UInt64
        public var krlVersion: UInt64
        public var caFingerprint: String?
        /// Why it is behind (empty when it is current).
        public var behind: [String]

        public init(name: String, identifiedBy: String, address: String, lastSync: UInt64, krlVersion: UInt64, caFingerprint: String?, behind: [String]) {
            self.name = name
            self.identifiedBy = identifiedBy
            self.address = address
            self.lastSync = lastSync
            self.krlVersion = krlVersion
            self.caFingerprint = caFingerprint
            self.behind = behind
        }
    }

    public struct Revocation: Codable, Sendable {
        public var id: Int64
        public var kind: String
        public var target: String
        public var reason: String
        public var revokedBy: String
        public var isNew: Bool
        public var certificatesAffected: Int
        public var krlVersion: UInt64
        public init(id: Int64, kind: String, target: String, reason: String, revokedBy: String, isNew: Bool,
                    certificatesAffected: Int, krlVersion: UInt64) {
            self.id = id
            self.kind = kind
            self.target = target
            self.reason = reason
            self.revokedBy = revokedBy
            self.isNew = isNew
            self.certificatesAffected = certificatesAffected
            self.krlVersion = krlVersion
        }
    }

    public struct CertificateList: Codable, Sendable {
        public var certificates: [CertificateSummary]
        /// Set when more certificates match: pass it as `after` for the next page.
        public var next: UInt64?
        public init(certificates: [CertificateSummary], next: UInt64? = nil) {
            self.certificates = certificates
            self.next = next
        }
    }

    public struct Health: Codable, Sendable {
        /// "ok" or "failing".
        public var status: String
        public var ledger: String
        public var krl: String
        public var nextSerial: UInt64?
        public var krlVersion: UInt64?
        public init(status: String, ledger: String, krl: String, nextSerial: UInt64?, krlVersion: UInt64?) {
            self.status = status
            self.ledger = ledger
            self.krl = krl
            self.nextSerial = nextSerial
            self.krlVersion = krlVersion
        }
    }

    /// Every error response: `{"error": {"code": ..., "message": ..., "rule": ...}}`.
    public struct ErrorBody: Codable, Sendable {
        public struct Detail: Codable, Sendable {
            public var code: String
            public var message: String
            /// The policy rule that refused, when a rule did.
            public var rule: String?
            public init(code: String, message: String, rule: String? = nil) {
                self.code = code
                self.message = message
                self.rule = rule
            }
        }
        public var error: Detail
        public init(error: Detail) { self.error = error }
    }

    /// What a client signs to answer a challenge (namespace `sshca`), built by the client
    /// itself and rebuilt by the service from what it receives, so the signature authorises
    /// exactly one request at exactly one CA: a service in the middle that forwards the
    /// challenge cannot swap in its own key, another body or another CA.
    ///
    ///     sshca sign-in v1
    ///     ca: SHA256:...          the user CA key the client pinned (or was shown)
    ///     identity: alice
    ///     nonce: 3f9a...          the challenge's nonce: 48 lowercase hex digits
    ///     request: POST /v1/certificates
    ///     certify: SHA256:...     the key to be certified, or "-" for other requests
    ///     body: SHA256:...        SHA-256 of the exact request body (base64, as fingerprints)
    public struct SignInMessage: Sendable, Equatable {
        public static let version = "sshca sign-in v1"
        public var caFingerprint: String
        public var identity: String
        public var nonce: String
        public var request: String
        public var certifies: String?
        public var bodyDigest: String

        public init(caFingerprint: String, identity: String, nonce: String, method: String, path: String, certifies: String?, body: [UInt8]) {
            self.caFingerprint = caFingerprint
            self.identity = identity
            self.nonce = nonce
            self.request = "\(method) \(path)"
            self.certifies = certifies
            self.bodyDigest = "SHA256:" + Data(Digest.sha256.hash(body)).base64EncodedStringWithoutPadding()
        }

        public var text: String {
            [Self.version, "ca: \(caFingerprint)", "identity: \(identity)", "nonce: \(nonce)", "request: \(request)",
             "certify: \(certifies ?? "-")", "body: \(bodyDigest)"].joined(separator: "\n") + "\n"
        }

        /// A nonce as the service makes them; a client signs no other (a "nonce" that reads
        /// "I, alice, authorize ..." is not one).
        public static func isNonce(_ text: String) -> Bool {
            text.utf8.count == 48 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
        }
    }

    /// `Authorization: SSHSIG identity=NAME,nonce=NONCE,signature=BASE64` carries a challenge
    /// answer; `Authorization: Bearer sshca_...` a token.
    public struct SignatureCredential: Sendable, Equatable {
        public var identity: String
        public var nonce: String
        /// The SSHSIG blob (not armored), base64.
        public var signature: String

        public init(identity: String, nonce: String, signature: String) {
            self.identity = identity
            self.nonce = nonce
            self.signature = signature
        }

        public var headerValue: String { "SSHSIG identity=\(identity),nonce=\(nonce),signature=\(signature)" }

        public init?(headerValue: String) {
            guard headerValue.hasPrefix("SSHSIG "), headerValue.utf8.count < 16 * 1024 else { return nil }
            var fields: [String: String] = [:]
            for part in headerValue.dropFirst(7).split(separator: ",") {
                guard let eq = part.firstIndex(of: "=") else { return nil }
                let key = part[..<eq].trimmingCharacters(in: " ")
                fields[key] = String(part[part.index(after: eq)...])
            }
            guard let identity = fields["identity"], let nonce = fields["nonce"], let signature = fields["signature"],
                  !identity.isEmpty, !nonce.isEmpty, !signature.isEmpty, fields.count == 3 else { return nil }
            self.init(identity: identity, nonce: nonce, signature: signature)
        }
    }
}
