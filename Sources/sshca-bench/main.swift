import Common
// In-process measurements for scripts/bench. Kept out of the `sshca` binary so the CLI stays
// small; it calls the same library functions the CLI and the service call.
import Authority
import Ledger
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
case "krl-pattern":
    // krl-pattern PATTERN CA_PUB_FILE OUT SPEC_OUT: the serial patterns of the KRL benchmark,
    // written as our KRL and as an ssh-keygen -k spec file.
    guard arguments.count == 5 else { fail("usage: sshca-bench krl-pattern dense|third|sparse CA_PUB OUT SPEC") }
    let caKey = try KeyFiles.readPublicKey(arguments[2]).key
    let serials = try serialPattern(arguments[1])
    let krl = KRL(version: 1, generatedDate: UInt64(time(nil)), comment: "bench",
                  certificates: [CertificateRevocations(caKey: caKey, serials: SerialSet(serials: serials))])
    try Files.writeAtomically(arguments[3], krl.encoded(), mode: 0o644)
    var spec = "serial: " + serials.map(String.init).joined(separator: "\nserial: ") + "\n"
    if arguments[1] == "dense" { spec = "serial: \(serials.first!)-\(serials.last!)\n" }
    try Files.writeAtomically(arguments[4], Array(spec.utf8), mode: 0o644)
case "krl-fill":
    // krl-fill PATTERN HOME SPEC_OUT: a new CA home whose ledger revokes the pattern's serials,
    // and the same serials as an ssh-keygen -k spec file (one "serial: N" line each).
    guard arguments.count == 4 else { fail("usage: sshca-bench krl-fill dense|third|sparse HOME SPEC") }
    let serials = try serialPattern(arguments[1])
    let home = try await CAHome.create(at: arguments[2], CAHome.Creation())
    try home.openLedger().revokeSerialsBulk(serials, caKey: try home.publicKey(.user), reason: "benchmark", by: "bench", now: UInt64(time(nil)))
    let spec = serials.map { "serial: \($0)\n" }.joined()
    try Files.writeAtomically(arguments[3], Array(spec.utf8), mode: 0o644)
case "ledger-fill":
    // ledger-fill HOME COUNT: a new CA home with COUNT certificates issued (real signatures),
    // principals user0..user9999 and one principal "root" on every 1000th.
    guard arguments.count == 3, let count = Int(arguments[2]) else { fail("usage: sshca-bench ledger-fill HOME COUNT") }
    let home = try await CAHome.create(at: arguments[1], CAHome.Creation())
    let authority = try CertificateAuthority(home: home)
    let ledger = try home.openLedger()
    let issuer = Issuer(signer: try home.signer(.user, passphrase: .none, configuration: authority.configuration), configuration: authority.configuration)
    let subject = try PrivateKey.generate(.ed25519).publicKey
    let now = UInt64(time(nil))
    let start = monotonicSeconds()
    var done = 0
    while done < count {
        let batch = min(10_000, count - done)
        // Through the ledger's one issuance write, 10,000 to a transaction.
        let requests = (0..<batch).map { _ in
            GroupIssuance(requestedBy: Requester(name: "bench", channel: "bench")) { serial in
                let i = Int(serial)
                var principals = ["user\(i % 10_000)"]
                if i % 1000 == 0 { principals.append("root") }
                var request = CertificateRequest(publicKey: subject, keyID: "bench-\(i)", principals: principals)
                request.serial = serial
                return try issuer.issue(request, now: now)
            }
        }
        for result in try ledger.issueGroup(requests, now: now) { _ = try result.get() }
        done += batch
        if done % 100_000 == 0 { fputsErr("  \(done) certificates issued\n") }
    }
    print(Int((Double(count) / (monotonicSeconds() - start)).rounded()))
case "issue-rate":
    // issue-rate HOME SECONDS: certificates per second through the full issuance path, one
    // durable transaction each (as `sshca sign` and the service do).
    guard arguments.count == 3, let seconds = Double(arguments[2]) else { fail("usage: sshca-bench issue-rate HOME SECONDS") }
    print(Int(try await issueRate(home: arguments[1], seconds: seconds).rounded()))
default:
    fail("usage: sshca-bench sign-rate | krl-pattern | krl-fill | ledger-fill | issue-rate ...")
}

/// The loop runs in a function of its own, off the main actor (top-level code is on it): each
/// `issue` called from the main actor would hop to the task pool and back, two thread switches
/// per certificate that neither `sshca sign` (one call) nor the service (on the pool) makes.
func issueRate(home: String, seconds: Double) async throws -> Double {
    let authority = try CertificateAuthority(home: CAHome(path: home))
    let subject = try PrivateKey.generate(.ed25519).publicKey
    let request = CertificateRequest(publicKey: subject, keyID: "rate", principals: ["rate"])
    let requester = Requester(name: "bench", channel: "bench")
    var count = 0
    let start = monotonicSeconds()
    while monotonicSeconds() - start < seconds {
        _ = try await authority.issue(request, requestedBy: requester, passphrase: .none)
        count += 1
    }
    return Double(count) / (monotonicSeconds() - start)
}

func fputsErr(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// The three revocation patterns of the KRL benchmark, 1,000,000 serials each.
func serialPattern(_ name: String) throws -> [UInt64] {
    switch name {
    case "dense": return Array(1...1_000_000)
    case "third": return (0..<1_000_000).map { 1 + 3 * UInt64($0) }
    case "sparse":
        // 1% of 1...100,000,000, from a fixed-seed generator so runs are comparable.
        var state: UInt64 = 0x9E3779B97F4A7C15
        var chosen = Set<UInt64>()
        while chosen.count < 1_000_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            chosen.insert(1 + (state >> 11) % 100_000_000)
        }
        return chosen.sorted()
    default:
        fail("unknown pattern \(name)")
    }
}
