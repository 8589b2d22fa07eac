import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The outcome of one finished child process.
public struct ProcessResult: Sendable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// Exit status, or the signal number when `terminatedBySignal`.
    public var exitCode: Int32
    public var terminatedBySignal: Bool
    public var timedOut: Bool
    public var stdout: Data
    public var stderr: Data
    public var duration: Duration

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    /// Exited normally with status 0.
    public var succeeded: Bool { exitCode == 0 && !terminatedBySignal && !timedOut }

    public var commandLine: String {
        ([executable] + arguments).map(shellQuoted).joined(separator: " ")
    }

    public var description: String {
        var s = "$ \(commandLine)\n"
        if timedOut { s += "TIMED OUT (killed) after \(duration)\n" }
        s += terminatedBySignal ? "terminated by signal \(exitCode)\n" : "exit code \(exitCode)\n"
        s += "--- stdout ---\n\(truncatedForDisplay(stdoutText))\n--- stderr ---\n\(truncatedForDisplay(stderrText))"
        return s
    }
}

public enum SubprocessError: Error, CustomStringConvertible {
    case executableNotFound(String)
    case launchFailed(String, String)
    case failed(ProcessResult)
    case timedOut(String)

    public var description: String {
        switch self {
        case .executableNotFound(let name): return "executable not found in PATH: \(name)"
        case .launchFailed(let path, let why): return "cannot launch \(path): \(why)"
        case .failed(let result): return "command failed:\n\(result)"
        case .timedOut(let what): return "timed out: \(what)"
        }
    }
}

func truncatedForDisplay(_ s: String, limit: Int = 6000) -> String {
    if s.count <= limit { return s }
    return String(s.prefix(limit / 2)) + "\n[... \(s.count - limit) characters cut ...]\n" + String(s.suffix(limit / 2))
}

public func shellQuoted(_ s: String) -> String {
    if !s.isEmpty, s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@+%".contains($0) }), s.allSatisfy(\.isASCII) {
        return s
    }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Resolves a command name through PATH (names containing "/" are used as given).
public func findExecutable(_ name: String, path: String? = nil) -> String? {
    if name.contains("/") {
        return FileManager.default.isExecutableFile(atPath: name) ? name : nil
    }
    let searchPath = path ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    for dir in searchPath.split(separator: ":") where !dir.isEmpty {
        let candidate = "\(dir)/\(name)"
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
           FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
    }
    return nil
}

/// A value shared between threads under a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    public init(_ value: Value) { self.value = value }
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    public var current: Value { withLock { $0 } }
}

/// The child environment: ours, with `overrides` applied (`nil` removes a variable).
public func childEnvironment(_ overrides: [String: String?]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    for (key, value) in overrides {
        if let value { env[key] = value } else { env.removeValue(forKey: key) }
    }
    return env
}

/// Where child output is captured; removed when the process exits.
private let captureRoot: URL = {
    let url = (try? makeTemporaryDirectory(prefix: "sshca-capture"))
        ?? URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("sshca-capture-\(getpid())")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    removeAtExit(url)
    return url
}()

// MARK: - posix_spawn
//
// Foundation's Process is not used on purpose: on Linux it learns that a child exited when a
// socket inherited by the child reaches EOF, then calls a *blocking* waitpid on its single
// monitor thread. sshd, ssh and ssh-agent close inherited descriptors at startup, so a
// long-running sshd blocks that thread forever and every other child becomes an unreaped
// zombie (observed: the whole suite hung). We spawn with posix_spawn, close every inherited
// descriptor above 2 in the child, and reap with waitpid(WNOHANG) polling.

private typealias AddChdirFunction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
private typealias AddClosefromFunction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

private struct SpawnExtensions: @unchecked Sendable {
    let addChdir: AddChdirFunction?
    let addClosefrom: AddClosefromFunction?
}

// glibc >= 2.29 / 2.34 extensions that the Swift Glibc module does not import.
private let spawnExtensions: SpawnExtensions = {
    let handle = dlopen(nil, RTLD_NOW)
    let chdirSymbol = dlsym(handle, "posix_spawn_file_actions_addchdir_np")
    let closefromSymbol = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np")
    return SpawnExtensions(
        addChdir: chdirSymbol.map { unsafeBitCast($0, to: AddChdirFunction.self) },
        addClosefrom: closefromSymbol.map { unsafeBitCast($0, to: AddClosefromFunction.self) })
}()

