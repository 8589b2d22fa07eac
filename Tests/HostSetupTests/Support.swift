import Common
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

// Helpers for the `sshca host ...` tests: a Debian-style sshd tree per test, a real sshd started
// from that tree's sshd_config, CA homes, throwaway users and password logins.

// MARK: - Where trees live

/// Trees live under a root-owned 0755 directory outside the world-writable /tmp, so sshd keeps
/// Debian's default `StrictModes yes` (it checks every directory above an AuthorizedPrincipalsFile
/// and refuses group/world-writable ones such as /tmp). Falls back to the usual temp dir (then
/// the configs add `StrictModes no`) when /run is not usable.
let treeBase: (url: URL, strictModes: Bool) = {
    let base = URL(fileURLWithPath: "/run/sshca-hostsetup-tests")
    if geteuid() == 0 {
        mkdir("/run", 0o755)
        if mkdir(base.path, 0o755) == 0 || errno == EEXIST {
            chmod(base.path, 0o755)
            var st = stat()
            if stat(base.path, &st) == 0, st.st_uid == 0, (st.st_mode & 0o022) == 0 {
                return (base, true)
            }
        }
    }
    let fallback = try! makeTemporaryDirectory(prefix: "sshca-hostsetup")
    removeAtExit(fallback)
    return (fallback, false)
}()

/// A fresh 0755 directory under `treeBase` (0755: throwaway users' sshd sessions must traverse it
/// to read their principals file), removed after `body` whatever happened.
func withTreeDirectory<T>(_ name: String, _ body: (URL) async throws -> T) async throws -> T {
    var template = Array("\(treeBase.url.path)/\(name)-XXXXXX".utf8CString)
    let ok = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
    guard ok else { throw ParseError("mkdtemp under \(treeBase.url.path) failed: errno \(errno)") }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    chmod(path, 0o755)
    let dir = URL(fileURLWithPath: path, isDirectory: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    return try await body(dir)
}

func makeDirectory(_ url: URL, mode: Int = 0o755) throws -> URL {
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    try setMode(mode, of: url)
    return url
}

func randomSuffix(_ length: Int = 8) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<length).map { _ in alphabet.randomElement()! })
}

// MARK: - The Debian tree

/// Debian's shipped sshd_config (it begins with `Include /etc/ssh/sshd_config.d/*.conf`).
let debianSSHDConfig: String = {
    (try? String(contentsOfFile: "/etc/ssh/sshd_config", encoding: .utf8)) ?? ""
}()

/// A copy of a Debian /etc/ssh in a temporary directory:
///
///     root/etc/sshd_config               Debian's, Include rewritten to root/etc/sshd_config.d/*.conf,
///                                        UsePAM no, own HostKey/PidFile/ListenAddress/Port at the end
///     root/etc/sshd_config.d/50-cloud-init.conf   PasswordAuthentication yes (the override trap)
///     root/etc/ssh_host_ed25519_key      own host key
///     root/etc/sshca_user_ca.pub, sshca_revoked.krl, sshca_principals/, sshca-backup/  (setup's)
///     root/run/                          pid file, sshd log (outside the snapshotted etc/)
///     root/client/                       keys, certificates, known_hosts
///
/// `etc` is what the byte-identical checks snapshot.
struct DebianTree: Sendable {
    let root: URL
    var etc: URL { root.child("etc") }
    var run: URL { root.child("run") }
    var client: URL { root.child("client") }
    var sshdConfig: URL { etc.child("sshd_config") }
    var dropInDirectory: URL { etc.child("sshd_config.d") }
    var dropIn: URL { dropInDirectory.child("00-sshca.conf") }
    var hostKey: URL { etc.child("ssh_host_ed25519_key") }
    var hostPublicKey: URL { etc.child("ssh_host_ed25519_key.pub") }
    var caKeyPath: URL { etc.child("sshca_user_ca.pub") }
    var krlPath: URL { etc.child("sshca_revoked.krl") }
    var principalsDirectory: URL { etc.child("sshca_principals") }
    var backupDirectory: URL { etc.child("sshca-backup") }
    /// Where `host setup --ca-url` puts its systemd units here (/etc/systemd/system on a server).
    var systemdDirectory: URL { etc.child("systemd") }
    var pidFile: URL { run.child("sshd.pid") }
    var logFile: URL { run.child("sshd.log") }
    var knownHosts: URL { client.child("known_hosts") }

