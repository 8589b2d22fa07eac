import Common
import SSHFormat
#if canImport(Glibc)
import Glibc
#endif

/// What sshca needs to know of an sshd_config: where a drop-in that sshd reads first can go, and
/// where a managed block would start. sshd keeps the first value it reads for most keywords, so
/// sshca's settings must come before anything that could contradict them.
public struct SSHDConfigFile: Sendable {
    public let path: String
    public let text: String

    /// The markers of a block sshca manages inside sshd_config when there is no drop-in directory.
    public struct BlockMarkers: Sendable {
        public var begin: String
        public var end: String
        public static let setup = BlockMarkers(
            begin: "# BEGIN sshca managed block: written by `sshca host setup`, removed by `sshca host undo`",
            end: "# END sshca managed block")
        /// Principal mappings: a Match block, so it goes at the end of sshd_config, where it
        /// cannot capture the administrator's own settings.
        public static let principals = BlockMarkers(
            begin: "# BEGIN sshca principal mappings: written by `sshca host setup`, removed by `sshca host undo`",
            end: "# END sshca principal mappings")
        public static let hostCertificates = BlockMarkers(
            begin: "# BEGIN sshca host certificates: written by `sshca host cert`",
            end: "# END sshca host certificates")
    }

    public init(path: String) throws(SSHCAError) {
        self.path = path
        self.text = try Files.readText(path, maximumBytes: 4 << 20, what: "sshd configuration")
    }

    /// Directives in order, before the first Match (later ones are conditional), with line numbers.
    var globalDirectives: [(keyword: String, arguments: String, line: Int)] {
        var out: [(String, String, Int)] = []
        for (index, raw) in configLines(text).enumerated() {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let keyword = String(line.prefix { $0 != " " && $0 != "\t" && $0 != "=" })
            let rest = line.dropFirst(keyword.count).drop { $0 == " " || $0 == "\t" || $0 == "=" }
            if keyword.lowercased() == "match" { break }
            out.append((keyword.lowercased(), String(rest), index + 1))
        }
        return out
    }

    /// The directory and file pattern of the first Include sshd reads before anything else that
    /// matters, when it is a plain `DIR/*.conf`-style glob whose directory exists.
    public var dropInDirectory: (directory: String, pattern: String)? {
        for directive in globalDirectives where directive.keyword == "include" {
            for argument in directive.arguments.split(separator: " ") {
                var target = String(argument)
                if !target.hasPrefix("/") { target = Files.parentDirectory(of: path) + "/" + target }
                let directory = Files.parentDirectory(of: target)
                let pattern = Files.baseName(of: target)
                if pattern.contains("*"), !directory.contains("*"), Files.isDirectory(directory) {
                    return (directory, pattern)
                }
            }
            // sshd reads the first Include in place; a later one is read after other settings.
            return nil
        }
        return nil
    }

