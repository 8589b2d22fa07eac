import Common
import ArgumentParser
import Authority


struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new CA: a user CA key, a host CA key and a commented sshca.toml.",
        discussion: helpText("""
        Two separate key pairs are made, so trusting the user CA never means trusting host keys and
        the reverse. Private keys are PKCS#8 PEM files, mode 0600, encrypted with the passphrase
        (scrypt + AES-256) unless --no-passphrase. An existing CA is never overwritten.

        CA keys that live only in ssh-agent (a hardware token, or a key kept off disk): give the
        public key file with --user-ca-in-agent (and --host-ca-in-agent); the home then stores only
        the public half and signing goes through the agent at $SSH_AUTH_SOCK.

        Examples:
          sshca init --home /srv/ca --passphrase-file /root/ca-pass
          sshca init --no-passphrase --key-type ecdsa-p256
          sshca init --user-ca-in-agent ca.pub --no-passphrase
        """)
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("CA key type: \(CAKeyType.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "type"))
    var keyType: String = CAKeyType.ed25519.rawValue

    @Option(name: .long, help: ArgumentHelp("Encrypt the CA private keys with the passphrase on the first line of this file.", valueName: "file"))
    var passphraseFile: String?

    @Flag(name: .long, help: "Store the CA private keys unencrypted (protect the directory yourself).")
    var noPassphrase = false

    @Option(name: .long, help: ArgumentHelp("The user CA key lives in ssh-agent: store only this public key.", valueName: "pubkey-file"))
    var userCaInAgent: String?

    @Option(name: .long, help: ArgumentHelp("The host CA key lives in ssh-agent: store only this public key.", valueName: "pubkey-file"))
    var hostCaInAgent: String?

    @Flag(name: .long, help: "Print the sshca.toml a new CA starts with (ca-config/sshca.toml is this text) and create nothing.")
    var printConfig = false

    func validate() throws {
        guard CAKeyType(rawValue: keyType) != nil else {
            throw ValidationError("unknown --key-type \"\(keyType)\"; choose one of \(CAKeyType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if passphraseFile != nil && noPassphrase {
            throw ValidationError("give either --passphrase-file or --no-passphrase, not both")
        }
    }

    func run() async throws {
        if printConfig {
            print(CAHome.initialConfiguration().renderedFile(), terminator: "")
            return
        }
        try await reportingErrors {
            var creation = CAHome.Creation(keyType: CAKeyType(rawValue: keyType)!)
            if let userCaInAgent { creation.userKeyInAgent = try KeyFiles.readPublicKey(userCaInAgent).key }
            if let hostCaInAgent { creation.hostKeyInAgent = try KeyFiles.readPublicKey(hostCaInAgent).key }
            let target = home.caHome
            if target.isInitialized {
                throw SSHCAError(.home, "\(target.path) already holds a CA; refusing to overwrite it")
            }
            if creation.needsPassphraseDecision && !noPassphrase {
                if let passphraseFile {
                    creation.passphrase = try PassphraseSource.readPassphraseFile(passphraseFile)
                } else {
                    let first = try Terminal.readPassphrase(prompt: "New passphrase for the CA keys (at least 8 characters): ")
                    let second = try Terminal.readPassphrase(prompt: "Same passphrase again: ")
                    guard first == second else { throw SSHCAError(.badInput, "the two passphrases differ; nothing was created") }
                    creation.passphrase = first
                }
            }
            let created = try await CAHome.create(at: target.path, creation)
            let userKey = try created.publicKey(.user)
            let hostKey = try created.publicKey(.host)
            print("""
            Created a CA in \(created.path)
              user CA: \(userKey.shortName) \(userKey.fingerprint)\(creation.userKeyInAgent != nil ? " (in ssh-agent)" : "")
              host CA: \(hostKey.shortName) \(hostKey.fingerprint)\(creation.hostKeyInAgent != nil ? " (in ssh-agent)" : "")
              private keys: \(creation.passphrase == nil ? "NOT encrypted" : "encrypted with your passphrase")

            Next: put the user CA key on your servers (TrustedUserCAKeys):
              sshca ca-key --home \(created.path) > /etc/ssh/sshca_user_ca.pub
            and sign a user's key:
              sshca sign --home \(created.path) --key-id alice --principals alice ~/.ssh/id_ed25519.pub
            """)
        }
    }
}

struct CAKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca-key",
        abstract: "Print a CA public key (or export a CA private key for ssh-agent).",
        discussion: helpText("""
        The user CA key is what servers list in TrustedUserCAKeys; the host CA key (--host) is what
        clients put after "@cert-authority *.example.com" in known_hosts.

        --export-private writes the CA private key in OpenSSH's own format to standard output, so it
        can go into an agent or a token and off the disk:
          sshca ca-key --export-private | ssh-add -
        """)
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions

    @Flag(name: .long, help: "The host CA key instead of the user CA key.")
    var host = false

    @Flag(name: .long, help: "Write the CA private key (OpenSSH format, unencrypted) to standard output.")
    var exportPrivate = false

    func run() throws {
        try reportingErrors {
            let caHome = home.caHome
            let kind: CAKind = host ? .host : .user
            if !exportPrivate {
                let key = try caHome.publicKey(kind)
                print(key.openSSHLine(comment: "sshca-\(kind.rawValue)-ca"))
                return
            }
            if Terminal.standardOutputIsTerminal {
                throw SSHCAError(.badInput, "refusing to print a private key to the terminal; pipe it instead, for example: sshca ca-key --export-private | ssh-add -")
            }
            FileHandleLite.standardOutput.write(try caHome.exportPrivateKey(kind, passphrase: passphrase.source))
        }
    }
}
