/// Text on its way into the ledger. SQLite's text binding (as GRDB calls it, with length -1)
/// ends a string at its first NUL byte, so a value holding one would be stored shorter than it
/// was given: a hash over the whole string would no longer match the row, and a key id "a\0b"
/// would be stored, and revoked, as "a". Every text the ledger keeps passes through here.
package enum LedgerText {
    /// A value that identifies something (a key id, a principal, a name, a reason): stored as
    /// given or refused, never altered.
    package static func checked(_ value: String, _ what: String) throws(LedgerError) -> String {
        guard !value.utf8.contains(0) else {
            throw LedgerError(.badInput, "the \(what) contains a NUL byte, which the ledger cannot store as given; use printable text")
        }
        return value
    }

    /// Audit text: control characters (NUL among them) are written as \xNN before the entry is
    /// hashed, so the stored text is exactly the text the chain covers, whatever a caller passed.
    package static func audit(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    package static func isControl(_ scalar: Unicode.Scalar) -> Bool { scalar.value < 0x20 || scalar.value == 0x7f }
}
