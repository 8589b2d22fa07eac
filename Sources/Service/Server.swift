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

/// The API: the middleware every request passes (client address, one log line and the error
/// shape), then the controllers, the ones that need a caller behind authentication and, for
/// revocations and the fleet's view, behind the security-staff check as well.
public func buildRouter(_ service: CAService, logger: Logger) -> Router<CAContext> {
    let router = Router(context: CAContext.self)
    router.add(middleware: ClientAddressMiddleware(trustedProxies: AddressBlocks(service.settings.trustedProxies)))
    router.add(middleware: RequestLogMiddleware(logger: logger, metrics: service.metrics))
    let limit = service.settings.maximumRequestBytes

    OperationsController(service: service).addRoutes(to: router)
    PublicController(service: service).addRoutes(to: router)
    ChallengeController(service: service, limit: limit).addRoutes(to: router)

    let authenticated = router.group().add(middleware: AuthenticationMiddleware(service: service, limit: limit))
    CertificatesController(service: service).addRoutes(to: authenticated)
    let security = authenticated.group().add(middleware: SecurityStaffMiddleware(service: service))
    RevocationsController(service: service).addRoutes(to: security)
    HostsController(service: service).addRoutes(to: security)
    return router
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
