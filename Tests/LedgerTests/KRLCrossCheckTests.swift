import Common
import Foundation
import Testing
import TestSupport
import SSHFormat

/// Acceptance item 1: for a revocation set mixing serials, ranges, key ids, keys and principals
/// (through the CLI), a host CA, a second user CA, and a wildcard ("any CA") section and SHA-1 /
/// SHA-256 key hashes (through the KRL model), these verdicts agree for every certificate and
/// plain key: the expected one, `ssh-keygen -Q` on our KRL, `sshca krl check` on our KRL,
/// `KRL.revocation(of:)`, and `ssh-keygen -Q` / `sshca krl check` on the KRL that `ssh-keygen -k`
/// builds from the equivalent spec files.
@Suite("KRL verdicts agree with ssh-keygen")
struct KRLCrossCheckTests {
    /// One file to test, and whether it must be revoked by its own home's KRL and by the
    /// combined KRL (both homes plus the wildcard section).
    struct Subject: CustomStringConvertible {
        var name: String
        var file: URL
        var revokedByOwnHome: Bool
        var revokedCombined: Bool
        /// Which home's KRL "own" refers to ("A" or "B").
        var home: String
        var description: String { name }
    }

    @Test("mixed revocations: ssh-keygen -Q, sshca krl check, KRL.revocation and ssh-keygen -k agree")
    func mixedRevocationsAgree() async throws {
        try await withTemporaryDirectory(prefix: "ledger-krl") { dir in
            let homeA = try await CAHomeFixture.create(in: dir, name: "caA")
            let homeB = try await CAHomeFixture.create(in: dir, name: "caB")
            let keys = try makeDirectory(dir.child("keys"))
            let certs = try makeDirectory(dir.child("certs"))

            var keyPairs: [String: KeyPair] = [:]
            for name in ["kA1", "kA2", "kA3", "kA4", "kA5", "kA6", "kA7", "kA8", "kA10", "kA12", "kA13", "kF1", "kF2",
                         "kB1", "kB2", "kB3", "kB4", "kB5", "kB6"] {
                keyPairs[name] = try await makeUserKey(keys, name)
            }
            func key(_ name: String) -> KeyPair { keyPairs[name]! }

            // Home A: user certificates a1...a11 and host certificates a12, a13, in this order
            // (serials 1...13 from A's ledger).
            var serialA: [String: UInt64] = [:]
            func signA(_ name: String, _ k: String, _ id: String, _ principals: [String], host: Bool = false) async throws -> URL {
                let out = certs.child("\(name)-cert.pub")
                let signed = try await homeA.sign(key(k), keyID: id, principals: principals, output: out, extra: host ? ["--host"] : [])
                serialA[name] = signed.certificate.body.serial
                return out
            }
            var serialB: [String: UInt64] = [:]
            func signB(_ name: String, _ k: String, _ id: String, _ principals: [String]) async throws -> URL {
                let out = certs.child("\(name)-cert.pub")
                let signed = try await homeB.sign(key(k), keyID: id, principals: principals, output: out)
                serialB[name] = signed.certificate.body.serial
                return out
            }
            let a1 = try await signA("a1", "kA1", "alice", ["root"])
            let a2 = try await signA("a2", "kA2", "bob", ["root"])
            let a3 = try await signA("a3", "kA3", "carol", ["root"])
            let a4 = try await signA("a4", "kA4", "dave", ["root"])
            let a5 = try await signA("a5", "kA5", "erin", ["root"])
            let a6 = try await signA("a6", "kA6", "frank", ["ops", "root"])
            let a7 = try await signA("a7", "kA7", "gone-id", ["root"])
            let a8 = try await signA("a8", "kA8", "heidi", ["root"])
            let a9 = try await signA("a9", "kA1", "ivan", ["dev"])
            let a10 = try await signA("a10", "kA10", "ten", ["root"])
            let a11 = try await signA("a11", "kB4", "cross", ["root"])
            let a12 = try await signA("a12", "kA12", "web1", ["web1.example.com"], host: true)
            let a13 = try await signA("a13", "kA13", "web2", ["web2.example.com"], host: true)
            let a14 = try await signA("a14", "kF1", "fp-one", ["root"])
            let a15 = try await signA("a15", "kF2", "fp-two", ["root"])
            let b1 = try await signB("b1", "kB1", "gone-id", ["root"])
            let b2 = try await signB("b2", "kB2", "b-two", ["root"])
            let b3 = try await signB("b3", "kB3", "b-three", ["root"])
            let b4 = try await signB("b4", "kB4", "b-four", ["root"])
            let b5 = try await signB("b5", "kB5", "wild-id", ["root"])
            let b6 = try await signB("b6", "kB6", "b-six", ["ops"])
            #expect(serialA.values.sorted() == Array(1...15), "home A serials: \(serialA)")
            #expect(serialB.values.sorted() == Array(1...6), "home B serials: \(serialB)")

            // Revocations through the CLI (each one checked for a loadable KRL afterwards).
            let (s4, s5) = (serialA["a4"]!, serialA["a5"]!)
            #expect(s5 == s4 + 1)
            try await homeA.revokeChecked(["--serial", "\(serialA["a2"]!)"])
            try await homeA.revokeChecked(["--serial", "\(s4)-\(s5)"])
            try await homeA.revokeChecked(["--principal", "ops"])
            try await homeA.revokeChecked(["--key-id", "gone-id"])
            try await homeA.revokeChecked(["--key", key("kA8").publicKey.path])
            try await homeA.revokeChecked(["--serial", "\(serialA["a12"]!)"])
            try await homeB.revokeChecked(["--serial", "\(serialB["b2"]!)"])
            try await homeB.revokeChecked(["--key-id", "b-three"])
            try await homeB.revokeChecked(["--key", key("kB4").publicKey.path])

            // The wildcard section (any CA) goes in through the KRL model: serial of a10 and key id
            // "wild-id". No B certificate has a10's serial.
            let wildSerial = serialA["a10"]!
            #expect(!serialB.values.contains(wildSerial))

            let subjects: [Subject] = [
                Subject(name: "a1 (not revoked)", file: a1, revokedByOwnHome: false, revokedCombined: false, home: "A"),
                Subject(name: "a2 (serial)", file: a2, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a3 (not revoked)", file: a3, revokedByOwnHome: false, revokedCombined: false, home: "A"),
                Subject(name: "a4 (range)", file: a4, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a5 (range)", file: a5, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a6 (principal ops)", file: a6, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a7 (key id gone-id)", file: a7, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a8 (key kA8)", file: a8, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a9 (second cert of kA1, not revoked)", file: a9, revokedByOwnHome: false, revokedCombined: false, home: "A"),
                Subject(name: "a10 (wildcard serial)", file: a10, revokedByOwnHome: false, revokedCombined: true, home: "A"),
                Subject(name: "a11 (A's cert of B's revoked key kB4)", file: a11, revokedByOwnHome: false, revokedCombined: true, home: "A"),
                Subject(name: "a12 (host cert, serial)", file: a12, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "a13 (host cert, not revoked)", file: a13, revokedByOwnHome: false, revokedCombined: false, home: "A"),
                Subject(name: "a14 (key kF1 by SHA-1 hash, combined only)", file: a14, revokedByOwnHome: false, revokedCombined: true, home: "A"),
                Subject(name: "a15 (key kF2 by SHA-256 hash, combined only)", file: a15, revokedByOwnHome: false, revokedCombined: true, home: "A"),
                Subject(name: "b1 (key id gone-id, but from CA B)", file: b1, revokedByOwnHome: false, revokedCombined: false, home: "B"),
                Subject(name: "b2 (serial)", file: b2, revokedByOwnHome: true, revokedCombined: true, home: "B"),
                Subject(name: "b3 (key id b-three)", file: b3, revokedByOwnHome: true, revokedCombined: true, home: "B"),
                Subject(name: "b4 (key kB4)", file: b4, revokedByOwnHome: true, revokedCombined: true, home: "B"),
                Subject(name: "b5 (wildcard key id)", file: b5, revokedByOwnHome: false, revokedCombined: true, home: "B"),
                Subject(name: "b6 (principal ops, but in home B)", file: b6, revokedByOwnHome: false, revokedCombined: false, home: "B"),
                Subject(name: "plain kA1", file: key("kA1").publicKey, revokedByOwnHome: false, revokedCombined: false, home: "A"),
                Subject(name: "plain kA3", file: key("kA3").publicKey, revokedByOwnHome: false, revokedCombined: false, home: "A"),
                Subject(name: "plain kA8 (revoked key)", file: key("kA8").publicKey, revokedByOwnHome: true, revokedCombined: true, home: "A"),
                Subject(name: "plain kF1 (SHA-1 hash)", file: key("kF1").publicKey, revokedByOwnHome: false, revokedCombined: true, home: "A"),
                Subject(name: "plain kF2 (SHA-256 hash)", file: key("kF2").publicKey, revokedByOwnHome: false, revokedCombined: true, home: "A"),
                Subject(name: "plain kB1", file: key("kB1").publicKey, revokedByOwnHome: false, revokedCombined: false, home: "B"),
                Subject(name: "plain kB4 (revoked key)", file: key("kB4").publicKey, revokedByOwnHome: true, revokedCombined: true, home: "B"),
            ]

            // The ledger's own listing agrees: `list --revoked` names exactly the certificates each
            // home revoked (by serial, range, principal, key id and key), and `list --active`
            // exactly the others.
            for (home, serials, prefix) in [(homeA, serialA, "a"), (homeB, serialB, "b")] {
                func listed(_ arguments: [String]) async throws -> Set<UInt64> {
                    let result = try await home.runChecked(["list"], arguments + ["--json"])
                    let rows = (try JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]]) ?? []
                    return Set(rows.compactMap { ($0["serial"] as? Int).map(UInt64.init) })
                }
                let certificates = subjects.filter { $0.name.hasPrefix(prefix) }
                let revoked = Set(certificates.filter(\.revokedByOwnHome).compactMap { serials[String($0.name.prefix { $0 != " " })] })
                #expect(revoked.count == certificates.filter(\.revokedByOwnHome).count)
                #expect(try await listed(["--revoked"]) == revoked, "home \(prefix.uppercased()): list --revoked")
                #expect(try await listed(["--active"]) == Set(serials.values).subtracting(revoked), "home \(prefix.uppercased()): list --active")
                #expect(try await listed([]) == Set(serials.values), "home \(prefix.uppercased()): list")
            }

            // Our KRLs: each home's revoked.krl as the CLI published it, and the combination.
            let krlA = try homeA.publishedKRL()
            let krlB = try homeB.publishedKRL()
            let userA = try PublicKeyText(parsing: readText(homeA.userCAPublicKey)).key
            let hostA = try PublicKeyText(parsing: readText(homeA.hostCAPublicKey)).key
            let userB = try PublicKeyText(parsing: readText(homeB.userCAPublicKey)).key
            let hostB = try PublicKeyText(parsing: readText(homeB.hostCAPublicKey)).key
            #expect(Set(krlA.certificates.compactMap(\.caKey)) == [userA, hostA], "home A's KRL sections: \(krlA.certificates)")
            // B revoked a key id, which covers certificates from both of B's CA keys (now and later),
            // so both get a section even though B's host CA has issued nothing.
            #expect(Set(krlB.certificates.compactMap(\.caKey)) == [userB, hostB], "home B's KRL sections: \(krlB.certificates)")
            #expect(krlB.certificates.first { $0.caKey == hostB }?.serials.isEmpty == true, "B's host CA revoked serials it never issued")
            func blob(_ name: String) throws -> Data { try PublicKeyText(parsing: readText(key(name).publicKey)).key.blob }
            let wildcard = CertificateRevocations(caKey: nil, serials: SerialSet(serials: [wildSerial]), keyIDs: ["wild-id"])
            let combined = KRL(version: max(krlA.version, krlB.version) + 1, generatedDate: UInt64(Date().timeIntervalSince1970),
                               comment: "combined for the cross-check",
                               certificates: krlA.certificates + krlB.certificates + [wildcard],
                               explicitKeys: krlA.explicitKeys + krlB.explicitKeys,
                               sha1Fingerprints: [Data(Digest.sha1.hash(try blob("kF1")))],
                               sha256Fingerprints: [Data(Digest.sha256.hash(try blob("kF2")))])
            let ours = dir.child("ours.krl")
            try Data(combined.encoded()).write(to: ours)
            let oursParsed = try KRL.parse(combined.encoded()).krl

            // Theirs: ssh-keygen -k from the equivalent spec files.
            func keyLine(_ name: String) throws -> String { keyTypeAndBlob(try readText(key(name).publicKey)) }
            let specAUser = [
                "serial: \(serialA["a2"]!)", "serial: \(s4)-\(s5)", "serial: \(serialA["a6"]!)",
                "id: gone-id", "key: \(try keyLine("kA8"))",
            ]
            let specAHost = ["serial: \(serialA["a12"]!)", "id: gone-id"]
            let specBUser = ["serial: \(serialB["b2"]!)", "id: b-three", "key: \(try keyLine("kB4"))"]
            let specWild = ["serial: \(wildSerial)", "id: wild-id", "sha1: \(try keyLine("kF1"))", "sha256: \(try keyLine("kF2"))"]
            func buildTheirs(_ file: URL, _ parts: [(ca: String, spec: [String])]) async throws {
                for (index, part) in parts.enumerated() {
                    let spec = dir.child("\(file.lastPathComponent).spec\(index)")
                    try writeText(part.spec.joined(separator: "\n") + "\n", to: spec)
                    try await runChecked("ssh-keygen", ["-k"] + (index > 0 ? ["-u"] : []) + ["-f", file.path, "-s", part.ca, spec.path],
                                         environment: SSHKeygen.environment)
                }
            }
            let theirsA = dir.child("theirsA.krl")
            try await buildTheirs(theirsA, [(homeA.userCAPublicKey.path, specAUser), (homeA.hostCAPublicKey.path, specAHost)])
            let theirsB = dir.child("theirsB.krl")
            try await buildTheirs(theirsB, [(homeB.userCAPublicKey.path, specBUser)])
            let theirs = dir.child("theirs.krl")
            try await buildTheirs(theirs, [(homeA.userCAPublicKey.path, specAUser), (homeA.hostCAPublicKey.path, specAHost),
                                           (homeB.userCAPublicKey.path, specBUser), ("none", specWild)])

            func modelVerdict(_ krl: KRL, _ file: URL) throws -> Bool {
                let text = try readText(file)
                if let certificate = try? Certificate(parsingText: text) { return krl.revocation(of: certificate) != nil }
                return krl.revocation(of: try PublicKeyText(parsing: text).key) != nil
            }

            var mismatches: [String] = []
            for subject in subjects {
                let ownKRL = subject.home == "A" ? homeA.krlFile : homeB.krlFile
                let ownModel = subject.home == "A" ? krlA : krlB
                let ownTheirs = subject.home == "A" ? theirsA : theirsB
                let own: [(String, Bool)] = [
                    ("ssh-keygen -Q own revoked.krl", try await sshKeygenRevoked(krl: ownKRL, file: subject.file)),
                    ("sshca krl check own revoked.krl", try await sshcaRevoked(krl: ownKRL, file: subject.file)),
                    ("KRL.revocation own", try modelVerdict(ownModel, subject.file)),
                    ("ssh-keygen -Q own ssh-keygen -k KRL", try await sshKeygenRevoked(krl: ownTheirs, file: subject.file)),
                    ("sshca krl check own ssh-keygen -k KRL", try await sshcaRevoked(krl: ownTheirs, file: subject.file)),
                ]
                let all: [(String, Bool)] = [
                    ("ssh-keygen -Q combined ours", try await sshKeygenRevoked(krl: ours, file: subject.file)),
                    ("sshca krl check combined ours", try await sshcaRevoked(krl: ours, file: subject.file)),
                    ("KRL.revocation combined", try modelVerdict(oursParsed, subject.file)),
                    ("ssh-keygen -Q combined ssh-keygen -k KRL", try await sshKeygenRevoked(krl: theirs, file: subject.file)),
                    ("sshca krl check combined ssh-keygen -k KRL", try await sshcaRevoked(krl: theirs, file: subject.file)),
                ]
                for (source, verdict) in own where verdict != subject.revokedByOwnHome {
                    mismatches.append("\(subject): \(source) says \(verdict ? "REVOKED" : "ok"), expected \(subject.revokedByOwnHome ? "REVOKED" : "ok")")
                }
                for (source, verdict) in all where verdict != subject.revokedCombined {
                    mismatches.append("\(subject): \(source) says \(verdict ? "REVOKED" : "ok"), expected \(subject.revokedCombined ? "REVOKED" : "ok")")
                }
            }
            #expect(mismatches.isEmpty, "verdicts differ:\n\(mismatches.joined(separator: "\n"))")
            // Both kinds of verdict occur (the table is not trivially all-ok or all-revoked).
            #expect(subjects.contains { $0.revokedCombined } && subjects.contains { !$0.revokedCombined })
        }
    }

