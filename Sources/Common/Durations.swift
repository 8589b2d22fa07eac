import SSHFormat
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Durations as sshd_config(5) TIME FORMATS write them: a number with an optional unit
/// (s, m, h, d, w; none means seconds), several in a row add up: "90m", "16h", "1h30m", "30d", "1w".
public enum DurationText {
    public static func seconds(_ text: some StringProtocol) throws(SSHCAError) -> UInt64 {
        let s = String(text)
        guard !s.isEmpty else { throw SSHCAError(.badInput, "empty duration; write it like 90m, 16h, 30d or 1w") }
        var total: UInt64 = 0
        var number: UInt64? = nil
        for c in s {
            if let digit = c.wholeNumberValue, c.isASCII {
                let (times10, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.addingReportingOverflow(UInt64(digit))
                guard !o1, !o2 else { throw SSHCAError(.badInput, "duration \"\(s)\" is too large") }
                number = next
                continue
            }
            let unit: UInt64
            switch c {
            case "s", "S": unit = 1
            case "m", "M": unit = 60
            case "h", "H": unit = 3600
            case "d", "D": unit = 86400
            case "w", "W": unit = 604800
            default:
                throw SSHCAError(.badInput, "invalid duration \"\(s.prefix(40))\": use a number with a unit s, m, h, d or w, like 90m, 16h, 30d or 1w")
            }
            guard let n = number else {
                throw SSHCAError(.badInput, "invalid duration \"\(s.prefix(40))\": a unit needs a number before it, like 90m, 16h, 30d or 1w")
            }
            let (part, o1) = n.multipliedReportingOverflow(by: unit)
            let (sum, o2) = total.addingReportingOverflow(part)
            guard !o1, !o2 else { throw SSHCAError(.badInput, "duration \"\(s)\" is too large") }
            total = sum
            number = nil
        }
        if let n = number {
            let (sum, o) = total.addingReportingOverflow(n)
            guard !o else { throw SSHCAError(.badInput, "duration \"\(s)\" is too large") }
            total = sum
        }
        return total
    }

    /// Prints seconds the way people write them: "1d", "16h", "1h30m", "45s".
    public static func format(_ seconds: UInt64) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var out = ""
        for (unit, name) in [(UInt64(604800), "w"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s")] where rest >= unit {
            out += "\(rest / unit)\(name)"
            rest %= unit
        }
        return out
    }
}

/// A certificate's validity window: valid when validAfter <= now < validBefore (PROTOCOL.certkeys).
public struct ValidityWindow: Equatable, Sendable, CustomStringConvertible {
    public var validAfter: UInt64
    public var validBefore: UInt64

    public static let forever = ValidityWindow(validAfter: 0, validBefore: .max)

    /// ssh-keygen's wording: "from T1 to T2", "after T1", "before T2" or "forever".
    public var description: String {
        if validAfter == 0 && validBefore == .max { return "forever" }
        if validAfter == 0 { return "before \(CertificateTime.format(validBefore))" }
        if validBefore == .max { return "after \(CertificateTime.format(validAfter))" }
        return "from \(CertificateTime.format(validAfter)) to \(CertificateTime.format(validBefore))"
    }

    public init(validAfter: UInt64, validBefore: UInt64) {
        self.validAfter = validAfter
        self.validBefore = validBefore
    }

    /// Parses `--validity`: a duration ("16h": from `now - backdate` for that long), or the forms of
    /// ssh-keygen -V: "+16h", "FROM:TO" where FROM is "always", "-5m", "+1d" or
    /// YYYYMMDD[HHMM[SS]][Z] and TO is "forever", "+1d", "-1h" or an absolute time; and "forever"
    /// or "always" alone for a certificate without limits. Absolute times without Z are local time,
    /// as in ssh-keygen.
    public static func parse(_ spec: String, now: UInt64, backdate: UInt64) throws(SSHCAError) -> ValidityWindow {
        let text = spec.trimmingCharacters(in: " \t")
        guard !text.isEmpty else { throw invalid(spec) }
        let window: ValidityWindow
        if text == "forever" || text == "always" || text == "always:forever" {
            window = .forever
        } else if let colon = text.firstIndex(of: ":") {
            let from = String(text[..<colon]), to = String(text[text.index(after: colon)...])
            guard !from.isEmpty, !to.isEmpty else { throw invalid(spec) }
            let start: UInt64 = from == "always" ? 0 : try point(from, now: now, spec: spec)
            let end: UInt64 = to == "forever" ? .max : try point(to, now: now, spec: spec)
            window = ValidityWindow(validAfter: start, validBefore: end)
        } else if text.first == "+" {
            let length = try DurationText.seconds(text.dropFirst())
            window = ValidityWindow(validAfter: now.subtractingClamped(backdate), validBefore: now.addingClamped(length))
        } else if text.first?.isNumber == true, text.allSatisfy({ $0.isNumber || $0 == "Z" }), text.count >= 8 {
            // A lone absolute time is an end time, as `ssh-keygen -V 20301231` would be "now to then".
            window = ValidityWindow(validAfter: now.subtractingClamped(backdate), validBefore: try absolute(text, spec: spec))
        } else {
            let length: UInt64
            do { length = try DurationText.seconds(text) } catch { throw invalid(spec) }
            window = ValidityWindow(validAfter: now.subtractingClamped(backdate), validBefore: now.addingClamped(length))
        }
        guard window.validAfter < window.validBefore else {
            throw SSHCAError(.badInput, "validity \"\(spec)\" ends before it starts")
        }
        return window
    }