private func posixError(_ what: String, _ code: Int32 = errno) -> SubprocessError {
    SubprocessError.launchFailed(what, String(cString: strerror(code)))
}

/// Opens a file with O_CLOEXEC (only the dup2'd copies reach the child).
private func openForChild(_ path: String, write: Bool) throws -> Int32 {
    let flags = write ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC)
    let fd = open(path, flags, 0o600)
    guard fd >= 0 else { throw posixError("open \(path)") }
    return fd
}

/// Starts `path` with stdin/stdout/stderr on the given descriptors; returns the pid.
private func spawnChild(
    path: String, arguments: [String], environment: [String: String], currentDirectory: URL?,
    stdin: Int32, stdout: Int32, stderr: Int32
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, stdin, 0)
    posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    posix_spawn_file_actions_adddup2(&actions, stderr, 2)
    if let addClosefrom = spawnExtensions.addClosefrom {
        _ = addClosefrom(&actions, 3)
    }
    if let currentDirectory {
        guard let addChdir = spawnExtensions.addChdir else {
            throw SubprocessError.launchFailed(path, "posix_spawn_file_actions_addchdir_np is unavailable")
        }
        let rc = currentDirectory.path.withCString { addChdir(&actions, $0) }
        guard rc == 0 else { throw posixError("chdir action \(currentDirectory.path)", rc) }
    }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    posix_spawnattr_setsigmask(&attributes, &emptyMask)
    // The Swift runtime ignores SIGPIPE; children must get default dispositions.
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM] {
        sigaddset(&defaults, sig)
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for p in argv { free(p) }
        for p in envp { free(p) }
    }
    var pid: pid_t = 0
    let rc = argv.withUnsafeBufferPointer { argvBuffer in
        envp.withUnsafeBufferPointer { envpBuffer in
            posix_spawn(&pid, path, &actions, &attributes, argvBuffer.baseAddress!, envpBuffer.baseAddress!)
        }
    }
    guard rc == 0 else { throw posixError(path, rc) }
    return pid
}

/// Decoded wait status.
private struct ExitStatus: Sendable {
    var code: Int32
    var signaled: Bool
    init(raw: Int32) {
        let low = raw & 0x7f
        if low == 0 {
            code = (raw >> 8) & 0xff
            signaled = false
        } else {
            code = low
            signaled = true
        }
    }
}

/// Non-blocking reap: the status once the child has exited, nil while it runs.
private func tryReap(_ pid: pid_t) -> ExitStatus? {
    while true {
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, WNOHANG)
        if r == pid { return ExitStatus(raw: raw) }
        if r == 0 { return nil }
        if errno == EINTR { continue }
        // ECHILD: someone else reaped it; report it as gone.
        return ExitStatus(raw: 0x7f00)
    }
}

/// Runs a program to completion and captures its output.
///
/// stdout and stderr go to temporary files rather than pipes: nothing can deadlock on a full
/// pipe, and no concurrently started long-lived process can hold a pipe open. The child gets
/// no other descriptor of ours. On timeout the child gets SIGKILL and `timedOut` is set.
public func runProcess(
    _ executable: String,
    _ arguments: [String],
    stdin: Data? = nil,
    environment: [String: String?] = [:],
    currentDirectory: URL? = nil,
    timeout: Duration = .seconds(60)
) async throws -> ProcessResult {
    guard let path = findExecutable(executable, path: environment["PATH"] ?? nil) else {
        throw SubprocessError.executableNotFound(executable)
    }
    let id = UUID().uuidString
    try? FileManager.default.createDirectory(at: captureRoot, withIntermediateDirectories: true)
    let outURL = captureRoot.appendingPathComponent("\(id).out")
    let errURL = captureRoot.appendingPathComponent("\(id).err")
    let inURL = captureRoot.appendingPathComponent("\(id).in")
    try (stdin ?? Data()).write(to: inURL)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
        try? FileManager.default.removeItem(at: inURL)
    }
    let inFD = try openForChild(inURL.path, write: false)
    defer { close(inFD) }
    let outFD = try openForChild(outURL.path, write: true)
    defer { close(outFD) }
    let errFD = try openForChild(errURL.path, write: true)
    defer { close(errFD) }

    let clock = ContinuousClock()
    let start = clock.now
    let pid = try spawnChild(
        path: path, arguments: arguments, environment: childEnvironment(environment),
        currentDirectory: currentDirectory, stdin: inFD, stdout: outFD, stderr: errFD)

    let deadline = start + timeout
    var timedOut = false
    var delay = Duration.milliseconds(1)
    var status: ExitStatus
    while true {
        if let s = tryReap(pid) {
            status = s
            break
        }
        if !timedOut && clock.now >= deadline {
            timedOut = true
            kill(pid, SIGKILL)
        }
        try? await Task.sleep(for: delay)
        if delay < .milliseconds(20) { delay = delay * 2 }
    }
    let duration = clock.now - start
    let out = (try? Data(contentsOf: outURL)) ?? Data()
    let err = (try? Data(contentsOf: errURL)) ?? Data()
    return ProcessResult(
        executable: path, arguments: arguments, exitCode: status.code, terminatedBySignal: status.signaled,
        timedOut: timedOut, stdout: out, stderr: err, duration: duration)
}

