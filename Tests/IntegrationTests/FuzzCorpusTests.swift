import Foundation
import Testing
import TestSupport

/// Every input in the committed fuzz corpora (seeds, inputs that found new paths, and the crashes
/// fuzzing found, kept as regressions) goes through its parser again: none may crash.
@Suite("fuzz corpora replay")
struct FuzzCorpusTests {
    static let targets = ["public-key", "certificate", "krl", "sshsig", "config", "sshd-config", "api-request"]

    @Test("no committed input crashes its parser", arguments: targets)
    func replay(target: String) async throws {
        let fuzzer = try SSHCA.executableURL().deletingLastPathComponent().appendingPathComponent("sshca-fuzz")
        var corpus = URL(fileURLWithPath: #filePath)
        for _ in 0..<2 { corpus.deleteLastPathComponent() }
        corpus = corpus.appendingPathComponent("FuzzCorpus").appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted().map { corpus.appendingPathComponent($0).path }
        #expect(files.count >= 3, "the \(target) corpus is missing")
        let result = try await runProcess(fuzzer.path, [target] + files, environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(result.succeeded, "\(result)")
        #expect(result.stdoutText.contains("\(files.count) input(s), no crash"), "\(result)")
    }
}
