import Foundation
import Testing
import TestSupport
@testable import SSHFormat

/// Certificates made by `ssh-keygen -s`, once per run.
final class CertificateFixture: Sendable {
    let dir: TempDir
    /// The certificate with every kind of field set (see init).
    let fullLine: String
    let hostLine: String
    let rsaCALine: String
    /// One default user certificate per zoo key type.
    let perKeyType: [String: String]
    let caLine: String
    let rsaCAKeyLine: String
    let userLine: String

    static let shared = try! CertificateFixture()

    static let validAfter: UInt64 = 1_893_456_000 // 2030-01-01T00:00:00Z
    static let validBefore: UInt64 = 1_896_179_696 // 2030-02-01T12:34:56Z

    private init() throws {
        dir = try TempDir(lingering: true)
        caLine = try sshKeygenKey(in: dir, name: "ca", type: "ed25519", comment: "the ca")
        rsaCAKeyLine = try sshKeygenKey(in: dir, name: "rsaca", type: "rsa", bits: 2048, comment: "rsa ca")
        userLine = try sshKeygenKey(in: dir, name: "user", type: "ed25519", comment: "user comment")
        try run("ssh-keygen", [
            "-q", "-s", dir.file("ca"), "-I", "key id 1", "-n", "alice,bob", "-z", "12345",
            "-V", "20300101000000Z:20300201123456Z", "-O", "clear",
            "-O", "force-command=/bin/echo hi", "-O", "source-address=10.0.0.0/8,::1",
            "-O", "extension:foo@example.com=bar", "-O", "permit-pty", "-O", "permit-X11-forwarding",
            "-O", "permit-agent-forwarding", dir.file("user.pub"),
        ])
        fullLine = try dir.readText("user-cert.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        try FileManager.default.copyItem(atPath: dir.file("user.pub"), toPath: dir.file("host.pub"))
        try run("ssh-keygen", ["-q", "-s", dir.file("ca"), "-h", "-I", "web1", "-n", "web1.example.com,web1", "-z", "7", dir.file("host.pub")])
        hostLine = try dir.readText("host-cert.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        try FileManager.default.copyItem(atPath: dir.file("user.pub"), toPath: dir.file("viarsa.pub"))
        try run("ssh-keygen", ["-q", "-s", dir.file("rsaca"), "-t", "rsa-sha2-512", "-I", "via rsa", "-n", "carol", dir.file("viarsa.pub")])
        rsaCALine = try dir.readText("viarsa-cert.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        var perKeyType: [String: String] = [:]
        for name in KeyZoo.names {
            let pub = dir.file("zoo-\(name).pub")
            try FileManager.default.copyItem(atPath: KeyZoo.shared.publicPath(name), toPath: pub)
            try run("ssh-keygen", ["-q", "-s", dir.file("ca"), "-I", "zoo \(name)", "-n", "zoo", pub])
            perKeyType[name] = try dir.readText("zoo-\(name)-cert.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        self.perKeyType = perKeyType
    }

    var allLines: [String] { [fullLine, hostLine, rsaCALine] + KeyZoo.names.map { perKeyType[$0]! } }
}

@Suite("Certificates")
struct CertificateTests {
    var fixture: CertificateFixture { CertificateFixture.shared }

    @Test func everyFieldOfAnSSHKeygenCertificate() throws {
        let cert = try Certificate(parsingText: fixture.fullLine + "\n")
        let body = cert.body
        #expect(cert.typeName == "ssh-ed25519-cert-v01@openssh.com")
        #expect(body.nonce.count == 32)
        #expect(body.publicKey.blob == blobOfLine(fixture.userLine))
        #expect(body.serial == 12345)
        #expect(body.type == .user)
        #expect(body.keyID == "key id 1")
        #expect(body.principals == ["alice", "bob"])
        #expect(body.validAfter == CertificateFixture.validAfter)
        #expect(body.validBefore == CertificateFixture.validBefore)
        #expect(body.criticalOptions.map(\.name) == ["force-command", "source-address"])
        #expect(body.criticalOptions.map(\.stringValue) == ["/bin/echo hi", "10.0.0.0/8,::1"])
        #expect(body.extensions.map(\.name) == ["foo@example.com", "permit-X11-forwarding", "permit-agent-forwarding", "permit-pty"])
        #expect(body.extensions[0].stringValue == "bar")
        #expect(body.extensions.dropFirst().allSatisfy { $0.isFlag })
        #expect(body.reserved.isEmpty)
        #expect(body.signatureKey.blob == blobOfLine(fixture.caLine))
        #expect(cert.signature.algorithm == "ssh-ed25519")
        #expect(cert.signature.bytes.count == 64)
        #expect(body.isValid(at: CertificateFixture.validAfter))
        #expect(!body.isValid(at: CertificateFixture.validBefore))
    }

    @Test func hostCertificateFields() throws {
        let cert = try Certificate(parsingText: fixture.hostLine)
        #expect(cert.body.type == .host)
        #expect(cert.body.type.description == "host")
        #expect(cert.body.principals == ["web1.example.com", "web1"])
        #expect(cert.body.serial == 7)
        #expect(cert.body.criticalOptions.isEmpty)
        #expect(cert.body.extensions.isEmpty)
        #expect(cert.body.validAfter == 0)
        #expect(cert.body.validBefore == .max)
    }

    @Test func rsaCASignatureAlgorithm() throws {
        let cert = try Certificate(parsingText: fixture.rsaCALine)
        #expect(cert.signature.algorithm == "rsa-sha2-512")
        #expect(cert.signature.bytes.count == 256)
        #expect(cert.body.signatureKey.blob == blobOfLine(fixture.rsaCAKeyLine))
    }

    @Test("certificates of every key type parse and name the right key", arguments: KeyZoo.names)
    func everyKeyType(name: String) throws {
        let line = try #require(fixture.perKeyType[name])
        let cert = try Certificate(parsingText: line)
        let key = try PublicKey(blob: KeyZoo.shared[name].blob)
        #expect(cert.body.publicKey == key)
        #expect(cert.typeName == key.certificateTypeName)
        #expect(line.hasPrefix(key.certificateTypeName + " "))
        #expect(cert.body.keyID == "zoo \(name)")
        // ssh-keygen's default user extensions, in strcmp order.
        #expect(cert.body.extensions.map(\.name) == [
            "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc",
        ])
        #expect(cert.body.extensions.map(\.name) == CertificateOption.defaultUserExtensions)
    }

    @Test("parsing is lossless and the body re-serialises to the same bytes", arguments: 0..<10)
    func lossless(index: Int) throws {
        let line = fixture.allLines[index]
        let blob = try #require(blobOfLine(line))
        let cert = try Certificate(blob: blob)
        #expect(cert.bytes == blob)
        #expect(cert.signedBytes == blob.prefix(cert.signedLength))
        #expect(cert.body.signableBytes() == Array(blob.prefix(cert.signedLength)))
        #expect(Certificate(body: cert.body, signature: cert.signature).bytes == blob)
        #expect(Certificate(body: cert.body, signableBytes: cert.body.signableBytes(), signature: cert.signature).bytes == blob)
        // The signature is the last string.
        var r = SSHReader(blob.dropFirst(cert.signedLength))
        #expect(try r.readString() == Array(cert.signature.blob))
        #expect(r.isAtEnd)
        // The text line round trips with the key's comment.
        let comment = line.split(separator: " ", maxSplits: 2).dropFirst(2).first.map(String.init)
        #expect(cert.openSSHLine(comment: comment) == line)
    }

    @Test func optionsAreWrittenInStrcmpOrder() throws {
        let cert = try Certificate(parsingText: fixture.fullLine)
        var body = cert.body
        body.extensions = [.flag("permit-pty"), .flag("permit-agent-forwarding"), .value("zz@example.com", "1"),
                           .flag("permit-X11-forwarding"), .value("a@example.com", "2")]
        body.criticalOptions = [.value("source-address", "10.0.0.1"), .value("force-command", "ls")]
        let written = Certificate(body: body, signature: cert.signature)
        let reparsed = try Certificate(blob: written.bytes)
        #expect(reparsed.body.extensions.map(\.name) == [
            "a@example.com", "permit-X11-forwarding", "permit-agent-forwarding", "permit-pty", "zz@example.com",
        ])
        #expect(reparsed.body.criticalOptions.map(\.name) == ["force-command", "source-address"])
        // Uppercase sorts before lowercase, as strcmp does.
        let x11 = Array("permit-X11-forwarding".utf8), agent = Array("permit-agent-forwarding".utf8)
        #expect(x11.lexicographicallyPrecedes(agent))
        #expect(CertificateOption.sortedForWriting([.flag("b"), .flag("B"), .flag("a"), .flag("A")]).map(\.name) == ["A", "B", "a", "b"])
    }

    @Test func valuedOptionsNestAStringInsideTheData() throws {
        let option = CertificateOption.value("force-command", "/bin/echo hi")
        #expect(Array(option.data) == [0, 0, 0, 12] + Array("/bin/echo hi".utf8))
        #expect(!option.isFlag)
        #expect(option.stringValue == "/bin/echo hi")
        let flag = CertificateOption.flag("permit-pty")
        #expect(flag.isFlag && flag.data.isEmpty)
        #expect(flag.stringValue == nil)
        // Data that is not exactly one string has no string value.
        #expect(CertificateOption(name: "x", data: Data("flat".utf8)).stringValue == nil)
        #expect(CertificateOption(name: "x", data: option.data + Data([0])).stringValue == nil)
        // ssh-keygen nests the same way: the parsed option equals the one sshca would build.
        let cert = try Certificate(parsingText: fixture.fullLine)
        #expect(cert.body.criticalOptions[0] == .value("force-command", "/bin/echo hi"))
        #expect(cert.body.criticalOptions[1] == .value("source-address", "10.0.0.0/8,::1"))
        #expect(cert.body.extensions[0] == .value("foo@example.com", "bar"))
        // In the certificate bytes: string(name) string(string(value)).
        var w = SSHWriter()
        w.writeString("force-command")
        w.writeString(option.data)
        let needle = w.bytes
        #expect(cert.bytes.range(of: Data(needle)) != nil)
    }

    @Test func trailingBytesAreRefused() throws {
        let blob = try #require(blobOfLine(fixture.fullLine))
        #expect(throws: SSHFormatError.invalid("1 unexpected trailing bytes after the certificate")) {
            try Certificate(blob: blob + Data([0]))
        }
        #expect(throws: SSHFormatError.invalid("4 unexpected trailing bytes after the certificate")) { try Certificate(blob: blob + Data([0, 0, 0, 0])) }
    }

