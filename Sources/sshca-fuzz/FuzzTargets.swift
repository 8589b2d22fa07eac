import Common
// Every parser that reads bytes from outside, as fuzz targets. Built two ways:
// - normally: `sshca-fuzz TARGET FILE...` runs files through one target (the committed corpora
//   are replayed by the test suite this way: no input may crash a parser);
// - with -DFUZZING and -sanitize=fuzzer,address (scripts/fuzz): a libFuzzer binary whose target
//   is chosen by $SSHCA_FUZZ_TARGET.
import Authority
import Client
import HostSetup
import HummingbirdCore
import Ledger
import Service
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
                // Written again from the parsed fields (through the one signable-bytes writer):
                // the same bytes, unless the input's options were out of order (written sorted).
                let body = certificate.body
                let again = Certificate(body: body, signature: certificate.signature)
                let ordered = CertificateOption.sortedForWriting(body.criticalOptions) == body.criticalOptions
                    && CertificateOption.sortedForWriting(body.extensions) == body.extensions
                if ordered {
                    precondition(again.bytes == Data(bytes), "certificate re-encoded from its fields differs from its input")
                    precondition(again.signedBytes == certificate.signedBytes, "certificate's signed bytes differ when re-encoded")
                } else {
                    var sorted = body
                    sorted.criticalOptions = CertificateOption.sortedForWriting(body.criticalOptions)
                    sorted.extensions = CertificateOption.sortedForWriting(body.extensions)
                    precondition((try? Certificate(blob: again.bytes))?.body == sorted, "re-encoded certificate reads back different fields")
                }
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
            precondition(normalised(again.krl) == normalised(parsed.krl), "KRL round trip: a section reads back different")
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
        // `sshca login` reads back the login key it wrote (an unencrypted Ed25519 openssh-key-v1).
        "private-key": { bytes in
            guard let text = String(validating: bytes, as: UTF8.self),
                  let key = try? PrivateKeyComponents(openSSHEd25519File: text) else { return }
            let written = key.openSSHPrivateKeyFile(comment: "fuzz", checkInt: 7)
            guard case .ed25519(let seed, let pk)? = try? PrivateKeyComponents(openSSHEd25519File: written),
                  case .ed25519(let seed0, let pk0) = key else { preconditionFailure("a written private key does not read back") }
            precondition(seed == seed0 && pk == pk0, "private key round trip")
        },
        // ssh-agent's answers: the identity list and a signature.
        "agent-reply": { bytes in
            if let identities = try? SSHAgentClient.identities(reply: bytes) {
                precondition(identities.count <= 1024, "more identities than the bound")
                for identity in identities { _ = try? PublicKey(blob: identity.key) }
            }
            if let signature = try? SSHAgentClient.signature(reply: bytes) {
                precondition((try? SSHSignature(blob: signature.blob)) == signature, "agent signature round trip")
            }
        },
        // The service's JSON answers as the client reads them (first byte: the HTTP status),
        // and what login then checks of an issued certificate.
        "service-answer": { bytes in
            guard let first = bytes.first else { return }
            let statuses = [200, 201, 304, 400, 401, 403, 404, 409, 413, 429, 500, 503]
            let reply = ServiceReply(status: statuses[Int(first) % statuses.count], body: Array(bytes.dropFirst()))
            let url = "https://ca.example.com"
            func decodes<T: Decodable>(_ type: T.Type) -> T? {
                do { return try ServiceClient.decode(type, reply, url: url) } catch {
                    precondition(!error.reason.isEmpty, "an answer refused without a reason")
                    return nil
                }
            }
            if let challenge = decodes(ServiceAPI.Challenge.self) { _ = Array(challenge.nonce.utf8) }
            if let issued = decodes(ServiceAPI.IssuedCertificate.self), let parsed = try? Certificate(parsingText: issued.certificate) {
                _ = try? Login.check(issued.certificate, caKey: parsed.body.signatureKey, publicKey: parsed.body.publicKey)
            }
            _ = decodes(ServiceAPI.Revocation.self)
            if let list = decodes(ServiceAPI.CertificateList.self) { _ = list.certificates.map(\.serial) }
            _ = decodes(CertificateSummary.self)
            _ = decodes([ServiceAPI.Host].self)
            _ = decodes(ServiceAPI.Health.self)
            _ = try? PublicKeyText(parsing: String(decoding: reply.body, as: UTF8.self))
        },
        // `sshd -T` output, as host setup and doctor read it.
        "sshd-t-output": { bytes in
            guard let text = String(validating: bytes, as: UTF8.self) else { return }
            for setting in SSHDCheck.settings(dump: text) {
                precondition(!setting.keyword.isEmpty && setting.keyword == setting.keyword.lowercased(), "sshd -T keyword not lower case")
                precondition(!setting.keyword.contains(" "), "sshd -T keyword holds the separator")
            }
        },
        // The query string of GET /v1/certificates.
        "api-query": { bytes in
            guard let text = String(validating: bytes, as: UTF8.self) else { return }
            let uri = URI("/v1/certificates?" + text)
            do throws(ServiceError) {
                let query = try CertificateListing.query(uri)
                precondition(query.limit.map { (1...CertificateListing.maximumLimit).contains($0) } ?? false, "a limit outside its bounds")
            } catch {
                precondition(error.status == 400 && !error.message.isEmpty, "a query refused with another status")
            }
        },
    ]

    /// A KRL as it reads back after writing: sections that revoke nothing dropped, key ids sorted
    /// and unique, key and fingerprint lists as sets.
    static func normalised(_ krl: KRL) -> String {
        let certificates = krl.certificates.filter { !$0.serials.isEmpty || !$0.keyIDs.isEmpty }.map { section in
            "\(section.caKey?.fingerprint ?? "any CA") \(Array(section.serials.runs)) \(Set(section.keyIDs).sorted())"
        }
        let sets = [krl.explicitKeys, krl.sha1Fingerprints, krl.sha256Fingerprints].map { Set($0).sorted { $0.lexicographicallyPrecedes($1) } }
        return "\(krl.version) \(krl.generatedDate) \(krl.flags) \(krl.comment.debugDescription) \(certificates) \(sets)"
    }
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
