import Common
import ArgumentParser
import Authority
import SSHFormat

struct KRLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "krl",
        abstract: "Write, check and show OpenSSH key revocation lists (sshd's RevokedKeys).",
        subcommands: [KRLWrite.self, KRLCheck.self, KRLShow.self]
    )
}

struct KRLWrite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Build a new KRL from the ledger and write it (atomically) to --output.",
        discussion: "The CA home's revoked.krl is refreshed too, with the same new version."
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions

    @Option(name: .long, help: ArgumentHelp("Where to write the KRL.", valueName: "file"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("Who is writing it (default: the login name).", valueName: "name"))
    var by: String?

    func run() async throws {
        try await reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            try KeyFiles.checkWritable(output)
            let published = try await authority.writeKRL(to: output, by: Operator.name(by), passphrase: passphrase.source)
            for warning in published.warnings { printNote("warning: " + warning) }
            print("Wrote \(output): KRL version \(published.version), \(published.bytes.count) bytes\(published.signedBy.map { "; its signature by \($0.fingerprint) in \(DetachedKRLSignature.path(for: output))" } ?? "")")
        }
    }
}

struct KRLCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Test keys and certificates against a KRL, like ssh-keygen -Q.",
        discussion: "Exit status: 0 none revoked, 1 at least one revoked, 65 the KRL or a file is missing or malformed."
    )

    @Option(name: .long, help: ArgumentHelp("The KRL file.", valueName: "file"))
    var krl: String

    @Argument(help: ArgumentHelp("Public keys or certificates to test.", valueName: "key-or-cert"))
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one key or certificate file") }
    }

    func run() throws {
        var anyRevoked = false
        // Exit 1 means "revoked" here, so a missing or unreadable file is bad input (65), never 1.
        try reportingErrors(failureCode: ExitStatus.dataError) {
            let inspection = try KRLInspection.read(krl)
            for file in files {
                let bytes = try Files.read(file, maximumBytes: 256 * 1024, what: "key or certificate")
                let verdict: KRL.Verdict?
                if let certificate = try? KeyFiles.parseCertificate(bytes, source: file) {
                    verdict = inspection.krl.revocation(of: certificate)
                } else {
                    guard let text = String(validating: bytes, as: UTF8.self) else {
                        throw SSHCAError(.badInput, "\(file): not a key or certificate")
                    }
                    verdict = inspection.krl.revocation(of: try KeyFiles.parsePublicKey(text, source: file).key)
                }
                if let verdict {
                    anyRevoked = true
                    print("\(file): REVOKED (\(verdict))")
                } else {
                    print("\(file): ok")
                }
            }
        }
        if anyRevoked { throw ExitCode(ExitStatus.failure) }
    }
}

struct KRLShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a KRL: version, date, sections and signature (FILE.sig beside it too), for debugging."
    )

    @Option(name: .long, help: ArgumentHelp("The KRL file.", valueName: "file"))
    var krl: String

    func run() throws {
        try reportingErrors {
            let inspection = try KRLInspection.read(krl)
            FileHandleLite.standardOutput.write(inspection.text)
            if let line = try DetachedKRLSignature.describe(signatureAt: DetachedKRLSignature.path(for: krl), over: krl) {
                print(line)
            }
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the whole CA to one file: a consistent copy of the ledger (safe while the CA is in use), sshca.toml and the CA keys, encrypted.",
        discussion: helpText("""
        The file is 0600: it holds the CA keys (only ever encrypted), identities, token hashes and
        the audit log. A CA key stored encrypted goes in as it is (its passphrase opens it after a
        restore); a key stored unencrypted is encrypted for the backup with the passphrase from
        --passphrase-file (or asked on the terminal): keep that passphrase apart from the backup.
        CA keys that live in ssh-agent are not on disk and not in the backup; neither are TLS
        files. Restore with: sshca restore FILE (into a new, empty --home on another machine too).
        """)
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("The backup file to create (must not exist).", valueName: "file"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("For CA keys stored unencrypted: encrypt the backup's copies with the passphrase on this file's first line (default: $SSHCA_PASSPHRASE_FILE; otherwise asked on the terminal).", valueName: "file"))
    var passphraseFile: String?

    func run() throws {
        try reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            let files = try authority.backup(to: output, keyPassphrase: PassphraseOptions.source(file: passphraseFile))
            print("Backed up the CA to \(output) (0600): the ledger, \(files.map(\.name).joined(separator: ", ")).")
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replace the ledger with a backup; serials and KRL versions jump past anything the lost ledger could have used.",
        discussion: helpText("""
        Refuses while sshca serve (or another sshca command) has this CA home open: stop the
        service first, restore, then start it again. A backup holds the whole CA: restored into a
        --home that does not exist yet, it puts back sshca.toml and the CA keys too (encrypted:
        serve and sign then need the passphrase the backup was made with); into a home with a
        CA, only when it is the same CA. The restored ledger's next serial and KRL
        version are raised by 2^32, so no serial is issued twice and servers accept the next KRL
        (they refuse one with a lower version). A new KRL is published right away.
        """)
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions

    @Option(name: .long, help: ArgumentHelp("Who is restoring (default: the login name).", valueName: "name"))
    var by: String?

    @Argument(help: ArgumentHelp("The backup file.", valueName: "file"))
    var file: String

    func run() async throws {
        try await reportingErrors {
            let result = try await CertificateAuthority.restore(home: home.caHome, from: file, by: Operator.name(by), passphrase: passphrase.source)
            if !result.filesPutBack.isEmpty { print("Put back into \(home.caHome.path): \(result.filesPutBack.joined(separator: ", ")).") }
            print("Restored the ledger from \(file); next serial \(result.nextSerial), KRL version \(result.krl.version) published.")
        }
    }
}
