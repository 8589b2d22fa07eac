import GRDB
public import Ledger
public import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SQLiteLedger: IdentityStore {

    public func addIdentity(_ identity: IdentityRecord, by: String) throws {
        _ = try LedgerText.checked(identity.name, "user name")
        _ = try LedgerText.checked(identity.role, "role")
        try write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM identities WHERE name = ?", arguments: [identity.name]) != nil {
                throw LedgerError(.badInput, "the user \(identity.name) is already enrolled; to give them a new key use: sshca user rekey \(identity.name) --identity-key FILE")
            }
            try db.execute(sql: "INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?, ?)", arguments: [
                identity.name, identity.role, identity.key.blob, identity.key.fingerprint, identity.disabled,
                Int64(clamping: identity.createdAt), Int64(clamping: identity.updatedAt),
            ])
            _ = try Self.appendAudit(db, at: identity.createdAt, actor: by, .userAdded(name: identity.name, role: identity.role, key: identity.key))
        }
    }

    public func identity(named name: String) throws -> IdentityRecord? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM identities WHERE name = ?", arguments: [name]).map(Self.identityRecord) }
    }

    public func identities() throws -> [IdentityRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM identities ORDER BY name").map(Self.identityRecord) }
    }

    static func identityRecord(_ row: Row) throws -> IdentityRecord {
        IdentityRecord(name: row["name"], role: row["role"], key: try PublicKey(blob: [UInt8](row["key_blob"] as Data)),
                       disabled: row["disabled"], createdAt: UInt64(clamping: row["created_at"] as Int64),
                       updatedAt: UInt64(clamping: row["updated_at"] as Int64))
    }

    public func setIdentityDisabled(_ name: String, disabled: Bool, by: String, now: UInt64) throws {
        try write { db in
            try db.execute(sql: "UPDATE identities SET disabled = ?, updated_at = ? WHERE name = ?",
                           arguments: [disabled, Int64(clamping: now), name])
            guard db.changesCount == 1 else { throw Self.unknownUser(name) }
            _ = try Self.appendAudit(db, at: now, actor: by, disabled ? .userDisabled(name: name) : .userEnabled(name: name))
        }
    }

    public func rekeyIdentity(_ name: String, key: PublicKey, by: String, now: UInt64) throws {
        try write { db in
            guard let old = try Row.fetchOne(db, sql: "SELECT * FROM identities WHERE name = ?", arguments: [name]).map(Self.identityRecord) else {
                throw Self.unknownUser(name)
            }
            guard old.key != key else { throw LedgerError(.badInput, "\(name) is already enrolled with \(key.fingerprint); give the new key's .pub file") }
            try db.execute(sql: "UPDATE identities SET key_blob = ?, key_fingerprint = ?, updated_at = ? WHERE name = ?",
                           arguments: [key.blob, key.fingerprint, Int64(clamping: now), name])
            _ = try Self.appendAudit(db, at: now, actor: by, .userRekeyed(name: name, oldKey: old.key, key: key))
        }
    }

    static func unknownUser(_ name: String) -> LedgerError {
        LedgerError(.notFound, "no user named \(name) is enrolled (see: sshca user list)")
    }

    public func addToken(_ token: TokenRecord, by: String) throws {
        for (value, what) in [(token.id, "token id"), (token.name, "token name"), (token.role, "role")] {
            _ = try LedgerText.checked(value, what)
        }
        try write { db in
            try db.execute(sql: "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)", arguments: [
                token.id, token.role, token.name, Data(token.secretHash), Int64(clamping: token.createdAt),
                Int64(clamping: token.expiresAt), token.revoked,
            ])
            _ = try Self.appendAudit(db, at: token.createdAt, actor: by, .tokenCreated(id: token.id, name: token.name, role: token.role, expiresAt: token.expiresAt))
        }
    }

    public func token(id: String) throws -> TokenRecord? {
        try read { db in try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM tokens WHERE id = ?"), arguments: [id]).map(Self.tokenRecord) }
    }

    public func tokens() throws -> [TokenRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM tokens ORDER BY created_at, id").map(Self.tokenRecord) }
    }

    static func tokenRecord(_ row: Row) -> TokenRecord {
        TokenRecord(id: row["id"], role: row["role"], name: row["name"], secretHash: [UInt8](row["secret_hash"] as Data),
                    createdAt: UInt64(clamping: row["created_at"] as Int64), expiresAt: UInt64(clamping: row["expires_at"] as Int64),
                    revoked: row["revoked"])
    }

    public func revokeToken(id: String, by: String, now: UInt64) throws {
        try write { db in
            try db.execute(sql: "UPDATE tokens SET revoked = 1 WHERE id = ?", arguments: [id])
            guard db.changesCount == 1 else { throw LedgerError(.notFound, "no token with id \(id) (see: sshca token list)") }
            _ = try Self.appendAudit(db, at: now, actor: by, .tokenRevoked(id: id))
        }
    }

    public func probeWrite() throws {
        try reopenForWriting()
        try write { db in try Self.setMeta(db, "next_serial", try Self.meta(db, "next_serial")) }
    }

    public func recordEvent(_ event: AuditEvent, actor: String, now: UInt64) throws {
        try write { db in _ = try Self.appendAudit(db, at: now, actor: actor, event) }
    }

    public func keyRevocationReason(_ key: PublicKey) throws -> String? {
        try read { db in
            try String.fetchOne(db, sql: """
                SELECT r.reason FROM revoked_keys k JOIN revocations r ON r.id = k.revocation_id WHERE k.fingerprint = ?
                """, arguments: [key.fingerprint])
        }
    }

    public func issueGroup(_ requests: [GroupIssuance], now: UInt64) throws -> [Result<IssuedCertificate, LedgerError>] {
        try write { db in
            var results: [Result<IssuedCertificate, LedgerError>] = []
            results.reserveCapacity(requests.count)
            var serial = try Self.meta(db, "next_serial")
            for request in requests {
                // Everything that can refuse a request runs before its first write, so a refused
                // request leaves no trace without a savepoint; a DatabaseError fails the group.
                let outcome: Result<IssuedCertificate, LedgerError>
                do {
                    let certificate = try request.make(serial)
                    let body = certificate.body
                    guard body.serial == serial else {
                        throw LedgerError(.badInput, "the certificate carries serial \(body.serial), not the ledger's \(serial)")
                    }
                    try Self.checkIssuable(db, body)
                    try Self.store(db, certificate, requestedBy: request.requestedBy, issuedAt: now)
                    _ = try Self.appendAudit(db, at: now, actor: request.requestedBy.name, .issued(serial: serial, body: body, via: request.requestedBy.channel))
                    outcome = .success(IssuedCertificate(certificate: certificate, requestedBy: request.requestedBy, issuedAt: now))
                } catch let error as LedgerError {
                    outcome = .failure(error)
                } catch let error as DatabaseError {
                    throw error
                } catch {
                    // Signing failed (the CA key's agent went away, a token was unplugged): a
                    // failure of the CA, not of the request.
                    outcome = .failure(LedgerError(.storage, "signing failed: \(error)"))
                }
                if case .success = outcome { serial += 1 }
                results.append(outcome)
            }
            try Self.setMeta(db, "next_serial", serial)
            return results
        }
    }
}
