import Hummingbird
import HTTPTypes
import NIOCore

/// A ServiceError is the service's HTTP error: Hummingbird turns one thrown anywhere under the
/// router into its response (status, Retry-After, the JSON error body).
extension ServiceError: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response { response() }

    /// The JSON error body with its headers: WWW-Authenticate on 401, Retry-After on 429 and 503.
    func response() -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if statusCode == 401 { headers[.wwwAuthenticate] = "Bearer, SSHSIG" }
        if let seconds = retryAfter { headers[.retryAfter] = String(seconds) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: JSON.encode(body))))
    }

    /// One of Hummingbird's own errors (no such route, a body over its limit), in the service's shape.
    init(routing error: HTTPError) {
        let status = Int(error.status.code)
        let code = status == 413 ? "too-large" : status == 404 ? "not-found" : status == 405 ? "method-not-allowed" : "bad-request"
        let message = status == 413 ? "the request body is too large"
            : status == 404 ? "no such endpoint (see docs/openapi.yaml)" : (error.body ?? "\(error.status.reasonPhrase)")
        self.init(status, code, message)
    }
}
