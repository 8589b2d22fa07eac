import Common
import SSHFormat

/// Where a CA private key lives.
public enum KeyStorage: String, Sendable, Equatable {
    /// A PKCS#8 PEM file in the CA home (encrypted with a passphrase, or not).
    case file
    /// Only the public half is in the home; ssh-agent at $SSH_AUTH_SOCK holds the private key.
    case agent
}

/// The CA's configuration, read from `sshca.toml` in the CA home. Unknown tables and keys are
/// errors, so a typo never silently falls back to a default.
public struct Configuration: Equatable, Sendable {
    public var userKeyStorage: KeyStorage = .file
    public var hostKeyStorage: KeyStorage = .file
    /// Validity of a user certificate when the request names none.
    public var userValidity: UInt64 = 86400
    /// Validity of a host certificate when the request names none.
    public var hostValidity: UInt64 = 86400
    /// How far before "now" a certificate starts, for servers whose clocks run behind.
    public var backdate: UInt64 = 300
    /// Extensions a user certificate gets when the request does not say otherwise.
    public var userExtensions: [String] = CertificateOption.defaultUserExtensions
    /// Smallest RSA key (bits) the CA certifies.
    public var minimumRSABits: Int = 2048
    /// Sign the published KRL with the user CA key (never when the KRL revokes that key).
    public var signKRL: Bool = false
    /// Serials of certificates that expired longer ago than this are left out of the KRL: sshd
    /// refuses them anyway, and the margin covers servers whose clocks run behind.
    public var krlExpiredMargin: UInt64 = 86400
    /// `[ledger] lock_timeout`: how long a command or the service waits for another process's
    /// write to the ledger before it gives up ("the ledger is locked").
    public var ledgerLockTimeout: UInt64 = 10

    /// `[service]`: where `sshca serve` listens and who may do what.
    public var service = ServiceSettings()
    /// `[role.NAME]` tables.
    public var roles: [String: Role] = [:]

    public init() {}

    public static let fileName = "sshca.toml"

    public init(parsing text: String, fileName: String = Configuration.fileName) throws(SSHCAError) {
        let document = try ConfigText(parsing: text, fileName: fileName)
        let known: [String: Set<String>] = [
            "ca": ["user_key", "host_key"],
            "certificates": ["user_validity", "host_validity", "backdate", "user_extensions", "min_rsa_bits"],
            "krl": ["sign", "keep_expired_for"],
            "ledger": ["lock_timeout"],
            "service": ServiceSettings.tableKeys,
        ]
        for table in document.tables where table.name.hasPrefix("role.") {
            let name = String(table.name.dropFirst(5))
            guard Role.isValidName(name) else {
                throw SSHCAError(.badConfig, "\(fileName):\(table.line): role name \"\(name)\" must be letters, digits, - or _")
            }
            var role = Role(name: name)
            role.line = table.line
            roles[name] = role
        }
        for table in document.tables where known[table.name] == nil && !table.name.hasPrefix("role.") {
            throw SSHCAError(.badConfig, "\(fileName):\(table.line): unknown table [\(table.name)]; sshca knows [\(known.keys.sorted().joined(separator: "], ["))] and [role.NAME]")
        }
        for entry in document.entries {
            func fail(_ message: String) -> SSHCAError {
                SSHCAError(.badConfig, "\(fileName):\(entry.line): \(entry.key): \(message)")
            }
            func string() throws(SSHCAError) -> String {
                guard case .string(let s) = entry.value else { throw fail("expected a string in quotes, found \(entry.value.typeName)") }
                return s
            }
            func duration() throws(SSHCAError) -> UInt64 {
                do { return try DurationText.seconds(try string()) } catch { throw fail(error.reason) }
            }
            func storage() throws(SSHCAError) -> KeyStorage {
                let s = try string()
                guard let storage = KeyStorage(rawValue: s) else { throw fail("must be \"file\" or \"agent\", not \"\(s)\"") }
                return storage
            }
            if entry.table.hasPrefix("role.") {
                let name = String(entry.table.dropFirst(5))
                guard Role.tableKeys.contains(entry.key) else {
                    throw SSHCAError(.badConfig, "\(fileName):\(entry.line): unknown key \"\(entry.key)\" in [\(entry.table)]; known keys there: \(Role.tableKeys.sorted().joined(separator: ", "))")
                }
                do { try roles[name]!.set(entry.key, entry.value) } catch { throw fail(error.reason) }
                continue
            }
            if entry.table == "service" {
                guard ServiceSettings.tableKeys.contains(entry.key) else {
                    throw SSHCAError(.badConfig, "\(fileName):\(entry.line): unknown key \"\(entry.key)\" in [service]; known keys there: \(ServiceSettings.tableKeys.sorted().joined(separator: ", "))")
                }
                do { try service.set(entry.key, entry.value) } catch { throw fail(error.reason) }
                continue
            }
            guard let keys = known[entry.table], keys.contains(entry.key) else {
                let table = entry.table.isEmpty ? "the top level" : "[\(entry.table)]"
                let hint = known[entry.table].map { "; known keys there: \($0.sorted().joined(separator: ", "))" } ?? ""
                throw SSHCAError(.badConfig, "\(fileName):\(entry.line): unknown key \"\(entry.key)\" in \(table)\(hint)")
            }
            switch (entry.table, entry.key) {
            case ("ca", "user_key"): userKeyStorage = try storage()
            case ("ca", "host_key"): hostKeyStorage = try storage()
            case ("certificates", "user_validity"): userValidity = try duration()
            case ("certificates", "host_validity"): hostValidity = try duration()
            case ("certificates", "backdate"): backdate = try duration()
            case ("certificates", "user_extensions"):
                guard case .array(let items) = entry.value else { throw fail("expected a list of extension names") }
                var names: [String] = []
                for item in items {
                    guard case .string(let name) = item else { throw fail("expected a list of strings") }
                    do { try IssuanceRules.checkExtensionName(name, hasValue: false) } catch { throw fail(error.reason) }
                    guard !names.contains(name) else { throw fail("\(name) is listed twice (a certificate may carry each extension once)") }
                    names.append(name)
                }
                userExtensions = names
            case ("krl", "sign"):
                guard case .boolean(let b) = entry.value else { throw fail("expected true or false") }
                signKRL = b
            case ("krl", "keep_expired_for"): krlExpiredMargin = try duration()
            case ("ledger", "lock_timeout"):
                let seconds = try duration()
                guard seconds >= 1, seconds <= 3600 else { throw fail("expected a duration from 1s to 1h") }
                ledgerLockTimeout = seconds
            case ("certificates", "min_rsa_bits"):
                guard case .integer(let n) = entry.value, n >= 2048, n <= 16384 else { throw fail("expected a number from 2048 to 16384") }
                minimumRSABits = Int(n)
            default:
                throw fail("unknown key")
            }
            if (entry.key == "user_validity" || entry.key == "host_validity"), (try? duration()) == 0 {
                throw fail("a validity of zero makes certificates that are never valid")
            }
        }
        try checkRoles(fileName: fileName)
        for name in service.securityStaff where name.isEmpty {
            throw SSHCAError(.badConfig, "\(fileName): [service] security_staff has an empty name")
        }
    }

