/// A value in the configuration file.
public enum ConfigValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case boolean(Bool)
    case array([ConfigValue])

    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .boolean: return "true or false"
        case .array: return "a list"
        }
    }
}

/// One `key = value` line, with where it stood.
public struct ConfigEntry: Equatable, Sendable {
    public var table: String
    public var key: String
    public var value: ConfigValue
    public var line: Int
}

/// The configuration file format: TOML, the strict subset sshca needs. Tables (`[ca]`,
/// `[role.admin]`), `key = value` with basic or literal strings, integers, booleans and lists
/// of those (lists may span lines), `#` comments. Anything else is an error naming the line.
public struct ConfigText: Sendable {
    public let fileName: String
    public private(set) var entries: [ConfigEntry] = []
    /// Tables in the order they were opened, with their header line.
    public private(set) var tables: [(name: String, line: Int)] = []

    public static let maximumLength = 1 << 20

    public init(parsing text: String, fileName: String = "sshca.toml") throws(SSHCAError) {
        self.fileName = fileName
        guard text.utf8.count <= Self.maximumLength else {
            throw SSHCAError(.badConfig, "\(fileName): the file is over 1 MiB; this is not a configuration file")
        }
        var parser = Parser(chars: Array(text.unicodeScalars), fileName: fileName)
        var table = ""
        var seenTables: Set<String> = [""]
        var seenKeys: Set<String> = []
        while true {
            parser.skipBlankAndComments()
            guard let c = parser.peek() else { break }
            let line = parser.line
            if c == "[" {
                parser.advance()
                if parser.peek() == "[" {
                    throw parser.error("arrays of tables ([[...]]) are not used by sshca; write [table.name] instead")
                }
                let name = try parser.dottedKey()
                parser.skipSpaces()
                guard parser.peek() == "]" else { throw parser.error("expected ] to close the table name") }
                parser.advance()
                try parser.endOfLine()
                guard seenTables.insert(name).inserted else {
                    throw SSHCAError(.badConfig, "\(fileName):\(line): table [\(name)] appears twice; merge the two")
                }
                table = name
                tables.append((name, line))
                continue
            }
            let key = try parser.dottedKey()
            parser.skipSpaces()
            guard parser.peek() == "=" else { throw parser.error("expected = after \"\(key)\"") }
            parser.advance()
            parser.skipSpaces()
            let value = try parser.value()
            try parser.endOfLine()
            let full = table.isEmpty ? key : table + "." + key
            guard seenKeys.insert(full).inserted else {
                throw SSHCAError(.badConfig, "\(fileName):\(line): \"\(key)\" is set twice in [\(table)]")
            }
            entries.append(ConfigEntry(table: table, key: key, value: value, line: line))
        }
    }

    private struct Parser {
        let chars: [Unicode.Scalar]
        let fileName: String
        var index = 0
        var line = 1

        func peek() -> Unicode.Scalar? { index < chars.count ? chars[index] : nil }

        mutating func advance() {
            if chars[index] == "\n" { line += 1 }
            index += 1
        }

        func error(_ message: String) -> SSHCAError {
            SSHCAError(.badConfig, "\(fileName):\(line): \(message)")
        }

        mutating func skipSpaces() {
            while let c = peek(), c == " " || c == "\t" { advance() }
        }

        mutating func skipComment() {
            if peek() == "#" { while let c = peek(), c != "\n" { advance() } }
        }

        mutating func skipBlankAndComments() {
            while let c = peek() {
                if c == " " || c == "\t" || c == "\n" || c == "\r" { advance() } else if c == "#" { skipComment() } else { break }
            }
        }

        mutating func endOfLine() throws(SSHCAError) {
            skipSpaces()
            skipComment()
            if peek() == "\r" { advance() }
            guard let c = peek() else { return }
            guard c == "\n" else { throw error("unexpected text after the value; one setting per line") }
            advance()
        }

        static func isBareKeyChar(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
        }

