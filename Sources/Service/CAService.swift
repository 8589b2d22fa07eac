import Common
public import Authority
public import Ledger
import SSHFormat
import SSHCrypto
import Foundation
import Synchronization

/// A refusal or failure on its way to the client: an HTTP status, a stable code, a sentence a
/// person can act on and, for policy refusals, the rule that refused.
public struct ServiceError: Error, Sendable, Equatable {
    public var statusCode: Int
    public var code: String
    public var message: String
    public var rule: String?
    /// Seconds, for a Retry-After header (429, 503).
    public var retryAfter: Int?

    public init(_ status: Int, _ code: String, _ message: String, rule: String? = nil, retryAfter: Int? = nil) {
        self.statusCode = status
        self.code = code
        self.message = message
        self.rule = rule
        self.retryAfter = retryAfter
    }

    /// The ledger (or the state shared through it) cannot be used right now: 503, try again.
    static func unavailable(_ error: SSHCAError) -> ServiceError {
        ServiceError(503, "unavailable", "the ledger cannot be read right now: \(error.reason)", retryAfter: 5)
    }

    static func from(_ error: SSHCAError) -> ServiceError {
        switch error.code {
        case .badInput, .badConfig: return ServiceError(400, "bad-request", error.reason)
        case .refused: return ServiceError(403, "refused", error.reason)
        case .notFound: return ServiceError(404, "not-found", error.reason)
        default: return ServiceError(503, "unavailable", error.reason)
        }
    }

    public var body: ServiceAPI.ErrorBody { ServiceAPI.ErrorBody(error: .init(code: code, message: message, rule: rule)) }
}

/// The CA behind the HTTP service: authentication, policy, group-committed issuance,
/// revocation, KRL serving. Every route is a thin wrapper around one of these methods.
public final class CAService: Sendable {
    public let authority: CertificateAuthority
    let userIssuer: Issuer
    let hostIssuer: Issuer
    let passphrase: PassphraseSource
    let policy: IssuancePolicy
    let challenges: ChallengeStore
    let limiter: FailureLimiter
    public let metrics = ServiceMetrics()
    public let committer: GroupCommitter
    /// Set when a revocation is committed but its KRL could not be written (a full disk): the
    /// KRL served lags the ledger until a retry succeeds.
    private let krlBacklog = Mutex<(what: String, reason: String)?>(nil)
    /// The last KRL signature checked: the KRL's digest, the signature as kept, and the signature
    /// if it verified.
    private let checkedSignature = Mutex<(digest: [UInt8], signature: String?, verified: String?)?>(nil)
    private let stopped = Mutex(false)
    /// Read from the ledger's writing connection at the first /metrics that can (they do not
    /// change while it is open).
    private let durability = Mutex<[(name: String, value: String)]?>(nil)
    public var settings: ServiceSettings { authority.configuration.service }