    /// Checks that need the whole file: a role's default within its maximum.
    func checkRoles(fileName: String) throws(SSHCAError) {
        for role in roles.values.sorted(by: { $0.line < $1.line }) {
            if role.defaultValidity > role.maximumValidity {
                throw SSHCAError(.badConfig, "\(fileName):\(role.line): [role.\(role.name)] default_validity \(DurationText.format(role.defaultValidity)) is longer than its max_validity \(DurationText.format(role.maximumValidity))")
            }
        }
    }

    /// The role a `sshca user add --role` or `token create --role` names, or an error listing them.
    public func role(named name: String) throws(SSHCAError) -> Role {
        guard let role = roles[name] else {
            let known = roles.keys.sorted()
            throw SSHCAError(.badInput, known.isEmpty
                ? "no roles are configured; add a [role.\(name)] table to \(Configuration.fileName) (see ca-config/sshca.toml)"
                : "unknown role \"\(name)\"; \(Configuration.fileName) defines: \(known.joined(separator: ", "))")
        }
        return role
    }

    /// The roles `sshca init` starts with: engineers get their own name, security staff may
    /// revoke and list, a host token gets host certificates for the name it was created with,
    /// and a deploy token (CI) gets the shared "deploy" account for an hour.
    public static var defaultRoles: [String: Role] {
        var engineer = Role(name: "engineer")
        engineer.principals = ["{user}"]
        var security = Role(name: "security")
        security.principals = ["{user}"]
        security.security = true
        var host = Role(name: "host")
        host.principals = ["{user}"]
        host.userCertificates = false
        host.hostCertificates = true
        host.defaultValidity = 30 * 86400
        host.maximumValidity = 90 * 86400
        // A CI job's token: the shared "deploy" account, for an hour, with a terminal and nothing else.
        var deploy = Role(name: "deploy")
        deploy.principals = ["deploy"]
        deploy.defaultValidity = 3600
        deploy.maximumValidity = 3600
        deploy.extensions = ["permit-pty"]
        return ["engineer": engineer, "security": security, "host": host, "deploy": deploy]
    }

