import Foundation

public struct ParseError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `ssh-keygen -L` output (OpenSSH 9.2), parsed:
///
///     cert.pub:
///             Type: ssh-ed25519-cert-v01@openssh.com user certificate
///             Public key: ED25519-CERT SHA256:...
///             Signing CA: ED25519 SHA256:... (using ssh-ed25519)
///             Key ID: "id"
///             Serial: 42
///             Valid: from 2030-01-01T00:00:00 to 2030-01-02T00:00:00
///             Principals:
///                     root
///             Critical Options: (none)
///             Extensions:
///                     permit-pty
public struct CertificateListing: Sendable, Equatable {
    public var certificateTypeName = ""
    /// "user" or "host"
    public var kind = ""
    public var publicKeyFingerprint = ""
    public var signingCAType = ""
    public var signingCAFingerprint = ""
    public var signatureAlgorithm = ""
    public var keyID = ""
    public var serial: UInt64 = 0
    /// The text after "Valid: ".
    public var validity = ""
    public var principals: [String] = []
    /// Lines as ssh-keygen prints them (see `sshKeygenOptionLine`).
    public var criticalOptions: [String] = []
    public var extensions: [String] = []
    public var raw = ""

    public init(parsing text: String) throws {
        raw = text
        enum Section { case none, principals, critical, extensions }
        var section = Section.none
        var sawType = false
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(rawLine)
            let indent = line.prefix(while: { $0 == " " || $0 == "\t" }).count
            let content = String(line.dropFirst(indent))
            if content.isEmpty { continue }
            if indent == 0 { continue }  // "file:" header
            if indent > 8 {
                switch section {
                case .principals: principals.append(content)
                case .critical: criticalOptions.append(content)
                case .extensions: extensions.append(content)
                case .none: throw ParseError("unexpected item line: \(line)")
                }
                continue
            }
            section = .none
            guard let colon = content.range(of: ": ") ?? (content.hasSuffix(":") ? content.range(of: ":", options: .backwards) : nil) else {
                throw ParseError("unexpected line: \(line)")
            }
            let key = String(content[..<colon.lowerBound])
            let value = String(content[colon.upperBound...]).trimmingCharacters(in: .whitespaces)
            switch key {
            case "Type":
                sawType = true
                let parts = value.split(separator: " ")
                guard parts.count == 3, parts[2] == "certificate" else { throw ParseError("bad Type line: \(line)") }
                certificateTypeName = String(parts[0])
                kind = String(parts[1])
            case "Public key":
                let parts = value.split(separator: " ")
                publicKeyFingerprint = parts.count >= 2 ? String(parts[1]) : value
            case "Signing CA":
                // "ED25519 SHA256:xxx (using ssh-ed25519)"
                let parts = value.split(separator: " ")
                if parts.count >= 2 {
                    signingCAType = String(parts[0])
                    signingCAFingerprint = String(parts[1])
                }
                if let open = value.range(of: "(using "), let close = value.range(of: ")", options: .backwards) {
                    signatureAlgorithm = String(value[open.upperBound..<close.lowerBound])
                }
            case "Key ID":
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                    keyID = String(value.dropFirst().dropLast())
                } else {
                    keyID = value
                }
            case "Serial":
                guard let n = UInt64(value) else { throw ParseError("bad Serial line: \(line)") }
                serial = n
            case "Valid":
                validity = value
            case "Principals":
                section = value == "(none)" ? .none : .principals
            case "Critical Options":
                section = value == "(none)" ? .none : .critical
            case "Extensions":
                section = value == "(none)" ? .none : .extensions
            default:
                throw ParseError("unknown field \(key) in: \(line)")
            }
        }
        guard sawType else { throw ParseError("no Type line in ssh-keygen -L output:\n\(text)") }
    }
}

public let foreverTimestamp = UInt64.max

/// What `ssh-keygen -L` prints after "Valid: " for these bounds, in UTC
/// (run ssh-keygen with TZ=UTC).
public func sshKeygenValidity(after: UInt64, before: UInt64) -> String {
    func format(_ t: UInt64) -> String {
        // ssh-keygen caps at INT64_MAX; our values stay far below.
        let date = Date(timeIntervalSince1970: TimeInterval(t))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ v: Int?, _ width: Int) -> String {
            let s = String(v ?? 0)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2))"
    }
    if after == 0 && before == foreverTimestamp { return "forever" }
    if after == 0 { return "before \(format(before))" }
    if before == foreverTimestamp { return "after \(format(after))" }
    return "from \(format(after)) to \(format(before))"
}

private let knownUserExtensionFlags: Set<String> = [
    "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
    "permit-pty", "permit-user-rc", "no-touch-required",
]

/// The wire encoding of an option's data as sshca writes it: flags have empty data,
/// valued options carry string(value).
public func sshStringEncoding(_ value: String) -> Data {
    let bytes = Array(value.utf8)
    var data = Data()
    let n = UInt32(bytes.count)
    data.append(contentsOf: [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)])
    data.append(contentsOf: bytes)
    return data
}

/// How ssh-keygen 9.2 (`show_options`) prints one critical option or extension.
public func sshKeygenOptionLine(name: String, value: String?, critical: Bool) -> String {
    if !critical && knownUserExtensionFlags.contains(name) { return name }
    if critical && (name == "force-command" || name == "source-address") { return "\(name) \(value ?? "")" }
    if critical && name == "verify-required" { return name }
    if let value {
        let data = sshStringEncoding(value)
        let hex = data.map { byte -> String in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        return "\(name) UNKNOWN OPTION: \(hex) (len \(data.count))"
    }
    return "\(name) UNKNOWN FLAG OPTION"
}
