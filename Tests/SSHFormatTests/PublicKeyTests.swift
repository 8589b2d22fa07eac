import Foundation
import Testing
import TestSupport
@testable import SSHFormat

@Suite("Public key blobs")
struct PublicKeyTests {
    static let expected: [String: (typeName: String, shortName: String, bits: Int, certType: String)] = [
        "ed25519": ("ssh-ed25519", "ED25519", 256, "ssh-ed25519-cert-v01@openssh.com"),
        "ecdsa256": ("ecdsa-sha2-nistp256", "ECDSA", 256, "ecdsa-sha2-nistp256-cert-v01@openssh.com"),
        "ecdsa384": ("ecdsa-sha2-nistp384", "ECDSA", 384, "ecdsa-sha2-nistp384-cert-v01@openssh.com"),
        "ecdsa521": ("ecdsa-sha2-nistp521", "ECDSA", 521, "ecdsa-sha2-nistp521-cert-v01@openssh.com"),
        "rsa2048": ("ssh-rsa", "RSA", 2048, "ssh-rsa-cert-v01@openssh.com"),
        "sked25519": ("sk-ssh-ed25519@openssh.com", "ED25519-SK", 256, "sk-ssh-ed25519-cert-v01@openssh.com"),
        "skecdsa": ("sk-ecdsa-sha2-nistp256@openssh.com", "ECDSA-SK", 256, "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"),
    ]

    @Test("blob parse and serialise round trip byte for byte", arguments: KeyZoo.names)
    func blobRoundTrip(name: String) throws {
        let entry = KeyZoo.shared[name]
        let key = try PublicKey(blob: entry.blob)
        #expect(key.blob == entry.blob)
        let want = try #require(Self.expected[name])
        #expect(key.typeName == want.typeName)
        #expect(key.shortName == want.shortName)
        #expect(key.bits == want.bits)
        #expect(key.certificateTypeName == want.certType)
        #expect(key.isSecurityKey == name.hasPrefix("sk"))
        #expect(entry.line.hasPrefix(key.typeName + " "))
        #expect(key.openSSHLine(comment: "\(name)@zoo") == entry.line)
        #expect(key.openSSHLine() == key.typeName + " " + entry.blob.base64EncodedString())
        if case .skEd25519(_, let app) = key { #expect(app == "ssh:") }
        if case .skECDSA(_, let app) = key { #expect(app == "ssh:") }
    }

    @Test("fingerprint, bits and type name agree with ssh-keygen -l", arguments: KeyZoo.names)
    func fingerprintMatchesSSHKeygen(name: String) throws {
        let key = try PublicKey(blob: KeyZoo.shared[name].blob)
        let out = try run("ssh-keygen", ["-l", "-E", "sha256", "-f", KeyZoo.shared.publicPath(name)]).stdoutText
        // "256 SHA256:... comment (ED25519)"
        let fields = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        #expect(fields.count >= 3)
        #expect(String(fields[1]) == key.fingerprint)
        #expect(Int(fields[0]) == key.bits)
        #expect(String(fields.last!) == "(\(key.shortName))")
    }

    @Test("every proper prefix of a blob is refused", arguments: KeyZoo.names)
    func truncatedBlobs(name: String) {
        let blob = Array(KeyZoo.shared[name].blob)
        for length in 0..<blob.count {
            #expect(throws: SSHFormatError.self) { try PublicKey(blob: blob.prefix(length)) }
        }
    }

    @Test("trailing bytes after a blob are refused", arguments: KeyZoo.names)
    func trailingBytes(name: String) {
        let blob = Array(KeyZoo.shared[name].blob)
        #expect(throws: SSHFormatError.invalid("1 unexpected trailing bytes after the public key")) {
            try PublicKey(blob: blob + [0])
        }
    }

    @Test func ed25519KeyOfWrongLengthIsRefused() {
        for length in [0, 31, 33, 64] {
            var w = SSHWriter()
            w.writeString("ssh-ed25519")
            w.writeString([UInt8](repeating: 1, count: length))
            #expect(throws: SSHFormatError.invalid("Ed25519 public key must be 32 bytes, found \(length)")) {
                try PublicKey(blob: w.bytes)
            }
        }
    }