    /// Unlocks both CA keys now, so a wrong passphrase stops the service at start and not at the
    /// first request.
    public init(authority: CertificateAuthority, passphrase: PassphraseSource) async throws(SSHCAError) {
        self.authority = authority
        let configuration = authority.configuration
        // The passphrase is asked once; KRL signing later reuses it.
        var cached: [UInt8]? = nil
        let needsPassphrase = configuration.userKeyStorage == .file || configuration.hostKeyStorage == .file
        if needsPassphrase, (try? PrivateKey.isEncrypted(pem: String(decoding: Files.read(authority.home.privateKeyPath(.user)), as: UTF8.self))) == true {
            cached = try passphrase.read()
        }
        let once: PassphraseSource = cached.map { bytes in PassphraseSource { bytes } } ?? passphrase
        self.passphrase = once
        let caKeys = try authority.caPublicKeys()
        userIssuer = Issuer(signer: try authority.home.signer(.user, passphrase: once, configuration: configuration), configuration: configuration, caKeys: caKeys)
        hostIssuer = Issuer(signer: try authority.home.signer(.host, passphrase: once, configuration: configuration), configuration: configuration, caKeys: caKeys)
        policy = IssuancePolicy(configuration: configuration)
        // Shared by every node on this ledger; the SQLite ledger keeps them in this process.
        challenges = ChallengeStore(lifetime: configuration.service.challengeLifetime, store: authority.ledger.loginChallenges)
        limiter = FailureLimiter(limit: configuration.service.failuresPerMinute, counts: authority.ledger.failureCounts)
        committer = GroupCommitter(ledger: authority.ledger, maintenance: authority.maintenance)
        // A ledger opened read-only: /healthz says failing, and the probe loop below opens it
        // for writing as soon as that works again.
        if let why = authority.maintenance.readOnlyReason {
            committer.noteWriteFailure("the ledger is read-only: \(why)")
        }
        // A revocation is committed before its KRL is written; a crash between the two would
        // leave the published KRL without it until the next revocation. Publishing at start
        // closes that gap: the KRL served always carries every committed revocation.
        do {
            _ = try await authority.publishKRL(by: "sshca serve (start)", passphrase: once)
        } catch {
            // A full disk at start must not keep the service down: the retry loop publishes it
            // when it can, and /healthz says failing until then.
            krlBacklog.withLock { $0 = ("the KRL could not be republished at start, so a revocation committed just before a crash may be missing from it", error.reason) }
        }
        Task.detached { [weak self] in
            while let service = self, !service.stopped.withLock({ $0 }) {
                await service.retryKRLIfBehind()
                service.committer.probeAfterFailure()
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// Publishes the KRL again while a committed revocation is missing from it.
    func retryKRLIfBehind() async {
        guard krlBacklog.withLock({ $0 }) != nil else { return }
        do {
            _ = try await authority.publishKRL(by: "sshca serve (retry)", passphrase: passphrase)
            krlBacklog.withLock { $0 = nil }
        } catch {
            krlBacklog.withLock { $0?.reason = error.reason }
        }
    }

    public func shutdown() {
        stopped.withLock { $0 = true }
        committer.stop()
    }

    // MARK: Authentication

    public func challenge(_ request: ServiceAPI.ChallengeRequest, address: String = "unknown", now: UInt64 = Clock.now()) async throws(ServiceError) -> ServiceAPI.Challenge {
        do { try NameRules.checkUserName(request.identity) } catch { throw ServiceError(400, "bad-request", error.reason) }
        let issued: Result<(nonce: String, expires: UInt64), ChallengeStore.Refusal>
        do { issued = try await challenges.issue(for: request.identity, address: address, now: now) } catch { throw ServiceError.unavailable(error) }
        switch issued {
        case .success(let (nonce, expires)):
            return ServiceAPI.Challenge(identity: request.identity, nonce: nonce, namespace: ServiceAPI.namespace, expiresAt: expires)
        case .failure(.addressBusy):
            metrics.refused("rate-limited")
            throw ServiceError(429, "rate-limited", "this address holds \(ChallengeStore.perAddressLimit) unanswered challenges; answer them or wait for them to expire",
                               retryAfter: Int(challenges.lifetime))
        }
    }

    /// Who is asking, from the Authorization header. Credentials are always checked: a valid one
    /// passes even from an address that has failed many times (behind a proxy every client
    /// shares one address, and neither a 256-bit token nor a signature can be guessed). Each
    /// failure is counted per address and per identity; past `failures_per_minute` in a minute
    /// failures get 429 instead of 401 and are no longer audited one by one, so a flood of bad
    /// sign-ins cannot fill the ledger.
    public func authenticate(authorization: String?, address: String, request: SignedRequest, now: UInt64 = Clock.now()) async throws(ServiceError) -> Applicant {
        guard let authorization, !authorization.isEmpty else {
            throw ServiceError(401, "unauthenticated", "this needs credentials: Authorization: Bearer TOKEN, or a signed challenge (sshca login does this)")
        }
        if authorization.hasPrefix("Bearer ") {
            let text = String(authorization.dropFirst(7)).trimmingCharacters(in: " ")
            let tokenID = BearerToken(text: text)?.id ?? "malformed"
            let keys = ["address:\(address)", "token:\(tokenID)"]
            do {
                return try await authority.applicant(forToken: text, now: now)
            } catch where error.code == .ledger {
                throw ServiceError.unavailable(error)
            } catch {
                throw await authenticationFailed(keys, method: "token", who: "token \(tokenID)", address: address, reason: error.reason, now: now)
            }
        }
        if let credential = ServiceAPI.SignatureCredential(headerValue: authorization) {
            guard (try? NameRules.checkUserName(credential.identity)) != nil else {
                throw await authenticationFailed(["address:\(address)"], method: "sshsig", who: "malformed-identity", address: address,
                                           reason: "the identity in the Authorization header is not a user name", now: now)
            }
            let keys = ["address:\(address)", "user:\(credential.identity)"]
            // A name's limit comes before any work: past it, no signature is checked and no
            // name is looked up, whoever asks, so trying names learns nothing, fast or slow.
            // (An address's limit is applied after the signature, as for tokens: a correct
            // sign-in from behind a busy proxy still passes.) The nonce is used up either way.
            let nameLimited: Bool
            do { nameLimited = try await limiter.isLimited(["user:\(credential.identity)"], now: now) } catch { throw ServiceError.unavailable(error) }
            if nameLimited {
                // Refused either way; a store that fails here fails the next check with 503.
                _ = try? await challenges.redeem(credential.nonce, identity: credential.identity, now: now)
                try? await limiter.recordFailure(keys, now: now)
                metrics.authFailure("sshsig")
                metrics.refused("rate-limited")
                throw ServiceError(429, "rate-limited", "too many failed sign-ins for \(credential.identity) or from \(address) in the last minute; wait a minute",
                                   retryAfter: Int(limiter.window))
            }
            do throws(SSHCAError) {
                return try await verify(credential, request: request, now: now)
            } catch where error.code == .ledger {
                throw ServiceError.unavailable(error)
            } catch {
                throw await authenticationFailed(keys, method: "sshsig", who: credential.identity, address: address, reason: error.reason,
                                           audited: error.detail ?? error.reason, now: now)
            }
        }
        throw ServiceError(401, "unauthenticated", "unknown Authorization scheme; use Bearer TOKEN or SSHSIG identity=NAME,nonce=NONCE,signature=BASE64")
    }

    /// What a signed challenge authorises: one request, as the service received it.
    public struct SignedRequest: Sendable {
        public var method: String
        public var path: String
        public var body: [UInt8]

        public init(method: String, path: String, body: [UInt8]) {
            self.method = method
            self.path = path
            self.body = body
        }

        /// The key a certificate request asks to certify, as the body names it.
        var certifiedKey: PublicKey? {
            guard method == "POST", path == "/v1/certificates",
                  let request = try? JSONDecoder().decode(ServiceAPI.CertificateRequest.self, from: Data(body)) else { return nil }
            return try? PublicKeyText(parsing: request.publicKey).key
        }
    }

    /// The reason a failed sign-in is audited with; the client gets one sentence for every
    /// failure after the signature, so nobody learns from the answers whether a name is
    /// enrolled, disabled or revoked.
    struct SignInFailure: Error { var detail: String }

    private func verify(_ credential: ServiceAPI.SignatureCredential, request: SignedRequest, now: UInt64) async throws(SSHCAError) -> Applicant {
        switch try await challenges.redeem(credential.nonce, identity: credential.identity, now: now) {
        case .valid: break
        case .unknown: throw SSHCAError(.refused, "the challenge is unknown or was already used; ask for a new one")
        case .expired: throw SSHCAError(.refused, "the challenge expired; ask for a new one")
        case .otherIdentity: throw SSHCAError(.refused, "the challenge was issued to another identity")
        }
        guard let blob = Data(base64Encoded: credential.signature) else {
            throw SSHCAError(.refused, "the signature is not base64")
        }
        let signature: SSHSig
        do { signature = try SSHSig(blob: blob) } catch { throw SSHCAError(.refused, "the signature is not an SSHSIG signature: \(error)") }
        // The signature must hold by itself (namespace, its own key) before the name is looked
        // up, over the message this service builds from what it received: its own CA key, the
        // nonce, this request and its body (and the key a certificate request asks for). A
        // signature made for another CA, request, body or key does not verify.
        let message = ServiceAPI.SignInMessage(caFingerprint: userIssuer.signer.publicKey.fingerprint, identity: credential.identity,
                                               nonce: credential.nonce, method: request.method, path: request.path,
                                               certifies: request.certifiedKey?.fingerprint, body: request.body)
        let verdict = signature.verify(message: Array(message.text.utf8), namespace: ServiceAPI.namespace)
        guard verdict == .valid else {
            if case .invalid(let why) = verdict { throw SSHCAError(.refused, "the signature does not verify: \(why)") }
            throw SSHCAError(.refused, "the signature does not verify: \(verdict)")
        }
        let generic = "\(credential.identity) cannot sign in with the key \(signature.publicKey.fingerprint); if this is your enrolled key, ask a CA administrator (sshca user list)"
        do {
            return try await authority.activeUser(credential.identity, signedBy: signature.publicKey).applicant
        } catch where error.code == .ledger {
            throw error
        } catch {
            throw SSHCAError(.refused, generic, detail: error.reason)
        }
    }

    private func authenticationFailed(_ keys: [String], method: String, who: String, address: String, reason: String,
                                      audited: String? = nil, now: UInt64) async -> ServiceError {
        let limited: Bool
        do throws(SSHCAError) {
            limited = try await limiter.isLimited(keys, now: now)
            try await limiter.recordFailure(keys, now: now)
        } catch {
            return ServiceError.unavailable(error)
        }
        metrics.authFailure(method)
        if limited {
            metrics.refused("rate-limited")
            return ServiceError(429, "rate-limited", "too many failed sign-ins for \(who) or from \(address) in the last minute (this one failed too: \(reason)); wait a minute",
                                retryAfter: Int(limiter.window))
        }
        metrics.refused("authentication")
        await audit(.authenticationFailed(method: method, address: address, reason: audited ?? reason), actor: who, now: now)
        if (try? await limiter.isLimited(keys, now: now)) == true {
            await audit(.rateLimited(address: address, failuresPerMinute: limiter.limit), actor: who, now: now)
        }
        return ServiceError(401, "unauthenticated", reason)
    }

    // MARK: Issuance

    public func issue(_ request: ServiceAPI.CertificateRequest, applicant: Applicant, now: UInt64 = Clock.now()) async throws(ServiceError) -> IssuedCertificate {
        let key: PublicKey
        do { key = try PublicKeyText(parsing: request.publicKey).key } catch {
            metrics.refused("bad-key")
            throw ServiceError(400, "bad-key", "publicKey: \(error)")
        }
        let type: CertificateType
        let typeName = request.type ?? "user"
        do {
            try IssuanceRules.checkSubjectKey(key, type: typeName == "host" ? .host : .user, minimumRSABits: authority.configuration.minimumRSABits,
                                              caKeys: userIssuer.caKeys)
        } catch {
            metrics.refused("bad-key")
            throw ServiceError(400, "bad-key", "publicKey: \(error.reason)")
        }
        switch typeName {
        case "user": type = .user
        case "host": type = .host
        case let other: throw ServiceError(400, "bad-request", "type must be \"user\" or \"host\", not \"\(other.prefix(20))\"")
        }
        var validity: UInt64? = nil
        if let text = request.validity {
            do { validity = try DurationText.seconds(text) } catch { throw ServiceError(400, "bad-request", "validity: \(error.reason)") }
        }
        let decision = policy.decide(PolicyRequest(publicKey: key, type: type, principals: request.principals, validity: validity),
                                     applicant: applicant, now: now)
        let certificateRequest: Authority.CertificateRequest
        switch decision {
        case .success(let r): certificateRequest = r
        case .failure(let refusal):
            metrics.refused("policy")
            await audit(.policyRefused(rule: refusal.rule, key: key, reason: refusal.reason), actor: applicant.name, now: now)
            throw ServiceError(403, "policy", refusal.reason, rule: refusal.rule)
        }
        let issuer = type == .host ? hostIssuer : userIssuer
        let body: CertificateBody
        do {
            body = try issuer.body(for: certificateRequest, now: now)
        } catch {
            metrics.refused(error.code == .refused ? "policy" : "bad-key")
            throw ServiceError.from(error)
        }
        let requester = Requester(name: applicant.name, channel: "api-\(applicant.kind.rawValue)")
        switch await committer.issue(PendingIssuance(body: body, issuer: issuer, requester: requester, keyIDNamesSerial: certificateRequest.keyIDNamesSerial)) {
        case .success(let issued):
            metrics.issued(type == .host ? "host" : "user")
            return issued
        case .failure(let error):
            metrics.refused(error.code == .refused ? "revoked" : "ledger")
            throw ServiceError.from(error)
        }
    }

    /// Audits a refused request from someone who did authenticate (bad JSON, a bad key): who
    /// sent what is kept. Unauthenticated junk is only logged, so it cannot flood the ledger.
    public func recordRefusal(_ error: ServiceError, applicant: Applicant, path: String, now: UInt64 = Clock.now()) async {
        await audit(.requestRefused(path: path, code: error.code, reason: error.message), actor: applicant.name, now: now)
    }

    /// Audits a refusal or failure; the actor is cut at 128 bytes and the details at
    /// `AuditEvent.refusalTextLimit` (the cut is said).
    func audit(_ event: AuditEvent, actor: String, now: UInt64) async {
        try? await authority.ledger.recordEvent(event, actor: AuditEvent.bounded(actor, 128), now: now)
    }

    // MARK: Servers

    /// At most this many servers that only claim their name are remembered (a host token's
    /// name always is): the claim costs nothing to make.
    public static let maximumClaimedHosts = 10_000

    /// Notes a server's KRL fetch (`sshca hosts`). Best effort: a server always gets its KRL,
    /// whatever happens here. A host token names the server; otherwise its X-SSHCA-Host claim does.
    public func noteHostSync(claimedName: String?, authorization: String?, caFingerprint: String?, installedVersion: String?,
                             address: String, krl: [UInt8], now: UInt64 = Clock.now()) async {
        // The version the server says it has installed (krl-sync sends it); else the one served.
        guard let served = KRL.headerVersion(krl) else { return }
        let version = installedVersion.flatMap { UInt64($0) } ?? served
        var name: String? = nil
        var identifiedBy = "claimed"
        // Only a token of a role that may get host certificates names a server, and checking it
        // here counts no failure and writes no audit entry: this is best effort, not a sign-in.
        if let authorization, authorization.hasPrefix("Bearer "),
           let applicant = try? await authority.applicant(forToken: String(authorization.dropFirst(7)), now: now),
           applicant.role.hostCertificates {
            name = applicant.name
            identifiedBy = "token:\(applicant.name)"
        } else if let claimedName, Self.isHostName(claimedName) {
            name = claimedName
        }
        guard let name else { return }
        let pin = caFingerprint.flatMap { $0.hasPrefix("SHA256:") && $0.count <= 100 && $0.allSatisfy({ $0.isASCII && !$0.isWhitespace }) ? $0 : nil }
        _ = try? await authority.ledger.recordHostSync(HostRecord(name: name, identifiedBy: identifiedBy, address: address, lastSync: now,
                                                            krlVersion: version, caFingerprint: pin), maximumHosts: Self.maximumClaimedHosts)
    }

    static func isHostName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == ":" || $0 == "_") }
    }

