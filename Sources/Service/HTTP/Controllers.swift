import Authority
import Common
import Hummingbird
import HTTPTypes
import NIOCore
import Ledger

// Each controller holds the routes of one part of the API; every handler parses, calls one
// CAService method and encodes. Authentication and the security-staff check are middleware
// (Middleware.swift): a handler behind them finds its caller in the request context.

/// GET /healthz and /metrics: for the operator's monitoring.
struct OperationsController {
    let service: CAService

    func addRoutes(to router: some RouterMethods<CAContext>) {
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
    }
}

/// What anyone may fetch: the CA public keys, the KRL and its signature. A server's KRL fetch
/// may say who it is (a host token, or a name) and is noted for `sshca hosts`.
struct PublicController {
    let service: CAService

    func addRoutes(to router: some RouterMethods<CAContext>) {
        router.get("/v1/ca/user.pub") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: service.caPublicKey(.user) + "\n")))
        }
        router.get("/v1/ca/host.pub") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: service.caPublicKey(.host) + "\n")))
        }
        router.get("/v1/krl") { request, context -> Response in
            let (bytes, etag) = try await service.krl()
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
            let (text, etag) = try await service.krlSignature()
            return Response(status: .ok, headers: [.contentType: "text/plain", .eTag: etag, .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}

/// POST /v1/challenge: a nonce for a signed sign-in, to anyone who asks.
struct ChallengeController {
    let service: CAService
    let limit: Int

    func addRoutes(to router: some RouterMethods<CAContext>) {
        router.post("/v1/challenge") { request, context -> Response in
            var request = request
            let body = try await JSON.decode(ServiceAPI.ChallengeRequest.self, from: &request, limit: limit)
            let challenge = try await service.challenge(body, address: context.address)
            context.notes.identity = challenge.identity  // a checked user name by now
            return JSON.response(challenge)
        }
    }
}

/// Issuance and the caller's view of certificates (behind authentication).
struct CertificatesController {
    let service: CAService

    func addRoutes(to group: RouterGroup<CAContext>) {
        group.post("/v1/certificates") { _, context -> Response in
            let caller = try context.requireCaller()
            let issued: IssuedCertificate
            do {
                let body = try JSON.decode(ServiceAPI.CertificateRequest.self, from: try caller.body.get())
                issued = try await service.issue(body, applicant: caller.applicant)
            } catch let error as ServiceError where error.code != "policy" && error.statusCode < 500 {
                // Policy refusals are audited with their rule by the service itself; failures of
                // the CA (a locked or full ledger) are not the requester's doing, and writing them
                // to that ledger would only wait on the same fault.
                await service.recordRefusal(error, applicant: caller.applicant, path: "/v1/certificates")
                throw error
            }
            context.notes.outcome = "issued serial=\(issued.serial)"
            let b = issued.body
            return JSON.response(ServiceAPI.IssuedCertificate(
                certificate: issued.certificate.openSSHLine(comment: b.keyID), serial: b.serial, type: b.type.description,
                keyId: b.keyID, principals: b.principals, validAfter: b.validAfter, validBefore: b.validBefore,
                caFingerprint: b.signatureKey.fingerprint), status: .created)
        }
        group.get("/v1/certificates") { request, context -> Response in
            let caller = try context.requireCaller()
            let query = try CertificateListing.query(request.uri)
            return JSON.response(try await service.certificates(query, applicant: caller.applicant))
        }
        group.get("/v1/certificates/:serial") { _, context -> Response in
            let caller = try context.requireCaller()
            guard let serial = context.parameters.get("serial").flatMap({ UInt64($0) }) else {
                throw ServiceError(400, "bad-request", "the serial must be a number")
            }
            return JSON.response(try await service.certificate(serial: serial, applicant: caller.applicant))
        }
    }
}

/// POST /v1/revocations (behind authentication and the security-staff check).
struct RevocationsController {
    let service: CAService

    func addRoutes(to group: RouterGroup<CAContext>) {
        group.post("/v1/revocations") { _, context -> Response in
            let caller = try context.requireCaller()
            let revocation: ServiceAPI.Revocation
            do {
                let body = try JSON.decode(ServiceAPI.RevocationRequest.self, from: try caller.body.get())
                revocation = try await service.revoke(body, applicant: caller.applicant)
            } catch let error as ServiceError where error.statusCode < 500 {
                await service.recordRefusal(error, applicant: caller.applicant, path: "/v1/revocations")
                throw error
            }
            context.notes.outcome = "\(revocation.isNew ? "revoked" : "already revoked") \(revocation.kind) \(revocation.target)"
            // 201 when this request recorded something new; 200 when everything it names was
            // already revoked (a retried request, or a second security engineer on the same alert).
            return JSON.response(revocation, status: revocation.isNew ? .created : .ok)
        }
    }
}

/// GET /v1/hosts: the fleet's KRL syncs (behind authentication and the security-staff check).
struct HostsController {
    let service: CAService

    func addRoutes(to group: RouterGroup<CAContext>) {
        group.get("/v1/hosts") { _, _ -> Response in
            JSON.response(try await service.hosts())
        }
    }
}
