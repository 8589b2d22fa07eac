import Ledger
import Common
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Authority
import Client
import HostSetup
import SSHFormat

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Server-side helpers: make sshd trust the CA, keep its KRL current, undo; all without locking anyone out.",
        subcommands: [HostSetupCommand.self, HostUndo.self, HostKRLSync.self, HostCert.self, HostDoctor.self]
    )
}

struct HostKRLSync: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "krl-sync",
        abstract: "Install a new KRL for sshd's RevokedKeys, only if OpenSSH will accept it.",
        discussion: helpText("""
        sshd refuses every key login when its RevokedKeys file is missing or invalid. krl-sync
        installs the new file only when it parses strictly, its signatures verify, it is not signed
        only by keys it revokes, `ssh-keygen -Q` loads it, and its version is not older than the
        installed one; with --ca-key it must also be signed by that key (unsigned ones are refused):
        by the detached signature beside it (FILE.sig, or the service's /v1/krl.sig), checked
        before the KRL is even parsed, or, from CA homes made before detached signatures, by a
        signature inside the KRL. The KRL installed for sshd carries no signature section (OpenSSH
        dropped KRL signatures in 9.4 and may refuse KRLs holding one).
        The file is replaced atomically: whatever fails, the installed KRL stays as it was.
        sshd re-reads RevokedKeys at every login; no reload is needed.

        --from may be the CA service's URL: its /v1/krl and /v1/krl.sig are fetched (with the last
        ETag, so an unchanged KRL is not downloaded again; each exchange within --timeout) and
        installed through the same checks. A --from FILE (and FILE.sig) must be a regular file
        owned by root or by you, writable by nobody else, reached through no link you do not
        trust: krl-sync runs as root, and a FIFO or a file someone else can replace is refused.
        Without --ca-key a KRL may not jump more than 2^33 versions past the installed one.
        From a URL the server introduces itself (its host name, or the name of the host token in
        --token-file, and the CA key it pins), so that `sshca hosts` shows which servers are behind.

        Examples (on a server, from cron or the systemd timer in ca-config/):
          sshca host krl-sync --from https://ca.example.com:8443 \\
              --to /etc/ssh/sshca_revoked.krl --ca-key /etc/ssh/sshca_user_ca.pub
          sshca host krl-sync --from /var/tmp/revoked.krl \\
              --to /etc/ssh/sshca_revoked.krl --ca-key /etc/ssh/sshca_user_ca.pub
        Exit status: 0 installed or already current, 65 refused (the installed file is untouched), 1 I/O failure.
        """)
    )

    @Option(name: .long, help: ArgumentHelp("The new KRL file, or the CA service's URL.", valueName: "file|url"))
    var from: String

    @Option(name: .long, help: ArgumentHelp("With a URL: PEM roots to trust for https.", valueName: "file"))
    var caBundle: String?

    @Option(name: .long, help: ArgumentHelp("The installed KRL (sshd's RevokedKeys path).", valueName: "path"))
    var to: String

    @Option(name: .long, help: ArgumentHelp("Pin the signer: the KRL must be signed by this public key.", valueName: "pubkey-file"))
    var caKey: String?

    @Option(name: .long, help: ArgumentHelp("With a URL: the most each exchange with the service may take, the whole answer included (default 60s).", valueName: "duration"))
    var timeout: String?

    @Option(name: .long, help: ArgumentHelp("With a URL: this server's host token file; the service then lists it under the token's name in `sshca hosts` (without one, under its host name, marked claimed).", valueName: "file"))
    var tokenFile: String?

    func run() throws {
        try reportingErrors {
            let pinned = try caKey.map { (path: String) throws(SSHCAError) -> PublicKey in try KeyFiles.readPublicKey(path).key }
            let outcome: KRLSync.Outcome
            if from.hasPrefix("http://") || from.hasPrefix("https://") {
                guard pinned != nil else {
                    throw SSHCAError(.badInput, "--from a URL needs --ca-key FILE (the user CA public key, e.g. /etc/ssh/sshca_user_ca.pub): a KRL from the network is installed only when that key signed it")
                }
                var base = from
                if base.hasSuffix("/v1/krl") { base.removeLast(7) }
                var limit: Duration = .seconds(60)
                if let timeout {
                    let seconds = try DurationText.seconds(timeout)
                    guard (1...3600).contains(seconds) else { throw SSHCAError(.badInput, "--timeout must be from 1s to 1h") }
                    limit = .seconds(Int64(seconds))
                }
                let client = try ServiceClient(ServiceEndpoint(url: base, caFingerprint: pinned?.fingerprint, caBundle: caBundle, timeout: limit))
                let token = try tokenFile.map { (path: String) throws(SSHCAError) -> String in try Credential.token(fromFile: path) }
                outcome = try RemoteCA.syncKRL(client, to: to, pinnedSigner: pinned, token: token)
            } else {
                // krl-sync runs as root from a timer: a file someone else planted (a FIFO to hang
                // it, a link to elsewhere, a file others can rewrite) is not read.
                let owners: Set<uid_t> = [0, getuid()]
                let bytes = try Files.readTrusted(from, maximumBytes: KRLSync.maximumBytes, what: "KRL", owners: owners)
                let signaturePath = DetachedKRLSignature.path(for: from)
                let signature = Files.exists(signaturePath)
                    ? String(decoding: try Files.readTrusted(signaturePath, maximumBytes: 64 * 1024, what: "KRL signature", owners: owners), as: UTF8.self)
                    : nil
                outcome = try KRLSync.install(bytes, source: from, to: to, pinnedSigner: pinned, detachedSignature: signature)
            }
            switch outcome {
            case .installed(let version, let previous):
                print("Installed KRL version \(version) at \(to)" + (previous.map { " (was version \($0))" } ?? ""))
            case .alreadyCurrent(let version):
                print("\(to) is already KRL version \(version); nothing changed")
            }
        }
    }
}

