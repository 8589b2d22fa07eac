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

    public init() {}

    public static let fileName = "sshca.toml"

    public init(parsing text: String, fileName: String = Configuration.fileName) throws(AuthorityError) {
        let document = try ConfigText(parsing: text, fileName: fileName)
        let known: [String: Set<String>] = [
            "ca": ["user_key", "host_key"],
            "certificates": ["user_validity", "host_validity", "backdate", "user_extensions", "min_rsa_bits"],
            "krl": ["sign", "keep_expired_for"],
        ]
        for table in document.tables where known[table.name] == nil {
            throw AuthorityError(.badConfig, "\(fileName):\(table.line): unknown table [\(table.name)]; sshca knows [\(known.keys.sorted().joined(separator: "], ["))]")
        }
        for entry in document.entries {
            func fail(_ message: String) -> AuthorityError {
                AuthorityError(.badConfig, "\(fileName):\(entry.line): \(entry.key): \(message)")
            }
            func string() throws(AuthorityError) -> String {
                guard case .string(let s) = entry.value else { throw fail("expected a string in quotes, found \(entry.value.typeName)") }
                return s
            }
            func duration() throws(AuthorityError) -> UInt64 {
                do { return try DurationText.seconds(try string()) } catch { throw fail(error.reason) }
            }
            func storage() throws(AuthorityError) -> KeyStorage {
                let s = try string()
                guard let storage = KeyStorage(rawValue: s) else { throw fail("must be \"file\" or \"agent\", not \"\(s)\"") }
                return storage
            }
            guard let keys = known[entry.table], keys.contains(entry.key) else {
                let table = entry.table.isEmpty ? "the top level" : "[\(entry.table)]"
                let hint = known[entry.table].map { "; known keys there: \($0.sorted().joined(separator: ", "))" } ?? ""
                throw AuthorityError(.badConfig, "\(fileName):\(entry.line): unknown key \"\(entry.key)\" in \(table)\(hint)")
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
    }

    /// The commented configuration `sshca init` writes.
    public func renderedFile() -> String {
        """
        # sshca configuration (TOML). Unknown tables and keys are errors, so typos cannot
        # silently fall back to defaults. Durations: 90m, 16h, 30d, 1w (several add up: 1h30m).

        [ca]
        # Where each CA private key lives: "file" (user_ca.key / host_ca.key in this directory,
        # PKCS#8 PEM, mode 0600, encrypted with the passphrase given at init) or "agent"
        # (only the .pub file is here; sshca signs through ssh-agent at $SSH_AUTH_SOCK).
        user_key = "\(userKeyStorage.rawValue)"
        host_key = "\(hostKeyStorage.rawValue)"

        [certificates]
        # Validity when a request names none. Short-lived certificates need no revocation.
        user_validity = "\(DurationText.format(userValidity))"
        host_validity = "\(DurationText.format(hostValidity))"
        # Certificates start this long before "now", for servers whose clocks run behind.
        backdate = "\(DurationText.format(backdate))"
        # Extensions a user certificate gets unless --no-default-extensions or --extension says otherwise.
        user_extensions = [\(userExtensions.map { "\"\($0)\"" }.joined(separator: ", "))]
        # Smallest RSA user or host key the CA will certify.
        min_rsa_bits = \(minimumRSABits)

        [krl]
        # revoked.krl in this directory is rewritten after every revocation; servers read it
        # through sshd's RevokedKeys (copy it there with: sshca krl write --output FILE).
        # Sign it with the user CA key, so servers can check where it came from.
        sign = \(signKRL)
        # Revoked certificates that expired longer ago than this are left out of the KRL.
        keep_expired_for = "\(DurationText.format(krlExpiredMargin))"

        """
    }
}
