import Common
import Ledger

extension SSHCAError {
    public init(ledger error: LedgerError) {
        switch error.code {
        case .refused: self.init(.refused, error.reason)
        case .notFound: self.init(.notFound, error.reason)
        case .badInput: self.init(.badInput, error.reason)
        default: self.init(.ledger, error.reason)
        }
    }

    /// Maps whatever a ledger call threw.
    static func from(_ error: any Error) -> SSHCAError {
        if let error = error as? SSHCAError { return error }
        if let error = error as? LedgerError { return SSHCAError(ledger: error) }
        return SSHCAError(.ledger, "\(error)")
    }
}
