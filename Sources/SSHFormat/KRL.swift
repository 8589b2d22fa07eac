#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Revocations of certificates signed by one CA key (or by any CA, when `caKey` is nil).
public struct CertificateRevocations: Equatable, Sendable {
    public var caKey: PublicKey?
    public var serials: SerialSet
    public var keyIDs: [String]

    public init(caKey: PublicKey?, serials: SerialSet = SerialSet(), keyIDs: [String] = []) {
        self.caKey = caKey
        self.serials = serials
        self.keyIDs = keyIDs
    }
}

/// An OpenSSH key revocation list (PROTOCOL.krl), as sshd reads it through `RevokedKeys`.
public struct KRL: Equatable, Sendable {
    public var version: UInt64
    public var generatedDate: UInt64
    public var flags: UInt64
    public var comment: String
    public var certificates: [CertificateRevocations]
    /// Plain public key blobs: every certificate of such a key is revoked too.
    public var explicitKeys: [Data]
    public var sha1Fingerprints: [Data]
    public var sha256Fingerprints: [Data]

    public init(version: UInt64, generatedDate: UInt64, comment: String = "", flags: UInt64 = 0,
                certificates: [CertificateRevocations] = [], explicitKeys: [Data] = [],
                sha1Fingerprints: [Data] = [], sha256Fingerprints: [Data] = []) {
        self.version = version
        self.generatedDate = generatedDate
        self.flags = flags
        self.comment = comment
        self.certificates = certificates
        self.explicitKeys = explicitKeys
        self.sha1Fingerprints = sha1Fingerprints
        self.sha256Fingerprints = sha256Fingerprints
    }

    public static let magic: [UInt8] = Array("SSHKRL\n".utf8) + [0]
    public static let formatVersion: UInt32 = 1

    enum Section: UInt8 {
        case certificates = 1, explicitKey = 2, sha1 = 3, signature = 4, sha256 = 5
    }

    enum CertificateSection: UInt8 {
        case serialList = 0x20, serialRange = 0x21, serialBitmap = 0x22, keyID = 0x23
    }

    /// OpenSSH 9.2 refuses bitmap mpints longer than 2048 bytes (sshbuf's SSHBUF_MAX_BIGNUM),
    /// so no bitmap section may span more serials than this.
    public static let maximumBitmapSpan: UInt64 = 16384
}

// MARK: - Encoding

extension KRL {
    /// The KRL without a signature.
    public func encoded() -> [UInt8] {
        var w = SSHWriter(reservingCapacity: 4096)
        writeUnsigned(to: &w)
        return w.bytes
    }

    /// The KRL signed by `signingKey`: the signature section is last and covers every byte
    /// before the signature string, including the signing key (PROTOCOL.krl).
    public func encoded<E: Error>(signingKey: PublicKey, sign: ([UInt8]) throws(E) -> SSHSignature) throws(E) -> [UInt8] {
        var w = SSHWriter(reservingCapacity: 4096)
        writeUnsigned(to: &w)
        w.writeByte(Section.signature.rawValue)
        w.writeString(signingKey.blob)
        let signature = try sign(w.bytes)
        w.writeString(signature.blob)
        return w.bytes
    }

    private func writeUnsigned(to w: inout SSHWriter) {
        w.writeRaw(Self.magic)
        w.writeUInt32(Self.formatVersion)
        w.writeUInt64(version)
        w.writeUInt64(generatedDate)
        w.writeUInt64(flags)
        w.writeString([UInt8]())
        w.writeString(comment)
        for revocations in certificates where !(revocations.serials.isEmpty && revocations.keyIDs.isEmpty) {
            w.writeByte(Section.certificates.rawValue)
            w.writeComposite { w in
                w.writeString(revocations.caKey?.blob ?? Data())
                w.writeString([UInt8]())
                SerialEncoder.write(revocations.serials, to: &w)
                let ids = revocations.keyIDs.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                if !ids.isEmpty {
                    w.writeByte(CertificateSection.keyID.rawValue)
                    w.writeComposite { w in
                        var previous: String? = nil
                        for id in ids where id != previous {
                            w.writeString(id)
                            previous = id
                        }
                    }
                }
            }
        }
        for (section, blobs) in [(Section.explicitKey, explicitKeys), (.sha1, sha1Fingerprints), (.sha256, sha256Fingerprints)] where !blobs.isEmpty {
            w.writeByte(section.rawValue)
            w.writeComposite { w in
                for blob in Set(blobs).sorted(by: { $0.lexicographicallyPrecedes($1) }) { w.writeString(blob) }
            }
        }
    }
}

