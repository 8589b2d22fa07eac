/// A set of certificate serial numbers.
///
/// Serials and ranges are kept as runs (sorted, disjoint, non-adjacent closed ranges). A KRL's
/// bitmap sections are kept as bits, one per serial, whatever pattern they hold: a KRL read from
/// the network costs memory in proportion to its bytes, where turning each set bit into a run of
/// its own would cost 128 bytes of runs per byte of alternating bits.
///
/// Equality is by the serials held, not by how they are stored.
public struct SerialSet: Sendable {
    /// Runs from serial lists and ranges. No run overlaps or touches another, and none
    /// overlaps the interval of a bitmap (a run that did was folded into the bitmap's bits).
    private var spans: [ClosedRange<UInt64>] = []
    /// Bitmaps sorted by `low`, their intervals `low...high` disjoint from each other and from
    /// every run in `spans`.
    private var bitmaps: [Bitmap] = []
    /// The words of every bitmap, one after another.
    private var words: [UInt64] = []

    /// Bit `i` of word `start + k` is serial `base + 64k + i`; `base` is a multiple of 64, `low`
    /// and `high` are the lowest and highest serials set, and no bit outside them is set.
    struct Bitmap: Sendable {
        var base: UInt64
        var low: UInt64
        var high: UInt64
        var start: Int
        var count: Int
    }

    public init() {}

    /// Builds the set from serials and ranges in any order, merging overlaps and neighbours.
    public init<S: Sequence>(ranges input: S) where S.Element == ClosedRange<UInt64> {
        spans = Self.merged(Array(input))
    }

    public init<S: Sequence>(serials: S) where S.Element == UInt64 {
        self.init(ranges: serials.lazy.map { $0...$0 })
    }

    public var isEmpty: Bool { spans.isEmpty && bitmaps.isEmpty }

    /// How many serials the set holds (saturating).
    public var count: UInt64 {
        var total: UInt64 = 0
        func add(_ n: UInt64) {
            let (sum, overflow) = total.addingReportingOverflow(n)
            total = overflow ? .max : sum
        }
        for run in spans { add(run.upperBound - run.lowerBound &+ 1) }
        for bitmap in bitmaps {
            for k in bitmap.start..<(bitmap.start + bitmap.count) { add(UInt64(words[k].nonzeroBitCount)) }
        }
        return total
    }

    public func contains(_ serial: UInt64) -> Bool {
        var low = 0, high = spans.count - 1
        while low <= high {
            let mid = (low + high) / 2
            let range = spans[mid]
            if serial < range.lowerBound { high = mid - 1 } else if serial > range.upperBound { low = mid + 1 } else { return true }
        }
        low = 0
        high = bitmaps.count - 1
        while low <= high {
            let mid = (low + high) / 2
            let bitmap = bitmaps[mid]
            if serial < bitmap.low { high = mid - 1 } else if serial > bitmap.high { low = mid + 1 } else { return bit(serial, of: bitmap) }
        }
        return false
    }

    /// The serials as sorted, disjoint, non-adjacent runs, produced one at a time (a set decoded
    /// from bitmaps may hold far more runs than it is worth materialising).
    public var runs: Runs { Runs(set: self) }

    /// How many runs `runs` produces, counted from the bits without producing them: the number of
    /// separate ranges sshd's own KRL parser builds for these serials.
    public var runCount: Int {
        var total = 0
        var previousHigh: UInt64? = nil
        // Walk runs and bitmaps in order; two neighbouring pieces that touch make one run.
        var s = 0, b = 0
        while s < spans.count || b < bitmaps.count {
            let low: UInt64, high: UInt64, pieces: Int
            if b >= bitmaps.count || (s < spans.count && spans[s].lowerBound < bitmaps[b].low) {
                (low, high, pieces) = (spans[s].lowerBound, spans[s].upperBound, 1)
                s += 1
            } else {
                let bitmap = bitmaps[b]
                var starts = 0
                var carry: UInt64 = 0
                for k in bitmap.start..<(bitmap.start + bitmap.count) {
                    let word = words[k]
                    // A run starts at each set bit whose lower neighbour is clear.
                    starts += (word & ~((word << 1) | carry)).nonzeroBitCount
                    carry = word >> 63
                }
                (low, high, pieces) = (bitmap.low, bitmap.high, starts)
                b += 1
            }
            total += pieces
            if let previousHigh, previousHigh != .max, previousHigh + 1 == low { total -= 1 }
            previousHigh = high
        }
        return total
    }

