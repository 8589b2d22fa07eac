import Common
import Foundation
import Testing
import Authority
import SSHCrypto
import SSHFormat

/// The policy's rules and the token format, as library calls.
@Suite("policy rules and tokens")
struct PolicyRuleTests {
    static let key = try! PrivateKey.generate(.ed25519).publicKey

    static func applicant(_ role: Role, name: String = "alice") -> Applicant {
        Applicant(name: name, kind: .user, role: role)
    }

    @Test("an empty request gets every fixed principal ({user} filled in) for the default validity, with the backdate")
    func defaults() throws {
        var role = Role(name: "dev")
        role.principals = ["{user}", "deploy", "*.example.com"]
        role.defaultValidity = 8 * 3600
        var configuration = Configuration()
        configuration.backdate = 60
        let decision = try IssuancePolicy(configuration: configuration).decide(PolicyRequest(publicKey: Self.key), applicant: Self.applicant(role), now: 1_000_000).get()
        #expect(decision.principals == ["alice", "deploy"])
        #expect(decision.validity == ValidityWindow(validAfter: 1_000_000 - 60, validBefore: 1_000_000 + 8 * 3600))
        // The person and the credential; the ledger adds the serial (PersonKeyID).
        #expect(decision.keyID == "alice:key:" && decision.keyIDNamesSerial)
    }

    @Test("patterns admit only what they match; the refusal lists what is allowed", arguments: [
        ("web-01.example.com", true), ("a.b.example.com", true), ("example.com", false), ("web-01.example.com.evil", false),
        ("deploy", true), ("root", false), ("alice", true), ("bob", false),
    ])
    func patterns(principal: String, allowed: Bool) {
        var role = Role(name: "ops")
        role.principals = ["{user}", "deploy", "*.example.com"]
        let result = IssuancePolicy(configuration: Configuration()).decide(
            PolicyRequest(publicKey: Self.key, principals: [principal]), applicant: Self.applicant(role), now: 1000)
        switch result {
        case .success(let request): #expect(allowed && request.principals == [principal])
        case .failure(let refusal):
            #expect(!allowed && refusal.rule == "role.ops.principals", "\(refusal)")
            #expect(refusal.reason.contains("alice, deploy, *.example.com"))
        }
    }

    @Test("key types, RSA size and validity are each refused by their own rule")
    func otherRules() throws {
        var role = Role(name: "strict")
        role.keyTypes = ["ssh-ed25519"]
        role.maximumValidity = 3600
        let policy = IssuancePolicy(configuration: Configuration())
        let ecdsa = try PrivateKey.generate(.ecdsaP256).publicKey
        #expect(throws: PolicyRefusal(rule: "role.strict.key_types", reason: "role strict admits ssh-ed25519 keys, not ecdsa-sha2-nistp256")) {
            try policy.decide(PolicyRequest(publicKey: ecdsa), applicant: Self.applicant(role), now: 0).get()
        }
        if case .failure(let refusal) = policy.decide(PolicyRequest(publicKey: Self.key, validity: 7200), applicant: Self.applicant(role), now: 0) {
            #expect(refusal.rule == "role.strict.max_validity" && refusal.reason.contains("2h") && refusal.reason.contains("1h"))
        } else {
            Issue.record("2h was allowed past a 1h maximum")
        }
        var rsaRole = Role(name: "rsa")
        rsaRole.minimumRSABits = 4096
        let rsa = try PrivateKey.generate(.rsa3072).publicKey
        if case .failure(let refusal) = policy.decide(PolicyRequest(publicKey: rsa), applicant: Self.applicant(rsaRole), now: 0) {
            #expect(refusal.rule == "role.rsa.min_rsa_bits")
        } else {
            Issue.record("a 3072-bit key passed a 4096-bit minimum")
        }
    }

    @Test("tokens survive the round trip through their text whatever bytes the secret has, and near misses do not parse")
    func tokens() {
        for _ in 0..<2000 {
            let token = BearerToken.generate()
            #expect(BearerToken(text: token.text) == token, "\(token.text)")
        }
        let text = BearerToken.generate().text
        #expect(BearerToken(text: String(text.dropLast())) == nil)
        #expect(BearerToken(text: "x" + text.dropFirst()) == nil)
        #expect(BearerToken(text: text.uppercased()) == nil)
        #expect(BearerToken(text: "") == nil)
    }

    @Test("a wildcard in a requested principal is refused even where a pattern allows it (OpenSSH reads it as a pattern)")
    func wildcardPrincipal() {
        var role = Role(name: "hosts")
        role.principals = ["*.example.com"]
        role.hostCertificates = true
        for principal in ["*.example.com", "web?.example.com"] {
            let result = IssuancePolicy(configuration: Configuration()).decide(
                PolicyRequest(publicKey: Self.key, type: .host, principals: [principal]), applicant: Self.applicant(role), now: 0)
            if case .failure(let refusal) = result {
                #expect(refusal.rule == "request.principals" && refusal.reason.contains("wildcard"))
            } else {
                Issue.record("\(principal) was certified")
            }
        }
    }
}
