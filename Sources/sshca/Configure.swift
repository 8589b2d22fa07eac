import Common
import ArgumentParser
import Authority
import Client
import SSHFormat
import Foundation

/// `sshca configure`: where this laptop's CA is and which key it must present, kept in the
/// client configuration, so the daily command is `sshca login`.
struct Configure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remember the CA service, its pinned key and your name, so that `sshca login` is the whole daily command.",
        discussion: helpText("""
        Writes the client configuration: $SSHCA_CONFIG, else $XDG_CONFIG_HOME/sshca/client.toml,
        else ~/.config/sshca/client.toml (mode 0600). Values given again replace the stored ones;
        --ca-fingerprint is a set (repeat it: during a CA rotation both keys are pinned). Before it
        writes, configure asks the service for its user CA key and refuses a pin that does not
        match. Every client command then pins the CA when it talks to that URL; flags and the
        $SSHCA_CA_URL, $SSHCA_CA_FINGERPRINT, $SSHCA_CA_BUNDLE, $SSHCA_USER and $SSHCA_IDENTITY
        variables override the file.

        What the pin proves: that the service shows your CA's public key, which anyone can show.
        It is https (checked against --ca-bundle or the system's roots) that proves you talk to
        your service; plain http is accepted only on this machine's loopback.

        --known-hosts PATTERN adds the host CA (fetched from the pinned service) to
        ~/.ssh/known_hosts as "@cert-authority PATTERN ...", so servers with sshca host
        certificates are trusted without a host-key prompt.

        Examples:
          sshca configure --ca-url https://ca.example.com:8443 --ca-fingerprint SHA256:... \\
              --ca-bundle ~/ca-bundle.pem --user alice --identity ~/.ssh/id_ed25519
          sshca configure --known-hosts '*.example.com'
          sshca configure --show
        """)
    )

    @Option(name: .long, help: ArgumentHelp("The CA service (https://ca.example.com:8443).", valueName: "url"))
    var caUrl: String?

    @Option(name: .long, help: ArgumentHelp("The user CA key's fingerprint (SHA256:..., from `sshca ca-key | ssh-keygen -lf -` on the CA). Repeatable.", valueName: "fingerprint"))
    var caFingerprint: [String] = []

    @Option(name: .long, help: ArgumentHelp("PEM roots that the service's https certificate must chain to.", valueName: "file"))
    var caBundle: String?

    @Option(name: .long, help: ArgumentHelp("Your enrolled user name.", valueName: "name"))
    var user: String?

    @Option(name: .long, help: ArgumentHelp("Your identity key (private key file, or a .pub whose key is in ssh-agent).", valueName: "keyfile"))
    var identity: String?

    @Option(name: .long, help: ArgumentHelp("Also trust the host CA for these host patterns in ~/.ssh/known_hosts (e.g. '*.example.com').", valueName: "patterns"))
    var knownHosts: String?

    @Flag(name: .long, help: "Print the configuration file and where it is, and change nothing.")
    var show = false

    func run() throws {
        try reportingErrors {
            let environment = ProcessInfo.processInfo.environment
            let path = ClientConfiguration.path(environment: environment)
            let existing = try ClientConfiguration.load(path)
            if show {
                guard let existing else { throw SSHCAError(.notFound, "no client configuration at \(path); write one with sshca configure --ca-url URL --ca-fingerprint SHA256:...") }
                print("# \(path)")
                print(existing.rendered, terminator: "")
                return
            }
            var updated = existing ?? ClientConfiguration()
            if let caUrl { updated.caURL = caUrl }
            if !caFingerprint.isEmpty { updated.caFingerprints = caFingerprint.reduce(into: []) { pins, pin in if !pins.contains(pin) { pins.append(pin) } } }
            if let caBundle { updated.caBundle = Self.absolute(caBundle) }
            if let user { updated.user = user }
            if let identity { updated.identity = Self.absolute(identity) }
            guard let url = updated.caURL else {
                throw SSHCAError(.badInput, "give --ca-url URL (the CA service, e.g. https://ca.example.com:8443)")
            }
            guard !updated.caFingerprints.isEmpty else {
                throw SSHCAError(.badInput, "give --ca-fingerprint SHA256:... (ask your CA's administrator for `sshca ca-key | ssh-keygen -lf -`): without a pin nothing checks that the service is your CA's")
            }
            let client = try ServiceClient(ServiceEndpoint(url: url, caFingerprints: updated.caFingerprints, caBundle: updated.caBundle))
            let userCA = try blocking { () throws(SSHCAError) in try await client.caPublicKey(.user) }
            if updated != existing {
                try updated.write(to: path)
                print("Wrote \(path): \(url), user CA \(userCA.fingerprint) (pinned)\(updated.user.map { ", user \($0)" } ?? "").")
            } else {
                print("\(path) already says this: \(url), user CA \(userCA.fingerprint) (pinned).")
            }
            if let knownHosts {
                let hostCA = try blocking { () throws(SSHCAError) in try await client.hostCAPublicKey() }
                let knownHostsPath = (environment["HOME"] ?? "/root") + "/.ssh/known_hosts"
                let added = try Self.addCertAuthority(hostCA, patterns: knownHosts, to: knownHostsPath)
                print(added ? "Added the host CA \(hostCA.fingerprint) for \(knownHosts) to \(knownHostsPath)."
                            : "\(knownHostsPath) already trusts the host CA \(hostCA.fingerprint) for \(knownHosts).")
            } else {
                print("Next: sshca login. To trust servers' host certificates too: sshca configure --known-hosts '*.example.com'")
            }
        }
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Appends "@cert-authority PATTERNS KEY" unless that line is there already; the file is
    /// rewritten atomically, keeping its mode (0644 when new, in a ~/.ssh made 0700).
    static func addCertAuthority(_ key: PublicKey, patterns: String, to path: String) throws(SSHCAError) -> Bool {
        let line = try CertificateAuthority.certAuthorityLine(hostPatterns: patterns, hostCA: key)
        var text = ""
        var mode: mode_t = 0o644
        if Files.exists(path) {
            text = try Files.readText(path, maximumBytes: 16 << 20, what: "known_hosts")
            var info = stat()
            if stat(path, &info) == 0 { mode = info.st_mode & 0o777 }
            let trusted = line.split(separator: " ").prefix(4)
            if text.split(separator: "\n").contains(where: { $0.split(separator: " ").prefix(4) == trusted }) { return false }
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        } else {
            let directory = Files.parentDirectory(of: path)
            if !Files.exists(directory) {
                do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                    throw SSHCAError(.io, "cannot create \(directory): \(error)")
                }
            }
        }
        try Files.writeAtomically(path, Array((text + line + "\n").utf8), mode: mode)
        return true
    }
}
