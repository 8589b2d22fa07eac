public import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who asked for something, and through which door (the CLI, later the API).
public struct Requester: Sendable, Equatable {
    public var name: String
    public var channel: String

    public init(name: String, channel: String) {
        self.name = name
        self.channel = channel
    }
}

/// A certificate as the ledger remembers it.
public struct IssuedCertificate: Sendable, Equatable {
    public var certificate: Certificate
    public var requestedBy: Requester
    public var issuedAt: UInt64
    /// Set when the certificate is revoked (by serial, range, key id, key, principal or CA).
    public var revocation: RevocationRecord?

    public var serial: UInt64 { certificate.body.serial }
    public var body: CertificateBody { certificate.body }

    public init(certificate: Certificate, requestedBy: Requester, issuedAt: UInt64, revocation: RevocationRecord? = nil) {
        self.certificate = certificate
        self.requestedBy = requestedBy
        self.issuedAt = issuedAt
        self.revocation = revocation
    }
}

/// What a revocation names.
public enum RevocationTarget: Sendable, Equatable {
    /// One serial (low == high) or a range of serials.
    case serials(ClosedRange<UInt64>)
    /// Every certificate with this key id, now and later (the KRL's key-id section).
    case keyID(String)
    /// The key itself: every certificate of it, and no new ones.
    case key(PublicKey)
    /// Every unexpired certificate naming this principal, at the time of revocation.
    case principal(String)
    /// A person: every unexpired certificate issued to them (key id `NAME` or `NAME:...`), by
    /// serial; their enrolled identity is disabled and their tokens revoked, in one transaction.
    case person(String)
    /// A CA key that must no longer be trusted.
    case caKey(PublicKey)

    public var kind: String {
        switch self {
        case .serials: return "serial"
        case .keyID: return "key-id"
        case .key: return "key"
        case .principal: return "principal"
        case .person: return "user"
        case .caKey: return "ca-key"
        }
    }

    public var targetText: String {
        switch self {
        case .serials(let r): return SerialSet.rangeText(r)
        case .keyID(let id): return id
        case .key(let key), .caKey(let key): return key.fingerprint
        case .principal(let p), .person(let p): return p
        }
    }
}

/// A revocation as recorded.
public struct RevocationRecord: Sendable, Equatable {
    public var id: Int64
    public var kind: String
    public var target: String
    public var reason: String
    public var revokedBy: String
    public var revokedAt: UInt64

    public init(id: Int64, kind: String, target: String, reason: String, revokedBy: String, revokedAt: UInt64) {
        self.id = id
        self.kind = kind
        self.target = target
        self.reason = reason
        self.revokedBy = revokedBy
        self.revokedAt = revokedAt
    }
}

/// What a revocation did.
public struct RevocationOutcome: Sendable, Equatable {
    public var record: RevocationRecord
    /// False when the same thing had already been revoked (revoking is idempotent).
    public var isNew: Bool
    /// Certificates in the ledger that this revocation newly covers.
    public var certificatesAffected: Int

    public init(record: RevocationRecord, isNew: Bool, certificatesAffected: Int) {
        self.record = record
        self.isNew = isNew
        self.certificatesAffected = certificatesAffected
    }
}

/// Everything a KRL must say, read from the ledger in one consistent snapshot.
public struct RevocationState: Sendable, Equatable {
    /// Per CA key: revoked serial ranges and key ids.
    public var certificates: [CertificateRevocations]
    /// Plain keys (users' keys and compromised CA keys) revoked outright.
    public var keys: [PublicKey]

    public init(certificates: [CertificateRevocations], keys: [PublicKey]) {
        self.certificates = certificates
        self.keys = keys
    }
}

/// Which certificates to list.
public struct CertificateQuery: Sendable, Equatable {
    public enum Status: String, Sendable {
        case any, active, expired, revoked
    }

    public var principal: String?
    public var keyID: String?
    public var status: Status
    public var limit: Int?
    /// Only serials above this one (results come lowest serial first): the next page starts
    /// after the last serial of the previous one.
    public var after: UInt64?

    public init(principal: String? = nil, keyID: String? = nil, status: Status = .any, limit: Int? = nil, after: UInt64? = nil) {
        self.principal = principal
        self.keyID = keyID
        self.status = status
        self.limit = limit
        self.after = after
    }
}

