/// The rules for the names and texts a certificate, a revocation or an identity carries, shared by
/// the CA and its clients (a client checks before it asks; the CA checks again).
public enum NameRules {
    /// sshd accepts at most 256 principals in a certificate.
    public static let maximumPrincipals = 256
    public static let maximumNameLength = 1024

    public static func checkPrincipals(_ principals: [String]) throws(SSHCAError) {
        guard !principals.isEmpty else {
            throw SSHCAError(.badInput, "no principals: give --principals with the login names (user certificates) or host names (host certificates) the certificate is for")
        }
        guard principals.count <= maximumPrincipals else {
            throw SSHCAError(.badInput, "\(principals.count) principals; OpenSSH accepts at most \(maximumPrincipals) in one certificate")
        }
        var seen: Set<String> = []
        for principal in principals {
            try checkName(principal, what: "principal", allowComma: false)
            guard seen.insert(principal).inserted else {
                throw SSHCAError(.badInput, "principal \"\(principal)\" is listed twice")
            }
        }
    }

    public static func checkKeyID(_ keyID: String) throws(SSHCAError) {
        guard !keyID.isEmpty else {
            throw SSHCAError(.badInput, "the key id is empty; give --key-id with something that names the holder (it appears in sshd's logs)")
        }
        guard keyID.utf8.count <= maximumNameLength else {
            throw SSHCAError(.badInput, "the key id is longer than \(maximumNameLength) bytes")
        }
        guard !keyID.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw SSHCAError(.badInput, "the key id contains a control character or NUL byte (OpenSSH rejects NUL); use printable text")
        }
    }

    /// Free text from outside (a reason, a comment): bounded, and without control characters,
    /// which would forge lines in logs and listings.
    public static func checkText(_ text: String, what: String) throws(SSHCAError) {
        guard text.utf8.count <= maximumNameLength else {
            throw SSHCAError(.badInput, "\(what) is longer than \(maximumNameLength) bytes")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw SSHCAError(.badInput, "\(what) \"\(text.prefix(60).debugEscaped)\" contains a control character or NUL byte; use one line of printable text")
        }
    }

    public static func checkName(_ name: String, what: String, allowComma: Bool) throws(SSHCAError) {
        guard !name.isEmpty else {
            throw SSHCAError(.badInput, "empty \(what) (check for a doubled or trailing comma)")
        }
        guard name.utf8.count <= maximumNameLength else {
            throw SSHCAError(.badInput, "\(what) \"\(name.prefix(40))...\" is longer than \(maximumNameLength) bytes")
        }
        for scalar in name.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f {
                throw SSHCAError(.badInput, "\(what) \"\(name.debugEscaped)\" contains a control character or NUL byte")
            }
            if scalar.properties.isWhitespace {
                throw SSHCAError(.badInput, "\(what) \"\(name)\" contains whitespace; \(what)s are single words")
            }
            if scalar == ",", !allowComma {
                throw SSHCAError(.badInput, "\(what) \"\(name)\" contains a comma; separate \(what)s with commas in --principals, not inside one")
            }
        }
    }

    public static func checkUserName(_ name: String) throws(SSHCAError) {
        guard !name.isEmpty, name.utf8.count <= 64,
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-@".unicodeScalars.contains($0)) }),
              name.first != "-" else {
            throw SSHCAError(.badInput, "user name \"\(name.prefix(70))\" must be 1-64 letters, digits, '.', '_', '-' or '@' (it becomes the {user} principal)")
        }
    }


    /// A local account name that becomes a file name (AuthorizedPrincipalsFile's %u): letters,
    /// digits, '.', '_' or '-', not starting with '-', and never "." or "..", which would name
    /// the principals directory itself or its parent.
    public static func checkAccountName(_ name: String, for option: String) throws(SSHCAError) {
        guard !name.isEmpty, name != ".", name != "..", name.utf8.count <= 256,
              name.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }), !name.hasPrefix("-") else {
            throw SSHCAError(.badInput, "\"\(name.debugEscaped)\" is not a valid user name for \(option)")
        }
    }
}
