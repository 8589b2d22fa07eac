import ArgumentParser
import Authority
#if canImport(Glibc)
import Glibc
#endif

@main
struct SSHCA: ParsableCommand {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "sign", let sign = SignFastPath.parse(Array(arguments.dropFirst())) {
            do {
                try sign.run()
                exit(withError: nil)
            } catch {
                exit(withError: error)
            }
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            // ArgumentParser's own messages start "Error:"; sshca's errors all read "error: ...".
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success || message.isEmpty {
                exit(withError: error)
            }
            FileHandleLite.standardError.write(message.hasPrefix("Error: ") ? "error: " + message.dropFirst(7) + "\n" : message + "\n")
            Glibc.exit(code.rawValue)
        }
        Glibc.exit(0)
    }

    static let configuration = CommandConfiguration(
        commandName: "sshca",
        abstract: "An SSH certificate authority: signs short-lived OpenSSH certificates for users and hosts.",
        discussion: helpText("""
        Instead of copying public keys into authorized_keys on every server, servers trust one CA key
        (sshd's TrustedUserCAKeys) and users carry certificates that name who they may log in as and
        until when.

        Start here:
          sshca init                   create a CA in ./ca-data (or --home DIR)
          sshca ca-key > user_ca.pub   the line servers put in TrustedUserCAKeys
          sshca sign --key-id alice --principals alice ~/.ssh/id_ed25519.pub
                                       writes ~/.ssh/id_ed25519-cert.pub (1 day)
          sshca inspect ~/.ssh/id_ed25519-cert.pub
                                       its fields, and whether the CA signed it
          sshca revoke --serial 42 --reason "laptop stolen"
                                       revoke it; servers get ca-data/revoked.krl
          sshca host setup --ca-key user_ca.pub
                                       on a server: trust the CA, safely

        The CA home is --home DIR, else $SSHCA_HOME, else ./ca-data.
        Exit codes: 0 success, 1 failure, 64 usage error, 65 bad input (a malformed, weak or wrong key,
        principal, option or duration); inspect exits 1 when a signature does not verify.
        """),
        version: "0.1.0",
        subcommands: [Init.self, CAKey.self, Sign.self, Inspect.self, Revoke.self, List.self, Show.self, KRLCommand.self, Audit.self, Backup.self, Restore.self, Serve.self, User.self, Token.self, LoginCommand.self, LogoutCommand.self, Host.self, KnownHosts.self]
    )
}
