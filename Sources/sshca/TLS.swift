import Common
import ArgumentParser
import Authority
import SSHCrypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `sshca tls`: https for the service in one step, with a certificate of its own that clients
/// pin as their --ca-bundle.
struct TLSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls",
        abstract: "Give the service a TLS key and certificate (self-signed, for the names clients use) and switch it to https.",
        discussion: helpText("""
        Writes tls.key (0600) and tls.crt into the CA home and sets tls_certificate and tls_key in
        [service] of its sshca.toml; `sshca serve` then speaks https. The certificate is its own
        root: clients trust exactly it by giving the file as --ca-bundle (sshca configure keeps it),
        so no company PKI is needed. Restart the service to use it. Before the certificate
        expires (--days, default 397), run this again with --force and hand out the new tls.crt.

        With a company PKI instead: put its certificate chain and key in the home (or anywhere)
        and set tls_certificate and tls_key in [service] by hand; clients then need no bundle,
        or the company's root as --ca-bundle.

        Examples:
          sshca tls --name ca.example.com --name 10.0.0.5 --listen 0.0.0.0:8443
          sshca tls --name localhost --name 127.0.0.1
        """)
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("A host name or IP address clients use for the service. Repeatable; the first is the certificate's subject.", valueName: "name"))
    var name: [String] = []

    @Option(name: .long, help: ArgumentHelp("How long the certificate is valid, in days.", valueName: "days"))
    var days: Int = 397

    @Option(name: .long, help: ArgumentHelp("Also set [service] listen (e.g. 0.0.0.0:8443 to serve other machines).", valueName: "host:port"))
    var listen: String?

    @Flag(name: .long, help: "Replace an existing tls.key/tls.crt, or TLS settings that name other files.")
    var force = false

    func validate() throws {
        guard !name.isEmpty else { throw ValidationError("give --name NAME: the host name (or IP address) clients use for the service; repeat it for more") }
        for name in name where !Self.isValidName(name) {
            throw ValidationError("--name \"\(name)\" is neither a host name (letters, digits, '-', '.', a leading '*.') nor an IP address")
        }
        guard (1...3650).contains(days) else { throw ValidationError("--days must be between 1 and 3650") }
        if let listen, (try? ListenAddress(parsing: listen)) == nil { throw ValidationError("--listen \"\(listen)\" is not HOST:PORT") }
    }

    static func isValidName(_ name: String) -> Bool {
        if TLSCertificate.isIPAddress(name) { return true }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard name.count <= 253, !labels.isEmpty else { return false }
        for (index, label) in labels.enumerated() {
            if index == 0 && label == "*" && labels.count > 2 { continue }
            guard (1...63).contains(label.count), label.first != "-", label.last != "-",
                  label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return false }
        }
        return true
    }

    func run() throws {
        try reportingErrors {
            let caHome = home.caHome
            guard caHome.isInitialized else {
                throw SSHCAError(.home, "\(caHome.path) holds no CA; create one first (sshca init, or sshca serve --init)")
            }
            let keyPath = caHome.path + "/tls.key", certificatePath = caHome.path + "/tls.crt"
            if !force, let existing = [keyPath, certificatePath].first(where: Files.exists) {
                throw SSHCAError(.home, "\(existing) exists; give --force to replace the service's TLS key and certificate (clients then need the new tls.crt)")
            }
            let configPath = caHome.configurationPath
            let text = try Files.readText(configPath, what: "configuration")
            let updated = try Self.withTLS(text, listen: listen, force: force, fileName: configPath)
            _ = try Configuration(parsing: updated, fileName: configPath)
            let made: (key: String, certificate: String)
            do { made = try TLSCertificate.selfSigned(names: name, days: days) } catch {
                throw SSHCAError(.key, "cannot make the TLS certificate: \(error)")
            }
            // The service may run as the home's owner (the package's sshca user) while root runs
            // this: what is written here belongs to the home's owner, as the rest of it does.
            var home = stat()
            let owner: (uid_t, gid_t)? = stat(caHome.path, &home) == 0 ? (home.st_uid, home.st_gid) : nil
            let configMode = Files.mode(configPath) ?? 0o600
            try Files.writeAtomically(keyPath, Array(made.key.utf8), mode: 0o600)
            try Files.writeAtomically(certificatePath, Array(made.certificate.utf8), mode: 0o644)
            try Files.writeAtomically(configPath, Array(updated.utf8), mode: configMode)
            if let owner, owner.0 != geteuid() {
                for path in [keyPath, certificatePath, configPath] where chown(path, owner.0, owner.1) != 0 {
                    throw SSHCAError(.io, "cannot give \(path) to the home's owner (uid \(owner.0)): \(String(cString: strerror(errno)))")
                }
            }
            let configuration = try Configuration(parsing: updated, fileName: configPath)
            let port = (try? ListenAddress(parsing: configuration.service.listen))?.port ?? 8443
            let host = TLSCertificate.isIPAddress(name[0]) && name[0].contains(":") ? "[\(name[0])]" : name[0]
            let userCA = try caHome.publicKey(.user).fingerprint
            print("""
            Wrote \(certificatePath) (names \(name.joined(separator: ", ")), valid \(days) days) and \(keyPath);
            [service] in \(configPath) now serves https with them. Restart sshca serve to use it.
            Clients use tls.crt as their CA bundle (copy it to them):
              sshca configure --ca-url https://\(host):\(port) --ca-fingerprint \(userCA) --ca-bundle tls.crt
            """)
            if let address = try? ListenAddress(parsing: configuration.service.listen), address.isLoopback {
                print("The service listens on \(configuration.service.listen) (loopback only); to serve other machines: sshca tls ... --listen 0.0.0.0:\(port) --force")
            }
        }
    }

    /// The configuration text with [service] tls_certificate/tls_key set to the home's files
    /// (and listen, when given): other lines, comments included, stay as they are.
    static func withTLS(_ text: String, listen: String?, force: Bool, fileName: String) throws(SSHCAError) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let service = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "[service]" }) else {
            lines.append(contentsOf: ["", "[service]", "tls_certificate = \"tls.crt\"", "tls_key = \"tls.key\""] + (listen.map { ["listen = \"\($0)\""] } ?? []))
            return lines.joined(separator: "\n")
        }
        let end = lines[(service + 1)...].firstIndex(where: { $0.hasPrefix("[") }) ?? lines.count
        var settings: [(key: String, value: String)] = [("tls_certificate", "tls.crt"), ("tls_key", "tls.key")]
        if let listen { settings.append(("listen", listen)) }
        var insertAt = service + 1
        for (key, value) in settings {
            let line = "\(key) = \(ConfigText.quoted(value))"
            if let current = lines[(service + 1)..<end].firstIndex(where: { $0.hasPrefix(key + " ") || $0.hasPrefix(key + "=") }) {
                if lines[current] != line, key != "listen", !force {
                    throw SSHCAError(.badConfig, "\(fileName):\(current + 1): [service] already has \(lines[current]); give --force to point it at the home's tls.crt/tls.key instead")
                }
                lines[current] = line
                insertAt = max(insertAt, current + 1)
            } else if let commented = lines[(service + 1)..<end].firstIndex(where: { $0.hasPrefix("# \(key) =") }) {
                lines[commented] = line
                insertAt = max(insertAt, commented + 1)
            } else {
                lines.insert(line, at: insertAt)
                insertAt += 1
            }
        }
        return lines.joined(separator: "\n")
    }
}
