import Common
internal import CBuildStamp

/// What an operator needs to tell which sshca runs: `sshca --version` and the service's
/// `sshca_build_info` metric print it (never `/healthz`, which anyone may ask).
public enum BuildInfo {
    public static let version = "0.1.0"
    /// The git commit the build scripts stamped in (`-dirty` when the tree had changes), or
    /// "unknown" for a plain `swift build`.
    public static let commit = String(cString: sshca_build_commit())

    public static var description: String { "\(version) (commit \(commit))" }
}
