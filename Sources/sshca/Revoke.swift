import Common
import ArgumentParser
import Authority
import Client
import Ledger
import SSHFormat

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke certificates or keys, and publish the new KRL.",
        discussion: helpText("""
        Name exactly one target. The revocation is recorded in the ledger with its reason, and the
        CA's revoked.krl is rewritten at once (a new version; copy it to servers' RevokedKeys).
        Revoking the same thing again changes nothing and says so.

          --serial 42, --serial 40-49    those certificates
          --key-id alice@laptop          every certificate with that key id, now
                                         and later; that id is refused from now on
          --key stolen.pub               the key itself: all its certificates die,
                                         and signing requests for it are refused
          --principal root               every unexpired certificate naming it
          --user alice                   a person: every unexpired certificate
                                         issued to them, by serial; their enrolled
                                         key is disabled (sshca user enable alice
                                         restores it) and their tokens revoked
          --ca-key-compromised [--host]  the user (or host) CA key itself: sshd
                                         stops trusting all it signed. Make a new CA.

        Which one fits:
          a laptop was stolen     --serial of its certificate (sshca list
                                  --principal alice --active), or --key of the
                                  login key if you have it
          a person left           --user NAME
          an identity key leaked  sshca user rekey NAME, and --serial for the
                                  certificates it got
          a key id, exactly       --key-id (refuses that id from now on; certificates
                                  from the service have unique ids like alice:key:42)

        Examples:
          sshca revoke --serial 42 --reason "laptop stolen"
          sshca revoke --user alice --reason "left the company" --by security-oncall
        """)
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions

    @Option(name: .long, help: ArgumentHelp("Why (kept in the ledger and the audit log). Required.", valueName: "text"))
    var reason: String

    @Option(name: .long, help: ArgumentHelp("Who is revoking (default: the login name).", valueName: "name"))
    var by: String?

    @Option(name: .long, help: ArgumentHelp("A serial or a range N-M.", valueName: "n[-m]"))
    var serial: String?

    @Option(name: .long, help: ArgumentHelp("Every certificate with this key id, now and later.", valueName: "id"))
    var keyId: String?

    @Option(name: .long, help: ArgumentHelp("A public key file: the key and all its certificates.", valueName: "pubkey-file"))
    var key: String?

    @Option(name: .long, help: ArgumentHelp("Every unexpired certificate naming this principal.", valueName: "name"))
    var principal: String?

    @Option(name: .long, help: ArgumentHelp("A person: every unexpired certificate issued to them; their key is disabled and tokens revoked.", valueName: "name"))
    var user: String?

    @Flag(name: .long, help: "Revoke the user CA key itself (with --host: the host CA key).")
    var caKeyCompromised = false

    @Flag(name: .long, help: "With --ca-key-compromised: the host CA key.")
    var host = false

    @OptionGroup(title: "Through the CA service (security staff)") var remote: ServiceOptions

    @Option(name: .customLong("as"), help: ArgumentHelp("Through the service: your enrolled user name, when you sign in with --identity (default: $USER).", valueName: "name"))
    var signer: String?

    func validate() throws {
        if remote.caUrl != nil && caKeyCompromised { throw ValidationError("--ca-key-compromised is done on the CA machine itself, not through --ca-url") }
        let given = [serial != nil, keyId != nil, key != nil, principal != nil, user != nil, caKeyCompromised].filter { $0 }.count
        guard given == 1 else {
            throw ValidationError("name exactly one of --serial, --key-id, --key, --principal, --user or --ca-key-compromised")
        }
        if host && !caKeyCompromised { throw ValidationError("--host goes with --ca-key-compromised") }
    }

    func runRemote() async throws {
        try await reportingErrors {
            let client = try remote.client()
            let credential = try remote.credential(user: signer)
            var request = ServiceAPI.RevocationRequest(reason: reason)
            if let serial {
                let range = try Self.parseSerials(serial)
                if range.lowerBound == range.upperBound { request.serial = range.lowerBound } else { request.serials = SerialSet.rangeText(range) }
            }
            request.keyId = keyId
            if let key { request.publicKey = try KeyFiles.readPublicKey(key).key.openSSHLine() }
            request.principal = principal
            request.user = user
            let body = request
            let r = try await client.revoke(body, credential: credential)
            if r.isNew {
                print("Revoked \(r.kind) \(r.target) (#\(r.id)) through \(client.endpoint.url): \(r.certificatesAffected) certificate(s) affected.")
                if r.kind == "user" { print(Self.personNote(r.target)) }
            } else {
                print("Already revoked: \(r.kind) \(r.target) (#\(r.id)). Nothing changed.")
            }
            print("The service now serves KRL version \(r.krlVersion) at \(client.endpoint.url)/v1/krl (servers: sshca host krl-sync --from \(client.endpoint.url)).")
        }
    }

    func run() async throws {
        if remote.caUrl != nil {
            try await runRemote()
            return
        }
        try await reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            let target: RevocationTarget
            if let serial {
                target = .serials(try Self.parseSerials(serial))
            } else if let keyId {
                target = .keyID(keyId)
            } else if let key {
                target = .key(try KeyFiles.readPublicKey(key).key)
            } else if let principal {
                target = .principal(principal)
            } else if let user {
                target = .person(user)
            } else {
                target = .caKey(try authority.home.publicKey(host ? .host : .user))
            }
            let revoked = try await authority.revoke(target, reason: reason, by: Operator.name(by), passphrase: passphrase.source)
            let krl = try revoked.krl.get()
            let result = (outcome: revoked.outcome, krl: krl.krl, published: krl.published)
            let record = result.outcome.record
            if result.outcome.isNew {
                print("Revoked \(record.kind) \(record.target) (#\(record.id)): \(result.outcome.certificatesAffected) certificate(s) in the ledger affected.")
                if record.kind == "user" { print(Self.personNote(record.target)) }
            } else {
                print("Already revoked: \(record.kind) \(record.target) (#\(record.id), \(CertificateTime.format(record.revokedAt)) by \(record.revokedBy): \(record.reason)). Nothing changed.")
            }
            for warning in result.krl.warnings { printNote("warning: " + warning) }
            if result.published {
                print("Published \(authority.home.krlPath) (KRL version \(result.krl.version)).")
            } else {
                print("The KRL stays at version \(result.krl.version) (\(authority.home.krlPath)): it revokes this already.")
            }
            print("Servers that sync from the service on this home (sshca host krl-sync --from URL, installed by host setup --ca-url) take it at their next run; servers without that need the file copied to their RevokedKeys.")
        }
    }

    static func personNote(_ name: String) -> String {
        "\(name)'s enrolled key, if any, is disabled (sshca user enable \(name) gives access back) and tokens named \(name) are revoked."
    }

    static func parseSerials(_ text: String) throws(SSHCAError) -> ClosedRange<UInt64> {
        guard let range = SerialSet.parseRange(text) else {
            throw SSHCAError(.badInput, "--serial \"\(text.debugEscaped)\" is not \(SerialSet.rangeSyntax)")
        }
        return range
    }
}