    /// Every server that synced, with whether it is behind: an older KRL than the current one,
    /// or no sync for longer than `staleAfter`.
    public func hosts(now: UInt64 = Clock.now()) async throws(ServiceError) -> [ServiceAPI.Host] {
        do {
            return try await authority.hosts(now: now)
        } catch {
            throw ServiceError(503, "unavailable", "the ledger cannot be read: \(error.reason)")
        }
    }

    // MARK: Security staff

    public func requireSecurity(_ applicant: Applicant) throws(ServiceError) {
        guard authority.isSecurityStaff(applicant) else {
            metrics.refused("not-security")
            throw ServiceError(403, "forbidden", "\(applicant.name) is not security staff: only roles with security = true, or users in [service] security_staff, may revoke and list", rule: "service.security_staff")
        }
    }

    public func revoke(_ request: ServiceAPI.RevocationRequest, applicant: Applicant, now: UInt64 = Clock.now()) async throws(ServiceError) -> ServiceAPI.Revocation {
        try requireSecurity(applicant)
        var targets: [RevocationTarget] = []
        if let serial = request.serial { targets.append(.serials(serial...serial)) }
        if let text = request.serials {
            guard let range = SerialSet.parseRange(text) else {
                throw ServiceError(400, "bad-request", "serials \"\(text.prefix(60).debugEscaped)\" is not \(SerialSet.rangeSyntax), such as 100-200")
            }
            targets.append(.serials(range))
        }
        if let keyID = request.keyId { targets.append(.keyID(keyID)) }
        if let text = request.publicKey {
            do { targets.append(.key(try PublicKeyText(parsing: text).key)) } catch { throw ServiceError(400, "bad-key", "publicKey: \(error)") }
        }
        if let principal = request.principal { targets.append(.principal(principal)) }
        if let user = request.user { targets.append(.person(user)) }
        guard targets.count == 1, let target = targets.first else {
            throw ServiceError(400, "bad-request", "name exactly one of serial, serials, keyId, publicKey, principal, user")
        }
        let revoked: (outcome: RevocationOutcome, krl: Result<(krl: PublishedKRL, published: Bool), SSHCAError>)
        do {
            revoked = try await authority.revoke(target, reason: request.reason, by: "\(applicant.name) (api)", passphrase: passphrase, now: now)
        } catch {
            if error.code == .ledger { committer.noteWriteFailure(error.reason) }
            throw ServiceError.from(error)
        }
        metrics.revoked()
        let outcome = revoked.outcome, r = outcome.record
        do {
            let krl = try revoked.krl.get().krl
            krlBacklog.withLock { $0 = nil }
            return ServiceAPI.Revocation(id: r.id, kind: r.kind, target: r.target, reason: r.reason, revokedBy: r.revokedBy,
                                         isNew: outcome.isNew, certificatesAffected: outcome.certificatesAffected, krlVersion: krl.version)
        } catch {
            krlBacklog.withLock { $0 = ("revocation #\(r.id) is committed but not in the published KRL yet", error.reason) }
            throw ServiceError(503, "unavailable", "revocation #\(r.id) is recorded, but the KRL could not be written (\(error.reason)); the service publishes it as soon as that works again, and /healthz says failing until then",
                               retryAfter: 5)
        }
    }