/// One entry of the append-only audit log. Each entry's hash covers the previous entry's hash,
/// so rewriting any entry breaks every hash after it.
public struct AuditEntry: Sendable, Equatable {
    public var id: Int64
    public var at: UInt64
    public var actor: String
    public var action: String
    public var details: String
    public var previousHash: [UInt8]
    public var hash: [UInt8]

    public init(id: Int64, at: UInt64, actor: String, action: String, details: String, previousHash: [UInt8], hash: [UInt8]) {
        self.id = id
        self.at = at
        self.actor = actor
        self.action = action
        self.details = details
        self.previousHash = previousHash
        self.hash = hash
    }

    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    /// SHA-256 over the previous hash and every field, in SSH wire encoding.
    public static func computeHash(previous: [UInt8], id: Int64, at: UInt64, actor: String, action: String, details: String) -> [UInt8] {
        var w = SSHWriter(reservingCapacity: 128 + details.utf8.count)
        w.writeString(previous)
        w.writeUInt64(UInt64(bitPattern: id))
        w.writeUInt64(at)
        w.writeString(actor)
        w.writeString(action)
        w.writeString(details)
        return Digest.sha256.hash(w.bytes)
    }

    public var hashHex: String { hash.hexString }
}

/// The result of checking the audit chain.
public enum AuditVerification: Sendable, Equatable {
    case intact(entries: Int, head: String)
    /// The first entry whose stored hash does not follow from its fields and its predecessor.
    case broken(entryID: Int64, reason: String)
}

/// Failures of the ledger: stable codes, sentences for people.
public struct LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let refused = Code(rawValue: "refused")
        public static let notFound = Code(rawValue: "not-found")
        public static let badInput = Code(rawValue: "bad-input")
        public static let locked = Code(rawValue: "locked")
        public static let corrupt = Code(rawValue: "corrupt")
        public static let storage = Code(rawValue: "storage")
    }

    public var code: Code
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }
}


/// Where certificates, serials, revocations and the audit chain are kept, for any database:
/// asynchronous (a network database answers later; an embedded one may answer at once, as a
/// synchronous method satisfies an async requirement), with no paths, files or SQL types in it.
/// `LedgerSQLite` implements it today.
public protocol Ledger: IdentityStore {
    /// Issues certificates in one durable transaction, the only way a certificate enters the
    /// ledger: for each request in order, the next serial, `make` builds and signs the
    /// certificate for it, `checkIssuable` runs inside the transaction, and the certificate and
    /// its audit entry are stored; a request that fails fails alone and takes no serial.
    /// Nothing is returned (so nothing can be handed out) unless the commit succeeded.
    func issueGroup(_ requests: [GroupIssuance], now: UInt64) async throws -> [Result<IssuedCertificate, LedgerError>]

    /// Throws `.refused` if new certificates for this key id or key, or from this CA key, must not be issued.
    func checkIssuable(_ body: CertificateBody) async throws

    func revoke(_ target: RevocationTarget, reason: String, by: String, now: UInt64) async throws -> RevocationOutcome

    func certificate(serial: UInt64) async throws -> IssuedCertificate?
    func certificates(matching query: CertificateQuery, now: UInt64) async throws -> [IssuedCertificate]

    /// The revocations a KRL written now must carry; serials of certificates that expired before
    /// `omitExpiredBefore` are left out.
    func revocationState(omitExpiredBefore: UInt64) async throws -> RevocationState

    /// Allocates the next KRL version and records the KRL's generation in the audit log, in one
    /// transaction; returns the version and the audit chain head after that entry. `event`
    /// builds the entry for the version taken.
    func recordKRLGeneration(by: String, now: UInt64, event: @Sendable (UInt64) -> AuditEvent) async throws -> (version: UInt64, chainHead: String)

    func auditEntries(limit: Int?) async throws -> [AuditEntry]
    func verifyAudit() async throws -> AuditVerification

    /// Makes the ledger know CA keys, so key-id revocations cover what they sign from the start.
    func registerCAKeys(_ keys: [PublicKey]) async throws

    /// Carries a published KRL's revocations into the ledger (after a restore).
    func importRevocations(from krl: KRL, reason: String, by: String, now: UInt64) async throws

