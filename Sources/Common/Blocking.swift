import Dispatch

/// Runs async work from synchronous code and waits for it: the CLI's commands, and the service's
/// group-commit thread, which must not return to its loop before the ledger answered. Never call
/// it from a task (it would hold a thread of the shared pool while it waits).
public func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws(SSHCAError) -> T) throws(SSHCAError) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    // On the task pool, whatever executor the caller's task prefers: the caller's thread waits
    // below, and may be the one that executor runs its jobs on (the CLI's).
    Task(executorPreference: globalConcurrentExecutor) {
        do throws(SSHCAError) {
            box.result = .success(try await body())
        } catch {
            box.result = .failure(error)
        }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

private final class ResultBox<T>: @unchecked Sendable {
    // Written once by the task before the semaphore is signalled, read after the wait.
    var result: Result<T, SSHCAError>?
}
