// In-process measurements for scripts/bench. Kept out of the `sshca` binary so the CLI stays
// small; it calls the same library functions the CLI and the service call.
import Authority
import SSHCrypto
import SSHFormat
#if canImport(Glibc)
import Glibc
#endif

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func fail(_ message: String) -> Never {
    let text = Array("sshca-bench: \(message)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

/// Certificates per second on one thread: the whole issuance path (rules, nonce, body, signature)
/// plus the OpenSSH line a caller would write, for a user certificate with one principal and the
/// default extensions.
func signRate(caType: CAKeyType, seconds: Double) throws -> (rate: Double, last: Certificate) {
    let ca = try PrivateKey.generate(caType)
    let subject = try PrivateKey.generate(.ed25519).publicKey
    let issuer = Issuer(signer: OpenSSLSigner(key: ca), configuration: Configuration())
    let now = UInt64(time(nil))
    var request = CertificateRequest(publicKey: subject, keyID: "alice@laptop", principals: ["alice"])
    var count: UInt64 = 0
    var last: Certificate? = nil
    var bytes = 0
    let start = monotonicSeconds()
    let deadline = start + seconds
    while true {
        count += 1
        request.serial = count
        let certificate = try issuer.issue(request, now: now)
        bytes &+= certificate.openSSHLine().utf8.count
        last = certificate
        if count % 64 == 0, monotonicSeconds() >= deadline { break }
    }
    let elapsed = monotonicSeconds() - start
    guard let last, bytes > 0 else { fail("no certificate was made") }
    return (Double(count) / elapsed, last)
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "sign-rate":
    guard arguments.count == 3, let caType = CAKeyType(rawValue: arguments[1]), let seconds = Double(arguments[2]) else {
        fail("usage: sshca-bench sign-rate CA_TYPE SECONDS")
    }
    let (rate, last) = try signRate(caType: caType, seconds: seconds)
    // A benchmark of signatures that do not verify would measure nothing.
    guard last.verifySignature().isValid else { fail("the last certificate does not verify") }
    print(Int(rate.rounded()))
default:
    fail("usage: sshca-bench sign-rate CA_TYPE SECONDS")
}