struct KnownHosts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "known-hosts",
        abstract: "Print the known_hosts lines that make clients trust the host CA.",
        discussion: helpText("""
        Appends to ~/.ssh/known_hosts (or /etc/ssh/ssh_known_hosts) so users never see a host-key
        prompt for servers with sshca host certificates:
          sshca known-hosts --hosts '*.example.com,10.0.0.*' >> ~/.ssh/known_hosts
        On the CA home, host keys that were revoked in the ledger get @revoked lines too. From
        anywhere else, --ca-url asks the service (pinned as for login: --ca-fingerprint, the
        environment or `sshca configure`) for the host CA key:
          sshca known-hosts --ca-url https://ca.example.com:8443 \\
              --ca-fingerprint SHA256:... --hosts '*.example.com' >> ~/.ssh/known_hosts
        (`sshca configure --known-hosts PATTERNS` does the same and edits the file for you.)
        """)
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("Host name patterns, comma-separated (known_hosts syntax).", valueName: "patterns"))
    var hosts: String

    @Option(name: .long, help: ArgumentHelp("Ask this CA service for the host CA key instead of reading the CA home.", valueName: "url"))
    var caUrl: String?

    @Option(name: .long, help: ArgumentHelp("With --ca-url: the user CA key the service must present (SHA256:...; default: $SSHCA_CA_FINGERPRINT, else the configured pins for that URL). Repeatable.", valueName: "fingerprint"))
    var caFingerprint: [String] = []

    @Option(name: .long, help: ArgumentHelp("With --ca-url: PEM roots for https.", valueName: "file"))
    var caBundle: String?

    func run() async throws {
        try await reportingErrors {
            if caUrl != nil {
                var options = try ServiceOptions.parse([])
                options.caUrl = caUrl
                options.caFingerprint = caFingerprint
                options.caBundle = caBundle
                let client = try options.client()
                let key = try await client.hostCAPublicKey()
                print(try CertificateAuthority.certAuthorityLine(hostPatterns: hosts, hostCA: key))
                return
            }
            let authority = try CertificateAuthority(home: home.caHome)
            for line in try await authority.knownHostsLines(hostPatterns: hosts) { print(line) }
        }
    }
}

