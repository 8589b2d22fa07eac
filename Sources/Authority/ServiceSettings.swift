import Common
/// `[service]` in sshca.toml: how `sshca serve` listens and protects itself.
public struct ServiceSettings: Sendable, Equatable {
    /// host:port; IPv6 as [::1]:8443.
    public var listen = "127.0.0.1:8443"
    /// PEM certificate chain and key for TLS (paths relative to the CA home). Both or neither.
    public var tlsCertificate: String? = nil
    public var tlsKey: String? = nil
    /// Plain HTTP on an address other than loopback must be asked for by name.
    public var allowPlainHTTP = false
    /// How long a login challenge may be answered.
    public var challengeLifetime: UInt64 = 120
    /// Largest request body accepted, in bytes.
    public var maximumRequestBytes = 64 * 1024
    /// Failed authentications allowed per identity and per client address in a minute.
    public var failuresPerMinute = 10
    /// Users (by name) who may revoke and list, whatever their role.
    public var securityStaff: [String] = []
    /// How long a client may take to send a whole request (headers and body), and how long an
    /// open connection may sit idle between requests, in seconds.
    public var requestTimeout: UInt64 = 30
    /// Open connections one client address may hold at once (the addresses of trusted proxies
    /// are not counted: each of their connections is someone else's).
    public var connectionsPerAddress = 100
    /// Proxies and load balancers (addresses or CIDR blocks) whose X-Forwarded-For is believed:
    /// behind them, the client address that limits and logs use is the one they forward.
    public var trustedProxies: [String] = []

    public init() {}

    public static let tableKeys: Set<String> = [
        "listen", "tls_certificate", "tls_key", "allow_plain_http", "challenge_lifetime",
        "max_request_bytes", "failures_per_minute", "security_staff", "request_timeout",
        "connections_per_address", "trusted_proxies",
    ]

    mutating func set(_ key: String, _ value: ConfigValue) throws(SSHCAError) {
        switch key {
        case "listen":
            let text = try value.stringValue()
            _ = try ListenAddress(parsing: text)
            listen = text
        case "tls_certificate": tlsCertificate = try value.stringValue()
        case "tls_key": tlsKey = try value.stringValue()
        case "allow_plain_http": allowPlainHTTP = try value.boolValue()
        case "challenge_lifetime":
            challengeLifetime = try value.durationValue()
            guard (10...3600).contains(challengeLifetime) else { throw SSHCAError(.badConfig, "expected 10s to 1h") }
        case "max_request_bytes":
            maximumRequestBytes = try value.integerValue(in: 1024...(16 << 20))
        case "failures_per_minute":
            failuresPerMinute = try value.integerValue(in: 1...100_000)
        case "security_staff":
            securityStaff = try value.stringList()
        case "request_timeout":
            requestTimeout = try value.durationValue()
            guard (1...300).contains(requestTimeout) else { throw SSHCAError(.badConfig, "expected 1s to 5m") }
        case "connections_per_address":
            connectionsPerAddress = try value.integerValue(in: 1...100_000)
        case "trusted_proxies":
            let list = try value.stringList()
            if !list.isEmpty {
                do { try IssuanceRules.checkSourceAddresses(list) } catch {
                    throw SSHCAError(.badConfig, error.reason.replacingOccurrences(of: "source-address", with: "trusted_proxies entry"))
                }
            }
            trustedProxies = list
        default:
            throw SSHCAError(.badConfig, "unknown key")
        }
    }
}

extension Role {
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
    }

    mutating func set(_ key: String, _ value: ConfigValue) throws(SSHCAError) {
        switch key {
        case "principals":
            let list = try value.stringList()
            guard !list.isEmpty else { throw SSHCAError(.badConfig, "a role needs at least one principal (\"{user}\" is the member's own name)") }
            for principal in list {
                let check = String(principal.replacingTemplate(user: "user").map { $0 == "*" ? "x" : $0 })
                do { try NameRules.checkPrincipals([check]) } catch { throw SSHCAError(.badConfig, error.reason) }
            }
            principals = list
        case "default_validity":
            defaultValidity = try value.durationValue()
            guard defaultValidity > 0 else { throw SSHCAError(.badConfig, "a validity of zero makes certificates that are never valid") }
        case "max_validity":
            maximumValidity = try value.durationValue()
            guard maximumValidity > 0 else { throw SSHCAError(.badConfig, "a validity of zero makes certificates that are never valid") }
        case "extensions":
            let names = try value.stringList()
            for name in names {
                do { try IssuanceRules.checkExtensionName(name, hasValue: false) } catch { throw SSHCAError(.badConfig, error.reason) }
            }
            guard Set(names).count == names.count else { throw SSHCAError(.badConfig, "an extension is listed twice") }
            extensions = names
        case "force_command":
            let command = try value.stringValue()
            do { try IssuanceRules.checkForceCommand(command) } catch { throw SSHCAError(.badConfig, error.reason) }
            forceCommand = command
        case "source_address":
            let list = try value.stringList()
            do { try IssuanceRules.checkSourceAddresses(list) } catch { throw SSHCAError(.badConfig, error.reason) }
            sourceAddresses = list
        case "key_types":
            let list = try value.stringList()
            for type in list where !Self.admissibleKeyTypes.contains(type) {
                throw SSHCAError(.badConfig, "unknown key type \"\(type)\"; sshca certifies \(Self.admissibleKeyTypes.sorted().joined(separator: ", "))")
            }
            keyTypes = list
        case "min_rsa_bits":
            minimumRSABits = try value.integerValue(in: 2048...16384)
        case "user_certificates": userCertificates = try value.boolValue()
        case "host_certificates": hostCertificates = try value.boolValue()
        case "security": security = try value.boolValue()
        default:
            throw SSHCAError(.badConfig, "unknown key")
        }
    }

    public static let admissibleKeyTypes: Set<String> = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]
}

extension ConfigValue {
    func stringValue() throws(SSHCAError) -> String {
        guard case .string(let s) = self else { throw SSHCAError(.badConfig, "expected a string in quotes, found \(typeName)") }
        return s
    }

    func boolValue() throws(SSHCAError) -> Bool {
        guard case .boolean(let b) = self else { throw SSHCAError(.badConfig, "expected true or false, found \(typeName)") }
        return b
    }

    func integerValue(in range: ClosedRange<Int>) throws(SSHCAError) -> Int {
        guard case .integer(let n) = self, n >= range.lowerBound, n <= range.upperBound else {
            throw SSHCAError(.badConfig, "expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(n)
    }

    func durationValue() throws(SSHCAError) -> UInt64 {
        let text = try stringValue()
        do { return try DurationText.seconds(text) } catch { throw SSHCAError(.badConfig, error.reason) }
    }

    func stringList() throws(SSHCAError) -> [String] {
        guard case .array(let items) = self else { throw SSHCAError(.badConfig, "expected a list of strings, such as [\"a\", \"b\"]") }
        var out: [String] = []
        for item in items {
            guard case .string(let s) = item else { throw SSHCAError(.badConfig, "expected a list of strings, found \(item.typeName) in it") }
            out.append(s)
        }
        return out
    }
}
