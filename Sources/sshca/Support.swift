import Common
import ArgumentParser
import Authority
import SSHFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// sysexits(3) codes scripts can rely on.
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
}

/// Options every command that touches the CA home shares.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The CA directory (default: $SSHCA_HOME, else ./ca-data).", valueName: "dir"))
    var home: String?

    var caHome: CAHome { CAHome.resolve(home) }
}

struct PassphraseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Read the CA key passphrase from the first line of this file (default: $SSHCA_PASSPHRASE_FILE; otherwise asked on the terminal).", valueName: "file"))
    var passphraseFile: String?

    var source: PassphraseSource { Self.source(file: passphraseFile) }

    static func source(file: String?) -> PassphraseSource {
        if let file = file ?? Environment.value("SSHCA_PASSPHRASE_FILE"), !file.isEmpty {
            return .file(file)
        }
        return PassphraseSource { () throws(SSHCAError) -> [UInt8] in
            try Terminal.readPassphrase(prompt: "Passphrase for the CA key: ")
        }
    }
}

enum Terminal {
    static var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

    /// Reads a passphrase from /dev/tty with echo off.
    static func readPassphrase(prompt: String) throws(SSHCAError) -> [UInt8] {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw SSHCAError(.key, "the CA key needs a passphrase and there is no terminal to ask on; give --passphrase-file FILE or set $SSHCA_PASSPHRASE_FILE")
        }
        defer { close(fd) }
        var saved = termios()
        let haveTermios = tcgetattr(fd, &saved) == 0
        if haveTermios {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer {
            if haveTermios { tcsetattr(fd, TCSAFLUSH, &saved) }
            _ = write(fd, "\n", 1)
        }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0a, line.count < 4096 {
            line.append(byte)
        }
        if line.last == 0x0d { line.removeLast() }
        guard !line.isEmpty else { throw SSHCAError(.badInput, "empty passphrase") }
        return line
    }
}

/// Reads a file argument, "-" meaning standard input.
func readInput(_ path: String, maximumBytes: Int, what: String) throws(SSHCAError) -> [UInt8] {
    if path == "-" {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(STDIN_FILENO, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
            guard out.count <= maximumBytes else {
                throw SSHCAError(.badInput, "standard input is larger than \(maximumBytes) bytes; is it the right \(what)?")
            }
        }
        return out
    }
    return try Files.read(path, maximumBytes: maximumBytes, what: what)
}

func printError(_ message: String) {
    FileHandleLite.standardError.write("error: \(message)\n")
}

func printNote(_ message: String) {
    FileHandleLite.standardError.write(message + "\n")
}

enum FileHandleLite {
    case standardError, standardOutput
    func write(_ text: String) {
        let fd = self == .standardError ? STDERR_FILENO : STDOUT_FILENO
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }
}

/// Runs a command body, turning the CA's errors into a message on stderr and an exit code.
func reportingErrors(failureCode: Int32 = ExitStatus.failure, _ body: () throws -> Void) throws {
    do { try body() } catch { throw reported(error, failureCode: failureCode) }
}

/// `reportingErrors` for the commands that wait on the ledger or the network.
func reportingErrors(failureCode: Int32 = ExitStatus.failure, _ body: () async throws -> Void) async throws {
    do { try await body() } catch { throw reported(error, failureCode: failureCode) }
}

/// What a command throws for an error of its body: the CA's and the format's errors are printed
/// and become an exit code (65 for bad input); anything else (ArgumentParser's) passes through.
private func reported(_ error: any Error, failureCode: Int32) -> any Error {
    switch error {
    case let error as SSHCAError:
        printError(error.reason)
        return ExitCode(error.isInputError ? ExitStatus.dataError : failureCode)
    case let error as SSHFormatError:
        printError(error.description)
        return ExitCode(ExitStatus.dataError)
    default:
        return error
    }
}

func unixNow() -> UInt64 {
    UInt64(max(0, time(nil)))
}

/// Help text as written in the source, reflowed for ArgumentParser: lines of a prose paragraph
/// are joined (it wraps them to the terminal), while indented lines (examples) stay as they are.
func helpText(_ text: String) -> String {
    var out: [String] = []
    var paragraph: [Substring] = []
    func flush() {
        if !paragraph.isEmpty { out.append(paragraph.joined(separator: " ")); paragraph = [] }
    }
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.isEmpty || line.hasPrefix(" ") {
            flush()
            out.append(String(line))
        } else {
            paragraph.append(line)
        }
    }
    flush()
    return out.joined(separator: "\n")
}