    /// Acceptance item 9 in its hardest case: with `[krl] sign = true`, revoking the user CA key
    /// must not produce a KRL signed by a key it revokes (OpenSSH rejects such a file as a whole).
    @Test("revoking a compromised CA key with [krl] sign = true publishes a loadable, unsigned KRL that revokes its certificates")
    func compromisedCAKeyWithSignedKRL() async throws {
        try await withTemporaryDirectory(prefix: "ledger-krl-ca") { dir in
            let ca = try await CAHomeFixture.create(in: dir)
            try ca.setSignKRL(true)
            let key = try await makeUserKey(dir, "k")
            let hostKey = try await makeUserKey(dir, "h")
            let userCert = try await ca.sign(key, keyID: "u", principals: ["root"])
            let hostCert = try await ca.sign(hostKey, keyID: "h", principals: ["h.example"], extra: ["--host"])
            let otherCert = try await ca.sign(key, keyID: "other", principals: ["ops"], output: dir.child("other-cert.pub"))
            try await ca.revokeChecked(["--serial", "\(userCert.certificate.body.serial)"])
            func listedRevoked() async throws -> Set<UInt64> {
                let result = try await ca.runChecked(["list"], ["--revoked", "--json"])
                let rows = (try JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]]) ?? []
                return Set(rows.compactMap { ($0["serial"] as? Int).map(UInt64.init) })
            }
            // Signed means a detached signature beside the KRL (revoked.krl.sig), never a
            // signature section inside it (OpenSSH dropped those in 9.4).
            let signature = URL(fileURLWithPath: ca.krlFile.path + ".sig")
            let signedBefore = try KRL.parse(Array(try Data(contentsOf: ca.krlFile)))
            let verifiedBefore = try await sshKeygenVerify(krl: ca.krlFile, signature: signature, caKey: ca.userCAPublicKey, in: dir)
            #expect(signedBefore.signatures.isEmpty && verifiedBefore.verified, "[krl] sign = true, yet the KRL is not signed: \(verifiedBefore.result)")

