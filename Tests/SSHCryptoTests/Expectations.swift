import Testing
import SSHCrypto

/// Runs `body` and returns the CryptoError it threw (nil if it threw nothing; an issue is
/// recorded for any other error), so tests can check the code and reason.
func cryptoError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> CryptoError? {
    do {
        try body()
        return nil
    } catch let error as CryptoError {
        return error
    } catch {
        Issue.record("expected a CryptoError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
