// Synchronous helpers for unit tests that call OpenSSH/OpenSSL tools once and wait: a runner
// through temp files (no pipe can fill up), fixture directories, keys made by ssh-keygen.
// Long-lived children (sshd, ssh-agent) use Subprocess.swift's posix_spawn runner instead.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct CommandResult: CustomStringConvertible, Sendable {
    public var command: [String]
    public var status: Int32
    public var stdout: Data
    public var stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var description: String {
        "$ \(command.joined(separator: " "))\nexit \(status)\nstdout: \(stdoutText)\nstderr: \(stderr)"
    }
}

public struct CommandFailed: Error, CustomStringConvertible {
    public var result: CommandResult
    public var description: String { "command failed:\n\(result)" }
}

/// Runs a program to completion. stdin/stdout/stderr go through temp files, so large outputs
/// cannot dead-lock on a pipe.
@discardableResult
public func run(_ executable: String, _ arguments: [String], stdin: Data? = nil,
         environment: [String: String?] = [:], check: Bool = true) throws -> CommandResult {
    let dir = try TempDir()
    let inPath = dir.path + "/stdin", outPath = dir.path + "/stdout", errPath = dir.path + "/stderr"
    _ = FileManager.default.createFile(atPath: inPath, contents: stdin ?? Data())
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/" + executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["SSH_AUTH_SOCK"] = nil
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let inHandle = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
    let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    process.standardInput = inHandle
    process.standardOutput = outHandle
    process.standardError = errHandle
    try process.run()
    process.waitUntilExit()
    try? inHandle.close(); try? outHandle.close(); try? errHandle.close()
    let result = CommandResult(
        command: [executable] + arguments, status: process.terminationStatus,
        stdout: (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data(),
        stderr: String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data(), as: UTF8.self))
    if check && result.status != 0 { throw CommandFailed(result: result) }
    return result
}

/// Directories of fixtures that live until the test process ends (static lets are never
/// deinitialised): removed by an atexit handler.
private let lingering = LingeringDirectories()

private final class LingeringDirectories: @unchecked Sendable {
    private let lock = NSLock()
    private var paths: [String] = []

    init() {
        atexit {
            for path in lingering.take() { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    func add(_ path: String) { lock.withLock { paths.append(path) } }
    func take() -> [String] { lock.withLock { defer { paths = [] }; return paths } }
}

/// A fresh directory under /tmp, removed when the value goes away (or, for fixtures held by a
/// static, when the test process exits).
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init(lingering keep: Bool = false) throws {
        var template = Array("/tmp/sshca-unit-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: made)
        if keep { lingering.add(path) }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    public func write(_ name: String, _ text: String, mode: mode_t = 0o600) throws -> String {
        try write(name, Data(text.utf8), mode: mode)
    }

    @discardableResult
    public func write(_ name: String, _ data: Data, mode: mode_t = 0o600) throws -> String {
        let p = file(name)
        try data.write(to: URL(fileURLWithPath: p))
        chmod(p, mode)
        return p
    }

    public func read(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: file(name)))
    }

    public func readText(_ name: String) throws -> String {
        String(decoding: try read(name), as: UTF8.self)
    }
}

/// Decodes the base64 field of an OpenSSH line ("type base64 [comment]").
public func blobOfLine(_ line: String) -> Data? {
    let fields = line.split(separator: " ", maxSplits: 2)
    guard fields.count >= 2 else { return nil }
    return Data(base64Encoded: String(fields[1]))
}


/// Makes a key with ssh-keygen and returns the .pub line (without the newline).
public func sshKeygenKey(in dir: TempDir, name: String, type: String, bits: Int? = nil, comment: String = "test key") throws -> String {
    var args = ["-q", "-t", type, "-N", "", "-C", comment, "-f", dir.file(name)]
    if let bits { args += ["-b", String(bits)] }
    if type.hasSuffix("-sk") { args += ["-w", skDummyProvider] }
    try run("ssh-keygen", args)
    return try dir.readText(name + ".pub").trimmingCharacters(in: .whitespacesAndNewlines)
}