    /// The runs of a set in increasing order.
    public struct Runs: Sequence, IteratorProtocol {
        let set: SerialSet
        var span = 0
        var bitmap = 0
        /// The next serial of `set.bitmaps[bitmap]` to look at.
        var position: UInt64 = 0
        var started = false
        var pending: ClosedRange<UInt64>? = nil

        public mutating func next() -> ClosedRange<UInt64>? {
            while let piece = nextPiece() {
                guard let run = pending else { pending = piece; continue }
                if run.upperBound != .max, run.upperBound + 1 == piece.lowerBound {
                    pending = run.lowerBound...piece.upperBound
                } else {
                    pending = piece
                    return run
                }
            }
            defer { pending = nil }
            return pending
        }

        /// The next run of a span or of a bitmap's bits, in order; touching pieces are joined by `next`.
        private mutating func nextPiece() -> ClosedRange<UInt64>? {
            let spans = set.spans, bitmaps = set.bitmaps
            if bitmap < bitmaps.count, !started {
                position = bitmaps[bitmap].low
                started = true
            }
            let bitmapsLeft = bitmap < bitmaps.count
            // Runs never overlap a bitmap's interval: one below `position` is below the bitmap.
            if span < spans.count, !bitmapsLeft || spans[span].lowerBound < position {
                span += 1
                return spans[span - 1]
            }
            guard bitmapsLeft else { return nil }
            let current = bitmaps[bitmap]
            // `position` is a set bit: a run starts there (each run is consumed whole).
            let low = position
            var high = low
            while high < current.high, set.bit(high + 1, of: current) {
                // Skip whole words of ones at a time.
                let offset = high + 1 - current.base
                let index = current.start + Int(offset / 64)
                let shift = offset % 64
                let ones = (~(set.words[index] >> shift)).trailingZeroBitCount
                high += UInt64(Swift.min(UInt64(ones), 64 - shift))
            }
            if high >= current.high {
                bitmap += 1
                started = false
            } else {
                position = set.nextSetBit(after: high, in: current)
            }
            return low...high
        }
    }

    func bit(_ serial: UInt64, of bitmap: Bitmap) -> Bool {
        let offset = serial - bitmap.base
        return words[bitmap.start + Int(offset / 64)] >> (offset % 64) & 1 == 1
    }

    /// The lowest set serial above `serial` in `bitmap`, which must have one (`high` is set).
    func nextSetBit(after serial: UInt64, in bitmap: Bitmap) -> UInt64 {
        var offset = serial + 1 - bitmap.base
        var index = Int(offset / 64)
        var word = words[bitmap.start + index] >> (offset % 64)
        if word != 0 { return bitmap.base + offset + UInt64(word.trailingZeroBitCount) }
        repeat {
            index += 1
            word = words[bitmap.start + index]
        } while word == 0
        offset = UInt64(index) * 64 + UInt64(word.trailingZeroBitCount)
        return bitmap.base + offset
    }

    /// Sorts and merges runs in place.
    static func merged(_ input: [ClosedRange<UInt64>]) -> [ClosedRange<UInt64>] {
        var runs = input
        runs.sort { $0.lowerBound < $1.lowerBound }
        var count = 0
        for i in runs.indices {
            let run = runs[i]
            if count > 0 {
                let last = runs[count - 1]
                if last.upperBound == .max || run.lowerBound <= last.upperBound + 1 {
                    if run.upperBound > last.upperBound { runs[count - 1] = last.lowerBound...run.upperBound }
                    continue
                }
            }
            runs[count] = run
            count += 1
        }
        runs.removeLast(runs.count - count)
        return runs
    }
}

