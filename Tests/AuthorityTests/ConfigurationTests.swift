@testable import Common
import Foundation
import Testing
import TestSupport
import SSHFormat
@testable import Authority

private func configurationError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> SSHCAError? {
    do throws(SSHCAError) {
        let parsed = try Configuration(parsing: text, fileName: "/srv/ca/sshca.toml")
        Issue.record("accepted: \(parsed)", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.code == .badConfig, sourceLocation: sourceLocation)
        #expect(error.isInputError, sourceLocation: sourceLocation)
        return error
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test func defaults() throws {
        let c = Configuration()
        #expect(c.userKeyStorage == .file && c.hostKeyStorage == .file)
        #expect(c.userValidity == 86400 && c.hostValidity == 86400)
        #expect(c.backdate == 300)
        #expect(c.userExtensions == CertificateOption.defaultUserExtensions)
        #expect(c.minimumRSABits == 2048)
        #expect(c.ledgerLockTimeout == 10)
        #expect(try Configuration(parsing: "") == c)
        #expect(try Configuration(parsing: "# nothing\n[ca]\n[certificates]\n") == c)
    }

    @Test func renderedDefaultFileParsesBackEqual() throws {
        let c = Configuration()
        let text = c.renderedFile()
        #expect(try Configuration(parsing: text) == c)
        #expect(text.contains("[ca]") && text.contains("[certificates]"))
        #expect(text.contains("user_validity = \"1d\""))
        #expect(text.contains("backdate = \"5m\""))
    }

    @Test func renderedCustomFilesParseBackEqual() throws {
        var variants: [Configuration] = []
        var a = Configuration()
        a.userKeyStorage = .agent
        a.userValidity = 5400
        a.hostValidity = 90061
        a.backdate = 0
        a.userExtensions = []
        a.minimumRSABits = 4096
        variants.append(a)
        var b = Configuration()
        b.hostKeyStorage = .agent
        b.userValidity = 1_209_603
        b.hostValidity = 1
        b.backdate = 3600
        b.userExtensions = ["permit-pty", "login@example.com", "no-touch-required"]
        b.minimumRSABits = 16384
        b.signKRL = true
        b.krlExpiredMargin = 0
        variants.append(b)
        var c = Configuration()
        c.userValidity = .max
        c.hostValidity = .max - 1
        c.krlExpiredMargin = 7 * 86400 + 5
        c.ledgerLockTimeout = 3600
        variants.append(c)
        // Found by fuzzing: strings were written between quotes as they were, so a quote, a
        // backslash or a control character in them came back different (or not at all).
        var d = Configuration()
        d.userExtensions = ["per\\m@rc", "say\"hi\"@example.com", "GG\u{3DC}@x"]
        if var engineer = d.roles["engineer"] {
            engineer.forceCommand = "echo \"only\tbackups\" \\\n"
            d.roles["engineer"] = engineer
        }
        d.service.tlsCertificate = "certs/\"odd\"\u{7F}.crt"
        variants.append(d)
        for configuration in variants {
            let text = configuration.renderedFile()
            let parsed = try Configuration(parsing: text)
            #expect(parsed == configuration, "\(text)")
            // And through a CA home's file name.
            #expect(try Configuration(parsing: text, fileName: "/x/sshca.toml") == configuration)
        }
    }

    @Test func everySettingIsRead() throws {
        let text = """
        [ca]
        user_key = "agent"
        host_key = "agent"
        [certificates]
        user_validity = "16h"
        host_validity = "30d"
        backdate = "1m"
        user_extensions = ["permit-pty", "x@example.com"]
        min_rsa_bits = 3072
        [ledger]
        lock_timeout = "1m30s"
        """
        let c = try Configuration(parsing: text)
        #expect(c.ledgerLockTimeout == 90)
        #expect(c.userKeyStorage == .agent && c.hostKeyStorage == .agent)
        #expect(c.userValidity == 57600 && c.hostValidity == 2_592_000 && c.backdate == 60)
        #expect(c.userExtensions == ["permit-pty", "x@example.com"])
        #expect(c.minimumRSABits == 3072)
    }

    @Test("mistakes are errors naming the file, line and setting", arguments: [
        ("[certs]\nuser_validity = \"1d\"\n", 1, "unknown table [certs]"),
        ("[ca]\n\n[roles.admin]\n", 3, "unknown table [roles.admin]"),
        ("[role.dev]\nprincipals = []\n", 2, "at least one principal"),
        ("[role.dev]\nmax_validity = \"2x\"\n", 2, "max_validity"),
        ("[role.dev]\ncolour = \"red\"\n", 2, "unknown key \"colour\" in [role.dev]"),
        ("[role.dev]\nkey_types = [\"ssh-dss\"]\n", 2, "unknown key type \"ssh-dss\""),
        ("[role.dev]\nprincipals = [\"a b\"]\n", 2, "principals"),
        ("\n[role.dev]\ndefault_validity = \"2d\"\nmax_validity = \"1d\"\n", 2, "default_validity 2d is longer than its max_validity 1d"),
        ("[service]\nlisten = \"nowhere\"\n", 2, "HOST:PORT"),
        ("[service]\nfailures_per_minute = 0\n", 2, "failures_per_minute"),
        ("[service]\nsecurity_staff = \"alice\"\n", 2, "security_staff"),
        ("[ca]\nuser_keys = \"file\"\n", 2, "unknown key \"user_keys\""),
        ("validity = \"1d\"\n", 1, "the top level"),
        ("[ca]\nuser_key = 1\n", 2, "expected a string"),
        ("[ca]\nuser_key = \"disk\"\n", 2, "\"file\" or \"agent\""),
        ("[ca]\nhost_key = true\n", 2, "expected a string"),
        ("[certificates]\nuser_validity = 16\n", 2, "expected a string"),
        ("[certificates]\n\nuser_validity = \"16x\"\n", 3, "user_validity"),
        ("[certificates]\nhost_validity = \"\"\n", 2, "host_validity"),
        ("[certificates]\nbackdate = \"5 minutes\"\n", 2, "backdate"),
        ("[certificates]\nuser_validity = \"0\"\n", 2, "zero"),
        ("[certificates]\nhost_validity = \"0s\"\n", 2, "zero"),
        ("[certificates]\nuser_validity = \"0m0h\"\n", 2, "zero"),
        ("[certificates]\nuser_extensions = \"permit-pty\"\n", 2, "list"),
        ("[certificates]\nuser_extensions = [1]\n", 2, "list of strings"),
        ("[certificates]\nuser_extensions = [\"permit-pty\",\n  \"permit-x11-forwarding\"]\n", 2, "did you mean permit-X11-forwarding?"),
        ("[certificates]\nuser_extensions = [\"permit_pty\"]\n", 2, "unknown extension"),
        ("[certificates]\nuser_extensions = [\"\"]\n", 2, "empty"),
        ("[certificates]\nuser_extensions = [\"a b@example.com\"]\n", 2, "whitespace"),
        ("[certificates]\nmin_rsa_bits = 1024\n", 2, "2048 to 16384"),
        ("[certificates]\nmin_rsa_bits = 32768\n", 2, "2048 to 16384"),
        ("[certificates]\nmin_rsa_bits = \"2048\"\n", 2, "2048 to 16384"),
        ("[certificates]\nuser_validity = \"1d\"\nuser_validity = \"2d\"\n", 3, "twice"),
        ("[ledger]\nlock_timeout = \"0s\"\n", 2, "from 1s to 1h"),
        ("[ledger]\n\nlock_timeout = \"2h\"\n", 3, "from 1s to 1h"),
        ("[ledger]\nlock_timeout = 10\n", 2, "expected a string"),
        ("[ledger]\npath = \"x.sqlite\"\n", 2, "unknown key \"path\" in [ledger]"),
    ])
    func mistakes(text: String, line: Int, fragment: String) {
        guard let error = configurationError(text) else { return }
        #expect(error.reason.hasPrefix("/srv/ca/sshca.toml:\(line): "), "\(error.reason)")
        #expect(error.reason.contains(fragment), "\(error.reason)")
    }

    /// PROTOCOL.certkeys: each option name appears at most once in a certificate.
    @Test func duplicateExtensionNamesAreRefused() {
        guard let error = configurationError("[certificates]\nuser_extensions = [\"permit-pty\", \"permit-pty\"]\n") else { return }
        #expect(error.reason.hasPrefix("/srv/ca/sshca.toml:2: "))
    }

    @Test func unknownKeyErrorsListTheKnownOnes() {
        let error = configurationError("[certificates]\nuser_validty = \"1d\"\n")
        #expect(error?.reason.contains("user_validity") == true)
        let table = configurationError("[cert]\n")
        #expect(table?.reason.contains("[ca]") == true && table?.reason.contains("[certificates]") == true)
    }
}
