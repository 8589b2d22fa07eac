import Common
public import SSHFormat
import SSHCrypto
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What `sshca host setup` is asked to do on a server.
public struct SetupRequest: Sendable {
    public var caKey: PublicKey
    public var sshdConfigPath = "/etc/ssh/sshd_config"
    public var caKeyPath = "/etc/ssh/sshca_user_ca.pub"
    public var krlPath = "/etc/ssh/sshca_revoked.krl"
    public var principalsDirectory = "/etc/ssh/sshca_principals"
    /// Login user -> certificate principals that may log in as that user.
    public var principalMappings: [(user: String, principals: [String])] = []
    public var disablePasswords = false
    public var sshdPath = "/usr/sbin/sshd"
    /// Where the state before the first setup is kept for `host undo`.
    public var backupDirectory: String
    /// systemd units to install (the KRL sync and host certificate timers), and where.
    public var units: [SystemdUnits.Unit] = []
    public var systemdDirectory = SystemdUnits.directory
    /// Files that later steps write beside ours (the KRL's ETag): `host undo` removes them too.
    public var sidecars: [String] = []

    public init(caKey: PublicKey, sshdConfigPath: String = "/etc/ssh/sshd_config") {
        self.caKey = caKey
        self.sshdConfigPath = sshdConfigPath
        self.backupDirectory = Files.parentDirectory(of: sshdConfigPath) + "/sshca-backup"
    }
}

/// One file as it is and as setup wants it (nil: absent).
public struct FileChange: Sendable, Equatable {
    public var path: String
    public var before: [UInt8]?
    public var after: [UInt8]?
    public var mode: mode_t
    /// The mode the file had, restored with its content on rollback.
    public var beforeMode: mode_t?

    /// The change that takes `path` from what it holds now to `desired`, or nil if it already does.
    static func toward(_ path: String, _ desired: [UInt8], mode: mode_t) throws(SSHCAError) -> FileChange? {
        let current: [UInt8]? = Files.exists(path) ? try Files.read(path, maximumBytes: 4 << 20, what: "file") : nil
        // An existing file keeps its mode (an admin's 0600 sshd_config stays 0600).
        let existingMode = Files.mode(path)
        guard current != desired else { return nil }
        return FileChange(path: path, before: current, after: desired, mode: existingMode ?? mode, beforeMode: existingMode)
    }
}

public struct SetupPlan: Sendable {
    public var changes: [FileChange]
    public var dropInPath: String?
    public var directoriesToCreate: [String]
    public var isEmpty: Bool { changes.isEmpty && directoriesToCreate.isEmpty }
}

public struct SetupReport: Sendable {
    public var plan: SetupPlan
    public var checks: [String]
    public var reload: String
}

/// `sshca host setup`: makes sshd trust the CA in one safe step. Everything is planned first;
/// files are then written atomically, sshd validates the result (`sshd -t`) and reports the
/// effective values (`sshd -T`); on any failure every file is put back exactly as it was and sshd
/// is not touched. sshd is reloaded only after all of that succeeded.
public enum ServerSetup {
    public static let dropInName = "00-sshca.conf"
    static let dropInHeader = "# Written by sshca host setup; sshca host undo removes it. Read first: sshd keeps the first value.\n"