extension SerialSet: Equatable {
    public static func == (lhs: SerialSet, rhs: SerialSet) -> Bool {
        var left = lhs.runs, right = rhs.runs
        while true {
            let l = left.next(), r = right.next()
            if l != r { return false }
            if l == nil { return true }
        }
    }
}

// MARK: - Building from a KRL

extension SerialSet {
    /// Collects a KRL section's serial lists, ranges and bitmaps, then makes the set. Memory and
    /// time grow with the bytes handed in, not with the serials they name.
    struct Builder {
        var ranges: [ClosedRange<UInt64>] = []
        var bitmaps: [Bitmap] = []
        var words: [UInt64] = []

        mutating func add(_ range: ClosedRange<UInt64>) { ranges.append(range) }

        /// A KRL bitmap: `magnitude` is a big-endian number whose bit `i` (from the least
        /// significant end) is serial `offset + i`. Throws if a set bit names serial 0 or a
        /// serial past 2^64-1, as OpenSSH refuses both.
        mutating func addBitmap(offset: UInt64, magnitude: ArraySlice<UInt8>) throws(SSHFormatError) {
            guard let top = magnitude.firstIndex(where: { $0 != 0 }) else { return }
            let topBit = UInt64((magnitude.endIndex - top - 1) * 8 + (7 - magnitude[top].leadingZeroBitCount))
            let (high, overflow) = offset.addingReportingOverflow(topBit)
            guard !overflow else { throw .invalid("KRL serial bitmap runs past the largest serial") }
            let base = offset & ~63
            let count = Int((high - base) / 64) + 1
            let start = words.count
            words.append(contentsOf: repeatElement(0, count: count))
            let shift = Int(offset - base)
            let significant = magnitude.endIndex - top
            magnitude.withUnsafeBufferPointer { bytes in
                words.withUnsafeMutableBufferPointer { words in
                    // bytes.last is the least significant byte: bit 0 of it is serial `offset`.
                    for byteIndex in 0..<significant {
                        let byte = UInt64(bytes[bytes.count - 1 - byteIndex])
                        if byte == 0 { continue }
                        let position = shift + byteIndex * 8
                        let word = start + position >> 6, bit = position & 63
                        words[word] |= byte << UInt64(bit)
                        // The top bits of a byte that straddles two words (never past the top set bit).
                        if bit > 56, byte >> UInt64(64 - bit) != 0 { words[word + 1] |= byte >> UInt64(64 - bit) }
                    }
                }
            }
            guard words[start] & 1 == 0 || base != 0 else { throw .invalid("KRL revokes serial 0, which OpenSSH rejects") }
            var firstWord = start
            while words[firstWord] == 0 { firstWord += 1 }
            let low = base + UInt64(firstWord - start) * 64 + UInt64(words[firstWord].trailingZeroBitCount)
            bitmaps.append(Bitmap(base: base, low: low, high: high, start: start, count: count))
        }

