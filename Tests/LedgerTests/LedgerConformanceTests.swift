import Authority
import Common
import Foundation
import Ledger
import LedgerSQLite
import SSHCrypto
import SSHFormat
import Synchronization
import Testing
import TestSupport

/// What every ledger backend must do, written once against `any Ledger` and run on each backend
/// in `LedgerBackend.all` (SQLite today; PostgreSQL joins the list, not a copy of the suite).
/// Certificates are made in process with a real CA key, so each check is about the ledger alone.
struct LedgerBackend: CustomTestStringConvertible, Sendable {
    var name: String
    /// A new, empty ledger in `directory`, with its maintenance (backups).
    var open: @Sendable (_ directory: URL) throws -> any Ledger & LedgerMaintenance
    /// The ledger a backup made by `Ledger.backup(to:files:)` at `path` holds.
    var openBackup: @Sendable (_ path: String) throws -> any Ledger

    var testDescription: String { name }

    static let all: [LedgerBackend] = [
        LedgerBackend(name: "SQLite",
                      open: { directory in try SQLiteLedger(path: directory.child("ledger.sqlite").path) },
                      openBackup: { path in try SQLiteLedger(path: path) }),
        // As a CA home opens it: the KRL served is kept in the home's files.
        LedgerBackend(name: "SQLite, KRL in the home's files",
                      open: { directory in
                          try SQLiteLedger(path: directory.child("ledger.sqlite").path,
                                           publishedKRLs: HomeKRLFiles(path: directory.child("revoked.krl").path, lockPath: directory.child("revoked.krl.lock").path))
                      },
                      openBackup: { path in try SQLiteLedger(path: path) }),
    ]
}

/// The KRL versions publishers kept, in the order they kept them.
final class KeptVersions: Sendable {
    let versions = Mutex<[UInt64]>([])
}

func opened(_ result: Result<Void, ChallengeRefusal>) -> Bool {
    if case .success = result { return true }
    return false
}

extension Result where Success == Void, Failure == ChallengeRefusal {
    var refusal: ChallengeRefusal? {
        if case .failure(let refusal) = self { return refusal }
        return nil
    }
}

/// The suite's tests are synchronous; each gets its own directory, removed afterwards.
func withScratchDirectory(_ body: (URL) async throws -> Void) async throws {
    let directory = try makeTemporaryDirectory(prefix: "ledger-conformance")
    defer { try? FileManager.default.removeItem(at: directory) }
    try await body(directory)
}

/// A CA key and the certificates it signs for the suite.
struct ConformanceCA: Sendable {
    let issuer: Issuer
    let caKey: PublicKey
    let now: UInt64 = 1_800_000_000

    init() throws {
        let key = try PrivateKey.generate(.ed25519)
        caKey = key.publicKey
        issuer = Issuer(signer: OpenSSLSigner(key: key), configuration: Configuration())
    }

    func subject() throws -> PublicKey { try PrivateKey.generate(.ed25519).publicKey }

    /// A request that signs a certificate with whatever serial the ledger gives it.
    func request(_ key: PublicKey, keyID: String, principals: [String] = ["alice"], validity: UInt64 = 3600,
                 by: String = "tester") -> GroupIssuance {
        let issuer = self.issuer, now = self.now
        return GroupIssuance(requestedBy: Requester(name: by, channel: "test")) { serial in
            var request = CertificateRequest(publicKey: key, keyID: keyID, principals: principals)
            request.serial = serial
            request.validity = ValidityWindow(validAfter: now - 60, validBefore: now + validity)
            return try issuer.issue(request, now: now)
        }
    }

    /// Issues one certificate each; every one must succeed.
    @discardableResult
    func issue(_ ledger: any Ledger, _ requests: [GroupIssuance]) async throws -> [IssuedCertificate] {
        try await ledger.issueGroup(requests, now: now).map { try $0.get() }
    }
}

