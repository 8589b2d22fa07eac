import Common
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
    /// Extensions sshd knows; all are flags and sshd rejects a known flag carrying data.
    public static let knownFlagExtensions: Set<String> = [
        "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
        "permit-pty", "permit-user-rc", "no-touch-required",
    ]

    /// What every revocation passes before the ledger: the names it carries are the names
    /// certificates carry (a key id or principal with a control character was never issued),
    /// and the reason is one line of printable text.
    public static func checkRevocation(_ target: RevocationTarget, reason: String) throws(SSHCAError) {
        switch target {
        case .serials(let range) where range.lowerBound < SerialSet.firstSerial:
            throw SSHCAError(.badInput, SerialSet.zeroSerialRefusal)
        case .keyID(let keyID): try NameRules.checkKeyID(keyID)
        case .principal(let principal): try NameRules.checkName(principal, what: "principal", allowComma: false)
        case .person(let name): try NameRules.checkUserName(name)
        default: break
        }
        try NameRules.checkText(reason, what: "the revocation reason")
    }

    /// Names an extension may have: one sshd knows, or a vendor one in the name@domain form
    /// PROTOCOL.certkeys asks for (so "permit-x11-forwarding" typos are caught).
    public static func checkExtensionName(_ name: String, hasValue: Bool) throws(SSHCAError) {
        try NameRules.checkName(name, what: "extension name", allowComma: false)
        if knownFlagExtensions.contains(name) {
            if hasValue {
                throw SSHCAError(.badInput, "extension \(name) is a flag and takes no value (sshd rejects certificates where it has one)")
            }
            return
        }
        guard name.contains("@") else {
            let near = knownFlagExtensions.first { $0.lowercased() == name.lowercased() }
            let hint = near.map { " (did you mean \($0)?)" } ?? ""
            throw SSHCAError(.badInput, "unknown extension \"\(name)\"\(hint); known ones are \(knownFlagExtensions.sorted().joined(separator: ", ")), and custom ones must be named name@your-domain")
        }
    }

    /// source-address: a comma-separated list of addresses or CIDR blocks. sshd rejects a
    /// certificate whose list does not parse, so it is checked here.
    public static func checkSourceAddresses(_ list: [String]) throws(SSHCAError) {
        guard !list.isEmpty else { throw SSHCAError(.badInput, "--source-address needs at least one address or CIDR block") }
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

    private static func invalidAddress(_ entry: String) -> SSHCAError {
        SSHCAError(.badInput, "source-address \"\(entry.debugEscaped)\" is not an IP address or CIDR block (like 192.0.2.0/24 or 2001:db8::/32)")
    }

    public static func checkForceCommand(_ command: String) throws(SSHCAError) {
        guard !command.trimmingCharacters(in: " \t").isEmpty else {
            throw SSHCAError(.badInput, "--force-command is empty; give the command the certificate may run")
        }
        guard !command.unicodeScalars.contains(where: { $0.value == 0 }) else {
            throw SSHCAError(.badInput, "--force-command contains a NUL byte")
        }
    }

    /// Keys the CA certifies: not weak, not one of the CA's own keys, and sk- keys only as user keys.
    public static func checkSubjectKey(_ key: PublicKey, type: CertificateType, minimumRSABits: Int,
                                       caKeys: [PublicKey] = []) throws(SSHCAError) {
        if caKeys.contains(key) {
            // A certificate for the CA key itself would let whoever holds a copy of that
            // certificate's key (the CA) log in as its principals, and blurs what the CA is.
            throw SSHCAError(.badInput, "\(key.fingerprint) is one of this CA's own keys; the CA never certifies its own key. Give the public key of the user or host the certificate is for")
        }
        do {
            try key.checkStrength(minimumRSABits: minimumRSABits)
        } catch {
            throw SSHCAError(.badInput, error.reason)
        }
        if type == .host, key.isSecurityKey {
            throw SSHCAError(.badInput, "a security key (\(key.typeName)) cannot be a host key")
        }
    }
}
