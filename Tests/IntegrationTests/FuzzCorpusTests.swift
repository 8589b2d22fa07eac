import Common
import Foundation
import Testing
import TestSupport

/// Every input in the committed fuzz corpora (seeds, inputs that found new paths, and the crashes
/// fuzzing found, kept as regressions) goes through its parser again: none may crash.
@Suite("fuzz corpora replay")
struct FuzzCorpusTests {
    static let targets = ["public-key", "certificate", "krl", "sshsig", "config", "sshd-config", "api-request",
                          "private-key", "agent-reply", "service-answer", "sshd-t-output", "api-query"]

    static var corpusRoot: URL {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<2 { root.deleteLastPathComponent() }
        return root.appendingPathComponent("FuzzCorpus")
    }

    @Test("every corpus is replayed, and every target has a recorded fuzz run without a finding in RUNS.tsv")
    func everyCorpusReplayed() throws {
        let directories = try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path)
            .filter { $0 != "logs" && $0 != "RUNS.tsv" }.sorted()
        #expect(directories == Self.targets.sorted())
        let rows = try String(contentsOf: Self.corpusRoot.appendingPathComponent("RUNS.tsv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        for target in Self.targets {
            // The newest run of each target decides: a finding stays red until a later run is clean.
            let newest = rows.last { $0.first == target && $0.count == 6 }
            #expect(newest.map { (Int($0[1]) ?? 0) >= 100_000 && $0[5].hasPrefix("no crash") } == true,
                    "the newest fuzz run of \(target) in RUNS.tsv is missing, under 100,000 executions, or found something: \(newest ?? [])")
        }
    }

    @Test("no committed input crashes its parser", arguments: targets)
    func replay(target: String) async throws {
        let fuzzer = try SSHCA.executableURL().deletingLastPathComponent().appendingPathComponent("sshca-fuzz")
        let corpus = Self.corpusRoot.appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted().map { corpus.appendingPathComponent($0).path }
        #expect(files.count >= 3, "the \(target) corpus is missing")
        let result = try await runProcess(fuzzer.path, [target] + files, environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(result.succeeded, "\(result)")
        #expect(result.stdoutText.contains("\(files.count) input(s), no crash"), "\(result)")
    }
}
