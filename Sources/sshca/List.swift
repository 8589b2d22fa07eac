import Common
import ArgumentParser
import Authority
import Client
import Ledger
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    FileHandleLite.standardOutput.write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List issued certificates from the ledger.",
        discussion: helpText("""
        Answers "who holds a certificate for root right now?":
          sshca list --principal root --active
        Filters combine. --json prints an array for scripts (with the certificates themselves).
        """)
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("Only certificates naming this principal.", valueName: "name"))
    var principal: String?

    @Option(name: .long, help: ArgumentHelp("Only certificates with this key id.", valueName: "id"))
    var keyId: String?

    @Flag(name: .long, help: "Only certificates valid now and not revoked.")
    var active = false

    @Flag(name: .long, help: "Only expired certificates.")
    var expired = false

    @Flag(name: .long, help: "Only revoked certificates.")
    var revoked = false

    @Option(name: .long, help: ArgumentHelp("At most this many (the lowest serials first).", valueName: "n"))
    var limit: Int?

    @Option(name: .long, help: ArgumentHelp("Only serials above this one (to page through with --limit).", valueName: "serial"))
    var after: UInt64?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        if [active, expired, revoked].filter({ $0 }).count > 1 {
            throw ValidationError("choose at most one of --active, --expired and --revoked")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be 1 or more") }
    }

    @OptionGroup(title: "Through the CA service (security staff)") var remote: RemoteOptions

    func run() async throws {
        try await reportingErrors {
            let status: CertificateQuery.Status = active ? .active : expired ? .expired : revoked ? .revoked : .any
            let summaries: [CertificateSummary]
            if remote.caUrl != nil {
                let client = try remote.client()
                let credential = try remote.credential()
                var query: [(String, String)] = []
                if let principal { query.append(("principal", principal)) }
                if let keyId { query.append(("keyId", keyId)) }
                if status != .any { query.append(("status", status.rawValue)) }
                let q = query
                summaries = try await client.certificates(query: q, limit: limit, after: after, credential: credential)
            } else {
                let authority = try CertificateAuthority(home: home.caHome)
                let now = Clock.now()
                let found = try await authority.certificates(CertificateQuery(principal: principal, keyID: keyId, status: status, limit: limit, after: after), now: now)
                summaries = found.map { CertificateSummary($0, now: now) }
            }
            if json {
                try printJSON(summaries)
            } else if summaries.isEmpty {
                printNote("no certificates match")
            } else {
                print(CertificateSummary.tableHeader)
                for summary in summaries { print(summary.tableRow) }
            }
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one certificate from the ledger, with its revocation if any.")

    @OptionGroup var home: HomeOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Argument(help: ArgumentHelp("The certificate's serial number.", valueName: "serial"))
    var serial: String

    @OptionGroup(title: "Through the CA service (security staff)") var remote: RemoteOptions

    func run() async throws {
        try await reportingErrors {
            guard let number = UInt64(serial) else {
                throw SSHCAError(.badInput, "\"\(serial)\" is not a serial number")
            }
            let summary: CertificateSummary
            if remote.caUrl != nil {
                let client = try remote.client()
                let credential = try remote.credential()
                summary = try await client.certificate(serial: number, credential: credential)
            } else {
                let authority = try CertificateAuthority(home: home.caHome)
                summary = CertificateSummary(try await authority.certificate(serial: number), now: Clock.now())
            }
            if json { try printJSON(summary) } else { FileHandleLite.standardOutput.write(summary.detail) }
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check or show the append-only, hash-chained audit log.",
        subcommands: [AuditVerify.self, AuditList.self]
    )
}

struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute the audit chain; name the first entry that was altered or removed.",
        discussion: "Exit status: 0 intact, 1 broken. Every KRL carries the chain head in its comment, so servers hold witnesses of the chain."
    )

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("A KRL (for example a server's copy) whose audit head must be in the chain; default: the home's revoked.krl. Repeatable.", valueName: "krl-file"))
    var witness: [String] = []

    func run() async throws {
        var broken = false
        try await reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            let result: AuditVerification
            result = try await authority.verifyAudit(witnesses: witness.isEmpty ? nil : witness)
            switch result {
            case .intact(let entries, let head):
                print("audit chain intact: \(entries) entries, head \(head)")
            case .broken(let id, let reason):
                printError("audit chain BROKEN at entry \(id): \(reason)")
                broken = true
            }
        }
        if broken { throw ExitCode(ExitStatus.failure) }
    }
}

struct AuditList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show audit entries (the newest --limit, default all).")

    @OptionGroup var home: HomeOptions

    @Option(name: .long, help: ArgumentHelp("Only the newest N entries.", valueName: "n"))
    var limit: Int?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    /// The stored, hashed text keeps epoch seconds (`expires=1796726583`); a person reads them
    /// as RFC 3339 times. JSON output keeps the stored text.
    static func readable(_ details: String) -> String {
        details.split(separator: " ", omittingEmptySubsequences: false).map { field in
            for key in ["expires="] where field.hasPrefix(key) {
                if let seconds = UInt64(field.dropFirst(key.count)) { return key + CertificateTime.format(seconds) }
            }
            return String(field)
        }.joined(separator: " ")
    }

    struct Entry: Encodable {
        var id: Int64, at: UInt64, actor: String, action: String, details: String, hash: String
    }

    func run() async throws {
        try await reportingErrors {
            let authority = try CertificateAuthority(home: home.caHome)
            let entries: [AuditEntry]
            entries = try await authority.auditEntries(limit: limit)
            if json {
                try printJSON(entries.map { Entry(id: $0.id, at: $0.at, actor: $0.actor, action: $0.action, details: $0.details, hash: $0.hashHex) })
            } else {
                for entry in entries {
                    print("\(entry.id)  \(CertificateTime.format(entry.at))  \(entry.actor)  \(entry.action)  \(Self.readable(entry.details))")
                }
            }
        }
    }
}
