@testable import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
import SSHCrypto
@testable import Authority

/// Keys shared by the issuance tests.
enum IssuerKeys {
    static let ca = try! PrivateKey.generate(.ed25519)
    static let ecdsaCA = try! PrivateKey.generate(.ecdsaP256)
    static let subject = try! PrivateKey.generate(.ed25519).publicKey
    static let issuer = Issuer(signer: OpenSSLSigner(key: ca), configuration: Configuration())
    /// Made by ssh-keygen: a 1024-bit RSA key and an sk key.
    static let external: [String: PublicKey] = {
        let dir = try! TempDir()
        var keys: [String: PublicKey] = [:]
        for (name, type, bits) in [("rsa1024", "rsa", 1024), ("sk", "ed25519-sk", 0), ("rsa2048", "rsa", 2048)] {
            let line = try! sshKeygenKey(in: dir, name: name, type: type, bits: bits == 0 ? nil : bits)
            keys[name] = try! PublicKeyText(parsing: line).key
        }
        return keys
    }()
}

@Suite("Issuance rules and the issuer")
struct IssuerTests {
    static let now: UInt64 = 1_900_000_000

    func request(_ change: (inout CertificateRequest) -> Void = { _ in }) -> CertificateRequest {
        var r = CertificateRequest(publicKey: IssuerKeys.subject, keyID: "alice@laptop", principals: ["alice"])
        change(&r)
        return r
    }

    func body(_ request: CertificateRequest, configuration: Configuration = Configuration()) throws -> CertificateBody {
        try Issuer.body(for: request, configuration: configuration, signatureKey: IssuerKeys.ca.publicKey, now: Self.now)
    }

