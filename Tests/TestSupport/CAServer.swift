import Foundation

/// A running `sshca serve` on 127.0.0.1 (a free port) for one test, with its own CA home.
///
///     let server = try await CAServer.start(in: dir)        // sshca serve --init
///     defer { server.stop() }
///     let r = try await server.sshca(["user", "add", "alice", ...])
///     let (status, body) = try await server.http("GET", "/healthz")
public final class CAServer: @unchecked Sendable {
    public let home: URL
    public let url: String
    public let process: BackgroundProcess
    public let logFile: URL

    init(home: URL, url: String, process: BackgroundProcess, logFile: URL) {
        self.home = home
        self.url = url
        self.process = process
        self.logFile = logFile
    }

    /// Starts `sshca serve --init --listen 127.0.0.1:0` (or the `configure` step first writes the
    /// home: when it is given, `sshca init --no-passphrase` runs, then `configure(home)`, then serve).
    /// `home`: an existing CA home elsewhere (the logs stay in `directory`).
    public static func start(
        in directory: URL,
        home existingHome: URL? = nil,
        configure: ((URL) throws -> Void)? = nil,
        extraArguments: [String] = [],
        environment: [String: String?] = [:],
        timeout: Duration = .seconds(30),
        fileDescriptorLimit: Int? = nil
    ) async throws -> CAServer {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let home = existingHome ?? directory.child("ca")
        if let configure {
            let created = try await SSHCA.run(["init", "--home", home.path, "--no-passphrase"])
            guard created.succeeded else { throw SubprocessError.failed(created) }
            try configure(home)
        }
        var env = SSHCA.baseEnvironment
        for (k, v) in environment { env[k] = v }
        let out = directory.child("serve.out"), log = directory.child("serve.log")
        var command = try SSHCA.executableURL().path
        var arguments = ["serve", "--init", "--home", home.path, "--listen", "127.0.0.1:0"] + extraArguments
        if let limit = fileDescriptorLimit {
            // `ulimit -n` for the service alone: the shell lowers it, then becomes sshca.
            arguments = ["-c", "ulimit -n \(limit) && exec \"$0\" \"$@\"", command] + arguments
            command = "/bin/sh"
        }
        let process = try BackgroundProcess(command, arguments, environment: env, stdoutFile: out, stderrFile: log)
        let deadline = ContinuousClock.now + timeout
        while true {
            if let text = try? String(contentsOf: out, encoding: .utf8),
               let range = text.range(of: "listening on ") {
                let url = String(text[range.upperBound...].prefix { $0 != " " && $0 != "\n" })
                return CAServer(home: home, url: url, process: process, logFile: log)
            }
            if !process.isRunning {
                throw SubprocessError.timedOut("sshca serve exited (\(process.exitStatus ?? -1)):\n\(process.stderrText)")
            }
            // Checked once more after a sleep that overran the deadline (a busy test pool).
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.stop()
        throw SubprocessError.timedOut("sshca serve did not start:\n\(process.stderrText)")
    }

    public func stop() { process.stop() }

    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// `sshca ARGS --home HOME` against this server's CA home (local administration).
    public func sshca(_ arguments: [String], environment: [String: String?] = [:]) async throws -> ProcessResult {
        try await SSHCA.run(arguments + ["--home", home.path], environment: environment)
    }

    /// One HTTP request with curl; returns the status and the body.
    /// `from`: the local address to send from (any of 127.0.0.0/8 on loopback).
    public func http(_ method: String, _ path: String, json: String? = nil, headers: [String: String] = [:],
                     bodyFile: URL? = nil, from: String? = nil) async throws -> (status: Int, body: Data) {
        var arguments = ["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, url + path]
        if let from { arguments += ["--interface", from] }
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let json { arguments += ["-H", "Content-Type: application/json", "--data-binary", json] }
        if let bodyFile { arguments += ["-H", "Content-Type: application/json", "--data-binary", "@" + bodyFile.path] }
        let result = try await runProcess("curl", arguments, timeout: .seconds(60))
        guard result.succeeded else { throw SubprocessError.failed(result) }
        var data = result.stdout
        guard let newline = data.lastIndex(of: UInt8(ascii: "\n")),
              let status = Int(String(decoding: data[data.index(after: newline)...], as: UTF8.self)) else {
            throw SubprocessError.timedOut("curl gave no status: \(result)")
        }
        data = data[..<newline]
        return (status, Data(data))
    }
}
