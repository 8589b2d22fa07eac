import Common
import ArgumentParser
import Authority
import SSHFormat
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a certificate's fields and whether its CA signature verifies.",
        discussion: helpText("""
        Prints what ssh-keygen -L prints, plus the signature verdict and the signing CA's
        fingerprint (compare it with: sshca ca-key | ssh-keygen -lf -).
        Exit status: 0 the signature verifies, 1 it does not, 65 the file is not a certificate.
        """)
    )

    @Flag(name: .long, help: "Print JSON for scripts.")
    var json = false

    @Argument(help: ArgumentHelp("The certificate file (\"-\" for standard input).", valueName: "file"))
    var file: String

    func run() throws {
        var valid = false
        try reportingErrors {
            let bytes = try readInput(file, maximumBytes: 256 * 1024, what: "certificate")
            let certificate = try KeyFiles.parseCertificate(bytes, source: file == "-" ? "standard input" : file)
            let report = CertificateReport(certificate)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let data = try encoder.encode(report)
                FileHandleLite.standardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
            } else {
                FileHandleLite.standardOutput.write(report.text(source: file == "-" ? "(stdin)" : file))
            }
            valid = report.signatureValid
        }
        if !valid { throw ExitCode(ExitStatus.failure) }
    }
}
