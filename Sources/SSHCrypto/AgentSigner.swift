public import SSHFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A minimal ssh-agent client (draft-miller-ssh-agent): list identities and sign.
public struct SSHAgentClient: Sendable {
    public let socketPath: String

    static let requestIdentities: UInt8 = 11
    static let identitiesAnswer: UInt8 = 12
    static let signRequest: UInt8 = 13
    static let signResponse: UInt8 = 14
    static let rsaSHA2_512: UInt32 = 4

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The agent named by $SSH_AUTH_SOCK.
    public static func fromEnvironment() throws(CryptoError) -> SSHAgentClient {
        guard let raw = getenv("SSH_AUTH_SOCK"), case let path = String(cString: raw), !path.isEmpty else {
            throw CryptoError(.agent, "no ssh-agent: SSH_AUTH_SOCK is not set (start one with eval \"$(ssh-agent)\" and add the CA key with ssh-add)")
        }
        return SSHAgentClient(socketPath: path)
    }

    public func identities() throws(CryptoError) -> [(key: Data, comment: String)] {
        try Self.identities(reply: try request(type: Self.requestIdentities, payload: []))
    }

    /// Parses an SSH_AGENT_IDENTITIES_ANSWER (outside bytes: fuzzed). At most 1024 keys.
    public static func identities(reply: [UInt8]) throws(CryptoError) -> [(key: Data, comment: String)] {
        do {
            var r = SSHReader(reply)
            guard try r.readByte() == Self.identitiesAnswer else {
                throw CryptoError(.agent, "ssh-agent refused to list its keys")
            }
            let count = try r.readUInt32()
            var result: [(Data, String)] = []
            for _ in 0..<min(count, 1024) {
                let blob = Data(try r.readString())
                let comment = String(decoding: try r.readString(), as: UTF8.self)
                result.append((blob, comment))
            }
            return result
        } catch let error as CryptoError {
            throw error
        } catch {
            throw CryptoError(.agent, "ssh-agent sent a malformed identity list: \(error)")
        }
    }

    public func sign(keyBlob: Data, data: [UInt8], flags: UInt32) throws(CryptoError) -> SSHSignature {
        var w = SSHWriter(reservingCapacity: data.count + keyBlob.count + 16)
        w.writeString(keyBlob)
        w.writeString(data)
        w.writeUInt32(flags)
        return try Self.signature(reply: try request(type: Self.signRequest, payload: w.bytes))
    }

    /// Parses an SSH_AGENT_SIGN_RESPONSE (outside bytes: fuzzed).
    public static func signature(reply: [UInt8]) throws(CryptoError) -> SSHSignature {
        var r = SSHReader(reply)
        guard let type = try? r.readByte(), type == Self.signResponse,
              let blob = try? r.readString(), let signature = try? SSHSignature(blob: blob) else {
            throw CryptoError(.agent, "ssh-agent refused to sign with the CA key (is it still loaded? was confirmation denied?)")
        }
        return signature
    }

    static let success: UInt8 = 6
    static let removeIdentity: UInt8 = 18
    static let addIdentityConstrained: UInt8 = 25
    static let constrainLifetime: UInt8 = 1

    /// Adds an Ed25519 key with its certificate (as `ssh-add -t` does for a key with a
    /// -cert.pub beside it); the agent forgets it after `lifetime` seconds.
    public func addCertificate(_ certificate: Certificate, ed25519Seed seed: Data, comment: String, lifetime: UInt32) throws(CryptoError) {
        guard case .ed25519(let pk) = certificate.body.publicKey else {
            throw CryptoError(.unsupportedKey, "only Ed25519 login keys are added to the agent")
        }
        var w = SSHWriter(reservingCapacity: 1024)
        w.writeString(certificate.typeName)
        w.writeString(certificate.bytes)
        w.writeString(pk)
        w.writeString(seed + pk)
        w.writeString(comment)
        w.writeByte(Self.constrainLifetime)
        w.writeUInt32(max(lifetime, 1))
        let reply = try request(type: Self.addIdentityConstrained, payload: w.bytes)
        guard reply.first == Self.success else {
            throw CryptoError(.agent, "ssh-agent refused the certificate (a locked agent, or one that does not take lifetimes?)")
        }
    }

    /// Removes one identity (a key or certificate blob); false if the agent did not hold it.
    @discardableResult
    public func remove(keyBlob: Data) throws(CryptoError) -> Bool {
        var w = SSHWriter(reservingCapacity: keyBlob.count + 8)
        w.writeString(keyBlob)
        return try request(type: Self.removeIdentity, payload: w.bytes).first == Self.success
    }

    private func request(type: UInt8, payload: [UInt8]) throws(CryptoError) -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CryptoError(.agent, "cannot create a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw CryptoError(.agent, "SSH_AUTH_SOCK path is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            throw CryptoError(.agent, "cannot reach ssh-agent at \(socketPath): \(String(cString: strerror(errno)))")
        }
        var w = SSHWriter(reservingCapacity: payload.count + 5)
        w.writeUInt32(UInt32(payload.count + 1))
        w.writeByte(type)
        w.writeRaw(payload)
        try writeAll(fd, w.bytes)
        let header = try readExactly(fd, 4)
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard length > 0, length <= 256 * 1024 else { throw CryptoError(.agent, "ssh-agent sent a reply of \(length) bytes") }
        return try readExactly(fd, length)
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(CryptoError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CryptoError(.agent, "writing to ssh-agent failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    private func readExactly(_ fd: Int32, _ count: Int) throws(CryptoError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CryptoError(.agent, "ssh-agent closed the connection") }
            got += n
        }
        return buffer
    }
}

/// Signs through ssh-agent, as `ssh-keygen -U` does: the CA private key never touches this process.
public struct AgentSigner: Signer {
    public let agent: SSHAgentClient
    public let publicKey: PublicKey

    /// Fails unless the agent holds the key, so a missing key is reported before any work.
    public init(agent: SSHAgentClient, publicKey: PublicKey) throws(CryptoError) {
        self.agent = agent
        self.publicKey = publicKey
        let blob = publicKey.blob
        guard try agent.identities().contains(where: { $0.key == blob }) else {
            throw CryptoError(.keyNotInAgent, "the CA key \(publicKey.fingerprint) is not loaded in ssh-agent at \(agent.socketPath); add it with: sshca ca-key --export-private | ssh-add -")
        }
    }

    public func sign(_ data: [UInt8]) throws(CryptoError) -> SSHSignature {
        let flags: UInt32 = if case .rsa = publicKey { SSHAgentClient.rsaSHA2_512 } else { 0 }
        let signature = try agent.sign(keyBlob: publicKey.blob, data: data, flags: flags)
        if case .rsa = publicKey, signature.algorithm != "rsa-sha2-512" {
            throw CryptoError(.agent, "ssh-agent signed with \(signature.algorithm) instead of rsa-sha2-512; OpenSSH refuses SHA-1 CA signatures")
        }
        // An agent could hand back anything: check before it goes into a certificate.
        guard publicKey.verify(signature, over: data).isValid else {
            throw CryptoError(.agent, "ssh-agent returned a signature that does not verify against the CA key")
        }
        return signature
    }
}
