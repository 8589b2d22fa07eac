import Common
import ArgumentParser
import Authority
import SSHCrypto
#if canImport(Glibc)
import Glibc
#endif

@main
struct SSHCA: ParsableCommand {
    static func main() async {
        CryptoLibrary.skipCleanupAtExit()
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "sign", let sign = SignFastPath.parse(Array(arguments.dropFirst())) {
            do {
                try await sign.run()
                exit(withError: nil)
            } catch {
                exit(withError: error)
            }
        }
        do {
            var command = try parseAsRoot(arguments)
            if var waiting = command as? AsyncParsableCommand {
                try await waiting.run()
            } else {
                try command.run()
            }
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

        Start here, on the CA machine:
          sshca serve --init           a new CA in ./ca-data, served on 127.0.0.1:8443
          sshca tls --name ca.example.com --listen 0.0.0.0:8443
                                       https for other machines (clients pin tls.crt)
          sshca user add alice --role engineer --identity-key alice.pub
                                       enroll an engineer's long-term key
        On each server (as root), once; timers keep it current:
          sshca host setup --ca-url URL --ca-fingerprint SHA256:... --ca-bundle tls.crt
        On a laptop, once, then daily:
          sshca configure --ca-url URL --ca-fingerprint SHA256:... \\
              --ca-bundle tls.crt --user alice
          sshca login                  the daily certificate, into ssh-agent
        Security staff:
          sshca revoke --ca-url URL --serial 42 --reason "laptop stolen"
          sshca hosts                  which servers have the newest KRL

        Or without a service, on the CA home directly:
          sshca init                   create a CA in ./ca-data (or --home DIR)
          sshca sign --key-id alice --principals alice ~/.ssh/id_ed25519.pub
                                       writes ~/.ssh/id_ed25519-cert.pub (1 day)
          sshca inspect ~/.ssh/id_ed25519-cert.pub
                                       its fields, and whether the CA signed it

        The CA home is --home DIR, else $SSHCA_HOME, else ./ca-data.
        Exit codes: 0 success, 1 failure, 64 usage error, 65 bad input (a malformed, weak or wrong key,
        principal, option or duration); inspect exits 1 when a signature does not verify.
        """),
        version: BuildInfo.description,
        subcommands: [Init.self, CAKey.self, Sign.self, Inspect.self, Revoke.self, List.self, Show.self, KRLCommand.self, Audit.self, Backup.self, Restore.self, Serve.self, TLSCommand.self, User.self, Token.self, Configure.self, LoginCommand.self, LogoutCommand.self, Host.self, Hosts.self, KnownHosts.self]
    )
}