@Suite("Ledger conformance (every backend)")
struct LedgerConformanceTests {
    @Test("serials are 1, 2, 3 in order without gaps; a refused request takes none; the ledger returns the bytes it was given", arguments: LedgerBackend.all)
    func serials(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir), ca = try ConformanceCA()
            await #expect(try ledger.counters().nextSerial == 1)
            let k = try ca.subject()
            let first = try await ca.issue(ledger, [ca.request(k, keyID: "a"), ca.request(k, keyID: "b"), ca.request(k, keyID: "c")])
            #expect(first.map(\.serial) == [1, 2, 3])
            for issued in first {
                let stored = try await #require(try ledger.certificate(serial: issued.serial))
                #expect(stored.certificate.bytes == issued.certificate.bytes)
                #expect(stored.requestedBy == Requester(name: "tester", channel: "test") && stored.issuedAt == ca.now)
            }
            // A request whose certificate carries another serial, and one whose signing fails,
            // fail alone and take no serial; the others around them go on from 4.
            let wrongSerial = GroupIssuance(requestedBy: Requester(name: "tester", channel: "test")) { serial in
                var request = CertificateRequest(publicKey: k, keyID: "wrong", principals: ["alice"])
                request.serial = serial + 10
                return try ca.issuer.issue(request, now: ca.now)
            }
            struct SignerGone: Error {}
            let failing = GroupIssuance(requestedBy: Requester(name: "tester", channel: "test")) { _ in throw SignerGone() }
            let results = try await ledger.issueGroup([wrongSerial, ca.request(k, keyID: "d"), failing, ca.request(k, keyID: "e")], now: ca.now)
            #expect(results.count == 4)
            if case .failure(let error) = results[0] { #expect(error.code == .badInput, "\(error)") } else { Issue.record("a certificate with the wrong serial was stored") }
            if case .failure = results[2] {} else { Issue.record("a request whose signing failed succeeded") }
            #expect((try? results[1].get())?.serial == 4 && (try? results[3].get())?.serial == 5)
            await #expect(try ledger.counters().nextSerial == 6)
            let (fourteen, six) = (try await ledger.certificate(serial: 14), try await ledger.certificate(serial: 6))
            #expect(fourteen == nil && six == nil)
            await #expect(try ledger.certificates(matching: CertificateQuery(), now: ca.now).map(\.serial) == [1, 2, 3, 4, 5])
        }
    }

    @Test("every revocation kind: what it covers, what it refuses from then on, and that repeating it changes nothing", arguments: LedgerBackend.all)
    func revocationKinds(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir), ca = try ConformanceCA()
            try await ledger.registerCAKeys([ca.caKey])
            let alice = try ca.subject(), bob = try ca.subject(), carol = try ca.subject()
            try await ca.issue(ledger, [
                ca.request(alice, keyID: "alice:laptop", principals: ["alice"]),   // 1
                ca.request(bob, keyID: "bob", principals: ["bob", "deploy"]),      // 2
                ca.request(carol, keyID: "carol", principals: ["carol"]),          // 3
                ca.request(carol, keyID: "robot", principals: ["deploy"]),         // 4
                ca.request(bob, keyID: "bob-2", principals: ["bob"]),              // 5
            ])
            func revoke(_ target: RevocationTarget) async throws -> RevocationOutcome {
                try await ledger.revoke(target, reason: "test", by: "sec", now: ca.now)
            }
            func refusal(_ key: PublicKey, _ keyID: String) async throws -> LedgerError? {
                if case .failure(let error) = try await ledger.issueGroup([ca.request(key, keyID: keyID)], now: ca.now)[0] { return error }
                return nil
            }
            // Serials: only issued ones; none issued in the range is not-found; 0 is refused.
            await #expect(throws: LedgerError.self) { try await revoke(.serials(0...1)) }
            do { _ = try await revoke(.serials(40...49)); Issue.record("a range with no issued certificate was recorded") } catch let e as LedgerError { #expect(e.code == .notFound) }
            let range = try await revoke(.serials(2...3))
            #expect(range.isNew && range.certificatesAffected == 2)
            // Key id: its certificates now, and none again.
            let keyID = try await revoke(.keyID("robot"))
            #expect(keyID.isNew)
            await #expect(try refusal(alice, "robot")?.code == .refused)
            // A key: its certificates, and no new one for it.
            _ = try await revoke(.key(bob))
            await #expect(try refusal(bob, "bob-3")?.code == .refused)
            await #expect(throws: LedgerError.self) { try await ledger.checkIssuable(try ca.issuer.issue(CertificateRequest(publicKey: bob, keyID: "x", principals: ["x"], serial: 99), now: ca.now).body) }
            let (bobReason, aliceReason) = (try await ledger.keyRevocationReason(bob), try await ledger.keyRevocationReason(alice))
            #expect(bobReason == "test" && aliceReason == nil)
            // A principal: the unexpired certificates naming it at this moment.
            let principal = try await revoke(.principal("alice"))
            #expect(principal.certificatesAffected == 1)
            // A person: every unexpired certificate whose key id is NAME or NAME:...
            let person = try await revoke(.person("carol"))
            #expect(person.isNew)
            // Repeats change nothing and say so. A principal or a person names the certificates
            // of that moment, so revoking it again is a new record that covers only what came since
            // (here nothing).
            for target in [RevocationTarget.serials(2...3), .keyID("robot"), .key(bob)] {
                let again = try await revoke(target)
                #expect(!again.isNew && again.certificatesAffected == 0, "\(target)")
            }
            await #expect(try revoke(.principal("alice")).certificatesAffected == 0)
            let everything = try await ledger.certificates(matching: CertificateQuery(status: .revoked), now: ca.now).map(\.serial)
            #expect(everything == [1, 2, 3, 4, 5], "revoked: \(everything)")
            // The state a KRL is written from carries each kind.
            let state = try await ledger.revocationState(omitExpiredBefore: 0)
            let section = try #require(state.certificates.first { $0.caKey == ca.caKey })
            #expect(section.keyIDs.contains("robot"))
            for serial: UInt64 in [1, 2, 3] { #expect(section.serials.contains(serial), "serial \(serial)") }
            #expect(state.keys.contains(bob))
            // A CA key: the CA signs nothing more, whatever the key and key id.
            _ = try await revoke(.caKey(ca.caKey))
            await #expect(try refusal(try ca.subject(), "fresh")?.code == .refused)
            await #expect(try ledger.revocationState(omitExpiredBefore: 0).keys.contains(ca.caKey))
        }
    }

    @Test("KRL versions strictly increase and each generation extends the audit chain", arguments: LedgerBackend.all)
    func krlVersions(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir)
            var versions: [UInt64] = [], heads: Set<String> = []
            for i in 0..<5 {
                let generation = try await ledger.recordKRLGeneration(by: "test", now: 1_800_000_000 + UInt64(i)) {
                    .krlGenerated(version: $0, sections: i, keys: 0, signed: false)
                }
                versions.append(generation.version)
                heads.insert(generation.chainHead)
            }
            #expect(zip(versions, versions.dropFirst()).allSatisfy { $0 < $1 }, "\(versions)")
            #expect(heads.count == 5)
            await #expect(try ledger.counters().krlVersion == versions.last)
            guard case .intact(let entries, let head) = try await ledger.verifyAudit() else { Issue.record("chain broken"); return }
            #expect(entries == 5)
            await #expect(try ledger.auditEntries(limit: nil).last?.hashHex == head)
            // Each entry is the event built for the version the ledger took.
            await #expect(try ledger.auditEntries(limit: nil).map(\.details) == versions.enumerated().map { i, v in "version=\(v) sections=\(i) keys=0 signed=false" })
        }
    }

    @Test("publishers take turns: eight at once, each taking the next KRL version and keeping a KRL of it after a slow build, keep them in version order, and the last is served", arguments: LedgerBackend.all)
    func publishOrder(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir)
            await #expect(try ledger.publishedKRLs.current() == nil)
            let kept = KeptVersions()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        try await ledger.publishedKRLs.inPublishOrder {
                            let version = try await ledger.recordKRLGeneration(by: "publisher \(i)", now: 1_800_000_000) {
                                .krlGenerated(version: $0, sections: 0, keys: 0, signed: false)
                            }.version
                            // A slow build: without the turn, a later version would be kept first here.
                            try await Task.sleep(for: .milliseconds(20 - 2 * i))
                            let bytes = KRL(version: version, generatedDate: 1_800_000_000, comment: "", certificates: [], explicitKeys: []).encoded()
                            try await ledger.publishedKRLs.keep(StoredKRL(version: version, bytes: bytes, signature: i % 2 == 0 ? nil : "sig \(i)"))
                            kept.versions.withLock { $0.append(version) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let order = kept.versions.withLock { $0 }
            #expect(order.count == 8 && order == order.sorted(), "kept in the order \(order)")
            let current = try #require(try await ledger.publishedKRLs.current())
            #expect(current.version == order.last && KRL.headerVersion(current.bytes) == order.last)
            #expect(current.digest == Digest.sha256.hash(current.bytes))
        }
    }

    @Test("the audit chain: every write appends an entry linked to the one before, in order, and verifies", arguments: LedgerBackend.all)
    func auditChain(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir), ca = try ConformanceCA()
            try await ca.issue(ledger, [ca.request(try ca.subject(), keyID: "a")])
            _ = try await ledger.revoke(.keyID("a"), reason: "gone", by: "sec", now: ca.now)
            try await ledger.recordEvent(.requestRefused(path: "/v1/x", code: "policy", reason: "rule=x"), actor: "svc", now: ca.now + 1)
            let entries = try await ledger.auditEntries(limit: nil)
            #expect(entries.map(\.id) == Array(1...Int64(entries.count)))
            #expect(entries.first?.previousHash == AuditEntry.genesisHash)
            for (previous, entry) in zip(entries, entries.dropFirst()) {
                #expect(entry.previousHash == previous.hash)
                #expect(entry.hash == AuditEntry.computeHash(previous: previous.hash, id: entry.id, at: entry.at, actor: entry.actor,
                                                               action: entry.action, details: entry.details))
            }
            #expect(entries.map(\.action).contains("issue") && entries.last?.action == "refused" && entries.last?.actor == "svc")
            #expect(entries.last?.details == "path=/v1/x code=policy reason=rule=x")
            await #expect(try ledger.auditEntries(limit: 1).count == 1)
            guard case .intact(let count, _) = try await ledger.verifyAudit() else { Issue.record("chain broken"); return }
            #expect(count == entries.count)
        }
    }

    @Test("identities and tokens: enrol once, disable and enable, rekey, revoke a token", arguments: LedgerBackend.all)
    func identitiesAndTokens(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir), ca = try ConformanceCA()
            let key = try ca.subject(), other = try ca.subject()
            try await ledger.addIdentity(IdentityRecord(name: "alice", role: "engineer", key: key, createdAt: ca.now, updatedAt: ca.now), by: "admin")
            await #expect(throws: LedgerError.self) {
                try await ledger.addIdentity(IdentityRecord(name: "alice", role: "engineer", key: other, createdAt: ca.now, updatedAt: ca.now), by: "admin")
            }
            await #expect(try ledger.identity(named: "alice")?.key == key)
            await #expect(try ledger.identity(named: "nobody") == nil)
            try await ledger.setIdentityDisabled("alice", disabled: true, by: "admin", now: ca.now)
            await #expect(try ledger.identity(named: "alice")?.disabled == true)
            try await ledger.setIdentityDisabled("alice", disabled: false, by: "admin", now: ca.now)
            try await ledger.rekeyIdentity("alice", key: other, by: "admin", now: ca.now + 5)
            let rekeyed = try await #require(try ledger.identity(named: "alice"))
            #expect(rekeyed.key == other && !rekeyed.disabled && rekeyed.updatedAt == ca.now + 5)
            await #expect(try ledger.identities().map(\.name) == ["alice"])

            let token = TokenRecord(id: "tok1", role: "deploy", name: "ci", secretHash: Array(repeating: 7, count: 32), createdAt: ca.now, expiresAt: ca.now + 3600)
            try await ledger.addToken(token, by: "admin")
            await #expect(try ledger.token(id: "tok1") == token)
            try await ledger.revokeToken(id: "tok1", by: "admin", now: ca.now)
            await #expect(try ledger.token(id: "tok1")?.revoked == true)
            await #expect(try ledger.tokens().map(\.id) == ["tok1"])
            await #expect(try ledger.token(id: "nope") == nil)
            guard case .intact = try await ledger.verifyAudit() else { Issue.record("chain broken"); return }
        }
    }

    @Test("listings: by principal, key id and status, lowest serial first, in pages that cover everything once", arguments: LedgerBackend.all)
    func listings(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir), ca = try ConformanceCA()
            let k = try ca.subject()
            var requests: [GroupIssuance] = []
            for i in 1...25 {
                requests.append(ca.request(k, keyID: "id-\(i % 3)", principals: i % 5 == 0 ? ["root", "u\(i)"] : ["u\(i)"],
                                           validity: i % 4 == 0 ? 30 : 3600))
            }
            try await ca.issue(ledger, requests)
            _ = try await ledger.revoke(.serials(7...7), reason: "x", by: "sec", now: ca.now)
            let later = ca.now + 120  // past the 30 s certificates
            func serials(_ q: CertificateQuery) async throws -> [UInt64] { try await ledger.certificates(matching: q, now: later).map(\.serial) }
            await #expect(try serials(CertificateQuery(principal: "root")) == [5, 10, 15, 20, 25])
            await #expect(try serials(CertificateQuery(keyID: "id-1")) == Array(stride(from: 1, through: 25, by: 3)).map(UInt64.init))
            await #expect(try serials(CertificateQuery(status: .revoked)) == [7])
            await #expect(try serials(CertificateQuery(status: .expired)) == [4, 8, 12, 16, 20, 24])
            let active = try await serials(CertificateQuery(status: .active))
            #expect(active == (1...25).map(UInt64.init).filter { $0 != 7 && $0 % 4 != 0 })
            await #expect(try serials(CertificateQuery(principal: "root", status: .active)) == [5, 10, 15, 25])
            var paged: [UInt64] = [], after: UInt64? = nil
            while true {
                let page = try await serials(CertificateQuery(limit: 4, after: after))
                #expect(page.count <= 4)
                if page.isEmpty { break }
                paged += page
                after = page.last
            }
            #expect(paged == (1...25).map(UInt64.init))
        }
    }

    @Test("server syncs: a vouched name is not taken over by a claim, claims are capped, and a repeat within a minute writes nothing", arguments: LedgerBackend.all)
    func hostSyncs(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir)
            let t: UInt64 = 1_800_000_000
            await #expect(try ledger.recordHostSync(HostRecord(name: "web-1", identifiedBy: "token:abc", address: "10.0.0.1", lastSync: t, krlVersion: 3, caFingerprint: "SHA256:x"), maximumHosts: 2))
            await #expect(try !ledger.recordHostSync(HostRecord(name: "web-1", identifiedBy: "claimed", address: "10.9.9.9", lastSync: t + 100, krlVersion: 1, caFingerprint: nil), maximumHosts: 2))
            await #expect(try ledger.hosts().first?.address == "10.0.0.1")
            await #expect(try ledger.recordHostSync(HostRecord(name: "web-2", identifiedBy: "claimed", address: "10.0.0.2", lastSync: t, krlVersion: 3, caFingerprint: nil), maximumHosts: 2))
            await #expect(try !ledger.recordHostSync(HostRecord(name: "web-3", identifiedBy: "claimed", address: "10.0.0.3", lastSync: t, krlVersion: 3, caFingerprint: nil), maximumHosts: 2))
            await #expect(try !ledger.recordHostSync(HostRecord(name: "web-2", identifiedBy: "claimed", address: "10.0.0.2", lastSync: t + 10, krlVersion: 3, caFingerprint: nil), maximumHosts: 2))
            await #expect(try ledger.recordHostSync(HostRecord(name: "web-2", identifiedBy: "claimed", address: "10.0.0.2", lastSync: t + 10, krlVersion: 4, caFingerprint: nil), maximumHosts: 2))
            await #expect(try ledger.hosts().map(\.name) == ["web-1", "web-2"])
        }
    }

    @Test("a backup taken while in use opens as a ledger with the same certificates, revocations, counters and intact chain", arguments: LedgerBackend.all)
    func backup(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let ledger = try backend.open(dir), ca = try ConformanceCA()
            try await ca.issue(ledger, (1...3).map { ca.request(try! ca.subject(), keyID: "k\($0)") })
            _ = try await ledger.revoke(.serials(2...2), reason: "x", by: "sec", now: ca.now)
            _ = try await ledger.recordKRLGeneration(by: "t", now: ca.now) { .krlGenerated(version: $0, sections: 1, keys: 0, signed: false) }
            let copy = dir.child("backup.sqlite")
            try ledger.backup(to: copy.path, files: [BackupFile(name: "sshca.toml", mode: 0o644, content: Array("x".utf8))])
            let restored = try backend.openBackup(copy.path)
            await #expect(try restored.certificates(matching: CertificateQuery(), now: ca.now) == ledger.certificates(matching: CertificateQuery(), now: ca.now))
            await #expect(try restored.counters() == ledger.counters())
            let generation = try await ledger.generation
            #expect(generation != nil, "a new ledger has no generation id")
            await #expect(try restored.generation == generation, "a copy is the same generation until a restore makes a new one")
            await #expect(try restored.revocationState(omitExpiredBefore: 0) == ledger.revocationState(omitExpiredBefore: 0))
            guard case .intact(let n, let head) = try await restored.verifyAudit(), case .intact(n, head) = try await ledger.verifyAudit() else {
                Issue.record("the backup's chain differs or is broken"); return
            }
        }
    }

    @Test("login challenges: single use, only for their identity, gone at expiry, at most the per-client limit open", arguments: LedgerBackend.all)
    func challenges(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let store = try backend.open(dir).loginChallenges
            #expect(opened(try await store.open("n1", identity: "alice", client: "192.0.2.1", expires: 1120, now: 1000)))
            #expect(opened(try await store.open("n2", identity: "alice", client: "192.0.2.1", expires: 1120, now: 1000)))
            #expect(opened(try await store.open("n3", identity: "bob", client: "192.0.2.9", expires: 1120, now: 1000)))
            // A nonce open already stays its first asker's.
            #expect(try await store.open("n1", identity: "mallory", client: "203.0.113.7", expires: 1500, now: 1000).refusal == .nonceInUse)
            #expect(try await store.openCount(client: "203.0.113.7", now: 1001) == 0)
            #expect(try await store.count == 3)
            #expect(try await store.openCount(client: "192.0.2.1", now: 1001) == 2)
            #expect(try await store.redeem("n1", identity: "alice", now: 1001) == .valid)
            #expect(try await store.redeem("n1", identity: "alice", now: 1002) == .unknown)
            #expect(try await store.redeem("n2", identity: "mallory", now: 1002) == .otherIdentity)
            #expect(try await store.redeem("n2", identity: "alice", now: 1003) == .unknown, "a nonce answered for the wrong name stayed usable")
            #expect(try await store.redeem("n3", identity: "bob", now: 1120) == .expired)
            #expect(try await store.redeem("never", identity: "bob", now: 1000) == .unknown)
            #expect(try await store.openCount(client: "192.0.2.1", now: 1003) == 0)
            for i in 0..<ChallengeRules.perClientLimit {
                #expect(opened(try await store.open("m\(i)", identity: "x", client: "198.51.100.1", expires: 2000, now: 1500)))
            }
            #expect(!opened(try await store.open("over", identity: "x", client: "198.51.100.1", expires: 2000, now: 1500)))
            #expect(opened(try await store.open("other", identity: "x", client: "198.51.100.2", expires: 2000, now: 1500)))
            // Expired ones stop counting against the client.
            #expect(opened(try await store.open("later", identity: "x", client: "198.51.100.1", expires: 2200, now: 2000)))
            #expect(try await store.openCount(client: "198.51.100.1", now: 2000) == 1)
        }
    }

    @Test("failure counts: a key is limited at the limit within the window, each key on its own, and free again when the window passes", arguments: LedgerBackend.all)
    func failureCounts(_ backend: LedgerBackend) async throws {
        try await withScratchDirectory { dir in
            let counts = try backend.open(dir).failureCounts
            for t: UInt64 in 1000..<1003 {
                #expect(try await !counts.isLimited(["user:alice"], limit: 3, window: 60, now: t))
                try await counts.recordFailure(["user:alice", "addr:192.0.2.1"], limit: 3, window: 60, now: t)
            }
            #expect(try await counts.isLimited(["user:alice"], limit: 3, window: 60, now: 1003))
            #expect(try await counts.isLimited(["user:bob", "addr:192.0.2.1"], limit: 3, window: 60, now: 1003))
            #expect(try await !counts.isLimited(["user:bob", "addr:192.0.2.2"], limit: 3, window: 60, now: 1003))
            // The first failure (at 1000) leaves the window at 1060.
            #expect(try await counts.isLimited(["user:alice"], limit: 3, window: 60, now: 1059))
            #expect(try await !counts.isLimited(["user:alice"], limit: 3, window: 60, now: 1060), "failures older than the window still counted")
        }
    }
}
