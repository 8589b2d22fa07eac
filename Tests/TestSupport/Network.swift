import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let handedOutPorts = Locked(Set<UInt16>())

private func loopbackAddress(port: UInt16) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return addr
}

private var streamSocketType: Int32 {
    #if canImport(Glibc)
    return Int32(SOCK_STREAM.rawValue)
    #else
    return SOCK_STREAM
    #endif
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it; a port is never
/// handed out twice in this process). Another process may still take it before we bind:
/// callers that start servers must retry on "address already in use".
public func findFreePort() throws -> UInt16 {
    for _ in 0..<50 {
        let fd = socket(AF_INET, streamSocketType, 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        var addr = loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var out = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let got = withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard got == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let port = UInt16(bigEndian: out.sin_port)
        let fresh = handedOutPorts.withLock { $0.insert(port).inserted }
        if fresh && port > 1024 { return port }
    }
    throw POSIXError(.EADDRINUSE)
}

/// True when something accepts TCP connections on 127.0.0.1:port.
public func canConnect(port: UInt16) -> Bool {
    let fd = socket(AF_INET, streamSocketType, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = loopbackAddress(port: port)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return rc == 0
}

/// True when something accepts connections on the unix socket at `path`.
public func canConnect(unixSocket path: String) -> Bool {
    let fd = socket(AF_UNIX, streamSocketType, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: addr.sun_path)
    guard bytes.count < capacity else { return false }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return rc == 0
}
