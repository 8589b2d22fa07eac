import Testing
@testable import Authority

/// Runs `body`, which must throw an AuthorityError, and returns it (recording an issue otherwise),
/// so tests can check the error's code and reason.
func authorityError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> AuthorityError? {
    do {
        try body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let error as AuthorityError {
        return error
    } catch {
        Issue.record("expected an AuthorityError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
