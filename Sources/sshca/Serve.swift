import Common
import ArgumentParser
import Authority
import Client
import Logging
import Service
#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the CA service: engineers log in, hosts renew, security staff revoke, servers fetch the KRL.",
        discussion: helpText("""
        An HTTP API on --listen (default from [service] listen, 127.0.0.1:8443). Plain HTTP is
        allowed on loopback only; elsewhere configure tls_certificate and tls_key in [service].
        Roles in sshca.toml decide what each enrolled user or token may get. SIGTERM or Ctrl-C
        stops it after the requests in flight. One log line per request goes to standard error.

        Endpoints: POST /v1/challenge, POST /v1/certificates, GET /v1/ca/user.pub and host.pub,
        GET /v1/krl (ETag) and /v1/krl.sig, POST /v1/revocations, GET /v1/certificates[/SERIAL],
        GET /v1/hosts, GET /healthz, GET /metrics (Prometheus). The OpenAPI document is
        docs/openapi.yaml.

        Examples:
          sshca serve --init                 a new CA in ./ca-data, on 127.0.0.1:8443
          sshca serve --home /srv/ca --passphrase-file /run/keys/ca-pass
          sshca user add alice --role engineer --identity-key alice.pub
          sshca login --ca-url http://127.0.0.1:8443 --user alice
        """)
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup var passphrase: PassphraseOptions

    @Option(name: .long, help: ArgumentHelp("Read the configuration from this file instead of HOME/sshca.toml.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("HOST:PORT to listen on (port 0: any free port, printed at start).", valueName: "host:port"))
    var listen: String?

    @Flag(name: .long, help: "Create a CA in the home first if there is none (keys unencrypted unless --passphrase-file).")
    var `init` = false

    func run() async throws {
        try await reportingErrors {
            let caHome = home.caHome
            if self.`init` && !caHome.isInitialized {
                var creation = CAHome.Creation()
                creation.signKRL = true
                if let file = passphrase.passphraseFile ?? Environment.value("SSHCA_PASSPHRASE_FILE") {
                    creation.passphrase = try PassphraseSource.readPassphraseFile(file)
                }
                _ = try await CAHome.create(at: caHome.path, creation)
                printNote("Created a new CA in \(caHome.path) (\(creation.passphrase == nil ? "keys unencrypted: protect this directory" : "keys encrypted with the passphrase")).")
            }
            var configuration: Configuration? = nil
            if let config {
                configuration = try Configuration(parsing: try Files.readText(config, what: "configuration file"), fileName: config)
            }
            let authority = try CertificateAuthority(home: caHome, configuration: configuration, use: .service,
                                                    readOnlyLedgerFallback: true)
            let address = try ListenAddress(parsing: listen ?? authority.configuration.service.listen)
            // A role renamed or removed in sshca.toml leaves its members unable to sign in; say so
            // at start rather than at their first refused login.
            if !authority.configuration.signKRL {
                printNote("warning: [krl] sign = false in \(config ?? Configuration.fileName): servers that fetch the KRL by URL (host setup --ca-url, host krl-sync --from URL --ca-key) refuse unsigned KRLs; set sign = true")
            }
            let roles = authority.configuration.roles
            for user in try await authority.users() where !user.disabled && roles[user.role] == nil {
                printNote("warning: user \(user.name) has role \"\(user.role)\", which \(config ?? Configuration.fileName) does not define; they cannot sign in")
            }
            for token in try await authority.tokens() where !token.revoked && roles[token.role] == nil {
                printNote("warning: token \(token.id) (\(token.name)) has role \"\(token.role)\", which \(config ?? Configuration.fileName) does not define; it is refused")
            }
            let service = try await CAService(authority: authority, passphrase: passphrase.source)
            LoggingSystem.bootstrap { label in
                var handler = LineLogHandler(label: label)
                handler.logLevel = .info
                return handler
            }
            let logger = Logger(label: "sshca")
            let userCA = try authority.home.publicKey(.user).fingerprint
            let hostCA = try authority.home.publicKey(.host).fingerprint
            do {
                try await runService(service, listen: address, logger: logger) { url in
                    FileHandleLite.standardOutput.write("sshca serve: listening on \(url) (CA home \(caHome.path), user CA \(userCA), host CA \(hostCA))\n")
                }
            } catch let error as SSHCAError {
                throw error
            } catch {
                throw SSHCAError(.io, "the service stopped: \(error)")
            }
        }
    }
}

/// One line per log event on standard error, written with a single write(2): swift-log's
/// StreamLogHandler locks stdio and flushes per line, which cost the service 10% of its
/// issuance rate. Timestamps are UTC; metadata is printed as sorted key=value pairs.
struct LineLogHandler: LogHandler {
    /// Control characters from requests (a newline in a name) cannot forge log lines.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f { out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16) } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level, message = event.message, explicit = event.metadata
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [Int8](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        var text = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        text += " \(level) \(label):"
        let all = explicit.map { metadata.merging($0) { $1 } } ?? metadata
        for (key, value) in all.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(Self.escaped("\(value)"))" }
        text += " \(Self.escaped("\(message)"))\n"
        text.withUTF8 { bytes in
            var rest = UnsafeRawBufferPointer(bytes)
            while !rest.isEmpty {
                let n = Glibc.write(2, rest.baseAddress, rest.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
    }
}
