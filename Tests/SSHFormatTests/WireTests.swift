import Foundation
import Testing
import TestSupport
@testable import SSHFormat

@Suite("SSH wire encoding")
struct WireTests {
    @Test("uint32 values encode big-endian and read back", arguments: [
        UInt32(0), 1, 0x7f, 0x80, 0xff, 0x100, 0xdead_beef, .max,
    ])
    func uint32RoundTrip(value: UInt32) throws {
        var w = SSHWriter()
        w.writeUInt32(value)
        #expect(w.bytes == [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)])
        var r = SSHReader(w.bytes)
        #expect(try r.readUInt32() == value)
        #expect(r.isAtEnd)
    }

    @Test("uint64 values encode big-endian and read back", arguments: [
        UInt64(0), 1, 0x0102_0304_0506_0708, UInt64(UInt32.max) + 1, .max,
    ])
    func uint64RoundTrip(value: UInt64) throws {
        var w = SSHWriter()
        w.writeUInt64(value)
        #expect(w.bytes.count == 8)
        #expect(w.bytes == (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) })
        var r = SSHReader(w.bytes)
        #expect(try r.readUInt64() == value)
        #expect(r.isAtEnd)
    }

    @Test func exactEncodings() {
        var w = SSHWriter()
        w.writeUInt64(0x0102_0304_0506_0708)
        w.writeString("abc")
        w.writeString([UInt8]())
        w.writeByte(0xfe)
        w.writeRaw([9, 8])
        #expect(w.bytes == [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3, 0x61, 0x62, 0x63, 0, 0, 0, 0, 0xfe, 9, 8])
        #expect(w.data == Data(w.bytes))
    }

    @Test("strings round trip, including NUL bytes and UTF-8", arguments: [
        [UInt8](), [0], [0, 0, 0, 4], Array("hello".utf8), Array("grüße ✓".utf8), [UInt8](repeating: 0xaa, count: 70000),
    ])
    func stringRoundTrip(value: [UInt8]) throws {
        var w = SSHWriter()
        w.writeString(value)
        w.writeString(Data(value))
        #expect(w.bytes.count == 2 * (4 + value.count))
        var r = SSHReader(w.bytes)
        #expect(try r.readString() == value)
        #expect(try r.readString() == value)
        #expect(r.isAtEnd)
    }

    @Test func textStringRoundTrip() throws {
        var w = SSHWriter()
        w.writeString("grüße ✓ alice@example.com")
        var r = SSHReader(w.bytes)
        #expect(try r.readText("name") == "grüße ✓ alice@example.com")
        #expect(w.bytes.prefix(4) == [0, 0, 0, UInt8("grüße ✓ alice@example.com".utf8.count)])
    }

    /// RFC 4251 section 5 examples, plus the cases the writer must normalise.
    @Test("mpint encodings (RFC 4251 examples)", arguments: [
        ([UInt8](), [UInt8]([0, 0, 0, 0])),
        ([0], [0, 0, 0, 0]),
        ([0, 0, 0], [0, 0, 0, 0]),
        ([0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7], [0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]),
        ([0x80], [0, 0, 0, 2, 0, 0x80]),
        ([0x7f], [0, 0, 0, 1, 0x7f]),
        ([0, 0, 0x80, 0x01], [0, 0, 0, 3, 0, 0x80, 0x01]),
        ([0, 0x12], [0, 0, 0, 1, 0x12]),
        ([0xff, 0xff], [0, 0, 0, 3, 0, 0xff, 0xff]),
    ])
    func mpintEncoding(magnitude: [UInt8], expected: [UInt8]) throws {
        var w = SSHWriter()
        w.writeMPInt(unsigned: magnitude)
        #expect(w.bytes == expected)
        var r = SSHReader(w.bytes)
        #expect(try r.readUnsignedMPInt() == Array(magnitude.drop(while: { $0 == 0 })))
        #expect(r.isAtEnd)
    }

    @Test func mpintRoundTripOfRandomMagnitudes() throws {
        var rng = SplitMix(seed: 42)
        for length in 0..<80 {
            var magnitude = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if length > 2, length % 3 == 0 { magnitude[0] = 0 } // leading zero
            if length > 2, length % 5 == 0 { magnitude[0] = 0x80 } // high bit
            var w = SSHWriter()
            w.writeMPInt(unsigned: magnitude)
            var r = SSHReader(w.bytes)
            let back = try r.readUnsignedMPInt()
            #expect(back == Array(magnitude.drop(while: { $0 == 0 })))
            #expect(r.isAtEnd)
        }
    }

