// Every parser that reads bytes from outside, as fuzz targets. Built two ways:
// - normally: `sshca-fuzz TARGET FILE...` runs files through one target (the committed corpora
//   are replayed by the test suite this way: no input may crash a parser);
// - with -DFUZZING and -sanitize=fuzzer,address (scripts/fuzz): a libFuzzer binary whose target
//   is chosen by $SSHCA_FUZZ_TARGET.
import Authority
import HostSetup
import SSHCrypto
import SSHFormat
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "public-key": { bytes in
            guard let text = String(validating: bytes, as: UTF8.self) else { return }
            if let parsed = try? PublicKeyText(parsing: text) {
                // What parses must serialise and parse back to the same key.
                let again = try? PublicKey(blob: parsed.key.blob)
                precondition(again == parsed.key, "public key round trip")
            }
        },
        "certificate": { bytes in
            if let certificate = try? Certificate(blob: bytes) {
                precondition(certificate.bytes == Data(bytes), "a parsed certificate keeps its bytes")
                _ = certificate.verifySignature()
                _ = CertificateReport(certificate).text(source: "fuzz")
            }
            if let text = String(validating: bytes, as: UTF8.self) {
                _ = try? Certificate(parsingText: text)
            }
        },
        "krl": { bytes in
            guard let parsed = try? KRL.parse(bytes) else { return }
            // Re-encoding what we read must give a KRL that reads back the same.
            let encoded = parsed.krl.encoded()
            guard let again = try? KRL.parse(encoded) else { preconditionFailure("re-encoded KRL does not parse") }
            // (Sections that revoke nothing are dropped when writing.)
            let revoking = { (krl: KRL) in krl.certificates.filter { !$0.serials.isEmpty || !$0.keyIDs.isEmpty }.map(\.serials) }
            precondition(revoking(again.krl) == revoking(parsed.krl), "KRL serial round trip")
            _ = try? KRLInspection(bytes: bytes, source: "fuzz")
        },
        "sshsig": { bytes in
            if let signature = try? SSHSig(blob: bytes) {
                _ = signature.verify(message: [1, 2, 3], namespace: signature.namespace)
                precondition((try? SSHSig(blob: signature.blob)) == signature, "SSHSIG round trip")
            }
            if let text = String(validating: bytes, as: UTF8.self) { _ = try? SSHSig(armored: text) }
        },
        "config": { bytes in
            guard let text = String(validating: bytes, as: UTF8.self) else { return }
            _ = try? ConfigText(parsing: text)
            if let configuration = try? Configuration(parsing: text) {
                precondition((try? Configuration(parsing: configuration.renderedFile())) == configuration, "configuration round trip")
            }
        },
        "sshd-config": { bytes in
            guard let text = String(validating: bytes, as: UTF8.self) else { return }
            let file = SSHDConfigFile(path: "/nonexistent/sshd_config", text: text)
            _ = file.dropInDirectory
            let block = file.withManagedBlock("TrustedUserCAKeys /x\n")
            let trimmed = { (text: String) in text.trimmingCharacters(in: "\r\n") }
            precondition(trimmed(SSHDConfigFile(path: file.path, text: block).textWithoutManagedBlock()) == trimmed(file.textWithoutManagedBlock()),
                         "managed block insert/remove round trip")
        },
        // The service's request parsing: the JSON bodies, the fields parsed out of them, the
        // Authorization header forms, and the policy deciding on what parsed.
        "api-request": { bytes in
            let data = Data(bytes)
            let decoder = JSONDecoder()
            if let request = try? decoder.decode(ServiceAPI.CertificateRequest.self, from: data) {
                if let validity = request.validity { _ = try? DurationText.seconds(validity) }
                if let key = try? PublicKeyText(parsing: request.publicKey).key {
                    var role = Role(name: "fuzz")
                    role.principals = ["{user}", "*.example.com", "deploy"]
                    let decision = IssuancePolicy(configuration: Configuration()).decide(
                        PolicyRequest(publicKey: key, type: request.type == "host" ? .host : .user, principals: request.principals,
                                      validity: request.validity.flatMap { try? DurationText.seconds($0) }),
                        applicant: Applicant(name: "fuzz", kind: .user, role: role), now: 1_700_000_000)
                    if case .success(let allowed) = decision {
                        precondition(allowed.principals.allSatisfy { ["fuzz", "deploy"].contains($0) || $0.hasSuffix(".example.com") },
                                     "the policy allowed a principal its role does not name")
                    }
                }
            }
            if let request = try? decoder.decode(ServiceAPI.RevocationRequest.self, from: data), let key = request.publicKey {
                _ = try? PublicKeyText(parsing: key)
            }
            _ = try? decoder.decode(ServiceAPI.ChallengeRequest.self, from: data)
            if let text = String(validating: bytes, as: UTF8.self) {
                if let credential = ServiceAPI.SignatureCredential(headerValue: text) {
                    precondition(ServiceAPI.SignatureCredential(headerValue: credential.headerValue) == credential, "Authorization header round trip")
                    if let blob = Data(base64Encoded: credential.signature) { _ = try? SSHSig(blob: blob) }
                }
                if let token = BearerToken(text: text) { precondition(BearerToken(text: token.text) == token, "token round trip") }
            }
        },
    ]
}

#if FUZZING
nonisolated(unsafe) var selected: (@Sendable ([UInt8]) -> Void)? = nil

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point under this name; hand control to libFuzzer.
@_cdecl("sshca_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if selected == nil {
        guard let name = Environment.value("SSHCA_FUZZ_TARGET"), let target = FuzzTargets.all[name] else {
            fatalError("set SSHCA_FUZZ_TARGET to one of: \(FuzzTargets.all.keys.sorted().joined(separator: ", "))")
        }
        selected = target
    }
    selected!(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
struct Replay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTargets.all[name] else {
            print("usage: sshca-fuzz TARGET FILE...   (targets: \(FuzzTargets.all.keys.sorted().joined(separator: ", ")))")
            exit(64)
        }
        for file in arguments.dropFirst() {
            target(try Files.read(file, maximumBytes: 1 << 24, what: "input"))
        }
        print("\(name): \(arguments.count - 1) input(s), no crash")
    }
}
#endif
