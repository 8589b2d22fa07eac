import Common
import Foundation
import Testing
import TestSupport

/// What a test asked `sshca sign` for, and what the certificate must then hold.
struct SignRequest: Sendable, CustomStringConvertible {
    enum Validity: Sendable {
        /// Now-relative: validAfter within `after` seconds of signing, validBefore within `before`.
        case relative(after: ClosedRange<Int64>, before: ClosedRange<Int64>)
        case exact(after: UInt64, before: UInt64)
        /// validBefore forever, validAfter anything not in the future.
        case foreverFromNowOrEarlier
    }

    var keyID: String
    var principals: [String]
    var host = false
    var serial: UInt64?
    var validitySpec: String?
    var forceCommand: String?
    var sourceAddress: String?
    var verifyRequired = false
    var addedExtensions: [InspectOutput.Option] = []
    var noDefaultExtensions = false

    static let defaultUserExtensions = [
        "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc",
    ]

    /// Pass `--validity=SPEC` as one argument instead of two.
    var validityWithEquals = false

    var arguments: [String] {
        var args = ["--key-id", keyID, "--principals", principals.joined(separator: ",")]
        if host { args.append("--host") }
        if let serial { args += ["--serial", String(serial)] }
        if let validitySpec { args += validityWithEquals ? ["--validity=\(validitySpec)"] : ["--validity", validitySpec] }
        if let forceCommand { args += ["--force-command", forceCommand] }
        if let sourceAddress { args += ["--source-address", sourceAddress] }
        if verifyRequired { args.append("--verify-required") }
        for ext in addedExtensions { args += ["--extension", ext.value.map { "\(ext.name)=\($0)" } ?? ext.name] }
        if noDefaultExtensions { args.append("--no-default-extensions") }
        return args
    }

