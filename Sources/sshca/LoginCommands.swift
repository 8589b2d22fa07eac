import Common
import ArgumentParser
import Authority
import Client
import SSHFormat
import Foundation

/// How a client command reaches and trusts the service, and the credential it shows there
/// (a token, or an identity key whose user name each command takes as it fits). Each value comes
/// from the flags, else the environment ($SSHCA_CA_URL, $SSHCA_CA_FINGERPRINT, ...), else the
/// client configuration `sshca configure` wrote.
struct ServiceOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The CA service (https://ca.example.com:8443; default: $SSHCA_CA_URL, else `sshca configure`'s for login).", valueName: "url"))
    var caUrl: String?

    @Option(name: .long, help: ArgumentHelp("Pin the CA key the service must present, SHA256:... as `ssh-keygen -lf` prints it: the user CA's (`sshca ca-key`), except for `host cert`, which pins the host CA's (`sshca ca-key --host`). Repeatable (any one may match). Default: $SSHCA_CA_FINGERPRINT, else the configured pins for that URL.", valueName: "fingerprint"))
    var caFingerprint: [String] = []

    @Option(name: .long, help: ArgumentHelp("PEM roots to trust for https (the server's own certificate works as a pin; default: $SSHCA_CA_BUNDLE, else the configured one).", valueName: "file"))
    var caBundle: String?

    @Option(name: .long, help: ArgumentHelp("Authenticate with this bearer token (default: $SSHCA_TOKEN). Other users can see arguments in ps: prefer --token-file or the variable.", valueName: "token"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Read the bearer token from this file.", valueName: "file"))
    var tokenFile: String?

    @Option(name: .long, help: ArgumentHelp("Your identity key: a private key file, or a .pub whose key is in ssh-agent (default: $SSHCA_IDENTITY, the configured one, else ~/.ssh/id_ed25519).", valueName: "keyfile"))
    var identity: String?

    /// The flags over the environment over the client configuration. `useConfiguredURL`: the
    /// daily commands (login) take the configured URL when given none; commands that also work
    /// on the CA home do not, so a laptop's configuration never turns them into network calls.
    func settings(user: String? = nil, useConfiguredURL: Bool) throws(SSHCAError) -> ClientConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let file = try ClientConfiguration.load(ClientConfiguration.path(environment: environment))
        let flags = ClientConfiguration(caURL: caUrl, caFingerprints: caFingerprint, caBundle: caBundle, user: user, identity: identity)
        return ClientConfiguration.resolve(flags: flags, environment: environment, file: file, useFileURL: useConfiguredURL)
    }

    /// `kind`: the CA key the pin names. Configured pins are the user CA's; a host CA pin comes
    /// from the flag only.
    func client(useConfiguredURL: Bool = false, kind: CAKind = .user) throws(SSHCAError) -> ServiceClient {
        var settings = try settings(useConfiguredURL: useConfiguredURL)
        if kind == .host { settings.caFingerprints = caFingerprint }
        guard let url = settings.caURL else {
            throw SSHCAError(.badInput, "give --ca-url URL (the sshca serve address), or set it once for every command: sshca configure --ca-url URL --ca-fingerprint SHA256:...")
        }
        if settings.caFingerprints.isEmpty {
            printNote("warning: no CA key is pinned for \(url), so nothing checks that it is your CA's service; pin it with --ca-fingerprint SHA256:... (sshca ca-key\(kind == .host ? " --host" : "") | ssh-keygen -lf -), or once: sshca configure")
        }
        return try ServiceClient(ServiceEndpoint(url: url, caFingerprints: settings.caFingerprints, caBundle: settings.caBundle))
    }

    /// `user`: the enrolled name that signs in with the identity key (default: $SSHCA_USER, the
    /// configured name, else $USER).
    func credential(user: String?) throws(SSHCAError) -> Credential {
        let settings = try settings(user: user, useConfiguredURL: false)
        return try Credential.resolve(token: token, tokenFile: tokenFile, user: settings.user, identity: settings.identity)
    }
}

/// ServiceOptions with `--user`, the enrolled name of whoever runs the command.
struct RemoteOptions: ParsableArguments {
    @OptionGroup var service: ServiceOptions

    @Option(name: .long, help: ArgumentHelp("Your enrolled user name (default: $SSHCA_USER, the configured name, else $USER).", valueName: "name"))
    var user: String?

    var caUrl: String? { service.caUrl }
    func client(useConfiguredURL: Bool = false, kind: CAKind = .user) throws(SSHCAError) -> ServiceClient {
        try service.client(useConfiguredURL: useConfiguredURL, kind: kind)
    }
    func credential() throws(SSHCAError) -> Credential { try service.credential(user: user) }
}

struct LoginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Get today's certificate: a fresh key, signed by the CA service, loaded into ssh-agent.",
        discussion: helpText("""
        Generates a new Ed25519 key pair on this machine, proves who you are to the service by
        signing its challenge with your enrolled identity key (through ssh-agent, or ssh-keygen
        asks for the key's passphrase or touch), and writes ~/.ssh/sshca_ed25519, .pub and
        -cert.pub (0600). Key and certificate go into ssh-agent for exactly as long as the
        certificate lasts. A still-valid certificate is reused unless --force, and unless the
        service's KRL revokes it.

        The identity key signs only a text login builds itself (namespace sshca): the pinned CA
        key, the nonce, the request and the new key's fingerprint, so a service in the middle
        cannot use the signature for a key of its own. --ca-fingerprint proves only that the
        service shows that CA's public key (anyone can); a --token goes to whoever answers, so
        send tokens over https with --ca-bundle, or on loopback.

        The service, the pin and your name come from the flags, else $SSHCA_CA_URL,
        $SSHCA_CA_FINGERPRINT, $SSHCA_USER and $SSHCA_IDENTITY, else what `sshca configure` wrote;
        after configure, `sshca login` is the whole daily command.

        Renewal: --renew-before 2h keeps a certificate only while more than two hours are left;
        --unattended makes it safe for a timer (nothing happens when a person would be needed).
        A systemd user timer (~/.config/systemd/user/sshca-login.service and .timer) or a launchd
        agent runs `sshca login --renew-before 2h --unattended` every 15 minutes: see the README.

        Examples:
          sshca configure --ca-url https://ca.example.com:8443 --ca-fingerprint SHA256:... \\
              --user alice --identity ~/.ssh/id_ed25519
          sshca login
          sshca login --principals alice,deploy --validity 8h
          sshca login --renew-before 2h --unattended
          sshca login --status
          sshca logout
        """)
    )

    @OptionGroup var remote: RemoteOptions

    @Option(name: .long, help: ArgumentHelp("Principals to ask for (default: all your role allows).", valueName: "p1,p2"))
    var principals: String?

    @Option(name: .long, help: ArgumentHelp("How long (default: your role's default, such as 16h).", valueName: "duration"))
    var validity: String?

    @Flag(name: .long, help: "Get a new certificate even if the current one is still valid.")
    var force = false

    @Flag(name: .long, help: "Show the current certificate and whether ssh-agent holds it; with --ca-url, also whether the service's KRL revokes it.")
    var status = false

    @Option(name: .long, help: ArgumentHelp("Where the key goes (default: ~/.ssh/sshca_ed25519).", valueName: "path"))
    var keyFile: String?

    @Option(name: .long, help: ArgumentHelp("Keep the current certificate only while it has more than this left (default 5m); the renewal timer uses 2h.", valueName: "duration"))
    var renewBefore: String?

    @Flag(name: .long, help: "For timers: do nothing (exit 0) when signing in would need a person (the identity key is not in ssh-agent and no token is given); print nothing when the certificate is kept.")
    var unattended = false

    func run() throws {
        let files = keyFile.map(LoginFiles.init(key:)) ?? LoginFiles.standard()
        if status {
            try reportingErrors {
                let state = Login.status(files: files)
                guard let certificate = state.certificate else { throw SSHCAError(.notFound, state.problem ?? "not logged in") }
                let body = certificate.body
                let now = Clock.now()
                print("Certificate: \(files.certificate)")
                print("  key id \(body.keyID), serial \(body.serial), principals \(body.principals.joined(separator: ","))")
                if body.validBefore <= now {
                    print("  EXPIRED at \(CertificateTime.format(body.validBefore)): run sshca login")
                } else {
                    print("  valid until \(CertificateTime.format(body.validBefore)) (\(DurationText.format(body.validBefore - now)) left)")
                }
                print("  ssh-agent: \(state.inAgent ? "loaded" : "not loaded")")
                var revoked = false
                if try remote.service.settings(useConfiguredURL: true).caURL != nil {
                    let client = try remote.client(useConfiguredURL: true)
                    switch try blocking({ () throws(SSHCAError) in await Login.revocation(of: certificate, client: client) }) {
                    case .success(let verdict?):
                        revoked = true
                        print("  REVOKED in the service's KRL (\(verdict)): sshd refuses it; run sshca login for a new one")
                    case .success(nil):
                        print("  KRL: not revoked (checked against \(client.endpoint.url))")
                    case .failure(let error):
                        print("  KRL: not checked: \(error.reason)")
                    }
                }
                if body.validBefore <= now || revoked { throw ExitCode(ExitStatus.failure) }
            }
            return
        }
        try reportingErrors {
            let renewal = try renewBefore.map { text throws(SSHCAError) in try DurationText.seconds(text) } ?? Login.renewalMargin
            let credential = try remote.credential()
            var replaceRevoked: String? = nil
            if unattended {
                // Kept quietly while it has time left and the service's KRL does not revoke it
                // (or cannot say right now); a revoked one is replaced like an expiring one.
                if let current = Login.status(files: files).certificate, current.body.validBefore > Clock.now() &+ max(renewal, Login.renewalMargin), !force {
                    let client = try remote.client(useConfiguredURL: true)
                    let verdict = try blocking { () throws(SSHCAError) in await Login.revocation(of: current, client: client) }
                    guard case .success(.some(let why)) = verdict else { return }
                    replaceRevoked = "the certificate with serial \(current.body.serial) is revoked (\(why))"
                }
                guard credential.isUnattended else {
                    printNote("sshca login: not renewed\(replaceRevoked.map { " (\($0))" } ?? ""): signing in needs you (the identity key is not in ssh-agent; run sshca login, or ssh-add the key)")
                    return
                }
            }
            let client = try remote.client(useConfiguredURL: true)
            let asked = principals.map { $0.split(separator: ",").map(String.init) }
            let validity = self.validity
            let force = self.force || replaceRevoked != nil
            let outcome = try blocking { () throws(SSHCAError) in
                try await Login.login(client: client, credential: credential, principals: asked, validity: validity, force: force, files: files, renewBefore: renewal)
            }
            let body = outcome.certificate.body
            if unattended && outcome.reused { return }
            if let replaced = outcome.replacedRevoked ?? replaceRevoked { print("The current certificate was revoked: \(replaced).") }
            print(outcome.reused ? "Still valid and not revoked; kept the current certificate (--force for a new one)." : "Certificate issued: serial \(body.serial), key id \(body.keyID).")
            if let unknown = outcome.revocationUnknown { printNote("warning: \(unknown)") }
            print("Principals: \(body.principals.joined(separator: ", "))")
            print("Valid until: \(CertificateTime.format(body.validBefore))")
            if let problem = outcome.agentProblem {
                print("Not in ssh-agent: \(problem). Use it through ~/.ssh/config:")
                print("  IdentityFile \(files.key)")
                print("  CertificateFile \(files.certificate)")
            } else {
                print("Loaded into ssh-agent until it expires: ssh uses it as it is.")
            }
        }
    }
}

struct LogoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout",
        abstract: "Remove the login certificate from ssh-agent and delete the key and certificate files."
    )

    @Option(name: .long, help: ArgumentHelp("The login key (default: ~/.ssh/sshca_ed25519).", valueName: "path"))
    var keyFile: String?

    func run() throws {
        let files = keyFile.map(LoginFiles.init(key:)) ?? LoginFiles.standard()
        try reportingErrors {
            let done = try Login.logout(files: files)
            if done.isEmpty {
                print("Nothing to do: no login key or certificate at \(files.key).")
            } else {
                done.forEach { print($0.prefix(1).uppercased() + $0.dropFirst() + ".") }
            }
        }
    }
}
