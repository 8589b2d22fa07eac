import SSHFormat
/// A parsed `host:port` to listen on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(parsing text: String) throws(SSHCAError) {
        let invalid = SSHCAError(.badConfig, "listen address \"\(text)\" must be HOST:PORT, such as 127.0.0.1:8443 or [::1]:8443")
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else { throw invalid }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw invalid }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { throw invalid }
        host = String(hostPart)
        self.port = port
    }

    /// Loopback addresses: the only ones where plain HTTP is allowed without being asked for.
    public var isLoopback: Bool { Self.isLoopback(host: host) }

    /// localhost, ::1 and 127.0.0.0/8: the only hosts plain HTTP is used with.
    public static func isLoopback(host: some StringProtocol) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
