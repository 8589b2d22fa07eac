#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File access with the guarantees a CA needs: bounded reads, atomic replacement (temp file,
/// fsync, rename, fsync of the directory) and explicit modes.
public enum Files {
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The permission bits of a file, or nil if it does not exist.
    public static func mode(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
    }

    public static func read(_ path: String, maximumBytes: Int = 1 << 20, what: String = "file") throws(SSHCAError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw SSHCAError(.io, "\(what) \(path) does not exist") }
            throw SSHCAError(.io, "cannot read \(what) \(path): \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw SSHCAError(.io, "\(what) \(path) is a directory, not a file")
        }
        return try readAll(fd, path: path, maximumBytes: maximumBytes, what: what)
    }

    /// A file read as sshd reads files it trusts, for commands that run as root on a path
    /// someone else may control (krl-sync --from, a user's AuthorizedPrincipalsFile): no
    /// directory on the way may be a link owned by anyone but root, the file itself is no link
    /// and a regular file (a FIFO would hang the reader), owned by one of `owners`, writable by
    /// nobody else, and at most `maximumBytes`.
    public static func readTrusted(_ path: String, maximumBytes: Int, what: String, owners: Set<uid_t>) throws(SSHCAError) -> [UInt8] {
        var prefix = path.hasPrefix("/") ? "" : "."
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        for component in components.dropLast() {
            prefix += "/" + component
            var info = stat()
            if lstat(prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK, info.st_uid != 0 {
                throw SSHCAError(.unsafeFile, "\(what) \(path): \(prefix) is a symbolic link owned by uid \(info.st_uid), not by root; not following it")
            }
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw SSHCAError(.io, "\(what) \(path) does not exist") }
            if e == ELOOP { throw SSHCAError(.unsafeFile, "\(what) \(path) is a symbolic link; not following it") }
            throw SSHCAError(.io, "cannot read \(what) \(path): \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw SSHCAError(.unsafeFile, "\(what) \(path) is not a regular file (a FIFO, device or directory); refusing to read it")
        }
        guard owners.contains(st.st_uid) else {
            throw SSHCAError(.unsafeFile, "\(what) \(path) is owned by uid \(st.st_uid); only \(owners.sorted().map { "uid \($0)" }.joined(separator: " or ")) may own it")
        }
        guard st.st_mode & 0o022 == 0 else {
            throw SSHCAError(.unsafeFile, "\(what) \(path) is writable by its group or by others (mode \(String(st.st_mode & 0o7777, radix: 8))); chmod go-w it")
        }
        guard Int(st.st_size) <= maximumBytes else {
            throw SSHCAError(.badInput, "\(what) \(path) is larger than \(maximumBytes) bytes; is it the right file?")
        }
        return try readAll(fd, path: path, maximumBytes: maximumBytes, what: what)
    }

    private static func readAll(_ fd: Int32, path: String, maximumBytes: Int, what: String) throws(SSHCAError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SSHCAError(.io, "cannot read \(what) \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out.append(contentsOf: buffer[0..<n])
            if out.count > maximumBytes {
                throw SSHCAError(.badInput, "\(what) \(path) is larger than \(maximumBytes) bytes; is it the right file?")
            }
        }
        return out
    }

    public static func readText(_ path: String, maximumBytes: Int = 1 << 20, what: String = "file") throws(SSHCAError) -> String {
        let bytes = try read(path, maximumBytes: maximumBytes, what: what)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SSHCAError(.badInput, "\(what) \(path) is not text (it is not valid UTF-8)")
        }
        return text
    }

    /// How much a replacement must survive.
    public enum Durability: Sendable {
        /// fsync the file and its directory: after a power loss the file is the old or the new one.
        /// For what cannot be recreated or must never be seen torn after a crash (keys, KRLs).
        case synced
        /// Rename only: readers never see a partial file, but a power loss may lose the write.
        /// For outputs the user can simply make again (a certificate written next to a key).
        case renameOnly
    }

    /// Replaces `path` atomically: a reader sees the old file or the new one, never a mix. The
    /// temp file is in the same directory.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t, durability: Durability = .synced) throws(SSHCAError) {
        try writeAtomically(path, bytes, mode: mode, durability: durability, check: nil)
    }

    /// The same, with a last check of the complete temp file before it replaces `path` (for
    /// example: does `ssh-keygen -Q` load it?). If the check throws, `path` is left untouched.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t, durability: Durability = .synced,
                                       check: ((String) throws(SSHCAError) -> Void)?) throws(SSHCAError) {
        let directory = parentDirectory(of: path)
        var template = Array("\(directory)/.\(baseName(of: path)).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw SSHCAError(.io, "cannot create a file in \(directory): \(String(cString: strerror(errno)))")
        }
        let tempPath = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var committed = false
        defer {
            if !committed { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw SSHCAError(.io, "cannot set the mode of \(tempPath): \(String(cString: strerror(errno)))") }
            try writeAll(fd, bytes, path: path)
            if durability == .synced {
                guard fsync(fd) == 0 else { throw SSHCAError(.io, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
            }
        }
        try check?(tempPath)
        guard rename(tempPath, path) == 0 else {
            throw SSHCAError(.io, "cannot replace \(path): \(String(cString: strerror(errno)))")
        }
        committed = true
        if durability == .synced { syncDirectory(directory) }
    }

    /// Creates a new file that must not exist yet (O_EXCL), for key material.
    public static func createExclusive(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(SSHCAError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let e = errno
            if e == EEXIST { throw SSHCAError(.home, "\(path) already exists; refusing to overwrite it") }
            throw SSHCAError(.io, "cannot create \(path): \(String(cString: strerror(e)))")
        }
        do throws(SSHCAError) {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw SSHCAError(.io, "cannot set the mode of \(path)") }
            try writeAll(fd, bytes, path: path)
            guard fsync(fd) == 0 else { throw SSHCAError(.io, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
        } catch {
            unlink(path)
            throw error
        }
    }

    public static func makeDirectory(_ path: String, mode: mode_t) throws(SSHCAError) {
        if isDirectory(path) { return }
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if isDirectory(partial) { continue }
            guard mkdir(partial, mode) == 0 || errno == EEXIST else {
                throw SSHCAError(.io, "cannot create directory \(partial): \(String(cString: strerror(errno)))")
            }
        }
    }

    public static func remove(_ path: String) {
        unlink(path)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SSHCAError) {
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SSHCAError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
            written += n
        }
    }

    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    public static func baseName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
