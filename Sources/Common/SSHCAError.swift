import SSHFormat
/// A failure the CA reports to people and scripts: a stable code and a sentence that says what was
/// wrong and how to fix it.
public struct SSHCAError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The caller's input was wrong (a key, a principal, an option, a duration).
        public static let badInput = Code(rawValue: "bad-input")
        /// The configuration file is wrong.
        public static let badConfig = Code(rawValue: "bad-config")
        /// The CA home is missing, incomplete or already initialised.
        public static let home = Code(rawValue: "home")
        /// A file is unsafe to use (a private key readable by others).
        public static let unsafeFile = Code(rawValue: "unsafe-file")
        /// Reading or writing a file failed.
        public static let io = Code(rawValue: "io")
        /// The CA key could not be used (passphrase, agent, libcrypto).
        public static let key = Code(rawValue: "key")
        /// The ledger refused (a revoked key id or key), or could not be read or written.
        public static let refused = Code(rawValue: "refused")
        public static let notFound = Code(rawValue: "not-found")
        public static let ledger = Code(rawValue: "ledger")
    }

    public var code: Code
    public var reason: String
    /// More than the reason says, for the audit log only (never shown to a remote caller).
    public var detail: String? = nil

    public init(_ code: Code, _ reason: String, detail: String) {
        self.code = code
        self.reason = reason
        self.detail = detail
    }

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }

    /// Bad input and bad configuration are the caller's to fix (sysexits EX_DATAERR); the rest
    /// are failures of the run.
    public var isInputError: Bool { code == .badInput || code == .badConfig || code == .refused || code == .notFound }
}