    public static func plan(_ request: SetupRequest) throws(SSHCAError) -> SetupPlan {
        try validate(request)
        let config = try SSHDConfigFile(path: request.sshdConfigPath)
        var changes: [FileChange] = []
        var directories: [String] = []

        func want(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SSHCAError) {
            if let change = try FileChange.toward(path, bytes, mode: mode) { changes.append(change) }
        }
        func want(_ path: String, _ text: String) throws(SSHCAError) { try want(path, Array(text.utf8)) }

        try want(request.caKeyPath, request.caKey.openSSHLine(comment: "sshca-user-ca") + "\n")
        if Files.exists(request.krlPath) {
            // Never replace an installed KRL (krl-sync does that, with its checks), but never
            // point sshd at one it cannot read either: that refuses every key login.
            _ = try KRLInspection.read(request.krlPath)
        } else {
            try want(request.krlPath, KRL(version: 0, generatedDate: Clock.now(), comment: "sshca host setup: revokes nothing yet").encoded())
        }
        if !request.principalMappings.isEmpty {
            if !Files.isDirectory(request.principalsDirectory) { directories.append(request.principalsDirectory) }
            for mapping in request.principalMappings {
                try want(request.principalsDirectory + "/" + mapping.user, mapping.principals.joined(separator: "\n") + "\n")
            }
        }

        if !request.units.isEmpty && !Files.isDirectory(request.systemdDirectory) { directories.append(request.systemdDirectory) }
        for unit in request.units {
            try want(request.systemdDirectory + "/" + unit.name, unit.text)
        }

        let settings = renderSettings(request)
        var dropInPath: String? = nil
        if let dropIn = config.dropInDirectory {
            let name = try dropInFileName(directory: dropIn.directory, pattern: dropIn.pattern)
            dropInPath = dropIn.directory + "/" + name
            // sshd ends a Match at the end of an included file, so the mappings can follow.
            try want(dropInPath!, dropInHeader + settings.global + settings.match)
            // Managed blocks from an earlier set-up without a drop-in directory go away.
            let cleaned = SSHDConfigFile(path: config.path, text: config.textWithoutManagedBlock(.setup)).textWithoutManagedBlock(.principals)
            if cleaned != config.text { try want(config.path, cleaned) }
        } else {
            var text = config.withManagedBlock(settings.global)
            let withoutMappings = SSHDConfigFile(path: config.path, text: text)
            text = settings.match.isEmpty
                ? withoutMappings.textWithoutManagedBlock(.principals)
                : withoutMappings.withManagedBlock(settings.match, .principals, atEnd: true)
            try want(config.path, text)
        }
        // The KRL must be in place before sshd is pointed at it: order the writes.
        changes.sort { rank($0.path, request) < rank($1.path, request) }
        return SetupPlan(changes: changes, dropInPath: dropInPath, directoriesToCreate: directories)
    }

    static func rank(_ path: String, _ request: SetupRequest) -> Int {
        if path == request.caKeyPath || path == request.krlPath { return 0 }
        if path.hasPrefix(request.principalsDirectory + "/") { return 1 }
        // Timers last: they run sshca against files the steps before write.
        if path.hasPrefix(request.systemdDirectory + "/") { return 3 }
        return 2
    }

    static func validate(_ request: SetupRequest) throws(SSHCAError) {
        if request.caKey.isSecurityKey {
            throw SSHCAError(.badInput, "the CA key is a FIDO security key; use the CA's public key from `sshca ca-key`")
        }
        do { try request.caKey.checkStrength() } catch { throw SSHCAError(.badInput, "unsuitable CA key: \(error.reason)") }
        for mapping in request.principalMappings {
            try NameRules.checkAccountName(mapping.user, for: "--principal USER=P1,P2")
            guard !mapping.principals.isEmpty else {
                throw SSHCAError(.badInput, "--principal \(mapping.user)= names no principals")
            }
            do { try NameRules.checkPrincipals(mapping.principals) } catch { throw SSHCAError(.badInput, "--principal \(mapping.user)=...: \(error.reason)") }
        }
        if Set(request.principalMappings.map(\.user)).count != request.principalMappings.count {
            throw SSHCAError(.badInput, "a user is named twice in --principal; give all its principals at once (USER=P1,P2)")
        }
    }

    /// The settings sshd must read first, and the principal mappings (a Match block, which must
    /// come after every global setting).
    static func renderSettings(_ request: SetupRequest) -> (global: String, match: String) {
        var lines = [
            "TrustedUserCAKeys \(request.caKeyPath)",
            "RevokedKeys \(request.krlPath)",
        ]
        if request.disablePasswords {
            lines += ["PasswordAuthentication no", "KbdInteractiveAuthentication no"]
        }
        guard !request.principalMappings.isEmpty else { return (lines.joined(separator: "\n") + "\n", "") }
        // Only the mapped users get a principals file: a global AuthorizedPrincipalsFile would
        // deny certificate login to every user without one.
        let match = """
            Match User \(request.principalMappings.map(\.user).joined(separator: ","))
                AuthorizedPrincipalsFile \(request.principalsDirectory)/%u

            """
        return (lines.joined(separator: "\n") + "\n", match)
    }

    /// "00-sshca.conf", or a name that sorts before every other file sshd reads there.
    static func dropInFileName(directory: String, pattern: String) throws(SSHCAError) -> String {
        let others = try listDirectory(directory).filter { $0 != dropInName && $0 != "0-sshca.conf" && fnmatch(pattern, $0, 0) == 0 }.sorted {
            $0.utf8.lexicographicallyPrecedes($1.utf8)
        }
        for candidate in [dropInName, "0-sshca.conf"] where fnmatch(pattern, candidate, 0) == 0 {
            if let first = others.first, !candidate.utf8.lexicographicallyPrecedes(first.utf8) { continue }
            return candidate
        }
        throw SSHCAError(.badConfig, "no drop-in name both matches \(pattern) and sorts before \(others.first ?? "the other files") in \(directory); sshd would read another file's values first")
    }

