import Common
public import SSHFormat
public import SSHCrypto
public import Ledger
public import LedgerSQLite
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif


/// Asks for a passphrase only when one is needed (an encrypted key), at most once.
public struct PassphraseSource: Sendable {
    let provide: @Sendable () throws(SSHCAError) -> [UInt8]

    public init(_ provide: @escaping @Sendable () throws(SSHCAError) -> [UInt8]) {
        self.provide = provide
    }

    public func read() throws(SSHCAError) -> [UInt8] { try provide() }

    /// For keys that must not be encrypted (tests, benchmarks): any request is an error.
    public static let none = PassphraseSource { () throws(SSHCAError) -> [UInt8] in
        throw SSHCAError(.key, "the CA private key is encrypted; give its passphrase with --passphrase-file FILE or $SSHCA_PASSPHRASE_FILE")
    }

    /// Reads the first line of a file (a trailing newline is not part of the passphrase).
    public static func file(_ path: String) -> PassphraseSource {
        PassphraseSource { () throws(SSHCAError) -> [UInt8] in try readPassphraseFile(path) }
    }

    public static func readPassphraseFile(_ path: String) throws(SSHCAError) -> [UInt8] {
        let bytes = try Files.read(path, maximumBytes: 4096, what: "passphrase file")
        var line = Array(bytes.prefix(while: { $0 != 0x0a }))
        if line.last == 0x0d { line.removeLast() }
        guard !line.isEmpty else {
            throw SSHCAError(.badInput, "the passphrase file \(path) is empty; put the passphrase on its first line")
        }
        return line
    }
}

