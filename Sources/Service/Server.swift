import Common
import Authority
public import Ledger
import SSHFormat
public import Hummingbird
import HummingbirdTLS
import HummingbirdCore
public import Logging
import NIOCore
import NIOSSL
import HTTPTypes
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per request: the client's address, and notes the handler leaves for the one log line.
public struct CAContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    let notes = RequestNotes()
    /// The client behind trusted proxies (X-Forwarded-For), set by ClientAddressMiddleware.
    var forwardedClient: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's address, as limits and logs use it.
    var address: String { forwardedClient ?? remoteAddress?.ipAddress ?? "unknown" }
}

/// Behind `[service] trusted_proxies`, the client is the one they forward, not the proxy: every
/// per-address limit would otherwise fall on everyone at once.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = CAContext
    let trustedProxies: AddressBlocks

    func handle(_ request: Request, context: CAContext, next: (Request, CAContext) async throws -> Response) async throws -> Response {
        guard !trustedProxies.isEmpty, let peer = context.remoteAddress?.ipAddress else { return try await next(request, context) }
        var context = context
        let forwarded = request.headers[values: .xForwardedFor].joined(separator: ",")
        context.forwardedClient = trustedProxies.client(peer: peer, forwardedFor: forwarded.isEmpty ? nil : forwarded)
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}

final class RequestNotes: @unchecked Sendable {
    // Written by the request's own handler, read by the logging middleware after it; one task.
    var identity = "-"
    var outcome = ""
}

/// Makes every thrown error one JSON shape, and logs one line per request: method, path,
/// status, identity, outcome, time.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = CAContext
    let logger: Logger
    let metrics: ServiceMetrics

    func handle(_ request: Request, context: CAContext, next: (Request, CAContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as ServiceError {
            context.notes.outcome = error.code
            response = Self.errorResponse(error)
        } catch let error as HTTPError {
            let status = Int(error.status.code)
            let code = status == 413 ? "too-large" : status == 404 ? "not-found" : status == 405 ? "method-not-allowed" : "bad-request"
            let message = status == 413 ? "the request body is too large" : status == 404 ? "no such endpoint (see docs/openapi.yaml)" : (error.body ?? "\(error.status.reasonPhrase)")
            context.notes.outcome = code
            response = Self.errorResponse(ServiceError(status, code, message))
        } catch {
            context.notes.outcome = "internal"
            logger.error("request failed", metadata: ["path": .string(request.uri.path), "error": .string("\(error)")])
            response = Self.errorResponse(ServiceError(500, "internal", "internal error; the service log has details"))
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        metrics.request(status: Int(response.status.code), seconds: seconds)
        logger.info("request", metadata: [
            "method": .string(request.method.rawValue), "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code), "identity": .string(context.notes.identity),
            "address": .string(context.address), "outcome": .string(context.notes.outcome.isEmpty ? "ok" : context.notes.outcome),
            "ms": .string(String(format: "%.2f", seconds * 1000)),
        ])
        return response
    }

    static func errorResponse(_ error: ServiceError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if error.status == 401 { headers[.wwwAuthenticate] = "Bearer, SSHSIG" }
        if let seconds = error.retryAfter { headers[.retryAfter] = String(seconds) }
        return Response(status: .init(code: error.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSON.encode(error.body))))
    }
}

enum JSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? [UInt8](encoder.encode(value))) ?? Array("{}".utf8)
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }

    static func decode<T: Decodable>(_ type: T.Type, from request: inout Request, limit: Int) async throws -> T {
        try decode(type, from: try await collect(&request, limit: limit).get())
    }

    /// The request body, at most `limit` bytes.
    static func collect(_ request: inout Request, limit: Int) async -> Result<[UInt8], ServiceError> {
        do {
            return .success(Array(try await request.collectBody(upTo: limit).readableBytesView))
        } catch {
            return .failure(ServiceError(413, "too-large", "the request body is over \(limit) bytes"))
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let data = Data(bytes)
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            // A misspelt member ("validty") must not be ignored silently: the request would get
            // the defaults its sender did not mean.
            if let known = (T.self as? any KnownMembers.Type)?.members,
               let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
                throw ServiceError(400, "bad-json", "unknown member \"\(unknown.prefix(60).debugEscaped)\"; this endpoint takes \(known.sorted().joined(separator: ", "))")
            }
            // No text from outside carries a control character (a NUL among them) any further:
            // not into a certificate, a log line, or the ledger and its audit chain. A public key
            // is the exception: it may come as a multi-line RFC 4716 block, its own strict parser
            // says what is wrong with it (a pasted private key, say), and it is stored as a blob.
            if let member = controlCharacterMember(object.filter { $0.key != "publicKey" }) {
                throw ServiceError(400, "bad-request", "\(member) contains a control character or NUL byte; send printable text")
            }
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ServiceError(400, "bad-json", "the request is missing \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ServiceError(400, "bad-json", "\(context.codingPath.map(\.stringValue).joined(separator: ".")): wrong type (\(context.debugDescription))")
        } catch {
            throw ServiceError(400, "bad-json", "the request body is not the JSON this endpoint takes (see docs/openapi.yaml)")
        }
    }
}

