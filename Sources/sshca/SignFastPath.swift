import Common
import ArgumentParser

/// `sshca sign` is run once per certificate, often in loops, so its start-up time matters: it is
/// benchmarked against `ssh-keygen -s`. ArgumentParser reflects over every command's properties
/// before it parses (about 2 ms here), so plain `sign` invocations are read by this small parser
/// straight into the same `Sign` value. It only accepts the unambiguous forms; anything else
/// (--help, an unknown or repeated option, a value that looks like an option, a missing
/// argument) returns nil and goes through ArgumentParser, which gives the usual help and errors.
/// CLITests checks that both parsers produce the same `Sign` for the forms this one accepts.
enum SignFastPath {
    // Arrays, not Sets: hashing's first use costs more than scanning a dozen names.
    static let flags = ["host", "verify-required", "no-default-extensions"]
    static let options = [
        "home", "passphrase-file", "key-id", "principals", "validity", "serial", "force-command",
        "source-address", "output",
    ]

    static func parse(_ arguments: [String]) -> SignArguments? {
        var values: [(name: String, value: String)] = []
        var flagsSet: [String] = []
        var positional: [String] = []
        var extensions: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                guard argument == "-" || !argument.hasPrefix("-") else { return nil }
                positional.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var value: String? = nil
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
                // ArgumentParser reports "--home=" as a missing value; leave that to it.
                guard value?.isEmpty == false else { return nil }
            }
            if flags.contains(name) {
                guard value == nil, !flagsSet.contains(name) else { return nil }
                flagsSet.append(name)
                continue
            }
            guard name == "extension" || options.contains(name) else { return nil }
            if value == nil {
                guard index < arguments.count else { return nil }
                let next = arguments[index]
                // --validity takes its value unconditionally (ArgumentParser's .unconditional).
                guard name == "validity" || next == "-" || !next.hasPrefix("-") else { return nil }
                value = next
                index += 1
            }
            guard let value else { return nil }
            if name == "extension" {
                extensions.append(value)
            } else {
                guard !values.contains(where: { $0.name == name }) else { return nil }
                values.append((name, value))
            }
        }
        func value(_ name: String) -> String? { values.first { $0.name == name }?.value }
        guard let keyId = value("key-id"), let principals = value("principals"), positional.count == 1 else { return nil }
        return SignArguments(
            home: value("home"), passphraseFile: value("passphrase-file"), keyId: keyId, principals: principals,
            host: flagsSet.contains("host"), validity: value("validity"), serial: value("serial"),
            forceCommand: value("force-command"), sourceAddress: value("source-address"),
            verifyRequired: flagsSet.contains("verify-required"), extensions: extensions,
            noDefaultExtensions: flagsSet.contains("no-default-extensions"), output: value("output"),
            publicKeyFile: positional[0])
    }
}
