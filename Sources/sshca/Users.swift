import Common
import ArgumentParser
import Authority
import Ledger
import SSHFormat

struct User: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enroll engineers by their long-term SSH key, list, disable or rekey them.",
        discussion: helpText("""
        An enrolled user proves who they are to `sshca serve` by signing a challenge with their
        identity key (a key file, a key in ssh-agent, or a FIDO sk- key); the key never leaves
        their machine. Run these on the CA machine (they write the ledger in --home).

        Examples:
          sshca user add alice --role engineer --identity-key alice_id_ed25519.pub
          sshca user rekey alice --identity-key new_laptop.pub     (lost laptop)
          sshca user disable bob
          sshca user list
        """),
        subcommands: [UserAdd.self, UserList.self, UserDisable.self, UserEnable.self, UserRekey.self]
    )
}

struct UserAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Enroll a user with a role and an identity key.")
    @OptionGroup var home: HomeOptions
    @Argument(help: ArgumentHelp("The user's name; it is the {user} principal and the certificates' key id.", valueName: "name"))
    var name: String
    @Option(name: .long, help: ArgumentHelp("A role from sshca.toml ([role.NAME]).", valueName: "role"))
    var role: String
    @Option(name: .long, help: ArgumentHelp("The user's long-term public key (.pub).", valueName: "pubkey-file"))
    var identityKey: String
    @Option(name: .long, help: ArgumentHelp("Who is enrolling (default: the login name).", valueName: "name"))
    var by: String?

    func run() async throws {
        try await reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            let key = try KeyFiles.readPublicKey(identityKey).key
            let record = try await authority.addUser(name: name, role: role, key: key, by: Operator.name(by))
            print("Enrolled \(record.name) (role \(record.role)) with identity key \(record.key.fingerprint).")
            print("On their machine, once: sshca configure --ca-url URL --ca-fingerprint SHA256:... [--ca-bundle tls.crt] --user \(record.name) --identity PRIVATE_KEY_FILE")
            print("then every day: sshca login")
        }
    }
}

struct UserList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List enrolled users.")
    @OptionGroup var home: HomeOptions
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Entry: Encodable {
        var name: String, role: String, identityKey: String, disabled: Bool, createdAt: UInt64, updatedAt: UInt64
    }

    func run() async throws {
        try await reportingErrors {
            let users = try await CertificateAuthority(home: home.caHome).users()
            if json {
                try printJSON(users.map { Entry(name: $0.name, role: $0.role, identityKey: $0.key.fingerprint, disabled: $0.disabled, createdAt: $0.createdAt, updatedAt: $0.updatedAt) })
                return
            }
            if users.isEmpty { print("No users enrolled (add one with: sshca user add NAME --role ROLE --identity-key FILE)."); return }
            for user in users {
                print("\(user.name)\trole=\(user.role)\t\(user.disabled ? "DISABLED" : "active")\t\(user.key.typeName) \(user.key.fingerprint)")
            }
        }
    }
}

struct UserDisable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disable", abstract: "Stop a user from getting certificates (their current ones stay valid until revoked or expired).")
    @OptionGroup var home: HomeOptions
    @Argument(help: ArgumentHelp("The user.", valueName: "name")) var name: String
    @Option(name: .long, help: ArgumentHelp("Who (default: the login name).", valueName: "name")) var by: String?

    func run() async throws {
        try await reportingErrors {
            try await CertificateAuthority(home: home.caHome).setUserDisabled(name, disabled: true, by: Operator.name(by))
            print("Disabled \(name): no new certificates. To end the ones they hold now: sshca revoke --key-id \(name) --reason ...")
        }
    }
}

struct UserEnable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable", abstract: "Allow a disabled user again.")
    @OptionGroup var home: HomeOptions
    @Argument(help: ArgumentHelp("The user.", valueName: "name")) var name: String
    @Option(name: .long, help: ArgumentHelp("Who (default: the login name).", valueName: "name")) var by: String?

    func run() async throws {
        try await reportingErrors {
            try await CertificateAuthority(home: home.caHome).setUserDisabled(name, disabled: false, by: Operator.name(by))
            print("Enabled \(name).")
        }
    }
}

struct UserRekey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rekey", abstract: "Give a user a new identity key (lost laptop); the old key stops working at once.")
    @OptionGroup var home: HomeOptions
    @Argument(help: ArgumentHelp("The user.", valueName: "name")) var name: String
    @Option(name: .long, help: ArgumentHelp("The new public key (.pub).", valueName: "pubkey-file")) var identityKey: String
    @Option(name: .long, help: ArgumentHelp("Who (default: the login name).", valueName: "name")) var by: String?

    func run() async throws {
        try await reportingErrors {
            let key = try KeyFiles.readPublicKey(identityKey).key
            try await CertificateAuthority(home: home.caHome).rekeyUser(name, key: key, by: Operator.name(by))
            print("\(name) now signs in with \(key.fingerprint); the old identity key is refused from now on.")
        }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bearer tokens for automation and hosts.",
        discussion: helpText("""
        A token acts with its role; its name is the {user} of the role's principals (a host role
        with principals = ["{user}"] lets a token named web-01.example.com certify only that
        host). The secret is shown once and stored hashed.

        Examples:
          sshca token create --role host --name web-01.example.com --ttl 90d
          sshca token list
          sshca token revoke 3f9a1c2b4d5e
        """),
        subcommands: [TokenCreate.self, TokenList.self, TokenRevoke.self]
    )
}

struct TokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a token; prints the secret once.")
    @OptionGroup var home: HomeOptions
    @Option(name: .long, help: ArgumentHelp("A role from sshca.toml.", valueName: "role")) var role: String
    @Option(name: .long, help: ArgumentHelp("What it is for; the {user} of the role's principals (default: the role name).", valueName: "name")) var name: String?
    @Option(name: .long, help: ArgumentHelp("How long it works (30d, 12h).", valueName: "duration")) var ttl: String = "30d"
    @Option(name: .long, help: ArgumentHelp("Who (default: the login name).", valueName: "name")) var by: String?

    func run() async throws {
        try await reportingErrors {
            let lifetime = try DurationText.seconds(ttl)
            let (record, text) = try await CertificateAuthority(home: home.caHome).createToken(role: role, name: name ?? role, lifetime: lifetime, by: Operator.name(by))
            printNote("Token \(record.id) (role \(record.role), name \(record.name)) expires \(CertificateTime.format(record.expiresAt)). Shown once; store it now:")
            print(text)
        }
    }
}

struct TokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (never their secrets).")
    @OptionGroup var home: HomeOptions

    func run() async throws {
        try await reportingErrors {
            let now = Clock.now()
            for token in try await CertificateAuthority(home: home.caHome).tokens() {
                let state = token.revoked ? "revoked" : token.expiresAt <= now ? "expired" : "active until \(CertificateTime.format(token.expiresAt))"
                print("\(token.id)\trole=\(token.role)\tname=\(token.name)\t\(state)")
            }
        }
    }
}

struct TokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Make a token stop working at once.")
    @OptionGroup var home: HomeOptions
    @Argument(help: ArgumentHelp("The token id (the part after sshca_, as token list shows).", valueName: "id")) var id: String
    @Option(name: .long, help: ArgumentHelp("Who (default: the login name).", valueName: "name")) var by: String?

    func run() async throws {
        try await reportingErrors {
            try await CertificateAuthority(home: home.caHome).revokeToken(id: id, by: Operator.name(by))
            print("Token \(id) revoked.")
        }
    }
}