/// Paths on the server, overridable so tests (and unusual layouts) use their own tree.
struct ServerPaths: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("sshd's main configuration file.", valueName: "path"))
    var sshdConfig = "/etc/ssh/sshd_config"

    @Option(name: .long, help: ArgumentHelp("The sshd binary used for sshd -t / -T checks.", valueName: "path"))
    var sshd = "/usr/sbin/sshd"

    @Option(name: .long, help: ArgumentHelp("Where the state before the first setup is kept (default: DIR/sshca-backup next to the sshd config).", valueName: "dir"))
    var backupDir: String?

    func backupDirectory() -> String {
        backupDir ?? Files.parentDirectory(of: sshdConfig) + "/sshca-backup"
    }
}

struct HostSetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Make sshd trust the CA (TrustedUserCAKeys, RevokedKeys, principals) in one safe step.",
        discussion: helpText("""
        Run on the server, as root. It installs the user CA key, an empty but valid KRL (only if
        none is there), principal mappings, and a drop-in that sshd reads first (Debian/Ubuntu's
        sshd_config.d; otherwise a marked block at the top of sshd_config). Then sshd -t must
        accept the result and sshd -T must show the intended values, or every file is put back
        exactly as it was and sshd is left alone. sshd is reloaded only after that.
        A second run changes nothing. `sshca host undo` restores the state before the first run.

        --principal deploy=alice,bob lets certificates for alice or bob log in as deploy; users
        without a mapping keep the default rule (a certificate's principal is the login name).
        --disable-passwords also turns off password and keyboard-interactive logins, after
        checking that certificate login is in place. Keep a console or authorized_keys as a
        break-glass path until you have logged in with a certificate.

        With --ca-url the CA key and the current KRL come from the CA service; --ca-fingerprint
        (SHA256:..., from `sshca ca-key | ssh-keygen -lf -` on the CA) is then required. It also
        installs and starts systemd timers (unless --no-timers) that keep the KRL current every
        five minutes and, with --token-file (a host token), renew the host certificates daily;
        `host undo` stops and removes them with everything else setup and `host cert` wrote.

        Examples:
          sshca host setup --ca-url https://ca.example.com:8443 \\
              --ca-fingerprint SHA256:... --token-file /etc/ssh/sshca_host_token
          sshca host setup --ca-key user_ca.pub --dry-run
          sshca host setup --ca-key user_ca.pub --principal deploy=alice,bob \\
              --disable-passwords
        """)
    )

    @Option(name: .long, help: ArgumentHelp("The user CA public key (from `sshca ca-key`).", valueName: "pubkey-file"))
    var caKey: String?

    @Option(name: .long, help: ArgumentHelp("Fetch the CA key and KRL from the CA service instead.", valueName: "url"))
    var caUrl: String?

    @Option(name: .long, help: ArgumentHelp("With --ca-url: the CA key's fingerprint the service must present.", valueName: "fingerprint"))
    var caFingerprint: String?

    @Option(name: .long, help: ArgumentHelp("With --ca-url over https: PEM roots to trust.", valueName: "file"))
    var caBundle: String?

    @OptionGroup var paths: ServerPaths

    @Option(name: .long, help: ArgumentHelp("sshd's RevokedKeys path.", valueName: "path"))
    var krl = "/etc/ssh/sshca_revoked.krl"

    @Option(name: .long, help: ArgumentHelp("Where the CA key is installed (TrustedUserCAKeys).", valueName: "path"))
    var caKeyPath = "/etc/ssh/sshca_user_ca.pub"

    @Option(name: .long, help: ArgumentHelp("Directory for principal mapping files.", valueName: "dir"))
    var principalsDir = "/etc/ssh/sshca_principals"

    @Option(name: .long, help: ArgumentHelp("USER=P1,P2: certificates for these principals may log in as USER. Repeatable.", valueName: "user=principals"))
    var principal: [String] = []

    @Flag(name: .long, help: "Also turn off password and keyboard-interactive authentication.")
    var disablePasswords = false

    @Flag(name: .long, help: "Print what would change, change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print a self-contained POSIX sh script doing the same steps (for ssh root@host sh < script, or cloud-init).")
    var printScript = false

    @Flag(name: .long, help: "Do not reload sshd afterwards.")
    var noReload = false

    @Flag(name: .long, help: "With --ca-url: do not install the systemd timers (KRL sync every 5 minutes; host certificates daily with --token-file).")
    var noTimers = false

    @Option(name: .long, help: ArgumentHelp("With --ca-url: this server's host token file (sshca token create --role host); the host certificate timer renews its certificates with it.", valueName: "file"))
    var tokenFile: String?

    @Option(name: .long, help: ArgumentHelp("With --token-file: names clients use for this server (default: its full and short host name).", valueName: "names"))
    var hostNames: String?

    @Option(name: .long, help: ArgumentHelp("Where the systemd units go.", valueName: "dir"))
    var systemdDir = SystemdUnits.directory

    func validate() throws {
        if tokenFile != nil && (caUrl == nil || noTimers) { throw ValidationError("--token-file installs the host certificate timer: it goes with --ca-url, without --no-timers") }
        guard (caKey == nil) != (caUrl == nil) else { throw ValidationError("give --ca-key FILE or --ca-url URL (with --ca-fingerprint), one of them") }
        if caUrl == nil && (caFingerprint != nil || caBundle != nil) { throw ValidationError("--ca-fingerprint and --ca-bundle go with --ca-url") }
    }

    func run() throws {
        try reportingErrors {
            var client: ServiceClient? = nil
            let key: PublicKey
            if let caUrl {
                client = try ServiceClient(ServiceEndpoint(url: caUrl, caFingerprint: caFingerprint, caBundle: caBundle))
                key = try RemoteCA.userCAKey(client!)
            } else {
                key = try KeyFiles.readPublicKey(caKey!).key
            }
            var request = SetupRequest(caKey: key, sshdConfigPath: paths.sshdConfig)
            request.krlPath = krl
            request.caKeyPath = caKeyPath
            request.principalsDirectory = principalsDir
            request.disablePasswords = disablePasswords
            request.sshdPath = paths.sshd
            request.backupDirectory = paths.backupDirectory()
            for spec in principal {
                guard let equals = spec.firstIndex(of: "=") else {
                    throw SSHCAError(.badInput, "--principal \"\(spec)\" must look like USER=P1,P2")
                }
                request.principalMappings.append((String(spec[..<equals]),
                                                  spec[spec.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
            }
            if printScript {
                FileHandleLite.standardOutput.write(try SetupScript.render(request))
                return
            }
            if let client, !noTimers {
                // The units name this binary, this service, its pins and these paths.
                let executable = SystemdUnits.executablePath()
                request.systemdDirectory = systemdDir
                // systemd runs units from /: every path in them is made absolute here.
                let absolute = { (path: String) in Configure.absolute(path) }
                request.units = try SystemdUnits.krlSync(executable: executable, url: client.endpoint.url, krlPath: absolute(krl),
                                                         caKeyPath: absolute(caKeyPath), caBundle: caBundle.map(absolute), tokenFile: tokenFile.map(absolute))
                if let tokenFile {
                    guard Files.exists(tokenFile) else { throw SSHCAError(.badInput, "--token-file \(tokenFile) does not exist; create the token on the CA (sshca token create --role host --name HOST) and put it there (mode 0600)") }
                    let hostCA = try blocking { () throws(SSHCAError) in try await client.hostCAPublicKey() }
                    let names = hostNames.map { $0.split(separator: ",").map(String.init) } ?? []
                    request.units += try SystemdUnits.hostCert(executable: executable, url: client.endpoint.url, hostCAFingerprint: hostCA.fingerprint,
                                                               tokenFile: absolute(tokenFile), principals: names, caBundle: caBundle.map(absolute))
                }
            }
            request.sidecars = [krl + ".etag"]
            // Read before anything changes: an unreadable token file stops setup untouched.
            let token = try tokenFile.map { (path: String) throws(SSHCAError) -> String in try Credential.token(fromFile: path) }
            let plan = try ServerSetup.plan(request)
            if dryRun {
                if plan.isEmpty { print("already set up: nothing would change") } else { FileHandleLite.standardOutput.write(ServerSetup.diff(plan)) }
                return
            }
            let report = try ServerSetup.apply(plan, request: request, reload: !noReload)
            for change in plan.changes { print("\(change.before == nil ? "created" : "updated") \(change.path)") }
            for check in report.checks { print("ok: \(check)") }
            print("sshd: \(report.reload)")
            if let client {
                // Identified as the timer will be (the host token when there is one), so the
                // service's record of this server is one entry, not a second, claimed one.
                switch try RemoteCA.syncKRL(client, to: krl, pinnedSigner: key, token: token) {
                case .installed(let version, _): print("installed the service's KRL version \(version) at \(krl)")
                case .alreadyCurrent(let version): print("\(krl) is already the service's KRL version \(version)")
                }
                if noTimers {
                    print("keep it current with: sshca host krl-sync --from \(client.endpoint.url) --to \(krl) --ca-key \(caKeyPath) (every few minutes)")
                } else {
                    let timers = request.units.map(\.name).filter { $0.hasSuffix(".timer") }
                    print("timers: \(SystemdUnits.activate(timers, in: systemdDir, enable: true))")
                }
            }
        }
    }
}

struct HostUndo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undo",
        abstract: "Restore every file `sshca host setup` changed to its state before the first setup.",
        discussion: "sshd -t must accept the restored configuration; then sshd is reloaded."
    )

    @OptionGroup var paths: ServerPaths

    @Flag(name: .long, help: "Do not reload sshd afterwards.")
    var noReload = false

    func run() throws {
        try reportingErrors {
            let result = try ServerSetup.undo(sshdConfigPath: paths.sshdConfig, backupDirectory: paths.backupDirectory(),
                                              sshdPath: paths.sshd, reload: !noReload)
            for line in result.restored { print(line) }
            print("sshd: \(result.reload)")
        }
    }
}