/// Runs a program and throws `SubprocessError.failed` unless it exits 0.
@discardableResult
public func runChecked(
    _ executable: String,
    _ arguments: [String],
    stdin: Data? = nil,
    environment: [String: String?] = [:],
    currentDirectory: URL? = nil,
    timeout: Duration = .seconds(60)
) async throws -> ProcessResult {
    let result = try await runProcess(
        executable, arguments, stdin: stdin, environment: environment,
        currentDirectory: currentDirectory, timeout: timeout)
    guard result.succeeded else { throw SubprocessError.failed(result) }
    return result
}

/// A long-running child (sshd, ssh-agent) whose output goes to files.
/// `stop()` sends SIGTERM, waits, then SIGKILLs and reaps; it is idempotent and also runs on
/// deinit, but tests should call it explicitly (`defer { server.stop() }`).
public final class BackgroundProcess: @unchecked Sendable {
    public let executable: String
    public let arguments: [String]
    public let stdoutFile: URL
    public let stderrFile: URL
    public let pid: pid_t
    /// nil while running; set once reaped.
    private let reaped = Locked<ExitStatus?>(nil)
    private let stopped = Locked(false)

    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String?] = [:],
        currentDirectory: URL? = nil,
        stdoutFile: URL,
        stderrFile: URL
    ) throws {
        guard let path = findExecutable(executable, path: environment["PATH"] ?? nil) else {
            throw SubprocessError.executableNotFound(executable)
        }
        self.executable = path
        self.arguments = arguments
        self.stdoutFile = stdoutFile
        self.stderrFile = stderrFile
        let inFD = try openForChild("/dev/null", write: false)
        defer { close(inFD) }
        let outFD = try openForChild(stdoutFile.path, write: true)
        defer { close(outFD) }
        let errFD = try openForChild(stderrFile.path, write: true)
        defer { close(errFD) }
        pid = try spawnChild(
            path: path, arguments: arguments, environment: childEnvironment(environment),
            currentDirectory: currentDirectory, stdin: inFD, stdout: outFD, stderr: errFD)
    }

    private func poll() -> ExitStatus? {
        reaped.withLock { status in
            if status == nil { status = tryReap(pid) }
            return status
        }
    }

    public var isRunning: Bool { poll() == nil }
    public var exitStatus: Int32? { poll()?.code }
    public var stdoutText: String { (try? String(contentsOf: stdoutFile, encoding: .utf8)) ?? "" }
    public var stderrText: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    public func stop(grace: Duration = .seconds(3)) {
        let first = stopped.withLock { (s: inout Bool) -> Bool in
            defer { s = true }
            return !s
        }
        guard first, isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while isRunning && ContinuousClock.now < deadline { usleep(5_000) }
        if isRunning {
            kill(pid, SIGKILL)
            reaped.withLock { status in
                if status == nil {
                    var raw: Int32 = 0
                    while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
                    status = ExitStatus(raw: raw)
                }
            }
        }
    }

    deinit { stop() }
}

/// The result, or the whole result as an error when the command failed.
@discardableResult
public func checked(_ result: ProcessResult) throws -> ProcessResult {
    guard result.succeeded else { throw SubprocessError.failed(result) }
    return result
}

/// Runs blocking work (socket calls, tight measuring loops) on a thread of its own. Swift
/// Testing runs tests on the cooperative pool, which has one thread per core (two here): a test
/// that blocks one for seconds starves every other test's waits, and they time out.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
