import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private OpenSSH server on 127.0.0.1 for one test.
///
/// Usage:
///
///     let sshd = try await SSHD.prepare(in: dir.child("sshd"))   // host key generated
///     try await sshd.start(trustedUserCAKeys: caPub, extraConfig: ["HostCertificate ..."])
///     defer { sshd.stop() }
///     let r = try await sshd.ssh(identity: key, certificate: cert)
///
/// Its own host key, `UsePAM no`, `StrictModes no`, `AuthorizedKeysFile none`, `LogLevel DEBUG1`
/// to `logFile`, run in the foreground (`-D`) so `stop()` can SIGTERM it.
public final class SSHD: @unchecked Sendable {
    public static let sshdPath = "/usr/sbin/sshd"

    public let directory: URL
    public let hostKey: URL
    public var hostPublicKey: URL { URL(fileURLWithPath: hostKey.path + ".pub") }
    public let configFile: URL
    public let logFile: URL
    public let pidFile: URL
    /// known_hosts holding the plain host key for [127.0.0.1]:port (valid after `start`).
    public let knownHostsFile: URL
    private let state = Locked<(port: UInt16, process: BackgroundProcess?)>((0, nil))

    public var port: UInt16 { state.current.port }

    private init(directory: URL) {
        self.directory = directory
        hostKey = directory.child("ssh_host_ed25519_key")
        configFile = directory.child("sshd_config")
        logFile = directory.child("sshd.log")
        pidFile = directory.child("sshd.pid")
        knownHostsFile = directory.child("known_hosts")
    }

    /// Creates `directory` and a host key in it; the server is not running yet.
    public static func prepare(in directory: URL) async throws -> SSHD {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let server = SSHD(directory: directory)
        try await SSHKeygen.generate(["-t", "ed25519"], at: server.hostKey, comment: "test-host-key", typeName: "ed25519")
        return server
    }

    /// Prepares and starts a server.
    public static func start(
        in directory: URL, trustedUserCAKeys: URL?, extraConfig: [String] = []
    ) async throws -> SSHD {
        let server = try await prepare(in: directory)
        try await server.start(trustedUserCAKeys: trustedUserCAKeys, extraConfig: extraConfig)
        return server
    }

    /// Writes the config and starts sshd on a free port; returns when it listens.
    /// `extraConfig` lines come first, so they win over the defaults (sshd keeps the first value).
    public func start(
        trustedUserCAKeys: URL?, extraConfig: [String] = [], timeout: Duration = .seconds(20)
    ) async throws {
        if geteuid() == 0 && !FileManager.default.fileExists(atPath: "/run/sshd") {
            try? FileManager.default.createDirectory(
                atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        var lastLog = ""
        for _ in 0..<6 {
            let port = try findFreePort()
            var lines = extraConfig
            lines += [
                "ListenAddress 127.0.0.1",
                "Port \(port)",
                "HostKey \(hostKey.path)",
                "PidFile \(pidFile.path)",
                "UsePAM no",
                "StrictModes no",
                "AuthorizedKeysFile none",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "LogLevel DEBUG1",
                "MaxStartups 100",
            ]
            if let trustedUserCAKeys { lines.append("TrustedUserCAKeys \(trustedUserCAKeys.path)") }
            try writeText(lines.joined(separator: "\n") + "\n", to: configFile)
            try? FileManager.default.removeItem(at: pidFile)
            try? FileManager.default.removeItem(at: logFile)
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)

            let process = try BackgroundProcess(
                Self.sshdPath, ["-D", "-f", configFile.path, "-E", logFile.path],
                currentDirectory: directory,
                stdoutFile: directory.child("sshd.stdout"), stderrFile: directory.child("sshd.stderr"))
            state.withLock { $0 = (port, process) }

            let deadline = ContinuousClock.now + timeout
            var ready = false
            while true {
                // sshd writes the pid file after listen(); the connect double-checks the port.
                if let text = try? String(contentsOf: pidFile, encoding: .utf8),
                   Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == process.pid,
                   canConnect(port: port) {
                    ready = true
                    break
                }
                if !process.isRunning { break }
                // Checked once more after a sleep that overran the deadline (a busy test pool).
                if ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            if ready {
                let hostPub = try readText(hostPublicKey)
                try writeText("[127.0.0.1]:\(port) \(keyTypeAndBlob(hostPub))\n", to: knownHostsFile)
                return
            }
            lastLog = log + process.stderrText
            process.stop()
            state.withLock { $0 = (0, nil) }
            if lastLog.contains("Address already in use") || lastLog.contains("Cannot bind") {
                continue  // someone took the port between findFreePort() and bind(); try another
            }
            throw SubprocessError.timedOut("sshd did not start (config \(configFile.path)):\n\(lastLog)")
        }
        throw SubprocessError.timedOut("sshd could not bind a port:\n\(lastLog)")
    }

    public func stop() {
        state.current.process?.stop()
    }

    public var isRunning: Bool { state.current.process?.isRunning ?? false }

    /// The whole server log so far.
    public var log: String { (try? readText(logFile)) ?? "" }

    /// A position in the log, to read only what later connections logged.
    public func logMark() -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: logFile.path)[.size]) as? NSNumber)?.intValue ?? 0
    }

    public func log(since mark: Int) -> String {
        guard let data = try? Data(contentsOf: logFile), data.count >= mark else { return log }
        return String(decoding: data.dropFirst(mark), as: UTF8.self)
    }

    /// `SHA256:...` of the plain host key (for plink's `-hostkey`).
    public func hostKeyFingerprint() async throws -> String {
        try await SSHKeygen.fingerprint(hostPublicKey)
    }

    /// Runs `ssh` against this server, by default checking the host key strictly against
    /// `knownHostsFile`.
    public func ssh(
        identity: URL,
        certificate: URL?,
        command: String = "echo ok",
        user: String = currentUserName,
        knownHosts: URL? = nil,
        strictHostKeyChecking: String = "yes",
        securityKeyProvider: String? = nil,
        extraOptions: [String] = [],
        timeout: Duration = .seconds(60)
    ) async throws -> ProcessResult {
        try await SSHClient.run(
            port: port, identity: identity, certificate: certificate, command: command, user: user,
            knownHosts: knownHosts ?? knownHostsFile, strictHostKeyChecking: strictHostKeyChecking,
            securityKeyProvider: securityKeyProvider, extraOptions: extraOptions, timeout: timeout)
    }

    /// Runs `plink` against this server, pinning the host key by fingerprint.
    public func plink(
        ppk: URL, certificate: URL?, command: String = "echo ok", user: String = currentUserName,
        home: URL, timeout: Duration = .seconds(60)
    ) async throws -> ProcessResult {
        let fingerprint = try await hostKeyFingerprint()
        var args = ["-batch", "-ssh", "-noagent", "-i", ppk.path]
        if let certificate { args += ["-cert", certificate.path] }
        args += ["-hostkey", fingerprint, "-P", String(port), "\(user)@127.0.0.1", command]
        return try await runProcess("plink", args, environment: ["HOME": home.path], timeout: timeout)
    }
}

