import Ledger
import Testing

/// The in-memory challenge store a single node uses, past the sizes where it reorganises itself
/// (its issue-order queue compacts after 1,024 pops and is rebuilt past twice the capacity).
@Suite("in-memory login challenges")
struct MemoryStateTests {
    @Test("4,000 challenges over 40 rounds, over capacity in each: counts stay exact, nothing outlives its expiry, fresh nonces answer once")
    func manyRounds() {
        let capacity = 40
        let store = MemoryLoginChallenges(capacity: capacity)
        var now: UInt64 = 1000
        for round in 0..<40 {
            // 100 clients open one each (one lifetime for all, as the service gives): past the
            // capacity, older ones are dropped; every other one is answered at once.
            var answered = 0
            for i in 0..<100 {
                let nonce = "r\(round)-\(i)"
                #expect(opened(store.open(nonce, identity: "u\(i)", client: "10.0.\(round).\(i)", expires: now + 10, now: now)))
                #expect(store.count <= capacity)
                if i % 2 == 0, store.redeem(nonce, identity: "u\(i)", now: now) == .valid { answered += 1 }
            }
            #expect(answered == 50, "round \(round): a challenge just opened did not answer")
            #expect(store.redeem("r\(round)-99", identity: "u99", now: now) == .valid)
            now += 11
            #expect(store.openCount(client: "10.0.\(round).97", now: now) == 0, "round \(round): an expired challenge still counts")
            #expect(store.count == 0, "round \(round): \(store.count) challenges outlived their expiry")
        }
        #expect(opened(store.open("last", identity: "alice", client: "192.0.2.1", expires: now + 10, now: now)))
        #expect(store.redeem("last", identity: "alice", now: now + 1) == .valid)
        #expect(store.redeem("last", identity: "alice", now: now + 1) == .unknown)
    }
}
