import Common
import SSHFormat
import SSHCrypto
#if canImport(Glibc)
import Glibc
#endif

/// `sshca host doctor`: why would a certificate login fail on this server? Each finding names
/// the cause and how to fix it.
public enum Doctor {
    public struct Finding: Sendable, Equatable {
        public enum Kind: String, Sendable { case problem, ok }
        public var kind: Kind
        /// A stable code for scripts and tests ("no-trusted-ca", "krl-missing", ...).
        public var code: String
        public var message: String
        public var fix: String?
    }

    public struct Request: Sendable {
        public var sshdConfigPath = "/etc/ssh/sshd_config"
        public var sshdPath = "/usr/sbin/sshd"
        public var user: String?
        public var certificatePath: String?
        public init() {}
    }

    public static func examine(_ request: Request, now: UInt64 = Clock.now()) throws(SSHCAError) -> [Finding] {
        var findings: [Finding] = []
        func problem(_ code: String, _ message: String, fix: String?) { findings.append(Finding(kind: .problem, code: code, message: message, fix: fix)) }
        func ok(_ code: String, _ message: String) { findings.append(Finding(kind: .ok, code: code, message: message, fix: nil)) }

        let check = SSHDCheck(sshdPath: request.sshdPath)
        do {
            try check.validate(configPath: request.sshdConfigPath)
        } catch {
            problem("config-invalid", error.reason, fix: "correct \(request.sshdConfigPath) until `sshd -t` is silent; sshd will not restart with it")
            return findings
        }
        let connection = request.user.map { "user=\($0),host=localhost,addr=127.0.0.1" }
        let values = try check.effective(configPath: request.sshdConfigPath, connection: connection)

        if values["pubkeyauthentication"] == "no" {
            problem("pubkey-disabled", "PubkeyAuthentication is no: sshd accepts no keys or certificates", fix: "set PubkeyAuthentication yes (or remove the line) and reload sshd")
        }

        // The CA sshd trusts.
        var trusted: [PublicKey] = []
        let caFile = values["trustedusercakeys"] ?? "none"
        if caFile == "none" {
            problem("no-trusted-ca", "sshd trusts no user CA (TrustedUserCAKeys is not set)", fix: "run: sshca host setup --ca-key user_ca.pub")
        } else if let text = try? Files.readText(caFile, maximumBytes: 1 << 20) {
            trusted = text.split(whereSeparator: isLineBreak).compactMap { try? PublicKeyText(parsing: String($0)).key }
            if trusted.isEmpty {
                problem("ca-file-empty", "\(caFile) (TrustedUserCAKeys) holds no readable public key", fix: "write the line from `sshca ca-key` into \(caFile)")
            } else {
                ok("trusted-ca", "sshd trusts user CA \(trusted.map(\.fingerprint).joined(separator: ", ")) from \(caFile)")
            }
            // sshd does not check this file's modes, but whoever may write it or a directory
            // above it decides which CA everyone's logins trust.
            if let unsafe = Self.unsafeAncestry(of: caFile, owner: 0, stopAt: nil, allowSticky: true) {
                problem("ca-file-writable", "\(unsafe.problem): anyone who can write there can make sshd trust a CA of their own (TrustedUserCAKeys \(caFile))", fix: "chown root \(unsafe.path) && chmod go-w \(unsafe.path)")
            }
        } else {
            problem("ca-file-missing", "\(caFile) (TrustedUserCAKeys) is missing or unreadable", fix: "write the line from `sshca ca-key` into \(caFile), mode 0644")
        }

        // The KRL: a missing or invalid one makes sshd refuse every key login.
        var krl: KRL? = nil
        let krlPath = values["revokedkeys"] ?? "none"
        if krlPath != "none" {
            if !Files.exists(krlPath) {
                problem("krl-missing", "\(krlPath) (RevokedKeys) does not exist: sshd refuses every public-key login", fix: "install the CA's KRL: sshca host krl-sync --from revoked.krl --to \(krlPath)")
            } else {
                do {
                    krl = try KRLInspection.read(krlPath).krl
                    ok("krl", "\(krlPath) is a valid KRL (version \(krl!.version))")
                } catch {
                    problem("krl-invalid", "\(krlPath) (RevokedKeys) is not a valid KRL: sshd refuses every public-key login (\(error.reason))", fix: "replace it with a good one: sshca host krl-sync --from revoked.krl --to \(krlPath)")
                }
            }
        }

        // The user's side.
        if let user = request.user {
            if let entry = getpwnam(user) {
                let home = String(cString: entry.pointee.pw_dir)
                let uid = entry.pointee.pw_uid
                if values["strictmodes"] != "no" {
                    for path in [home, home + "/.ssh"] where Files.exists(path) {
                        var st = stat()
                        guard stat(path, &st) == 0 else { continue }
                        if st.st_mode & 0o022 != 0 || (st.st_uid != uid && st.st_uid != 0) {
                            problem("home-permissions", "\(path) is writable by group or others, or not owned by \(user); with StrictModes sshd ignores the user's key files", fix: "chown \(user) \(path) && chmod go-w \(path)")
                        }
                    }
                }
            } else {
                problem("no-such-user", "there is no user \(user) on this server", fix: "create the account (useradd -m \(user)), or log in as an existing one")
            }
        }

        // The certificate.
        if let certificatePath = request.certificatePath {
            let certificate = try KeyFiles.parseCertificate(try Files.read(certificatePath, maximumBytes: 256 * 1024, what: "certificate"), source: certificatePath)
            let body = certificate.body
            if body.type != .user {
                problem("not-user-certificate", "\(certificatePath) is a \(body.type) certificate; logging in needs a user certificate", fix: "sign the user's key without --host")
            }
            if !certificate.verifySignature().isValid {
                problem("bad-signature", "\(certificatePath)'s CA signature does not verify", fix: "sign the key again with `sshca sign`")
            }
            if !trusted.isEmpty && !trusted.contains(body.signatureKey) {
                problem("ca-mismatch", "\(certificatePath) is signed by CA \(body.signatureKey.fingerprint), but sshd trusts \(trusted.map(\.fingerprint).joined(separator: ", "))", fix: "sign with the CA the server trusts, or install this CA: sshca host setup --ca-key user_ca.pub")
            }
            if body.validBefore <= now {
                problem("expired", "\(certificatePath) expired at \(CertificateTime.format(body.validBefore))", fix: "get a new certificate (sshca sign, or sshca login)")
            } else if body.validAfter > now {
                problem("not-yet-valid", "\(certificatePath) is valid only from \(CertificateTime.format(body.validAfter)); check the clocks", fix: "sync the clock (timedatectl), or sign with an earlier start")
            }
            if let krl, let verdict = krl.revocation(of: certificate) {
                problem("revoked", "\(certificatePath) is revoked by \(krlPath) (\(verdict))", fix: "ask the CA for a new certificate on a new key")
            }
            if let user = request.user {
                let principalsFile = values["authorizedprincipalsfile"] ?? "none"
                if values["authorizedprincipalscommand"].map({ $0 != "none" }) ?? false {
                    ok("principals-command", "principals come from AuthorizedPrincipalsCommand \(values["authorizedprincipalscommand"]!); not evaluated here")
                } else if principalsFile != "none" {
                    let path = expandTokens(principalsFile, user: user)
                    // Doctor runs as root on a path the user may control (a relative
                    // AuthorizedPrincipalsFile is in their home): read it as sshd trusts files,
                    // never through their links, never a FIFO, never beyond 1 MiB.
                    var owners: Set<uid_t> = [0]
                    if let entry = getpwnam(user) { owners.insert(entry.pointee.pw_uid) }
                    var unsafe: String? = nil
                    let allowed: [String]?
                    do {
                        let bytes = try Files.readTrusted(path, maximumBytes: 1 << 20, what: "AuthorizedPrincipalsFile", owners: owners)
                        allowed = String(decoding: bytes, as: UTF8.self).split(whereSeparator: isLineBreak)
                            .map { $0.trimmingCharacters(in: " \t\r") }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
                    } catch where error.code == .unsafeFile {
                        unsafe = error.reason
                        allowed = nil
                    } catch {
                        allowed = nil
                    }
                    let strict = values["strictmodes"] != "no"
                    let entry = getpwnam(user)
                    let home = entry.map { String(cString: $0.pointee.pw_dir) }
                    // sshd (StrictModes, safe_path) refuses the file when it, or any directory
                    // from it up to / (or up to the user's home, for a file inside it), is owned
                    // by someone other than root and the user, or writable by group or others.
                    let ancestry = strict && unsafe == nil && allowed != nil
                        ? Self.unsafeAncestry(of: path, owner: entry?.pointee.pw_uid ?? 0, stopAt: home) : nil
                    if let unsafe {
                        problem("principals-file-unsafe", "\(unsafe); sshd refuses such a file too (StrictModes)", fix: "make \(path) a regular file owned by \(user) or root, writable only by its owner")
                    } else if let ancestry {
                        problem("principals-path-unsafe", "\(ancestry.problem): with StrictModes sshd refuses \(path) (AuthorizedPrincipalsFile for \(user)) and so every certificate for \(user)", fix: "chmod go-w \(ancestry.path) (and chown it to root or \(user)), or keep principals files in a root-owned directory such as /etc/ssh/sshca_principals")
                    } else if let allowed {
                        if Set(allowed).isDisjoint(with: body.principals) {
                            problem("principal-not-allowed", "\(user) accepts principals \(allowed.joined(separator: ",")) (from \(path)); the certificate names \(body.principals.joined(separator: ","))", fix: "sign for one of those principals, or add one to \(path) (sshca host setup --principal \(user)=...)")
                        } else {
                            ok("principal", "the certificate's principals include one \(path) allows for \(user)")
                        }
                    } else {
                        problem("principals-file-missing", "\(path) (AuthorizedPrincipalsFile for \(user)) is missing: sshd denies every certificate for \(user)", fix: "create it with the allowed principals (sshca host setup --principal \(user)=...)")
                    }
                } else if !body.principals.contains(user) {
                    problem("principal-not-allowed", "the certificate is for \(body.principals.joined(separator: ",")), not for the login name \(user)", fix: "sign with --principals \(user), or map it: sshca host setup --principal \(user)=\(body.principals.first ?? "P")")
                } else {
                    ok("principal", "the certificate names \(user)")
                }
            }
        }
        return findings
    }