    @Test func ecdsaCurveMismatchAndBadPointsAreRefused() throws {
        guard case .ecdsa(_, let point) = try PublicKey(blob: KeyZoo.shared["ecdsa256"].blob) else {
            Issue.record("not an ECDSA key"); return
        }
        // Type says P-384, fields say P-256.
        var w = SSHWriter()
        w.writeString("ecdsa-sha2-nistp384")
        w.writeString("nistp256")
        w.writeString(point)
        #expect(throws: SSHFormatError.invalid("key type says nistp384 but the key names curve \"nistp256\"")) { try PublicKey(blob: w.bytes) }
        // Compressed point.
        var c = SSHWriter()
        c.writeString("ecdsa-sha2-nistp256")
        c.writeString("nistp256")
        c.writeString([0x02] + point[1...32])
        #expect(throws: SSHFormatError.invalid("ECDSA nistp256 point must be uncompressed (65 bytes starting 0x04)")) { try PublicKey(blob: c.bytes) }
        // Right length, wrong prefix byte.
        var p = SSHWriter()
        p.writeString("ecdsa-sha2-nistp256")
        p.writeString("nistp256")
        p.writeString([0x05] + point.dropFirst())
        #expect(throws: SSHFormatError.invalid("ECDSA nistp256 point must be uncompressed (65 bytes starting 0x04)")) { try PublicKey(blob: p.bytes) }
    }

    @Test func rsaWithZeroExponentOrNonMinimalModulusIsRefused() throws {
        guard case .rsa(_, let n) = try PublicKey(blob: KeyZoo.shared["rsa2048"].blob) else {
            Issue.record("not RSA"); return
        }
        var zeroE = SSHWriter()
        zeroE.writeString("ssh-rsa")
        zeroE.writeMPInt(unsigned: [UInt8]())
        zeroE.writeMPInt(unsigned: n)
        #expect(throws: SSHFormatError.invalid("RSA key with a zero exponent or modulus")) { try PublicKey(blob: zeroE.bytes) }

        // n with an extra leading zero byte (non-minimal mpint).
        var padded = SSHWriter()
        padded.writeString("ssh-rsa")
        padded.writeMPInt(unsigned: [1, 0, 1])
        padded.writeString([0, 0] + n)
        #expect(throws: SSHFormatError.invalid("mpint has a superfluous leading zero")) { try PublicKey(blob: padded.bytes) }
    }

    @Test func unknownDSAAndCertificateTypesAreRefused() throws {
        var dss = SSHWriter()
        dss.writeString("ssh-dss")
        for _ in 0..<4 { dss.writeMPInt(unsigned: [UInt8](repeating: 0x11, count: 20)) }
        let dsaError = #expect(throws: SSHFormatError.self) { try PublicKey(blob: dss.bytes) }
        guard case .unsupportedKeyType(let dsaWhy)? = dsaError else {
            Issue.record("expected unsupportedKeyType, got \(String(describing: dsaError))"); return
        }
        #expect(dsaWhy.contains("DSA"))

        var unknown = SSHWriter()
        unknown.writeString("ssh-foo")
        unknown.writeString([1, 2, 3])
        let unknownError = #expect(throws: SSHFormatError.self) { try PublicKey(blob: unknown.bytes) }
        guard case .unsupportedKeyType(let why)? = unknownError else {
            Issue.record("expected unsupportedKeyType, got \(String(describing: unknownError))"); return
        }
        #expect(why.contains("ssh-foo") && why.contains("ssh-ed25519"))

        var cert = SSHWriter()
        cert.writeString("ssh-ed25519-cert-v01@openssh.com")
        cert.writeString([UInt8](repeating: 0, count: 32))
        #expect(throws: SSHFormatError.certificateGiven) { try PublicKey(blob: cert.bytes) }
    }

    @Test func rsaBitsCountsTheTopByte() {
        #expect(PublicKey.rsa(e: Data([3]), n: Data([0x01] + [UInt8](repeating: 0, count: 255))).bits == 2041)
        #expect(PublicKey.rsa(e: Data([3]), n: Data([0x80] + [UInt8](repeating: 0, count: 255))).bits == 2048)
        #expect(PublicKey.rsa(e: Data([3]), n: Data()).bits == 0)
    }

    @Test func rsaBlobWritesHighBitModulusWithLeadingZero() throws {
        let key = try PublicKey(blob: KeyZoo.shared["rsa2048"].blob)
        guard case .rsa(let e, let n) = key else { Issue.record("not RSA"); return }
        #expect(n.first! & 0x80 != 0) // a 2048-bit modulus has its top bit set
        #expect(n.count == 256)
        #expect(e == Data([1, 0, 1]))
        var r = SSHReader(key.blob)
        _ = try r.readText("type")
        #expect(try r.readString() == [1, 0, 1])
        let rawN = try r.readString()
        #expect(rawN.count == 257 && rawN.first == 0)
    }
}