    /// Critical options in wire order (strcmp order of names).
    var expectedCriticalOptions: [InspectOutput.Option] {
        var options: [InspectOutput.Option] = []
        if let forceCommand { options.append(.init(name: "force-command", value: forceCommand)) }
        if let sourceAddress { options.append(.init(name: "source-address", value: sourceAddress)) }
        if verifyRequired { options.append(.init(name: "verify-required", value: nil)) }
        return options.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    /// Extensions in wire order (strcmp order of names).
    var expectedExtensions: [InspectOutput.Option] {
        var byName: [String: InspectOutput.Option] = [:]
        if !host && !noDefaultExtensions {
            for name in Self.defaultUserExtensions { byName[name] = .init(name: name, value: nil) }
        }
        for ext in addedExtensions { byName[ext.name] = ext }
        return byName.values.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    var expectedValidity: Validity {
        let day: Int64 = 86400
        let backdate: Int64 = 300
        let slack: Int64 = 15
        func duration(_ seconds: Int64) -> Validity {
            // Backdated 5 minutes; the end is either now+d or start+d.
            .relative(after: (-backdate - slack)...(-backdate + slack), before: (seconds - backdate - slack)...(seconds + slack))
        }
        switch validitySpec {
        case nil: return duration(day)
        case "90m": return duration(90 * 60)
        case "16h": return duration(16 * 3600)
        case "30d": return duration(30 * day)
        case "1w": return duration(7 * day)
        case "+16h":
            return .relative(after: (-backdate - slack)...slack, before: (16 * 3600 - backdate - slack)...(16 * 3600 + slack))
        case "-5m:+1d":
            return .relative(after: (-300 - slack)...(-300 + slack), before: (day - slack)...(day + slack))
        case "20300101:20300102": return .exact(after: 1_893_456_000, before: 1_893_542_400)
        case "203001021530:20300103153045": return .exact(after: 1_893_598_200, before: 1_893_684_645)
        case "20200101:20200102": return .exact(after: 1_577_836_800, before: 1_577_923_200)
        case "always:forever": return .exact(after: 0, before: foreverTimestamp)
        case "forever": return .foreverFromNowOrEarlier
        case let other?: fatalError("no expectation written for validity \(other)")
        }
    }

    var description: String { arguments.map(shellQuoted).joined(separator: " ") }
}

/// Checks one certificate made by `sshca sign` against what was requested, with three
/// independent readers: ssh-keygen -L, sshca inspect --json and (non-sk) Python cryptography.
func crossCheckCertificate(
    _ cert: URL,
    request: SignRequest,
    keyPublicFile: URL,
    expectedCertificateType: String,
    caPublicKey: URL,
    caType: CAKeyType?,
    signedBetween start: UInt64, and end: UInt64,
    checkWithPython: Bool,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let context = "request: \(request)\ncert: \(cert.path)"
    let certLine = try readText(cert)
    #expect(
        certLine.split(separator: " ").first.map(String.init) == expectedCertificateType,
        "certificate type name: \(certLine.prefix(80))\n\(context)", sourceLocation: sourceLocation)

    let keyFingerprint = try await SSHKeygen.fingerprint(keyPublicFile)
    let caFingerprint = try await SSHKeygen.fingerprint(caPublicKey)

    // 1. ssh-keygen -L
    let listing = try await SSHKeygen.listCertificate(cert)
    #expect(listing.certificateTypeName == expectedCertificateType, "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    #expect(listing.kind == (request.host ? "host" : "user"), "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    #expect(listing.keyID == request.keyID, "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    if let serial = request.serial {
        #expect(listing.serial == serial, "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    }
    #expect(listing.principals == request.principals, "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    #expect(
        listing.criticalOptions == request.expectedCriticalOptions.map { sshKeygenOptionLine(name: $0.name, value: $0.value, critical: true) },
        "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    #expect(
        listing.extensions == request.expectedExtensions.map { sshKeygenOptionLine(name: $0.name, value: $0.value, critical: false) },
        "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    #expect(listing.publicKeyFingerprint == keyFingerprint, "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    #expect(listing.signingCAFingerprint == caFingerprint, "\(context)\n\(listing.raw)", sourceLocation: sourceLocation)
    if let caType {
        #expect(
            caType.acceptableSignatureAlgorithms.contains(listing.signatureAlgorithm),
            "signature algorithm \(listing.signatureAlgorithm) for a \(caType) CA\n\(context)", sourceLocation: sourceLocation)
    }