    /// What sshd's safe_path() would say about `path`: the first of the file and its directories
    /// up to / (or up to `stopAt`, inclusive) that is owned by neither root nor `owner`, or is
    /// writable by group or others, and why; nil when all are safe or the path does not resolve.
    /// `allowSticky`: a root-owned sticky directory (/tmp) counts as safe: others may not
    /// replace what they do not own there (sshd itself does not make that exception).
    static func unsafeAncestry(of path: String, owner: uid_t, stopAt: String?, allowSticky: Bool = false) -> (path: String, problem: String)? {
        guard let resolved = realpath(path, nil) else { return nil }
        var current = String(cString: resolved)
        free(resolved)
        var first = true
        while true {
            var st = stat()
            guard stat(current, &st) == 0 else { return nil }
            let stickyRoot = allowSticky && !first && st.st_uid == 0 && st.st_mode & 0o1000 != 0
            let groupWritable = st.st_mode & 0o020 != 0 && !Self.groupIsOnlyOwner(gid: st.st_gid, owner: st.st_uid, loginUser: owner)
            if (st.st_uid != 0 && st.st_uid != owner) || ((st.st_mode & 0o002 != 0 || groupWritable) && !stickyRoot) {
                let who = st.st_uid != 0 && st.st_uid != owner ? "owned by uid \(st.st_uid)" : "writable by \(st.st_mode & 0o020 != 0 ? "group" : "others") (mode \(String(st.st_mode & 0o7777, radix: 8)))"
                return (current, "\(first ? "the file" : "the directory") \(current) is \(who)")
            }
            if current == "/" || current == stopAt { return nil }
            current = Files.parentDirectory(of: current)
            if current.isEmpty { current = "/" }
            first = false
        }
    }

