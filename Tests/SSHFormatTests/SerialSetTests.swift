import Testing
import SSHFormat
import TestSupport

/// The serial sets a KRL decodes into, bitmaps kept as bits, against a plain `Set` of serials.
@Suite struct SerialSetTests {
    @Test("serials as people write them: digits, from 1, one dash, low to high; anything else is nil")
    func parseRange() {
        #expect(SerialSet.parseRange("42") == 42...42)
        #expect(SerialSet.parseRange("40-49") == 40...49)
        #expect(SerialSet.parseRange("1") == 1...1)
        #expect(SerialSet.parseRange("7-7") == 7...7)
        #expect(SerialSet.parseRange("0042") == 42...42)
        #expect(SerialSet.parseRange("18446744073709551615") == UInt64.max...UInt64.max)
        for bad in ["", "0", "0-5", "9-5", "+5", "5--9", "-5", "5-", "-", "1-2-3", " 5", "5 ", "5\n",
                    "18446744073709551616", "99999999999999999999999", "\u{0665}", "５", "0x10", "1e3", "1,2"] {
            #expect(SerialSet.parseRange(bad) == nil, "\"\(bad)\" was taken")
        }
        #expect(SerialSet.rangeText(42...42) == "42" && SerialSet.rangeText(40...49) == "40-49")
        for range in [1...1, 3...9, 1...UInt64.max] { #expect(SerialSet.parseRange(SerialSet.rangeText(range)) == range) }
    }

    /// A KRL of one certificate section holding `subsections`.
    static func krl(_ subsections: [(type: UInt8, payload: [UInt8])]) -> [UInt8] {
        var section = SSHWriter()
        section.writeString([UInt8]())
        section.writeString([UInt8]())
        for subsection in subsections {
            section.writeByte(subsection.type)
            section.writeString(subsection.payload)
        }
        var krl = SSHWriter()
        krl.writeRaw(KRL.magic)
        krl.writeUInt32(1)
        krl.writeUInt64(1)
        krl.writeUInt64(0)
        krl.writeUInt64(0)
        krl.writeString([UInt8]())
        krl.writeString("")
        krl.writeByte(1)
        krl.writeString(section.bytes)
        return krl.bytes
    }

    static func bitmap(offset: UInt64, bits: [UInt64]) -> (type: UInt8, payload: [UInt8]) {
        let top = Int(bits.max() ?? 0)
        var magnitude = [UInt8](repeating: 0, count: top / 8 + 1)
        for bit in bits { magnitude[magnitude.count - 1 - Int(bit) / 8] |= 1 << (bit % 8) }
        if magnitude[0] & 0x80 != 0 { magnitude.insert(0, at: 0) }
        var w = SSHWriter()
        w.writeUInt64(offset)
        w.writeString(magnitude)
        return (0x22, w.bytes)
    }

    static func runs(of serials: Set<UInt64>) -> [ClosedRange<UInt64>] {
        var runs: [ClosedRange<UInt64>] = []
        for serial in serials.sorted() {
            if let last = runs.last, last.upperBound + 1 == serial { runs[runs.count - 1] = last.lowerBound...serial } else { runs.append(serial...serial) }
        }
        return runs
    }

    @Test("random mixes of lists, ranges and overlapping bitmaps decode to exactly the serials they name: contains, count, runs, run count, equality, re-encoding")
    func randomSectionsMatchAModel() async throws {
        // CPU work on a thread of its own, not on the test pool that other tests' waits share.
        let failures = try await onOwnThread { try Self.compareWithModel(rounds: 400) }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5))")
    }

    static func compareWithModel(rounds: Int) throws -> [String] {
        var failures: [String] = []
        func check(_ condition: Bool, _ what: @autoclosure () -> String) { if !condition { failures.append(what()) } }
        var rng = SplitMix(seed: 0x5e41a1)
        for round in 0..<rounds {
            var model = Set<UInt64>()
            var subsections: [(type: UInt8, payload: [UInt8])] = []
            // A small universe so that pieces overlap and touch often; near 2^64 in some rounds.
            let origin: UInt64 = round % 7 == 0 ? UInt64.max - 3000 : 1
            for _ in 0..<(1 + rng.next() % 8) {
                switch rng.next() % 3 {
                case 0:
                    var w = SSHWriter()
                    for _ in 0..<(1 + rng.next() % 5) {
                        let serial = origin + rng.next() % 3000
                        w.writeUInt64(serial)
                        model.insert(serial)
                    }
                    subsections.append((0x20, w.bytes))
                case 1:
                    let low = origin + rng.next() % 3000
                    let high = low + min(rng.next() % 400, origin + 2999 - low)
                    var w = SSHWriter()
                    w.writeUInt64(low)
                    w.writeUInt64(high)
                    model.formUnion(low...high)
                    subsections.append((0x21, w.bytes))
                default:
                    let offset = origin - 1 + rng.next() % 2900
                    let span = 1 + rng.next() % 700
                    let density = 1 + rng.next() % 4
                    var bits = (0..<span).filter { _ in rng.next() % density == 0 }
                    if bits.isEmpty { bits = [span - 1] }
                    if offset == 0 { bits.removeAll { $0 == 0 } }
                    bits = bits.filter { $0 <= origin + 2999 - offset }
                    if bits.isEmpty { continue }
                    for bit in bits { model.insert(offset + bit) }
                    subsections.append(Self.bitmap(offset: offset, bits: bits))
                }
            }
            let set = try KRL.parse(Self.krl(subsections)).krl.certificates[0].serials
            let expected = Self.runs(of: model)
            check(Array(set.runs) == expected, "round \(round): runs")
            check(set.runCount == expected.count, "round \(round): run count \(set.runCount), not \(expected.count)")
            check(set.count == UInt64(model.count), "round \(round): count \(set.count), not \(model.count)")
            check(set == SerialSet(serials: model), "round \(round): not equal to the set of the same serials")
            let misses = (origin - 1...origin + 3000).filter { $0 != 0 && set.contains($0) != model.contains($0) }
            check(misses.isEmpty, "round \(round): contains() is wrong for \(misses.prefix(5))")
            let again = try KRL.parse(KRL(version: 1, generatedDate: 0, certificates: [CertificateRevocations(caKey: nil, serials: set)]).encoded())
            check(again.krl.certificates.first?.serials == set, "round \(round): re-encoded set differs")
        }
        return failures
    }

    @Test("a bitmap's serial 0 and a bitmap past 2^64-1 are refused; a run covering a whole bitmap swallows it")
    func edges() throws {
        #expect(throws: SSHFormatError.self) { try KRL.parse(Self.krl([Self.bitmap(offset: 0, bits: [0, 5])])) }
        #expect(throws: SSHFormatError.self) { try KRL.parse(Self.krl([Self.bitmap(offset: .max - 2, bits: [3])])) }
        let top = try KRL.parse(Self.krl([Self.bitmap(offset: .max - 2, bits: [0, 2])])).krl.certificates[0].serials
        #expect(Array(top.runs) == [(UInt64.max - 2)...(UInt64.max - 2), UInt64.max...UInt64.max])
        var range = SSHWriter()
        range.writeUInt64(1)
        range.writeUInt64(1000)
        let swallowed = try KRL.parse(Self.krl([Self.bitmap(offset: 10, bits: [0, 7, 100]), (0x21, range.bytes)])).krl.certificates[0].serials
        #expect(Array(swallowed.runs) == [1...1000] && swallowed.runCount == 1 && swallowed.count == 1000)
    }
}