    /// Builds the tree. `port` is written into the config; `TreeSSHD.start` may change it.
    /// `beforeInclude` lines go before the Include line; `extra` lines at the end.
    static func create(in root: URL, includeDirectory: Bool = true, beforeInclude: [String] = [],
                       extra: [String] = []) async throws -> DebianTree {
        let tree = DebianTree(root: root)
        _ = try makeDirectory(tree.etc)
        _ = try makeDirectory(tree.dropInDirectory)
        _ = try makeDirectory(tree.run)
        _ = try makeDirectory(tree.client, mode: 0o700)
        try await SSHKeygen.generate(["-t", "ed25519"], at: tree.hostKey, comment: "tree-host-key", typeName: "ed25519")
        try writeText("# cloud-init writes this on many images\nPasswordAuthentication yes\n",
                      to: tree.dropInDirectory.child("50-cloud-init.conf"), mode: 0o644)
        try writeText(try tree.configText(port: try findFreePort(), includeDirectory: includeDirectory,
                                          beforeInclude: beforeInclude, extra: extra),
                      to: tree.sshdConfig, mode: 0o644)
        return tree
    }

    func configText(port: UInt16, includeDirectory: Bool, beforeInclude: [String], extra: [String]) throws -> String {
        var text = debianSSHDConfig
        let include = "Include /etc/ssh/sshd_config.d/*.conf\n"
        guard text.contains(include), text.contains("\nUsePAM yes\n") else {
            throw ParseError("/etc/ssh/sshd_config is not Debian's (no `\(include)` or `UsePAM yes` line):\n\(text)")
        }
        let replacement = includeDirectory ? "Include \(dropInDirectory.path)/*.conf\n" : "# (no Include in this test)\n"
        text = text.replacingOccurrences(of: include, with: beforeInclude.map { $0 + "\n" }.joined() + replacement)
        text = text.replacingOccurrences(of: "\nUsePAM yes\n", with: "\nUsePAM no\n")
        var lines = [
            "",
            "# test server settings",
            "HostKey \(hostKey.path)",
            "PidFile \(pidFile.path)",
            "ListenAddress 127.0.0.1",
            "Port \(port)",
            "AuthorizedKeysFile none",
            "LogLevel DEBUG1",
            "MaxStartups 100",
        ]
        if !treeBase.strictModes { lines.append("StrictModes no") }
        lines += extra
        return text + lines.joined(separator: "\n") + "\n"
    }

    /// The `Port` the config names.
    func port() throws -> UInt16 {
        for line in try readText(sshdConfig).split(separator: "\n") where line.hasPrefix("Port ") {
            if let port = UInt16(line.dropFirst(5)) { return port }
        }
        throw ParseError("no Port line in \(sshdConfig.path)")
    }

