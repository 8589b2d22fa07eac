import Common
import ArgumentParser
import Authority
import SSHFormat
import Ledger

struct Sign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a public key into an OpenSSH certificate.",
        discussion: helpText("""
        Writes NAME-cert.pub next to NAME.pub (as ssh-keygen -s does), or to --output ("-" for
        standard output). Accepts OpenSSH public key lines and RFC 4716 files (PuTTYgen's "Save public
        key"); Ed25519, ECDSA, RSA (2048 bits and up) and FIDO sk- keys. DSA keys are refused.

        Serials come from the CA's ledger (1, 2, 3, ...), which records every certificate before it
        is written. Validity (--validity): a duration from now (90m, 16h, 30d, 1w), or ssh-keygen -V forms:
        +16h, -5m:+1d, 20260101:20260201, 202601011200:202601011800, always:forever, forever.
        Without it: the configured default (1 day), starting 5 minutes early for clock skew.

        User certificates get permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding,
        permit-pty and permit-user-rc unless --no-default-extensions; host certificates get none.

        Examples:
          sshca sign --key-id alice@laptop --principals alice,deploy \\
              ~/.ssh/id_ed25519.pub
          sshca sign --key-id backup --principals backup --validity 30d \\
              --force-command /usr/local/bin/backup \\
              --source-address 192.0.2.10/32 backup.pub
          sshca sign --host --key-id web1 --principals web1.example.com,web1 \\
              /etc/ssh/ssh_host_ed25519_key.pub
        """)
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions

    @Option(name: .long, help: ArgumentHelp("Identifies the certificate in sshd's logs (for example alice@laptop).", valueName: "id"))
    var keyId: String

    @Option(name: .long, help: ArgumentHelp("Comma-separated login names (user) or host names (host) the certificate is valid for.", valueName: "a,b,..."))
    var principals: String

    @Flag(name: .long, help: "Make a host certificate (signed by the host CA key).")
    var host = false

    // Unconditional: ssh-keygen -V forms like -5m:+1d start with a dash and are still values.
    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("How long it is valid: 16h, 30d, +16h, -5m:+1d, YYYYMMDD:YYYYMMDD, forever.", valueName: "spec"))
    var validity: String?

    @Option(name: .long, help: ArgumentHelp("Refused: serials come from the ledger (kept so old scripts get a clear error).", valueName: "n"))
    var serial: String?

    @Option(name: .long, help: ArgumentHelp("Critical option: the only command this certificate may run.", valueName: "command"))
    var forceCommand: String?

    @Option(name: .long, help: ArgumentHelp("Critical option: comma-separated addresses/CIDR blocks the certificate may be used from.", valueName: "cidr,..."))
    var sourceAddress: String?

    @Flag(name: .long, help: "Critical option: require FIDO user verification (PIN) for sk- keys.")
    var verifyRequired = false

    @Option(name: .long, help: ArgumentHelp("Add an extension; custom ones are named name@domain. Repeatable.", valueName: "name[=value]"))
    var `extension`: [String] = []

    @Flag(name: .long, help: "Do not add the default permit-* extensions.")
    var noDefaultExtensions = false

    @Option(name: .long, help: ArgumentHelp("Where to write the certificate (\"-\" for standard output).", valueName: "file"))
    var output: String?

    @Argument(help: ArgumentHelp("The public key to certify (\"-\" for standard input).", valueName: "pubkey-file"))
    var publicKeyFile: String

    var arguments: SignArguments {
        SignArguments(
            home: home.home, passphraseFile: passphrase.passphraseFile, keyId: keyId, principals: principals,
            host: host, validity: validity, serial: serial, forceCommand: forceCommand, sourceAddress: sourceAddress,
            verifyRequired: verifyRequired, extensions: `extension`, noDefaultExtensions: noDefaultExtensions,
            output: output, publicKeyFile: publicKeyFile)
    }

    func run() async throws {
        try await arguments.run()
    }
}

/// Everything `sshca sign` was given, as plain values (from ArgumentParser or the fast path).
struct SignArguments: Equatable {
    var home: String?
    var passphraseFile: String?
    var keyId: String
    var principals: String
    var host: Bool
    var validity: String?
    var serial: String?
    var forceCommand: String?
    var sourceAddress: String?
    var verifyRequired: Bool
    var extensions: [String]
    var noDefaultExtensions: Bool
    var output: String?
    var publicKeyFile: String

    func run() async throws {
        try await reportingErrors {
            let authority = try CertificateAuthority(home: CAHome.resolve(home))
            let passphrase = PassphraseOptions.source(file: passphraseFile)
            let input = try readInput(publicKeyFile, maximumBytes: PublicKeyText.maximumLength, what: "public key")
            guard let text = String(validating: input, as: UTF8.self) else {
                throw SSHCAError(.badInput, "\(publicKeyFile): not a text file; a public key is one line like \"ssh-ed25519 AAAA... user@host\"")
            }
            let subject = try KeyFiles.parsePublicKey(text, source: publicKeyFile == "-" ? "standard input" : publicKeyFile)
            let request = try makeRequest(subject.key, configuration: authority.configuration)
            let destination = output ?? (publicKeyFile == "-" ? "-" : KeyFiles.certificatePath(forKey: publicKeyFile))
            if destination != "-" { try KeyFiles.checkWritable(destination) }
            let now = unixNow()
            let issued = try await authority.issue(request, requestedBy: Requester(name: Operator.name(nil), channel: "cli"),
                                             passphrase: passphrase, now: now)
            let certificate = issued.certificate
            let body = certificate.body
            if destination == "-" {
                FileHandleLite.standardOutput.write(KeyFiles.certificateLine(certificate, comment: subject.comment))
            } else {
                try KeyFiles.writeCertificate(certificate, comment: subject.comment, to: destination)
            }
            let window = ValidityWindow(validAfter: body.validAfter, validBefore: body.validBefore)
            printNote("Signed \(body.type) certificate\(destination == "-" ? "" : " " + destination): key id \"\(body.keyID)\", serial \(body.serial), for \(body.principals.joined(separator: ",")), valid \(window)")
            if body.validBefore <= now {
                printNote("warning: this certificate has already expired")
            } else if body.validAfter > now {
                printNote("warning: this certificate is not valid yet")
            }
        }
    }

    func makeRequest(_ key: PublicKey, configuration: Configuration) throws(SSHCAError) -> CertificateRequest {
        var request = CertificateRequest(
            publicKey: key, type: host ? .host : .user, keyID: keyId,
            principals: principals.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
        if let validity {
            request.validity = try ValidityWindow.parse(validity, now: unixNow(), backdate: configuration.backdate)
        }
        if let serial {
            guard let n = UInt64(serial) else {
                throw SSHCAError(.badInput, "--serial \"\(serial)\" is not a whole number from 1 to 18446744073709551615")
            }
            request.serial = n
        }
        request.forceCommand = forceCommand
        request.sourceAddresses = sourceAddress.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        request.verifyRequired = verifyRequired
        request.includeDefaultExtensions = !noDefaultExtensions
        request.extensions = extensions.map { spec in
            if let equals = spec.firstIndex(of: "=") {
                return .value(String(spec[..<equals]), String(spec[spec.index(after: equals)...]))
            }
            return .flag(spec)
        }
        return request
    }
}
