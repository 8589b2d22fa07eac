public import SSHFormat

/// What one audit entry records, as typed values. Its text (the entry's action and details) is
/// made here and only here, so every backend stores the same entry for the same event and no
/// backend writes audit text: a backend takes the event, stores `action` and `details` with the
/// actor and time, and extends the hash chain over them.
///
/// The events a caller knows in full are built in `Authority` and the service; the few that
/// name what only the transaction knows (the serial taken, a revocation's id, how many
/// certificates it covered) are built by the backend from those numbers, with the same cases.
public enum AuditEvent: Sendable, Equatable {
    // Certificates and revocations
    case issued(serial: UInt64, body: CertificateBody, via: String)
    case revoked(id: Int64, kind: String, target: String, certificates: Int, reason: String)
    /// The same target revoked again: nothing changes, the repeat is recorded.
    case revokedAgain(kind: String, target: String, existing: Int64, reason: String)
    /// A person revoked: their identity disabled (when enrolled) and tokens revoked.
    case personRevoked(name: String, revocation: Int64, identityDisabled: Bool, tokensRevoked: Int)
    /// A revocation read from a published KRL (a restore carrying what servers already refuse).
    case carriedFromKRL(id: Int64, krlVersion: UInt64, reason: String)
    /// Many serials revoked at once (KRL import).
    case serialBulk(id: Int64, count: Int, reason: String)
    case krlGenerated(version: UInt64, sections: Int, keys: Int, signed: Bool)
    case restored(from: String, nextSerial: UInt64, krlVersion: UInt64, generation: UInt64)
    // People and tokens
    case userAdded(name: String, role: String, key: PublicKey)
    case userDisabled(name: String)
    case userEnabled(name: String)
    case userRekeyed(name: String, oldKey: PublicKey, key: PublicKey)
    case tokenCreated(id: String, name: String, role: String, expiresAt: UInt64)
    case tokenRevoked(id: String)
    // The service's refusals
    case authenticationFailed(method: String, address: String, reason: String)
    case rateLimited(address: String, failuresPerMinute: Int)
    case policyRefused(rule: String, key: PublicKey, reason: String)
    case requestRefused(path: String, code: String, reason: String)

    public var action: String {
        switch self {
        case .issued: return "issue"
        case .revoked, .carriedFromKRL, .serialBulk: return "revoke"
        case .revokedAgain: return "revoke-again"
        case .personRevoked(_, _, let disabled, _): return disabled ? "user-disable" : "user-revoke"
        case .krlGenerated: return "krl"
        case .restored: return "restore"
        case .userAdded: return "user-add"
        case .userDisabled: return "user-disable"
        case .userEnabled: return "user-enable"
        case .userRekeyed: return "user-rekey"
        case .tokenCreated: return "token-create"
        case .tokenRevoked: return "token-revoke"
        case .authenticationFailed: return "auth-failed"
        case .rateLimited: return "rate-limited"
        case .policyRefused, .requestRefused: return "refused"
        }
    }

    /// The most a refusal or failed sign-in writes to the audit log: enough to tell what was
    /// refused and why, while a caller who sends 60 KB principals cannot grow the ledger (whose
    /// audit entries are never pruned) by more than this per request.
    public static let refusalTextLimit = 400

    public var details: String {
        switch self {
        case .authenticationFailed, .rateLimited, .policyRefused, .requestRefused:
            return Self.bounded(fullDetails, Self.refusalTextLimit)
        default:
            return fullDetails
        }
    }

    /// `text` cut to at most `limit` bytes, the cut said.
    public static func bounded(_ text: String, _ limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var cut = Substring(text.prefix(limit))
        while cut.utf8.count > limit { cut.removeLast() }
        return "\(cut)... (\(text.utf8.count - cut.utf8.count) more bytes not recorded)"
    }

    private var fullDetails: String {
        switch self {
        case let .issued(serial, body, via):
            return "serial=\(serial) type=\(body.type) key-id=\(body.keyID) principals=\(body.principals.joined(separator: ",")) key=\(body.publicKey.fingerprint) via=\(via)"
        case let .revoked(id, kind, target, certificates, reason):
            return "#\(id) \(kind)=\(target) certificates=\(certificates) reason=\(reason)"
        case let .revokedAgain(kind, target, existing, reason):
            return "\(kind)=\(target) already revoked by #\(existing); reason=\(reason)"
        case let .personRevoked(name, revocation, disabled, tokens):
            return "name=\(name) revocation=#\(revocation) identity-disabled=\(disabled) tokens-revoked=\(tokens)"
        case let .carriedFromKRL(id, version, reason):
            return "#\(id) carried from KRL version \(version); reason=\(reason)"
        case let .serialBulk(id, count, reason):
            return "#\(id) serial-bulk=\(count) reason=\(reason)"
        case let .krlGenerated(version, sections, keys, signed):
            return "version=\(version) sections=\(sections) keys=\(keys) signed=\(signed)"
        case let .restored(source, serial, version, generation):
            return "from=\(source) next_serial=\(serial) krl_version=\(version) generation=\(String(generation, radix: 16))"
        case let .userAdded(name, role, key):
            return "name=\(name) role=\(role) key=\(key.fingerprint)"
        case let .userDisabled(name), let .userEnabled(name):
            return "name=\(name)"
        case let .userRekeyed(name, old, key):
            return "name=\(name) old-key=\(old.fingerprint) key=\(key.fingerprint)"
        case let .tokenCreated(id, name, role, expires):
            return "id=\(id) name=\(name) role=\(role) expires=\(expires)"
        case let .tokenRevoked(id):
            return "id=\(id)"
        case let .authenticationFailed(method, address, reason):
            return "method=\(method) address=\(address) reason=\(reason)"
        case let .rateLimited(address, limit):
            return "address=\(address) failures_per_minute=\(limit) reached; further failures are counted, not audited, for a minute"
        case let .policyRefused(rule, key, reason):
            return "rule=\(rule) key=\(key.fingerprint) reason=\(reason)"
        case let .requestRefused(path, code, reason):
            return "path=\(path) code=\(code) reason=\(reason)"
        }
    }
}