/// Chooses, for a set of serials, the mix of serial-list, range and bitmap sections with the
/// fewest bytes. Unlike ssh-keygen's greedy choice it is a dynamic programme over the runs of
/// consecutive serials, it puts every listed serial into one list section (sections may come in
/// any order), and it never writes a bitmap OpenSSH cannot read back (over 16384 bits).
enum SerialEncoder {
    // Byte costs: a subsection is a type byte and a length, then its payload.
    static let sectionHeader = 5
    static let rangeCost = 5 + 16
    static let bitmapFixed = 5 + 8 + 4

    static func bitmapBytes(span: UInt64) -> Int {
        // The top bit is always set (the last serial in the bitmap is revoked); an mpint whose top
        // byte has its high bit set takes a leading zero byte.
        Int((span + 7) / 8) + (span % 8 == 0 ? 1 : 0)
    }

    enum Choice {
        case list, range
        case bitmap(firstRun: Int)
    }

    static func plan(_ runs: [ClosedRange<UInt64>]) -> [Choice] {
        let n = runs.count
        guard n > 0 else { return [] }
        // cost[j]: fewest bytes for runs 0..<j, counting list serials at 8 bytes each (the one
        // list section header is added once at the end; it never changes the best choice by
        // more than its 5 bytes).
        var cost = [Int](repeating: 0, count: n + 1)
        var choice = [Choice](repeating: .list, count: n)
        // Candidates for a bitmap's first run, kept in a deque ordered by their key
        // cost[i] * 8 - lo_i (bits), smallest first: the bitmap from run i to run j costs about
        // cost[i] + (hi_j - lo_i + 1) / 8, so for a fixed j the best i has the smallest key.
        var deque: [Int] = []
        deque.reserveCapacity(64)
        var head = 0
        // Wrapping: serials past 2^63 only make the ordering approximate (costs are checked exactly).
        func key(_ i: Int) -> Int64 { Int64(cost[i]) &* 8 &- Int64(bitPattern: runs[i].lowerBound) }
        for j in 0..<n {
            let run = runs[j]
            let length = run.upperBound - run.lowerBound + 1
            // Run j as list or range.
            let listCost = length > UInt64(Int.max / 16) ? Int.max / 2 : Int(length) * 8
            var best = cost[j] + min(listCost, rangeCost)
            var bestChoice: Choice = listCost <= rangeCost ? .list : .range
            // Run j closes a bitmap that starts at some run i <= j.
            if length <= KRL.maximumBitmapSpan {
                while head < deque.count, key(deque[deque.count - 1]) >= key(j) { deque.removeLast() }
                deque.append(j)
                if head >= deque.count { head = deque.count - 1 }
                while head < deque.count, run.upperBound - runs[deque[head]].lowerBound + 1 > KRL.maximumBitmapSpan { head += 1 }
                // The ordering key ignores the rounding to whole bytes; check the front few
                // candidates exactly.
                var k = head
                while k < deque.count && k < head + 4 {
                    let i = deque[k]
                    let candidate = cost[i] + bitmapFixed + bitmapBytes(span: run.upperBound - runs[i].lowerBound + 1)
                    if candidate < best {
                        best = candidate
                        bestChoice = .bitmap(firstRun: i)
                    }
                    k += 1
                }
            } else {
                deque.removeAll(keepingCapacity: true)
                head = 0
            }
            if head > 4096 {
                deque.removeFirst(head)
                head = 0
            }
            cost[j + 1] = best
            choice[j] = bestChoice
        }
        return choice
    }

    static func write(_ serials: SerialSet, to w: inout SSHWriter) {
        let runs = Array(serials.runs)
        let choices = plan(runs)
        // Walk back through the choices to find the sections.
        var listed: [ClosedRange<UInt64>] = []
        var sections: [(type: KRL.CertificateSection, runs: ArraySlice<ClosedRange<UInt64>>)] = []
        var j = runs.count - 1
        while j >= 0 {
            switch choices[j] {
            case .list:
                listed.append(runs[j])
                j -= 1
            case .range:
                sections.append((.serialRange, runs[j...j]))
                j -= 1
            case .bitmap(let first):
                sections.append((.serialBitmap, runs[first...j]))
                j = first - 1
            }
        }
        if !listed.isEmpty {
            w.writeByte(KRL.CertificateSection.serialList.rawValue)
            w.writeComposite { w in
                for run in listed.reversed() {
                    var serial = run.lowerBound
                    while true {
                        w.writeUInt64(serial)
                        if serial == run.upperBound { break }
                        serial += 1
                    }
                }
            }
        }
        for section in sections.reversed() {
            w.writeByte(section.type.rawValue)
            w.writeComposite { w in
                let first = section.runs.first!.lowerBound
                switch section.type {
                case .serialRange:
                    w.writeUInt64(first)
                    w.writeUInt64(section.runs.first!.upperBound)
                default:
                    w.writeUInt64(first)
                    let span = Int(section.runs.last!.upperBound - first + 1)
                    // Big-endian magnitude: bit N (from the least significant end) is serial first+N.
                    var magnitude = [UInt8](repeating: 0, count: (span + 7) / 8)
                    for run in section.runs {
                        for serial in run {
                            let bit = Int(serial - first)
                            magnitude[magnitude.count - 1 - bit / 8] |= UInt8(1) << (bit % 8)
                        }
                    }
                    w.writeMPInt(unsigned: magnitude)
                }
            }
        }
    }
}

