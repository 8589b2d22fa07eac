import Common
import Ledger
import Foundation
import Testing
import TestSupport
@testable import Service

/// The login-challenge store in process: answered challenges free their client's place, a full
/// store takes from the largest holder, and IPv6 clients count by /64.
@Suite("service: challenge store")
struct ChallengeStoreTests {
    @Test("answered challenges no longer count against their address: 1,000 logins in a row from one address")
    func redeemReleases() async throws {
        let store = ChallengeStore(lifetime: 120)
        for i in 0..<1000 {
            guard case .success(let (nonce, _)) = try await store.issue(for: "alice", address: "192.0.2.1", now: 1000) else {
                Issue.record("challenge \(i) from one address was refused")
                return
            }
            #expect(try await store.redeem(nonce, identity: "alice", now: 1001) == .valid)
        }
        #expect(try await store.openCount(client: "192.0.2.1", now: 1001) == 0)
        #expect(try await store.count == 0)
    }

    @Test("unanswered challenges: 100 per address, then 429 until they expire; a redeemed nonce is refused a second time")
    func perAddressLimit() async throws {
        let store = ChallengeStore(lifetime: 120)
        var nonces: [String] = []
        for _ in 0..<ChallengeStore.perAddressLimit {
            guard case .success(let (nonce, _)) = try await store.issue(for: "bob", address: "192.0.2.2", now: 1000) else { Issue.record("refused early"); return }
            nonces.append(nonce)
        }
        guard case .failure(.addressBusy) = try await store.issue(for: "bob", address: "192.0.2.2", now: 1000) else {
            Issue.record("the 101st open challenge was given"); return
        }
        #expect(try await store.redeem(nonces[0], identity: "bob", now: 1001) == .valid)
        #expect(try await store.redeem(nonces[0], identity: "bob", now: 1001) == .unknown)
        guard case .success = try await store.issue(for: "bob", address: "192.0.2.2", now: 1002) else { Issue.record("a freed place was not given"); return }
        // All expire together after the lifetime.
        guard case .success = try await store.issue(for: "bob", address: "192.0.2.2", now: 1000 + 121) else { Issue.record("expired ones still count"); return }
        #expect(try await store.openCount(client: "192.0.2.2", now: 1121) == 2)
        #expect(try await store.redeem(nonces[1], identity: "bob", now: 1121) == .unknown, "an expired challenge was still there")
    }

    @Test("a full store (20,000 open challenges from 200 addresses; the service's is 100,000): a client from a new address still gets one (the largest holder gives way), and memory stays bounded")
    func floodDoesNotStarve() async throws {
        // The eviction does not depend on the size; a fifth of the service's keeps this test
        // from loading the shared cores while timing-sensitive tests run beside it.
        #expect(ChallengeStore.defaultCapacity == 100_000)
        let capacity = 20_000
        let store = ChallengeStore(lifetime: 120, capacity: capacity)
        for a in 0..<(capacity / ChallengeStore.perAddressLimit) {
            for _ in 0..<ChallengeStore.perAddressLimit {
                _ = try await store.issue(for: "mallory", address: "10.0.\(a / 256).\(a % 256)", now: 1000)
            }
        }
        #expect(try await store.count == capacity)
        for i in 0..<1000 {
            guard case .success(let (nonce, _)) = try await store.issue(for: "carol", address: "198.51.100.\(i % 200)", now: 1001) else {
                Issue.record("a newcomer was refused while the store was full"); return
            }
            #expect(try await store.redeem(nonce, identity: "carol", now: 1002) == .valid)
        }
        // A flood that goes on only takes from itself.
        for i in 0..<5_000 { _ = try await store.issue(for: "mallory", address: "10.9.\(i % 50).9", now: 1003) }
        #expect(try await store.count <= capacity)
        guard case .success = try await store.issue(for: "carol", address: "198.51.100.7", now: 1004) else { Issue.record("refused after the flood"); return }
    }

    @Test("IPv6 clients count by their /64")
    func ipv6Grouping() async throws {
        #expect(ChallengeStore.client(of: "2001:db8:1:2:aaaa::1") == ChallengeStore.client(of: "2001:db8:1:2:bbbb::9"))
        #expect(ChallengeStore.client(of: "2001:db8:1:2::1") != ChallengeStore.client(of: "2001:db8:1:3::1"))
        #expect(ChallengeStore.client(of: "192.0.2.1") == "192.0.2.1")
        let store = ChallengeStore(lifetime: 120)
        for i in 0..<ChallengeStore.perAddressLimit { _ = try await store.issue(for: "x", address: "2001:db8::\(i + 1)", now: 1) }
        guard case .failure(.addressBusy) = try await store.issue(for: "x", address: "2001:db8::ffff", now: 1) else {
            Issue.record("one /64 got more than the per-address limit"); return
        }
    }

    /// Shared state that is away (a database that went down), for both stores.
    struct Away: LoginChallenges, FailureCounts {
        struct Down: Error {}
        func open(_ nonce: String, identity: String, client: String, expires: UInt64, now: UInt64) async throws -> Result<Void, ChallengeRefusal> { throw Down() }
        func redeem(_ nonce: String, identity: String, now: UInt64) async throws -> ChallengeVerdict { throw Down() }
        func openCount(client: String, now: UInt64) async throws -> Int { throw Down() }
        var count: Int { get async throws { throw Down() } }
        func isLimited(_ keys: [String], limit: Int, window: UInt64, now: UInt64) async throws -> Bool { throw Down() }
        func recordFailure(_ keys: [String], limit: Int, window: UInt64, now: UInt64) async throws { throw Down() }
    }

    @Test("a shared store that fails is a ledger error (the service answers 503): no challenge, no verdict and no 'not limited' comes out of it")
    func storeAway() async throws {
        let challenges = ChallengeStore(lifetime: 120, store: Away())
        await #expect(throws: SSHCAError.self) { _ = try await challenges.issue(for: "alice", address: "192.0.2.1", now: 1) }
        do {
            let verdict = try await challenges.redeem("n", identity: "alice", now: 1)
            Issue.record("a store that is away gave a verdict: \(verdict)")
        } catch {
            #expect(error.code == .ledger)
        }
        let limiter = FailureLimiter(limit: 5, counts: Away())
        do {
            let limited = try await limiter.isLimited(["user:alice"], now: 1)
            Issue.record("a count that could not be read said limited=\(limited)")
        } catch {
            #expect(error.code == .ledger)
        }
        do {
            try await limiter.recordFailure(["user:alice"], now: 1)
            Issue.record("a failure that could not be counted was taken as counted")
        } catch {
            #expect(error.code == .ledger)
        }
    }
}