    func setPort(_ port: UInt16) throws {
        let lines = try readText(sshdConfig).split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("Port ") ? "Port \(port)" : String(line)
        }
        try writeText(lines.joined(separator: "\n"), to: sshdConfig)
    }

    /// Everything below etc/: the configs, drop-ins, CA key, KRL, principals, backup.
    func snapshot() throws -> DirectorySnapshot { try DirectorySnapshot(etc) }

    /// The `--sshd-config/--krl/--ca-key-path/--principals-dir` arguments pointing into this tree.
    var pathArguments: [String] {
        ["--sshd-config", sshdConfig.path, "--krl", krlPath.path, "--ca-key-path", caKeyPath.path,
         "--principals-dir", principalsDirectory.path, "--systemd-dir", systemdDirectory.path]
    }

    /// `sshca host setup --ca-key CAKEY <tree paths> EXTRA`.
    func setup(caKey: URL, _ extra: [String] = []) async throws -> ProcessResult {
        try await SSHCA.run(["host", "setup", "--ca-key", caKey.path] + pathArguments + extra)
    }

    func undo(_ extra: [String] = []) async throws -> ProcessResult {
        try await SSHCA.run(["host", "undo", "--sshd-config", sshdConfig.path] + extra)
    }

    /// `sshca host krl-sync --from FILE --to <tree KRL> EXTRA`.
    func krlSync(from file: URL, _ extra: [String] = []) async throws -> ProcessResult {
        try await SSHCA.run(["host", "krl-sync", "--from", file.path, "--to", krlPath.path] + extra)
    }

    /// known_hosts pinning this tree's plain host key for [127.0.0.1]:port.
    func writeKnownHosts(port: UInt16) throws {
        try writeText("[127.0.0.1]:\(port) \(keyTypeAndBlob(try readText(hostPublicKey)))\n", to: knownHosts)
    }
}

/// Compares two snapshots of a tree and records the paths that differ.
func expectIdentical(_ after: DirectorySnapshot, _ before: DirectorySnapshot, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    let differences = after.differences(from: before)
    #expect(differences.isEmpty, "\(what): the tree changed at \(differences)\n--- now ---\n\(after)\n--- before ---\n\(before)",
            sourceLocation: sourceLocation)
}

// MARK: - sshd from the tree's own sshd_config

/// `/usr/sbin/sshd -D -f <tree>/etc/sshd_config -E <tree>/run/sshd.log` in the background.
final class TreeSSHD: @unchecked Sendable {
    let tree: DebianTree
    private let state = Locked<(port: UInt16, process: BackgroundProcess?)>((0, nil))
    var port: UInt16 { state.current.port }
    var pid: pid_t? { state.current.process?.pid }
    var isRunning: Bool { state.current.process?.isRunning ?? false }

    init(tree: DebianTree) { self.tree = tree }

    /// Starts sshd and waits until its pid file names it and the port accepts connections.
    /// On "address already in use" it moves to another port (rewriting the config's Port line).
    static func start(_ tree: DebianTree, timeout: Duration = .seconds(20)) async throws -> TreeSSHD {
        let server = TreeSSHD(tree: tree)
        try await server.start(timeout: timeout)
        return server
    }