    public func certificates(_ query: CertificateQuery, applicant: Applicant, now: UInt64 = Clock.now()) async throws(ServiceError) -> ServiceAPI.CertificateList {
        try requireSecurity(applicant)
        do {
            // One more than asked tells whether another page follows.
            var probe = query
            if let limit = query.limit { probe.limit = limit + 1 }
            var found = try await authority.certificates(probe, now: now)
            var next: UInt64? = nil
            if let limit = query.limit, found.count > limit {
                found.removeLast(found.count - limit)
                next = found.last?.certificate.body.serial
            }
            return ServiceAPI.CertificateList(certificates: found.map { CertificateSummary($0, now: now) }, next: next)
        } catch {
            throw ServiceError.from(error)
        }
    }

    public func certificate(serial: UInt64, applicant: Applicant, now: UInt64 = Clock.now()) async throws(ServiceError) -> CertificateSummary {
        try requireSecurity(applicant)
        do { return CertificateSummary(try await authority.certificate(serial: serial), now: now) } catch { throw ServiceError.from(error) }
    }

    // MARK: Public files

    public func caPublicKey(_ kind: CAKind) -> String {
        (kind == .host ? hostIssuer : userIssuer).signer.publicKey.openSSHLine(comment: "sshca \(kind.rawValue) CA")
    }