    func refusal(_ change: (inout CertificateRequest) -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> SSHCAError? {
        let error = authorityError({ _ = try body(request(change)) }, sourceLocation: sourceLocation)
        #expect(error?.code == .badInput, sourceLocation: sourceLocation)
        return error
    }

    // MARK: principals

    @Test func principalRules() throws {
        #expect(refusal { $0.principals = [] }?.reason.contains("no principals") == true)
        #expect(refusal { $0.principals = (0..<257).map { "u\($0)" } }?.reason.contains("256") == true)
        #expect(try body(request { $0.principals = (0..<256).map { "u\($0)" } }).principals.count == 256)
        #expect(refusal { $0.principals = ["alice", ""] }?.reason.contains("empty") == true)
        #expect(refusal { $0.principals = ["alice,bob"] }?.reason.contains("comma") == true)
        #expect(refusal { $0.principals = ["ali ce"] }?.reason.contains("whitespace") == true)
        #expect(refusal { $0.principals = ["alice\t"] } != nil)
        #expect(refusal { $0.principals = ["ali\u{00A0}ce"] }?.reason.contains("whitespace") == true)
        #expect(refusal { $0.principals = ["ali\u{0}ce"] }?.reason.contains("control character") == true)
        #expect(refusal { $0.principals = ["ali\nce"] }?.reason.contains("\\xa") == true)
        #expect(refusal { $0.principals = ["ali\u{7f}ce"] } != nil)
        #expect(refusal { $0.principals = ["alice", "bob", "alice"] }?.reason.contains("twice") == true)
        #expect(refusal { $0.principals = [String(repeating: "a", count: 1025)] }?.reason.contains("1024") == true)
        let fine = try body(request { $0.principals = ["alice", "bob", "web1.example.com", "grüße", "*.example.com", String(repeating: "a", count: 1024)] })
        #expect(fine.principals.count == 6)
    }

    // MARK: key id

    @Test func keyIDRules() throws {
        #expect(refusal { $0.keyID = "" }?.reason.contains("empty") == true)
        #expect(refusal { $0.keyID = "a\u{0}b" }?.reason.contains("NUL") == true)
        #expect(refusal { $0.keyID = "line\nbreak" } != nil)
        #expect(refusal { $0.keyID = "bell\u{7}" } != nil)
        #expect(refusal { $0.keyID = "del\u{7f}" } != nil)
        #expect(refusal { $0.keyID = String(repeating: "k", count: 1025) }?.reason.contains("1024") == true)
        // Spaces, commas and Unicode are fine in a key id.
        #expect(try body(request { $0.keyID = "Alice Smith, laptop ✓" }).keyID == "Alice Smith, laptop ✓")
        #expect(try body(request { $0.keyID = String(repeating: "k", count: 1024) }).keyID.count == 1024)
    }

    // MARK: extensions

    @Test func extensionNames() throws {
        for name in IssuanceRules.knownFlagExtensions {
            try IssuanceRules.checkExtensionName(name, hasValue: false)
        }
        try IssuanceRules.checkExtensionName("login@example.com", hasValue: true)
        try IssuanceRules.checkExtensionName("login@example.com", hasValue: false)

        let typo = authorityError { try IssuanceRules.checkExtensionName("permit-x11-forwarding", hasValue: false) }
        #expect(typo?.code == .badInput)
        #expect(typo?.reason.contains("did you mean permit-X11-forwarding?") == true)
        let typo2 = authorityError { try IssuanceRules.checkExtensionName("PERMIT-PTY", hasValue: false) }
        #expect(typo2?.reason.contains("did you mean permit-pty?") == true)
        let unknown = authorityError { try IssuanceRules.checkExtensionName("permit-everything", hasValue: false) }
        #expect(unknown?.reason.contains("name@your-domain") == true)
        #expect(unknown?.reason.contains("did you mean") == false)
        let valued = authorityError { try IssuanceRules.checkExtensionName("permit-pty", hasValue: true) }
        #expect(valued?.reason.contains("flag") == true)
        #expect(authorityError { try IssuanceRules.checkExtensionName("", hasValue: false) } != nil)
        #expect(authorityError { try IssuanceRules.checkExtensionName("a b@example.com", hasValue: false) } != nil)
        #expect(authorityError { try IssuanceRules.checkExtensionName("a,b@example.com", hasValue: false) } != nil)

        // Through the issuer.
        #expect(refusal { $0.extensions = [.flag("permit-x11-forwarding")] }?.reason.contains("did you mean permit-X11-forwarding?") == true)
        #expect(refusal { $0.extensions = [.value("permit-pty", "yes")] }?.reason.contains("flag") == true)
        let custom = try body(request { $0.extensions = [.value("login@example.com", "root"), .flag("marker@example.com")] })
        #expect(custom.extensions.contains(.value("login@example.com", "root")))
        #expect(custom.extensions.contains(.flag("marker@example.com")))
    }

    @Test func defaultExtensionsPresentAndAbsent() throws {
        let withDefaults = try body(request())
        #expect(Set(withDefaults.extensions.map(\.name)) == Set(CertificateOption.defaultUserExtensions))
        #expect(withDefaults.extensions.allSatisfy { $0.isFlag })

        let without = try body(request { $0.includeDefaultExtensions = false })
        #expect(without.extensions.isEmpty)
        let onlyPTY = try body(request { $0.includeDefaultExtensions = false; $0.extensions = [.flag("permit-pty")] })
        #expect(onlyPTY.extensions == [.flag("permit-pty")])

        // A default asked for again is not duplicated.
        let again = try body(request { $0.extensions = [.flag("permit-pty"), .value("x@example.com", "1"), .value("x@example.com", "2")] })
        #expect(again.extensions.map(\.name).count == Set(again.extensions.map(\.name)).count)
        #expect(again.extensions.count == 6)
        #expect(again.extensions.contains(.value("x@example.com", "2")))

        // The configured list replaces ssh-keygen's.
        var configuration = Configuration()
        configuration.userExtensions = ["permit-pty", "login@example.com"]
        #expect(try body(request(), configuration: configuration).extensions == [.flag("login@example.com"), .flag("permit-pty")])
    }

    /// PROTOCOL.certkeys: a name appears at most once. Whatever the configuration says, an issued
    /// certificate never carries the same extension twice.
    @Test func configuredDuplicatesNeverReachACertificate() throws {
        var configuration = Configuration()
        configuration.userExtensions = ["permit-pty", "permit-pty"]
        do {
            let b = try body(request(), configuration: configuration)
            #expect(b.extensions.map(\.name) == ["permit-pty"])
        } catch let error as SSHCAError {
            #expect(error.code == .badConfig || error.code == .badInput)
        }
    }

    // MARK: critical options

    @Test func sourceAddresses() throws {
        let good: [[String]] = [
            ["192.0.2.1"], ["10.0.0.0/8"], ["0.0.0.0/0"], ["192.0.2.7/32"], ["2001:db8::1"], ["2001:db8::/32"],
            ["::/0"], ["::1/128"], ["::ffff:192.0.2.1"], ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"],
        ]
        for list in good {
            try IssuanceRules.checkSourceAddresses(list)
        }
        let bad: [[String]] = [
            [], [""], ["garbage"], ["10.0.0.0/33"], ["2001:db8::/129"], ["10.0.0.0/"], ["/8"], ["10.0.0.0/-1"],
            ["10.0.0.0/+8"], ["10.0.0.0/8/8"], ["10.0.0.256"], [" 10.0.0.1"], ["10.0.0.1 "], ["10.0.0.0/8", "nope"],
            ["example.com"], ["10.0.0.*"], ["10.0.0.0/ 8"], ["10.0.0.0/08x"], ["10.1"], ["2001:db8:::1"],
        ]
        for list in bad {
            let error = authorityError { try IssuanceRules.checkSourceAddresses(list) }
            #expect(error?.code == .badInput, "\(list)")
        }
        // Through the issuer: joined with commas and nested as a string.
        let b = try body(request { $0.sourceAddresses = ["10.0.0.0/8", "2001:db8::/32"] })
        #expect(b.criticalOptions == [.value("source-address", "10.0.0.0/8,2001:db8::/32")])
        #expect(refusal { $0.sourceAddresses = ["10.0.0.0/33"] }?.reason.contains("10.0.0.0/33") == true)
    }

    @Test func forceCommand() throws {
        #expect(refusal { $0.forceCommand = "" }?.reason.contains("empty") == true)
        #expect(refusal { $0.forceCommand = "  \t " }?.reason.contains("empty") == true)
        #expect(refusal { $0.forceCommand = "ls\u{0}rm" }?.reason.contains("NUL") == true)
        let b = try body(request { $0.forceCommand = "/usr/bin/backup --all"; $0.verifyRequired = true })
        #expect(b.criticalOptions.contains(.value("force-command", "/usr/bin/backup --all")))
        #expect(b.criticalOptions.contains(.flag("verify-required")))
    }

    @Test func hostCertificates() throws {
        let host = try body(request { $0.type = .host; $0.principals = ["web1.example.com"] })
        #expect(host.type == .host)
        #expect(host.extensions.isEmpty)
        #expect(host.criticalOptions.isEmpty)
        #expect(host.validBefore == Self.now + Configuration().hostValidity)
        #expect(refusal { $0.type = .host; $0.forceCommand = "ls" }?.reason.contains("critical options") == true)
        #expect(refusal { $0.type = .host; $0.sourceAddresses = ["10.0.0.1"] }?.reason.contains("critical options") == true)
        #expect(refusal { $0.type = .host; $0.verifyRequired = true }?.reason.contains("critical options") == true)
        #expect(refusal { $0.type = .host; $0.extensions = [.flag("permit-pty")] }?.reason.contains("no extensions") == true)
        #expect(refusal { $0.type = .host; $0.publicKey = IssuerKeys.external["sk"]! }?.reason.contains("security key") == true)
        #expect(refusal { $0.type = CertificateType(rawValue: 3) } != nil)
        // sk keys are fine as user keys.
        #expect(try body(request { $0.publicKey = IssuerKeys.external["sk"]! }).publicKey.isSecurityKey)
    }

    @Test func subjectKeyStrength() throws {
        let weak = refusal { $0.publicKey = IssuerKeys.external["rsa1024"]! }
        #expect(weak?.reason.contains("1024") == true)
        _ = try body(request { $0.publicKey = IssuerKeys.external["rsa2048"]! })
        var strict = Configuration()
        strict.minimumRSABits = 3072
        let error = authorityError { _ = try body(request { $0.publicKey = IssuerKeys.external["rsa2048"]! }, configuration: strict) }
        #expect(error?.code == .badInput)
    }

    // MARK: serial and validity

    @Test func serials() throws {
        #expect(refusal { $0.serial = 0 }?.reason.contains("serial 0") == true)
        #expect(try body(request { $0.serial = 1 }).serial == 1)
        #expect(try body(request { $0.serial = .max }).serial == .max)
        let random = try (0..<50).map { _ in try body(request()).serial }
        #expect(random.allSatisfy { $0 != 0 && $0 < 1 << 63 })
        #expect(Set(random).count == random.count)
    }

    @Test func validity() throws {
        let d = try body(request())
        #expect(d.validAfter == Self.now - 300)
        #expect(d.validBefore == Self.now + 86400)
        var configuration = Configuration()
        configuration.userValidity = 16 * 3600
        configuration.hostValidity = 30 * 86400
        configuration.backdate = 60
        let u = try body(request(), configuration: configuration)
        #expect(u.validAfter == Self.now - 60 && u.validBefore == Self.now + 57600)
        let h = try body(request { $0.type = .host }, configuration: configuration)
        #expect(h.validAfter == Self.now - 60 && h.validBefore == Self.now + 2_592_000)
        let explicit = try body(request { $0.validity = ValidityWindow(validAfter: 10, validBefore: 20) })
        #expect(explicit.validAfter == 10 && explicit.validBefore == 20)
        #expect(try body(request { $0.validity = .forever }).validBefore == .max)
        #expect(refusal { $0.validity = ValidityWindow(validAfter: 20, validBefore: 20) } != nil)
        #expect(refusal { $0.validity = ValidityWindow(validAfter: 21, validBefore: 20) } != nil)
    }

    @Test func nonceAndSignatureKey() throws {
        let fixed = try Issuer.body(for: request(), configuration: Configuration(), signatureKey: IssuerKeys.ca.publicKey,
                                    now: Self.now, nonce: Array(repeating: 7, count: 32))
        #expect(fixed.nonce == Data(repeating: 7, count: 32))
        let a = try body(request()), b = try body(request())
        #expect(a.nonce.count == 32 && a.nonce != b.nonce)
        #expect(a.signatureKey == IssuerKeys.ca.publicKey)
        #expect(a.publicKey == IssuerKeys.subject)
    }

    // MARK: signing

    @Test func issuedCertificateVerifiesAndSSHKeygenAcceptsIt() throws {
        for (issuer, caKey) in [(IssuerKeys.issuer, IssuerKeys.ca), (Issuer(signer: OpenSSLSigner(key: IssuerKeys.ecdsaCA), configuration: Configuration()), IssuerKeys.ecdsaCA)] {
            let req = request {
                $0.principals = ["alice", "deploy"]
                $0.serial = 4242
                $0.forceCommand = "/bin/true"
                $0.sourceAddresses = ["192.0.2.0/24", "2001:db8::/32"]
                $0.extensions = [.value("login@example.com", "root")]
                $0.validity = ValidityWindow(validAfter: 1_893_456_000, validBefore: 1_893_542_400)
            }
            let certificate = try issuer.issue(req, now: Self.now)
            #expect(certificate.verifySignature() == .valid)
            #expect(certificate.body.signatureKey == caKey.publicKey)
            let reparsed = try Certificate(blob: certificate.bytes)
            #expect(reparsed.bytes == certificate.bytes)
            #expect(reparsed.verifySignature() == .valid)

            let dir = try TempDir()
            let path = try dir.write("id-cert.pub", KeyFiles.certificateLine(certificate, comment: "alice@laptop"))
            let listing = try run("ssh-keygen", ["-L", "-f", path], environment: ["TZ": "UTC"]).stdoutText
            #expect(listing.contains("Key ID: \"alice@laptop\""))
            #expect(listing.contains("Serial: 4242"))
            #expect(listing.contains("Valid: from 2030-01-01T00:00:00 to 2030-01-02T00:00:00"))
            #expect(listing.contains("force-command /bin/true"))
            #expect(listing.contains("source-address 192.0.2.0/24,2001:db8::/32"))
            #expect(listing.contains("Signing CA: \(caKey.publicKey.shortName) \(caKey.publicKey.fingerprint)"))
            for name in CertificateOption.defaultUserExtensions {
                #expect(listing.contains("                \(name)\n"), "\(name)")
            }
            let principals = listing.components(separatedBy: "Principals: \n").last ?? ""
            #expect(principals.hasPrefix("                alice\n                deploy\n"))
        }
    }

    /// What the issuer returns is the certificate its bytes say: reading the bytes back gives an
    /// equal value (same body, options in the order they are written).
    @Test func issuedCertificateEqualsItsParsedForm() throws {
        let req = request {
            $0.forceCommand = "/bin/true"
            $0.sourceAddresses = ["10.0.0.0/8"]
            $0.extensions = [.value("login@example.com", "root")]
        }
        let certificate = try IssuerKeys.issuer.issue(req, now: Self.now)
        let parsed = try Certificate(blob: certificate.bytes)
        #expect(parsed.bytes == certificate.bytes)
        #expect(parsed.body.extensions == certificate.body.extensions)
        #expect(parsed.body.criticalOptions == certificate.body.criticalOptions)
        #expect(parsed == certificate)
    }

    @Test func hostCertificateAcceptedBySSHKeygen() throws {
        let certificate = try IssuerKeys.issuer.issue(request { $0.type = .host; $0.principals = ["web1.example.com", "web1"] }, now: Self.now)
        let dir = try TempDir()
        let path = try dir.write("host-cert.pub", certificate.openSSHLine() + "\n")
        let listing = try run("ssh-keygen", ["-L", "-f", path]).stdoutText
        #expect(listing.contains("host certificate"))
        #expect(listing.contains("Critical Options: (none)"))
        #expect(listing.contains("Extensions: (none)"))
    }

    @Test func signRefusesABodyForAnotherCA() throws {
        var b = try body(request())
        b.signatureKey = IssuerKeys.ecdsaCA.publicKey
        let error = authorityError { _ = try IssuerKeys.issuer.sign(b) }
        #expect(error?.code == .key)
        #expect(error?.reason.contains(IssuerKeys.ecdsaCA.publicKey.fingerprint) == true)
        // issue() checks the rules before it signs.
        let refused = authorityError { _ = try IssuerKeys.issuer.issue(request { $0.principals = [] }, now: Self.now) }
        #expect(refused?.code == .badInput)
    }

    @Test func randomSerialsAreNonZero63Bit() {
        let serials = (0..<1000).map { _ in Issuer.randomSerial() }
        #expect(serials.allSatisfy { $0 > 0 && $0 >> 63 == 0 })
        #expect(Set(serials).count == serials.count)
    }
}
