@testable import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
import SSHCrypto
@testable import Authority

@Suite("Certificate report")
struct ReportTests {
    static let ca = IssuerKeys.ca
    static let validAfter: UInt64 = 1_893_456_000

    /// A certificate with every kind of field, including an option whose data is not one string.
    func sample(validBefore: UInt64 = 1_893_542_400) throws -> Certificate {
        let body = CertificateBody(
            nonce: Data(repeating: 1, count: 32), publicKey: IssuerKeys.subject, serial: 77, type: .user,
            keyID: "alice@laptop", principals: ["alice", "deploy"], validAfter: Self.validAfter, validBefore: validBefore,
            criticalOptions: [.value("source-address", "10.0.0.0/8"), .value("force-command", "/bin/true")],
            extensions: [.flag("permit-pty"), .value("login@example.com", "root"), CertificateOption(name: "raw@example.com", data: Data([0xde, 0xad, 0x01]))],
            signatureKey: Self.ca.publicKey)
        return try Issuer(signer: OpenSSLSigner(key: Self.ca), configuration: Configuration()).sign(body)
    }

    @Test func fields() throws {
        // As `sshca inspect` sees it: read back from the bytes (options in wire order).
        let report = CertificateReport(try Certificate(blob: try sample().bytes))
        #expect(report.type == "user")
        #expect(report.certificateType == "ssh-ed25519-cert-v01@openssh.com")
        #expect(report.keyId == "alice@laptop")
        #expect(report.serial == 77)
        #expect(report.principals == ["alice", "deploy"])
        #expect(report.validAfter == Self.validAfter && report.validBefore == 1_893_542_400)
        #expect(report.criticalOptions.map(\.name) == ["force-command", "source-address"])
        #expect(report.criticalOptions.map(\.value) == ["/bin/true", "10.0.0.0/8"])
        #expect(report.extensions.map(\.name) == ["login@example.com", "permit-pty", "raw@example.com"])
        #expect(report.extensions.contains(CertificateReport.Option(name: "permit-pty", value: nil, rawHex: nil)))
        #expect(report.extensions.contains(CertificateReport.Option(name: "login@example.com", value: "root", rawHex: nil)))
        #expect(report.extensions.contains(CertificateReport.Option(name: "raw@example.com", value: nil, rawHex: "dead01")))
        #expect(report.publicKey == CertificateReport.Key(type: "ssh-ed25519", fingerprint: IssuerKeys.subject.fingerprint))
        #expect(report.signingCA == CertificateReport.Key(type: "ssh-ed25519", fingerprint: Self.ca.publicKey.fingerprint))
        #expect(report.signatureAlgorithm == "ssh-ed25519")
        #expect(report.signatureValid)
        #expect(report.signatureProblem == nil)
    }

    @Test func json() throws {
        let report = CertificateReport(try Certificate(blob: try sample().bytes))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let object = try #require(try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any])
        #expect(Set(object.keys) == [
            "type", "certificateType", "keyId", "serial", "principals", "validAfter", "validBefore",
            "criticalOptions", "extensions", "publicKey", "signingCA", "signatureAlgorithm", "signatureValid",
        ])
        #expect(object["keyId"] as? String == "alice@laptop")
        #expect((object["serial"] as? NSNumber)?.uint64Value == 77)
        #expect(object["principals"] as? [String] == ["alice", "deploy"])
        #expect((object["validBefore"] as? NSNumber)?.uint64Value == 1_893_542_400)
        #expect(object["signatureValid"] as? Bool == true)
        #expect((object["signingCA"] as? [String: String])?["fingerprint"] == Self.ca.publicKey.fingerprint)
        let critical = try #require(object["criticalOptions"] as? [[String: String]])
        #expect(critical == [["name": "force-command", "value": "/bin/true"], ["name": "source-address", "value": "10.0.0.0/8"]])
        let extensions = try #require(object["extensions"] as? [[String: String]])
        #expect(extensions.contains(["name": "permit-pty"]))
        #expect(extensions.contains(["name": "raw@example.com", "rawHex": "dead01"]))
        // forever fits the JSON number: 18446744073709551615.
        let forever = CertificateReport(try sample(validBefore: .max))
        let text = String(decoding: try encoder.encode(forever), as: UTF8.self)
        #expect(text.contains("\"validBefore\":18446744073709551615"))
    }

    @Test func invalidSignatureIsReported() throws {
        let certificate = try sample()
        var bytes = Array(certificate.bytes)
        bytes[bytes.count - 3] ^= 0x40
        let tampered = try Certificate(blob: bytes)
        let report = CertificateReport(tampered)
        #expect(!report.signatureValid)
        #expect(report.signatureProblem?.isEmpty == false)
        let encoder = JSONEncoder()
        let object = try #require(try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any])
        #expect(object["signatureValid"] as? Bool == false)
        #expect(object["signatureProblem"] as? String == report.signatureProblem)
        #expect(report.text(source: "x").contains("Signature: INVALID ("))
    }

    /// The text is laid out like `ssh-keygen -L`: the lines they share are identical (with times
    /// that do not depend on the local zone).
    @Test func textMatchesSSHKeygenListing() throws {
        let certificate = try sample(validBefore: .max)
        var body = certificate.body
        body.validAfter = 0
        let forever = try Issuer(signer: OpenSSLSigner(key: Self.ca), configuration: Configuration()).sign(body)
        let dir = try TempDir()
        let path = try dir.write("c-cert.pub", forever.openSSHLine() + "\n")
        let keygen = try run("ssh-keygen", ["-L", "-f", path]).stdoutText
        let ours = CertificateReport(try Certificate(blob: forever.bytes)).text(source: path)
        let keygenLines = keygen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let ourLines = ours.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(ourLines.first == "\(path):")
        for prefix in ["        Type:", "        Public key:", "        Signing CA:", "        Key ID:", "        Serial:", "        Valid:"] {
            let theirs = keygenLines.first { $0.hasPrefix(prefix) }
            let mine = ourLines.first { $0.hasPrefix(prefix) }
            #expect(mine != nil && mine == theirs, "\(prefix)")
        }
        #expect(ours.contains("        Valid: forever\n"))
        // Principals and option names in the same order.
        for name in ["alice", "deploy", "force-command /bin/true", "source-address 10.0.0.0/8", "permit-pty", "login@example.com"] {
            #expect(keygen.contains("                \(name)"), "\(name)")
            #expect(ours.contains("                \(name)"), "\(name)")
        }
        #expect(ours.contains("Signature: valid, by CA \(Self.ca.publicKey.fingerprint)"))
        #expect(ours.contains("raw@example.com (data dead01)"))
    }

    @Test func emptySectionsSayNone() throws {
        let body = CertificateBody(
            nonce: Data(count: 32), publicKey: IssuerKeys.subject, serial: 1, type: .host, keyID: "h",
            principals: [], validAfter: 0, validBefore: .max, criticalOptions: [], extensions: [],
            signatureKey: Self.ca.publicKey)
        let certificate = try Issuer(signer: OpenSSLSigner(key: Self.ca), configuration: Configuration()).sign(body)
        let text = CertificateReport(certificate).text(source: "(stdin)")
        #expect(text.contains("Type: ssh-ed25519-cert-v01@openssh.com host certificate\n"))
        #expect(text.contains("Principals: (none)\n"))
        #expect(text.contains("Critical Options: (none)\n"))
        #expect(text.contains("Extensions: (none)\n"))
    }
}
