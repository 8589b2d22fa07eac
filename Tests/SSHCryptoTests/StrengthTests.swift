import Foundation
import Testing
import TestSupport
import SSHCrypto
import SSHFormat

private func strengthError(_ key: PublicKey, minimumRSABits: Int = 2048) -> CryptoError? {
    do throws(CryptoError) {
        try key.checkStrength(minimumRSABits: minimumRSABits)
        return nil
    } catch {
        return error
    }
}

@Suite("Key strength checks")
struct StrengthTests {
    /// Public keys made by ssh-keygen, once.
    static let keys: [String: PublicKey] = {
        let dir = try! TempDir()
        var keys: [String: PublicKey] = [:]
        for (name, type, bits) in [("rsa1024", "rsa", 1024), ("rsa2048", "rsa", 2048), ("p256", "ecdsa", 256),
                                   ("p384", "ecdsa", 384), ("p521", "ecdsa", 521), ("ed", "ed25519", 0),
                                   ("skecdsa", "ecdsa-sk", 0), ("sked", "ed25519-sk", 0)] {
            let line = try! sshKeygenKey(in: dir, name: name, type: type, bits: bits == 0 ? nil : bits)
            keys[name] = try! PublicKeyText(parsing: line).key
        }
        return keys
    }()

    @Test func goodKeysPass() throws {
        for name in ["rsa2048", "p256", "p384", "p521", "ed", "skecdsa", "sked"] {
            #expect(strengthError(Self.keys[name]!) == nil, "\(name)")
        }
        for type in CAKeyType.allCases {
            #expect(strengthError(SharedKeys.key(type).publicKey) == nil, "\(type)")
        }
    }

    @Test func rsa1024IsRefused() throws {
        let key = try #require(Self.keys["rsa1024"])
        #expect(key.bits == 1024)
        let error = strengthError(key)
        #expect(error?.code == .weakKey)
        #expect(error?.reason.contains("1024") == true)
        #expect(error?.reason.contains("2048") == true)
        // The configured minimum counts.
        #expect(strengthError(Self.keys["rsa2048"]!, minimumRSABits: 3072)?.code == .weakKey)
        #expect(strengthError(SharedKeys.rsa3072.publicKey, minimumRSABits: 3072) == nil)
        #expect(strengthError(key, minimumRSABits: 1024) == nil)
    }

    @Test func rsaOver16384BitsIsRefused() {
        let n = Data([0xc1] + [UInt8](repeating: 0xff, count: 2048)) // 16392 bits
        let error = strengthError(.rsa(e: Data([1, 0, 1]), n: n))
        #expect(error?.code == .weakKey)
        #expect(error?.reason.contains("16384") == true)
    }

    @Test("bad RSA exponents are refused", arguments: [
        [UInt8]([1, 0, 0]), [0x01, 0x00], [0x02], [0x01], [0x00, 0x01],
    ])
    func badRSAExponent(e: [UInt8]) throws {
        guard case .rsa(_, let n) = try #require(Self.keys["rsa2048"]) else { Issue.record("not RSA"); return }
        let error = strengthError(.rsa(e: Data(e), n: n))
        #expect(error?.code == .weakKey, "e = \(e)")
    }

    @Test func rsaWithEvenModulusIsRefused() throws {
        guard case .rsa(let e, var n) = try #require(Self.keys["rsa2048"]) else { Issue.record("not RSA"); return }
        n[n.count - 1] &= 0xfe
        #expect(strengthError(.rsa(e: e, n: n))?.code == .weakKey)
    }

    @Test("ECDSA points off the curve are refused", arguments: ["p256", "p384", "p521", "skecdsa"])
    func pointNotOnCurve(name: String) throws {
        let key = try #require(Self.keys[name])
        func withPoint(_ point: Data) -> PublicKey {
            switch key {
            case .ecdsa(let curve, _): return .ecdsa(curve: curve, point: point)
            case .skECDSA(_, let app): return .skECDSA(point: point, application: app)
            default: fatalError("not ECDSA")
            }
        }
        let point: Data
        switch key {
        case .ecdsa(_, let p), .skECDSA(let p, _): point = p
        default: Issue.record("not ECDSA"); return
        }
        var offCurve = point
        offCurve[offCurve.count - 1] ^= 0x01 // y changed: (x, y') is not on the curve
        #expect(strengthError(withPoint(offCurve))?.code == .weakKey)
        let zeros = Data([4] + [UInt8](repeating: 0, count: point.count - 1))
        #expect(strengthError(withPoint(zeros))?.code == .weakKey)
        #expect(strengthError(withPoint(point)) == nil)
        // Verifying with such a key never succeeds either.
        let verdict = withPoint(offCurve).verify(SSHSignature(algorithm: key.typeName, bytes: Data()), over: [1])
        #expect(!verdict.isValid)
    }
}
