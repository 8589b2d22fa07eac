import Common
public import Client
public import SSHFormat
import Foundation

/// The server side's URL forms: fetch the CA key and the KRL from `sshca serve`, pinned to the
/// CA key's fingerprint, and renew host certificates with a host token.
public enum RemoteCA {
    /// The user CA key from the service; the fingerprint pin is required, since this key decides
    /// who may log in to the server.
    public static func userCAKey(_ client: ServiceClient) throws(SSHCAError) -> PublicKey {
        guard client.endpoint.isPinned else {
            throw SSHCAError(.badInput, "--ca-url needs --ca-fingerprint SHA256:... here: the CA key decides who may log in, so it is never taken on trust (get it on the CA with: sshca ca-key | ssh-keygen -lf -)")
        }
        return try blocking { () throws(SSHCAError) in try await client.caPublicKey(.user) }
    }

    /// `krl-sync --from URL`: the service's /v1/krl, installed through the same checks as a file.
    /// The last ETag is kept beside the KRL so an unchanged KRL is not even downloaded.
    /// The server says who it is: `token` (a host token) names it; without one, its host name.
    public static func syncKRL(_ client: ServiceClient, to path: String, pinnedSigner: PublicKey?, token: String? = nil) throws(SSHCAError) -> KRLSync.Outcome {
        let etagPath = path + ".etag"
        let known = (try? Files.readText(etagPath, maximumBytes: 256, what: "ETag file"))?.trimmingCharacters(in: " \n")
        let installedVersion = (try? KRLInspection(bytes: try Files.read(path, maximumBytes: 1 << 30, what: "KRL"), source: path))?.krl.version
        let etag = installedVersion != nil ? known : nil
        var identification = [("X-SSHCA-Host", hostName())]
        if let pinnedSigner { identification.append(("X-SSHCA-CA-Key", pinnedSigner.fingerprint)) }
        if let token { identification.append(("Authorization", "Bearer \(token)")) }
        // What this server has installed (not what it is about to fetch), so the service's
        // "behind" means installed, never merely sent.
        identification.append(("X-SSHCA-KRL-Version", String(installedVersion ?? 0)))
        let sent = identification
        // The KRL and its detached signature come in two requests; a revocation between them
        // gives a pair that does not belong together (their ETags differ), so it is asked again.
        var fetched: (bytes: [UInt8], etag: String?, signature: String?)? = nil
        for _ in 0..<3 {
            guard let (bytes, newTag) = try blocking({ () throws(SSHCAError) in try await client.krl(ifNoneMatch: etag, identification: sent) }) else {
                return .alreadyCurrent(version: installedVersion ?? 0)
            }
            let signed = try blocking { () throws(SSHCAError) in try await client.krlSignature() }
            fetched = (bytes, newTag, signed?.text)
            if signed == nil || signed?.etag == newTag { break }
        }
        guard let (bytes, newTag, signature) = fetched else { throw SSHCAError(.io, "no KRL from \(client.endpoint.url)") }
        let outcome = try KRLSync.install(bytes, source: client.endpoint.url + "/v1/krl", to: path, pinnedSigner: pinnedSigner,
                                          detachedSignature: signature)
        if let newTag { try? Files.writeAtomically(etagPath, Array((newTag + "\n").utf8), mode: 0o644) }
        // Tells the service at once what is now installed (a conditional request answered 304),
        // so `sshca hosts` does not call this server behind until its next sync.
        if case .installed(let version, _) = outcome, let newTag {
            var confirmation = sent.filter { $0.0 != "X-SSHCA-KRL-Version" }
            confirmation.append(("X-SSHCA-KRL-Version", String(version)))
            let confirmed = confirmation
            _ = try? blocking { () throws(SSHCAError) in try await client.krl(ifNoneMatch: newTag, identification: confirmed) }
        }
        return outcome
    }

    /// This machine's name (gethostname), as a server introduces itself.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "unknown" : name
    }

    /// Signs host keys through the service with a host token (`host cert --ca-url`). Every
    /// certificate must be signed by the service's host CA key (pinned when a fingerprint is given).
    public static func hostCertifier(_ client: ServiceClient, credential: Credential, validity: String?) async throws(SSHCAError) -> (certify: HostCertificates.Certifier, hostCA: PublicKey) {
        let hostCA = try await client.caPublicKey(.host)
        let certify: HostCertificates.Certifier = { (key: PublicKey, principals: [String]) async throws(SSHCAError) -> Certificate in
            let issued = try await client.requestCertificate(
                ServiceAPI.CertificateRequest(publicKey: key.openSSHLine(), type: "host", principals: principals, validity: validity),
                credential: credential)
            let certificate: Certificate
            do { certificate = try Certificate(parsingText: issued.certificate) } catch {
                throw SSHCAError(.io, "the service sent a host certificate that does not parse: \(error)")
            }
            guard certificate.body.signatureKey == hostCA, certificate.body.publicKey == key, certificate.body.type == .host,
                  certificate.verifySignature() == .valid else {
                throw SSHCAError(.refused, "the service's answer is not a host certificate for \(key.fingerprint) signed by the host CA \(hostCA.fingerprint); refusing it")
            }
            return certificate
        }
        return (certify, hostCA)
    }
}