// MARK: - Decoding

/// A KRL signature as found in the file: who signed, the signature, and the bytes it covers.
public struct KRLSignature: Equatable, Sendable {
    public var signingKey: PublicKey
    public var signature: SSHSignature
    public var signedBytes: [UInt8]
}

extension KRL {
    /// Parses a KRL as strictly as OpenSSH 9.2 does, so that a file this accepts is one sshd
    /// accepts: serial 0, a reversed range, an unknown section, leftover bytes, a hash of the
    /// wrong length, a negative or over-long bitmap, or a section after a signature are errors.
    /// Signatures are returned for the caller to verify (this module does no public-key crypto).
    public static func parse(_ bytes: [UInt8]) throws(SSHFormatError) -> (krl: KRL, signatures: [KRLSignature]) {
        var r = SSHReader(bytes)
        var krl = try readHeader(&r, bytes)
        var signatures: [KRLSignature] = []
        while !r.isAtEnd {
            let type = try r.readByte()
            let data = try r.readString()
            if !signatures.isEmpty && type != Section.signature.rawValue {
                throw .invalid("KRL has a section after its signature")
            }
            switch Section(rawValue: type) {
            case .certificates:
                krl.certificates.append(try parseCertificates(data))
            case .explicitKey:
                var s = SSHReader(data)
                while !s.isAtEnd { krl.explicitKeys.append(Data(try s.readString())) }
            case .sha1, .sha256:
                let length = type == Section.sha1.rawValue ? 20 : 32
                var s = SSHReader(data)
                while !s.isAtEnd {
                    let hash = try s.readString()
                    guard hash.count == length else { throw .invalid("KRL fingerprint of \(hash.count) bytes where \(length) are required") }
                    if type == Section.sha1.rawValue { krl.sha1Fingerprints.append(Data(hash)) } else { krl.sha256Fingerprints.append(Data(hash)) }
                }
            case .signature:
                let key = try PublicKey(blob: data)
                let signedBytes = Array(bytes[0..<r.offset])
                let signature = try SSHSignature(blob: try r.readString())
                guard !signatures.contains(where: { $0.signingKey == key }) else {
                    throw .invalid("KRL is signed twice by the same key")
                }
                signatures.append(KRLSignature(signingKey: key, signature: signature, signedBytes: signedBytes))
            case nil:
                throw .invalid("unknown KRL section type \(type)")
            }
        }
        return (krl, signatures)
    }

    private static func readHeader(_ r: inout SSHReader, _ bytes: [UInt8]) throws(SSHFormatError) -> KRL {
        guard bytes.count >= magic.count, Array(bytes.prefix(magic.count)) == magic else {
            throw .notAKey("not an OpenSSH KRL (the file does not start with the KRL magic)")
        }
        _ = try r.readBytes(magic.count)
        let format = try r.readUInt32()
        guard format == formatVersion else { throw .invalid("unsupported KRL format version \(format)") }
        var krl = KRL(version: try r.readUInt64(), generatedDate: try r.readUInt64())
        krl.flags = try r.readUInt64()
        _ = try r.readString()
        krl.comment = try r.readText("KRL comment")
        return krl
    }

    /// How many separate runs of serials the KRL revokes: the entries sshd's parser builds.
    public var serialRunCount: Int { certificates.reduce(0) { $0 + $1.serials.runCount } }

    /// More runs than any CA's real KRL holds (a million certificates with every other one
    /// revoked is half a million): a server refuses such a KRL for sshd's sake, and a restore
    /// refuses to carry one into the ledger (a row per run).
    public static let maximumPlausibleSerialRuns = 4 << 20

    /// The version in a KRL's header, read without decoding anything else (nil when the bytes
    /// do not start like a KRL).
    public static func headerVersion(_ bytes: [UInt8]) -> UInt64? {
        var r = SSHReader(bytes)
        return try? readHeader(&r, bytes).version
    }

