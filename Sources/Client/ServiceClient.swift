import Common
public import SSHFormat
import SSHCrypto
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL
import Foundation

/// Where the CA service is and how it is trusted: `--ca-url`, `--ca-fingerprint` (the CA key the
/// service must present) and, over TLS, `--ca-bundle` (PEM roots; the server's own certificate
/// works as a pin).
public struct ServiceEndpoint: Sendable, Equatable {
    public var url: String
    /// The CA keys the service may present (any one of them): a set, because a CA rotation
    /// has two keys for a while. Empty: nothing pinned.
    public var caFingerprints: [String]
    public var caBundle: String?
    /// The most one exchange may take, from sending the request to the body's last byte.
    public var timeout: Duration

    public init(url: String, caFingerprints: [String], caBundle: String? = nil, timeout: Duration = .seconds(60)) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.caFingerprints = caFingerprints
        self.caBundle = caBundle
        self.timeout = timeout
    }

    public init(url: String, caFingerprint: String? = nil, caBundle: String? = nil, timeout: Duration = .seconds(60)) {
        self.init(url: url, caFingerprints: caFingerprint.map { [$0] } ?? [], caBundle: caBundle, timeout: timeout)
    }

    public var isPinned: Bool { !caFingerprints.isEmpty }
}

/// An HTTP answer, before it is decoded.
public struct ServiceReply: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Talks to `sshca serve`. Every failure is an SSHCAError with a sentence for the person at
/// the terminal: refusals keep the service's message (and the rule that refused).
public final class ServiceClient: Sendable {
    public let endpoint: ServiceEndpoint
    let http: HTTPClient

    public init(_ endpoint: ServiceEndpoint) throws(SSHCAError) {
        self.endpoint = endpoint
        guard endpoint.url.hasPrefix("http://") || endpoint.url.hasPrefix("https://"), endpoint.url.count > 8 else {
            throw SSHCAError(.badInput, "--ca-url must start with http:// or https:// (for example https://ca.example.com:8443), not \"\(endpoint.url.prefix(80))\"")
        }
        if endpoint.url.hasPrefix("http://"), !Self.isLoopback(endpoint.url) {
            throw SSHCAError(.badInput, "\(endpoint.url) is plain HTTP off this machine: tokens and signed challenges would cross the network unencrypted. Use the https:// address (with --ca-bundle for a private CA)")
        }
        if let fingerprint = endpoint.caFingerprints.first(where: { !$0.hasPrefix("SHA256:") }) {
            throw SSHCAError(.badInput, "--ca-fingerprint must be a SHA256:... fingerprint, as `sshca ca-key | ssh-keygen -lf -` prints it, not \"\(fingerprint.prefix(60))\"")
        }
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        configuration.redirectConfiguration = .disallow
        // A command run by a person or a timer: a refused connection or a certificate that does
        // not verify is reported at once, not retried until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        if let bundle = endpoint.caBundle {
            guard endpoint.url.hasPrefix("https://") else {
                throw SSHCAError(.badInput, "--ca-bundle is for https:// URLs; \(endpoint.url) is plain HTTP")
            }
            let roots: [NIOSSLCertificate]
            do { roots = try NIOSSLCertificate.fromPEMFile(bundle) } catch {
                throw SSHCAError(.badInput, "--ca-bundle \(bundle): not a PEM certificate file (\(error))")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(roots)
            tls.minimumTLSVersion = .tlsv12
            configuration.tlsConfiguration = tls
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit {
        try? http.syncShutdown()
    }

    public func send(_ method: String, _ path: String, json: [UInt8]? = nil, headers: [(String, String)] = []) async throws(SSHCAError) -> ServiceReply {
        var request = HTTPClientRequest(url: endpoint.url + path)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
        }
        // One deadline for the whole exchange: AsyncHTTPClient's timeout ends at the response
        // head, and a body sent a byte at a time would otherwise hold a server's timer for ever.
        let limit = endpoint.timeout
        let prepared = request
        let outcome: ServiceReply?
        do {
            outcome = try await withThrowingTaskGroup(of: ServiceReply?.self) { [http] group in
                group.addTask {
                    let response = try await http.execute(prepared, timeout: .seconds(limit.components.seconds))
                    let body = try await response.body.collect(upTo: 64 << 20)
                    return ServiceReply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                                        body: Array(body.readableBytesView))
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
        } catch {
            throw SSHCAError(.io, "cannot reach the CA service at \(endpoint.url): \(Self.describe(error, url: endpoint.url))")
        }
        guard let outcome else {
            throw SSHCAError(.io, "the CA service at \(endpoint.url) did not complete its answer to \(method) \(path) within \(limit.components.seconds) s; giving up")
        }
        return outcome
    }

    /// http://127.x, http://localhost, http://[::1]: the only plain-HTTP URLs a client uses.
    static func isLoopback(_ url: String) -> Bool {
        let rest = url.dropFirst("http://".count)
        let host: Substring
        if rest.hasPrefix("[") {
            host = rest.dropFirst().prefix { $0 != "]" }
        } else {
            host = rest.prefix { $0 != ":" && $0 != "/" }
        }
        return ListenAddress.isLoopback(host: host)
    }

    static func describe(_ error: any Error, url: String) -> String {
        let text = "\(error)"
        if text.contains("connectTimeout") { return "connection timed out" }
        if text.contains("Connection refused") || text.contains("connectionRefused") || text.contains("ECONNREFUSED") { return "connection refused (is sshca serve running there?)" }
        // An https client that meets a plain-HTTP port reads "HTTP/1.1 ..." as a TLS record.
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") {
            return "it answers plain HTTP, not TLS: use http:// for a service on loopback without tls_certificate, or give the service a TLS certificate (sshca tls)"
        }
        if text.contains("handshakeFailed") || text.contains("NIOSSL") { return "TLS failed (\(text)); check --ca-bundle" }
        // A TLS port that receives plain HTTP closes the connection without a word.
        if text.contains("remoteConnectionClosed") && url.hasPrefix("http://") {
            return "the service closed the connection without answering (\(text)): if it speaks TLS, use https:// with --ca-bundle"
        }
        return text
    }

    /// Decodes a 2xx answer, or turns the service's JSON error into an SSHCAError.
    public func decode<T: Decodable>(_ type: T.Type, _ reply: ServiceReply) throws(SSHCAError) -> T {
        try Self.decode(type, reply, url: endpoint.url)
    }

    /// The same, for any URL (the service's answers are outside bytes: fuzzed).
    public static func decode<T: Decodable>(_ type: T.Type, _ reply: ServiceReply, url: String) throws(SSHCAError) -> T {
        guard (200..<300).contains(reply.status) else { throw error(from: reply, url: url) }
        do { return try JSONDecoder().decode(T.self, from: Data(reply.body)) } catch {
            throw SSHCAError(.io, "the service at \(url) sent an answer this client does not understand (\(error))")
        }
    }

    static func error(from reply: ServiceReply, url: String) -> SSHCAError {
        let detail = try? JSONDecoder().decode(ServiceAPI.ErrorBody.self, from: Data(reply.body)).error
        let message: String
        if let detail {
            message = detail.rule.map { "\(detail.message) (rule \($0))" } ?? detail.message
        } else {
            message = "HTTP \(reply.status) from \(url)"
        }
        switch reply.status {
        case 400, 413: return SSHCAError(.badInput, "the CA service refused the request: \(message)")
        case 401, 403: return SSHCAError(.refused, "the CA service refused: \(message)")
        case 429: return SSHCAError(.io, "the CA service asks to wait: \(message)")
        case 404: return SSHCAError(.notFound, "the CA service: \(message)")
        default: return SSHCAError(.io, "the CA service failed: \(message)")
        }
    }

    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        (try? [UInt8](JSONEncoder().encode(value))) ?? []
    }