            // The host CA first: the KRL stays signed by the (still trusted) user CA key.
            try await ca.revokeChecked(["--ca-key-compromised", "--host"])
            let afterHost = try KRL.parse(Array(try Data(contentsOf: ca.krlFile)))
            let verifiedAfterHost = try await sshKeygenVerify(krl: ca.krlFile, signature: signature, caKey: ca.userCAPublicKey, in: dir)
            #expect(afterHost.signatures.isEmpty && verifiedAfterHost.verified, "\(verifiedAfterHost.result)")
            #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: hostCert.file))
            #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: ca.hostCAPublicKey))
            #expect(!(try await sshKeygenRevoked(krl: ca.krlFile, file: ca.userCAPublicKey)))
            #expect(try await listedRevoked() == [userCert.certificate.body.serial, hostCert.certificate.body.serial])

            let result = try await ca.revokeChecked(["--ca-key-compromised"])
            #expect(result.stderrText.contains("unsigned"), "no warning that the KRL goes out unsigned:\n\(result)")
            let afterUser = try KRL.parse(Array(try Data(contentsOf: ca.krlFile)))
            #expect(afterUser.signatures.isEmpty && !fileExists(signature), "the KRL is signed by the key it revokes")
            #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: ca.userCAPublicKey))
            #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: userCert.file))
            #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: hostCert.file))
            #expect(try await sshKeygenRevoked(krl: ca.krlFile, file: otherCert.file))
            #expect(!(try await sshKeygenRevoked(krl: ca.krlFile, file: key.publicKey)))
            #expect(try await listedRevoked() == Set([userCert, hostCert, otherCert].map(\.certificate.body.serial)))
            let check = try await SSHCA.run(["krl", "check", "--krl", ca.krlFile.path, ca.userCAPublicKey.path])
            #expect(check.exitCode == 1, "\(check)")
            // `krl write` afterwards also stays unsigned and loadable.
            let written = dir.child("after.krl")
            try await ca.runChecked(["krl", "write"], ["--output", written.path])
            try await expectKRLLoadable(written)
            #expect(try KRL.parse(Array(try Data(contentsOf: written))).signatures.isEmpty)
        }
    }

    /// `--key-id` promises "every certificate with that key id, now and later". The KRL must name
    /// the id under the CA's key even when this ledger has issued nothing with that CA yet (a CA
    /// home from before the ledger, whose earlier certificates the ledger never saw, or a host CA
    /// that has signed nothing so far).
    @Test("a key-id revocation reaches the KRL before the CA has issued anything")
    func keyIDRevocationWithoutIssuedCertificates() async throws {
        try await withTemporaryDirectory(prefix: "ledger-krl-id") { dir in
            let home = try await CAHomeFixture.create(in: dir)
            let key = try await makeUserKey(dir, "k")
            // A certificate signed with the CA key outside this ledger (as before the ledger existed).
            let exported = dir.child("user_ca_openssh")
            let export = try await home.run(["ca-key"], ["--export-private"])
            guard export.succeeded else { throw SubprocessError.failed(export) }
            try writeData(export.stdout, to: exported, mode: 0o600)
            try await runChecked("ssh-keygen", ["-q", "-s", exported.path, "-I", "old-laptop", "-n", "root", "-z", "4242", key.publicKey.path],
                                 environment: SSHKeygen.environment)

            try await home.revokeChecked(["--key-id", "old-laptop"])
            let krl = try home.publishedKRL()
            #expect(krl.certificates.contains { $0.keyIDs.contains("old-laptop") },
                    "the published KRL does not carry the revoked key id: \(krl)")
            #expect(try await sshKeygenRevoked(krl: home.krlFile, file: key.certificate),
                    "ssh-keygen -Q says a certificate with the revoked key id \"old-laptop\" is not revoked")
        }
    }
}
