import Foundation

/// Runs the `sshca` executable built next to the test bundle.
public enum SSHCA {
    /// The built `sshca`: `$SSHCA_EXECUTABLE` if set, else the first regular executable named
    /// `sshca` in the directory of this test binary (/proc/self/exe, argv[0], Bundle.main) or
    /// one of its parents.
    public static func executableURL() throws -> URL {
        if let url = locatedExecutable { return url }
        throw ParseError(
            "cannot find the sshca executable near \(CommandLine.arguments.first ?? "?"); build with "
                + "`swift build --build-tests` or set SSHCA_EXECUTABLE")
    }

    private static let locatedExecutable: URL? = {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["SSHCA_EXECUTABLE"], fm.isExecutableFile(atPath: explicit) {
            return URL(fileURLWithPath: explicit)
        }
        var starts: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            starts.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        if let argv0 = CommandLine.arguments.first {
            let url = URL(fileURLWithPath: argv0, relativeTo: URL(fileURLWithPath: fm.currentDirectoryPath))
            starts.append(url.standardizedFileURL.deletingLastPathComponent())
        }
        starts.append(Bundle.main.bundleURL)
        starts.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for start in starts {
            var dir = start.standardizedFileURL
            for _ in 0..<4 {
                let candidate = dir.child("sshca")
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue,
                   fm.isExecutableFile(atPath: candidate.path) {
                    return candidate
                }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        return nil
    }()

    /// Variables the CLI reads, cleared unless a test sets them, so the developer's environment
    /// cannot leak in. TZ=UTC makes absolute validity dates unambiguous.
    public static let baseEnvironment: [String: String?] = [
        "SSHCA_HOME": nil, "SSHCA_PASSPHRASE_FILE": nil, "SSH_AUTH_SOCK": nil, "TZ": "UTC",
        // A client configuration only where a test writes one (under the HOME it gives).
        "SSHCA_CONFIG": nil, "XDG_CONFIG_HOME": nil, "SSHCA_CA_URL": nil, "SSHCA_CA_FINGERPRINT": nil,
        "SSHCA_CA_BUNDLE": nil, "SSHCA_USER": nil, "SSHCA_IDENTITY": nil, "SSHCA_TOKEN": nil,
    ]

    /// Runs `sshca ARGS`; `environment` overrides `baseEnvironment`.
    public static func run(
        _ arguments: [String],
        stdin: Data? = nil,
        environment: [String: String?] = [:],
        currentDirectory: URL? = nil,
        timeout: Duration = .seconds(120)
    ) async throws -> ProcessResult {
        var env = baseEnvironment
        for (k, v) in environment { env[k] = v }
        return try await runProcess(
            try executableURL().path, arguments, stdin: stdin, environment: env,
            currentDirectory: currentDirectory, timeout: timeout)
    }

    /// `sshca inspect --json FILE`, decoded (the process result is returned too).
    public static func inspect(_ file: URL, environment: [String: String?] = [:]) async throws -> (InspectOutput, ProcessResult) {
        let result = try await run(["inspect", "--json", file.path], environment: environment)
        do {
            let decoded = try JSONDecoder().decode(InspectOutput.self, from: result.stdout)
            return (decoded, result)
        } catch {
            throw ParseError("cannot decode `sshca inspect --json` output (\(error)):\n\(result)")
        }
    }
}

/// `sshca inspect --json` as documented in the CLI contract.
public struct InspectOutput: Decodable, Sendable, Equatable {
    public struct Option: Decodable, Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var value: String?
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
        public var description: String { value.map { "\(name)=\($0)" } ?? name }
    }
    public struct Key: Decodable, Sendable, Equatable {
        public var type: String
        public var fingerprint: String
    }
    public var type: String
    public var certificateType: String
    public var keyId: String
    public var serial: UInt64
    public var principals: [String]
    public var validAfter: UInt64
    public var validBefore: UInt64
    public var criticalOptions: [Option]
    public var extensions: [Option]
    public var publicKey: Key
    public var signingCA: Key
    public var signatureAlgorithm: String
    public var signatureValid: Bool
}

/// `scripts/verify_cert.py` output.
public struct VerifyScriptOutput: Decodable, Sendable, Equatable {
    public var keyId: String
    public var serial: UInt64
    public var principals: [String]
    public var validAfter: UInt64
    public var validBefore: UInt64
    public var type: String
    public var criticalOptions: [String: String]
    public var extensions: [String: String]
    public var signatureAlgorithm: String?
}

/// Locates the package root (the directory holding Package.swift) from this source file.
public let packageRoot: URL = {
    var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    for _ in 0..<6 {
        if FileManager.default.fileExists(atPath: dir.child("Package.swift").path) { return dir }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
}()

public enum VerifyScript {
    public static var path: URL { packageRoot.child("scripts").child("verify_cert.py") }

    /// Runs `python3 scripts/verify_cert.py CERT CA_PUB`.
    public static func run(certificate: URL, caPublicKey: URL) async throws -> ProcessResult {
        try await runProcess("python3", [path.path, certificate.path, caPublicKey.path])
    }

    public static func decode(_ result: ProcessResult) throws -> VerifyScriptOutput {
        do {
            return try JSONDecoder().decode(VerifyScriptOutput.self, from: result.stdout)
        } catch {
            throw ParseError("cannot decode verify_cert.py output (\(error)):\n\(result)")
        }
    }
}

/// Computes each value once, even when many tasks ask concurrently; failures are cached too
/// (a fixture that failed to build fails every test that needs it, with the same error).
public actor AsyncCache<Key: Hashable & Sendable, Value: Sendable> {
    private var tasks: [Key: Task<Value, Error>] = [:]

    public init() {}

    public func value(for key: Key, _ make: @escaping @Sendable () async throws -> Value) async throws -> Value {
        if let task = tasks[key] { return try await task.value }
        let task = Task { try await make() }
        tasks[key] = task
        return try await task.value
    }
}