    static func listDirectory(_ path: String) throws(SSHCAError) -> [String] {
        guard let dir = opendir(path) else { throw SSHCAError(.io, "cannot read directory \(path): \(String(cString: strerror(errno)))") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: Applying

    /// Applies a plan: backup of the pre-setup state (once), atomic writes, sshd -t, sshd -T
    /// checks of the effective values, then (unless `reload` is false) a reload of the sshd that
    /// uses this configuration. Any failure puts every file back and leaves sshd alone.
    public static func apply(_ plan: SetupPlan, request: SetupRequest, reload: Bool) throws(SSHCAError) -> SetupReport {
        let check = SSHDCheck(sshdPath: request.sshdPath)
        // A configuration that is already broken is not ours to touch.
        try check.validate(configPath: request.sshdConfigPath)
        guard !plan.isEmpty else {
            return SetupReport(plan: plan, checks: ["already set up: nothing to change"], reload: "not reloaded (nothing changed)")
        }
        return try FileTransaction.apply(plan.changes, creating: plan.directoriesToCreate) { () throws(SSHCAError) -> SetupReport in
            try check.validate(configPath: request.sshdConfigPath)
            let checks = try verifyEffective(request, check: check)
            // Only a setup that took effect is recorded for undo; a failed one leaves nothing behind.
            try Backup.record(plan, directory: request.backupDirectory, alsoAbsent: request.sidecars)
            let reloaded = reload ? try Reloader.reload(configPath: request.sshdConfigPath, check: check) : "not reloaded (--no-reload)"
            return SetupReport(plan: plan, checks: checks, reload: reloaded)
        }
    }

    /// sshd -T must show what setup intended; otherwise something read earlier overrides it.
    static func verifyEffective(_ request: SetupRequest, check: SSHDCheck) throws(SSHCAError) -> [String] {
        let values = try check.effective(configPath: request.sshdConfigPath)
        var expected = ["trustedusercakeys": request.caKeyPath, "revokedkeys": request.krlPath]
        if request.disablePasswords {
            expected["passwordauthentication"] = "no"
            expected["kbdinteractiveauthentication"] = "no"
        }
        for (keyword, value) in expected.sorted(by: { $0.key < $1.key }) where values[keyword] != value {
            throw SSHCAError(.badConfig, "after setup sshd's effective \(keyword) is \"\(values[keyword] ?? "unset")\", not \"\(value)\": a setting read earlier overrides sshca's (check \(request.sshdConfigPath) and its Include files). Nothing was changed")
        }
        var checks = ["sshd -t accepts the configuration", "sshd -T: TrustedUserCAKeys \(request.caKeyPath), RevokedKeys \(request.krlPath)"]
        for mapping in request.principalMappings {
            let forUser = try check.effective(configPath: request.sshdConfigPath, connection: "user=\(mapping.user),host=localhost,addr=127.0.0.1")
            let file = request.principalsDirectory + "/%u"
            guard forUser["authorizedprincipalsfile"] == file else {
                throw SSHCAError(.badConfig, "after setup sshd's AuthorizedPrincipalsFile for \(mapping.user) is \"\(forUser["authorizedprincipalsfile"] ?? "unset")\", not \(file). Nothing was changed")
            }
            checks.append("user \(mapping.user) accepts certificates for principals \(mapping.principals.joined(separator: ","))")
        }
        if request.disablePasswords {
            checks.append("certificate login is in place (CA key installed and valid, KRL valid\(request.principalMappings.isEmpty ? "" : ", principal mappings written")): password and keyboard-interactive authentication are now off")
        }
        return checks
    }
}

/// Writes a set of file changes atomically one by one, then runs `commit` (validation, reload);
/// if any write or `commit` fails, every file and directory is put back as it was.
enum FileTransaction {
    static func apply<T>(_ changes: [FileChange], creating directories: [String] = [],
                         commit: () throws(SSHCAError) -> T) throws(SSHCAError) -> T {
        var written: [FileChange] = []
        var created: [String] = []
        do throws(SSHCAError) {
            for directory in directories {
                try Files.makeDirectory(directory, mode: 0o755)
                created.append(directory)
            }
            for change in changes {
                if let after = change.after {
                    try Files.writeAtomically(change.path, after, mode: change.mode)
                } else {
                    Files.remove(change.path)
                }
                written.append(change)
            }
            return try commit()
        } catch {
            for change in written.reversed() {
                if let before = change.before {
                    try? Files.writeAtomically(change.path, before, mode: change.beforeMode ?? change.mode)
                } else {
                    Files.remove(change.path)
                }
            }
            for directory in created.reversed() { rmdir(directory) }
            throw error
        }
    }
}

/// The state before the first `host setup`, for `host undo`: each file sshca touched, with its
/// content then, or a note that it did not exist.
enum Backup {
    static let manifestName = "manifest"

    /// `alsoAbsent`: files that do not exist yet and that a later step may write (undo removes
    /// them when they are there).
    static func record(_ plan: SetupPlan, directory: String, alsoAbsent: [String] = []) throws(SSHCAError) {
        let existed = Files.isDirectory(directory)
        try Files.makeDirectory(directory, mode: 0o700)
        do throws(SSHCAError) {
            let sidecars = alsoAbsent.filter { path in !Files.exists(path) && !plan.changes.contains(where: { $0.path == path }) }
            var extended = plan
            extended.changes += sidecars.map { FileChange(path: $0, before: nil, after: nil, mode: 0o644, beforeMode: nil) }
            try recordInto(extended, directory: directory)
        } catch {
            if !existed { rmdir(directory) }
            throw error
        }
    }

    private static func recordInto(_ plan: SetupPlan, directory: String) throws(SSHCAError) {
        var manifest = try readManifest(directory)
        var changed = false
        for change in plan.changes where !manifest.contains(where: { $0.path == change.path }) {
            let index = manifest.count
            if let before = change.before {
                try Files.writeAtomically("\(directory)/\(index)", before, mode: 0o600)
                manifest.append((change.path, "file \(index) \(String(Files.mode(change.path) ?? 0o644, radix: 8))"))
            } else {
                manifest.append((change.path, "absent"))
            }
            changed = true
        }
        for created in plan.directoriesToCreate where !manifest.contains(where: { $0.path == created }) {
            manifest.append((created, "directory-absent"))
            changed = true
        }
        if changed {
            let text = manifest.map { "\($0.state)\t\($0.path)" }.joined(separator: "\n") + "\n"
            try Files.writeAtomically("\(directory)/\(manifestName)", Array(text.utf8), mode: 0o600)
        }
    }

    static func readManifest(_ directory: String) throws(SSHCAError) -> [(path: String, state: String)] {
        let path = "\(directory)/\(manifestName)"
        guard Files.exists(path) else { return [] }
        return try Files.readText(path, what: "setup backup manifest").split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 1)
            return parts.count == 2 ? (String(parts[1]), String(parts[0])) : nil
        }
    }

