public import SSHFormat
public import Ledger
import SSHCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The checks every certificate request passes before anything is signed. Each refusal says
/// which rule refused and what to do instead. They follow what sshd accepts (openssh-facts.md):
/// a certificate sshd would reject is never issued.
public enum IssuanceRules {
    /// sshd accepts at most 256 principals in a certificate.
    public static let maximumPrincipals = 256
    public static let maximumNameLength = 1024

    /// Extensions sshd knows; all are flags and sshd rejects a known flag carrying data.
    public static let knownFlagExtensions: Set<String> = [
        "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
        "permit-pty", "permit-user-rc", "no-touch-required",
    ]

    public static func checkPrincipals(_ principals: [String]) throws(AuthorityError) {
        guard !principals.isEmpty else {
            throw AuthorityError(.badInput, "no principals: give --principals with the login names (user certificates) or host names (host certificates) the certificate is for")
        }
        guard principals.count <= maximumPrincipals else {
            throw AuthorityError(.badInput, "\(principals.count) principals; OpenSSH accepts at most \(maximumPrincipals) in one certificate")
        }
        var seen: Set<String> = []
        for principal in principals {
            try checkName(principal, what: "principal", allowComma: false)
            guard seen.insert(principal).inserted else {
                throw AuthorityError(.badInput, "principal \"\(principal)\" is listed twice")
            }
        }
    }