    // 2. sshca inspect --json
    let (info, inspectResult) = try await SSHCA.inspect(cert)
    #expect(inspectResult.exitCode == 0, "\(inspectResult)", sourceLocation: sourceLocation)
    #expect(info.signatureValid, "inspect says the signature is invalid\n\(context)", sourceLocation: sourceLocation)
    #expect(info.type == (request.host ? "host" : "user"), "\(context)", sourceLocation: sourceLocation)
    #expect(info.certificateType == expectedCertificateType, "\(context)", sourceLocation: sourceLocation)
    #expect(info.keyId == request.keyID, "\(context)", sourceLocation: sourceLocation)
    #expect(info.serial == listing.serial, "\(context)", sourceLocation: sourceLocation)
    #expect(info.serial != 0, "serial 0 (reserved: a KRL cannot revoke it)\n\(context)", sourceLocation: sourceLocation)
    if let serial = request.serial {
        #expect(info.serial == serial, "\(context)", sourceLocation: sourceLocation)
    }
    #expect(info.principals == request.principals, "\(context)", sourceLocation: sourceLocation)
    #expect(info.criticalOptions == request.expectedCriticalOptions, "\(context)", sourceLocation: sourceLocation)
    #expect(info.extensions == request.expectedExtensions, "\(context)", sourceLocation: sourceLocation)
    #expect(info.publicKey.fingerprint == keyFingerprint, "\(context)", sourceLocation: sourceLocation)
    #expect(info.signingCA.fingerprint == caFingerprint, "\(context)", sourceLocation: sourceLocation)
    #expect(info.signatureAlgorithm == listing.signatureAlgorithm, "\(context)", sourceLocation: sourceLocation)
    switch request.expectedValidity {
    case .exact(let after, let before):
        #expect(info.validAfter == after && info.validBefore == before,
                "validity \(info.validAfter)..\(info.validBefore), wanted \(after)..\(before)\n\(context)", sourceLocation: sourceLocation)
    case .relative(let afterRange, let beforeRange):
        let a = Int64(bitPattern: info.validAfter)
        let b = Int64(bitPattern: info.validBefore)
        let lowA = Int64(start) + afterRange.lowerBound, highA = Int64(end) + afterRange.upperBound
        let lowB = Int64(start) + beforeRange.lowerBound, highB = Int64(end) + beforeRange.upperBound
        #expect(a >= lowA && a <= highA, "validAfter \(a) not in \(lowA)...\(highA) (signed at \(start)..\(end))\n\(context)", sourceLocation: sourceLocation)
        #expect(b >= lowB && b <= highB, "validBefore \(b) not in \(lowB)...\(highB) (signed at \(start)..\(end))\n\(context)", sourceLocation: sourceLocation)
    case .foreverFromNowOrEarlier:
        #expect(info.validBefore == foreverTimestamp && info.validAfter <= end + 1, "\(context)", sourceLocation: sourceLocation)
    }
    // ssh-keygen's "Valid:" line agrees with inspect's numbers.
    #expect(
        listing.validity == sshKeygenValidity(after: info.validAfter, before: info.validBefore),
        "ssh-keygen says \"\(listing.validity)\", inspect says \(info.validAfter)..\(info.validBefore)\n\(context)",
        sourceLocation: sourceLocation)

    // 3. Python cryptography (cannot load sk- certificates)
    if checkWithPython {
        let py = try await VerifyScript.run(certificate: cert, caPublicKey: caPublicKey)
        #expect(py.succeeded, "verify_cert.py rejected the certificate:\n\(py)\n\(context)", sourceLocation: sourceLocation)
        if py.succeeded {
            let out = try VerifyScript.decode(py)
            #expect(out.keyId == request.keyID, sourceLocation: sourceLocation)
            #expect(out.serial == info.serial, sourceLocation: sourceLocation)
            #expect(out.principals == request.principals, sourceLocation: sourceLocation)
            #expect(out.validAfter == info.validAfter && out.validBefore == info.validBefore, sourceLocation: sourceLocation)
            #expect(out.type == (request.host ? "host" : "user"), sourceLocation: sourceLocation)
            #expect(
                out.criticalOptions == Dictionary(uniqueKeysWithValues: request.expectedCriticalOptions.map { ($0.name, $0.value ?? "") }),
                "\(py)", sourceLocation: sourceLocation)
            #expect(
                out.extensions == Dictionary(uniqueKeysWithValues: request.expectedExtensions.map { ($0.name, $0.value ?? "") }),
                "\(py)", sourceLocation: sourceLocation)
            #expect(out.signatureAlgorithm == info.signatureAlgorithm, "\(py)", sourceLocation: sourceLocation)
        }
    }
}