    /// The published KRL and its ETag (which changes whenever its bytes do).
    public func krl() async throws(ServiceError) -> (bytes: [UInt8], etag: String) {
        let current = try await publishedKRL()
        return (current.bytes, current.etag)
    }

    /// The KRL's detached signature and the ETag of the KRL it signs (the same as /v1/krl's).
    public func krlSignature() async throws(ServiceError) -> (text: String, etag: String) {
        let current = try await publishedKRL()
        guard let signature = current.signature else {
            if authority.configuration.signKRL {
                throw ServiceError(503, "unavailable", "the KRL's signature is not there or does not match the KRL (a KRL is being published, or the user CA key is revoked); try again in a moment")
            }
            throw ServiceError(404, "not-found", "this CA does not sign its KRL ([krl] sign = false in sshca.toml)")
        }
        return (signature, current.etag)
    }

    /// The KRL the ledger keeps as the one served, with its signature kept only when it verifies
    /// over these bytes with the user CA key, so /v1/krl and /v1/krl.sig with one ETag always
    /// belong together. (A publish in a CA home writes the signature, then the KRL: in between,
    /// the pair does not verify and /v1/krl.sig says to try again.) A signature is checked once
    /// per pair, not per request.
    func publishedKRL() async throws(ServiceError) -> (bytes: [UInt8], etag: String, signature: String?) {
        let kept: StoredKRL?
        do { kept = try await authority.ledger.publishedKRLs.current() } catch {
            throw ServiceError(503, "unavailable", "the KRL cannot be read: \((error as? SSHCAError)?.reason ?? "\(error)")")
        }
        guard let kept else {
            throw ServiceError(503, "unavailable", "the KRL cannot be read: none has been published (the service publishes one at start)")
        }
        let etag = "\"\(kept.digest.prefix(16).hexString)\""
        if let checked = checkedSignature.withLock({ $0 }), checked.digest == kept.digest, checked.signature == kept.signature {
            return (kept.bytes, etag, checked.verified)
        }
        var verified = kept.signature
        if let text = verified, DetachedKRLSignature.problem(text, over: kept.bytes, by: userIssuer.signer.publicKey) != nil {
            verified = nil
        }
        checkedSignature.withLock { $0 = (kept.digest, kept.signature, verified) }
        return (kept.bytes, etag, verified)
    }

