import Common
import Authority
import Synchronization

/// Counters and a latency histogram, exposed in Prometheus' text format at /metrics.
public final class ServiceMetrics: Sendable {
    struct State {
        var issued: [String: UInt64] = [:]          // by certificate type
        var refused: [String: UInt64] = [:]         // by reason
        var revoked: UInt64 = 0
        var authFailures: [String: UInt64] = [:]    // by method
        var requests: [String: UInt64] = [:]        // by status class
        var latencyBuckets = [UInt64](repeating: 0, count: ServiceMetrics.bounds.count)
        var latencyCount: UInt64 = 0
        var latencySum: Double = 0
    }

    static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    private let state = Mutex(State())

    public init() {}

    func issued(_ type: String) { state.withLock { $0.issued[type, default: 0] += 1 } }
    func refused(_ reason: String) { state.withLock { $0.refused[reason, default: 0] += 1 } }
    func revoked() { state.withLock { $0.revoked += 1 } }
    func authFailure(_ method: String) { state.withLock { $0.authFailures[method, default: 0] += 1 } }

    func request(status: Int, seconds: Double) {
        state.withLock { s in
            s.requests["\(status / 100)xx", default: 0] += 1
            s.latencyCount += 1
            s.latencySum += seconds
            for (i, bound) in Self.bounds.enumerated() where seconds <= bound { s.latencyBuckets[i] += 1 }
        }
    }

    /// `info`: gauges that are always 1 and say something in their labels (name, help, labels).
    public func render(extra: [(String, String, Double)] = [], info: [(String, String, [(String, String)])] = []) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("sshca_build_info", "gauge", "The sshca version and the commit it was built from (always 1).")
        out += "sshca_build_info{version=\"\(BuildInfo.version)\",commit=\"\(BuildInfo.commit)\"} 1\n"
        family("sshca_certificates_issued_total", "counter", "Certificates issued and committed to the ledger.")
        for type in ["user", "host"] { out += "sshca_certificates_issued_total{type=\"\(type)\"} \(s.issued[type] ?? 0)\n" }
        family("sshca_requests_refused_total", "counter", "Requests refused, by reason.")
        for (reason, n) in s.refused.sorted(by: { $0.key < $1.key }) { out += "sshca_requests_refused_total{reason=\"\(reason)\"} \(n)\n" }
        family("sshca_revocations_total", "counter", "Revocations recorded through the API.")
        out += "sshca_revocations_total \(s.revoked)\n"
        family("sshca_authentication_failures_total", "counter", "Failed authentications, by method.")
        for (method, n) in s.authFailures.sorted(by: { $0.key < $1.key }) { out += "sshca_authentication_failures_total{method=\"\(method)\"} \(n)\n" }
        family("sshca_http_requests_total", "counter", "HTTP requests answered, by status class.")
        for (code, n) in s.requests.sorted(by: { $0.key < $1.key }) { out += "sshca_http_requests_total{code=\"\(code)\"} \(n)\n" }
        family("sshca_http_request_duration_seconds", "histogram", "Time from request to response.")
        for (i, bound) in Self.bounds.enumerated() {
            out += "sshca_http_request_duration_seconds_bucket{le=\"\(bound)\"} \(s.latencyBuckets[i])\n"
        }
        out += "sshca_http_request_duration_seconds_bucket{le=\"+Inf\"} \(s.latencyCount)\n"
        out += "sshca_http_request_duration_seconds_sum \(s.latencySum)\n"
        out += "sshca_http_request_duration_seconds_count \(s.latencyCount)\n"
        for (name, help, value) in extra {
            family(name, "gauge", help)
            out += "\(name) \(value)\n"
        }
        for (name, help, labels) in info {
            family(name, "gauge", help)
            let escaped = labels.map { "\($0.0)=\"\($0.1.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))\"" }
            out += "\(name){\(escaped.joined(separator: ","))} 1\n"
        }
        return out
    }
}
