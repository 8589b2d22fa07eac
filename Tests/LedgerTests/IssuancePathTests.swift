import Authority
import Common
import Foundation
import Ledger
import LedgerSQLite
import SSHCrypto
import SSHFormat
import Testing
import TestSupport

/// `CertificateAuthority.commit`, the one way certificates enter the ledger (the CLI with one
/// request, the service's group commit with many).
@Suite("the one issuance path")
struct IssuancePathTests {
    /// A CA key whose signing fails, as an agent that went away or an unplugged token does.
    struct GoneSigner: Signer {
        let publicKey: PublicKey
        func sign(_ data: [UInt8]) throws(CryptoError) -> SSHSignature {
            throw CryptoError(.agent, "the agent holding the CA key went away")
        }
    }

    @Test("each request of a group succeeds or fails alone; a signing failure keeps its own code and reason and takes no serial")
    func groupWithASigningFailure() async throws {
        try await withScratchDirectory { dir in
            let ledger = try SQLiteLedger(path: dir.child("ledger.sqlite").path)
            let key = try PrivateKey.generate(.ed25519)
            let configuration = Configuration()
            let good = Issuer(signer: OpenSSLSigner(key: key), configuration: configuration)
            let gone = Issuer(signer: GoneSigner(publicKey: key.publicKey), configuration: configuration)
            let now: UInt64 = 1_800_000_000
            func pending(_ issuer: Issuer, _ keyID: String) async throws -> PendingIssuance {
                let request = CertificateRequest(publicKey: try PrivateKey.generate(.ed25519).publicKey, keyID: keyID, principals: ["alice"])
                let body = try Issuer.body(for: request, configuration: configuration, signatureKey: key.publicKey, now: now)
                return PendingIssuance(body: body, issuer: issuer, requester: Requester(name: "tester", channel: "test"))
            }
            let results = try await CertificateAuthority.commit([pending(good, "a"), pending(gone, "b"), pending(good, "c")], to: ledger, now: now)
            #expect(results.count == 3)
            #expect((try? results[0].get())?.serial == 1)
            #expect((try? results[2].get())?.serial == 2, "the failed request took a serial")
            guard case .failure(let error) = results[1] else { Issue.record("a request whose signing failed was issued"); return }
            #expect(error.code == .key, "the signing failure became \(error.code.rawValue): \(error.reason)")
            #expect(error.reason.contains("went away"), "\(error.reason)")
            #expect(try ledger.certificates(matching: CertificateQuery(), now: now).map(\.body.keyID) == ["a", "c"])
        }
    }
}