    static func freeBytes(_ path: String) -> Int? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// The ledger's durability settings (nil while they cannot be read).
    func ledgerDurability() -> [(String, String)]? {
        if let known = durability.withLock({ $0 }) { return known.map { ($0.name, $0.value) } }
        guard let read = try? authority.maintenance.durabilitySettings() else { return nil }
        durability.withLock { $0 = read }
        return read.map { ($0.name, $0.value) }
    }

    public func health() async -> (ok: Bool, body: ServiceAPI.Health) {
        var ledger = "ok", krl = "ok"
        var counters: (nextSerial: UInt64, krlVersion: UInt64)? = nil
        do { counters = try await authority.ledger.counters() } catch { ledger = "\(error)" }
        if ledger == "ok", let failure = committer.writeFailure ?? authority.maintenance.readOnlyReason {
            ledger = "reads work, writes fail: \(failure)"
        }
        // A KRL is a new file written beside the old one: without room for it, the next
        // revocation cannot be published, whatever the last write did.
        if ledger == "ok", let free = Self.freeBytes(authority.home.path) {
            let krlSize = (try? FileManager.default.attributesOfItem(atPath: authority.home.krlPath)[.size] as? Int) ?? 0
            let needed = max(1 << 20, 2 * krlSize)
            if free < needed { ledger = "the disk holding \(authority.home.path) is full (\(free) bytes free; a KRL needs \(needed))" }
        }
        // The bytes GET /v1/krl serves (read again only when the file was replaced).
        do {
            _ = try KRL.parse(try await self.krl().bytes)
        } catch let error as ServiceError {
            krl = error.message
        } catch {
            krl = "\(error)"
        }
        if krl == "ok", let backlog = krlBacklog.withLock({ $0 }) {
            krl = "\(backlog.what): \(backlog.reason)"
        }
        let ok = ledger == "ok" && krl == "ok"
        return (ok, ServiceAPI.Health(status: ok ? "ok" : "failing", ledger: ledger, krl: krl,
                                      nextSerial: counters?.nextSerial, krlVersion: counters?.krlVersion))
    }
}