    private static func invalid(_ spec: String) -> SSHCAError {
        SSHCAError(.badInput, "invalid validity \"\(spec.prefix(60))\": use a duration (16h, 30d, 1w), +16h, -5m:+1d, YYYYMMDD[HHMM[SS]]:YYYYMMDD[HHMM[SS]], always:forever or forever")
    }

    private static func point(_ text: String, now: UInt64, spec: String) throws(SSHCAError) -> UInt64 {
        if text.first == "+" || text.first == "-" {
            let length: UInt64
            do { length = try DurationText.seconds(text.dropFirst()) } catch { throw invalid(spec) }
            return text.first == "+" ? now.addingClamped(length) : now.subtractingClamped(length)
        }
        return try absolute(text, spec: spec)
    }

    /// YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, local time, or UTC with a trailing Z.
    private static func absolute(_ text: String, spec: String) throws(SSHCAError) -> UInt64 {
        var digits = text
        let utc = digits.hasSuffix("Z")
        if utc { digits.removeLast() }
        guard [8, 12, 14].contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw invalid(spec) }
        let d = Array(digits).map { Int32($0.wholeNumberValue!) }
        func field(_ start: Int, _ length: Int) -> Int32 {
            (start..<start + length).reduce(0) { $0 * 10 + d[$1] }
        }
        var parts = tm()
        parts.tm_year = field(0, 4) - 1900
        parts.tm_mon = field(4, 2) - 1
        parts.tm_mday = field(6, 2)
        if d.count >= 12 {
            parts.tm_hour = field(8, 2)
            parts.tm_min = field(10, 2)
        }
        if d.count == 14 { parts.tm_sec = field(12, 2) }
        guard (0...11).contains(parts.tm_mon), (1...31).contains(parts.tm_mday), (0...23).contains(parts.tm_hour),
              (0...59).contains(parts.tm_min), (0...60).contains(parts.tm_sec), parts.tm_year >= 70 else {
            throw invalid(spec)
        }
        parts.tm_isdst = -1
        let (year, month, day) = (parts.tm_year, parts.tm_mon, parts.tm_mday)
        let t = utc ? timegm(&parts) : mktime(&parts)
        // timegm/mktime quietly turn February 30 into March 2: a date that moved was not a date.
        guard t >= 0, parts.tm_year == year, parts.tm_mon == month, parts.tm_mday == day else { throw invalid(spec) }
        return UInt64(t)
    }
}

extension UInt64 {
    public func addingClamped(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    public func subtractingClamped(_ other: UInt64) -> UInt64 {
        self > other ? self - other : 0
    }
}


/// Formats a certificate time as ssh-keygen -L does (local time, "2026-11-25T12:00:00"), with
/// 0 and UInt64.max printed as "always" and "forever".
public enum CertificateTime {
    public static func format(_ time: UInt64, utc: Bool = false) -> String {
        if time == .max { return "forever" }
        if time == 0 { return "always" }
        guard time <= UInt64(Int.max) else { return "forever" }
        var t = time_t(time)
        var parts = tm()
        if utc { gmtime_r(&t, &parts) } else { localtime_r(&t, &parts) }
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let text = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // RFC 3339: always the offset, so a time read on another machine means the same instant.
        let offset = utc ? 0 : parts.tm_gmtoff
        if offset == 0 { return text + "Z" }
        let minutes = abs(offset) / 60
        let hh = minutes / 60, mm = minutes % 60
        return text + (offset < 0 ? "-" : "+") + (hh < 10 ? "0" : "") + "\(hh):" + (mm < 10 ? "0" : "") + "\(mm)"
    }
}
