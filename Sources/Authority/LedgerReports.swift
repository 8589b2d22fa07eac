import Common
import Ledger

extension CertificateSummary {
    /// A ledger row as `sshca list` and the service's listing show it.
    public init(_ issued: IssuedCertificate, now: UInt64) {
        let body = issued.body
        let status: String
        if issued.revocation != nil {
            status = "revoked"
        } else if body.validBefore <= now {
            status = "expired"
        } else if body.validAfter > now {
            status = "not-yet-valid"
        } else {
            status = "active"
        }
        self.init(serial: body.serial, type: body.type.description, keyId: body.keyID, principals: body.principals,
                  validAfter: body.validAfter, validBefore: body.validBefore, status: status,
                  keyFingerprint: body.publicKey.fingerprint, keyType: body.publicKey.typeName,
                  caFingerprint: body.signatureKey.fingerprint, requestedBy: issued.requestedBy.name,
                  channel: issued.requestedBy.channel, issuedAt: issued.issuedAt,
                  revocation: issued.revocation.map {
                      Revocation(id: $0.id, kind: $0.kind, target: $0.target, reason: $0.reason, by: $0.revokedBy, at: $0.revokedAt)
                  },
                  criticalOptions: body.criticalOptions.map(CertificateReport.option),
                  extensions: body.extensions.map(CertificateReport.option),
                  certificate: issued.certificate.openSSHLine())
    }
}

extension ServiceAPI.Host {
    /// Behind: an older KRL than `currentKRL`, or no sync for longer than `staleAfter` (the
    /// timer syncs every five minutes).
    public init(_ record: HostRecord, currentKRL: UInt64, now: UInt64, staleAfter: UInt64 = 1800) {
        var problems: [String] = []
        if record.krlVersion < currentKRL { problems.append("KRL version \(record.krlVersion), the current one is \(currentKRL)") }
        if now > record.lastSync &+ staleAfter { problems.append("no sync for \(DurationText.format(now - record.lastSync))") }
        self.init(name: record.name, identifiedBy: record.identifiedBy, address: record.address, lastSync: record.lastSync,
                  krlVersion: record.krlVersion, caFingerprint: record.caFingerprint, behind: problems)
    }
}