    // MARK: Typed calls

    /// GET /v1/hosts (security staff).
    public func hosts(credential: Credential) async throws(SSHCAError) -> [ServiceAPI.Host] {
        let authorization = try await credential.authorization(self, method: "GET", path: "/v1/hosts", body: [])
        return try decode([ServiceAPI.Host].self, try await send("GET", "/v1/hosts", headers: [("Authorization", authorization)]))
    }

    /// The CA key the service presents, checked against `--ca-fingerprint` when one is pinned.
    public func caPublicKey(_ kind: CAKind) async throws(SSHCAError) -> PublicKey {
        try await caPublicKey(kind, pinned: true)
    }

    /// The host CA key from a service whose user CA key matches the pin (the pins are user CA
    /// keys), for known_hosts: over https the TLS check, on loopback the machine itself, vouch
    /// for the service (ServiceClient refuses plain HTTP anywhere else).
    public func hostCAPublicKey() async throws(SSHCAError) -> PublicKey {
        try await checkPin(.user)
        return try await caPublicKey(.host, pinned: false)
    }

    func caPublicKey(_ kind: CAKind, pinned: Bool) async throws(SSHCAError) -> PublicKey {
        let reply = try await send("GET", "/v1/ca/\(kind.rawValue).pub")
        guard reply.status == 200 else { throw Self.error(from: reply, url: endpoint.url) }
        let key: PublicKey
        do { key = try PublicKeyText(parsing: String(decoding: reply.body, as: UTF8.self)).key } catch {
            throw SSHCAError(.io, "the service's \(kind.rawValue) CA key does not parse: \(error)")
        }
        if pinned, endpoint.isPinned, !endpoint.caFingerprints.contains(key.fingerprint) {
            throw SSHCAError(.refused, "the service at \(endpoint.url) presents \(kind.rawValue) CA key \(key.fingerprint), but --ca-fingerprint ($SSHCA_CA_FINGERPRINT, or the client configuration) pins \(endpoint.caFingerprints.joined(separator: " or ")); refusing to proceed (a wrong URL or pin, or a service that is not your CA)")
        }
        return key
    }