    func start(timeout: Duration) async throws {
        if !FileManager.default.fileExists(atPath: "/run/sshd") {
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true,
                                                     attributes: [.posixPermissions: 0o755])
        }
        var lastLog = ""
        for attempt in 0..<6 {
            if attempt > 0 { try tree.setPort(try findFreePort()) }
            let port = try tree.port()
            try? FileManager.default.removeItem(at: tree.pidFile)
            let process = try BackgroundProcess(
                "/usr/sbin/sshd", ["-D", "-f", tree.sshdConfig.path, "-E", tree.logFile.path],
                stdoutFile: tree.run.child("sshd.stdout"), stderrFile: tree.run.child("sshd.stderr"))
            state.withLock { $0 = (port, process) }
            if try await waitUntilServing(process: process, port: port, timeout: timeout) {
                try tree.writeKnownHosts(port: port)
                return
            }
            lastLog = log + process.stderrText
            process.stop()
            state.withLock { $0 = (0, nil) }
            if lastLog.contains("Address already in use") || lastLog.contains("Cannot bind") { continue }
            throw SubprocessError.timedOut("sshd did not start from \(tree.sshdConfig.path):\n\(lastLog)")
        }
        throw SubprocessError.timedOut("sshd could not bind a port:\n\(lastLog)")
    }

    private func waitUntilServing(process: BackgroundProcess, port: UInt16, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let text = try? String(contentsOf: tree.pidFile, encoding: .utf8),
               Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == process.pid,
               canConnect(port: port) {
                return true
            }
            if !process.isRunning { return false }
            // Checked once more after a sleep that overran the deadline (a busy test pool).
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func stop() { state.current.process?.stop() }

    var log: String { (try? readText(tree.logFile)) ?? "" }

    func logMark() -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: tree.logFile.path)[.size]) as? NSNumber)?.intValue ?? 0
    }

    func log(since mark: Int) -> String {
        guard let data = try? Data(contentsOf: tree.logFile), data.count >= mark else { return log }
        return String(decoding: data.dropFirst(mark), as: UTF8.self)
    }

    /// A key/certificate login, checking the host key strictly against the tree's known_hosts.
    func ssh(identity: URL, certificate: URL?, user: String = currentUserName,
             command: String = "echo ok") async throws -> ProcessResult {
        try await SSHClient.run(port: port, identity: identity, certificate: certificate, command: command,
                                user: user, knownHosts: tree.knownHosts)
    }

    /// Retries a login that must succeed until `timeout` (sshd re-executes itself on SIGHUP and
    /// listens again a moment later); returns the last attempt.
    func sshEventually(identity: URL, certificate: URL?, user: String = currentUserName,
                       command: String = "echo ok", timeout: Duration = .seconds(15)) async throws -> ProcessResult {
        let deadline = ContinuousClock.now + timeout
        while true {
            let result = try await ssh(identity: identity, certificate: certificate, user: user, command: command)
            if result.succeeded || ContinuousClock.now >= deadline { return result }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// `sshpass -p PW ssh ... -o PreferredAuthentications=password -o PubkeyAuthentication=no`.
    func passwordLogin(user: String, password: String, command: String = "echo ok") async throws -> ProcessResult {
        try await ensureSSHPass()
        return try await runProcess("sshpass", [
            "-p", password, "ssh", "-F", "/dev/null", "-p", String(port), "-T",
            "-o", "PreferredAuthentications=password",
            "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1",
            "-o", "IdentityAgent=none",
            "-o", "ConnectTimeout=15",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UserKnownHostsFile=\(tree.knownHosts.path)",
            "-o", "StrictHostKeyChecking=yes",
            "\(user)@127.0.0.1", command,
        ], environment: ["SSH_AUTH_SOCK": nil], timeout: .seconds(60))
    }
}

private let installs = AsyncCache<String, Bool>()

/// Installs Debian's sshpass when it is missing (once per process).
func ensureSSHPass() async throws {
    _ = try await installs.value(for: "sshpass") {
        if findExecutable("sshpass") != nil { return true }
        let env: [String: String?] = ["DEBIAN_FRONTEND": "noninteractive"]
        var last: ProcessResult? = nil
        for attempt in 0..<4 {
            if attempt == 1 { _ = try await runProcess("apt-get", ["update"], environment: env, timeout: .seconds(180)) }
            let result = try await runProcess("apt-get", ["install", "-y", "--no-install-recommends", "sshpass"],
                                              environment: env, timeout: .seconds(180))
            if result.succeeded, findExecutable("sshpass") != nil { return true }
            last = result
            try await Task.sleep(for: .seconds(2))  // another apt may hold the dpkg lock
        }
        throw ParseError("cannot install sshpass:\n\(last.map { "\($0)" } ?? "")")
    }
}

// MARK: - CA home

/// `sshca init --home DIR --no-passphrase`, and its user CA key as printed by `sshca ca-key`.
struct CAFixture: Sendable {
    let home: URL
    /// `sshca ca-key` output, saved in a file (what an admin copies to the server).
    let userCAPublicKey: URL

    static func create(in directory: URL) async throws -> CAFixture {
        let home = directory.child("ca-home")
        try await checked(SSHCA.run(["init", "--home", home.path, "--no-passphrase"]))
        let caKey = try await checked(SSHCA.run(["ca-key", "--home", home.path]))
        let file = directory.child("user_ca_from_ca-key.pub")
        try writeData(caKey.stdout, to: file)
        return CAFixture(home: home, userCAPublicKey: file)
    }

    var krlFile: URL { home.child("revoked.krl") }
    var configFile: URL { home.child("sshca.toml") }

    /// Signs `key` (a user key unless `host`) and returns the certificate file.
    @discardableResult
    func sign(_ key: KeyPair, keyID: String, principals: [String], host: Bool = false, output: URL? = nil) async throws -> URL {
        let out = output ?? key.certificate
        var args = ["sign", "--home", home.path, "--key-id", keyID, "--principals", principals.joined(separator: ","),
                    "--output", out.path]
        if host { args.append("--host") }
        try await checked(SSHCA.run(args + [key.publicKey.path]))
        return out
    }

    /// The serial of a certificate file (from `sshca inspect --json`).
    func serial(of certificate: URL) async throws -> UInt64 {
        try await SSHCA.inspect(certificate).0.serial
    }

    func revoke(_ arguments: [String]) async throws {
        try await checked(SSHCA.run(["revoke", "--home", home.path, "--reason", "host setup test"] + arguments))
    }

    func setSignKRL(_ sign: Bool) throws {
        let text = try readText(configFile)
        let replaced = text.replacingOccurrences(of: "sign = \(!sign)", with: "sign = \(sign)")
        guard replaced.contains("sign = \(sign)") else { throw ParseError("no `sign =` line in \(configFile.path)") }
        try writeText(replaced, to: configFile)
    }

    func writeKRL(to file: URL) async throws {
        try await checked(SSHCA.run(["krl", "write", "--home", home.path, "--output", file.path]))
    }
}

@discardableResult

/// A fresh Ed25519 client key in `directory`.
func makeClientKey(_ directory: URL, _ name: String) async throws -> KeyPair {
    try await SSHKeygen.generate(.ed25519, at: directory.child(name), comment: name)
}

// MARK: - Throwaway users

/// useradd/userdel take a lock on /etc/passwd and fail when another holds it: run them one at a
/// time in this process, and retry when another process holds it.
private actor UserAdministration {
    static let shared = UserAdministration()

    func run(_ arguments: [String], stdin: Data? = nil, _ program: String) async throws -> ProcessResult {
        var result = try await runProcess(program, arguments, stdin: stdin, timeout: .seconds(60))
        for _ in 0..<20 where !result.succeeded && result.stderrText.contains("lock") {
            try await Task.sleep(for: .milliseconds(250))
            result = try await runProcess(program, arguments, stdin: stdin, timeout: .seconds(60))
        }
        return result
    }
}

/// A local user created for one test (`useradd -m`, a random password set with chpasswd).
struct ThrowawayUser: Sendable {
    let name: String
    let password: String
}

/// Creates a user named PREFIX + random suffix, runs `body`, then removes it (`userdel -r`),
/// also when `body` throws.
func withThrowawayUser<T>(prefix: String, _ body: (ThrowawayUser) async throws -> T) async throws -> T {
    let user = ThrowawayUser(name: prefix + randomSuffix(8), password: "pw-" + randomSuffix(20))
    try checked(await UserAdministration.shared.run(["-m", "-s", "/bin/sh", user.name], "useradd"))
    let result: T
    do {
        try checked(await UserAdministration.shared.run([], stdin: Data("\(user.name):\(user.password)\n".utf8), "chpasswd"))
        result = try await body(user)
    } catch {
        await removeUser(user.name)
        throw error
    }
    await removeUser(user.name)
    return result
}

private func removeUser(_ name: String) async {
    // Session processes of a just-closed login may linger a moment; then force.
    for attempt in 0..<10 {
        let result = try? await UserAdministration.shared.run(attempt < 9 ? ["-r", name] : ["-r", "-f", name], "userdel")
        if result?.succeeded == true { return }
        if let result, result.exitCode == 6 { return }  // no such user
        try? await Task.sleep(for: .milliseconds(300))
    }
    Issue.record("could not remove the throwaway user \(name)")
}
