import Foundation
import TestSupport

/// Keys of every type sshca handles, made once per test run by ssh-keygen.
final class KeyZoo: Sendable {
    struct Entry: Sendable {
        /// ssh-keygen -t argument.
        var type: String
        /// File name in the zoo directory (private key; the public key is NAME.pub).
        var name: String
        /// The .pub line.
        var line: String
        var blob: Data { blobOfLine(line)! }
    }

    let dir: TempDir
    let entries: [Entry]

    static let shared = try! KeyZoo()

    private init() throws {
        dir = try TempDir(lingering: true)
        let specs: [(String, String, Int?)] = [
            ("ed25519", "ed25519", nil),
            ("ecdsa", "ecdsa256", 256),
            ("ecdsa", "ecdsa384", 384),
            ("ecdsa", "ecdsa521", 521),
            ("rsa", "rsa2048", 2048),
            ("ed25519-sk", "sked25519", nil),
            ("ecdsa-sk", "skecdsa", nil),
        ]
        var made: [Entry] = []
        for (type, name, bits) in specs {
            let line = try sshKeygenKey(in: dir, name: name, type: type, bits: bits, comment: "\(name)@zoo")
            made.append(Entry(type: type, name: name, line: line))
        }
        entries = made
    }

    subscript(name: String) -> Entry { entries.first { $0.name == name }! }

    func publicPath(_ name: String) -> String { dir.file(name + ".pub") }
    func privatePath(_ name: String) -> String { dir.file(name) }

    static let names = ["ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa2048", "sked25519", "skecdsa"]
}
