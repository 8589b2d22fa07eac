#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A public key read from text, with the comment it carried.
public struct PublicKeyText: Sendable, Equatable {
    public var key: PublicKey
    public var comment: String

    public init(key: PublicKey, comment: String) {
        self.key = key
        self.comment = comment
    }

    /// Largest input accepted: an RSA-16384 key in RFC 4716 form is under 4 KiB.
    public static let maximumLength = 64 * 1024

    /// Parses the content of a public key file: one OpenSSH line ("type base64 [comment]", CRLF
    /// tolerated, blank and # lines ignored) or one RFC 4716 block as PuTTYgen writes it.
    public init(parsing text: String) throws(SSHFormatError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw .notAKey("input is \(text.utf8.count) bytes; a public key file is a few hundred bytes")
        }
        if let kind = Self.privateKeyKind(text) { throw .privateKeyGiven(kind) }
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { line -> Substring in
                var l = line
                while l.last == "\r" { l.removeLast() }
                return l
            }
        if let begin = lines.firstIndex(where: { $0.trimmingWhitespace() == "---- BEGIN SSH2 PUBLIC KEY ----" }) {
            self = try Self.parseRFC4716(lines[begin...])
            return
        }
        let content = lines.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard let first = content.first else {
            throw .notAKey("no public key found: the input is empty (a public key is one line like \"ssh-ed25519 AAAA... user@host\")")
        }
        if content.count > 1 {
            let keyLines = content.filter { Self.looksLikeKeyLine($0) }
            if keyLines.count > 1 {
                throw .notAKey("found \(keyLines.count) keys; give exactly one public key per file")
            }
            throw .notAKey("the key is split over \(content.count) lines; an OpenSSH public key must be on one line (\"type base64 comment\"): join the lines and try again")
        }
        self = try Self.parseOpenSSHLine(first)
    }

    private static func looksLikeKeyLine(_ line: Substring) -> Bool {
        let word = line.prefix(while: { $0 != " " && $0 != "\t" })
        return word.hasPrefix("ssh-") || word.hasPrefix("ecdsa-") || word.hasPrefix("sk-")
    }

    private static func privateKeyKind(_ text: String) -> String? {
        let markers = [
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "OpenSSH format"),
            ("PuTTY-User-Key-File-", "PuTTY .ppk"),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "encrypted PKCS#8 PEM"),
            ("PRIVATE KEY-----", "PEM"),
            ("---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----", "SSH.COM format"),
        ]
        let bytes = Array(text.utf8)
        return markers.first { bytes.containsSubsequence(Array($0.0.utf8)) }?.1
    }

    static func parseOpenSSHLine(_ line: Substring) throws(SSHFormatError) -> PublicKeyText {
        let fields = line.split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else {
            throw .notAKey("not an OpenSSH public key line: expected \"type base64 [comment]\"")
        }
        let typeName = String(fields[0])
        if typeName.hasSuffix("-cert-v01@openssh.com") { throw .certificateGiven }
        guard let blob = Data(base64Encoded: String(fields[1])) else {
            if fields[0].contains("=") || fields[0].contains("\"") {
                throw .notAKey("authorized_keys options before the key are not accepted here; give only \"type base64 comment\"")
            }
            throw .notAKey("the key's base64 text is corrupt or truncated")
        }
        let key = try parseBlob(blob, claimedType: typeName)
        let comment = fields.count > 2 ? String(fields[2]).trimmingWhitespace() : ""
        return PublicKeyText(key: key, comment: String(comment))
    }

    private static func parseBlob(_ blob: Data, claimedType: String?) throws(SSHFormatError) -> PublicKey {
        var r = SSHReader(blob)
        let inner: String
        do { inner = try r.readText("key type") } catch {
            throw .notAKey("the key data is truncated or not an SSH public key")
        }
        if let claimedType, inner != claimedType {
            throw .invalid("the line says \"\(claimedType.prefix(64))\" but the key data is \"\(inner.prefix(64))\"; the file was edited or mixed up")
        }
        if inner.hasSuffix("-cert-v01@openssh.com") { throw .certificateGiven }
        do {
            return try PublicKey(blob: blob)
        } catch .truncated(_) {
            throw .notAKey("the key data is truncated (a part of the base64 text is missing)")
        }
    }

    /// RFC 4716: header lines "Tag: value" (a trailing backslash continues a line), then base64.
    static func parseRFC4716(_ lines: ArraySlice<Substring>) throws(SSHFormatError) -> PublicKeyText {
        var comment = ""
        var body = ""
        var inHeader = true
        // The header being read: its tag, and its value so far (continued after a trailing "\").
        var header: (tag: String, value: String)? = nil
        var ended = false
        func finishHeader() {
            guard let (tag, raw) = header else { return }
            header = nil
            guard tag == "comment" else { return }
            var value = raw[...]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            comment = String(value)
        }
        for raw in lines.dropFirst() {
            let line = raw.trimmingWhitespace()
            if line == "---- END SSH2 PUBLIC KEY ----" { ended = true; break }
            if line.hasPrefix("---- BEGIN SSH2 PUBLIC KEY ----") {
                throw .notAKey("found more than one key; give exactly one public key per file")
            }
            if inHeader {
                if header != nil {
                    let continues = line.hasSuffix("\\")
                    header!.value += continues ? String(line.dropLast()) : String(line)
                    if !continues { finishHeader() }
                    continue
                }
                if let colon = line.firstIndex(of: ":"), !line[..<colon].contains(" ") {
                    let value = line[line.index(after: colon)...].trimmingWhitespace()
                    let continues = value.hasSuffix("\\")
                    header = (line[..<colon].lowercased(), String(continues ? value.dropLast() : value))
                    if !continues { finishHeader() }
                    continue
                }
                inHeader = false
            }
            body += line
        }
        guard ended else { throw .notAKey("RFC 4716 key has no \"---- END SSH2 PUBLIC KEY ----\" line; the file is truncated") }
        guard !body.isEmpty, let blob = Data(base64Encoded: body) else {
            throw .notAKey("the RFC 4716 key's base64 text is corrupt or truncated")
        }
        return PublicKeyText(key: try parseBlob(blob, claimedType: nil), comment: comment)
    }
}

extension StringProtocol {
    /// Without leading and trailing blanks (and a leading byte-order mark). Works on Unicode
    /// scalars, whose index steps are O(1): a key file padded with kilobytes of spaces must not
    /// cost quadratic time.
    func trimmingWhitespace() -> SubSequence {
        trimming { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\u{FEFF}" }
    }

    /// The text without leading and trailing characters from `set` (a plain string of characters).
    public func trimmingCharacters(in set: String) -> String {
        let scalars = Set(set.unicodeScalars)
        return String(trimming { scalars.contains($0) })
    }

    func trimming(_ drop: (Unicode.Scalar) -> Bool) -> SubSequence {
        let view = unicodeScalars
        var start = view.startIndex, end = view.endIndex
        while start < end, drop(view[start]) { start = view.index(after: start) }
        while end > start {
            let before = view.index(before: end)
            guard drop(view[before]) else { break }
            end = before
        }
        return self[start..<end]
    }
}

extension Array where Element == UInt8 {
    /// Byte-wise substring search (the markers are ASCII, so this is exact for UTF-8 text).
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        let first = needle[0]
        var i = 0
        while i <= count - needle.count {
            if self[i] == first, self[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
