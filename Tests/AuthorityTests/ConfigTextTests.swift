@testable import Common
import Foundation
import Testing
import TestSupport
@testable import Authority

private func configError(_ text: String, fileName: String = "test.toml", sourceLocation: SourceLocation = #_sourceLocation) -> SSHCAError? {
    do throws(SSHCAError) {
        let parsed = try ConfigText(parsing: text, fileName: fileName)
        Issue.record("accepted: \(parsed.entries)", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.code == .badConfig, sourceLocation: sourceLocation)
        return error
    }
}

@Suite("Configuration text (TOML subset)")
struct ConfigTextTests {
    func values(_ text: String) throws -> [String: ConfigValue] {
        let parsed = try ConfigText(parsing: text, fileName: "test.toml")
        return Dictionary(uniqueKeysWithValues: parsed.entries.map { ($0.table.isEmpty ? $0.key : $0.table + "." + $0.key, $0.value) })
    }

    @Test func everyValueKind() throws {
        let text = #"""
        basic = "hello world"
        escapes = "quote \" backslash \\ newline \n tab \t cr \r e-acute \u00e9 smile \U0001F600"
        literal = 'C:\path\no escapes "here"'
        empty = ""
        emptyLiteral = ''
        hash = "not # a comment"
        positive = 42
        negative = -7
        plus = +3
        underscores = 1_000_000
        zero = 0
        big = 9223372036854775807
        small = -9223372036854775808
        yes = true
        no = false
        list = ["a", 'b', 1, true]
        emptyList = []
        unicode = "grüße ✓"
        """#
        let v = try values(text)
        #expect(v["basic"] == .string("hello world"))
        #expect(v["escapes"] == .string("quote \" backslash \\ newline \n tab \t cr \r e-acute é smile 😀"))
        #expect(v["literal"] == .string(#"C:\path\no escapes "here""#))
        #expect(v["empty"] == .string(""))
        #expect(v["emptyLiteral"] == .string(""))
        #expect(v["hash"] == .string("not # a comment"))
        #expect(v["positive"] == .integer(42))
        #expect(v["negative"] == .integer(-7))
        #expect(v["plus"] == .integer(3))
        #expect(v["underscores"] == .integer(1_000_000))
        #expect(v["zero"] == .integer(0))
        #expect(v["big"] == .integer(.max))
        #expect(v["small"] == .integer(.min))
        #expect(v["yes"] == .boolean(true))
        #expect(v["no"] == .boolean(false))
        #expect(v["list"] == .array([.string("a"), .string("b"), .integer(1), .boolean(true)]))
        #expect(v["emptyList"] == .array([]))
        #expect(v["unicode"] == .string("grüße ✓"))
        #expect(v.count == 18)
    }

    @Test func commentsTablesAndLines() throws {
        let text = """
        # leading comment

        top = 1 # trailing comment
        [ca]   # a table
        user_key = "file"
          # indented comment
        [role.admin]
        name = "x"
        [ "quoted table" . sub ]
        a.b = 2
        "quoted key" = 3
        """
        let parsed = try ConfigText(parsing: text, fileName: "t.toml")
        #expect(parsed.entries.map(\.table) == ["", "ca", "role.admin", "quoted table.sub", "quoted table.sub"])
        #expect(parsed.entries.map(\.key) == ["top", "user_key", "name", "a.b", "quoted key"])
        #expect(parsed.entries.map(\.line) == [3, 5, 8, 10, 11])
        #expect(parsed.tables.map(\.name) == ["ca", "role.admin", "quoted table.sub"])
        #expect(parsed.tables.map(\.line) == [4, 7, 9])
        #expect(parsed.fileName == "t.toml")
    }

    @Test func multiLineListsKeepTheKeysLine() throws {
        let text = """
        [certificates]
        user_extensions = [
            "permit-pty",      # the terminal
            # a comment inside the list
            "permit-agent-forwarding",

            'x@example.com',   # trailing comma allowed
        ]
        after = 1
        """
        let parsed = try ConfigText(parsing: text)
        #expect(parsed.entries.count == 2)
        #expect(parsed.entries[0].value == .array([.string("permit-pty"), .string("permit-agent-forwarding"), .string("x@example.com")]))
        #expect(parsed.entries[0].line == 2)
        #expect(parsed.entries[1].line == 9)
    }

    @Test func crlfAndEmptyFiles() throws {
        let crlf = "[ca]\r\nuser_key = \"file\"\r\n# c\r\nhost_key = 'agent'\r\n"
        let parsed = try ConfigText(parsing: crlf)
        #expect(parsed.entries.map(\.value) == [.string("file"), .string("agent")])
        #expect(parsed.entries.map(\.line) == [2, 4])
        #expect(try ConfigText(parsing: "").entries.isEmpty)
        #expect(try ConfigText(parsing: "\n\n# only comments\n   \n").entries.isEmpty)
        #expect(try ConfigText(parsing: "x = 1").entries.count == 1) // no final newline
    }

    @Test func sameKeyInDifferentTablesIsFine() throws {
        let v = try values("[a]\nx = 1\n[b]\nx = 2\n")
        #expect(v["a.x"] == .integer(1))
        #expect(v["b.x"] == .integer(2))
    }

    // MARK: errors name the file and line

    @Test("errors carry file:LINE:", arguments: [
        ("x = 1\ny = 2\nx = 3\n", 3, "twice"),
        ("[ca]\nuser_key = \"a\"\n\nuser_key = \"b\"\n", 4, "twice"),
        ("a = \"bad \\q escape\"\n", 1, "unknown escape"),
        ("\n\na = \"unterminated\n", 3, "unterminated"),
        ("a = \"unterminated at end", 1, "unterminated"),
        ("a = 'unterminated\nb = 1\n", 1, "unterminated"),
        ("\na = \"\"\"multi\nline\"\"\"\n", 2, "multi-line"),
        ("a = [[1], [2]]\n", 1, "lists inside lists"),
        ("[[servers]]\n", 1, "arrays of tables"),
        ("x = hello\n", 1, "\"string\""),
        ("x = 16h\n", 1, "not a number"),
        ("x = 99999999999999999999\n", 1, "not a number"),
        ("x = 0x10\n", 1, "not a number"),
        ("x = True\n", 1, "value"),
        ("x = trueish\n", 1, "quotes"),
        ("x\n", 1, "expected ="),
        ("x 1\n", 1, "expected ="),
        ("\n\nx = \n", 3, "value"),
        ("x =", 1, "missing value"),
        ("x = 1 2\n", 1, "one setting per line"),
        ("x = \"a\" \"b\"\n", 1, "one setting per line"),
        ("[ca\nx = 1\n", 1, "]"),
        ("[ca] x = 1\n", 1, "one setting per line"),
        ("x = [1 2]\n", 1, "expected , or ]"),
        ("x = [1,\n2,\n", 3, "value"),
        ("x = \"a\u{01}b\"\n", 1, "control character"),
        ("x = \"\\uD800\"\n", 1, "\\u"),
        ("x = \"\\u12\"", 1, "\\u"),
        ("x = \"\\UFFFFFFFF\"\n", 1, "\\U"),
        ("= 1\n", 1, "name"),
        ("[]\n", 1, "name"),
        ("x.=1\n", 1, "name"),
        ("x = @\n", 1, "value"),
        ("x = -\n", 1, "not a number"),
    ])
    func errorsNameTheLine(text: String, line: Int, fragment: String) {
        guard let error = configError(text, fileName: "test.toml") else { return }
        #expect(error.reason.hasPrefix("test.toml:\(line): "), "\(text.debugDescription) -> \(error.reason)")
        #expect(error.reason.contains(fragment), "\(text.debugDescription) -> \(error.reason)")
    }

    /// A table opened twice is reported at the second header, like a key set twice.
    @Test func duplicateTableNamesTheSecondHeader() {
        for (text, line) in [("[ca]\n[ca]\nx = 1\n", 2), ("[ca]\nx = 1\n\n[certificates]\n[ca]\ny = 2\n", 5), ("[a]\n[a]", 2)] {
            guard let error = configError(text) else { continue }
            #expect(error.reason.contains("appears twice"))
            #expect(error.reason.hasPrefix("test.toml:\(line): "), "\(text.debugDescription) -> \(error.reason)")
        }
    }

    @Test func oversizedFilesAreRefused() {
        let big = "# " + String(repeating: "x", count: ConfigText.maximumLength) + "\n"
        let error = configError(big)
        #expect(error?.reason.contains("1 MiB") == true)
    }
}
