import Foundation
import Testing
import TestSupport
@testable import SSHFormat

/// Parses text that must be refused and returns the error (recording an issue if it parsed).
private func refusal(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> SSHFormatError? {
    do throws(SSHFormatError) {
        let parsed = try PublicKeyText(parsing: text)
        Issue.record("accepted: \(parsed)", sourceLocation: sourceLocation)
        return nil
    } catch {
        // Every refusal is a readable sentence, not a type dump.
        #expect(error.description.count > 15, sourceLocation: sourceLocation)
        #expect(!error.description.contains("SSHFormatError"), sourceLocation: sourceLocation)
        return error
    }
}

@Suite("Public key text (OpenSSH lines and RFC 4716)")
struct PublicKeyTextTests {
    var ed25519: KeyZoo.Entry { KeyZoo.shared["ed25519"] }

    @Test("each ssh-keygen .pub line parses to its blob and comment", arguments: KeyZoo.names)
    func pubLines(name: String) throws {
        let entry = KeyZoo.shared[name]
        let parsed = try PublicKeyText(parsing: entry.line + "\n")
        #expect(parsed.key.blob == entry.blob)
        #expect(parsed.comment == "\(name)@zoo")
    }

    @Test func commentKeepsInnerSpacingAndMayBeAbsent() throws {
        let base = ed25519.line.split(separator: " ").prefix(2).joined(separator: " ")
        #expect(try PublicKeyText(parsing: base).comment == "")
        #expect(try PublicKeyText(parsing: base + "\n").comment == "")
        #expect(try PublicKeyText(parsing: base + " alice@laptop  (work)  ").comment == "alice@laptop  (work)")
        #expect(try PublicKeyText(parsing: base + "\tgrüße ✓").comment == "grüße ✓")
        // Tabs between fields.
        let tabbed = ed25519.line.split(separator: " ", maxSplits: 2).joined(separator: "\t")
        #expect(try PublicKeyText(parsing: tabbed).key.blob == ed25519.blob)
    }

    @Test func crlfBlankLinesCommentsAndBOMAreTolerated() throws {
        let expected = try PublicKeyText(parsing: ed25519.line)
        for text in [
            ed25519.line + "\r\n",
            "\r\n\r\n" + ed25519.line + "\r\n\r\n",
            "# my laptop key\n\n   \n" + ed25519.line + "\n# trailing comment\n",
            "  \t" + ed25519.line + "  \n",
            "\u{FEFF}" + ed25519.line + "\n",
        ] {
            let parsed = try PublicKeyText(parsing: text)
            #expect(parsed == expected, "input \(text.debugDescription)")
        }
        #expect(try PublicKeyText(parsing: ed25519.line + "\r\n").comment == "ed25519@zoo")
    }

    // MARK: RFC 4716

    @Test("RFC 4716 from ssh-keygen -e gives the same key and its Comment header", arguments: KeyZoo.names)
    func rfc4716FromSSHKeygen(name: String) throws {
        let text = try run("ssh-keygen", ["-e", "-m", "RFC4716", "-f", KeyZoo.shared.publicPath(name)]).stdoutText
        #expect(text.hasPrefix("---- BEGIN SSH2 PUBLIC KEY ----"))
        let parsed = try PublicKeyText(parsing: text)
        #expect(parsed.key.blob == KeyZoo.shared[name].blob)
        // ssh-keygen writes: Comment: "256-bit ED25519, converted by user@host from OpenSSH"
        let commentLine = try #require(text.split(separator: "\n").first { $0.hasPrefix("Comment: ") })
        let quoted = commentLine.dropFirst("Comment: ".count)
        #expect(parsed.comment == String(quoted.dropFirst().dropLast()))
        #expect(parsed.comment.contains("converted by"))
        // The same with CRLF line endings.
        let crlf = text.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try PublicKeyText(parsing: crlf) == parsed)
    }

    /// Base64 of the ed25519 zoo key, wrapped at `width` characters.
    func wrappedBase64(width: Int) -> [String] {
        let b64 = ed25519.blob.base64EncodedString()
        var lines: [String] = []
        var rest = Substring(b64)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(width)))
            rest = rest.dropFirst(width)
        }
        return lines
    }

    @Test func rfc4716HeadersWithContinuationLinesAreSkipped() throws {
        let text = (["---- BEGIN SSH2 PUBLIC KEY ----",
                     "Subject: alice",
                     "x-private-thing: this header goes on \\",
                     "and on \\",
                     "AAAAC3NzaC1lZDI1NTE5 and ends here",
                     "Comment: \"alice's key\""] + wrappedBase64(width: 20) + ["---- END SSH2 PUBLIC KEY ----", ""])
            .joined(separator: "\n")
        let parsed = try PublicKeyText(parsing: text)
        #expect(parsed.key.blob == ed25519.blob)
        #expect(parsed.comment == "alice's key")
    }

    @Test func rfc4716CommentWithoutQuotes() throws {
        let text = (["---- BEGIN SSH2 PUBLIC KEY ----", "Comment: rsa-key-20240101"] + wrappedBase64(width: 64)
                    + ["---- END SSH2 PUBLIC KEY ----"]).joined(separator: "\n")
        #expect(try PublicKeyText(parsing: text).comment == "rsa-key-20240101")
    }

    /// RFC 4716 section 3.3: a header line ending in a backslash continues on the next line; the
    /// logical value is the two lines joined without the backslash.
    @Test func rfc4716CommentContinuedOverTwoLines() throws {
        let text = (["---- BEGIN SSH2 PUBLIC KEY ----",
                     "Comment: \"a comment that is long enough to be wrapped by the \\",
                     "exporting program\""] + wrappedBase64(width: 64) + ["---- END SSH2 PUBLIC KEY ----"])
            .joined(separator: "\n")
        let parsed = try PublicKeyText(parsing: text)
        #expect(parsed.key.blob == ed25519.blob)
        #expect(parsed.comment == "a comment that is long enough to be wrapped by the exporting program")
    }

    @Test func rfc4716WithoutEndOrWithTwoBlocksIsRefused() throws {
        let block = (["---- BEGIN SSH2 PUBLIC KEY ----"] + wrappedBase64(width: 64) + ["---- END SSH2 PUBLIC KEY ----"])
            .joined(separator: "\n")
        #expect(try PublicKeyText(parsing: block).key.blob == ed25519.blob)
        let noEnd = String(block.dropLast("---- END SSH2 PUBLIC KEY ----".count))
        guard case .notAKey(let why)? = refusal(noEnd) else { Issue.record("wrong error"); return }
        #expect(why.contains("END SSH2 PUBLIC KEY"))

        let twoStarts = (["---- BEGIN SSH2 PUBLIC KEY ----"] + wrappedBase64(width: 64) + [block]).joined(separator: "\n")
        guard case .notAKey(let why2)? = refusal(twoStarts) else { Issue.record("wrong error"); return }
        #expect(why2.contains("more than one"))

        let empty = "---- BEGIN SSH2 PUBLIC KEY ----\nComment: x\n---- END SSH2 PUBLIC KEY ----\n"
        #expect(refusal(empty) != nil)
        let corrupt = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA!!!!\n---- END SSH2 PUBLIC KEY ----\n"
        #expect(refusal(corrupt) != nil)
    }

    // MARK: refusals

    @Test func privateKeysAreRefusedAsPrivateKeys() throws {
        let dir = try TempDir()
        _ = try sshKeygenKey(in: dir, name: "openssh", type: "ed25519")
        _ = try sshKeygenKey(in: dir, name: "pem", type: "ecdsa", bits: 256)
        try run("ssh-keygen", ["-q", "-p", "-N", "", "-m", "PEM", "-f", dir.file("pem")])
        try run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", dir.file("pkcs8")])
        try run("openssl", ["pkcs8", "-topk8", "-in", dir.file("pkcs8"), "-out", dir.file("pkcs8enc"), "-passout", "pass:secret12"])

        let cases: [(file: String, kind: String)] = [
            ("openssh", "OpenSSH format"), ("pem", "PEM"), ("pkcs8", "PEM"), ("pkcs8enc", "encrypted PKCS#8 PEM"),
        ]
        for (file, kind) in cases {
            let text = try dir.readText(file)
            #expect(refusal(text) == .privateKeyGiven(kind), "\(file)")
        }
        #expect(try dir.readText("pem").hasPrefix("-----BEGIN EC PRIVATE KEY-----"))

        let ppk = """
        PuTTY-User-Key-File-3: ssh-ed25519
        Encryption: none
        Comment: eddsa-key-20240101
        Public-Lines: 2
        AAAAC3NzaC1lZDI1NTE5AAAAIJn67dkEc4+aFGGCN3WqvUumlb1dAJoPK0q4Oz/b
        5+zr
        Private-Lines: 1
        AAAAIA==
        Private-MAC: 00

        """
        #expect(refusal(ppk) == .privateKeyGiven("PuTTY .ppk"))
        let sshcom = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nAAAA\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n"
        #expect(refusal(sshcom) == .privateKeyGiven("SSH.COM format"))
        #expect(SSHFormatError.privateKeyGiven("PEM").description.contains("private key"))
    }

    @Test func certificatesAreRefusedAsCertificates() throws {
        let dir = try TempDir()
        _ = try sshKeygenKey(in: dir, name: "ca", type: "ed25519")
        _ = try sshKeygenKey(in: dir, name: "user", type: "ed25519")
        try run("ssh-keygen", ["-q", "-s", dir.file("ca"), "-I", "id", "-n", "alice", dir.file("user.pub")])
        let certLine = try dir.readText("user-cert.pub")
        #expect(refusal(certLine) == .certificateGiven)
        // A certificate blob behind a plain key type name: the mismatch is caught.
        let blob = try #require(blobOfLine(certLine))
        let disguised = "ssh-ed25519 " + blob.base64EncodedString()
        guard case .invalid(let why)? = refusal(disguised) else { Issue.record("wrong error"); return }
        #expect(why.contains("ssh-ed25519-cert-v01@openssh.com"))
        // A certificate in RFC 4716 clothing.
        let rfc = "---- BEGIN SSH2 PUBLIC KEY ----\n\(blob.base64EncodedString())\n---- END SSH2 PUBLIC KEY ----\n"
        #expect(refusal(rfc) == .certificateGiven)
        #expect(SSHFormatError.certificateGiven.description.contains("certificate"))
    }

    @Test func truncatedAndInvalidBase64() throws {
        let fields = ed25519.line.split(separator: " ")
        let b64 = String(fields[1])
        // Cut so the base64 no longer decodes (length not a multiple of 4).
        let cutOdd = String(b64.prefix(b64.count - 3))
        guard case .notAKey(let why1)? = refusal("ssh-ed25519 \(cutOdd) c") else { Issue.record("wrong error"); return }
        #expect(why1.contains("corrupt or truncated"))
        // Cut at a multiple of 4: decodes, but the blob is short.
        let cutEven = String(b64.prefix(b64.count - 8))
        #expect(Data(base64Encoded: cutEven) != nil)
        guard case .notAKey(let why2)? = refusal("ssh-ed25519 \(cutEven) c") else { Issue.record("wrong error"); return }
        #expect(why2.contains("truncated"))
        // Characters outside the base64 alphabet.
        guard case .notAKey(let why3)? = refusal("ssh-ed25519 AAAA*AAA c") else { Issue.record("wrong error"); return }
        #expect(why3.contains("base64"))
        // Base64 of something that is not even a string.
        #expect(refusal("ssh-ed25519 AAA= c") != nil)
        // A type name with no base64 at all.
        #expect(refusal("ssh-ed25519") != nil)
    }

    @Test func typeAndBlobMismatch() throws {
        let rsa = KeyZoo.shared["rsa2048"]
        let text = "ssh-rsa " + ed25519.blob.base64EncodedString() + " mixed"
        guard case .invalid(let why)? = refusal(text) else { Issue.record("wrong error"); return }
        #expect(why.contains("ssh-rsa") && why.contains("ssh-ed25519"))
        let other = "ssh-ed25519 " + rsa.blob.base64EncodedString()
        #expect(refusal(other) != nil)
    }

    @Test func keySplitOverLinesIsRefused() {
        let fields = ed25519.line.split(separator: " ")
        let b64 = fields[1]
        let split = "ssh-ed25519 \(b64.prefix(30))\n\(b64.dropFirst(30)) comment\n"
        guard case .notAKey(let why)? = refusal(split) else { Issue.record("wrong error"); return }
        #expect(why.contains("split over 2 lines"))
    }

    @Test func severalKeysAreRefused() {
        let two = ed25519.line + "\n" + KeyZoo.shared["ecdsa256"].line + "\n"
        guard case .notAKey(let why)? = refusal(two) else { Issue.record("wrong error"); return }
        #expect(why.contains("2 keys"))
        let authorizedKeys = KeyZoo.names.map { KeyZoo.shared[$0].line }.joined(separator: "\n")
        guard case .notAKey(let why7)? = refusal(authorizedKeys) else { Issue.record("wrong error"); return }
        #expect(why7.contains("7 keys"))
    }

    @Test func dsaKeysAreRefusedWithAnExplanation() {
        var w = SSHWriter()
        w.writeString("ssh-dss")
        w.writeMPInt(unsigned: [UInt8](repeating: 0xc5, count: 128)) // p
        w.writeMPInt(unsigned: [UInt8](repeating: 0x9d, count: 20)) // q
        w.writeMPInt(unsigned: [UInt8](repeating: 0x42, count: 128)) // g
        w.writeMPInt(unsigned: [UInt8](repeating: 0x37, count: 128)) // y
        let line = "ssh-dss " + w.data.base64EncodedString() + " old@host"
        guard case .unsupportedKeyType(let why)? = refusal(line) else { Issue.record("wrong error"); return }
        #expect(why.contains("DSA"))
        #expect(why.contains("ed25519"))
    }

    @Test func emptyInputs() {
        for text in ["", "\n", "\r\n\r\n", "   \n\t\n", "# just a comment\n"] {
            guard case .notAKey(let why)? = refusal(text) else { Issue.record("wrong error for \(text.debugDescription)"); continue }
            #expect(why.contains("empty"))
        }
    }

    @Test func oversizedInputIsRefusedBeforeParsing() throws {
        let big = ed25519.line + "\n" + String(repeating: "#", count: PublicKeyText.maximumLength)
        guard case .notAKey(let why)? = refusal(big) else { Issue.record("wrong error"); return }
        #expect(why.contains("bytes"))
        // Just at the limit is still parsed.
        let padding = PublicKeyText.maximumLength - ed25519.line.utf8.count - 3
        let atLimit = "#" + String(repeating: "x", count: padding) + "\n" + ed25519.line + "\n"
        #expect(atLimit.utf8.count == PublicKeyText.maximumLength)
        #expect(try PublicKeyText(parsing: atLimit).key.blob == ed25519.blob)
    }

    /// Parsing must stay linear in the input: a key file padded with whitespace (up to the 64 KiB
    /// the parser accepts) must not make `sshca sign` spin. 16 KiB keeps this test fast; a linear
    /// parser needs a few milliseconds for it.
    @Test func trailingWhitespaceIsParsedInLinearTime() throws {
        let padded = ed25519.line + String(repeating: " ", count: 16 * 1024) + "\n"
        let start = ContinuousClock.now
        let parsed = try PublicKeyText(parsing: padded)
        let elapsed = ContinuousClock.now - start
        #expect(parsed.comment == "ed25519@zoo")
        #expect(elapsed < .milliseconds(250), "parsing 16 KiB of trailing whitespace took \(elapsed)")
    }

    @Test func authorizedKeysOptionsAreExplained() {
        let line = "from=\"10.0.0.1\" " + ed25519.line
        guard case .notAKey(let why)? = refusal(line) else { Issue.record("wrong error"); return }
        #expect(why.contains("options"))
    }

    @Test func garbageLines() {
        #expect(refusal("hello world\n") != nil)
        #expect(refusal("ssh-foo AAAAB3NzaC1mb28= x") != nil)
    }
}