struct HostCert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert",
        abstract: "Sign this server's host keys with the host CA and make sshd present the certificates.",
        discussion: helpText("""
        Run where both the CA home and the server's sshd configuration are (the CA machine itself,
        or a server with a copy of the CA home). Without --hostkey, every HostKey sshd uses is
        certified; principals default to this host's full and short names. The certificates are
        written next to the keys (NAME-cert.pub) and listed as HostCertificate in a drop-in (or a
        managed block), validated with sshd -t, then sshd is reloaded.
        Clients trust them with one line from: sshca known-hosts --hosts '*.example.com'

        With --ca-url the CA service signs instead, with a host token (--token-file; create it with
        sshca token create --role host --name HOSTNAME). Certificates with more than
        --renew-before left are kept, so the systemd timer in ca-config/ can run it daily. Here
        --ca-fingerprint pins the host CA key (sshca ca-key --host | ssh-keygen -lf -).

        Examples:
          sshca host cert --principals web-01.example.com,web-01
          sshca host cert --ca-url https://ca.example.com:8443 \\
              --ca-fingerprint SHA256:... --token-file /etc/ssh/sshca_host_token \\
              --principals web-01.example.com
        """)
    )

    @OptionGroup var remote: RemoteOptions

    @Option(name: .long, help: ArgumentHelp("With --ca-url: renew certificates with less than this left (default 7d).", valueName: "duration"))
    var renewBefore: String = "7d"

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions
    @OptionGroup var paths: ServerPaths

    @Option(name: .long, help: ArgumentHelp("A public host key to certify (default: every HostKey of sshd). Repeatable.", valueName: "path"))
    var hostkey: [String] = []

    @Option(name: .long, help: ArgumentHelp("Comma-separated names clients use for this server.", valueName: "names"))
    var principals: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Validity (default: the configured host validity).", valueName: "spec"))
    var validity: String?

    @Flag(name: .long, help: "Do not reload sshd afterwards.")
    var noReload = false

    func run() async throws {
        try await reportingErrors {
            var request = HostCertificates.Request()
            request.hostKeys = hostkey
            request.principals = principals.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? []
            request.sshdConfigPath = paths.sshdConfig
            request.sshdPath = paths.sshd
            request.backupDirectory = paths.backupDirectory()
            let certify: HostCertificates.Certifier
            var renewal: UInt64? = nil
            var hostCA: PublicKey? = nil
            if remote.caUrl != nil {
                let client = try remote.client(kind: .host)
                renewal = try DurationText.seconds(renewBefore)
                (certify, hostCA) = try await RemoteCA.hostCertifier(client, credential: try remote.credential(), validity: validity)
            } else {
                // The CA home on this machine: the same issuance as `sshca sign --host`.
                let authority = try CertificateAuthority(home: home.caHome)
                let window = try validity.map { v throws(SSHCAError) in
                    try ValidityWindow.parse(v, now: Clock.now(), backdate: authority.configuration.backdate)
                }
                let source = passphrase.source
                certify = { (key: PublicKey, principals: [String]) async throws(SSHCAError) -> Certificate in
                    var certificateRequest = CertificateRequest(publicKey: key, type: .host, keyID: "host:\(principals[0]):\(key.typeName)", principals: principals)
                    certificateRequest.validity = window
                    return try await authority.issue(certificateRequest, requestedBy: Requester(name: Operator.name(nil), channel: "host-cert"), passphrase: source).certificate
                }
            }
            let result = try await HostCertificates.issue(request, certify: certify, renewBefore: renewal, hostCA: hostCA, reload: !noReload)
            for issued in result.issued { print("certified \(issued.keyPath) -> \(issued.certificatePath) (serial \(issued.serial))") }
            for path in result.kept { print("kept \(path) (more than \(renewBefore) left)") }
            print("sshd: \(result.reload)")
        }
    }
}