    /// The text with a managed block removed (for undo and re-planning).
    public func textWithoutManagedBlock(_ markers: BlockMarkers = .setup) -> String {
        var lines: [String] = []
        var inside = false
        for line in configLines(text) {
            // An editor may have turned the file's line ends into CRLF.
            let bare = line.hasSuffix("\r") ? String(line.dropLast()) : line
            if bare == markers.begin { inside = true; continue }
            if inside { if bare == markers.end { inside = false }; continue }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// `body` placed as a managed block before the first directive of the file (or, with
    /// `atEnd`, after the last line), replacing an earlier block with the same markers.
    public func withManagedBlock(_ body: String, _ markers: BlockMarkers = .setup, atEnd: Bool = false) -> String {
        SSHDConfigFile(path: path, text: textWithoutManagedBlock(markers)).inserting(body, markers, atEnd: atEnd)
    }

    public init(path: String, text: String) {
        self.path = path
        self.text = text
    }

    private func inserting(_ body: String, _ markers: BlockMarkers, atEnd: Bool) -> String {
        var lines = configLines(text)
        if atEnd {
            while lines.last == "" { lines.removeLast() }
            lines += [markers.begin] + body.split(whereSeparator: isLineBreak).map(String.init) + [markers.end, ""]
            return lines.joined(separator: "\n")
        }
        let firstDirective = lines.firstIndex { line in
            let t = line.trimmingCharacters(in: " \t\r")
            return !t.isEmpty && !t.hasPrefix("#")
        } ?? lines.count
        let block = [markers.begin] + body.split(whereSeparator: isLineBreak).map(String.init) + [markers.end]
        lines.insert(contentsOf: block, at: firstDirective)
        return lines.joined(separator: "\n")
    }
}


/// Runs sshd's own checks: `sshd -t` (does the configuration load?) and `sshd -T` (the
/// effective values, for a given connection with -C).
public struct SSHDCheck: Sendable {
    public var sshdPath: String

    public init(sshdPath: String = "/usr/sbin/sshd") {
        self.sshdPath = sshdPath
    }

    public func validate(configPath: String) throws(SSHCAError) {
        let result = Subprocess.run(sshdPath, ["-t", "-f", configPath])
        guard result.status == 0 else {
            throw SSHCAError(.badConfig, "sshd -t rejects \(configPath): \(result.output.trimmingCharacters(in: " \n"))")
        }
    }

    /// Every value sshd -T prints for a keyword that may repeat (HostKey, HostCertificate).
    public func all(configPath: String, keyword: String) throws(SSHCAError) -> [String] {
        try dump(configPath: configPath, connection: nil).filter { $0.keyword == keyword }.map(\.value)
    }

    /// Effective settings, keyword (lower case) to value, optionally for a connection spec
    /// like "user=deploy,host=localhost,addr=127.0.0.1".
    public func effective(configPath: String, connection: String? = nil) throws(SSHCAError) -> [String: String] {
        var values: [String: String] = [:]
        for setting in try dump(configPath: configPath, connection: connection) where values[setting.keyword] == nil {
            values[setting.keyword] = setting.value
        }
        return values
    }

    /// `sshd -T` (with -C for a connection): every line as keyword (lower case) and value.
    private func dump(configPath: String, connection: String?) throws(SSHCAError) -> [(keyword: String, value: String)] {
        var arguments = ["-T", "-f", configPath]
        if let connection { arguments += ["-C", connection] }
        let result = Subprocess.run(sshdPath, arguments)
        guard result.status == 0 else {
            throw SSHCAError(.badConfig, "sshd -T cannot read \(configPath): \(result.output.trimmingCharacters(in: " \n"))")
        }
        return Self.settings(dump: result.output)
    }

    /// The lines of `sshd -T` as keyword (lower case) and value (outside text: fuzzed).
    /// The keyword ends at the first space character, found among the Unicode scalars: split by
    /// Characters, a space followed by a combining mark is one Character and no separator (found
    /// by fuzzing: the keyword then held the space).
    public static func settings(dump output: String) -> [(keyword: String, value: String)] {
        output.split(whereSeparator: isLineBreak).compactMap { line in
            let scalars = line.unicodeScalars.drop { $0 == " " }
            guard !scalars.isEmpty else { return nil }
            guard let space = scalars.firstIndex(of: " ") else { return (String(scalars).lowercased(), "") }
            return (String(scalars[..<space]).lowercased(), String(scalars[scalars.index(after: space)...]))
        }
    }
}

/// Runs a program and collects its standard output and error together.
enum Subprocess {
    static func run(_ program: String, _ arguments: [String]) -> (status: Int32, output: String) {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return (255, "cannot create a pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, nil, argv, environ)
        close(pipeFDs[1])
        guard spawned == 0 else {
            close(pipeFDs[0])
            return (255, "cannot run \(program): \(String(cString: strerror(spawned)))")
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(pipeFDs[0], &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output.append(contentsOf: buffer[0..<n])
        }
        close(pipeFDs[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : 255, String(decoding: output, as: UTF8.self))
    }
}

/// Line breaks in configuration text. Swift reads "\r\n" as one Character, so splitting on "\n"
/// alone would leave a CRLF file (or a lone CR before a newline) as one long line.
/// The lines of a configuration file as sshd reads them: split at "\n" only, so a "\r" stays in
/// its line and joining the lines with "\n" gives back the same bytes (splitting at Characters
/// would join a line's last "\r" with the "\n" into one line break and lose it on the way back).
func configLines(_ text: String) -> [String] {
    text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
}

func isLineBreak(_ character: Character) -> Bool {
    character == "\n" || character == "\r\n"
}
