import Common
/// The key id of a certificate issued to a person, token holder or host through the service:
/// `NAME:CREDENTIAL:SERIAL`, such as `alice:key:42` (alice's enrolled key), `ci:token:43` (a
/// token named ci) or `web-01.example.com:token:44` (a host token names its host). The name
/// comes first, so sshd's log line ("ID alice:key:42 (serial 42)") says who; the serial makes
/// every key id unique, so revoking one certificate by key id never reaches that person's next
/// certificate. Names cannot contain ':' (NameRules.checkUserName), so the format
/// parses back without ambiguity. `sshca sign --key-id` keeps whatever the operator gives.
public struct PersonKeyID: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// How the person proved who they are: "key" (an enrolled SSH key), "token".
    public var credential: String
    public var serial: UInt64

    public init(name: String, credential: String, serial: UInt64) {
        self.name = name
        self.credential = credential
        self.serial = serial
    }

    public init?(parsing text: String) {
        guard let first = text.firstIndex(of: ":"), let last = text.lastIndex(of: ":"), first < last,
              let serial = UInt64(text[text.index(after: last)...]) else { return nil }
        name = String(text[..<first])
        credential = String(text[text.index(after: first)..<last])
        self.serial = serial
        guard !name.isEmpty, !credential.isEmpty else { return nil }
    }

    public var description: String { "\(name):\(credential):\(serial)" }

    /// What a request carries until the ledger hands out its serial (`Issuer.numbered`).
    static func unnumbered(name: String, credential: String) -> String { "\(name):\(credential):" }
}