    /// Checks the pin before anything else is sent (for commands that use no CA key otherwise).
    public func checkPin(_ kind: CAKind = .user) async throws(SSHCAError) {
        if endpoint.isPinned { _ = try await caPublicKey(kind) }
    }

    public func challenge(identity: String) async throws(SSHCAError) -> ServiceAPI.Challenge {
        try decode(ServiceAPI.Challenge.self, try await send("POST", "/v1/challenge", json: Self.json(ServiceAPI.ChallengeRequest(identity: identity))))
    }

    public func requestCertificate(_ request: ServiceAPI.CertificateRequest, credential: Credential) async throws(SSHCAError) -> ServiceAPI.IssuedCertificate {
        let body = Self.json(request)
        let certifies = try? PublicKeyText(parsing: request.publicKey).key
        let authorization = try await credential.authorization(self, method: "POST", path: "/v1/certificates", certifies: certifies, body: body)
        return try decode(ServiceAPI.IssuedCertificate.self,
                          try await send("POST", "/v1/certificates", json: body, headers: [("Authorization", authorization)]))
    }

    public func revoke(_ request: ServiceAPI.RevocationRequest, credential: Credential) async throws(SSHCAError) -> ServiceAPI.Revocation {
        try await checkPin()
        let body = Self.json(request)
        let authorization = try await credential.authorization(self, method: "POST", path: "/v1/revocations", body: body)
        return try decode(ServiceAPI.Revocation.self,
                          try await send("POST", "/v1/revocations", json: body, headers: [("Authorization", authorization)]))
    }

    /// Every matching certificate with a serial above `after`, page by page (`limit`: at most
    /// this many in all).
    public func certificates(query: [(String, String)], limit: Int? = nil, after start: UInt64? = nil,
                             credential: Credential) async throws(SSHCAError) -> [CertificateSummary] {
        try await checkPin()
        var all: [CertificateSummary] = []
        var after = start
        repeat {
            var pageQuery = query
            if let limit { pageQuery.append(("limit", String(min(limit - all.count, 100_000)))) }
            if let after { pageQuery.append(("after", String(after))) }
            let authorization = try await credential.authorization(self, method: "GET", path: "/v1/certificates", body: [])
            let q = pageQuery.isEmpty ? "" : "?" + pageQuery.map { "\($0.0)=\(Self.percentEncode($0.1))" }.joined(separator: "&")
            let page = try decode(ServiceAPI.CertificateList.self,
                                  try await send("GET", "/v1/certificates" + q, headers: [("Authorization", authorization)]))
            all += page.certificates
            after = page.next
        } while after != nil && (limit.map { all.count < $0 } ?? true)
        return all
    }

    public func certificate(serial: UInt64, credential: Credential) async throws(SSHCAError) -> CertificateSummary {
        try await checkPin()
        let authorization = try await credential.authorization(self, method: "GET", path: "/v1/certificates/\(serial)", body: [])
        return try decode(CertificateSummary.self, try await send("GET", "/v1/certificates/\(serial)", headers: [("Authorization", authorization)]))
    }

    /// The KRL bytes and ETag, or nil when `etag` still matches (304).
    /// `identification`: what a server says of itself (X-SSHCA-Host, X-SSHCA-CA-Key, and a host
    /// token's Authorization), so the service knows which servers are current.
    public func krl(ifNoneMatch etag: String? = nil, identification: [(String, String)] = []) async throws(SSHCAError) -> (bytes: [UInt8], etag: String?)? {
        let reply = try await send("GET", "/v1/krl", headers: (etag.map { [("If-None-Match", $0)] } ?? []) + identification)
        if reply.status == 304 {
            // Only an answer to the ETag we sent: an unsolicited 304 would let whoever answers
            // freeze a server's revocations while it reports success.
            guard etag != nil else {
                throw SSHCAError(.badInput, "\(endpoint.url)/v1/krl answered 304 Not Modified to a request that named no ETag; that is not an answer a KRL can come from, refusing it")
            }
            return nil
        }
        guard reply.status == 200 else { throw Self.error(from: reply, url: endpoint.url) }
        return (reply.body, reply.header("ETag"))
    }

    /// The KRL's detached signature (GET /v1/krl.sig) and the ETag of the KRL it signs; nil
    /// when the service does not sign its KRL (404).
    public func krlSignature() async throws(SSHCAError) -> (text: String, etag: String?)? {
        let reply = try await send("GET", "/v1/krl.sig")
        if reply.status == 404 { return nil }
        guard reply.status == 200 else { throw Self.error(from: reply, url: endpoint.url) }
        guard reply.body.count <= 64 * 1024, let text = String(validating: reply.body, as: UTF8.self) else {
            throw SSHCAError(.io, "\(endpoint.url)/v1/krl.sig is not a signature (over 64 KiB, or not text)")
        }
        return (text, reply.header("ETag"))
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) { out.append(c) } else { out += String(format: "%%%02X", byte) }
        }
        return out
    }
}