    @Test("every proper prefix of a certificate is refused", arguments: [0, 1, 2, 4])
    func everyPrefixIsRefused(index: Int) throws {
        let blob = Array(try #require(blobOfLine(fixture.allLines[index])))
        var accepted: [Int] = []
        for length in 0..<blob.count {
            if (try? Certificate(blob: blob.prefix(length))) != nil { accepted.append(length) }
        }
        #expect(accepted.isEmpty)
    }

    @Test func damagedFieldsAreRefused() throws {
        let cert = try Certificate(parsingText: fixture.fullLine)
        // A principal with a NUL byte.
        var w = SSHWriter()
        var body = cert.body
        body.principals = ["ali\u{0}ce"]
        w.writeRaw(body.signableBytes())
        w.writeString(cert.signature.blob)
        #expect(throws: SSHFormatError.invalid("principal is not valid UTF-8 text or contains a NUL byte")) { try Certificate(blob: w.bytes) }
        // A plain key type where a certificate type belongs.
        var plain = SSHWriter()
        plain.writeString("ssh-ed25519")
        plain.writeRaw(cert.bytes.dropFirst(4 + "ssh-ed25519-cert-v01@openssh.com".utf8.count))
        #expect(throws: SSHFormatError.notAKey("\"ssh-ed25519\" is not an OpenSSH certificate type (expected a name ending in -cert-v01@openssh.com)")) { try Certificate(blob: plain.bytes) }
        // Signature blob with trailing data.
        #expect(throws: SSHFormatError.invalid("1 unexpected trailing bytes after the signature")) { try SSHSignature(blob: cert.signature.blob + Data([1])) }
    }

    @Test func certificateTextRefusals() throws {
        func refused(_ text: String) -> SSHFormatError? {
            do throws(SSHFormatError) {
                _ = try Certificate(parsingText: text)
                Issue.record("accepted \(text.prefix(40))")
                return nil
            } catch {
                return error
            }
        }
        guard case .notAKey(let plain)? = refused(fixture.userLine) else { Issue.record("wrong error"); return }
        #expect(plain.contains("plain public key"))
        guard case .notAKey(let empty)? = refused("\n# nothing\n") else { Issue.record("wrong error"); return }
        #expect(empty.contains("empty"))
        guard case .notAKey(let two)? = refused(fixture.fullLine + "\n" + fixture.hostLine) else { Issue.record("wrong error"); return }
        #expect(two.contains("2 lines"))
        // Line type differs from the blob's type.
        let fields = fixture.fullLine.split(separator: " ")
        let swapped = "ssh-rsa-cert-v01@openssh.com " + fields[1]
        guard case .invalid(let why)? = refused(swapped) else { Issue.record("wrong error"); return }
        #expect(why.contains("ssh-ed25519-cert-v01@openssh.com"))
        #expect(refused("ssh-ed25519-cert-v01@openssh.com AAAA!!") != nil)
        #expect(refused("ssh-ed25519-cert-v01@openssh.com " + fields[1].dropLast(8)) != nil)
        #expect(refused(String(repeating: "x", count: 300 * 1024)) != nil)
        // CRLF and a comment line are fine.
        #expect(try Certificate(parsingText: "# cert\r\n" + fixture.fullLine + "\r\n").body.keyID == "key id 1")
    }

    /// `sshca inspect` reads up to 256 KiB of certificate text: parsing must stay linear in it.
    @Test func trailingWhitespaceIsParsedInLinearTime() throws {
        let padded = fixture.fullLine + String(repeating: " ", count: 16 * 1024) + "\n"
        let start = ContinuousClock.now
        let cert = try Certificate(parsingText: padded)
        let elapsed = ContinuousClock.now - start
        #expect(cert.body.keyID == "key id 1")
        #expect(elapsed < .milliseconds(250), "parsing 16 KiB of trailing whitespace took \(elapsed)")
    }

    @Test func builtBodiesRoundTripThroughTheParser() throws {
        var rng = SplitMix(seed: 99)
        let keys = try KeyZoo.names.map { try PublicKey(blob: KeyZoo.shared[$0].blob) }
        for i in 0..<50 {
            let principals = (0..<Int.random(in: 0...5, using: &rng)).map { "p\($0)-\(i)" }
            var extensions: [CertificateOption] = [.flag("permit-pty"), .value("x\(i)@example.com", "v\(i)")]
            extensions.sort { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
            let body = CertificateBody(
                nonce: Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }),
                publicKey: keys[i % keys.count], serial: UInt64.random(in: 0...UInt64.max, using: &rng),
                type: i % 2 == 0 ? .user : .host, keyID: "id \(i) ✓", principals: principals,
                validAfter: UInt64(i), validBefore: UInt64.random(in: 1000...UInt64.max, using: &rng),
                criticalOptions: i % 3 == 0 ? [.value("force-command", "cmd \(i)")] : [],
                extensions: extensions, signatureKey: keys[(i + 1) % keys.count])
            let signature = SSHSignature(algorithm: "ssh-ed25519", bytes: Data(repeating: UInt8(i), count: 64))
            let cert = Certificate(body: body, signature: signature)
            let parsed = try Certificate(blob: cert.bytes)
            #expect(parsed.body == body)
            #expect(parsed.signature == signature)
            #expect(parsed.bytes == cert.bytes)
            #expect(parsed.signedLength == body.signableBytes().count)
            let text = try Certificate(parsingText: cert.openSSHLine(comment: "c"))
            #expect(text == parsed)
        }
    }

    @Test func validityBoundaries() throws {
        var body = try Certificate(parsingText: fixture.fullLine).body
        body.validAfter = 100
        body.validBefore = 200
        #expect(!body.isValid(at: 99))
        #expect(body.isValid(at: 100))
        #expect(body.isValid(at: 199))
        #expect(!body.isValid(at: 200))
        body.validAfter = 0
        body.validBefore = .max
        #expect(body.isValid(at: 0))
        #expect(body.isValid(at: .max - 1))
    }

    @Test func certificateTypeDescriptions() {
        #expect(CertificateType.user.description == "user")
        #expect(CertificateType.host.description == "host")
        #expect(CertificateType(rawValue: 3).description.contains("3"))
    }
}
