#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Appends values in the SSH wire encoding (RFC 4251 section 5).
public struct SSHWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(reservingCapacity capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public var data: Data { Data(bytes) }

    public mutating func writeByte(_ value: UInt8) {
        bytes.append(value)
    }

    public mutating func writeUInt32(_ value: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    public mutating func writeUInt64(_ value: UInt64) {
        writeUInt32(UInt32(truncatingIfNeeded: value >> 32))
        writeUInt32(UInt32(truncatingIfNeeded: value))
    }

    public mutating func writeString<C: Collection>(_ value: C) where C.Element == UInt8 {
        writeUInt32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func writeString(_ value: String) {
        writeString(Array(value.utf8))
    }

    /// Writes a nested structure as one string: the length, then what `body` writes.
    public mutating func writeComposite(_ body: (inout SSHWriter) -> Void) {
        let lengthAt = bytes.count
        writeUInt32(0)
        body(&self)
        let length = UInt32(bytes.count - lengthAt - 4)
        bytes[lengthAt] = UInt8(truncatingIfNeeded: length >> 24)
        bytes[lengthAt + 1] = UInt8(truncatingIfNeeded: length >> 16)
        bytes[lengthAt + 2] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[lengthAt + 3] = UInt8(truncatingIfNeeded: length)
    }

    /// Writes a non-negative integer given as big-endian magnitude bytes, as an SSH mpint:
    /// minimal length, with a leading zero byte when the top bit would otherwise read as a sign.
    public mutating func writeMPInt<C: Collection>(unsigned magnitude: C) where C.Element == UInt8 {
        let trimmed = magnitude.drop(while: { $0 == 0 })
        if let first = trimmed.first, first & 0x80 != 0 {
            writeUInt32(UInt32(trimmed.count + 1))
            bytes.append(0)
        } else {
            writeUInt32(UInt32(trimmed.count))
        }
        bytes.append(contentsOf: trimmed)
    }

    public mutating func writeRaw<C: Collection>(_ value: C) where C.Element == UInt8 {
        bytes.append(contentsOf: value)
    }
}

/// Reads values in the SSH wire encoding. A failed read throws and leaves the position unchanged.
public struct SSHReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        self.bytes = Array(bytes)
        self.offset = 0
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func readByte() throws(SSHFormatError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated("byte") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readUInt32() throws(SSHFormatError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated("uint32") }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return value
    }

    public mutating func readUInt64() throws(SSHFormatError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated("uint64") }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return value
    }

    public mutating func readBytes(_ count: Int) throws(SSHFormatError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated("\(count) bytes") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func readString() throws(SSHFormatError) -> [UInt8] {
        let start = offset
        let length = try readUInt32()
        guard Int(length) <= remaining else {
            offset = start
            throw .truncated("string of \(length) bytes")
        }
        defer { offset += Int(length) }
        return Array(bytes[offset..<offset + Int(length)])
    }

    /// A string that must be valid UTF-8 without NUL bytes (names, key ids, principals).
    public mutating func readText(_ what: String) throws(SSHFormatError) -> String {
        let start = offset
        let raw = try readString()
        guard !raw.contains(0), let text = String(validating: raw, as: UTF8.self) else {
            offset = start
            throw .invalid("\(what) is not valid UTF-8 text or contains a NUL byte")
        }
        return text
    }

    /// Reads an mpint that must be non-negative and minimally encoded; returns its magnitude.
    public mutating func readUnsignedMPInt() throws(SSHFormatError) -> [UInt8] {
        let start = offset
        let raw = try readString()
        if let first = raw.first {
            if first & 0x80 != 0 {
                offset = start
                throw .invalid("negative mpint")
            }
            if first == 0 && (raw.count == 1 || raw[1] & 0x80 == 0) {
                offset = start
                throw .invalid("mpint has a superfluous leading zero")
            }
        }
        return Array(raw.drop(while: { $0 == 0 }))
    }

    public func expectEnd(_ what: String) throws(SSHFormatError) {
        guard isAtEnd else { throw .invalid("\(remaining) unexpected trailing bytes after \(what)") }
    }
}

/// Everything that can be wrong with bytes or text claiming to be an SSH object.
public enum SSHFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(String)
    case invalid(String)
    case unsupportedKeyType(String)
    case privateKeyGiven(String)
    case certificateGiven
    case notAKey(String)
    case weakKey(String)

    public var description: String {
        switch self {
        case .truncated(let what): return "data ends too early (expected \(what)); the file is truncated or corrupt"
        case .invalid(let why): return why
        case .unsupportedKeyType(let why): return why
        case .privateKeyGiven(let kind):
            return "this is a private key (\(kind)), not a public key; pass the public half (the .pub file) instead, and keep the private key where it is"
        case .certificateGiven:
            return "this is a certificate, not a public key; pass the plain public key (for example id_ed25519.pub, not id_ed25519-cert.pub)"
        case .notAKey(let why): return why
        case .weakKey(let why): return why
        }
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hex, two digits a byte (audit hashes, nonces, token ids, ETags, KRL fingerprints).
    public var hexString: String {
        var out = ""
        for byte in self {
            out.append(Self.hexDigits[Int(byte >> 4)])
            out.append(Self.hexDigits[Int(byte & 0x0f)])
        }
        return out
    }

    private static var hexDigits: [Character] { Array("0123456789abcdef") }
}

extension Data {
    /// Base64 without padding, as OpenSSH prints SHA256 fingerprints.
    public func base64EncodedStringWithoutPadding() -> String {
        var text = base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }
}
