@testable import Common
import Testing
@testable import Authority

/// Runs `body`, which must throw an SSHCAError, and returns it (recording an issue otherwise),
/// so tests can check the error's code and reason.
func authorityError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> SSHCAError? {
    expectedAuthorityError(Result { try body() }, sourceLocation: sourceLocation)
}

/// `authorityError` for work that waits on the ledger.
func authorityError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> SSHCAError? {
    let outcome: Result<Void, any Error>
    do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
    return expectedAuthorityError(outcome, sourceLocation: sourceLocation)
}

private func expectedAuthorityError(_ outcome: Result<Void, any Error>, sourceLocation: SourceLocation) -> SSHCAError? {
    switch outcome {
    case .success:
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    case .failure(let error as SSHCAError):
        return error
    case .failure(let error):
        Issue.record("expected an SSHCAError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
