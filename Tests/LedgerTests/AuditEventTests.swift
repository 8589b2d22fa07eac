import Testing
import Ledger
import SSHFormat
import TestSupport

/// The audit log's text is part of what it proves: every backend stores these exact words for
/// these events, because the text is made once, by the event, never by a backend.
@Suite("audit events: their text")
struct AuditEventTests {
    @Test("each event's action and details, as the audit log shows them")
    func texts() throws {
        let key = try PublicKeyText(parsing: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl").key
        let cases: [(AuditEvent, String, String)] = [
            (.revoked(id: 3, kind: "key-id", target: "alice", certificates: 2, reason: "laptop lost"), "revoke", "#3 key-id=alice certificates=2 reason=laptop lost"),
            (.revokedAgain(kind: "serial", target: "7", existing: 3, reason: "again"), "revoke-again", "serial=7 already revoked by #3; reason=again"),
            (.personRevoked(name: "bob", revocation: 4, identityDisabled: true, tokensRevoked: 1), "user-disable", "name=bob revocation=#4 identity-disabled=true tokens-revoked=1"),
            (.personRevoked(name: "bob", revocation: 4, identityDisabled: false, tokensRevoked: 0), "user-revoke", "name=bob revocation=#4 identity-disabled=false tokens-revoked=0"),
            (.carriedFromKRL(id: 5, krlVersion: 9, reason: "carried over at restore"), "revoke", "#5 carried from KRL version 9; reason=carried over at restore"),
            (.serialBulk(id: 6, count: 1000, reason: "import"), "revoke", "#6 serial-bulk=1000 reason=import"),
            (.krlGenerated(version: 12, sections: 1, keys: 2, signed: true), "krl", "version=12 sections=1 keys=2 signed=true"),
            (.restored(from: "/b.sqlite", nextSerial: 100, krlVersion: 20, generation: 255), "restore", "from=/b.sqlite next_serial=100 krl_version=20 generation=ff"),
            (.userAdded(name: "carol", role: "user", key: key), "user-add", "name=carol role=user key=\(key.fingerprint)"),
            (.userDisabled(name: "carol"), "user-disable", "name=carol"),
            (.userEnabled(name: "carol"), "user-enable", "name=carol"),
            (.userRekeyed(name: "carol", oldKey: key, key: key), "user-rekey", "name=carol old-key=\(key.fingerprint) key=\(key.fingerprint)"),
            (.tokenCreated(id: "t1", name: "web-01", role: "host", expiresAt: 99), "token-create", "id=t1 name=web-01 role=host expires=99"),
            (.tokenRevoked(id: "t1"), "token-revoke", "id=t1"),
            (.authenticationFailed(method: "token", address: "127.0.0.1", reason: "unknown"), "auth-failed", "method=token address=127.0.0.1 reason=unknown"),
            (.rateLimited(address: "127.0.0.1", failuresPerMinute: 10), "rate-limited", "address=127.0.0.1 failures_per_minute=10 reached; further failures are counted, not audited, for a minute"),
            (.policyRefused(rule: "max-validity", key: key, reason: "too long"), "refused", "rule=max-validity key=\(key.fingerprint) reason=too long"),
            (.requestRefused(path: "/v1/certificates", code: "bad-request", reason: "no key"), "refused", "path=/v1/certificates code=bad-request reason=no key"),
        ]
        for (event, action, details) in cases {
            #expect(event.action == action, "\(event)")
            #expect(event.details == details, "\(event)")
        }
    }

    @Test("a refusal's details are cut at the limit and say how much was cut; what the CA did itself is never cut")
    func refusalsAreBounded() {
        let long = String(repeating: "é", count: 1_000)
        let refused = AuditEvent.requestRefused(path: "/v1/certificates", code: "bad-request", reason: long).details
        #expect(refused.hasPrefix("path=/v1/certificates code=bad-request reason=éé"))
        // "path=/v1/certificates code=bad-request reason=" is 46 bytes, the reason 2,000 more.
        let kept = refused.components(separatedBy: "... (")[0]
        #expect(kept.utf8.count <= AuditEvent.refusalTextLimit && kept.utf8.count >= AuditEvent.refusalTextLimit - 1, "\(refused.utf8.count) bytes: \(refused.suffix(60))")
        #expect(refused == "\(kept)... (\(2_046 - kept.utf8.count) more bytes not recorded)", "\(refused.utf8.count) bytes: \(refused.suffix(60))")
        let revoked = AuditEvent.revoked(id: 1, kind: "key-id", target: "x", certificates: 0, reason: long).details
        #expect(revoked.utf8.count > 2_000 && !revoked.contains("not recorded"))
    }
}