    @Test("negative and non-minimal mpints are refused and leave the offset alone", arguments: [
        [UInt8]([0, 0, 0, 2, 0xed, 0xcc]), // -1234, RFC 4251
        [0, 0, 0, 1, 0x80], // top bit set: negative
        [0, 0, 0, 1, 0], // zero written as one 00 byte
        [0, 0, 0, 2, 0, 0x7f], // superfluous leading zero
        [0, 0, 0, 3, 0, 0, 0x80], // two leading zeros
    ])
    func badMPInts(encoded: [UInt8]) throws {
        var r = SSHReader([0xaa] + encoded)
        _ = try r.readByte()
        let error = #expect(throws: SSHFormatError.self) { try r.readUnsignedMPInt() }
        #expect(r.offset == 1)
        guard case .invalid(let why)? = error else {
            Issue.record("expected .invalid, got \(String(describing: error))")
            return
        }
        #expect(why.contains("mpint"))
    }

    @Test func compositeWritesItsLength() throws {
        var w = SSHWriter()
        w.writeString("outer")
        w.writeComposite { inner in
            inner.writeString("a")
            inner.writeString("bc")
            inner.writeUInt32(7)
        }
        w.writeComposite { _ in }
        var r = SSHReader(w.bytes)
        #expect(try r.readText("x") == "outer")
        var inner = SSHReader(try r.readString())
        #expect(inner.bytes.count == 5 + 6 + 4)
        #expect(try inner.readText("a") == "a")
        #expect(try inner.readText("bc") == "bc")
        #expect(try inner.readUInt32() == 7)
        #expect(inner.isAtEnd)
        #expect(try r.readString() == [])
        #expect(r.isAtEnd)
    }

    @Test func compositeMatchesWritingTheStringDirectly() {
        var inner = SSHWriter()
        inner.writeString("p1")
        inner.writeString("p2")
        var direct = SSHWriter()
        direct.writeString(inner.bytes)
        var composite = SSHWriter()
        composite.writeComposite { $0.writeString("p1"); $0.writeString("p2") }
        #expect(direct.bytes == composite.bytes)
    }

    // MARK: truncation and failed reads

    @Test func truncatedReadsThrowAndKeepTheOffset() throws {
        var r = SSHReader([0x01, 0x02, 0x03])
        #expect(throws: SSHFormatError.truncated("uint32")) { try r.readUInt32() }
        #expect(r.offset == 0)
        #expect(throws: SSHFormatError.truncated("uint64")) { try r.readUInt64() }
        #expect(r.offset == 0)
        #expect(throws: SSHFormatError.self) { try r.readBytes(4) }
        #expect(r.offset == 0)
        #expect(throws: SSHFormatError.self) { try r.readBytes(-1) }
        #expect(r.offset == 0)
        #expect(try r.readBytes(2) == [1, 2])
        #expect(try r.readByte() == 3)
        #expect(throws: SSHFormatError.truncated("byte")) { try r.readByte() }
        #expect(r.offset == 3)
        #expect(r.isAtEnd)
    }

    @Test func stringLongerThanTheDataThrowsAndKeepsTheOffset() throws {
        // A length of 5 with only 4 bytes behind it; then a huge length.
        var r = SSHReader([0xee, 0, 0, 0, 5, 1, 2, 3, 4])
        _ = try r.readByte()
        #expect(throws: SSHFormatError.self) { try r.readString() }
        #expect(r.offset == 1)
        #expect(throws: SSHFormatError.self) { try r.readText("name") }
        #expect(r.offset == 1)
        #expect(throws: SSHFormatError.self) { try r.readUnsignedMPInt() }
        #expect(r.offset == 1)
        // The same position still reads as plain integers.
        #expect(try r.readUInt32() == 5)
        #expect(try r.readUInt32() == 0x0102_0304)

        var huge = SSHReader([0xff, 0xff, 0xff, 0xff, 0])
        #expect(throws: SSHFormatError.self) { try huge.readString() }
        #expect(huge.offset == 0)
        #expect(huge.remaining == 5)
    }