/// The path ("principals[1]") of the first string in a decoded JSON value that holds a control
/// character, member names included, or nil.
func controlCharacterMember(_ value: Any, path: String = "") -> String? {
    func hasControl(_ text: String) -> Bool { text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f } }
    switch value {
    case let text as String:
        return hasControl(text) ? (path.isEmpty ? "the request" : path) : nil
    case let array as [Any]:
        for (i, element) in array.enumerated() {
            if let found = controlCharacterMember(element, path: "\(path)[\(i)]") { return found }
        }
    case let object as [String: Any]:
        for (key, element) in object.sorted(by: { $0.key < $1.key }) {
            if hasControl(key) { return "a member name" }
            if let found = controlCharacterMember(element, path: path.isEmpty ? key : "\(path).\(key)") { return found }
        }
    default: break
    }
    return nil
}

/// The routes of the API; each one parses, calls one CAService method and encodes.
public func buildRouter(_ service: CAService, logger: Logger) -> Router<CAContext> {
    let router = Router(context: CAContext.self)
    router.add(middleware: ClientAddressMiddleware(trustedProxies: AddressBlocks(service.settings.trustedProxies)))
    router.add(middleware: RequestLogMiddleware(logger: logger, metrics: service.metrics))
    let limit = service.settings.maximumRequestBytes

    router.get("/healthz") { _, _ -> Response in
        let (ok, body) = await service.health()
        return JSON.response(body, status: ok ? .ok : .serviceUnavailable)
    }
    router.get("/metrics") { _, _ -> Response in
        let stats = service.committer.statistics
        let text = service.metrics.render(extra: [
            ("sshca_ledger_group_commits", "Durable transactions that committed issued certificates.", Double(stats.groups)),
            ("sshca_process_resident_bytes", "Resident memory of the service.", Double(ProcessMemory.residentBytes())),
        ], info: service.ledgerDurability().map { settings in
            [("sshca_ledger_durability_info", "The ledger's durability settings as its writing connection has them.", settings)]
        } ?? [])
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("/v1/ca/user.pub") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: service.caPublicKey(.user) + "\n")))
    }
    router.get("/v1/ca/host.pub") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: service.caPublicKey(.host) + "\n")))
    }
    router.get("/v1/krl") { request, context -> Response in
        let (bytes, etag) = try service.krl()
        // Servers say who they are (a host token, or a name) and which CA key they pin.
        if request.headers[hostNameHeader] != nil || request.headers[.authorization] != nil {
            await service.noteHostSync(claimedName: request.headers[hostNameHeader], authorization: request.headers[.authorization],
                                 caFingerprint: request.headers[caKeyHeader], installedVersion: request.headers[installedKRLHeader],
                                 address: context.address, krl: bytes)
        }
        // If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { candidate in
            var tag = candidate.trimmingCharacters(in: " ")
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag == etag || tag == "*"
        }) {
            return Response(status: .notModified, headers: [.eTag: etag, .cacheControl: "no-cache"])
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .eTag: etag, .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
    router.get("/v1/krl.sig") { _, _ -> Response in
        let (text, etag) = try service.krlSignature()
        return Response(status: .ok, headers: [.contentType: "text/plain", .eTag: etag, .cacheControl: "no-cache"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.post("/v1/challenge") { request, context -> Response in
        var request = request
        let body = try await JSON.decode(ServiceAPI.ChallengeRequest.self, from: &request, limit: limit)
        let challenge = try await service.challenge(body, address: context.address)
        context.notes.identity = challenge.identity  // a checked user name by now
        return JSON.response(challenge)
    }
    router.post("/v1/certificates") { request, context -> Response in
        // The body first: a signed challenge names it (ServiceAPI.SignInMessage).
        var request = request
        let collected = await JSON.collect(&request, limit: limit)
        let applicant = try await service.authenticate(authorization: request.headers[.authorization], address: context.address,
                                                 request: CAService.SignedRequest(method: "POST", path: "/v1/certificates", body: (try? collected.get()) ?? []))
        context.notes.identity = "\(applicant.kind.rawValue):\(applicant.name)"
        let issued: IssuedCertificate
        do {
            let body = try JSON.decode(ServiceAPI.CertificateRequest.self, from: try collected.get())
            issued = try await service.issue(body, applicant: applicant)
        } catch let error as ServiceError where error.code != "policy" && error.status < 500 {
            // Policy refusals are audited with their rule by the service itself; failures of the
            // CA (a locked or full ledger) are not the requester's doing, and writing them to
            // that ledger would only wait on the same fault.
            await service.recordRefusal(error, applicant: applicant, path: "/v1/certificates")
            throw error
        }
        context.notes.outcome = "issued serial=\(issued.serial)"
        let b = issued.body
        return JSON.response(ServiceAPI.IssuedCertificate(
            certificate: issued.certificate.openSSHLine(comment: b.keyID), serial: b.serial, type: b.type.description,
            keyId: b.keyID, principals: b.principals, validAfter: b.validAfter, validBefore: b.validBefore,
            caFingerprint: b.signatureKey.fingerprint), status: .created)
    }
    router.get("/v1/hosts") { request, context -> Response in
        let applicant = try await service.authenticate(authorization: request.headers[.authorization], address: context.address,
                                                 request: CAService.SignedRequest(method: "GET", path: request.uri.path, body: []))
        context.notes.identity = "\(applicant.kind.rawValue):\(applicant.name)"
        try service.requireSecurity(applicant)
        return JSON.response(try await service.hosts())
    }
    router.get("/v1/certificates") { request, context -> Response in
        let applicant = try await service.authenticate(authorization: request.headers[.authorization], address: context.address,
                                                 request: CAService.SignedRequest(method: "GET", path: request.uri.path, body: []))
        context.notes.identity = "\(applicant.kind.rawValue):\(applicant.name)"
        let query = try CertificateListing.query(request.uri)
        return JSON.response(try await service.certificates(query, applicant: applicant))
    }
    router.get("/v1/certificates/:serial") { request, context -> Response in
        let applicant = try await service.authenticate(authorization: request.headers[.authorization], address: context.address,
                                                 request: CAService.SignedRequest(method: "GET", path: request.uri.path, body: []))
        context.notes.identity = "\(applicant.kind.rawValue):\(applicant.name)"
        guard let serial = context.parameters.get("serial").flatMap({ UInt64($0) }) else {
            throw ServiceError(400, "bad-request", "the serial must be a number")
        }
        return JSON.response(try await service.certificate(serial: serial, applicant: applicant))
    }
    router.post("/v1/revocations") { request, context -> Response in
        var request = request
        let collected = await JSON.collect(&request, limit: limit)
        let applicant = try await service.authenticate(authorization: request.headers[.authorization], address: context.address,
                                                 request: CAService.SignedRequest(method: "POST", path: "/v1/revocations", body: (try? collected.get()) ?? []))
        context.notes.identity = "\(applicant.kind.rawValue):\(applicant.name)"
        let revocation: ServiceAPI.Revocation
        try service.requireSecurity(applicant)
        do {
            let body = try JSON.decode(ServiceAPI.RevocationRequest.self, from: try collected.get())
            revocation = try await service.revoke(body, applicant: applicant)
        } catch let error as ServiceError where error.status < 500 {
            await service.recordRefusal(error, applicant: applicant, path: "/v1/revocations")
            throw error
        }
        context.notes.outcome = "\(revocation.isNew ? "revoked" : "already revoked") \(revocation.kind) \(revocation.target)"
        // 201 when this request recorded something new; 200 when everything it names was already
        // revoked (a retried request, or a second security engineer acting on the same alert).
        return JSON.response(revocation, status: revocation.isNew ? .created : .ok)
    }
    return router
}

/// Request bodies whose JSON members are checked against the list they take.
protocol KnownMembers { static var members: Set<String> { get } }
extension ServiceAPI.ChallengeRequest: KnownMembers { static var members: Set<String> { ["identity"] } }
extension ServiceAPI.CertificateRequest: KnownMembers { static var members: Set<String> { ["publicKey", "type", "principals", "validity"] } }
extension ServiceAPI.RevocationRequest: KnownMembers {
    static var members: Set<String> { ["serial", "serials", "keyId", "publicKey", "principal", "user", "reason"] }
}

enum ProcessMemory {
    /// VmRSS from /proc/self/status, in bytes.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.filter(\.isNumber)
            return (Int(digits) ?? 0) * 1024
        }
        return 0
    }
}

/// What `krl-sync --from URL` sends about the server it runs on.
let hostNameHeader = HTTPField.Name("X-SSHCA-Host")!
let caKeyHeader = HTTPField.Name("X-SSHCA-CA-Key")!
let installedKRLHeader = HTTPField.Name("X-SSHCA-KRL-Version")!

/// Runs the service until SIGTERM or SIGINT, then finishes the requests in flight.
public func runService(_ service: CAService, listen: ListenAddress, logger: Logger,
                       onListening: @escaping @Sendable (String) -> Void) async throws {
    let settings = service.settings
    // Every connection is a file descriptor: one address may hold only so many, all of them
    // stay below the process's limit, and a request must arrive whole within request_timeout.
    let counts = ConnectionCounts(perAddressLimit: settings.connectionsPerAddress, totalLimit: ConnectionCounts.descriptorBudget())
    let proxies = AddressBlocks(settings.trustedProxies)
    let timeout = TimeAmount.seconds(Int64(settings.requestTimeout))
    let http1 = HTTP1Channel.Configuration(
        additionalChannelHandlers: [ConnectionGuard(counts: counts, trustedProxies: proxies, requestTimeout: timeout, logger: logger)],
        idleTimeout: timeout)
    var server: HTTPServerBuilder = .http1(configuration: http1)
    var scheme = "http"
    if let certificatePath = settings.tlsCertificate, let keyPath = settings.tlsKey {
        let home = service.authority.home.path
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : home + "/" + path }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(resolve(certificatePath))
            key = try NIOSSLPrivateKey(file: resolve(keyPath), format: .pem)
        } catch {
            throw SSHCAError(.badConfig, "[service] tls_certificate/tls_key: cannot load \(resolve(certificatePath)) and \(resolve(keyPath)) as PEM (\(error))")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        server = try .tls(.http1(configuration: http1), tlsConfiguration: tls)
        scheme = "https"
    } else if settings.tlsCertificate != nil || settings.tlsKey != nil {
        throw SSHCAError(.badConfig, "[service] needs both tls_certificate and tls_key, or neither")
    } else if !listen.isLoopback && !settings.allowPlainHTTP {
        throw SSHCAError(.badConfig, "refusing plain HTTP on \(listen): certificates and tokens would cross the network unencrypted. Set [service] tls_certificate and tls_key, or allow_plain_http = true behind a TLS proxy")
    }
    let finalScheme = scheme
    let app = Application(
        router: buildRouter(service, logger: logger),
        server: server,
        configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "sshca"),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? listen.port
            let host = listen.host.contains(":") ? "[\(listen.host)]" : listen.host
            onListening("\(finalScheme)://\(host):\(port)")
        },
        logger: logger
    )
    // ServiceLifecycle stops the server on SIGTERM and SIGINT without a word; a second handler
    // for each (dispatch sources coexist) notes which one came, for the log.
    let stopSignal = Mutex<Int32?>(nil)
    let watchers = [SIGTERM, SIGINT].map { number in
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            let first = stopSignal.withLock { received in
                defer { if received == nil { received = number } }
                return received == nil
            }
            if first { logger.info("\(number == SIGTERM ? "SIGTERM" : "SIGINT") received: no new connections; finishing the requests in flight") }
        }
        source.resume()
        return source
    }
    defer { watchers.forEach { $0.cancel() } }
    do {
        try await app.runService()
    } catch {
        logger.error("stopped: \(error)")
        throw error
    }
    service.shutdown()
    let reason = stopSignal.withLock { $0 }.map { $0 == SIGTERM ? "on SIGTERM" : "on SIGINT" } ?? "(the server ended)"
    logger.info("stopped \(reason); the ledger is closed")
    service.authority.maintenance.shutDown()
}

/// The query string of `GET /v1/certificates`: outside text, parsed in one place (and fuzzed).
public enum CertificateListing {
    /// At most this many unless asked: a whole ledger in one answer is rarely what anyone wants.
    public static let defaultLimit = 1000
    public static let maximumLimit = 100_000

    public static func query(_ uri: URI) throws(ServiceError) -> CertificateQuery {
        let q = uri.queryParameters
        var query = CertificateQuery()
        query.principal = q["principal"].map(String.init)
        query.keyID = q["keyId"].map(String.init)
        if let status = q["status"] {
            guard let s = CertificateQuery.Status(rawValue: String(status)) else {
                throw ServiceError(400, "bad-request", "status must be any, active, expired or revoked")
            }
            query.status = s
        }
        query.limit = defaultLimit
        if let limitText = q["limit"] {
            guard let n = Int(limitText), n > 0, n <= maximumLimit else {
                throw ServiceError(400, "bad-request", "limit must be a number from 1 to \(maximumLimit)")
            }
            query.limit = n
        }
        if let afterText = q["after"] {
            guard let after = UInt64(afterText) else { throw ServiceError(400, "bad-request", "after must be a serial (a number)") }
            query.after = after
        }
        return query
    }
}
