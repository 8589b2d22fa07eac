import Common
import ArgumentParser
import Authority
import Client
import Foundation

/// `sshca hosts`: the servers that fetch the KRL, when they last did and which version they have.
struct Hosts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the servers that sync the KRL from the service, and flag those behind.",
        discussion: helpText("""
        Every `sshca host krl-sync --from URL` (the timer host setup installs) tells the service
        which server it is (the name of its host token, or its host name, marked "claimed"), and
        the service notes the KRL version it handed out and the CA key the server pins. A server is
        behind when it has an older KRL than the current one, or has not synced for 30 minutes
        (the timer runs every 5). Exit status 1 when any server is behind, so monitoring can alert.

        On the CA home it reads the ledger; with --ca-url it asks the service (security staff).

        Examples:
          sshca hosts
          sshca hosts --behind
          sshca hosts --ca-url https://ca.example.com:8443 --user alice
        """)
    )

    @OptionGroup var home: HomeOptions
    @OptionGroup(title: "Through the CA service (security staff)") var remote: RemoteOptions

    @Flag(name: .long, help: "Only the servers that are behind.")
    var behind = false

    @Flag(name: .long, help: "Print JSON (the same objects as GET /v1/hosts).")
    var json = false

    func run() async throws {
        try await reportingErrors {
            var hosts: [ServiceAPI.Host]
            if remote.caUrl != nil {
                let client = try remote.client()
                let credential = try remote.credential()
                hosts = try await client.hosts(credential: credential)
            } else {
                let authority = try CertificateAuthority(home: home.caHome)
                hosts = try await authority.hosts()
            }
            if behind { hosts = hosts.filter { !$0.behind.isEmpty } }
            if json {
                try printJSON(hosts)
            } else if hosts.isEmpty {
                print(behind ? "No server is behind." : "No server has synced the KRL from the service yet (sshca host setup --ca-url installs the timer that does).")
            } else {
                for host in hosts {
                    let state = host.behind.isEmpty ? "current" : "BEHIND: " + host.behind.joined(separator: "; ")
                    print("\(host.name)  (\(host.identifiedBy), \(host.address))  last sync \(CertificateTime.format(host.lastSync))  KRL version \(host.krlVersion)  pins \(host.caFingerprint ?? "nothing")  \(state)")
                }
            }
            if hosts.contains(where: { !$0.behind.isEmpty }) { throw ExitCode(ExitStatus.failure) }
        }
    }
}