    @Test func everyPrefixOfACompositeFailsCleanly() throws {
        var w = SSHWriter()
        w.writeString("ssh-ed25519")
        w.writeUInt64(99)
        w.writeMPInt(unsigned: [0x80, 1, 2])
        w.writeComposite { $0.writeString("x") }
        let full = w.bytes
        func readAll(_ bytes: [UInt8]) throws(SSHFormatError) {
            var r = SSHReader(bytes)
            _ = try r.readText("type")
            _ = try r.readUInt64()
            _ = try r.readUnsignedMPInt()
            _ = try r.readString()
            try r.expectEnd("test")
        }
        try readAll(full)
        for length in 0..<full.count {
            #expect(throws: SSHFormatError.self, "prefix of \(length) bytes") { try readAll(Array(full.prefix(length))) }
        }
        #expect(throws: SSHFormatError.self) { try readAll(full + [0]) }
    }

    @Test func textRefusesNULAndInvalidUTF8WithoutMoving() throws {
        for bad: [UInt8] in [[0x61, 0x00, 0x62], [0xff, 0xfe], [0xc3]] {
            var w = SSHWriter()
            w.writeString(bad)
            var r = SSHReader(w.bytes)
            #expect(throws: SSHFormatError.self) { try r.readText("principal") }
            #expect(r.offset == 0)
            #expect(try r.readString() == bad)
        }
    }

    @Test func expectEndReportsTrailingBytes() throws {
        var r = SSHReader([0, 0, 0, 1, 7, 9, 9])
        _ = try r.readString()
        #expect(throws: SSHFormatError.invalid("2 unexpected trailing bytes after the thing")) { try r.expectEnd("the thing") }
        _ = try r.readBytes(2)
        try r.expectEnd("the thing")
    }

    @Test func readerAcceptsAnyCollection() throws {
        let data = Data([0, 0, 0, 2, 0x68, 0x69])
        var fromData = SSHReader(data)
        var fromSlice = SSHReader(Array([9, 9] + Array(data))[2...])
        #expect(try fromData.readText("x") == "hi")
        #expect(try fromSlice.readText("x") == "hi")
    }

    @Test func randomSequencesRoundTrip() throws {
        enum Value: Equatable { case byte(UInt8), u32(UInt32), u64(UInt64), string([UInt8]), mpint([UInt8]) }
        var rng = SplitMix(seed: 7)
        for _ in 0..<200 {
            var values: [Value] = []
            var w = SSHWriter()
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                let bytes = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: let v = UInt8.random(in: 0...255, using: &rng); w.writeByte(v); values.append(.byte(v))
                case 1: let v = UInt32.random(in: 0...UInt32.max, using: &rng); w.writeUInt32(v); values.append(.u32(v))
                case 2: let v = UInt64.random(in: 0...UInt64.max, using: &rng); w.writeUInt64(v); values.append(.u64(v))
                case 3: w.writeString(bytes); values.append(.string(bytes))
                default: w.writeMPInt(unsigned: bytes); values.append(.mpint(Array(bytes.drop(while: { $0 == 0 }))))
                }
            }
            var r = SSHReader(w.bytes)
            for value in values {
                switch value {
                case .byte: #expect(try .byte(r.readByte()) == value)
                case .u32: #expect(try .u32(r.readUInt32()) == value)
                case .u64: #expect(try .u64(r.readUInt64()) == value)
                case .string: #expect(try .string(r.readString()) == value)
                case .mpint: #expect(try .mpint(r.readUnsignedMPInt()) == value)
                }
            }
            #expect(r.isAtEnd)
        }
    }

    @Test func base64WithoutPadding() {
        #expect(Data([1]).base64EncodedStringWithoutPadding() == "AQ")
        #expect(Data([1, 2]).base64EncodedStringWithoutPadding() == "AQI")
        #expect(Data([1, 2, 3]).base64EncodedStringWithoutPadding() == "AQID")
        #expect(Data().base64EncodedStringWithoutPadding() == "")
    }

    @Test func errorDescriptionsAreSentences() {
        let errors: [SSHFormatError] = [
            .truncated("uint32"), .invalid("negative mpint"), .unsupportedKeyType("DSA keys are refused"),
            .privateKeyGiven("PEM"), .certificateGiven, .notAKey("no key"), .weakKey("too small"),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(String(describing: error) == error.description)
            #expect(!error.description.contains("SSHFormatError"))
        }
        #expect(SSHFormatError.truncated("uint32").description.contains("truncated"))
        #expect(SSHFormatError.privateKeyGiven("PEM").description.contains(".pub"))
        #expect(SSHFormatError.certificateGiven.description.contains("-cert.pub"))
    }
}
