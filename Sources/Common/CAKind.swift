import SSHFormat
/// Which of the CA's two keys: user certificates and host certificates are signed by separate keys,
/// so a server that trusts users never trusts host keys signed with the same key, and the reverse.
public enum CAKind: String, Sendable, CaseIterable {
    case user, host

    public var certificateType: CertificateType { self == .user ? .user : .host }
}