    /// Revoked keys that were certified as host keys (for @revoked lines in known_hosts).
    func revokedHostKeys() async throws -> [PublicKey]

    /// The next serial and the last KRL version.
    func counters() async throws -> (nextSerial: UInt64, krlVersion: UInt64)

    /// Notes a server's KRL sync. A name a host token vouched for is not overwritten by a mere
    /// claim; a new claimed name is kept only while fewer than `maximumHosts` are known; a
    /// server that syncs again within a minute with nothing new costs no write. Returns whether
    /// the record was written.
    @discardableResult
    func recordHostSync(_ record: HostRecord, maximumHosts: Int) async throws -> Bool

    /// Every server that ever synced, by name.
    func hosts() async throws -> [HostRecord]


    /// The ledger's generation id: made with the ledger, the same in every copy of it, and new
    /// after every restore, so a process or node still holding the ledger as it was can tell
    /// that it was replaced. nil only while a ledger made before generation ids has none.
    var generation: UInt64? { get async throws }

    /// The KRL served and the order its publishers take turns in, shared by every node on this ledger.
    var publishedKRLs: any PublishedKRLs { get }

    /// Open login challenges, shared by every node on this ledger.
    var loginChallenges: any LoginChallenges { get }
    /// Failed sign-ins per identity and address, shared by every node on this ledger.
    var failureCounts: any FailureCounts { get }
}

/// How a process uses its ledger, so that the backend opens it to suit (SQLite: one connection
/// for a command, a writer beside a pool of readers for the service).
public enum LedgerUse: Sendable {
    /// A command that runs and exits (`sshca sign`, `sshca revoke`, ...).
    case command
    /// The long-running service: many requests at once.
    case service
}

/// What running one backend takes besides the ledger's own behaviour: backups, a write probe,
/// the read-only state and the durability settings. Each backend has its own (SQLite: a file
/// copy, WAL and mount state); code that needs it holds it beside `any Ledger`, and the rest
/// of the CA never sees it.
public protocol LedgerMaintenance: Sendable {
    /// A consistent copy of the ledger, made while it is in use.
    func backup(to path: String, files: [BackupFile]) throws

    /// A durable write that changes nothing (the next-serial counter rewritten with its own
    /// value): whether the ledger can be written right now. A ledger opened read-only is
    /// opened for writing first, when that works again.
    func probeWrite() throws

    /// Why the ledger cannot be written (it was opened read-only), or nil.
    var readOnlyReason: String? { get }

    /// The last step of a long-running process (the service stopping): leaves the store as
    /// the next process wants to find it (SQLite: the WAL moved into the file), then closes it.
    func shutDown()

    /// The settings that decide whether a commit survives a crash or power loss, as the
    /// ledger's own writing connection has them (name and value, in a fixed order), so that
    /// `/metrics` and the bench report what is in force rather than what was meant.
    func durabilitySettings() throws -> [(name: String, value: String)]
}

/// What the service knows of a server from its KRL syncs (`sshca hosts`, GET /v1/hosts).
public struct HostRecord: Sendable, Equatable, Codable {
    public var name: String
    /// "token:ID" when a host token vouched for the name, "claimed" when the server only said it.
    public var identifiedBy: String
    public var address: String
    public var lastSync: UInt64
    /// The KRL version the service last gave it (or confirmed it has, with 304).
    public var krlVersion: UInt64
    /// The user CA key the server pins, as it said.
    public var caFingerprint: String?

    public init(name: String, identifiedBy: String, address: String, lastSync: UInt64, krlVersion: UInt64, caFingerprint: String?) {
        self.name = name
        self.identifiedBy = identifiedBy
        self.address = address
        self.lastSync = lastSync
        self.krlVersion = krlVersion
        self.caFingerprint = caFingerprint
    }
}

/// A file of the CA home kept in a backup beside the ledger (configuration, public keys,
/// encrypted private keys).
public struct BackupFile: Sendable, Equatable {
    /// The file's name in the home (no directories).
    public var name: String
    public var mode: UInt32
    public var content: [UInt8]

    public init(name: String, mode: UInt32, content: [UInt8]) {
        self.name = name
        self.mode = mode
        self.content = content
    }
}
