@testable import Common
import Testing
@testable import Authority

/// Runs `body`, which must throw an SSHCAError, and returns it (recording an issue otherwise),
/// so tests can check the error's code and reason.
func authorityError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> SSHCAError? {
    do {
        try body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let error as SSHCAError {
        return error
    } catch {
        Issue.record("expected an SSHCAError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// `authorityError` for work that waits on the ledger.
func authorityError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> SSHCAError? {
    do {
        try await body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let error as SSHCAError {
        return error
    } catch {
        Issue.record("expected an SSHCAError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
