import Common
import Testing
import TestSupport
@testable import sshca

/// `sshca sign` reads plain argument vectors with a hand parser (SignFastPath) and everything else
/// with ArgumentParser. Whatever the fast path accepts must parse to exactly what ArgumentParser
/// makes of the same vector; whatever it is unsure about it must decline (nil).
@Suite("sign argument fast path")
struct SignFastPathTests {
    /// ArgumentParser's reading, or nil when it refuses the vector.
    static func argumentParser(_ args: [String]) -> SignArguments? {
        (try? Sign.parse(args))?.arguments
    }

    static func expectSame(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let fast = SignFastPath.parse(args)
        #expect(fast != nil, "fast path declined \(args)", sourceLocation: sourceLocation)
        guard let fast else { return }
        do {
            let slow = try Sign.parse(args).arguments
            #expect(fast == slow, "\(args)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("fast path accepted \(args) but ArgumentParser refuses it: \(Sign.message(for: error))", sourceLocation: sourceLocation)
        }
    }

    @Test("accepted vectors parse exactly as ArgumentParser parses them", arguments: [
        ["--key-id", "alice", "--principals", "alice", "id.pub"],
        ["id.pub", "--key-id", "alice", "--principals", "alice,bob"],
        ["--key-id=alice", "--principals=alice,bob", "/home/alice/.ssh/id_ed25519.pub"],
        ["--key-id", "alice", "--principals", "alice", "-"],
        ["--key-id", "alice", "--principals", "alice", "--output", "-", "-"],
        ["--key-id", "alice", "--principals", "alice", "--output=-", "id.pub"],
        ["--key-id", "-", "--principals", "-", "-"],
        ["--home", "/srv/ca", "--passphrase-file", "/root/pass", "--key-id", "backup", "--principals", "backup",
         "--validity", "30d", "--serial", "12", "--force-command", "/usr/local/bin/backup --all",
         "--source-address", "192.0.2.10/32,2001:db8::/32", "--output", "/tmp/out-cert.pub", "backup.pub"],
        ["--host", "--key-id", "web1", "--principals", "web1.example.com,web1", "/etc/ssh/ssh_host_ed25519_key.pub"],
        ["--verify-required", "--no-default-extensions", "--host", "--key-id", "k", "--principals", "p", "f"],
        ["--key-id", "k", "--principals", "p", "--extension", "permit-pty", "--extension=login@example.com=root",
         "--extension", "x@example.com", "f"],
        ["--extension=a@example.com=1", "--extension=a@example.com=2", "--key-id=k", "--principals=p", "f"],
        ["--key-id", "", "--principals", "", ""],
        ["--key-id", "k", "--principals", "p", "--extension", "", "f"],
        ["--key-id=a=b", "--principals=p", "--force-command=echo a=b", "f"],
        ["--key-id", "Alice Smith ✓", "--principals", "grüße", "file with spaces.pub"],
        ["--key-id", "host", "--principals", "extension", "home"],
        ["--key-id", "k", "--principals", "p", "--validity", "-5m:+1d", "f"],
        ["--key-id", "k", "--principals", "p", "--validity=-5m:+1d", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "+16h", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "20300101:20300201", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "always:forever", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "-", "f"],
        ["--key-id", "k", "--principals", "p", "--source-address=-1", "f"],
        ["--key-id", "k", "--principals", "p", "--serial=-5", "f"],
        ["--key-id", "k", "--principals", "p", "help"],
        ["--key-id", "k", "--principals", "p", "sign"],
    ])
    func accepted(args: [String]) {
        Self.expectSame(args)
    }

    /// `--name=` with nothing after the "=": ArgumentParser reads this as a missing value (and for
    /// --extension takes the next word as the value), so the fast path must not read it as "".
    @Test("an empty attached value is not an empty string", arguments: [
        ["--key-id=", "--principals=", "f"],
        ["--key-id=", "--principals", "p", "f"],
        ["--key-id", "k", "--principals", "p", "--extension=", "f"],
        ["--key-id", "k", "--principals", "p", "--home=", "f"],
        ["--key-id", "k", "--principals", "p", "--passphrase-file=", "f"],
        ["--key-id", "k", "--principals", "p", "--output=", "f"],
    ])
    func emptyAttachedValues(args: [String]) {
        let fast = SignFastPath.parse(args)
        let slow = Self.argumentParser(args)
        #expect(fast == nil || fast == slow, "fast path: \(String(describing: fast)); ArgumentParser: \(String(describing: slow))")
    }

    /// Unconditional --validity: even a value that looks like an option is the validity.
    @Test("--validity takes the next word whatever it looks like", arguments: [
        ["--key-id", "k", "--principals", "p", "--validity", "--host", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "--help", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "-h", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "--", "f"],
        ["--validity", "--key-id", "--key-id", "k", "--principals", "p", "f"],
    ])
    func unconditionalValidity(args: [String]) {
        let fast = SignFastPath.parse(args)
        let slow = Self.argumentParser(args)
        #expect(fast == nil || fast == slow, "fast \(String(describing: fast)) vs ArgumentParser \(String(describing: slow))")
    }