@Suite("sshca certificates cross-checked against ssh-keygen, sshca inspect and Python cryptography")
struct CrossCheckTests {
    /// Varied requests, rotated over key types and CA types so that every option meets
    /// every key type somewhere in the matrix.
    static func request(variant: Int, keyType: UserKeyType, caType: CAKeyType) -> SignRequest {
        let id = "\(keyType.rawValue) by \(caType.rawValue)"
        switch variant % 6 {
        case 0:
            return SignRequest(keyID: "plain \(id)", principals: [currentUserName, "alice"])
        case 1:
            return SignRequest(
                keyID: id, principals: ["alice", "bob", "carol"],
                validitySpec: "20300101:20300102", forceCommand: "echo hi there",
                sourceAddress: "127.0.0.1/32,10.0.0.0/8",
                addedExtensions: [.init(name: "custom@example.com", value: "value1")])
        case 2:
            return SignRequest(
                keyID: "Alice Smith <alice@example.com> \(id)", principals: ["deploy"],
                validitySpec: "always:forever", verifyRequired: true,
                addedExtensions: [.init(name: "permit-pty", value: nil), .init(name: "marker@example.com", value: nil)],
                noDefaultExtensions: true)
        case 3:
            return SignRequest(
                keyID: id, principals: ["x"], validitySpec: "203001021530:20300103153045", noDefaultExtensions: true)
        case 4:
            return SignRequest(
                keyID: id, principals: [currentUserName], validitySpec: "1w",
                forceCommand: "/usr/bin/rsync --server --daemon .")
        default:
            return SignRequest(
                keyID: id, principals: ["web-01.example.com", "user_with.dots-and-dashes"],
                validitySpec: "16h",
                addedExtensions: [.init(name: "permit-agent-forwarding", value: nil)], noDefaultExtensions: true)
        }
    }

