import Authority
import Common
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import Foundation

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

/// Makes every thrown error one JSON shape (ServiceError's, Hummingbird's own errors turned into it), and logs one line per request: method, path,
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
            response = error.response()
        } catch let error as HTTPError {
            // Hummingbird's own (no route, a body it would not read): the same JSON shape.
            let error = ServiceError(routing: error)
            context.notes.outcome = error.code
            response = error.response()
        } catch {
            context.notes.outcome = "internal"
            logger.error("request failed", metadata: ["path": .string(request.uri.path), "error": .string("\(error)")])
            response = ServiceError(500, "internal", "internal error; the service log has details").response()
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
}

/// Authenticates the requests of the routes it guards, once, before their handler runs: a
/// bearer token or a signed challenge. A signed challenge covers the request's method, path and
/// body, so the body is read here (up to the service's limit). The caller goes into the request
/// context; a handler behind this middleware always has one.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = CAContext
    let service: CAService
    let limit: Int

    func handle(_ request: Request, context: CAContext, next: (Request, CAContext) async throws -> Response) async throws -> Response {
        var request = request
        let body: Result<[UInt8], ServiceError> = request.method == .get ? .success([]) : await JSON.collect(&request, limit: limit)
        let signed = CAService.SignedRequest(method: request.method.rawValue, path: request.uri.path, body: (try? body.get()) ?? [])
        let applicant = try await service.authenticate(authorization: request.headers[.authorization], address: context.address, request: signed)
        context.notes.identity = "\(applicant.kind.rawValue):\(applicant.name)"
        var context = context
        context.caller = Caller(applicant: applicant, body: body)
        return try await next(request, context)
    }
}

/// Lets only security staff through (revocations, the fleet's view), before the body is
/// decoded: anyone else gets 403 whatever they sent.
struct SecurityStaffMiddleware: RouterMiddleware {
    typealias Context = CAContext
    let service: CAService

    func handle(_ request: Request, context: CAContext, next: (Request, CAContext) async throws -> Response) async throws -> Response {
        try service.requireSecurity(try context.requireCaller().applicant)
        return try await next(request, context)
    }
}
