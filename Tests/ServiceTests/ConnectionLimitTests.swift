import Common
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP connection from a chosen loopback address: what a slow or idle client does, byte
/// by byte, without an HTTP library finishing the request for it.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    init(to port: UInt16, from source: String) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ParseError("socket: \(errno)") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, connected == 0 else { close(fd); throw ParseError("connect from \(source): errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Whether the service has closed this connection (a read sees end of file or a reset);
    /// false while it is open and silent.
    var closedByPeer: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET || errno == EPIPE }
            // Some bytes (an error answer): read on until the end shows.
        }
    }

    private var open = true

    /// Closes the connection now (not when the last reference goes).
    func shut() {
        if open { Glibc.close(fd); open = false }
    }

    deinit { shut() }
}

extension CAServer {
    var port: UInt16 { UInt16(url.split(separator: ":").last ?? "") ?? 0 }
}

@Suite("service: connections", .serialized)
struct ConnectionLimitTests {
    /// Replaces the `key = ...` line `sshca init` wrote in [service] with `setting`.
    static func configure(_ setting: String) -> (URL) throws -> Void {
        { home in
            let config = home.child("sshca.toml")
            let key = setting.prefix { $0 != " " }
            let lines = try readText(config).split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasPrefix(key + " =") ? Substring(setting) : $0 }
            try #require(lines.contains(Substring(setting)), "sshca init wrote no \(key)")
            try writeText(lines.joined(separator: "\n"), to: config)
        }
    }

    @Test("with ulimit -n 256 and 300 half-sent requests held open from one address, /healthz and issuance keep answering; the service closes them within request_timeout")
    func idleAndHalfSentRequests() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir, configure: Self.configure("request_timeout = \"4s\""), fileDescriptorLimit: 256)
            defer { server.stop() }
            let token = try await server.token(role: "engineer", name: "dave")
            let key = try await SSHKeygen.generate(.ed25519, at: dir.child("k"), comment: "k")
            let port = server.port
            let held: [RawConnection] = try await onOwnThread {
                try (0..<300).map { i in
                    let connection = try RawConnection(to: port, from: "127.0.0.1")
                    // Headers promising a body that never comes, or headers that never end.
                    connection.send(i % 2 == 0 ? "POST /v1/certificates HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nab"
                                               : "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    return connection
                }
            }
            let trickle = try RawConnection(to: server.port, from: "127.0.0.3")
            trickle.send("POST /v1/certificates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            let start = ContinuousClock.now
            for round in 0..<3 {
                let health = try await server.http("GET", "/healthz", from: "127.0.0.2")
                #expect(health.status == 200, "round \(round): /healthz \(health.status) with 300 idle sockets held")
                let issued = try await server.http("POST", "/v1/certificates", json: try publicKeyJSON(key),
                                                   headers: ["Authorization": "Bearer \(token)"], from: "127.0.0.2")
                #expect(issued.status == 201, "round \(round): issuance \(issued.status) \(String(decoding: issued.body, as: UTF8.self))")
                trickle.send(" ")
                try await Task.sleep(for: .milliseconds(500))
            }
            // Past request_timeout (4 s) every one of them is closed by the service, the one that
            // sends a byte of body every half second included.
            while ContinuousClock.now - start < .seconds(6) { trickle.send(" "); try await Task.sleep(for: .milliseconds(500)) }
            let (open, trickleClosed) = try await onOwnThread { (held.filter { !$0.closedByPeer }.count, trickle.closedByPeer) }
            #expect(open == 0, "\(open) of 300 idle or half-sent connections are still open after request_timeout")
            #expect(trickleClosed, "a body trickling a byte every half second kept its connection past request_timeout")
            #expect(try await server.http("GET", "/healthz").status == 200)
        }
    }

    @Test("connections_per_address: past it a new connection from that address is closed at once, others are not affected")
    func perAddressCap() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir, configure: Self.configure("connections_per_address = 20"))
            defer { server.stop() }
            let port = server.port
            var held: [RawConnection] = try await onOwnThread { try (0..<20).map { _ in try RawConnection(to: port, from: "127.0.0.4") } }
            try await Task.sleep(for: .milliseconds(300))
            let heldNow = held
            let (extraClosed, heldOpen) = try await onOwnThread {
                (try RawConnection(to: port, from: "127.0.0.4").closedByPeer, heldNow.allSatisfy { !$0.closedByPeer })
            }
            heldNow.forEach { $0.shut() }
            #expect(extraClosed, "the 21st connection from one address was kept")
            #expect(heldOpen, "the first 20 were closed")
            #expect(try await server.http("GET", "/healthz", from: "127.0.0.5").status == 200)
            held.removeAll()
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await server.http("GET", "/healthz", from: "127.0.0.4").status == 200, "the address stayed blocked after its connections closed")
        }
    }

    @Test("trusted_proxies: behind the proxy, failures are limited per forwarded client, not for everyone at once; the log names the client")
    func trustedProxies() async throws {
        try await withTemporaryDirectory { dir in
            let server = try await CAServer.start(in: dir, configure: Self.configure("trusted_proxies = [\"127.0.0.1\"]"))
            defer { server.stop() }
            let bad = "Bearer sshca_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            var statuses: [Int] = []
            for _ in 0..<12 {
                statuses.append(try await server.http("POST", "/v1/certificates", json: "{}",
                                                      headers: ["Authorization": bad, "X-Forwarded-For": "198.51.100.7"]).status)
            }
            #expect(statuses.last == 429, "\(statuses)")
            // Another client behind the same proxy, and one that puts a forged address left of its own.
            for forwarded in ["203.0.113.9", "198.51.100.7, 203.0.113.10"] {
                let other = try await server.http("POST", "/v1/certificates", json: "{}",
                                                  headers: ["Authorization": "Bearer sshca_111111111111_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "X-Forwarded-For": forwarded])
                #expect(other.status == 401, "\(forwarded): \(other.status): one client's failures limited another behind the same proxy")
            }
            let audit = try checked(try await server.sshca(["audit", "list"])).stdoutText
            #expect(audit.contains("address=198.51.100.7") && audit.contains("address=203.0.113.10") && !audit.contains("address=127.0.0.1"), "\(audit)")
            // Without trusted_proxies a forwarded header is not believed: tested by the suite's
            // other rate-limit tests, whose clients all count as 127.0.0.1.
        }
    }
}