    @Test("user certificate for every user key type, per CA key type", arguments: CAKeyType.allCases)
    func userCertificatesForEveryKeyType(caType: CAKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(caType, into: dir)
            let caPub = home.child("user_ca.pub")
            let caIndex = CAKeyType.allCases.firstIndex(of: caType)!
            for (index, keyType) in UserKeyType.allCases.enumerated() {
                let key = try await Fixtures.copyUserKey(keyType, into: dir, name: "id_\(keyType.rawValue)")
                let request = Self.request(variant: index + caIndex, keyType: keyType, caType: caType)
                let start = unixNow()
                let result = try await sshcaSign(home: home, request.arguments, publicKey: key.publicKey)
                let end = unixNow()
                #expect(result.succeeded, "\(keyType): \(result)")
                guard result.succeeded else { continue }
                #expect(fileExists(key.certificate), "no \(key.certificate.lastPathComponent) written")
                guard fileExists(key.certificate) else { continue }
                try await crossCheckCertificate(
                    key.certificate, request: request, keyPublicFile: key.publicKey,
                    expectedCertificateType: keyType.certificateTypeName, caPublicKey: caPub, caType: caType,
                    signedBetween: start, and: end, checkWithPython: !keyType.isSecurityKey)
            }
        }
    }

    @Test("host certificate per CA key type, verified against the host CA only", arguments: CAKeyType.allCases)
    func hostCertificatePerCAType(caType: CAKeyType) async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(caType, into: dir)
            let key = try await Fixtures.copyUserKey(.ecdsa256, into: dir, name: "ssh_host_ecdsa_key")
            let request = SignRequest(
                keyID: "host web-01 \(caType)", principals: ["web-01.example.com", "127.0.0.1"], host: true)
            let start = unixNow()
            let result = try await sshcaSign(home: home, request.arguments, publicKey: key.publicKey)
            let end = unixNow()
            try #require(result.succeeded, "\(result)")
            try await crossCheckCertificate(
                key.certificate, request: request, keyPublicFile: key.publicKey,
                expectedCertificateType: UserKeyType.ecdsa256.certificateTypeName,
                caPublicKey: home.child("host_ca.pub"), caType: caType,
                signedBetween: start, and: end, checkWithPython: true)
            // Signed by the host CA, so the user CA must not verify it.
            let wrongCA = try await VerifyScript.run(certificate: key.certificate, caPublicKey: home.child("user_ca.pub"))
            #expect(wrongCA.exitCode == 1, "verify_cert.py accepted a host cert against the user CA:\n\(wrongCA)")
        }
    }

    @Test("sshca init writes the documented CA home", arguments: CAKeyType.allCases)
    func initCreatesHome(caType: CAKeyType) async throws {
        let home = try await Fixtures.caHome(caType)
        for name in ["sshca.toml", "user_ca.key", "user_ca.pub", "host_ca.key", "host_ca.pub"] {
            #expect(fileExists(home.child(name)), "\(name) missing from \(home.path)")
        }
        for name in ["user_ca.key", "host_ca.key"] {
            let mode = try fileMode(home.child(name))
            #expect(mode == 0o600, "\(name) mode is \(String(mode, radix: 8))")
            let pem = try readText(home.child(name))
            #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"), "\(name) is not unencrypted PKCS#8 PEM: \(pem.prefix(40))")
        }
        let userPub = try readText(home.child("user_ca.pub"))
        let hostPub = try readText(home.child("host_ca.pub"))
        #expect(userPub.split(separator: " ").first.map(String.init) == caType.publicKeyTypeName)
        #expect(hostPub.split(separator: " ").first.map(String.init) == caType.publicKeyTypeName)
        #expect(keyTypeAndBlob(userPub) != keyTypeAndBlob(hostPub), "user and host CA share a key")
        _ = try await SSHKeygen.fingerprint(home.child("user_ca.pub"))  // ssh-keygen can read it

        let caKey = try await SSHCA.run(["ca-key", "--home", home.path])
        #expect(caKey.succeeded, "\(caKey)")
        #expect(caKey.stdoutText.split(separator: "\n").count == 1, "ca-key prints one line: \(caKey)")
        #expect(keyTypeAndBlob(caKey.stdoutText) == keyTypeAndBlob(userPub))
        let hostKey = try await SSHCA.run(["ca-key", "--home", home.path, "--host"])
        #expect(hostKey.succeeded, "\(hostKey)")
        #expect(keyTypeAndBlob(hostKey.stdoutText) == keyTypeAndBlob(hostPub))

        if caType != .ed25519 {
            // OpenSSH reads PKCS#8 PEM for RSA and ECDSA: the .pub must match the private key.
            for (priv, pub) in [("user_ca.key", userPub), ("host_ca.key", hostPub)] {
                let derived = try await runProcess("ssh-keygen", ["-y", "-f", home.child(priv).path])
                #expect(derived.succeeded, "\(derived)")
                #expect(keyTypeAndBlob(derived.stdoutText) == keyTypeAndBlob(pub), "\(priv) does not match its .pub")
            }
        }
    }

    @Test("--validity forms give the documented bounds")
    func validitySpecifications() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            // (spec, pass as --validity=SPEC). "-5m:+1d" is the documented ssh-keygen -V form and
            // must work as two arguments, `--validity -5m:+1d`, like `ssh-keygen -V -5m:+1d`.
            let specs: [(String?, Bool)] = [
                (nil, false), ("90m", false), ("16h", false), ("30d", false), ("1w", false), ("+16h", false),
                ("-5m:+1d", false), ("-5m:+1d", true), ("20300101:20300102", false),
                ("203001021530:20300103153045", false), ("always:forever", false), ("forever", false),
            ]
            for (i, (spec, equals)) in specs.enumerated() {
                let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "v\(i)")
                var request = SignRequest(keyID: "validity \(spec ?? "default")", principals: ["alice"], validitySpec: spec)
                request.validityWithEquals = equals
                let start = unixNow()
                let result = try await sshcaSign(home: home, request.arguments, publicKey: key.publicKey)
                let end = unixNow()
                #expect(result.succeeded, "\(result)")
                guard result.succeeded else { continue }
                try await crossCheckCertificate(
                    key.certificate, request: request, keyPublicFile: key.publicKey,
                    expectedCertificateType: UserKeyType.ed25519.certificateTypeName,
                    caPublicKey: home.child("user_ca.pub"), caType: .ed25519,
                    signedBetween: start, and: end, checkWithPython: true)
            }
        }
    }

    @Test("serials come from the ledger: consecutive, never repeated; --serial is refused")
    func serialNumbers() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            var seen: [UInt64] = []
            for i in 0..<4 {
                let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "auto\(i)")
                let result = try await sshcaSign(home: home, ["--key-id", "auto \(i)", "--principals", "alice"], publicKey: key.publicKey)
                try #require(result.succeeded, "\(result)")
                let listing = try await SSHKeygen.listCertificate(key.certificate)
                #expect(listing.serial != 0)
                seen.append(listing.serial)
            }
            // One process after another: each takes the ledger's next serial.
            #expect(seen == Array(seen[0]..<(seen[0] + 4)), "serials are not consecutive: \(seen)")

            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "explicit")
            let before = try DirectorySnapshot(dir)
            let refused = try await sshcaSign(home: home, ["--key-id", "explicit", "--principals", "alice", "--serial", "123456789"], publicKey: key.publicKey)
            #expect(refused.exitCode == 65, "\(refused)")
            #expect(refused.stderrText.hasPrefix("error: ") && refused.stderrText.contains("ledger"), "\(refused)")
            #expect(!FileManager.default.fileExists(atPath: key.certificate.path))
            // Only SQLite's shared-memory index may differ (it is rebuilt whenever the ledger is opened).
            let changed = try DirectorySnapshot(dir).differences(from: before).filter { !$0.hasSuffix("ledger.sqlite-shm") }
            #expect(changed.isEmpty, "a refused --serial changed files: \(changed)")
        }
    }

    @Test("tampered certificates fail sshca inspect, ssh-keygen and verify_cert.py")
    func tamperedCertificateIsDetected() async throws {
        try await withTemporaryDirectory { dir in
            let home = try await Fixtures.copyCAHome(.ed25519, into: dir)
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id")
            let result = try await sshcaSign(home: home, ["--key-id", "tamper-me", "--principals", "alice"], publicKey: key.publicKey)
            try #require(result.succeeded, "\(result)")
            let good = try await SSHCA.inspect(key.certificate)
            #expect(good.1.exitCode == 0 && good.0.signatureValid)

            // Change one letter of the key id inside the signed body.
            let line = try readText(key.certificate)
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            var blob = try #require(Data(base64Encoded: fields[1]))
            let needle = Data("tamper-me".utf8)
            let range = try #require(blob.range(of: needle))
            blob[range.upperBound - 1] = UInt8(ascii: "x")
            let tampered = dir.child("tampered-cert.pub")
            try writeText("\(fields[0]) \(blob.base64EncodedString())\n", to: tampered)

            let inspect = try await SSHCA.run(["inspect", "--json", tampered.path])
            #expect(inspect.exitCode == 1, "inspect must exit 1 for a bad signature:\n\(inspect)")
            if let info = try? JSONDecoder().decode(InspectOutput.self, from: inspect.stdout) {
                #expect(!info.signatureValid)
                #expect(info.keyId == "tamper-mx")
            }
            let plain = try await SSHCA.run(["inspect", tampered.path])
            #expect(plain.exitCode == 1, "\(plain)")
            let py = try await VerifyScript.run(certificate: tampered, caPublicKey: home.child("user_ca.pub"))
            #expect(py.exitCode == 1, "\(py)")
            let keygen = try await runProcess("ssh-keygen", ["-L", "-f", tampered.path])
            #expect(!keygen.succeeded, "ssh-keygen accepted a tampered certificate:\n\(keygen)")
        }
    }

    @Test("sshca inspect refuses what is not a certificate with exit 65")
    func inspectRejectsNonCertificates() async throws {
        try await withTemporaryDirectory { dir in
            let key = try await Fixtures.copyUserKey(.ed25519, into: dir, name: "id")
            let garbage = dir.child("garbage.pub")
            try writeText("ssh-ed25519-cert-v01@openssh.com AAAA%%%not-base64 x\n", to: garbage)
            let empty = dir.child("empty.pub")
            try writeText("", to: empty)
            for file in [key.publicKey, garbage, empty] {
                let result = try await SSHCA.run(["inspect", "--json", file.path])
                expectFailure(result, exitCodes: [65], mentions: [])
            }
        }
    }
}
