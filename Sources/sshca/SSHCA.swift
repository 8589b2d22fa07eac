import Common
import ArgumentParser
import Authority
import SSHCrypto
import Synchronization
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

@main
struct SSHCA: ParsableCommand {
    static func main() {
        CryptoLibrary.skipCleanupAtExit()
        let arguments = Array(CommandLine.arguments.dropFirst())
        // `serve` runs its requests side by side on the task pool; every other command does
        // one thing at a time, on this thread (see CallingThreadExecutor).
        CallingThreadExecutor.run(onPool: arguments.first == "serve") { await dispatch(arguments) }
    }

    static func dispatch(_ arguments: [String]) async {
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

/// Runs a command's asynchronous work on the thread that started the process, as a synchronous
/// program would: the ledger and the issuance path are asynchronous, and without this the first
/// call into them starts the task pool's threads and moves the work there (a thread switch each
/// way, and a malloc arena per thread). That cost `sshca sign`, a whole process per
/// certificate, 28.1 ms against 25.6 ms this way (hyperfine, 200 runs each, interleaved). Jobs
/// that land here from elsewhere (a continuation resumed by an HTTP client's event loop) queue
/// and run in turn.
final class CallingThreadExecutor: TaskExecutor {
    private let jobs = Mutex<(queue: [UnownedJob], finished: Bool)>(([], false))
    private let ready = DispatchSemaphore(value: 0)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.queue.append(job) }
        ready.signal()
    }

    private func finish() {
        jobs.withLock { $0.finished = true }
        ready.signal()
    }

    /// Runs `operation` to its end; on the task pool when `onPool` (this thread then serves the
    /// main queue, as an asynchronous main does), else on this thread.
    static func run(onPool: Bool, _ operation: @escaping @Sendable () async -> Void) {
        if onPool {
            Task { await operation() }
            dispatchMain()
        }
        let executor = CallingThreadExecutor()
        Task(executorPreference: executor) { await operation(); executor.finish() }
        while true {
            executor.ready.wait()
            let next = executor.jobs.withLock { state -> (job: UnownedJob?, finished: Bool) in
                state.queue.isEmpty ? (nil, state.finished) : (state.queue.removeFirst(), false)
            }
            if let job = next.job { job.runSynchronously(on: executor.asUnownedTaskExecutor()) }
            if next.finished { return }
        }
    }
}