    /// Puts every file back as it was before the first setup; returns what was restored.
    static func restore(directory: String) throws(SSHCAError) -> [String] {
        let manifest = try readManifest(directory)
        guard !manifest.isEmpty else {
            throw SSHCAError(.home, "no sshca setup backup in \(directory); nothing to undo")
        }
        var done: [String] = []
        // Files first, then the directories that held them.
        let ordered = manifest.filter { $0.state != "directory-absent" }.reversed() + manifest.filter { $0.state == "directory-absent" }.reversed()
        for entry in ordered {
            let words = entry.state.split(separator: " ")
            switch words.first {
            case "file":
                guard words.count == 3, let mode = mode_t(words[2], radix: 8) else { continue }
                try Files.writeAtomically(entry.path, try Files.read("\(directory)/\(words[1])", maximumBytes: 4 << 20), mode: mode)
                done.append("restored \(entry.path)")
            case "absent":
                if Files.exists(entry.path) { Files.remove(entry.path); done.append("removed \(entry.path)") }
            case "directory-absent":
                if rmdir(entry.path) == 0 { done.append("removed \(entry.path)/") }
            default:
                continue
            }
        }
        return done
    }
}

/// Reloads the sshd that uses a configuration, only that one.
enum Reloader {
    static func reload(configPath: String, check: SSHDCheck) throws(SSHCAError) -> String {
        let values = try check.effective(configPath: configPath)
        if let pidFile = values["pidfile"], pidFile != "none", Files.exists(pidFile),
           let text = try? Files.readText(pidFile, maximumBytes: 64), let pid = pid_t(text.trimmingCharacters(in: " \n")),
           pid > 1, isSSHD(pid) {
            guard kill(pid, SIGHUP) == 0 else {
                throw SSHCAError(.io, "cannot signal sshd (pid \(pid)) to reload: \(String(cString: strerror(errno)))")
            }
            return "sent SIGHUP to sshd (pid \(pid) from \(pidFile))"
        }
        if configPath == "/etc/ssh/sshd_config" {
            if access("/usr/bin/systemctl", X_OK) == 0 {
                for unit in ["ssh", "sshd"] where Subprocess.run("/usr/bin/systemctl", ["reload", unit]).status == 0 {
                    return "systemctl reload \(unit)"
                }
            }
            if access("/usr/sbin/service", X_OK) == 0 {
                for name in ["ssh", "sshd"] where Subprocess.run("/usr/sbin/service", [name, "reload"]).status == 0 {
                    return "service \(name) reload"
                }
            }
        }
        return "sshd does not seem to be running with this configuration; it will use it when it starts"
    }