    public static func checkKeyID(_ keyID: String) throws(AuthorityError) {
        guard !keyID.isEmpty else {
            throw AuthorityError(.badInput, "the key id is empty; give --key-id with something that names the holder (it appears in sshd's logs)")
        }
        guard keyID.utf8.count <= maximumNameLength else {
            throw AuthorityError(.badInput, "the key id is longer than \(maximumNameLength) bytes")
        }
        guard !keyID.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw AuthorityError(.badInput, "the key id contains a control character or NUL byte (OpenSSH rejects NUL); use printable text")
        }
    }

    /// What every revocation passes before the ledger: the names it carries are the names
    /// certificates carry (a key id or principal with a control character was never issued),
    /// and the reason is one line of printable text.
    public static func checkRevocation(_ target: RevocationTarget, reason: String) throws(AuthorityError) {
        switch target {
        case .serials(let range) where range.lowerBound == 0:
            throw AuthorityError(.badInput, "serial 0 cannot be revoked (a KRL cannot name it); serials start at 1")
        case .keyID(let keyID): try checkKeyID(keyID)
        case .principal(let principal): try checkName(principal, what: "principal", allowComma: false)
        case .person(let name): try CertificateAuthority.checkUserName(name)
        default: break
        }
        try checkText(reason, what: "the revocation reason")
    }

    /// Free text from outside (a reason, a comment): bounded, and without control characters,
    /// which would forge lines in logs and listings.
    public static func checkText(_ text: String, what: String) throws(AuthorityError) {
        guard text.utf8.count <= maximumNameLength else {
            throw AuthorityError(.badInput, "\(what) is longer than \(maximumNameLength) bytes")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw AuthorityError(.badInput, "\(what) \"\(text.prefix(60).debugEscaped)\" contains a control character or NUL byte; use one line of printable text")
        }
    }

    static func checkName(_ name: String, what: String, allowComma: Bool) throws(AuthorityError) {
        guard !name.isEmpty else {
            throw AuthorityError(.badInput, "empty \(what) (check for a doubled or trailing comma)")
        }
        guard name.utf8.count <= maximumNameLength else {
            throw AuthorityError(.badInput, "\(what) \"\(name.prefix(40))...\" is longer than \(maximumNameLength) bytes")
        }
        for scalar in name.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                throw AuthorityError(.badInput, "\(what) \"\(name.debugEscaped)\" contains a control character or NUL byte")
            }
            if scalar.properties.isWhitespace {
                throw AuthorityError(.badInput, "\(what) \"\(name)\" contains whitespace; \(what)s are single words")
            }
            if scalar == ",", !allowComma {
                throw AuthorityError(.badInput, "\(what) \"\(name)\" contains a comma; separate \(what)s with commas in --principals, not inside one")
            }
        }
    }

    /// Names an extension may have: one sshd knows, or a vendor one in the name@domain form
    /// PROTOCOL.certkeys asks for (so "permit-x11-forwarding" typos are caught).
    public static func checkExtensionName(_ name: String, hasValue: Bool) throws(AuthorityError) {
        try checkName(name, what: "extension name", allowComma: false)
        if knownFlagExtensions.contains(name) {
            if hasValue {
                throw AuthorityError(.badInput, "extension \(name) is a flag and takes no value (sshd rejects certificates where it has one)")
            }
            return
        }
        guard name.contains("@") else {
            let near = knownFlagExtensions.first { $0.lowercased() == name.lowercased() }
            let hint = near.map { " (did you mean \($0)?)" } ?? ""
            throw AuthorityError(.badInput, "unknown extension \"\(name)\"\(hint); known ones are \(knownFlagExtensions.sorted().joined(separator: ", ")), and custom ones must be named name@your-domain")
        }
    }

    /// source-address: a comma-separated list of addresses or CIDR blocks. sshd rejects a
    /// certificate whose list does not parse, so it is checked here.
    public static func checkSourceAddresses(_ list: [String]) throws(AuthorityError) {
        guard !list.isEmpty else { throw AuthorityError(.badInput, "--source-address needs at least one address or CIDR block") }
        for entry in list {
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let address = parts.first.map(String.init), !address.isEmpty else {
                throw invalidAddress(entry)
            }
            var buffer = [UInt8](repeating: 0, count: 16)
            let maxPrefix: Int
            if inet_pton(AF_INET, address, &buffer) == 1 {
                maxPrefix = 32
            } else if inet_pton(AF_INET6, address, &buffer) == 1 {
                maxPrefix = 128
            } else {
                throw invalidAddress(entry)
            }
            if parts.count == 2 {
                guard let prefix = Int(parts[1]), (0...maxPrefix).contains(prefix), parts[1].allSatisfy(\.isNumber) else {
                    throw invalidAddress(entry)
                }
            }
        }
    }

    private static func invalidAddress(_ entry: String) -> AuthorityError {
        AuthorityError(.badInput, "source-address \"\(entry.debugEscaped)\" is not an IP address or CIDR block (like 192.0.2.0/24 or 2001:db8::/32)")
    }

    public static func checkForceCommand(_ command: String) throws(AuthorityError) {
        guard !command.trimmingCharacters(in: " \t").isEmpty else {
            throw AuthorityError(.badInput, "--force-command is empty; give the command the certificate may run")
        }
        guard !command.unicodeScalars.contains(where: { $0.value == 0 }) else {
            throw AuthorityError(.badInput, "--force-command contains a NUL byte")
        }
    }

    /// Keys the CA certifies: not weak, not one of the CA's own keys, and sk- keys only as user keys.
    public static func checkSubjectKey(_ key: PublicKey, type: CertificateType, minimumRSABits: Int,
                                       caKeys: [PublicKey] = []) throws(AuthorityError) {
        if caKeys.contains(key) {
            // A certificate for the CA key itself would let whoever holds a copy of that
            // certificate's key (the CA) log in as its principals, and blurs what the CA is.
            throw AuthorityError(.badInput, "\(key.fingerprint) is one of this CA's own keys; the CA never certifies its own key. Give the public key of the user or host the certificate is for")
        }
        do {
            try key.checkStrength(minimumRSABits: minimumRSABits)
        } catch {
            throw AuthorityError(.badInput, error.reason)
        }
        if type == .host, key.isSecurityKey {
            throw AuthorityError(.badInput, "a security key (\(key.typeName)) cannot be a host key")
        }
    }
}

extension StringProtocol {
    /// Control characters as \xNN: for quoting outside text in a message or a log line.
    public var debugEscaped: String {
        var out = ""
        for scalar in unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += "\\x" + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
