public import SSHFormat

/// Something that signs with a CA key: a key held in this process, or one held by ssh-agent.
public protocol Signer: Sendable {
    var publicKey: PublicKey { get }
    func sign(_ data: [UInt8]) throws(CryptoError) -> SSHSignature
}

/// Signs in-process with a private key held by libcrypto.
public struct OpenSSLSigner: Signer {
    public let key: PrivateKey
    public init(key: PrivateKey) { self.key = key }
    public var publicKey: PublicKey { key.publicKey }
    public func sign(_ data: [UInt8]) throws(CryptoError) -> SSHSignature {
        try key.sign(data)
    }
}
