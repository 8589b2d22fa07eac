import GRDB
import CSQLiteShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
public import Ledger
public import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The ledger in one SQLite file (WAL mode, synchronous=FULL: a committed certificate survives a
/// power loss), through GRDB on the system libsqlite3. Writers take the database lock at the
/// start of their transaction (BEGIN IMMEDIATE), so concurrent `sshca sign` processes queue for
/// serials instead of failing.
public final class SQLiteLedger: Ledger, LedgerMaintenance, @unchecked Sendable {
    // GRDB's queues and pools are thread-safe; the open database is swapped under the mutex
    // (once, when a ledger opened read-only becomes writable again).
    private let database: Mutex<(writer: any DatabaseWriter, readOnlyReason: String?)>
    var pool: any DatabaseWriter { database.withLock { $0.writer } }
    public let path: String
    /// One node per SQLite file: its challenges and failure counts live in this process.
    public let loginChallenges: any LoginChallenges = MemoryLoginChallenges()
    public let failureCounts: any FailureCounts = MemoryFailureCounts()
    /// The KRL served: what the opener gives (a CA home keeps it in its files), else in memory.
    public let publishedKRLs: any PublishedKRLs
    let access: Access
    let busyTimeout: Double
    /// Set by the first write: only a command that grew the WAL empties it (`checkpointLargeWALAtClose`).
    private let hasWritten = Atomic<Bool>(false)
    /// Which ledger this object writes to: the file it opened (device and inode) and the
    /// ledger's generation id. A restore changes both; a process that finds either changed
    /// under it stops writing (`replaced`), rather than go on with a file nobody else reads or
    /// fork the history the restored ledger now holds.
    private let lineage: Mutex<Lineage>
    struct Lineage {
        var file: FileID?
        var generation: UInt64?
        var replaced: String?
    }
    struct FileID: Equatable { var device: UInt64; var inode: UInt64 }

    /// How the ledger is opened: one connection (a command that runs and exits), or a pool with
    /// concurrent readers (a long-running service).
    public enum Access: Sendable {
        case singleConnection, concurrentReaders
    }

    /// Opens (creating if needed) and migrates the ledger. `busyTimeout`: how long to wait for
    /// another process holding the write lock before giving up with `.locked`.
    /// `readOnlyFallback`: when the file cannot be written (a file system mounted read-only, a
    /// file or directory this user may not write), open it read-only instead of failing, so a
    /// service can still serve what is committed; every write then fails naming the cause, and
    /// `probeWrite` opens it for writing again once that works.
    public init(path: String, access: Access = .singleConnection, busyTimeout: Double = 10, readOnlyFallback: Bool = false,
                publishedKRLs: any PublishedKRLs = MemoryPublishedKRLs()) throws(LedgerError) {
        self.path = path
        self.publishedKRLs = publishedKRLs
        self.access = access
        self.busyTimeout = busyTimeout
        let opened: (writer: any DatabaseWriter, readOnlyReason: String?)
        do {
            let writer = try Self.openWritable(path: path, access: access, busyTimeout: busyTimeout)
            // With its -wal and -shm files present, SQLite opens a database on a read-only file
            // system without a word and fails only at the first write: find out now.
            opened = (writer, readOnlyFallback ? Self.cannotWrite(writer, path: path) : nil)
        } catch {
            guard readOnlyFallback, Glibc.access(path, F_OK) == 0, let why = Self.whyNotWritable(path) else { throw error }
            opened = (try Self.openImmutable(path: path, why: why), why)
        }
        database = Mutex(opened)
        let generation = try? opened.writer.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'generation'") }
        lineage = Mutex(Lineage(file: Self.fileID(path), generation: generation.flatMap { $0 }.map { UInt64(bitPattern: $0) }))
    }

    static func fileID(_ path: String) -> FileID? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// The ledger's generation id: made with the ledger, new after every restore (several
    /// nodes on one database will compare it too).
    public var generation: UInt64? { lineage.withLock { $0.generation } }

    /// Why this process must not write to the ledger any more because the file was replaced
    /// under it, or nil. Once set it stays: only a new process reads the file that is there now.
    func replacedReason() -> String? {
        lineage.withLock { l in
            if let replaced = l.replaced { return replaced }
            guard let file = l.file, Self.fileID(path) != file else { return nil }
            l.replaced = Self.replacedText(path, "the file at that path is no longer the one this process opened")
            return l.replaced
        }
    }

    static func replacedText(_ path: String, _ what: String) -> String {
        "the ledger \(path) was replaced under this process (a restore, or a copy put in its place: \(what)); it takes no more writes, so that it cannot fork the CA's history (serials, revocations, KRL versions). Restart it (systemctl restart sshca) to use the ledger that is there now"
    }

    /// A command's connection leaves the WAL in place when it closes, until it passes this size;
    /// then the closing command moves it into the database file and empties it, if no other
    /// connection has the ledger open (a running service checkpoints the WAL itself).
    ///
    /// A command opens the ledger, commits once and exits. By SQLite's default its close would
    /// checkpoint the WAL into the database file and delete it: two more fsyncs, and the next
    /// command creates the WAL again and syncs its directory. Kept, the WAL costs the next
    /// opener a read of it to rebuild its index (cheap while it is this small), and a commit is
    /// one append and one fsync. Without the limit the WAL would only grow: a process that opens
    /// the ledger starts its index afresh, sees every frame as not yet checkpointed, and never
    /// restarts the WAL from its beginning.
    public static let walLimit: Int = 512 * 1024

    static func openWritable(path: String, access: Access, busyTimeout: Double) throws(LedgerError) -> any DatabaseWriter {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "sshca-ledger"
        do {
            let pool: any DatabaseWriter
            switch access {
            case .singleConnection:
                // GRDB's own WAL set-up (journalMode = .wal) would run on every open and re-create
                // the WAL file; WAL mode is persistent in the file, so it is set once below.
                pool = try DatabaseQueue(path: path, configuration: configuration)
            case .concurrentReaders:
                pool = try DatabasePool(path: path, configuration: configuration)
            }
            let migrator = Self.migrator
            // After GRDB's set-up, which picks synchronous = NORMAL for WAL: with NORMAL a power
            // loss can undo the last commits, and a certificate already handed out would vanish
            // from the ledger and its serial be issued again. FULL syncs the WAL on every commit.
            let schemaIsCurrent = try pool.writeWithoutTransaction { db in
                if try String.fetchOne(db, sql: "PRAGMA journal_mode") != "wal" {
                    _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                }
                try db.execute(sql: "PRAGMA synchronous = FULL")
                if access == .singleConnection {
                    for code in [sshca_sqlite_checkpoint_at_close(db.sqliteConnection, 0), sshca_sqlite_keep_wal_file(db.sqliteConnection)] {
                        guard code == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "cannot keep the WAL at close") }
                    }
                    // A checkpoint at close then leaves an empty WAL file, not the old frames.
                    _ = try Int.fetchOne(db, sql: "PRAGMA journal_size_limit = 0")
                }
                return try Int.fetchOne(db, sql: "PRAGMA user_version") == migrator.migrations.count
            }
            // The number of migrations applied is kept in the file's header (user_version): an
            // open that finds them all there skips the migrator, which reads its own table.
            if !schemaIsCurrent {
                try migrator.migrate(pool)
                // Best effort: a ledger that cannot be written is found out later (cannotWrite).
                try? pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA user_version = \(migrator.migrations.count)") }
            }
            return pool
        } catch {
            throw Self.translate(error, doing: "opening the ledger \(path)")
        }
    }

    /// Why a write through `writer` fails as read-only (a write that changes nothing is tried),
    /// or nil when it works or fails for another reason.
    static func cannotWrite(_ writer: any DatabaseWriter, path: String) -> String? {
        do {
            try writer.write { db in try db.execute(sql: "UPDATE meta SET value = value WHERE name = 'next_serial'") }
            return nil
        } catch let error as DatabaseError where error.resultCode == .SQLITE_READONLY {
            return whyNotWritable(path) ?? "SQLite opened it read-only (\(error.message ?? "readonly"))"
        } catch {
            return nil
        }
    }

    /// Why the ledger file cannot be opened for writing, or nil when it could be (the failure
    /// was something else).
    static func whyNotWritable(_ path: String) -> String? {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var info = statvfs()
        if statvfs(path, &info) == 0, info.f_flag & UInt(ST_RDONLY) != 0 {
            return "its file system is mounted read-only"
        }
        if Glibc.access(path, W_OK) != 0 {
            return "the file is not writable by this user (\(String(cString: strerror(errno))))"
        }
        if Glibc.access(directory.isEmpty ? "/" : directory, W_OK) != 0 {
            return "its directory is not writable by this user, and SQLite keeps its -wal and -shm files there"
        }
        return nil
    }

    /// A WAL database on read-only storage opens only as immutable (SQLite cannot create the
    /// shared-memory file beside it); Debian's libsqlite3 accepts URI file names.
    static func openImmutable(path: String, why: String) throws(LedgerError) -> any DatabaseWriter {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "sshca-ledger-readonly"
        var escaped = ""
        for character in path {
            switch character {
            case "%": escaped += "%25"
            case "?": escaped += "%3f"
            case "#": escaped += "%23"
            default: escaped.append(character)
            }
        }
        do {
            let queue = try DatabaseQueue(path: "file:\(escaped)?immutable=1", configuration: configuration)
            guard try queue.read({ db in try Self.migrator.hasCompletedMigrations(db) }) else {
                throw LedgerError(.storage, "the ledger \(path) cannot be written (\(why)) and was made by an older sshca: it is upgraded at its first writable open; make it writable")
            }
            return queue
        } catch {
            throw Self.translate(error, doing: "opening the read-only ledger \(path)")
        }
    }

    deinit {
        checkpointLargeWALAtClose()
    }

    /// A command's connection (which keeps the WAL when it closes) that wrote, and finds the WAL
    /// past `walLimit`, lets its close move the WAL into the database file and empty it. SQLite
    /// does that only when no other connection has the ledger open, so it never waits for the
    /// service or holds up its writes. Commands that only read leave the files as they are.
    func checkpointLargeWALAtClose() {
        guard access == .singleConnection, hasWritten.load(ordering: .relaxed), readOnlyReason == nil else { return }
        var info = stat()
        guard stat(path + "-wal", &info) == 0, info.st_size > Self.walLimit else { return }
        pool.writeWithoutTransaction { db in
            // nil once close() has closed it (deinit comes after).
            if let connection = db.sqliteConnection { _ = sshca_sqlite_checkpoint_at_close(connection, 1) }
        }
    }

    /// Why nothing can be written (the ledger was opened read-only, or replaced under this
    /// process), or nil.
    public var readOnlyReason: String? { replacedReason() ?? database.withLock { $0.readOnlyReason } }

    static func readOnlyError(_ path: String, _ why: String) -> LedgerError {
        LedgerError(.storage, "the ledger \(path) is read-only: \(why). Nothing can be issued or revoked until it can be written again (a read-only mount: mount -o remount,rw MOUNTPOINT); the service resumes by itself within seconds")
    }

    /// A ledger opened read-only: opens it for writing if that works now.
    func reopenForWriting() throws(LedgerError) {
        if let replaced = replacedReason() { throw LedgerError(.storage, replaced) }
        guard let previous = readOnlyReason else { return }
        if let why = Self.whyNotWritable(path) {
            // Still read-only: the open connection keeps serving reads.
            database.withLock { $0.readOnlyReason = why }
            throw Self.readOnlyError(path, why)
        }
        // SQLite shares one -shm mapping per file among a process's connections: while the
        // read-only connection is open, a new one would be read-only too.
        Self.close(pool)
        do throws(LedgerError) {
            let writer = try Self.openWritable(path: path, access: access, busyTimeout: busyTimeout)
            if let why = Self.cannotWrite(writer, path: path) {
                Self.close(writer)
                throw Self.readOnlyError(path, why)
            }
            database.withLock { $0 = (writer, nil) }
        } catch {
            // Back to serving reads, as before.
            let reader = (try? Self.openWritable(path: path, access: access, busyTimeout: busyTimeout))
                ?? (try? Self.openImmutable(path: path, why: previous))
            if let reader { database.withLock { $0.writer = reader } }
            throw error
        }
    }

    static func close(_ writer: any DatabaseWriter) {
        if let queue = writer as? DatabaseQueue { try? queue.close() }
        if let pool = writer as? DatabasePool { try? pool.close() }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO meta VALUES ('next_serial', 1), ('krl_version', 0);
                CREATE TABLE ca_keys (fingerprint TEXT PRIMARY KEY, blob BLOB NOT NULL) WITHOUT ROWID;
                CREATE TABLE certificates (
                    serial INTEGER PRIMARY KEY,
                    type INTEGER NOT NULL,
                    key_id TEXT NOT NULL,
                    principals TEXT NOT NULL,
                    valid_after INTEGER NOT NULL,
                    valid_before INTEGER NOT NULL,
                    critical_options BLOB NOT NULL,
                    extensions BLOB NOT NULL,
                    key_fingerprint TEXT NOT NULL,
                    key_blob BLOB NOT NULL,
                    ca_fingerprint TEXT NOT NULL REFERENCES ca_keys(fingerprint),
                    requested_by TEXT NOT NULL,
                    channel TEXT NOT NULL,
                    issued_at INTEGER NOT NULL,
                    certificate BLOB NOT NULL);
                CREATE INDEX certificates_by_key_id ON certificates(key_id);
                CREATE INDEX certificates_by_key ON certificates(key_fingerprint);
                CREATE TABLE certificate_principals (
                    principal TEXT NOT NULL,
                    valid_before INTEGER NOT NULL,
                    serial INTEGER NOT NULL REFERENCES certificates(serial),
                    PRIMARY KEY (principal, valid_before, serial)) WITHOUT ROWID;
                CREATE TABLE revocations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    target TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    revoked_by TEXT NOT NULL,
                    revoked_at INTEGER NOT NULL);
                CREATE INDEX revocations_by_target ON revocations(kind, target);
                CREATE TABLE revoked_serials (
                    ca_fingerprint TEXT NOT NULL REFERENCES ca_keys(fingerprint),
                    low INTEGER NOT NULL,
                    high INTEGER NOT NULL,
                    valid_before INTEGER,
                    revocation_id INTEGER NOT NULL REFERENCES revocations(id),
                    PRIMARY KEY (ca_fingerprint, low, high)) WITHOUT ROWID;
                CREATE TABLE revoked_key_ids (key_id TEXT PRIMARY KEY, revocation_id INTEGER NOT NULL REFERENCES revocations(id)) WITHOUT ROWID;
                CREATE TABLE revoked_keys (
                    fingerprint TEXT PRIMARY KEY,
                    blob BLOB NOT NULL,
                    revocation_id INTEGER NOT NULL REFERENCES revocations(id)) WITHOUT ROWID;
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY,
                    at INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    details TEXT NOT NULL,
                    previous_hash BLOB NOT NULL,
                    hash BLOB NOT NULL);
                """)
        }
        // Identities and tokens (the service, issue 5). Challenges are not stored: they live a
        // minute in the service's memory and are single-use.
        migrator.registerMigration("v2-identities") { db in
            try db.execute(sql: """
                CREATE TABLE identities (
                    name TEXT PRIMARY KEY,
                    role TEXT NOT NULL,
                    key_blob BLOB NOT NULL,
                    key_fingerprint TEXT NOT NULL,
                    disabled INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL) WITHOUT ROWID;
                CREATE TABLE tokens (
                    id TEXT PRIMARY KEY,
                    role TEXT NOT NULL,
                    name TEXT NOT NULL,
                    secret_hash BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    revoked INTEGER NOT NULL) WITHOUT ROWID;
                """)
        }
        // The generation id (restores make a new one). Existing ledgers get theirs here.
        migrator.registerMigration("v3-generation") { db in
            try db.execute(sql: "INSERT OR IGNORE INTO meta VALUES ('generation', ?)",
                           arguments: [Int64(bitPattern: UInt64.random(in: 1...UInt64(Int64.max)))])
        }
        // Servers and their last KRL sync (sshca hosts).
        migrator.registerMigration("v4-hosts") { db in
            try db.execute(sql: """
                CREATE TABLE hosts (
                    name TEXT PRIMARY KEY,
                    identified_by TEXT NOT NULL,
                    address TEXT NOT NULL,
                    last_sync INTEGER NOT NULL,
                    krl_version INTEGER NOT NULL,
                    ca_fingerprint TEXT) WITHOUT ROWID;
                """)
        }
        return migrator
    }

    // MARK: Hosts

    @discardableResult
    public func recordHostSync(_ record: HostRecord, maximumHosts: Int) throws -> Bool {
        for value in [record.name, record.identifiedBy, record.address] + (record.caFingerprint.map { [$0] } ?? []) {
            _ = try LedgerText.checked(value, "host record")
        }
        let byToken = record.identifiedBy.hasPrefix("token:")
        // Decided on a read, so a sync that changes nothing (nearly all of them) takes no write lock.
        func decide(_ db: Database) throws -> Bool {
            if let row = try Row.fetchOne(db, sql: "SELECT identified_by, last_sync, krl_version, ca_fingerprint, address FROM hosts WHERE name = ?", arguments: [record.name]) {
                let by: String = row["identified_by"], address: String = row["address"]
                let last = UInt64(bitPattern: row["last_sync"] as Int64), version = UInt64(bitPattern: row["krl_version"] as Int64)
                // A claim never overwrites a name a host token vouched for, nor, for a day, a
                // claimed name another address keeps syncing.
                if !byToken && by.hasPrefix("token:") { return false }
                if !byToken && address != record.address && record.lastSync < last &+ 86_400 { return false }
                let same = by == record.identifiedBy && version == record.krlVersion && (row["ca_fingerprint"] as String?) == record.caFingerprint
                    && address == record.address
                return !(same && record.lastSync < last &+ 60)
            }
            if byToken { return true }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM hosts") ?? 0 < maximumHosts
                || (try Int.fetchOne(db, sql: "SELECT count(*) FROM hosts WHERE identified_by = 'claimed' AND last_sync < ?",
                                     arguments: [Int64(clamping: record.lastSync > 30 * 86_400 ? record.lastSync - 30 * 86_400 : 0)]) ?? 0) > 0
        }
        guard try read({ db in try decide(db) }) else { return false }
        return try write { db in
            guard try decide(db) else { return false }
            if !byToken, try Int.fetchOne(db, sql: "SELECT count(*) FROM hosts WHERE name = ?", arguments: [record.name]) == 0,
               try Int.fetchOne(db, sql: "SELECT count(*) FROM hosts") ?? 0 >= maximumHosts {
                // Full: the claimed name that has not synced for longest (over 30 days) makes room.
                try db.execute(sql: "DELETE FROM hosts WHERE name = (SELECT name FROM hosts WHERE identified_by = 'claimed' ORDER BY last_sync LIMIT 1)")
            }
            try db.execute(sql: """
                INSERT INTO hosts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET
                    identified_by = excluded.identified_by, address = excluded.address, last_sync = excluded.last_sync,
                    krl_version = excluded.krl_version, ca_fingerprint = excluded.ca_fingerprint
                """, arguments: [record.name, record.identifiedBy, record.address, Int64(clamping: record.lastSync),
                                  Int64(bitPattern: record.krlVersion), record.caFingerprint])
            return true
        }
    }

    public func hosts() throws -> [HostRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM hosts ORDER BY name").map { row in
                HostRecord(name: row["name"], identifiedBy: row["identified_by"], address: row["address"],
                           lastSync: UInt64(bitPattern: row["last_sync"] as Int64), krlVersion: UInt64(bitPattern: row["krl_version"] as Int64),
                           caFingerprint: row["ca_fingerprint"])
            }
        }
    }

    // MARK: Issuance

    public func checkIssuable(_ body: CertificateBody) throws {
        try read { db in try Self.checkIssuable(db, body) }
    }

    static func checkIssuable(_ db: Database, _ body: CertificateBody) throws {
        let keyID = body.keyID, key = body.publicKey
        if let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT r.id, r.reason FROM revoked_keys k JOIN revocations r ON r.id = k.revocation_id WHERE k.fingerprint = ?
            """), arguments: [body.signatureKey.fingerprint]) {
            // A compromised CA key signs nothing more, whichever door the request came through.
            let id: Int64 = row["id"], reason: String = row["reason"]
            throw LedgerError(.refused, "the CA key \(body.signatureKey.fingerprint) was revoked (revocation #\(id): \(reason)); it signs no more certificates. Until CA rotation exists, make a new CA (sshca init --home NEW-HOME), then run sshca host setup again on every server with the new CA")
        }
        if let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT r.reason, r.revoked_at FROM revoked_key_ids k JOIN revocations r ON r.id = k.revocation_id WHERE k.key_id = ?
            """), arguments: [keyID]) {
            let reason: String = row["reason"]
            throw LedgerError(.refused, "key id \"\(keyID)\" was revoked (\(reason)); certificates with that id are refused. Use a new key id.")
        }
        if let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT r.reason FROM revoked_keys k JOIN revocations r ON r.id = k.revocation_id WHERE k.fingerprint = ?
            """), arguments: [key.fingerprint]) {
            let reason: String = row["reason"]
            throw LedgerError(.refused, "the key \(key.fingerprint) was revoked (\(reason)); certificates for it are refused. Make a new key (ssh-keygen -t ed25519) and sign that.")
        }
    }

    static func store(_ db: Database, _ certificate: Certificate, requestedBy: Requester, issuedAt: UInt64) throws {
        let body = certificate.body
        _ = try LedgerText.checked(body.keyID, "key id")
        for principal in body.principals { _ = try LedgerText.checked(principal, "principal") }
        _ = try LedgerText.checked(requestedBy.name, "requester name")
        _ = try LedgerText.checked(requestedBy.channel, "request channel")
        let caFingerprint = body.signatureKey.fingerprint
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO ca_keys VALUES (?, ?)").execute(arguments: [caFingerprint, body.signatureKey.blob])
        var critical = SSHWriter(), extensions = SSHWriter()
        for option in body.criticalOptions { critical.writeString(option.name); critical.writeString(option.data) }
        for option in body.extensions { extensions.writeString(option.name); extensions.writeString(option.data) }
        let validBefore = Int64(clamping: body.validBefore)
        try db.cachedStatement(sql: """
            INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                Int64(bitPattern: body.serial), Int64(body.type.rawValue), body.keyID, body.principals.joined(separator: ","),
                Int64(clamping: body.validAfter), validBefore, critical.data, extensions.data,
                body.publicKey.fingerprint, body.publicKey.blob, caFingerprint, requestedBy.name, requestedBy.channel,
                Int64(clamping: issuedAt), certificate.bytes,
            ])
        for principal in body.principals {
            try db.cachedStatement(sql: "INSERT INTO certificate_principals VALUES (?, ?, ?)")
                .execute(arguments: [principal, validBefore, Int64(bitPattern: body.serial)])
        }
    }

    // MARK: Revocation

    public func revoke(_ target: RevocationTarget, reason: String, by: String, now: UInt64) throws -> RevocationOutcome {
        let trimmed = try LedgerText.checked(reason.trimmingCharacters(in: " \t\r\n"), "revocation reason")
        _ = try LedgerText.checked(target.targetText, "revocation target")
        _ = try LedgerText.checked(by, "revoker's name")
        guard !trimmed.isEmpty else {
            throw LedgerError(.badInput, "a revocation needs a reason (--reason \"laptop stolen\"); it is kept in the audit log")
        }
        return try write { db in
            let kind = target.kind, text = target.targetText
            // Principals and people are revoked by the serials they have now: again later can
            // mean new certificates.
            if kind != "principal", kind != "user", let existing = try Self.revocation(db, kind: kind, target: text) {
                _ = try Self.appendAudit(db, at: now, actor: by, .revokedAgain(kind: kind, target: text, existing: existing.id, reason: trimmed))
                return RevocationOutcome(record: existing, isNew: false, certificatesAffected: 0)
            }
            try db.execute(sql: "INSERT INTO revocations (kind, target, reason, revoked_by, revoked_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [kind, text, trimmed, by, Int64(clamping: now)])
            let id = db.lastInsertedRowID
            var affected = 0
            switch target {
            case .serials(let range):
                guard range.lowerBound >= SerialSet.firstSerial else { throw LedgerError(.badInput, SerialSet.zeroSerialRefusal) }
                let low = Int64(clamping: range.lowerBound), high = Int64(clamping: range.upperBound)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT ca_fingerprint, COUNT(*) AS n, MAX(valid_before) AS vb, MIN(serial) AS lo, MAX(serial) AS hi
                    FROM certificates WHERE serial BETWEEN ? AND ? GROUP BY ca_fingerprint
                    """, arguments: [low, high])
                guard !rows.isEmpty else {
                    throw LedgerError(.notFound, range.lowerBound == range.upperBound
                        ? "no certificate with serial \(range.lowerBound) in the ledger; check it with: sshca list, or sshca show SERIAL"
                        : "no certificate with a serial in \(range.lowerBound)-\(range.upperBound) in the ledger")
                }
                for row in rows {
                    // Only serials already issued: a range must not reach certificates issued later
                    // (the ledger hands out the serials past the current highest).
                    let ca: String = row["ca_fingerprint"]
                    let first: Int64 = row["lo"], last: Int64 = row["hi"]
                    try db.execute(sql: "INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?, ?, ?)",
                                   arguments: [ca, first, last, row["vb"] as Int64?, id])
                    affected += row["n"] as Int
                }
            case .principal(let principal):
                let rows = try Row.fetchAll(db, sql: """
                    SELECT c.serial, c.ca_fingerprint, c.valid_before FROM certificate_principals p
                    JOIN certificates c ON c.serial = p.serial
                    WHERE p.principal = ? AND p.valid_before > ?
                    """, arguments: [principal, Int64(clamping: now)])
                for row in rows {
                    let serial: Int64 = row["serial"]
                    try db.execute(sql: "INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?, ?, ?)",
                                   arguments: [row["ca_fingerprint"] as String, serial, serial, row["valid_before"] as Int64, id])
                    affected += db.changesCount
                }
            case .person(let name):
                // Key ids NAME:... sort from "NAME:" up to (not including) "NAME;" (';' follows
                // ':'); a bare NAME is what sshca before person key ids wrote.
                let rows = try Row.fetchAll(db, sql: """
                    SELECT serial, ca_fingerprint, valid_before FROM certificates
                    WHERE (key_id = ? OR (key_id >= ? AND key_id < ?)) AND valid_before > ?
                    """, arguments: [name, name + ":", name + ";", Int64(clamping: now)])
                for row in rows {
                    let serial: Int64 = row["serial"]
                    try db.execute(sql: "INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?, ?, ?)",
                                   arguments: [row["ca_fingerprint"] as String, serial, serial, row["valid_before"] as Int64, id])
                    affected += db.changesCount
                }
                try db.execute(sql: "UPDATE identities SET disabled = 1, updated_at = ? WHERE name = ? AND disabled = 0",
                               arguments: [Int64(clamping: now), name])
                let disabled = db.changesCount
                try db.execute(sql: "UPDATE tokens SET revoked = 1 WHERE name = ? AND revoked = 0", arguments: [name])
                let tokens = db.changesCount
                _ = try Self.appendAudit(db, at: now, actor: by, .personRevoked(name: name, revocation: id, identityDisabled: disabled > 0, tokensRevoked: tokens))
            case .keyID(let keyID):
                try db.execute(sql: "INSERT INTO revoked_key_ids VALUES (?, ?)", arguments: [keyID, id])
                affected = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM certificates WHERE key_id = ?", arguments: [keyID]) ?? 0
            case .key(let key), .caKey(let key):
                try db.execute(sql: "INSERT INTO revoked_keys VALUES (?, ?, ?)", arguments: [key.fingerprint, key.blob, id])
                let column = target.kind == "key" ? "key_fingerprint" : "ca_fingerprint"
                affected = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM certificates WHERE \(column) = ?", arguments: [key.fingerprint]) ?? 0
            }
            _ = try Self.appendAudit(db, at: now, actor: by, .revoked(id: id, kind: kind, target: text, certificates: affected, reason: trimmed))
            let record = RevocationRecord(id: id, kind: kind, target: text, reason: trimmed, revokedBy: by, revokedAt: now)
            return RevocationOutcome(record: record, isNew: true, certificatesAffected: affected)
        }
    }

    /// Carries the revocations of a KRL into the ledger (after a restore, so a restore never
    /// un-revokes what servers were already told).
    public func importRevocations(from krl: KRL, reason: String, by: String, now: UInt64) throws {
        // One row per run: a KRL no CA writes is not carried over.
        let runs = krl.serialRunCount
        guard runs <= KRL.maximumPlausibleSerialRuns else {
            throw LedgerError(.badInput, "the KRL to carry over holds \(runs) separate runs of revoked serials, more than \(KRL.maximumPlausibleSerialRuns); it is not one this CA wrote")
        }
        try write { db in
            try db.execute(sql: "INSERT INTO revocations (kind, target, reason, revoked_by, revoked_at) VALUES ('carried', ?, ?, ?, ?)",
                           arguments: ["KRL version \(krl.version)", reason, by, Int64(clamping: now)])
            let id = db.lastInsertedRowID
            for section in krl.certificates {
                guard let ca = section.caKey else { continue }
                try db.execute(sql: "INSERT OR IGNORE INTO ca_keys VALUES (?, ?)", arguments: [ca.fingerprint, ca.blob])
                for range in section.serials.runs {
                    try db.execute(sql: "INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?, NULL, ?)",
                                   arguments: [ca.fingerprint, Int64(bitPattern: range.lowerBound), Int64(bitPattern: range.upperBound), id])
                }
                for keyID in section.keyIDs {
                    try db.execute(sql: "INSERT OR IGNORE INTO revoked_key_ids VALUES (?, ?)",
                                   arguments: [try LedgerText.checked(keyID, "key id in the KRL"), id])
                }
            }
            for blob in krl.explicitKeys {
                let key = try PublicKey(blob: blob)
                try db.execute(sql: "INSERT OR IGNORE INTO revoked_keys VALUES (?, ?, ?)", arguments: [key.fingerprint, key.blob, id])
            }
            _ = try Self.appendAudit(db, at: now, actor: by, .carriedFromKRL(id: id, krlVersion: krl.version, reason: reason))
        }
    }

    /// Makes the ledger know a CA key, so key-id revocations reach certificates it signs even
    /// before it has issued anything through the ledger.
    public func registerCAKeys(_ keys: [PublicKey]) throws {
        try write { db in
            for key in keys {
                try db.execute(sql: "INSERT OR IGNORE INTO ca_keys VALUES (?, ?)", arguments: [key.fingerprint, key.blob])
            }
        }
    }

    /// Records many serial revocations at once (bulk loads, benchmarks), for serials that need
    /// not be in the ledger, under one CA key. Consecutive serials are stored as one range.
    public func revokeSerialsBulk(_ serials: [UInt64], caKey: PublicKey, reason: String, by: String, now: UInt64) throws {
        let runs = SerialSet(serials: serials).runs
        try write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO ca_keys VALUES (?, ?)", arguments: [caKey.fingerprint, caKey.blob])
            try db.execute(sql: "INSERT INTO revocations (kind, target, reason, revoked_by, revoked_at) VALUES ('serial-bulk', ?, ?, ?, ?)",
                           arguments: ["\(serials.count) serials", reason, by, Int64(clamping: now)])
            let id = db.lastInsertedRowID
            let statement = try db.makeStatement(sql: "INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?, NULL, ?)")
            for run in runs {
                try statement.execute(arguments: [caKey.fingerprint, Int64(bitPattern: run.lowerBound), Int64(bitPattern: run.upperBound), id])
            }
            _ = try Self.appendAudit(db, at: now, actor: by, .serialBulk(id: id, count: serials.count, reason: reason))
        }
    }

    static func revocation(_ db: Database, kind: String, target: String) throws -> RevocationRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM revocations WHERE kind = ? AND target = ? ORDER BY id LIMIT 1",
                         arguments: [kind, target]).map(Self.revocationRecord)
    }

    static func revocationRecord(_ row: Row) -> RevocationRecord {
        RevocationRecord(id: row["id"], kind: row["kind"], target: row["target"], reason: row["reason"],
                         revokedBy: row["revoked_by"], revokedAt: UInt64(clamping: row["revoked_at"] as Int64))
    }

    public func revocationState(omitExpiredBefore cutoff: UInt64) throws -> RevocationState {
        try read { db in
            var sections: [CertificateRevocations] = []
            let keyIDs = try String.fetchAll(db, sql: "SELECT key_id FROM revoked_key_ids ORDER BY key_id")
            for row in try Row.fetchAll(db, sql: "SELECT fingerprint, blob FROM ca_keys ORDER BY fingerprint") {
                let fingerprint: String = row["fingerprint"]
                let blob: Data = row["blob"]
                let ca = try PublicKey(blob: blob)
                var ranges: [ClosedRange<UInt64>] = []
                let cursor = try Row.fetchCursor(db, sql: """
                    SELECT low, high FROM revoked_serials WHERE ca_fingerprint = ? AND (valid_before IS NULL OR valid_before >= ?)
                    ORDER BY low
                    """, arguments: [fingerprint, Int64(clamping: cutoff)])
                while let r = try cursor.next() {
                    ranges.append(UInt64(bitPattern: r[0] as Int64)...UInt64(bitPattern: r[1] as Int64))
                }
                if !ranges.isEmpty || !keyIDs.isEmpty {
                    sections.append(CertificateRevocations(caKey: ca, serials: SerialSet(ranges: ranges), keyIDs: keyIDs))
                }
            }
            let keys = try Data.fetchAll(db, sql: "SELECT blob FROM revoked_keys ORDER BY fingerprint").map { try PublicKey(blob: $0) }
            return RevocationState(certificates: sections, keys: keys)
        }
    }

    /// Revoked keys that were certified as host keys (for @revoked lines in known_hosts).
    public func revokedHostKeys() throws -> [PublicKey] {
        try read { db in
            try Data.fetchAll(db, sql: """
                SELECT k.blob FROM revoked_keys k
                WHERE EXISTS (SELECT 1 FROM certificates c WHERE c.key_fingerprint = k.fingerprint AND c.type = 2)
                ORDER BY k.fingerprint
                """).map { try PublicKey(blob: $0) }
        }
    }

    public func recordKRLGeneration(by: String, now: UInt64, event: @Sendable (UInt64) -> AuditEvent) throws -> (version: UInt64, chainHead: String) {
        try write { db in
            let version = try Self.meta(db, "krl_version") + 1
            try Self.setMeta(db, "krl_version", version)
            let entry = try Self.appendAudit(db, at: now, actor: by, event(version))
            return (version, entry.hashHex)
        }
    }

    // MARK: Queries

    static let certificateColumns = "c.certificate, c.requested_by, c.channel, c.issued_at, c.serial"

    func issued(_ db: Database, _ row: Row) throws -> IssuedCertificate {
        let blob: Data = row["certificate"]
        let certificate = try Certificate(blob: blob)
        var issued = IssuedCertificate(certificate: certificate, requestedBy: Requester(name: row["requested_by"], channel: row["channel"]),
                                       issuedAt: UInt64(clamping: row["issued_at"] as Int64))
        issued.revocation = try Self.revocationCovering(db, certificate.body)
        return issued
    }

    /// The revocation that covers a certificate, if any: its serial, key id, key or CA.
    static func revocationCovering(_ db: Database, _ body: CertificateBody) throws -> RevocationRecord? {
        let serial = Int64(bitPattern: body.serial)
        let row = try Row.fetchOne(db, sql: """
            SELECT r.* FROM revocations r WHERE r.id IN (
                SELECT revocation_id FROM revoked_serials WHERE ca_fingerprint = ? AND low <= ? AND high >= ?
                UNION SELECT revocation_id FROM revoked_key_ids WHERE key_id = ?
                UNION SELECT revocation_id FROM revoked_keys WHERE fingerprint IN (?, ?))
            ORDER BY r.id LIMIT 1
            """, arguments: [body.signatureKey.fingerprint, serial, serial, body.keyID, body.publicKey.fingerprint, body.signatureKey.fingerprint])
        return row.map(revocationRecord)
    }

    public func certificate(serial: UInt64) throws -> IssuedCertificate? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.certificateColumns) FROM certificates c WHERE c.serial = ?",
                             arguments: [Int64(bitPattern: serial)]).map { try issued(db, $0) }
        }
    }

    public func certificates(matching query: CertificateQuery, now: UInt64) throws -> [IssuedCertificate] {
        try read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            var from = "certificates c"
            let nowValue = Int64(clamping: now)
            if let principal = query.principal {
                // Served from the (principal, valid_before) index: "who can log in as root now" stays
                // fast with millions of certificates.
                from = "certificate_principals p JOIN certificates c ON c.serial = p.serial"
                conditions.append("p.principal = ?")
                _ = arguments.append(contentsOf: [principal])
                if query.status == .active {
                    conditions.append("p.valid_before > ?")
                    _ = arguments.append(contentsOf: [nowValue])
                }
            }
            if let keyID = query.keyID {
                conditions.append("c.key_id = ?")
                _ = arguments.append(contentsOf: [keyID])
            }
            if let after = query.after {
                conditions.append("c.serial > ?")
                _ = arguments.append(contentsOf: [Int64(bitPattern: after)])
            }
            switch query.status {
            case .active:
                conditions.append("c.valid_before > ? AND c.valid_after <= ?")
                _ = arguments.append(contentsOf: [nowValue, nowValue])
            case .expired:
                conditions.append("c.valid_before <= ?")
                _ = arguments.append(contentsOf: [nowValue])
            case .revoked:
                // Driven by the revocation tables (each side through an index or the serial
                // range), not by decoding every certificate: revoked ones are few among millions.
                conditions.append("""
                    c.serial IN (
                        SELECT r.serial FROM revoked_serials s CROSS JOIN certificates r
                            ON r.serial BETWEEN s.low AND s.high AND +r.ca_fingerprint = s.ca_fingerprint
                        UNION SELECT r.serial FROM revoked_key_ids k CROSS JOIN certificates r ON r.key_id = k.key_id
                        UNION SELECT r.serial FROM revoked_keys k CROSS JOIN certificates r ON r.key_fingerprint = k.fingerprint
                        UNION SELECT r.serial FROM revoked_keys k CROSS JOIN ca_keys a ON a.fingerprint = k.fingerprint
                            CROSS JOIN certificates r ON r.ca_fingerprint = a.fingerprint)
                    """)
            case .any:
                break
            }
            var sql = "SELECT \(Self.certificateColumns) FROM \(from)"
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            sql += " ORDER BY c.serial"
            var results: [IssuedCertificate] = []
            let cursor = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try cursor.next() {
                let certificate = try issued(db, row)
                switch query.status {
                case .active where certificate.revocation != nil: continue
                case .revoked where certificate.revocation == nil: continue
                default: break
                }
                results.append(certificate)
                if let limit = query.limit, results.count >= limit { break }
            }
            return results
        }
    }

    // MARK: Audit

    @discardableResult
    static func appendAudit(_ db: Database, at: UInt64, actor rawActor: String, _ event: AuditEvent) throws -> AuditEntry {
        let actor = LedgerText.audit(rawActor), action = LedgerText.audit(event.action), details = LedgerText.audit(event.details)
        let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"))
        let previous: [UInt8] = last.map { [UInt8]($0["hash"] as Data) } ?? AuditEntry.genesisHash
        let id: Int64 = (last?["id"] as Int64? ?? 0) + 1
        let hash = AuditEntry.computeHash(previous: previous, id: id, at: at, actor: actor, action: action, details: details)
        try db.cachedStatement(sql: "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)").execute(
                       arguments: [id, Int64(clamping: at), actor, action, details, Data(previous), Data(hash)])
        return AuditEntry(id: id, at: at, actor: actor, action: action, details: details, previousHash: previous, hash: hash)
    }

    public func auditEntries(limit: Int?) throws -> [AuditEntry] {
        try read { db in
            let sql = limit.map { "SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT \($0)) ORDER BY id" } ?? "SELECT * FROM audit ORDER BY id"
            return try Row.fetchAll(db, sql: sql).map(Self.auditEntry)
        }
    }

    static func auditEntry(_ row: Row) -> AuditEntry {
        AuditEntry(id: row["id"], at: UInt64(clamping: row["at"] as Int64), actor: row["actor"], action: row["action"],
                   details: row["details"], previousHash: [UInt8](row["previous_hash"] as Data), hash: [UInt8](row["hash"] as Data))
    }

    public func verifyAudit() throws -> AuditVerification {
        try read { db in
            var previous = AuditEntry.genesisHash
            var expectedID: Int64 = 1
            var count = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit ORDER BY id")
            while let row = try cursor.next() {
                let entry = Self.auditEntry(row)
                if entry.id != expectedID {
                    return .broken(entryID: expectedID, reason: "entry \(expectedID) is missing (the next entry is \(entry.id))")
                }
                if entry.previousHash != previous {
                    return .broken(entryID: entry.id, reason: "entry \(entry.id) does not point at entry \(entry.id - 1)'s hash")
                }
                let computed = AuditEntry.computeHash(previous: previous, id: entry.id, at: entry.at, actor: entry.actor,
                                                      action: entry.action, details: entry.details)
                if computed != entry.hash {
                    return .broken(entryID: entry.id, reason: "entry \(entry.id) was altered: its fields do not match its hash")
                }
                previous = entry.hash
                expectedID += 1
                count += 1
            }
            // The chain cannot show that its newest entries were cut off; the certificates can:
            // each one was issued together with its audit entry.
            let certificates = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM certificates") ?? 0
            let issueEntries = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit WHERE action = 'issue'") ?? 0
            if issueEntries < certificates {
                return .broken(entryID: expectedID, reason: "\(certificates - issueEntries) issued certificate(s) have no audit entry: entries from #\(expectedID) on were removed")
            }
            return .intact(entries: count, head: previous.hexString)
        }
    }

    // MARK: Backup and restore

    /// A consistent copy of the ledger at `path` (SQLite's backup API reads one snapshot),
    /// holding `files` too: the rest of the CA (configuration, keys), so one file restores it.
    public func backup(to path: String, files: [BackupFile] = []) throws {
        do {
            let destination = try DatabaseQueue(path: path)
            try pool.backup(to: destination)
            if !files.isEmpty {
                try destination.write { db in
                    try db.execute(sql: "CREATE TABLE \(Self.backupFilesTable) (name TEXT PRIMARY KEY, mode INTEGER NOT NULL, content BLOB NOT NULL) WITHOUT ROWID")
                    for file in files {
                        try db.execute(sql: "INSERT INTO \(Self.backupFilesTable) VALUES (?, ?, ?)", arguments: [file.name, Int64(file.mode), Data(file.content)])
                    }
                }
            }
            try destination.close()
        } catch {
            throw Self.translate(error, doing: "backing up the ledger to \(path)")
        }
    }

    static let backupFilesTable = "sshca_backup_files"

    /// The files a backup holds beside the ledger (none in a backup made before they were kept).
    public static func backupFiles(path: String) throws -> [BackupFile] {
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in
                guard try db.tableExists(backupFilesTable) else { return [] }
                return try Row.fetchAll(db, sql: "SELECT name, mode, content FROM \(backupFilesTable) ORDER BY name").map { row in
                    BackupFile(name: row["name"], mode: UInt32(clamping: row["mode"] as Int64), content: [UInt8](row["content"] as Data))
                }
            }
        } catch {
            throw translate(error, doing: "reading the backup \(path)")
        }
    }

    /// After a restore from a backup, the lost ledger may have issued serials and published KRL
    /// versions past those in the backup. Both counters jump by 2^32, so no serial is handed
    /// out twice and servers accept the next KRL (they refuse a lower version).
    public static let restoreJump: UInt64 = 1 << 32

    /// Checks that a file is an sshca ledger (an empty file or another SQLite database is not),
    /// without changing it.
    public static func validateBackup(path: String) throws {
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            let ok = try queue.read { db -> Bool in
                guard try db.tableExists("meta"), try db.tableExists("certificates"), try db.tableExists("audit"),
                      try db.tableExists("grdb_migrations") else { return false }
                return try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'next_serial'") != nil
            }
            guard ok else { throw LedgerError(.corrupt, "\(path) is not an sshca ledger backup (its tables are missing)") }
        } catch {
            throw translate(error, doing: "reading the backup \(path)")
        }
    }

    public func applyRestoreJump(by: String, now: UInt64, source: String) throws {
        try write { db in
            let serial = try Self.meta(db, "next_serial") + Self.restoreJump
            let version = try Self.meta(db, "krl_version") + Self.restoreJump
            try Self.setMeta(db, "next_serial", serial)
            try Self.setMeta(db, "krl_version", version)
            // The backup's copies of the CA's files are not part of a ledger.
            try db.execute(sql: "DROP TABLE IF EXISTS \(Self.backupFilesTable)")
            // A new generation: a process still holding the ledger as it was sees the change.
            let generation = UInt64.random(in: 1...UInt64(Int64.max))
            try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES ('generation', ?)", arguments: [Int64(bitPattern: generation)])
            _ = try Self.appendAudit(db, at: now, actor: by, .restored(from: source, nextSerial: serial, krlVersion: version, generation: generation))
            lineage.withLock { $0.generation = generation }
        }
    }

    public func counters() throws -> (nextSerial: UInt64, krlVersion: UInt64) {
        try read { db in (try Self.meta(db, "next_serial"), try Self.meta(db, "krl_version")) }
    }

    public func durabilitySettings() throws -> [(name: String, value: String)] {
        let settings = try durability()
        let synchronous = ["off", "normal", "full", "extra"].indices.contains(settings.synchronous)
            ? ["off", "normal", "full", "extra"][settings.synchronous] : String(settings.synchronous)
        return [("backend", "sqlite"), ("journal_mode", settings.journalMode.lowercased()), ("synchronous", synchronous)]
    }

    /// The durability settings in force on the writing connection (journal mode, synchronous).
    public func durability() throws -> (journalMode: String, synchronous: Int) {
        do {
            return try pool.writeWithoutTransaction { db in
                (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
            }
        } catch {
            throw Self.translate(error, doing: "reading the ledger settings")
        }
    }

    /// Moves everything in the WAL into the database file (before the file is copied or renamed).
    public func checkpoint() throws {
        do {
            try pool.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        } catch {
            throw Self.translate(error, doing: "checkpointing the ledger")
        }
    }

    public func integrityCheck() throws -> String {
        try read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer" }
    }

    /// The WAL is moved into the ledger file, so the next command does not start by replaying it
    /// (closing a pool does not: its last connection is a read-only reader).
    public func shutDown() {
        try? checkpoint()
        try? close()
    }

    public func close() throws {
        checkpointLargeWALAtClose()
        if let queue = pool as? DatabaseQueue { try queue.close() }
        if let pool = pool as? DatabasePool { try pool.close() }
    }

    // MARK: Plumbing

    static func meta(_ db: Database, _ name: String) throws -> UInt64 {
        guard let value = try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE name = ?"), arguments: [name]) else {
            throw LedgerError(.corrupt, "the ledger has no \(name) counter; it is damaged")
        }
        return UInt64(bitPattern: value)
    }

    static func setMeta(_ db: Database, _ name: String, _ value: UInt64) throws {
        try db.cachedStatement(sql: "UPDATE meta SET value = ? WHERE name = ?").execute(arguments: [Int64(bitPattern: value), name])
    }

    func write<T>(_ body: (Database) throws -> T) throws -> T {
        if let replaced = replacedReason() { throw LedgerError(.storage, replaced) }
        if let why = readOnlyReason { throw Self.readOnlyError(path, why) }
        hasWritten.store(true, ordering: .relaxed)
        let expected = lineage.withLock { $0.generation }
        do {
            var result: T? = nil
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    // The same file, another ledger in it (copied over in place): checked in the
                    // transaction, so nothing is written to a ledger this process did not open.
                    if let expected, let found = try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE name = 'generation'")),
                       UInt64(bitPattern: found) != expected {
                        let text = Self.replacedText(path, "its generation id is \(String(UInt64(bitPattern: found), radix: 16)), not \(String(expected, radix: 16))")
                        lineage.withLock { $0.replaced = text }
                        throw LedgerError(.storage, text)
                    }
                    result = try body(db)
                    return .commit
                }
            }
            return result!
        } catch let error as DatabaseError where error.resultCode == .SQLITE_READONLY {
            // The file system went read-only under an open ledger (or its mode changed): say
            // why, and let probeWrite open it again once it can be written.
            guard let why = Self.whyNotWritable(path) else { throw Self.translate(error, doing: "writing to the ledger \(path)") }
            database.withLock { $0.readOnlyReason = why }
            throw Self.readOnlyError(path, why)
        } catch {
            throw Self.translate(error, doing: "writing to the ledger \(path)")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read { db in try body(db) }
        } catch {
            throw Self.translate(error, doing: "reading the ledger \(path)")
        }
    }

    static func translate(_ error: any Error, doing: String) -> LedgerError {
        if let error = error as? LedgerError { return error }
        if let error = error as? SSHFormatError { return LedgerError(.corrupt, "\(doing): a stored certificate or key does not parse (\(error)); the ledger is damaged") }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return LedgerError(.locked, "\(doing): the database is locked by another process (another sshca, or a sqlite3 shell left open); try again when it is done")
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return LedgerError(.corrupt, "\(doing): the file is not a valid SQLite database (\(error.message ?? "corrupt")); restore it with: sshca restore BACKUP_FILE")
            case .SQLITE_FULL:
                return LedgerError(.storage, "\(doing): the disk is full; nothing was written. Free space and try again")
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_IOERR:
                return LedgerError(.storage, "\(doing): \(error.message ?? "I/O error") (check the file's permissions and the disk)")
            default:
                return LedgerError(.storage, "\(doing): \(error.message ?? "\(error)")")
            }
        }
        return LedgerError(.storage, "\(doing): \(error)")
    }
}
