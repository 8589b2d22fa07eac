import Common
public import Ledger
public import SSHFormat
import Synchronization

/// A certificate request that passed every check before the ledger: its body (serial not yet
/// given), the issuer that signs it and who asked.
public struct PendingIssuance: Sendable {
    public var body: CertificateBody
    public var issuer: Issuer
    public var requester: Requester
    /// The key id gets the serial appended (`sign --key-id-serial`).
    public var keyIDNamesSerial: Bool

    public init(body: CertificateBody, issuer: Issuer, requester: Requester, keyIDNamesSerial: Bool = false) {
        self.body = body
        self.issuer = issuer
        self.requester = requester
        self.keyIDNamesSerial = keyIDNamesSerial
    }
}

extension CertificateAuthority {
    /// The one way certificates enter the ledger, for `sshca sign`, `host cert` on the CA and the
    /// service alike: one transaction for all of `pending` (a command brings one, the service's
    /// group commit many); inside it each gets the next serial, is signed, is checked against
    /// the revocations, and is recorded with its audit entry, or is refused alone. Throws only
    /// when the transaction failed, and then nothing of `pending` was issued.
    public static func commit(_ pending: [PendingIssuance], to ledger: any Ledger, now: UInt64) async throws(SSHCAError) -> [Result<IssuedCertificate, SSHCAError>] {
        // A signing failure inside the transaction keeps its own code and reason.
        let signingErrors = Mutex<[Int: SSHCAError]>([:])
        let requests = pending.enumerated().map { index, item in
            GroupIssuance(requestedBy: item.requester) { serial in
                do {
                    return try item.issuer.sign(Issuer.numbered(item.body, serial: serial, keyIDNamesSerial: item.keyIDNamesSerial))
                } catch {
                    if let error = error as? SSHCAError { signingErrors.withLock { $0[index] = error } }
                    throw error
                }
            }
        }
        let results: [Result<IssuedCertificate, LedgerError>]
        do {
            results = try await ledger.issueGroup(requests, now: now)
        } catch {
            throw SSHCAError.from(error)
        }
        let signing = signingErrors.withLock { $0 }
        return results.enumerated().map { index, result in
            result.mapError { signing[index] ?? SSHCAError(ledger: $0) }
        }
    }
}
