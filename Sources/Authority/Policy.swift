import Common
public import SSHFormat

/// A role from `[role.NAME]` in sshca.toml: what its members (enrolled users or tokens) may get.
public struct Role: Sendable, Equatable {
    public var name: String
    /// Fixed names, the template `{user}` (the user's or token's name), and patterns with `*`
    /// (`*.example.com`), which a request must name explicitly.
    public var principals: [String] = ["{user}"]
    public var defaultValidity: UInt64 = 16 * 3600
    public var maximumValidity: UInt64 = 24 * 3600
    /// nil: the `[certificates] user_extensions` list.
    public var extensions: [String]? = nil
    public var forceCommand: String? = nil
    public var sourceAddresses: [String]? = nil
    /// Key types the role's certificates may certify; nil admits every type sshca accepts.
    public var keyTypes: [String]? = nil
    public var minimumRSABits: Int? = nil
    /// Members may get user certificates.
    public var userCertificates = true
    /// Members may get host certificates (host tokens).
    public var hostCertificates = false
    /// Members are security staff: they may revoke and list certificates.
    public var security = false
    /// Line of the [role.NAME] header, for messages.
    public var line = 0

    public init(name: String) { self.name = name }

    /// Where the role was written is not part of what it allows.
    public static func == (a: Role, b: Role) -> Bool {
        a.name == b.name && a.principals == b.principals && a.defaultValidity == b.defaultValidity
            && a.maximumValidity == b.maximumValidity && a.extensions == b.extensions && a.forceCommand == b.forceCommand
            && a.sourceAddresses == b.sourceAddresses && a.keyTypes == b.keyTypes && a.minimumRSABits == b.minimumRSABits
            && a.userCertificates == b.userCertificates && a.hostCertificates == b.hostCertificates && a.security == b.security
    }

    public static let tableKeys: Set<String> = [
        "principals", "default_validity", "max_validity", "extensions", "force_command", "source_address",
        "key_types", "min_rsa_bits", "user_certificates", "host_certificates", "security",
    ]
}

/// Who is asking the service: an enrolled user or a token, and its role.
public struct Applicant: Sendable, Equatable {
    public enum Kind: String, Sendable { case user, token }
    public var name: String
    public var kind: Kind
    public var role: Role

    public init(name: String, kind: Kind, role: Role) {
        self.name = name
        self.kind = kind
        self.role = role
    }
}

/// What a client asks the service for; everything is optional except the key.
public struct PolicyRequest: Sendable, Equatable {
    public var publicKey: PublicKey
    public var type: CertificateType
    public var principals: [String]?
    /// Seconds; nil takes the role's default.
    public var validity: UInt64?

    public init(publicKey: PublicKey, type: CertificateType = .user, principals: [String]? = nil, validity: UInt64? = nil) {
        self.publicKey = publicKey
        self.type = type
        self.principals = principals
        self.validity = validity
    }
}

/// A refusal by the policy, naming the rule (`role.dev.principals`) that refused.
public struct PolicyRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var rule: String
    public var reason: String
    public init(rule: String, reason: String) {
        self.rule = rule
        self.reason = reason
    }
    public var description: String { "\(reason) (rule \(rule))" }
}

/// One rule of the issuance policy: looks at the request and either passes or refuses with a
/// reason. Rules are small values so that each refusal can name the one that spoke.
public protocol PolicyRule: Sendable {
    func check(_ request: PolicyRequest, applicant: Applicant) -> PolicyRefusal?
}

/// The service's issuance policy: the rules in order, then the certificate request they allow.
public struct IssuancePolicy: Sendable {
    public let configuration: Configuration

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    public struct CertificateTypeRule: PolicyRule {
        public func check(_ request: PolicyRequest, applicant: Applicant) -> PolicyRefusal? {
            let role = applicant.role
            if request.type == .host, !role.hostCertificates {
                return PolicyRefusal(rule: "role.\(role.name).host_certificates", reason: "role \(role.name) may not get host certificates")
            }
            if request.type == .user, !role.userCertificates {
                return PolicyRefusal(rule: "role.\(role.name).user_certificates", reason: "role \(role.name) may not get user certificates")
            }
            return nil
        }
    }

    public struct KeyTypeRule: PolicyRule {
        public var defaultMinimumRSABits: Int
        public func check(_ request: PolicyRequest, applicant: Applicant) -> PolicyRefusal? {
            let role = applicant.role
            let type = request.publicKey.typeName
            if let admitted = role.keyTypes, !admitted.contains(type) {
                return PolicyRefusal(rule: "role.\(role.name).key_types",
                                     reason: "role \(role.name) admits \(admitted.joined(separator: ", ")) keys, not \(type)")
            }
            if case .rsa = request.publicKey, let minimum = role.minimumRSABits, request.publicKey.bits < minimum {
                return PolicyRefusal(rule: "role.\(role.name).min_rsa_bits",
                                     reason: "role \(role.name) needs RSA keys of at least \(minimum) bits; this one has \(request.publicKey.bits)")
            }
            return nil
        }
    }

