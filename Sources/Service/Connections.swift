import Common
import Authority
import Logging
import NIOCore
import HTTPTypes
import NIOHTTPTypes
import HummingbirdCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Addresses and CIDR blocks, matched against a peer's address (`[service] trusted_proxies`).
struct AddressBlocks: Sendable {
    struct Block: Sendable { var bytes: [UInt8]; var prefix: Int }
    let blocks: [Block]

    /// The entries were checked when the configuration was read (IssuanceRules.checkSourceAddresses).
    init(_ entries: [String]) {
        blocks = entries.compactMap { entry in
            let parts = entry.split(separator: "/", maxSplits: 1)
            guard let bytes = Self.bytes(String(parts[0])) else { return nil }
            let prefix = parts.count == 2 ? Int(parts[1]) ?? bytes.count * 8 : bytes.count * 8
            return Block(bytes: bytes, prefix: prefix)
        }
    }

    var isEmpty: Bool { blocks.isEmpty }

    /// An address as bytes: 4 for IPv4, 16 for IPv6 (an IPv4-mapped IPv6 address as its IPv4).
    static func bytes(_ address: String) -> [UInt8]? {
        var v4 = [UInt8](repeating: 0, count: 4), v6 = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, address, &v4) == 1 { return v4 }
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        if v6[0..<10].allSatisfy({ $0 == 0 }) && v6[10] == 0xff && v6[11] == 0xff { return Array(v6[12...]) }
        return v6
    }

    func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address) else { return false }
        return blocks.contains { block in
            guard block.bytes.count == bytes.count else { return false }
            var bits = block.prefix
            for i in 0..<bytes.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
                if bytes[i] & mask != block.bytes[i] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    /// The client behind a chain of trusted proxies: from the right of X-Forwarded-For, the
    /// first address that is not itself a trusted proxy (entries left of it could be forged by
    /// the client). Without trusted proxies, or from a peer that is not one, the peer itself.
    func client(peer: String, forwardedFor: String?) -> String {
        guard contains(peer), let forwardedFor else { return peer }
        var client = peer
        for entry in forwardedFor.split(separator: ",").reversed() {
            let candidate = entry.trimmingCharacters(in: " \t")
            guard Self.bytes(candidate) != nil else { return client }
            client = candidate
            if !contains(candidate) { return candidate }
        }
        return client
    }
}

/// Open connections, per client address and in all, shared by every connection's guard.
final class ConnectionCounts: Sendable {
    private let state = Mutex<(total: Int, perAddress: [String: Int])>((0, [:]))
    let perAddressLimit: Int
    let totalLimit: Int

    init(perAddressLimit: Int, totalLimit: Int) {
        self.perAddressLimit = perAddressLimit
        self.totalLimit = totalLimit
    }

    /// The most connections the process can hold: its descriptor limit, less room for the
    /// ledger, the KRL and the listening socket.
    static func descriptorBudget() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        let soft = Int(clamping: min(limit.rlim_cur, 1 << 20))
        return max(16, soft - 64)
    }

    /// Counts a new connection, or says why it must be closed. `address` nil: not counted per
    /// address (a trusted proxy).
    func open(_ address: String?) -> String? {
        state.withLock { s in
            guard s.total < totalLimit else { return "the service holds \(totalLimit) connections, its limit" }
            if let address {
                let held = s.perAddress[address, default: 0]
                guard held < perAddressLimit else { return "\(address) holds \(perAddressLimit) connections (connections_per_address)" }
                s.perAddress[address] = held + 1
            }
            s.total += 1
            return nil
        }
    }

    func close(_ address: String?) {
        state.withLock { s in
            s.total -= 1
            if let address {
                let held = s.perAddress[address, default: 1] - 1
                s.perAddress[address] = held > 0 ? held : nil
            }
        }
    }

    var total: Int { state.withLock { $0.total } }
}

/// One per connection, after HTTP decoding: counts the connection against its address (closing
/// it at once past the limits), and closes it when a request is not complete within the
/// request timeout (a body sent a byte at a time, or a Content-Length that never arrives).
/// Idle connections and slow headers are closed by Hummingbird's idle timeout, set to the same.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let counts: ConnectionCounts
    let trustedProxies: AddressBlocks
    let requestTimeout: TimeAmount
    let logger: Logger
    private var counted: (address: String?, open: Bool) = (nil, false)
    private var deadline: Scheduled<Void>?

    init(counts: ConnectionCounts, trustedProxies: AddressBlocks, requestTimeout: TimeAmount, logger: Logger) {
        self.counts = counts
        self.trustedProxies = trustedProxies
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let address: String? = trustedProxies.contains(peer) ? nil : ChallengeStore.client(of: peer)
        if let refusal = counts.open(address) {
            logger.warning("connection refused", metadata: ["address": .string(peer), "reason": .string(refusal)])
            context.close(promise: nil)
            return
        }
        counted = (address, true)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if counted.open {
            counted.open = false
            counts.close(counted.address)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handlerRemoved(context: context)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            let channel = context.channel
            let timeout = requestTimeout
            let logger = logger
            deadline = context.eventLoop.scheduleTask(in: timeout) {
                logger.info("connection closed", metadata: ["address": .string(channel.remoteAddress?.ipAddress ?? "unknown"),
                                                            "reason": .string("the request was not complete within \(timeout.nanoseconds / 1_000_000_000) s (request_timeout)")])
                channel.close(promise: nil)
            }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }
}