struct HostDoctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Explain why a certificate login fails on this server, and how to fix it.",
        discussion: helpText("""
        Checks the sshd configuration (sshd -t / sshd -T), the trusted CA file, the KRL, the
        user's home and ~/.ssh permissions and, with --cert, the certificate itself: its CA, type,
        validity, revocation and principals for --user.
          sshca host doctor --user deploy --cert alice-cert.pub
        Exit status: 0 no problem found, 1 problems found.
        """)
    )

    @OptionGroup var paths: ServerPaths

    @Option(name: .long, help: ArgumentHelp("The login name to check.", valueName: "name"))
    var user: String?

    @Option(name: .long, help: ArgumentHelp("The certificate the user logs in with.", valueName: "file"))
    var cert: String?

    func run() throws {
        var problems = 0
        try reportingErrors {
            var request = Doctor.Request()
            request.sshdConfigPath = paths.sshdConfig
            request.sshdPath = paths.sshd
            request.user = user
            request.certificatePath = cert
            for finding in try Doctor.examine(request) {
                switch finding.kind {
                case .ok:
                    print("ok       \(finding.message)")
                case .problem:
                    problems += 1
                    print("PROBLEM  [\(finding.code)] \(finding.message)")
                    if let fix = finding.fix { print("         fix: \(fix)") }
                }
            }
            print(problems == 0 ? "no problems found" : "\(problems) problem(s) found")
        }
        if problems > 0 { throw ExitCode(ExitStatus.failure) }
    }
}