    public struct PrincipalRule: PolicyRule {
        public func check(_ request: PolicyRequest, applicant: Applicant) -> PolicyRefusal? {
            guard let asked = request.principals else { return nil }
            let role = applicant.role
            if asked.isEmpty {
                return PolicyRefusal(rule: "request.principals", reason: "the request names an empty list of principals; leave the list out to get all the role allows")
            }
            // A `*` or `?` in a certificate's principal is a pattern to OpenSSH clients: one host
            // certificate for "*.example.com" would vouch for every host there.
            if let pattern = asked.first(where: { $0.contains("*") || $0.contains("?") }) {
                return PolicyRefusal(rule: "request.principals", reason: "principal \"\(pattern)\" has a wildcard; name each host or user")
            }
            for principal in asked where !IssuancePolicy.allows(principal, role: role, applicant: applicant) {
                let allowed = IssuancePolicy.expand(role, applicant: applicant)
                return PolicyRefusal(rule: "role.\(role.name).principals",
                                     reason: "role \(role.name) may not get principal \"\(principal)\"; it allows \(allowed.joined(separator: ", "))")
            }
            return nil
        }
    }

    public struct ValidityRule: PolicyRule {
        public func check(_ request: PolicyRequest, applicant: Applicant) -> PolicyRefusal? {
            let role = applicant.role
            guard let asked = request.validity else { return nil }
            if asked == 0 {
                return PolicyRefusal(rule: "request.validity", reason: "a validity of zero makes a certificate that is never valid")
            }
            if asked > role.maximumValidity {
                return PolicyRefusal(rule: "role.\(role.name).max_validity",
                                     reason: "validity \(DurationText.format(asked)) is longer than role \(role.name)'s maximum of \(DurationText.format(role.maximumValidity))")
            }
            return nil
        }
    }

    public var rules: [any PolicyRule] {
        [CertificateTypeRule(), KeyTypeRule(defaultMinimumRSABits: configuration.minimumRSABits), PrincipalRule(), ValidityRule()]
    }

    /// The role's principal list with `{user}` replaced (patterns stay patterns).
    public static func expand(_ role: Role, applicant: Applicant) -> [String] {
        role.principals.map { $0.replacingTemplate(user: applicant.name) }
    }

    static func allows(_ principal: String, role: Role, applicant: Applicant) -> Bool {
        for pattern in expand(role, applicant: applicant) {
            if pattern == principal { return true }
            if pattern.contains("*"), Self.glob(pattern, principal) { return true }
        }
        return false
    }

    /// `*` matches any run of characters (so `*.example.com` admits `a.b.example.com`).
    static func glob(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.utf8), n = Array(name.utf8)
        var i = 0, j = 0, star = -1, mark = 0
        while j < n.count {
            if i < p.count, p[i] == UInt8(ascii: "*") {
                star = i; mark = j; i += 1
            } else if i < p.count, p[i] == n[j] {
                i += 1; j += 1
            } else if star >= 0 {
                i = star + 1; mark += 1; j = mark
            } else {
                return false
            }
        }
        while i < p.count, p[i] == UInt8(ascii: "*") { i += 1 }
        return i == p.count
    }

    /// Decides: the first rule that refuses names itself; otherwise the request the CA signs.
    /// A request that asks for nothing gets every fixed principal of its role for the default validity.
    public func decide(_ request: PolicyRequest, applicant: Applicant, now: UInt64) -> Result<CertificateRequest, PolicyRefusal> {
        for rule in rules {
            if let refusal = rule.check(request, applicant: applicant) { return .failure(refusal) }
        }
        let role = applicant.role
        let principals = request.principals ?? Self.expand(role, applicant: applicant).filter { !$0.contains("*") }
        if principals.isEmpty {
            return .failure(PolicyRefusal(rule: "role.\(role.name).principals",
                                          reason: "role \(role.name) has only patterns (\(role.principals.joined(separator: ", "))); name the principals in the request"))
        }
        let length = request.validity ?? role.defaultValidity
        let window = ValidityWindow(validAfter: now.subtractingClamped(configuration.backdate), validBefore: now.addingClamped(length))
        var extensions: [CertificateOption] = []
        var includeDefaults = true
        if request.type == .user, let names = role.extensions {
            includeDefaults = false
            extensions = names.map { CertificateOption.flag($0) }
        }
        var certificate = CertificateRequest(
            publicKey: request.publicKey, type: request.type,
            keyID: PersonKeyID.unnumbered(name: applicant.name, credential: applicant.kind == .user ? "key" : "token"),
            principals: principals, validity: window, forceCommand: request.type == .user ? role.forceCommand : nil,
            sourceAddresses: request.type == .user ? role.sourceAddresses : nil,
            extensions: extensions, includeDefaultExtensions: includeDefaults)
        certificate.keyIDNamesSerial = true
        return .success(certificate)
    }
}

extension String {
    func replacingTemplate(user: String) -> String {
        guard contains("{user}") else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: "{user}") {
            out += rest[..<range.lowerBound]
            out += user
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