    /// Debian's sshd (its user-group-modes patch, secure_permissions) lets a file or directory be
    /// group-writable when that group has exactly one member: by primary group, only the login
    /// user; by supplementary membership, only the file's owner (a user private group). Upstream
    /// sshd never allows it; doctor follows Debian's, the sshd these servers run.
    static func groupIsOnlyOwner(gid: gid_t, owner: uid_t, loginUser: uid_t) -> Bool {
        guard let group = getgrgid(gid), let ownerEntry = getpwuid(owner) else { return false }
        let ownerName = String(cString: ownerEntry.pointee.pw_name)
        var members = 0
        setpwent()
        while let entry = getpwent() {
            if entry.pointee.pw_gid == gid {
                members += 1
                if entry.pointee.pw_uid != loginUser { endpwent(); return false }
            }
        }
        endpwent()
        if let first = group.pointee.gr_mem?[0] {
            members += 1
            if String(cString: first) != ownerName || group.pointee.gr_mem[1] != nil { return false }
        }
        return members > 0
    }

    /// %u (user), %% in AuthorizedPrincipalsFile; a relative path is under the user's home.
    static func expandTokens(_ pattern: String, user: String) -> String {
        var out = pattern.replacingOccurrences("%u", with: user).replacingOccurrences("%%", with: "%")
        if !out.hasPrefix("/"), let entry = getpwnam(user) {
            out = String(cString: entry.pointee.pw_dir) + "/" + out
        }
        return out
    }
}

extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