    func renderedServiceAndRoles() -> String {
        func list(_ items: [String]) -> String { "[" + items.map(ConfigText.quoted).joined(separator: ", ") + "]" }
        var text = """
        [service]
        # Where `sshca serve` listens. Plain HTTP is allowed on loopback only; anywhere else set
        # tls_certificate and tls_key (PEM files, relative to this directory), or
        # allow_plain_http = true behind a TLS-terminating proxy.
        listen = \(ConfigText.quoted(service.listen))
        \(service.tlsCertificate.map { "tls_certificate = \(ConfigText.quoted($0))" } ?? "# tls_certificate = \"tls.crt\"")
        \(service.tlsKey.map { "tls_key = \(ConfigText.quoted($0))" } ?? "# tls_key = \"tls.key\"")
        # How long a login challenge may be answered; failed sign-ins allowed per user and per
        # address per minute; the largest request body.
        challenge_lifetime = "\(DurationText.format(service.challengeLifetime))"
        failures_per_minute = \(service.failuresPerMinute)
        max_request_bytes = \(service.maximumRequestBytes)
        # Enrolled users (sshca user add NAME) who may revoke and list certificates, whatever
        # their role, when they sign in with their identity key (a token bearing the name does not).
        security_staff = \(list(service.securityStaff))
        # A client has this long to send a whole request, and a connection may sit idle this
        # long; one client address may hold this many connections at once.
        request_timeout = "\(DurationText.format(service.requestTimeout))"
        connections_per_address = \(service.connectionsPerAddress)
        # Behind a TLS proxy or load balancer, list its addresses (or CIDR blocks): their
        # X-Forwarded-For then gives the client address that limits and logs use.
        trusted_proxies = \(list(service.trustedProxies))

        # Roles: what enrolled users (sshca user add NAME --role ROLE --identity-key KEY.pub) and
        # tokens (sshca token create --role ROLE --name NAME) may get. principals: fixed names,
        # "{user}" (the user's or token's own name) and patterns with * ("*.example.com") that a
        # request must name. A request naming nothing gets every fixed principal of its role for
        # default_validity. Other keys: extensions, force_command, source_address, key_types,
        # min_rsa_bits, user_certificates, host_certificates, security (may revoke and list).

        """
        for role in roles.values.sorted(by: { $0.name < $1.name }) {
            text += "[role.\(role.name)]\n"
            text += "principals = \(list(role.principals))\n"
            text += "default_validity = \"\(DurationText.format(role.defaultValidity))\"\n"
            text += "max_validity = \"\(DurationText.format(role.maximumValidity))\"\n"
            if let e = role.extensions { text += "extensions = \(list(e))\n" }
            if let c = role.forceCommand { text += "force_command = \(ConfigText.quoted(c))\n" }
            if let a = role.sourceAddresses { text += "source_address = \(list(a))\n" }
            if let k = role.keyTypes { text += "key_types = \(list(k))\n" }
            if let b = role.minimumRSABits { text += "min_rsa_bits = \(b)\n" }
            if !role.userCertificates { text += "user_certificates = false\n" }
            if role.hostCertificates { text += "host_certificates = true\n" }
            if role.security { text += "security = true\n" }
            text += "\n"
        }
        return text
    }

    /// The commented configuration `sshca init` writes.
    public func renderedFile() -> String {
        """
        # sshca configuration: what `sshca init` writes into the CA home as sshca.toml (and
        # `sshca init --print-config` prints). Format: TOML, the subset sshca reads (tables,
        # key = value, strings, numbers, booleans, lists). Unknown tables and keys are errors
        # that name the line, so a typo never falls back to a default.
        # Durations: 90m, 16h, 30d, 1w; several add up (1h30m).

        [ca]
        # Where each CA private key lives:
        #   "file"  - user_ca.key / host_ca.key in the CA home: PKCS#8 PEM, mode 0600, encrypted
        #             with the passphrase given to `sshca init` (scrypt + AES-256) unless
        #             --no-passphrase.
        #   "agent" - only user_ca.pub / host_ca.pub are in the home; sshca signs through
        #             ssh-agent at $SSH_AUTH_SOCK (a hardware token, or a key kept off disk).
        #             Set by `sshca init --user-ca-in-agent FILE` / `--host-ca-in-agent FILE`.
        user_key = "\(userKeyStorage.rawValue)"
        host_key = "\(hostKeyStorage.rawValue)"

        [certificates]
        # Validity when a request names none. Short-lived certificates need no revocation.
        user_validity = "\(DurationText.format(userValidity))"
        host_validity = "\(DurationText.format(hostValidity))"
        # Certificates start this long before "now", for servers whose clocks run behind.
        backdate = "\(DurationText.format(backdate))"
        # Extensions every user certificate gets (unless --no-default-extensions or --extension
        # says otherwise). These are OpenSSH's own defaults; drop permit-port-forwarding or
        # permit-agent-forwarding to restrict them.
        user_extensions = [\(userExtensions.map(ConfigText.quoted).joined(separator: ", "))]
        # Smallest RSA user or host key the CA will certify.
        min_rsa_bits = \(minimumRSABits)

        \(renderedServiceAndRoles())
        [krl]
        # revoked.krl in this directory is rewritten after every revocation; servers read it
        # through sshd's RevokedKeys (copy it there with: sshca krl write --output FILE).
        # Sign it with the user CA key, so servers can check where it came from: a detached
        # signature, revoked.krl.sig (served at /v1/krl.sig); the KRL itself never holds one.
        sign = \(signKRL)
        # Revoked certificates that expired longer ago than this are left out of the KRL.
        keep_expired_for = "\(DurationText.format(krlExpiredMargin))"

        [ledger]
        # ledger.sqlite in this directory holds every certificate, revocation and audit entry.
        # A command waits this long for another process's write to it, then gives up saying
        # the ledger is locked (nothing issued).
        lock_timeout = "\(DurationText.format(ledgerLockTimeout))"

        """
    }
}