/// The `ssh` client command line from the facts page.
public enum SSHClient {
    public static func arguments(
        port: UInt16,
        identity: URL,
        certificate: URL?,
        command: String,
        user: String,
        knownHosts: URL,
        strictHostKeyChecking: String,
        securityKeyProvider: String?,
        extraOptions: [String]
    ) -> [String] {
        var args = [
            "-F", "/dev/null", "-p", String(port), "-T",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "ConnectTimeout=15",
            "-o", "UpdateHostKeys=no",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UserKnownHostsFile=\(knownHosts.path)",
            "-o", "StrictHostKeyChecking=\(strictHostKeyChecking)",
            "-i", identity.path,
        ]
        if let certificate { args += ["-o", "CertificateFile=\(certificate.path)"] }
        if let securityKeyProvider { args += ["-o", "SecurityKeyProvider=\(securityKeyProvider)"] }
        args += extraOptions
        args += ["\(user)@127.0.0.1", command]
        return args
    }

    public static func run(
        port: UInt16,
        identity: URL,
        certificate: URL?,
        command: String = "echo ok",
        user: String = currentUserName,
        knownHosts: URL,
        strictHostKeyChecking: String = "yes",
        securityKeyProvider: String? = nil,
        extraOptions: [String] = [],
        timeout: Duration = .seconds(60)
    ) async throws -> ProcessResult {
        try await runProcess(
            "ssh",
            arguments(
                port: port, identity: identity, certificate: certificate, command: command, user: user,
                knownHosts: knownHosts, strictHostKeyChecking: strictHostKeyChecking,
                securityKeyProvider: securityKeyProvider, extraOptions: extraOptions),
            environment: ["SSH_AUTH_SOCK": nil, "TZ": "UTC"],
            timeout: timeout)
    }
}

/// A private `ssh-agent -D -a SOCKET` for one test.
public final class SSHAgent: @unchecked Sendable {
    public let socket: URL
    private let process: BackgroundProcess

    private init(socket: URL, process: BackgroundProcess) {
        self.socket = socket
        self.process = process
    }

    /// Starts an agent listening on `directory/agent.sock`; returns once the socket exists.
    public static func start(in directory: URL, timeout: Duration = .seconds(60)) async throws -> SSHAgent {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let socket = directory.child("agent.sock")
        let process = try BackgroundProcess(
            "ssh-agent", ["-D", "-a", socket.path],
            environment: ["SSH_AUTH_SOCK": nil],
            stdoutFile: directory.child("agent.stdout"), stderrFile: directory.child("agent.stderr"))
        let agent = SSHAgent(socket: socket, process: process)
        let deadline = ContinuousClock.now + timeout
        while true {
            // The socket file appears at bind(), before listen(): wait until it accepts.
            if FileManager.default.fileExists(atPath: socket.path) && canConnect(unixSocket: socket.path) { return agent }
            if !process.isRunning { break }
            // Checked once more after a sleep that overran the deadline (a busy test pool).
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.stop()
        throw SubprocessError.timedOut("ssh-agent did not create \(socket.path): \(process.stderrText)")
    }

    /// Environment overrides pointing a child at this agent.
    public var environment: [String: String?] { ["SSH_AUTH_SOCK": socket.path] }

    /// `ssh-add` with this agent.
    public func sshAdd(_ arguments: [String], stdin: Data? = nil) async throws -> ProcessResult {
        try await runProcess("ssh-add", arguments, stdin: stdin, environment: environment)
    }

    public func stop() { process.stop() }
}
