import Authority
public import Hummingbird
import HTTPTypes
import NIOCore

/// Per request: the client's address, and notes the handler leaves for the one log line.
public struct CAContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    let notes = RequestNotes()
    /// The client behind trusted proxies (X-Forwarded-For), set by ClientAddressMiddleware.
    var forwardedClient: String?
    /// Who is asking, set by AuthenticationMiddleware on the routes that need a caller.
    var caller: Caller?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's address, as limits and logs use it.
    var address: String { forwardedClient ?? remoteAddress?.ipAddress ?? "unknown" }

    /// The authenticated caller of a route behind AuthenticationMiddleware.
    func requireCaller() throws(ServiceError) -> Caller {
        guard let caller else {
            // A route that needs a caller was registered outside the authenticated group.
            throw ServiceError(500, "internal", "internal error: this route is not behind authentication")
        }
        return caller
    }
}

/// An authenticated request: who signed in, and the body that was read to check it (a signed
/// challenge covers the body, so it is read before the handler runs; a body over the limit is
/// kept as its 413, which the handler reports after authentication as it always has).
struct Caller: Sendable {
    var applicant: Applicant
    var body: Result<[UInt8], ServiceError>
}

final class RequestNotes: @unchecked Sendable {
    // Written by the request's own handler, read by the logging middleware after it; one task.
    var identity = "-"
    var outcome = ""
}

/// What `krl-sync --from URL` sends about the server it runs on.
let hostNameHeader = HTTPField.Name("X-SSHCA-Host")!
let caKeyHeader = HTTPField.Name("X-SSHCA-CA-Key")!
let installedKRLHeader = HTTPField.Name("X-SSHCA-KRL-Version")!
