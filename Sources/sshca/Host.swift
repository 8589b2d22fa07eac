import ArgumentParser
import Authority
import HostSetup
import SSHFormat

struct Host: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Server-side helpers: keep a server's copy of the CA's KRL current, safely.",
        subcommands: [HostKRLSync.self]
    )
}

struct HostKRLSync: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "krl-sync",
        abstract: "Install a new KRL for sshd's RevokedKeys, only if OpenSSH will accept it.",
        discussion: """
        sshd refuses every key login when its RevokedKeys file is missing or invalid. krl-sync
        installs the new file only when it parses strictly, its signatures verify, it is not signed
        only by keys it revokes, `ssh-keygen -Q` loads it, and its version is not older than the
        installed one; with --ca-key it must also be signed by that key (unsigned ones are refused).
        The file is replaced atomically: whatever fails, the installed KRL stays as it was.
        sshd re-reads RevokedKeys at every login; no reload is needed.

        Example (on a server, from cron or a systemd timer):
          sshca host krl-sync --from /var/tmp/revoked.krl --to /etc/ssh/sshca_revoked.krl --ca-key /etc/ssh/sshca_user_ca.pub
        Exit status: 0 installed or already current, 65 refused (the installed file is untouched), 1 I/O failure.
        """
    )

    @Option(name: .long, help: ArgumentHelp("The new KRL file.", valueName: "file"))
    var from: String

    @Option(name: .long, help: ArgumentHelp("The installed KRL (sshd's RevokedKeys path).", valueName: "path"))
    var to: String

    @Option(name: .long, help: ArgumentHelp("Pin the signer: the KRL must be signed by this public key.", valueName: "pubkey-file"))
    var caKey: String?

    func run() throws {
        try reportingErrors {
            let pinned = try caKey.map { (path: String) throws(AuthorityError) -> PublicKey in try KeyFiles.readPublicKey(path).key }
            let bytes = try Files.read(from, maximumBytes: 1 << 30, what: "KRL")
            switch try KRLSync.install(bytes, source: from, to: to, pinnedSigner: pinned) {
            case .installed(let version, let previous):
                print("Installed KRL version \(version) at \(to)" + (previous.map { " (was version \($0))" } ?? ""))
            case .alreadyCurrent(let version):
                print("\(to) is already KRL version \(version); nothing changed")
            }
        }
    }
}

struct KnownHosts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "known-hosts",
        abstract: "Print the known_hosts lines that make clients trust the host CA.",
        discussion: """
        Appends to ~/.ssh/known_hosts (or /etc/ssh/ssh_known_hosts) so users never see a host-key
        prompt for servers with sshca host certificates:
          sshca known-hosts --hosts '*.example.com,10.0.0.*' >> ~/.ssh/known_hosts
        Host keys that were revoked in the ledger get @revoked lines.
        """
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("Host name patterns, comma-separated (known_hosts syntax).", valueName: "patterns"))
    var hosts: String

    func run() throws {
        try reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            for line in try authority.knownHostsLines(hostPatterns: hosts) { print(line) }
        }
    }
}