/// The CA's directory: configuration, the two CA key pairs, later the ledger.
///
///     sshca.toml      configuration
///     user_ca.key     user CA private key, PKCS#8 PEM, 0600 (absent when it lives in ssh-agent)
///     user_ca.pub     user CA public key, one OpenSSH line (TrustedUserCAKeys)
///     host_ca.key     host CA private key
///     host_ca.pub     host CA public key (@cert-authority in known_hosts)
public struct CAHome: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// `--home`, else `$SSHCA_HOME`, else `./ca-data`.
    public static func resolve(_ explicit: String?, environment: [String: String]? = nil) -> CAHome {
        if let explicit, !explicit.isEmpty { return CAHome(path: explicit) }
        if let env = environment.map({ $0["SSHCA_HOME"] }) ?? Environment.value("SSHCA_HOME"), !env.isEmpty {
            return CAHome(path: env)
        }
        return CAHome(path: "./ca-data")
    }

    public var configurationPath: String { path + "/" + Configuration.fileName }
    public var ledgerPath: String { path + "/ledger.sqlite" }
    public var krlPath: String { path + "/revoked.krl" }
    var krlLockPath: String { path + "/revoked.krl.lock" }
    /// Held shared by every process that has the ledger open (the service for its whole life),
    /// exclusively by a command that replaces the ledger (restore).
    var homeLockPath: String { path + "/sshca.lock" }
    public func privateKeyPath(_ kind: CAKind) -> String { "\(path)/\(kind.rawValue)_ca.key" }
    public func publicKeyPath(_ kind: CAKind) -> String { "\(path)/\(kind.rawValue)_ca.pub" }

    public var isInitialized: Bool { Files.exists(configurationPath) }

    /// Opens the home's ledger for `use`, as the protocols the rest of the CA holds: the one
    /// place that picks the backend (SQLite, the embedded default).
    public func openLedger(for use: LedgerUse, lockTimeout: UInt64 = 10,
                           readOnlyFallback: Bool = false) throws(SSHCAError) -> (ledger: any Ledger, maintenance: any LedgerMaintenance) {
        let opened = try openLedger(access: use == .service ? .concurrentReaders : .singleConnection, lockTimeout: lockTimeout,
                                    readOnlyFallback: readOnlyFallback)
        return (opened, opened)
    }

    /// Opens the ledger; a CA made before the ledger existed gets an empty one.
    /// `readOnlyFallback`: see `SQLiteLedger.init` (the service).
    /// `lockTimeout`: seconds to wait for another process's write (`[ledger] lock_timeout`).
    public func openLedger(access: SQLiteLedger.Access = .singleConnection, lockTimeout: UInt64 = 10,
                           readOnlyFallback: Bool = false) throws(SSHCAError) -> SQLiteLedger {
        guard isInitialized else {
            throw SSHCAError(.home, "no CA at \(path) (\(Configuration.fileName) is missing); create one with: sshca init --home \(path)")
        }
        do {
            return try SQLiteLedger(path: ledgerPath, access: access, busyTimeout: Double(lockTimeout), readOnlyFallback: readOnlyFallback,
                                    publishedKRLs: HomeKRLFiles(path: krlPath, lockPath: krlLockPath))
        } catch {
            throw SSHCAError(ledger: error)
        }
    }

    /// What `sshca init` is asked to make.
    public struct Creation: Sendable {
        public var keyType: CAKeyType
        /// nil: private keys stored unencrypted.
        public var passphrase: [UInt8]?
        /// Public halves of CA keys that live in ssh-agent instead of a file here.
        public var userKeyInAgent: PublicKey?
        public var hostKeyInAgent: PublicKey?

        public init(keyType: CAKeyType = .ed25519, passphrase: [UInt8]? = nil,
                    userKeyInAgent: PublicKey? = nil, hostKeyInAgent: PublicKey? = nil) {
            self.keyType = keyType
            self.passphrase = passphrase
            self.userKeyInAgent = userKeyInAgent
            self.hostKeyInAgent = hostKeyInAgent
        }

        /// Sign published KRLs with the user CA key (`[krl] sign`); the service's homes do, as
        /// their KRL travels to servers over the network.
        public var signKRL = false

        public var needsPassphraseDecision: Bool { userKeyInAgent == nil || hostKeyInAgent == nil }
    }

    /// The sshca.toml a new CA starts with (`sshca init --print-config` prints its text, and
    /// ca-config/sshca.toml is that text).
    public static func initialConfiguration(_ creation: Creation = Creation()) -> Configuration {
        var configuration = Configuration()
        configuration.roles = Configuration.defaultRoles
        configuration.signKRL = creation.signKRL
        return configuration
    }

    /// Creates a new CA. Refuses if any CA file is already there, and leaves no partial CA behind
    /// when something fails: keys are made in memory first, then written with O_EXCL.
    public static func create(at path: String, _ creation: Creation) async throws(SSHCAError) -> CAHome {
        let home = CAHome(path: path)
        let ours = [home.configurationPath, home.ledgerPath, home.krlPath] + CAKind.allCases.flatMap { [home.privateKeyPath($0), home.publicKeyPath($0)] }
        if let existing = ours.first(where: Files.exists) {
            throw SSHCAError(.home, "\(path) already holds a CA (\(Files.baseName(of: existing)) exists); refusing to overwrite it. Use another --home, or move the old CA away first if you really mean to replace it")
        }
        if let passphrase = creation.passphrase, passphrase.count < 8 {
            throw SSHCAError(.badInput, "the passphrase is \(passphrase.count) characters; use at least 8")
        }

        var files: [(path: String, bytes: [UInt8], mode: mode_t)] = []
        var configuration = initialConfiguration(creation)
        for kind in CAKind.allCases {
            let inAgent = kind == .user ? creation.userKeyInAgent : creation.hostKeyInAgent
            let publicKey: PublicKey
            if let inAgent {
                try checkAgentCAKey(inAgent)
                publicKey = inAgent
                if kind == .user { configuration.userKeyStorage = .agent } else { configuration.hostKeyStorage = .agent }
            } else {
                do {
                    let key = try PrivateKey.generate(creation.keyType)
                    files.append((home.privateKeyPath(kind), Array(try key.pem(passphrase: creation.passphrase).utf8), 0o600))
                    publicKey = key.publicKey
                } catch {
                    throw SSHCAError(.key, "cannot create the \(kind.rawValue) CA key: \(error.reason)")
                }
            }
            let line = publicKey.openSSHLine(comment: "sshca-\(kind.rawValue)-ca") + "\n"
            files.append((home.publicKeyPath(kind), Array(line.utf8), 0o644))
        }
        files.append((home.configurationPath, Array(configuration.renderedFile().utf8), 0o644))

        try Files.makeDirectory(path, mode: 0o700)
        var written: [String] = []
        do throws(SSHCAError) {
            for file in files {
                try Files.createExclusive(file.path, file.bytes, mode: file.mode)
                written.append(file.path)
            }
        } catch {
            written.forEach(Files.remove)
            throw error
        }
        // The ledger starts empty; its first KRL (revoking nothing) is published right away so
        // servers can point RevokedKeys at a valid file from day one.
        do throws(SSHCAError) {
            let authority = try CertificateAuthority(home: home)
            try await authority.registerCAKeys(try authority.caPublicKeys())
            let passphrase = creation.passphrase.map { bytes in PassphraseSource { bytes } } ?? .none
            _ = try await authority.publishKRL(by: "sshca init", passphrase: passphrase, now: Clock.now())
        } catch {
            (written + [home.ledgerPath, home.ledgerPath + "-wal", home.ledgerPath + "-shm", home.krlPath, home.krlLockPath, home.homeLockPath]).forEach(Files.remove)
            throw error
        }
        return home
    }

    static func checkAgentCAKey(_ key: PublicKey) throws(SSHCAError) {
        if key.isSecurityKey {
            throw SSHCAError(.badInput, "a FIDO security key (\(key.typeName)) cannot be a CA key here; use an Ed25519, ECDSA or RSA key held by the agent or token")
        }
        do {
            try key.checkStrength(minimumRSABits: 2048)
        } catch {
            throw SSHCAError(.badInput, "unsuitable CA key: \(error.reason)")
        }
    }

    public func configuration() throws(SSHCAError) -> Configuration {
        guard isInitialized else {
            throw SSHCAError(.home, "no CA at \(path) (\(Configuration.fileName) is missing); create one with: sshca init --home \(path)")
        }
        return try Configuration(parsing: Files.readText(configurationPath, what: "configuration"), fileName: configurationPath)
    }

    public func publicKey(_ kind: CAKind) throws(SSHCAError) -> PublicKey {
        guard isInitialized else {
            throw SSHCAError(.home, "no CA at \(path) (\(Configuration.fileName) is missing); create one with: sshca init --home \(path)")
        }
        do {
            return try KeyFiles.readPublicKey(publicKeyPath(kind), what: "\(kind.rawValue) CA public key").key
        } catch where error.code == .badInput {
            throw SSHCAError(.home, "the CA home is damaged: \(error.reason)")
        }
    }

    /// The CA private key from its file: refused if group or others can read it, checked against
    /// the public key next to it.
    public func privateKey(_ kind: CAKind, passphrase: PassphraseSource) throws(SSHCAError) -> PrivateKey {
        let keyPath = privateKeyPath(kind)
        let expected = try publicKey(kind)
        guard let mode = Files.mode(keyPath) else {
            throw SSHCAError(.home, "the \(kind.rawValue) CA private key \(keyPath) is missing")
        }
        guard mode & 0o077 == 0 else {
            throw SSHCAError(.unsafeFile, "the \(kind.rawValue) CA private key \(keyPath) can be read by group or others (mode \(String(mode, radix: 8))); fix it with: chmod 600 \(keyPath)")
        }
        let pem = try Files.readText(keyPath, maximumBytes: 64 * 1024, what: "\(kind.rawValue) CA private key")
        let key: PrivateKey
        do {
            if PrivateKey.isEncrypted(pem: pem) {
                key = try PrivateKey(pem: pem, passphrase: try passphrase.provide())
            } else {
                key = try PrivateKey(pem: pem, passphrase: nil)
            }
        } catch let error as CryptoError {
            throw SSHCAError(.key, error.reason)
        } catch let error as SSHCAError {
            throw error
        } catch {
            throw SSHCAError(.key, "\(error)")
        }
        guard key.publicKey == expected else {
            throw SSHCAError(.home, "\(keyPath) does not match \(publicKeyPath(kind)); the CA home was altered")
        }
        return key
    }

    /// The signer for a CA key: in-process from the file, or through ssh-agent.
    public func signer(_ kind: CAKind, passphrase: PassphraseSource, configuration: Configuration) throws(SSHCAError) -> any Signer {
        let storage = kind == .user ? configuration.userKeyStorage : configuration.hostKeyStorage
        switch storage {
        case .file:
            return OpenSSLSigner(key: try privateKey(kind, passphrase: passphrase))
        case .agent:
            let publicKey = try publicKey(kind)
            do {
                return try AgentSigner(agent: try SSHAgentClient.fromEnvironment(), publicKey: publicKey)
            } catch {
                throw SSHCAError(.key, error.reason)
            }
        }
    }

    /// The CA private key in OpenSSH's own format (unencrypted), for `ssh-add -` or a token.
    public func exportPrivateKey(_ kind: CAKind, passphrase: PassphraseSource) throws(SSHCAError) -> String {
        let storage = kind == .user ? try configuration().userKeyStorage : try configuration().hostKeyStorage
        guard storage == .file else {
            throw SSHCAError(.home, "the \(kind.rawValue) CA key lives in ssh-agent; this home has no private key to export")
        }
        let key = try privateKey(kind, passphrase: passphrase)
        do {
            return try key.components().openSSHPrivateKeyFile(
                comment: "sshca-\(kind.rawValue)-ca", checkInt: UInt32(truncatingIfNeeded: SecureRandom.uint64()))
        } catch {
            throw SSHCAError(.key, error.reason)
        }
    }
}

/// The CA key types `sshca init` offers.
public typealias CAKeyType = SSHCrypto.CAKeyType