    @Test("vectors the fast path must leave to ArgumentParser", arguments: [
        ["--help"],
        ["-h"],
        ["--key-id", "k", "--principals", "p", "f", "--help"],
        ["--key-id", "k", "--principals", "p", "f", "-h"],
        ["--key-id", "k", "--principals", "p", "--version", "f"],
        ["--key-id", "k", "--principals", "p", "--unknown", "f"],
        ["--key-id", "k", "--principals", "p", "--Key-Id", "x", "f"],
        ["--key-id", "k", "--principals", "p", "-k", "f"],
        ["--key-id", "k", "--principals", "p", "-x"],
        ["--key-id", "a", "--key-id", "b", "--principals", "p", "f"],
        ["--key-id=a", "--key-id=a", "--principals", "p", "f"],
        ["--key-id", "k", "--principals", "p", "--principals", "q", "f"],
        ["--key-id", "k", "--principals", "p", "--home", "/a", "--home", "/b", "f"],
        ["--key-id", "k", "--principals", "p", "--output", "a", "--output=b", "f"],
        ["--key-id", "k", "--principals", "p", "--validity", "1d", "--validity", "2d", "f"],
        ["--key-id", "k", "--principals", "p", "--host", "--host", "f"],
        ["--key-id", "k", "--principals", "p", "--host=true", "f"],
        ["--key-id", "k", "--principals", "p", "--no-default-extensions=", "f"],
        ["--key-id", "-x", "--principals", "p", "f"],
        ["--key-id", "k", "--principals", "--host", "f"],
        ["--key-id", "k", "--principals", "p", "--force-command", "-c", "f"],
        ["--key-id", "k", "--principals", "p", "--extension", "-x", "f"],
        ["--key-id", "k", "--principals", "p", "--output", "--", "f"],
        ["--principals", "p", "f"],
        ["--key-id", "k", "f"],
        ["--key-id", "k", "--principals", "p"],
        ["--key-id", "k", "--principals", "p", "a.pub", "b.pub"],
        ["--key-id", "k", "--principals", "p", "--", "f"],
        ["--key-id", "k", "--principals", "p", "f", "--"],
        ["--key-id", "k", "--principals", "p", "f", "--output"],
        ["--key-id", "k", "--principals", "p", "f", "--extension"],
        ["--key-id", "k", "--principals", "p", "--=x", "f"],
        ["--key-id", "k", "--principals", "p", "-", "-"],
        [],
    ])
    func declined(args: [String]) {
        #expect(SignFastPath.parse(args) == nil)
    }

    /// Many generated vectors: all the plain ones are taken by the fast path and agree with
    /// ArgumentParser.
    @Test func generatedPlainVectorsAgree() {
        var rng = SplitMix(seed: 2024)
        var accepted = 0
        for _ in 0..<400 {
            var items: [[String]] = []
            // (An empty value is always given as its own word: see emptyAttachedValues.)
            func option(_ name: String, _ value: String) -> [String] {
                value.isEmpty || Bool.random(using: &rng) ? ["--\(name)", value] : ["--\(name)=\(value)"]
            }
            let words = ["a", "b,c", "x y", "-", "", "ünï", "=", "a=b", "16h", "/p/q", "host", "help"]
            func word() -> String { words.randomElement(using: &rng)! }
            func safeWord() -> String { var w = word(); if w == "-" && Bool.random(using: &rng) { w = "dash" }; return w }
            items.append(option("key-id", safeWord()))
            items.append(option("principals", safeWord()))
            for name in ["home", "passphrase-file", "serial", "force-command", "source-address", "output"] where Bool.random(using: &rng) {
                items.append(option(name, safeWord()))
            }
            if Bool.random(using: &rng) {
                let validity = ["16h", "+1d", "-5m:+1d", "always:forever", "20300101Z", "-1h:-1m"].randomElement(using: &rng)!
                items.append(option("validity", validity))
            }
            for flag in ["host", "verify-required", "no-default-extensions"] where Bool.random(using: &rng) {
                items.append(["--\(flag)"])
            }
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                items.append(option("extension", ["permit-pty", "a@example.com=1", "b@example.com", "x=y=z"].randomElement(using: &rng)!))
            }
            let file = ["id.pub", "-", "k", "dir/k.pub"].randomElement(using: &rng)!
            items.insert([file], at: Int.random(in: 0...items.count, using: &rng))
            // Shuffle whole items (an option stays next to its value); extension order is kept as given.
            items.shuffle(using: &rng)
            let args = items.flatMap { $0 }
            Self.expectSame(args)
            accepted += 1
        }
        #expect(accepted == 400)
    }

    /// Random token soup: whenever the fast path says yes, ArgumentParser agrees exactly.
    @Test func randomVectorsNeverDisagree() {
        let tokens = [
            "--key-id", "--key-id=k1", "k2", "--principals", "--principals=a,b", "a", "--host", "--host=1",
            "--verify-required", "--no-default-extensions", "--validity", "--validity=-5m:+1d", "-5m:+1d", "16h",
            "--extension", "--extension=x@example.com=1", "permit-pty", "--output", "-", "--home", "/srv/ca",
            "--passphrase-file", "--serial", "7", "--force-command", "ls -l", "--source-address", "10.0.0.0/8",
            "id.pub", "--", "--help", "-h", "", "=", "--x", "help", "--output=-", "-x", "--=", "---",
            "--key-id=-x", "--extension=-", "--serial=-1", "--home=/a",
        ]
        // (Empty attached values such as "--home=" are covered by emptyAttachedValues.)
        var rng = SplitMix(seed: 77)
        var accepted = 0
        for _ in 0..<4000 {
            // Half the vectors start with the required options, so a fair share is accepted.
            let prefix = Bool.random(using: &rng) ? ["--key-id", "k", "--principals", "p"] : []
            let soup = (0..<Int.random(in: 0...8, using: &rng)).map { _ in tokens.randomElement(using: &rng)! }
            let args = prefix + soup + (Bool.random(using: &rng) ? ["f"] : [])
            guard let fast = SignFastPath.parse(args) else { continue }
            accepted += 1
            let slow = Self.argumentParser(args)
            #expect(slow == fast, "\(args)")
        }
        #expect(accepted > 100)
    }
}