        mutating func dottedKey() throws(SSHCAError) -> String {
            var parts: [String] = []
            repeat {
                skipSpaces()
                if peek() == "\"" {
                    parts.append(try basicString())
                } else {
                    var part = ""
                    while let c = peek(), Self.isBareKeyChar(c) { part.unicodeScalars.append(c); advance() }
                    guard !part.isEmpty else { throw error("expected a name (letters, digits, _ and -)") }
                    parts.append(part)
                }
                skipSpaces()
                guard peek() == "." else { break }
                advance()
            } while true
            return parts.joined(separator: ".")
        }

        mutating func value() throws(SSHCAError) -> ConfigValue {
            guard let c = peek() else { throw error("missing value") }
            switch c {
            case "\"":
                if chars.count > index + 2, chars[index + 1] == "\"", chars[index + 2] == "\"" {
                    throw error("multi-line strings are not used by sshca")
                }
                return .string(try basicString())
            case "'":
                advance()
                var s = ""
                while let c = peek(), c != "'" {
                    guard c != "\n" else { throw error("unterminated string") }
                    s.unicodeScalars.append(c)
                    advance()
                }
                guard peek() == "'" else { throw error("unterminated string") }
                advance()
                return .string(s)
            case "[":
                advance()
                var items: [ConfigValue] = []
                while true {
                    skipBlankAndComments()
                    if peek() == "]" { advance(); break }
                    // Refused before recursing: "[[[[..." must not exhaust the stack.
                    if peek() == "[" { throw error("lists inside lists are not used by sshca") }
                    let item = try value()
                    if case .array = item { throw error("lists inside lists are not used by sshca") }
                    items.append(item)
                    skipBlankAndComments()
                    if peek() == "," { advance(); continue }
                    if peek() == "]" { advance(); break }
                    throw error("expected , or ] in the list")
                }
                return .array(items)
            case "t", "f":
                var word = ""
                while let c = peek(), Self.isBareKeyChar(c) { word.unicodeScalars.append(c); advance() }
                if word == "true" { return .boolean(true) }
                if word == "false" { return .boolean(false) }
                throw error("unknown value \"\(word)\"; strings need quotes, like \"\(word)\"")
            default:
                if c == "-" || c == "+" || (c >= "0" && c <= "9") {
                    var text = ""
                    while let c = peek(), Self.isBareKeyChar(c) || c == "+" { text.unicodeScalars.append(c); advance() }
                    let digits = text.replacingUnderscores()
                    if let n = Int64(digits) { return .integer(n) }
                    throw error("\"\(text)\" is not a number; durations and other text need quotes, like \"\(text)\"")
                }
                throw error("a value must be a \"string\", a number, true/false or a [list]")
            }
        }

        mutating func basicString() throws(SSHCAError) -> String {
            advance() // opening quote
            var s = ""
            while let c = peek() {
                if c == "\"" { advance(); return s }
                if c == "\n" { break }
                if c == "\\" {
                    advance()
                    guard let e = peek() else { break }
                    advance()
                    switch e {
                    case "\"": s += "\""
                    case "\\": s += "\\"
                    case "n": s += "\n"
                    case "t": s += "\t"
                    case "r": s += "\r"
                    case "u", "U":
                        let count = e == "u" ? 4 : 8
                        var hex = ""
                        for _ in 0..<count {
                            guard let h = peek() else { throw error("unterminated \\\(e) escape") }
                            hex.unicodeScalars.append(h)
                            advance()
                        }
                        guard let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else {
                            throw error("invalid \\\(e) escape \"\(hex)\"")
                        }
                        s.unicodeScalars.append(scalar)
                    default:
                        throw error("unknown escape \\\(e) in a string (use \\\\ for a backslash)")
                    }
                    continue
                }
                guard c.value >= 0x20 || c == "\t" else { throw error("control character in a string") }
                s.unicodeScalars.append(c)
                advance()
            }
            throw error("unterminated string (a \" is missing)")
        }
    }
}

extension ConfigText {
    /// `text` as a basic string this parser reads back as `text`: quotes, backslashes and
    /// control characters escaped.
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(unicodeScalars.filter { $0 != "_" })
    }
}