    static func isSSHD(_ pid: pid_t) -> Bool {
        guard let cmdline = try? Files.read("/proc/\(pid)/cmdline", maximumBytes: 4096) else { return false }
        let first = String(decoding: cmdline.prefix { $0 != 0 }, as: UTF8.self)
        return Files.baseName(of: first).hasPrefix("sshd")
    }
}

extension ServerSetup {
    /// `sshca host undo`: back to the state before the first setup, validated, then reloaded.
    public static func undo(sshdConfigPath: String, backupDirectory: String, sshdPath: String, reload: Bool) throws(SSHCAError) -> (restored: [String], reload: String) {
        // Timers that setup installed stop before their units go.
        let timers = try Backup.readManifest(backupDirectory).filter { $0.state == "absent" && $0.path.hasSuffix(".timer") && Files.exists($0.path) }
        var stopped: [String] = []
        for directory in Set(timers.map { Files.parentDirectory(of: $0.path) }) {
            let names = timers.filter { Files.parentDirectory(of: $0.path) == directory }.map { Files.baseName(of: $0.path) }
            let message = SystemdUnits.activate(names, in: directory, enable: false)
            if !message.isEmpty { stopped.append(message) }
        }
        let restored = stopped + (try Backup.restore(directory: backupDirectory))
        // Units were removed or put back: systemd must read its directory again.
        for directory in Set(timers.map { Files.parentDirectory(of: $0.path) }) { SystemdUnits.reloadIfRunning(directory) }
        let check = SSHDCheck(sshdPath: sshdPath)
        try check.validate(configPath: sshdConfigPath)
        let reloaded = reload ? try Reloader.reload(configPath: sshdConfigPath, check: check) : "not reloaded (--no-reload)"
        // The backup has served; a later setup records a new one.
        for entry in try Backup.readManifest(backupDirectory) {
            let words = entry.state.split(separator: " ")
            if words.first == "file", words.count > 1 { Files.remove("\(backupDirectory)/\(words[1])") }
        }
        Files.remove("\(backupDirectory)/\(Backup.manifestName)")
        rmdir(backupDirectory)
        return (restored, reloaded)
    }

    /// A unified diff of each planned change (for --dry-run), through diff(1) when present.
    public static func diff(_ plan: SetupPlan) -> String {
        var out = ""
        for change in plan.changes {
            let before = change.before.map { String(decoding: $0, as: UTF8.self) } ?? ""
            let after = change.after.map { String(decoding: $0, as: UTF8.self) } ?? ""
            if change.after.map({ String(validating: $0, as: UTF8.self) == nil }) ?? false || change.path.hasSuffix(".krl") {
                out += "--- \(change.path)\n+++ \(change.path)\n(binary file: \(change.before == nil ? "new" : "changed"), \(change.after?.count ?? 0) bytes)\n"
                continue
            }
            out += "--- \(change.path)\(change.before == nil ? " (new file)" : "")\n+++ \(change.path)\n"
            out += simpleDiff(before, after)
        }
        for directory in plan.directoriesToCreate { out += "+++ \(directory)/ (new directory)\n" }
        return out
    }

    /// Lines removed (-) and added (+) around a common prefix and suffix: enough to review a
    /// configuration change.
    static func simpleDiff(_ before: String, _ after: String) -> String {
        let a = before.isEmpty ? [] : before.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let b = after.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        var out = "@@ line \(prefix + 1) @@\n"
        for line in a[prefix..<(a.count - suffix)] { out += "-\(line)\n" }
        for line in b[prefix..<(b.count - suffix)] { out += "+\(line)\n" }
        return out
    }
}
