public import SSHFormat

/// An engineer (or any person) enrolled with a long-term SSH key, which proves who they are to
/// the service by signing a challenge. The key never leaves their machine.
public struct IdentityRecord: Sendable, Equatable {
    public var name: String
    public var role: String
    public var key: PublicKey
    public var disabled: Bool
    public var createdAt: UInt64
    public var updatedAt: UInt64

    public init(name: String, role: String, key: PublicKey, disabled: Bool = false, createdAt: UInt64, updatedAt: UInt64) {
        self.name = name
        self.role = role
        self.key = key
        self.disabled = disabled
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A bearer token for automation and hosts. Only a hash of the secret is kept.
public struct TokenRecord: Sendable, Equatable {
    /// The public half of the token, shown in lists and audit entries.
    public var id: String
    public var role: String
    /// What the token is for ("web-01", "ci"); the requester name in the ledger.
    public var name: String
    public var secretHash: [UInt8]
    public var createdAt: UInt64
    public var expiresAt: UInt64
    public var revoked: Bool

    public init(id: String, role: String, name: String, secretHash: [UInt8], createdAt: UInt64, expiresAt: UInt64, revoked: Bool = false) {
        self.id = id
        self.role = role
        self.name = name
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revoked = revoked
    }
}

/// One request of a group issuance: who asks, and how to build the certificate for a serial.
public struct GroupIssuance: Sendable {
    public var requestedBy: Requester
    public var make: @Sendable (UInt64) throws -> Certificate

    public init(requestedBy: Requester, make: @escaping @Sendable (UInt64) throws -> Certificate) {
        self.requestedBy = requestedBy
        self.make = make
    }
}

/// The people and tokens the service knows; kept in the ledger so that they share its backups,
/// its audit chain and its transactions.
public protocol IdentityStore: Sendable {
    func addIdentity(_ identity: IdentityRecord, by: String) async throws
    func identity(named name: String) async throws -> IdentityRecord?
    func identities() async throws -> [IdentityRecord]
    func setIdentityDisabled(_ name: String, disabled: Bool, by: String, now: UInt64) async throws
    /// Replaces the identity key; the old key stops working at once.
    func rekeyIdentity(_ name: String, key: PublicKey, by: String, now: UInt64) async throws

    func addToken(_ token: TokenRecord, by: String) async throws
    func token(id: String) async throws -> TokenRecord?
    func tokens() async throws -> [TokenRecord]
    func revokeToken(id: String, by: String, now: UInt64) async throws

    /// Appends an entry to the audit chain (refused logins, policy refusals).
    func recordEvent(_ event: AuditEvent, actor: String, now: UInt64) async throws
    /// The revocation reason if this exact key is revoked, else nil.
    func keyRevocationReason(_ key: PublicKey) async throws -> String?
}

