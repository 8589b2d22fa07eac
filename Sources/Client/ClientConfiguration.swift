import Common
import Foundation

/// What a laptop keeps about its CA (`sshca configure` writes it), so that the daily command is
/// `sshca login`: the service's URL, the pinned CA key fingerprints (a set: a CA rotation adds a
/// second key), the TLS roots for https, and the enrolled name and identity key.
///
/// Precedence for each value: the command's flags, then the environment ($SSHCA_CA_URL,
/// $SSHCA_CA_FINGERPRINT, $SSHCA_CA_BUNDLE, $SSHCA_USER, $SSHCA_IDENTITY), then this file. The
/// file's pins and bundle belong to its URL: a command pointed at another URL does not get them.
public struct ClientConfiguration: Equatable, Sendable {
    public var caURL: String?
    public var caFingerprints: [String] = []
    public var caBundle: String?
    public var user: String?
    public var identity: String?

    public init(caURL: String? = nil, caFingerprints: [String] = [], caBundle: String? = nil, user: String? = nil, identity: String? = nil) {
        self.caURL = caURL
        self.caFingerprints = caFingerprints
        self.caBundle = caBundle
        self.user = user
        self.identity = identity
    }

    /// $SSHCA_CONFIG, else $XDG_CONFIG_HOME/sshca/client.toml, else ~/.config/sshca/client.toml.
    public static func path(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["SSHCA_CONFIG"], !explicit.isEmpty { return explicit }
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/sshca/client.toml" }
        return (environment["HOME"] ?? "/root") + "/.config/sshca/client.toml"
    }

    /// The file at `path`, or nil when there is none. A file that is there but wrong is an
    /// error naming the line, as for sshca.toml.
    public static func load(_ path: String) throws(SSHCAError) -> ClientConfiguration? {
        guard Files.exists(path) else { return nil }
        let text = try ConfigText(parsing: try Files.readText(path, maximumBytes: 64 * 1024, what: "client configuration"), fileName: path)
        var configuration = ClientConfiguration()
        if let table = text.tables.first {
            throw SSHCAError(.badConfig, "\(path):\(table.line): the client configuration has no tables; write its keys at the top")
        }
        for entry in text.entries {
            func string() throws(SSHCAError) -> String {
                guard case .string(let value) = entry.value, !value.isEmpty else {
                    throw SSHCAError(.badConfig, "\(path):\(entry.line): \(entry.key) must be a non-empty string")
                }
                return value
            }
            switch entry.key {
            case "ca_url": configuration.caURL = try string()
            case "ca_bundle": configuration.caBundle = try string()
            case "user": configuration.user = try string()
            case "identity": configuration.identity = try string()
            case "ca_fingerprints":
                guard case .array(let items) = entry.value else {
                    throw SSHCAError(.badConfig, "\(path):\(entry.line): ca_fingerprints must be a list of SHA256:... strings")
                }
                for item in items {
                    guard case .string(let fingerprint) = item, fingerprint.hasPrefix("SHA256:") else {
                        throw SSHCAError(.badConfig, "\(path):\(entry.line): ca_fingerprints holds something other than a SHA256:... fingerprint")
                    }
                    configuration.caFingerprints.append(fingerprint)
                }
            default:
                throw SSHCAError(.badConfig, "\(path):\(entry.line): unknown key \"\(entry.key)\"; the client configuration knows ca_url, ca_fingerprints, ca_bundle, user and identity")
            }
        }
        return configuration
    }

    public var rendered: String {
        var text = """
        # sshca client configuration, written by `sshca configure`. Flags and $SSHCA_* variables
        # override it. The pins and the bundle apply to this URL only.

        """
        if let caURL { text += "ca_url = \(ConfigText.quoted(caURL))\n" }
        text += "# The CA key(s) the service must present (user CA; a rotation adds the new key here).\n"
        text += "ca_fingerprints = [\(caFingerprints.map(ConfigText.quoted).joined(separator: ", "))]\n"
        if let caBundle { text += "# PEM roots that https to the service is checked against.\nca_bundle = \(ConfigText.quoted(caBundle))\n" }
        if let user { text += "user = \(ConfigText.quoted(user))\n" }
        if let identity { text += "identity = \(ConfigText.quoted(identity))\n" }
        return text
    }

    /// Writes the file atomically, 0600, in a directory made 0700 when missing.
    public func write(to path: String) throws(SSHCAError) {
        let directory = Files.parentDirectory(of: path)
        if !Files.exists(directory) {
            do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                throw SSHCAError(.io, "cannot create \(directory): \(error)")
            }
        }
        try Files.writeAtomically(path, Array(rendered.utf8), mode: 0o600)
    }

    /// Flags, then the environment, then the file. `useFileURL`: whether a command without a URL
    /// of its own takes the file's (the daily client commands do; commands that also work on
    /// the CA home do not, so that a laptop's file never turns them into network calls).
    public static func resolve(flags: ClientConfiguration, environment: [String: String], file: ClientConfiguration?,
                               useFileURL: Bool) -> ClientConfiguration {
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        var out = ClientConfiguration()
        out.caURL = flags.caURL ?? env("SSHCA_CA_URL") ?? (useFileURL ? file?.caURL : nil)
        let fileApplies = file?.caURL != nil && out.caURL.map(Self.normalized) == file?.caURL.map(Self.normalized)
        if !flags.caFingerprints.isEmpty {
            out.caFingerprints = flags.caFingerprints
        } else if let pins = env("SSHCA_CA_FINGERPRINT").map({ $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }),
                  !pins.isEmpty {
            out.caFingerprints = pins
        } else if fileApplies, let file {
            out.caFingerprints = file.caFingerprints
        }
        out.caBundle = flags.caBundle ?? env("SSHCA_CA_BUNDLE") ?? (fileApplies ? file?.caBundle : nil)
        out.user = flags.user ?? env("SSHCA_USER") ?? file?.user
        out.identity = flags.identity ?? env("SSHCA_IDENTITY") ?? file?.identity
        return out
    }

    static func normalized(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
}
