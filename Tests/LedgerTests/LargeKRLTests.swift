import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
import SSHCrypto
import Authority

/// Acceptance item 3: KRLs of 1,000,000 revoked serials, in three patterns, built with the KRL
/// model: ssh-keygen loads each and gives the right verdict for certificates with chosen serials,
/// and our strict parser reads back the same SerialSet.
@Suite("KRLs with a million revoked serials")
struct LargeKRLTests {
    enum Pattern: String, CaseIterable, Sendable, CustomStringConvertible {
        /// 1...1,000,000
        case dense
        /// 1, 4, 7, ..., 2,999,998
        case everyThird
        /// 1% of 1...100,000,000: one serial drawn at random (fixed seed) from each block of 100.
        case randomOnePercent
        var description: String { rawValue }
    }

    static let count = 1_000_000

    /// The sorted serials of a pattern.
    static func serials(_ pattern: Pattern) -> [UInt64] {
        switch pattern {
        case .dense:
            return Array(1...UInt64(count))
        case .everyThird:
            return (0..<UInt64(count)).map { 1 + 3 * $0 }
        case .randomOnePercent:
            var rng = SplitMix(seed: 0x5EED_2024_0000_0001)
            return (0..<UInt64(count)).map { block in block * 100 + 1 + rng.next() % 100 }
        }
    }

    /// Serials to make certificates for: both ends of the pattern, their neighbours, and a few
    /// revoked and unrevoked serials inside.
    static func probes(_ pattern: Pattern, _ serials: [UInt64]) -> [UInt64] {
        let first = serials.first!, last = serials.last!
        var probes: Set<UInt64> = [first, first + 1, last, last - 1, last + 1, last + 2, 1_000_000_007, UInt64(Int64.max)]
        if first > 1 { probes.insert(first - 1) }
        for index in [1, 2, 17, 5_000, 123_457, 499_999, 500_000, 999_998] {
            let s = serials[index]
            probes.insert(s)
            probes.insert(s - 1)
            probes.insert(s + 1)
        }
        // Bitmap boundaries of OpenSSH's 16384-bit limit, in serial space.
        for base in [UInt64(16_384), 16_385, 32_768, 32_769, 1_638_400, 1_638_401] { probes.insert(base) }
        probes.remove(0)
        return probes.sorted()
    }

    static func contains(_ sorted: [UInt64], _ value: UInt64) -> Bool {
        var low = 0, high = sorted.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if sorted[mid] == value { return true }
            if sorted[mid] < value { low = mid + 1 } else { high = mid - 1 }
        }
        return false
    }

    @Test("ssh-keygen loads a 1,000,000-serial KRL and gives the right verdicts", arguments: Pattern.allCases)
    func millionSerials(_ pattern: Pattern) async throws {
        try await withTemporaryDirectory(prefix: "ledger-bigkrl") { dir in
            let clock = ContinuousClock()
            let start = clock.now
            let serials = Self.serials(pattern)
            #expect(serials.count == Self.count)
            #expect(Set(serials).count == Self.count, "the \(pattern) pattern repeats serials")

            // CA and certificates with chosen serials, signed in-process.
            let caKey = try PrivateKey.generate(.ed25519)
            let issuer = Issuer(signer: OpenSSLSigner(key: caKey), configuration: Configuration())
            let subject = try PrivateKey.generate(.ed25519).publicKey
            let probes = Self.probes(pattern, serials)
            var files: [(serial: UInt64, file: URL, certificate: Certificate)] = []
            for serial in probes {
                let body = CertificateBody(
                    nonce: Data((0..<32).map { _ in UInt8.random(in: 0...255) }), publicKey: subject, serial: serial,
                    type: .user, keyID: "probe-\(serial)", principals: ["root"], validAfter: 0, validBefore: .max,
                    criticalOptions: [], extensions: [], signatureKey: caKey.publicKey)
                let certificate = try issuer.sign(body)
                let file = dir.child("cert-\(serial)-cert.pub")
                try writeText(certificate.openSSHLine(comment: "serial-\(serial)") + "\n", to: file)
                files.append((serial, file, certificate))
            }

            let set = SerialSet(serials: serials)
            #expect(set.count == UInt64(Self.count))
            let model = KRL(version: 7, generatedDate: UInt64(Date().timeIntervalSince1970), comment: "\(pattern)",
                            certificates: [CertificateRevocations(caKey: caKey.publicKey, serials: set)])
            let bytes = model.encoded()
            let krlFile = dir.child("\(pattern).krl")
            try Data(bytes).write(to: krlFile)
            let built = clock.now

            // ssh-keygen loads it: exit 0 for a certificate it does not revoke.
            let unrevoked = files.first { !Self.contains(serials, $0.serial) }!
            // ssh-keygen takes tens of seconds on a million random runs when the other tests load
            // both cores: the verdicts are the check here, not its speed.
            let load = try await runProcess("ssh-keygen", ["-Q", "-f", krlFile.path, unrevoked.file.path], environment: SSHKeygen.environment,
                                            timeout: .seconds(240))
            #expect(load.succeeded, "ssh-keygen -Q on the \(pattern) KRL (\(bytes.count) bytes) with unrevoked serial \(unrevoked.serial):\n\(load)")

            // One run for every probe; ssh-keygen prints "FILE (comment): ok|REVOKED" per file.
            let all = try await runProcess("ssh-keygen", ["-Q", "-f", krlFile.path] + files.map(\.file.path), environment: SSHKeygen.environment,
                                           timeout: .seconds(240))
            #expect(!all.terminatedBySignal && (all.exitCode == 0 || all.exitCode == 1), "\(all)")
            var verdicts: [String: Bool] = [:]
            for line in all.stdoutText.split(separator: "\n") {
                let text = String(line)
                if text.hasSuffix(": REVOKED") { verdicts[String(text.prefix(while: { $0 != " " }))] = true }
                if text.hasSuffix(": ok") { verdicts[String(text.prefix(while: { $0 != " " }))] = false }
            }
            let parsedBack = try KRL.parse(bytes)
            var wrong: [String] = []
            for probe in files {
                let expected = Self.contains(serials, probe.serial)
                guard let verdict = verdicts[probe.file.path] else {
                    wrong.append("serial \(probe.serial): no verdict from ssh-keygen")
                    continue
                }
                if verdict != expected { wrong.append("serial \(probe.serial): ssh-keygen says \(verdict ? "REVOKED" : "ok"), expected \(expected ? "REVOKED" : "ok")") }
                let ours = parsedBack.krl.revocation(of: probe.certificate) != nil
                if ours != expected { wrong.append("serial \(probe.serial): KRL.revocation says \(ours ? "REVOKED" : "ok"), expected \(expected ? "REVOKED" : "ok")") }
            }
            #expect(wrong.isEmpty, "\(pattern):\n\(wrong.joined(separator: "\n"))\n\(all.stdoutText)")
            #expect(files.contains { Self.contains(serials, $0.serial) } && files.contains { !Self.contains(serials, $0.serial) })

            // Our strict parser reads back the same set.
            #expect(parsedBack.signatures.isEmpty)
            #expect(parsedBack.krl.certificates.count == 1)
            #expect(parsedBack.krl.certificates.first?.caKey == caKey.publicKey)
            #expect(parsedBack.krl.certificates.first?.serials == set, "\(pattern): the parsed SerialSet differs from the one encoded")
            #expect(parsedBack.krl.version == 7 && parsedBack.krl.comment == "\(pattern)")
            let end = clock.now
            print("LargeKRLTests \(pattern): \(bytes.count) bytes; build \(built - start), ssh-keygen + parse \(end - built)")
        }
    }
}
