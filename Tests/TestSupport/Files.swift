import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creates a fresh directory under the system temp dir (short path: unix socket paths must stay
/// under 108 bytes), runs `body`, then removes the directory whatever happened.
public func withTemporaryDirectory<T>(
    prefix: String = "sshca-test",
    _ body: (URL) async throws -> T
) async throws -> T {
    let dir = try makeTemporaryDirectory(prefix: prefix)
    defer { try? FileManager.default.removeItem(at: dir) }
    return try await body(dir)
}

/// A new empty directory (mode 0700) that the caller must remove.
public func makeTemporaryDirectory(prefix: String = "sshca-test") throws -> URL {
    let base = ProcessInfo.processInfo.environment["SSHCA_TEST_TMPDIR"] ?? "/tmp"
    var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { buffer -> Bool in
        mkdtemp(buffer.baseAddress!) != nil
    }
    guard created else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "mkdtemp failed: errno \(errno)"])
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return URL(fileURLWithPath: path, isDirectory: true)
}

/// A directory shared by every test in this process (for cached fixtures such as generated
/// RSA keys and CA homes); removed when the process exits.
public let sharedFixtureDirectory: URL = {
    let dir = try! makeTemporaryDirectory(prefix: "sshca-fixtures")
    removeAtExit(dir)
    return dir
}()

private let pathsToRemoveAtExit = Locked<[String]>([])
private let atexitRegistration: Void = {
    atexit {
        for path in pathsToRemoveAtExit.current {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}()

/// Removes `url` (recursively) when the test process exits normally.
public func removeAtExit(_ url: URL) {
    _ = atexitRegistration
    pathsToRemoveAtExit.withLock { $0.append(url.path) }
}

extension URL {
    /// `appendingPathComponent` without the Foundation-version-specific directory guessing.
    public func child(_ name: String) -> URL { appendingPathComponent(name, isDirectory: false) }
}

public func readText(_ url: URL) throws -> String {
    try String(decoding: Data(contentsOf: url), as: UTF8.self)
}

public func writeText(_ text: String, to url: URL, mode: Int? = nil) throws {
    try Data(text.utf8).write(to: url)
    if let mode { try setMode(mode, of: url) }
}

public func writeData(_ data: Data, to url: URL, mode: Int? = nil) throws {
    try data.write(to: url)
    if let mode { try setMode(mode, of: url) }
}

public func setMode(_ mode: Int, of url: URL) throws {
    try FileManager.default.setAttributes([.posixPermissions: NSNumber(value: mode)], ofItemAtPath: url.path)
}

public func fileMode(_ url: URL) throws -> Int {
    var st = stat()
    guard stat(url.path, &st) == 0 else {
        throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
    }
    return Int(st.st_mode) & 0o7777
}

public func fileExists(_ url: URL) -> Bool {
    FileManager.default.fileExists(atPath: url.path)
}

/// Copies a file or directory tree to `destination` (which must not exist).
public func copyItem(_ source: URL, to destination: URL) throws {
    try FileManager.default.copyItem(at: source, to: destination)
}

/// Every regular file below `root` (relative path -> contents and permission bits).
public struct DirectorySnapshot: Equatable, Sendable, CustomStringConvertible {
    public struct Entry: Equatable, Sendable {
        public var contents: Data
        public var mode: Int
    }
    public var entries: [String: Entry]

    public init(_ root: URL) throws {
        var entries: [String: Entry] = [:]
        let rootPath = root.standardizedFileURL.path
        if let enumerator = FileManager.default.enumerator(atPath: rootPath) {
            while let relative = enumerator.nextObject() as? String {
                let full = URL(fileURLWithPath: rootPath).child(relative)
                var isDir: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: full.path, isDirectory: &isDir)
                if isDir.boolValue {
                    entries[relative + "/"] = Entry(contents: Data(), mode: try fileMode(full))
                } else {
                    entries[relative] = Entry(contents: try Data(contentsOf: full), mode: try fileMode(full))
                }
            }
        }
        self.entries = entries
    }

    public var paths: [String] { entries.keys.sorted() }

    public var description: String {
        paths.map { "\($0) (\(String(entries[$0]!.mode, radix: 8)), \(entries[$0]!.contents.count) bytes)" }
            .joined(separator: "\n")
    }

    /// Paths that were added, removed or changed between `self` and `other`.
    public func differences(from other: DirectorySnapshot) -> [String] {
        Set(entries.keys).union(other.entries.keys).sorted().filter { entries[$0] != other.entries[$0] }
    }
}

/// The login name of the current user (what sshd will see).
public let currentUserName: String = {
    if let pw = getpwuid(geteuid()), let name = pw.pointee.pw_name {
        return String(cString: name)
    }
    return ProcessInfo.processInfo.environment["USER"] ?? "root"
}()

/// A passphrase file (0600) in `directory`, for `--passphrase-file`: CA keys made with
/// --no-passphrase go into a backup encrypted with it.
public func passphraseFile(in directory: URL, _ passphrase: String = "backup passphrase") throws -> URL {
    let file = directory.child("passphrase-\(UUID().uuidString)")
    try writeText(passphrase + "\n", to: file)
    chmod(file.path, 0o600)
    return file
}