    /// The signatures inside a KRL, found without decoding its sections: the work is one pass
    /// over the section headers, whatever the sections hold. A KRL from the network is checked
    /// against the pinned key this way before `parse` turns its sections into sets.
    public static func signatures(in bytes: [UInt8]) throws(SSHFormatError) -> [KRLSignature] {
        var r = SSHReader(bytes)
        _ = try readHeader(&r, bytes)
        var signatures: [KRLSignature] = []
        while !r.isAtEnd {
            let type = try r.readByte()
            let data = try r.readString()
            guard type == Section.signature.rawValue else { continue }
            let key = try PublicKey(blob: data)
            let signedBytes = Array(bytes[0..<r.offset])
            signatures.append(KRLSignature(signingKey: key, signature: try SSHSignature(blob: try r.readString()), signedBytes: signedBytes))
        }
        return signatures
    }

    private static func parseCertificates(_ data: [UInt8]) throws(SSHFormatError) -> CertificateRevocations {
        var r = SSHReader(data)
        let caBlob = try r.readString()
        _ = try r.readString()
        var revocations = CertificateRevocations(caKey: caBlob.isEmpty ? nil : try PublicKey(blob: caBlob))
        var serials = SerialSet.Builder()
        while !r.isAtEnd {
            let type = try r.readByte()
            var s = SSHReader(try r.readString())
            switch CertificateSection(rawValue: type) {
            case .serialList:
                while !s.isAtEnd {
                    let serial = try s.readUInt64()
                    guard serial >= SerialSet.firstSerial else { throw .invalid("KRL revokes serial 0, which OpenSSH rejects") }
                    serials.add(serial...serial)
                }
            case .serialRange:
                let low = try s.readUInt64(), high = try s.readUInt64()
                guard low >= SerialSet.firstSerial, low <= high else { throw .invalid("KRL serial range \(low)-\(high) is invalid") }
                serials.add(low...high)
            case .serialBitmap:
                let offset = try s.readUInt64()
                let raw = try s.readString()
                if let first = raw.first, first & 0x80 != 0 { throw .invalid("KRL serial bitmap is a negative number") }
                let magnitude = raw.drop(while: { $0 == 0 })
                guard magnitude.count <= Int(maximumBitmapSpan / 8) else {
                    throw .invalid("KRL serial bitmap of \(magnitude.count) bytes; OpenSSH reads at most 2048")
                }
                // Kept as bits: the memory is the bitmap's bytes, whatever pattern they hold.
                try serials.addBitmap(offset: offset, magnitude: magnitude)
            case .keyID:
                while !s.isAtEnd { revocations.keyIDs.append(try s.readText("revoked key id")) }
            case nil:
                throw .invalid("unknown KRL certificate subsection type 0x\(String(type, radix: 16))")
            }
            try s.expectEnd("a KRL certificate subsection")
        }
        revocations.serials = serials.build()
        return revocations
    }
}

// MARK: - Lookup

extension KRL {
    /// Why a key or certificate is revoked, or nil if it is not.
    public enum Verdict: Equatable, Sendable, CustomStringConvertible {
        case explicitKey, sha1Fingerprint, sha256Fingerprint, keyID(String), serial(UInt64)

        public var description: String {
            switch self {
            case .explicitKey: return "the key is revoked"
            case .sha1Fingerprint: return "the key's SHA-1 fingerprint is revoked"
            case .sha256Fingerprint: return "the key's SHA-256 fingerprint is revoked"
            case .keyID(let id): return "key id \"\(id)\" is revoked"
            case .serial(let serial): return "serial \(serial) is revoked"
            }
        }
    }

    /// As sshd decides: the key itself (a certificate's underlying key counts), then, for a
    /// certificate, its key id or serial under its CA's section or a section for any CA.
    public func revocation(of key: PublicKey, certificate: CertificateBody? = nil) -> Verdict? {
        let blob = key.blob
        if sha1Fingerprints.contains(Data(Digest.sha1.hash(blob))) { return .sha1Fingerprint }
        if explicitKeys.contains(blob) { return .explicitKey }
        if sha256Fingerprints.contains(Data(Digest.sha256.hash(blob))) { return .sha256Fingerprint }
        guard let certificate else { return nil }
        for section in certificates where section.caKey == nil || section.caKey == certificate.signatureKey {
            if section.keyIDs.contains(certificate.keyID) { return .keyID(certificate.keyID) }
            if section.serials.contains(certificate.serial) { return .serial(certificate.serial) }
        }
        return nil
    }

    public func revocation(of certificate: Certificate) -> Verdict? {
        revocation(of: certificate.body.publicKey, certificate: certificate.body)
    }
}