        /// Normalises: runs merged; overlapping bitmaps ORed into one; runs that meet a bitmap's
        /// interval folded into its bits (or the bitmap dropped, when a run covers it whole).
        mutating func build() -> SerialSet {
            var set = SerialSet()
            let spans = SerialSet.merged(ranges)
            var merged: [Bitmap] = []
            var mergedWords: [UInt64] = []
            // Bitmaps, merged where their intervals overlap, into one word array; when they come
            // in order and apart (as a KRL writer puts them), the words are used as they are.
            let inOrder = zip(bitmaps, bitmaps.dropFirst()).allSatisfy { $0.high < $1.low }
            let order = inOrder ? [] : bitmaps.indices.sorted { bitmaps[$0].low < bitmaps[$1].low }
            if inOrder {
                merged = bitmaps
                swap(&mergedWords, &words)
            }
            if !inOrder { mergedWords.reserveCapacity(words.count) }
            var i = 0
            while i < order.count {
                var j = i + 1
                var high = bitmaps[order[i]].high
                while j < order.count, bitmaps[order[j]].low <= high {
                    high = max(high, bitmaps[order[j]].high)
                    j += 1
                }
                let first = bitmaps[order[i]]
                let base = first.low & ~63
                let count = Int((high - base) / 64) + 1
                let start = mergedWords.count
                mergedWords.append(contentsOf: repeatElement(0, count: count))
                for member in order[i..<j].map({ bitmaps[$0] }) {
                    // Both bases are multiples of 64 and no bit below `low` is set, so whole words
                    // move: from the member's word holding `low`, which is at or above `base`.
                    let firstWord = Int((member.low - member.base) / 64)
                    let destination = start + Int(((member.low & ~63) - base) / 64)
                    for k in firstWord..<member.count { mergedWords[destination + k - firstWord] |= words[member.start + k] }
                }
                merged.append(Bitmap(base: base, low: first.low, high: high, start: start, count: count))
                i = j
            }
            set.words = mergedWords
            // Fold runs that meet a bitmap's interval into it.
            var dropped = [Bool](repeating: false, count: merged.count)
            var kept: [ClosedRange<UInt64>] = []
            kept.reserveCapacity(spans.count)
            var b = 0
            for run in spans {
                while b < merged.count, merged[b].high < run.lowerBound { b += 1 }
                var cursor: UInt64? = run.lowerBound
                var k = b
                while let from = cursor, k < merged.count, merged[k].low <= run.upperBound {
                    let bitmap = merged[k]
                    if run.lowerBound <= bitmap.low && run.upperBound >= bitmap.high {
                        dropped[k] = true
                    } else {
                        set.setBits(max(run.lowerBound, bitmap.low)...min(run.upperBound, bitmap.high), in: bitmap)
                        if from < bitmap.low { kept.append(from...(bitmap.low - 1)) }
                        cursor = bitmap.high >= run.upperBound ? nil : bitmap.high + 1
                    }
                    k += 1
                }
                if let from = cursor { kept.append(from...run.upperBound) }
            }
            set.spans = kept
            set.bitmaps = merged.indices.filter { !dropped[$0] }.map { merged[$0] }
            return set
        }
    }

    mutating func setBits(_ serials: ClosedRange<UInt64>, in bitmap: Bitmap) {
        var offset = serials.lowerBound - bitmap.base
        let last = serials.upperBound - bitmap.base
        while offset <= last {
            let index = bitmap.start + Int(offset / 64), shift = offset % 64
            let width = min(64 - shift, last - offset + 1)
            let mask: UInt64 = width == 64 ? .max : ((1 << width) - 1) << shift
            words[index] |= mask
            offset += width
        }
    }
}

/// The rules for serials as people write them and as a KRL can carry them, in one place for the
/// CLI, the service, the ledger and the KRL code.
extension SerialSet {
    /// A KRL cannot name serial 0 (PROTOCOL.krl: its serial sections start at 1), so no
    /// certificate is issued with it and no revocation names it.
    public static let firstSerial: UInt64 = 1

    /// Why a range that includes 0 is refused.
    public static let zeroSerialRefusal = "serial 0 cannot be revoked or issued (a KRL cannot name it); serials start at 1"

    /// "42" or "40-49": decimal digits only, from 1, low <= high. nil for anything else.
    public static func parseRange(_ text: some StringProtocol) -> ClosedRange<UInt64>? {
        func number(_ part: Substring) -> UInt64? {
            guard !part.isEmpty, part.utf8.count <= 20, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return UInt64(part)
        }
        let parts = String(text).split(separator: "-", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count <= 2, let low = number(parts[0]), let high = parts.count == 2 ? number(parts[1]) : low,
              low >= firstSerial, low <= high else { return nil }
        return low...high
    }

    /// How a range is written: "42", or "40-49".
    public static func rangeText(_ range: ClosedRange<UInt64>) -> String {
        range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
    }

    /// The words that say what `parseRange` accepts, for the message of a caller that got nil.
    public static let rangeSyntax = "a serial (42) or a range (40-49) of serials from 1, low to high"
}
