import Common
public import SSHFormat
import SSHCrypto
public import Ledger
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A bearer token as the holder sees it: `sshca_<id>_<secret>`. The id is public (lists, audit
/// entries); only SHA-256 of the secret is stored.
public struct BearerToken: Sendable, Equatable {
    public static let prefix = "sshca_"
    public var id: String
    public var secret: [UInt8]

    public static func generate() -> BearerToken {
        BearerToken(id: SecureRandom.bytes(6).hexString, secret: SecureRandom.bytes(32))
    }

    init(id: String, secret: [UInt8]) {
        self.id = id
        self.secret = secret
    }

    /// `sshca_` + 12 hex digits + `_` + the base64url secret (which may itself contain `_`).
    public init?(text: String) {
        let bytes = Array(text.utf8)
        let prefix = Array(Self.prefix.utf8)
        guard bytes.count < 200, bytes.count > prefix.count + 13, Array(bytes[0..<prefix.count]) == prefix,
              bytes[prefix.count + 12] == UInt8(ascii: "_") else { return nil }
        let id = String(decoding: bytes[prefix.count..<prefix.count + 12], as: UTF8.self)
        guard id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
              let secret = Data(base64URL: String(decoding: bytes[(prefix.count + 13)...], as: UTF8.self)), secret.count == 32 else { return nil }
        self.id = id
        self.secret = [UInt8](secret)
    }

    public var text: String { "\(Self.prefix)\(id)_\(Data(secret).base64URLEncoded())" }
    public var secretHash: [UInt8] { Digest.sha256.hash(secret) }
}

extension Data {
    func base64URLEncoded() -> String {
        String(base64EncodedStringWithoutPadding().map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    init?(base64URL text: String) {
        var s = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while s.utf8.count % 4 != 0 { s += "=" }
        self.init(base64Encoded: s)
    }
}

/// Users and tokens: the library calls behind `sshca user ...` and `sshca token ...`.
extension CertificateAuthority {
    /// Identity keys are long-term: the same strength rules as certified keys apply.
    static func checkIdentityKey(_ key: PublicKey, configuration: Configuration) throws(SSHCAError) {
        try IssuanceRules.checkSubjectKey(key, type: .user, minimumRSABits: configuration.minimumRSABits)
    }

    public func addUser(name: String, role: String, key: PublicKey, by: String, now: UInt64 = Clock.now()) async throws(SSHCAError) -> IdentityRecord {
        try NameRules.checkUserName(name)
        _ = try configuration.role(named: role)
        try Self.checkIdentityKey(key, configuration: configuration)
        let record = IdentityRecord(name: name, role: role, key: key, createdAt: now, updatedAt: now)
        do { try await ledger.addIdentity(record, by: by) } catch { throw SSHCAError.from(error) }
        return record
    }

    public func users() async throws(SSHCAError) -> [IdentityRecord] {
        do { return try await ledger.identities() } catch { throw SSHCAError.from(error) }
    }

    public func setUserDisabled(_ name: String, disabled: Bool, by: String, now: UInt64 = Clock.now()) async throws(SSHCAError) {
        do { try await ledger.setIdentityDisabled(name, disabled: disabled, by: by, now: now) } catch { throw SSHCAError.from(error) }
    }

    public func rekeyUser(_ name: String, key: PublicKey, by: String, now: UInt64 = Clock.now()) async throws(SSHCAError) {
        try Self.checkIdentityKey(key, configuration: configuration)
        do { try await ledger.rekeyIdentity(name, key: key, by: by, now: now) } catch { throw SSHCAError.from(error) }
    }

    /// Creates a token; the returned text is the only time the secret exists outside the holder.
    public func createToken(role: String, name: String, lifetime: UInt64, by: String, now: UInt64 = Clock.now()) async throws(SSHCAError) -> (record: TokenRecord, text: String) {
        _ = try configuration.role(named: role)
        try NameRules.checkUserName(name)
        guard lifetime > 0 else { throw SSHCAError(.badInput, "--ttl must be longer than zero") }
        let token = BearerToken.generate()
        let record = TokenRecord(id: token.id, role: role, name: name, secretHash: token.secretHash,
                                 createdAt: now, expiresAt: now.addingClamped(lifetime))
        do { try await ledger.addToken(record, by: by) } catch { throw SSHCAError.from(error) }
        return (record, token.text)
    }

    public func tokens() async throws(SSHCAError) -> [TokenRecord] {
        do { return try await ledger.tokens() } catch { throw SSHCAError.from(error) }
    }

    public func revokeToken(id: String, by: String, now: UInt64 = Clock.now()) async throws(SSHCAError) {
        do { try await ledger.revokeToken(id: id, by: by, now: now) } catch { throw SSHCAError.from(error) }
    }

    /// The applicant behind a bearer token, or why it is refused.
    public func applicant(forToken text: String, now: UInt64 = Clock.now()) async throws(SSHCAError) -> Applicant {
        guard let token = BearerToken(text: text) else {
            throw SSHCAError(.refused, "the bearer token is malformed (tokens look like sshca_<id>_<secret>)")
        }
        let record: TokenRecord?
        do { record = try await ledger.token(id: token.id) } catch { throw SSHCAError.from(error) }
        guard let record, Self.constantTimeEqual(record.secretHash, token.secretHash) else {
            throw SSHCAError(.refused, "the bearer token is not valid")
        }
        guard !record.revoked else { throw SSHCAError(.refused, "the token \(record.id) was revoked") }
        guard now < record.expiresAt else { throw SSHCAError(.refused, "the token \(record.id) expired at \(CertificateTime.format(record.expiresAt)); ask for a new one (sshca token create)") }
        return Applicant(name: record.name, kind: .token, role: try configuration.role(named: record.role))
    }

    /// The enrolled user who may sign in with a challenge, or why not.
    /// The enrolled user `name` signing in with `key`, or why not. Every name takes the same
    /// path, enrolled or not, enabled or not, right key or not: the same two queries in the same
    /// order (an unknown name's revocation lookup uses a key no one holds), the same comparison
    /// and the same text built, so the time an answer takes does not tell who is enrolled.
    /// The reason is for the audit log; callers show every refusal the same way.
    public func activeUser(_ name: String, signedBy key: PublicKey) async throws(SSHCAError) -> (identity: IdentityRecord, applicant: Applicant) {
        let record: IdentityRecord?
        let reason: String?
        do {
            record = try await ledger.identity(named: name)
            reason = try await ledger.keyRevocationReason(record?.key ?? Self.absentIdentityKey)
        } catch {
            throw SSHCAError.from(error)
        }
        let expected = record?.key ?? Self.absentIdentityKey
        let mismatch = "the signature was made by \(key.fingerprint), not by \(name)'s enrolled key \(expected.fingerprint)"
        _ = try? configuration.role(named: record?.role ?? "")  // as the answer below does, for every name
        guard let record else { throw SSHCAError(.refused, "no enrolled user \(name)") }
        guard !record.disabled else { throw SSHCAError(.refused, "the user \(name) is disabled") }
        if let reason { throw SSHCAError(.refused, "the identity key of \(name) (\(record.key.fingerprint)) is revoked: \(reason)") }
        guard key == expected else { throw SSHCAError(.refused, mismatch) }
        return (record, Applicant(name: record.name, kind: .user, role: try configuration.role(named: record.role)))
    }

    /// A fixed Ed25519 public key that is nobody's (32 bytes of a SHA-256 of a label, not a
    /// generated key): what an unknown name is looked up with.
    static let absentIdentityKey: PublicKey = {
        var w = SSHWriter()
        w.writeString("ssh-ed25519")
        w.writeString(Digest.sha256.hash(Array("sshca: no enrolled identity".utf8)))
        return try! PublicKey(blob: w.bytes)
    }()

    /// Security staff: by name in `[service] security_staff`, or through a role with `security = true`.
    public func isSecurityStaff(_ applicant: Applicant) -> Bool {
        applicant.role.security || (applicant.kind == .user && configuration.service.securityStaff.contains(applicant.name))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
