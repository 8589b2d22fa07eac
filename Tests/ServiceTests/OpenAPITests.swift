import Common
import Foundation
import Testing
import TestSupport

/// docs/openapi.yaml against the real `sshca serve`: scripts/openapi_check.py validates the
/// document, sends valid and bad requests for every operation and checks every response's
/// status, content type, headers and body against the document (see the script's header).
@Suite("service: the OpenAPI document")
struct OpenAPITests {
    static var document: URL { packageRoot.child("docs").child("openapi.yaml") }
    static var script: URL { packageRoot.child("scripts").child("openapi_check.py") }

    /// A server with a security-staff token, an engineer token, a host token and an enrolled
    /// user who signs in with a challenge; returns it and the checker's credential arguments.
    static func startServer(in dir: URL) async throws -> (CAServer, [String]) {
        let server = try await CAServer.start(in: dir)
        do {
            func createToken(role: String, name: String) async throws -> String {
                let created = try await server.sshca(["token", "create", "--role", role, "--name", name])
                guard created.succeeded,
                      let secret = created.stdoutText.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces),
                      secret.hasPrefix("sshca_") else { throw SubprocessError.failed(created) }
                return secret
            }
            let security = try await createToken(role: "security", name: "sec")
            let engineer = try await createToken(role: "engineer", name: "bob")
            let host = try await createToken(role: "host", name: "web-01.example.com")
            let identity = try await SSHKeygen.generate(.ed25519, at: dir.child("alice_identity"), comment: "alice")
            let enrolled = try await server.sshca(["user", "add", "alice", "--role", "engineer", "--identity-key", identity.publicKey.path])
            guard enrolled.succeeded else { throw SubprocessError.failed(enrolled) }
            return (server, ["--security-token", security, "--engineer-token", engineer, "--host-token", host,
                             "--sshsig-user", "alice", "--sshsig-key", identity.privateKey.path, "--ca-home", server.home.path])
        } catch {
            server.stop()
            throw error
        }
    }

    static func check(_ server: CAServer, document: URL, _ arguments: [String]) async throws -> ProcessResult {
        try await runProcess("python3", [script.path, server.url, document.path] + arguments, timeout: .seconds(300))
    }

    @Test("the running service matches docs/openapi.yaml: every operation, documented status, content type, header and body")
    func serviceMatchesDocument() async throws {
        try await withTemporaryDirectory { dir in
            let (server, arguments) = try await Self.startServer(in: dir)
            defer { server.stop() }
            let result = try await Self.check(server, document: Self.document, arguments)
            #expect(result.succeeded, "\(result)\n--- sshca serve log (end) ---\n\(server.log.suffix(3000))")
            #expect(result.stdoutText.contains(" exchanges checked, 0 mismatches"), "\(result)")
            // The scenarios really ran: each scheme signed someone in, and the KRL answered 304.
            #expect(result.stdoutText.contains("ok   201 POST /v1/certificates [SSHSIG answer]"), "\(result)")
            #expect(result.stdoutText.contains("ok   201 POST /v1/certificates [engineer, role defaults]"), "\(result)")
            #expect(result.stdoutText.contains("ok   304 GET /v1/krl [If-None-Match: current ETag]"), "\(result)")
        }
    }

    @Test("the check fails when a response member is renamed in the document")
    func renamedResponseMemberIsCaught() async throws {
        try await withTemporaryDirectory { dir in
            let original = try readText(Self.document)
            #expect(original.contains("expiresAt") && !original.contains("expiresOn"))
            let altered = dir.child("renamed.yaml")
            try writeText(original.replacingOccurrences(of: "expiresAt", with: "expiresOn"), to: altered)
            let (server, arguments) = try await Self.startServer(in: dir)
            defer { server.stop() }
            let result = try await Self.check(server, document: altered, arguments)
            // 1: the document is valid but the server disagrees with it (2 would be an invalid document).
            #expect(result.exitCode == 1 && !result.terminatedBySignal, "\(result)")
            let mismatches = result.stdoutText.components(separatedBy: "MISMATCHES:").last ?? ""
            #expect(mismatches.contains("POST /v1/challenge [valid identity]: body: at (top): Additional properties are not allowed ('expiresAt' was unexpected)"), "\(result)")
            #expect(mismatches.contains("'expiresOn' is a required property"), "\(result)")
            // Only the challenge responses carry the member: nothing else is reported.
            let lines = mismatches.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            #expect(!lines.isEmpty && lines.allSatisfy { $0.contains("/v1/challenge") }, "\(result)")
        }
    }

    @Test("every route of the service's controllers (Sources/Service/HTTP/Controllers.swift) is in the document, and the document has no other")
    func routesAreDocumented() throws {
        let source = try readText(packageRoot.child("Sources").child("Service").child("HTTP").child("Controllers.swift"))
        let routes = Set(source.matches(of: /(?:router|group)\.(get|post|put|delete|patch)\("([^"]+)"\)/).map { match in
            "\(match.1.uppercased()) " + String(match.2).replacing(/:(\w+)/) { "{\($0.1)}" }
        })
        var documented = Set<String>()
        var path: String? = nil
        for line in try readText(Self.document).split(separator: "\n") {
            if let match = line.wholeMatch(of: /\ {2}(\/\S*):/) {
                path = String(match.1)
            } else if let match = line.wholeMatch(of: /\ {4}(get|post|put|delete|patch):/), let path {
                documented.insert("\(match.1.uppercased()) \(path)")
            } else if line.first.map({ !$0.isWhitespace && $0 != "#" }) == true {
                path = nil  // a top-level key ends `paths:`
            }
        }
        #expect(routes.count >= 10, "\(routes.sorted())")
        #expect(routes == documented, "only in the controllers: \(routes.subtracting(documented).sorted()); only in the document: \(documented.subtracting(routes).sorted())")
    }

    @Test("the check refuses a document that is not valid OpenAPI 3.0, and accepts docs/openapi.yaml")
    func invalidDocumentIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let valid = try await runProcess("python3", [Self.script.path, "http://127.0.0.1:1", Self.document.path, "--spec-only"])
            #expect(valid.succeeded, "\(valid)")
            let original = try readText(Self.document)
            #expect(original.contains("in: query"))
            let broken = dir.child("broken.yaml")
            try writeText(original.replacingOccurrences(of: "in: query", with: "in: querystring"), to: broken)
            let result = try await runProcess("python3", [Self.script.path, "http://127.0.0.1:1", broken.path, "--spec-only"])
            #expect(result.exitCode == 2 && result.stdoutText.contains("is not a valid OpenAPI 3.0 document"), "\(result)")
        }
    }
}
