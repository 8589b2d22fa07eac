import Common
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The systemd units that keep a server current by itself: the KRL every five minutes, host
/// certificates daily. `host setup --ca-url` writes them with this server's URL, pins and
/// paths (and `host undo` removes them); the copies in ca-config/ are the same text for the
/// example values.
public enum SystemdUnits {
    public struct Unit: Sendable, Equatable {
        public var name: String
        public var text: String
    }

    public static let directory = "/etc/systemd/system"

    /// What ExecStart may hold unquoted: systemd splits it on white space, reads quotes and
    /// backslashes, and expands % specifiers.
    static func argument(_ text: String) throws(SSHCAError) -> String {
        guard !text.isEmpty, !text.contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "'" || $0 == "\\" || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false }) else {
            throw SSHCAError(.badInput, "\"\(text.prefix(80))\" cannot go into a systemd unit's command line (white space, quotes or control characters)")
        }
        return text.replacingOccurrences(of: "%", with: "%%").replacingOccurrences(of: "$", with: "$$")
    }

    /// systemd runs units from /: a relative path in one would name another file.
    static func requireAbsolute(_ paths: [String?]) throws(SSHCAError) {
        for case let path? in paths where !path.hasPrefix("/") {
            throw SSHCAError(.badInput, "\(path) is a relative path; systemd runs units from /, so give it absolute")
        }
    }

    /// `tokenFile`: the server's host token, so the service lists it under the token's name.
    public static func krlSync(executable: String, url: String, krlPath: String, caKeyPath: String, caBundle: String?,
                               tokenFile: String? = nil) throws(SSHCAError) -> [Unit] {
        try requireAbsolute([krlPath, caKeyPath, caBundle, tokenFile])
        var command = [executable, "host", "krl-sync", "--from", url, "--to", krlPath, "--ca-key", caKeyPath]
        if let caBundle { command += ["--ca-bundle", caBundle] }
        if let tokenFile { command += ["--token-file", tokenFile] }
        let exec = try command.map(argument).joined(separator: " ")
        let directory = Files.parentDirectory(of: krlPath)
        let service = """
        # Written by `sshca host setup --ca-url` (removed by `sshca host undo`). Keeps this server's
        # KRL (sshd's RevokedKeys) current from the CA service: a KRL that is not signed by the
        # pinned CA key, does not parse, or is older than the installed one is refused and the
        # installed file stays as it was, so a bad day on the CA never locks anyone out.
        [Unit]
        Description=sshca: fetch the KRL from the CA service
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        # A oneshot unit has no start timeout by default: one run that hangs would stop every later one.
        TimeoutStartSec=180
        ExecStart=\(exec)
        NoNewPrivileges=yes
        ProtectSystem=strict
        ReadWritePaths=\(try argument(directory))
        PrivateTmp=yes

        """
        let timer = """
        [Unit]
        Description=sshca: fetch the KRL every 5 minutes

        [Timer]
        OnBootSec=30s
        OnUnitActiveSec=5min
        RandomizedDelaySec=30s

        [Install]
        WantedBy=timers.target

        """
        return [Unit(name: "sshca-krl-sync.service", text: service), Unit(name: "sshca-krl-sync.timer", text: timer)]
    }

    public static func hostCert(executable: String, url: String, hostCAFingerprint: String, tokenFile: String, principals: [String],
                                caBundle: String?) throws(SSHCAError) -> [Unit] {
        try requireAbsolute([tokenFile, caBundle])
        var command = [executable, "host", "cert", "--ca-url", url, "--ca-fingerprint", hostCAFingerprint, "--token-file", tokenFile]
        if !principals.isEmpty { command += ["--principals", principals.joined(separator: ",")] }
        if let caBundle { command += ["--ca-bundle", caBundle] }
        command += ["--renew-before", "7d"]
        let exec = try command.map(argument).joined(separator: " ")
        let service = """
        # Written by `sshca host setup --ca-url --token-file` (removed by `sshca host undo`).
        # Renews this server's host certificates from the CA service with its host token; a
        # certificate with more than 7 days left is kept.
        [Unit]
        Description=sshca: renew host certificates
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        TimeoutStartSec=180
        ExecStart=\(exec)
        NoNewPrivileges=yes
        PrivateTmp=yes

        """
        let timer = """
        [Unit]
        Description=sshca: check host certificates daily

        [Timer]
        OnBootSec=2min
        OnUnitActiveSec=1d
        RandomizedDelaySec=1h
        Persistent=true

        [Install]
        WantedBy=timers.target

        """
        return [Unit(name: "sshca-host-cert.service", text: service), Unit(name: "sshca-host-cert.timer", text: timer)]
    }

    /// This program's own path, for ExecStart.
    public static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/usr/local/bin/sshca" }
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// After unit files changed under systemd's feet (host undo): `systemctl daemon-reload`.
    public static func reloadIfRunning(_ directory: String) {
        guard systemdIsRunning, directory == Self.directory else { return }
        _ = Subprocess.run("/bin/systemctl", ["daemon-reload"])
    }

    /// Whether systemd runs this machine (it is PID 1 and its runtime directory is there).
    public static var systemdIsRunning: Bool { Files.isDirectory("/run/systemd/system") }

    /// `systemctl enable --now` (or `disable --now`) for the timers, when systemd runs and the
    /// units are in its directory; otherwise what to run later.
    public static func activate(_ timers: [String], in directory: String, enable: Bool) -> String {
        let verb = enable ? "enable" : "disable"
        guard !timers.isEmpty else { return "" }
        guard systemdIsRunning, directory == Self.directory else {
            return "systemd does not run here (or the units are not in \(Self.directory)): \(enable ? "start" : "stop") them with systemctl \(verb) --now \(timers.joined(separator: " "))"
        }
        let reload = Subprocess.run("/bin/systemctl", ["daemon-reload"])
        let result = Subprocess.run("/bin/systemctl", [verb, "--now"] + timers)
        guard reload.status == 0, result.status == 0 else {
            return "systemctl \(verb) --now \(timers.joined(separator: " ")) failed (exit \(result.status)): \(result.output.prefix(300))"
        }
        return "\(enable ? "enabled and started" : "stopped and disabled") \(timers.joined(separator: ", "))"
    }
}
