@testable import Common
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import Authority

@Suite("Durations")
struct DurationTests {
    @Test("durations in sshd_config TIME FORMAT", arguments: [
        ("90m", UInt64(5400)), ("16h", 57600), ("30d", 2_592_000), ("1w", 604_800), ("1h30m", 5400),
        ("3600", 3600), ("0", 0), ("45s", 45), ("1H", 3600), ("2W1D", 1_296_000), ("1w2d3h4m5s", 788_645),
        ("10s5", 15), ("007m", 420), ("1m1m", 120),
    ])
    func parses(text: String, seconds: UInt64) throws {
        #expect(try DurationText.seconds(text) == seconds)
        #expect(try DurationText.seconds(Substring(text)) == seconds)
    }

    @Test("bad durations are refused", arguments: [
        "", "h", "5x", "1.5h", "-5m", "+5m", " 5m", "5m ", "5 m", "1hh", "m5", "١٢h", "5µs",
        "99999999999999999999", "18446744073709551616", "30600000000000w", "18446744073709551615s1",
        "18446744073709551615s1s",
    ])
    func refuses(text: String) {
        let error = authorityError { _ = try DurationText.seconds(text) }
        #expect(error?.code == .badInput)
        #expect(error?.isInputError == true)
        #expect(error?.reason.isEmpty == false)
    }

    @Test func largestValuesAndOverflowMessages() throws {
        #expect(try DurationText.seconds("18446744073709551615") == .max)
        #expect(try DurationText.seconds("18446744073709551615s") == .max)
        #expect(authorityError { _ = try DurationText.seconds("18446744073709551616") }?.reason.contains("too large") == true)
        #expect(authorityError { _ = try DurationText.seconds("30600000000000w") }?.reason.contains("too large") == true)
        #expect(try DurationText.seconds("30500000000000w") == 18_446_400_000_000_000_000)
        #expect(authorityError { _ = try DurationText.seconds("h") }?.reason.contains("number") == true)
        #expect(authorityError { _ = try DurationText.seconds("") }?.reason.contains("empty") == true)
    }

    @Test("format", arguments: [
        (UInt64(0), "0s"), (45, "45s"), (60, "1m"), (5400, "1h30m"), (57600, "16h"), (86400, "1d"),
        (90061, "1d1h1m1s"), (604_800, "1w"), (1_209_603, "2w3s"), (2_592_000, "4w2d"),
    ])
    func format(seconds: UInt64, text: String) throws {
        #expect(DurationText.format(seconds) == text)
        #expect(try DurationText.seconds(text) == seconds)
    }

    @Test func formatRoundTrips() throws {
        var values: [UInt64] = [1, 59, 61, 3599, 3601, 86399, 86401, .max, .max - 1, UInt64(Int64.max)]
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        for _ in 0..<500 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            values.append(x >> UInt64(x % 50))
        }
        for value in values {
            #expect(try DurationText.seconds(DurationText.format(value)) == value, "\(value)")
        }
    }
}

@Suite("Validity windows (relative forms)")
struct ValidityTests {
    static let now: UInt64 = 1_900_000_000
    static let backdate: UInt64 = 300

    func parse(_ spec: String, now: UInt64 = Self.now, backdate: UInt64 = Self.backdate) throws -> ValidityWindow {
        try ValidityWindow.parse(spec, now: now, backdate: backdate)
    }

    @Test func durationStartsBackdated() throws {
        #expect(try parse("16h") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 57600))
        #expect(try parse("90m") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 5400))
        #expect(try parse("  1d\t") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 86400))
        #expect(try parse("16h", backdate: 0) == ValidityWindow(validAfter: Self.now, validBefore: Self.now + 57600))
        #expect(try parse("3600") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 3600))
    }

    @Test func plusDuration() throws {
        #expect(try parse("+16h") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 57600))
        #expect(try parse("+1w") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 604_800))
    }

    @Test func relativeRanges() throws {
        #expect(try parse("-5m:+1d") == ValidityWindow(validAfter: Self.now - 300, validBefore: Self.now + 86400))
        #expect(try parse("+1h:+2h") == ValidityWindow(validAfter: Self.now + 3600, validBefore: Self.now + 7200))
        #expect(try parse("-2d:-1d") == ValidityWindow(validAfter: Self.now - 172_800, validBefore: Self.now - 86400))
        #expect(try parse("always:+1d") == ValidityWindow(validAfter: 0, validBefore: Self.now + 86400))
        #expect(try parse("-1h:forever") == ValidityWindow(validAfter: Self.now - 3600, validBefore: .max))
    }

    @Test func foreverForms() throws {
        for spec in ["forever", "always", "always:forever", " forever "] {
            #expect(try parse(spec) == .forever, "\(spec)")
        }
        #expect(ValidityWindow.forever == ValidityWindow(validAfter: 0, validBefore: .max))
    }

    @Test func clampsAtTheEnds() throws {
        #expect(try parse("-1h:+1h", now: 100) == ValidityWindow(validAfter: 0, validBefore: 3700))
        #expect(try parse("1h", now: 100) == ValidityWindow(validAfter: 0, validBefore: 3700))
        #expect(try parse("+18446744073709551615s") == ValidityWindow(validAfter: Self.now - 300, validBefore: .max))
    }

    @Test("garbage is refused", arguments: [
        "", "   ", "soon", "16x", ":", "+", "-", "1d:", ":1d", "+1d:", "2030-01-01", "203001011",
        "20300101:2030", "always:always", "forever:forever", "now", "+-1d", "1d:2d", "16h:", "--5m:+1d",
        "-5m:+1d:+2d", "20300101T1200", "99999999999999999999999", "2030010112", "20300101ZZ", "Z",
    ])
    func garbage(spec: String) {
        let error = authorityError { _ = try ValidityWindow.parse(spec, now: Self.now, backdate: Self.backdate) }
        #expect(error?.code == .badInput)
    }

    @Test("windows that end before they start are refused", arguments: [
        "+1d:-1d", "-5m:-10m", "+1h:+1h", "20300201Z:20300101Z", "20300101Z:20300101Z", "20300101Z:20291231Z",
        "always:19700101Z", "20200101Z",
    ])
    func reversed(spec: String) {
        let error = authorityError { _ = try ValidityWindow.parse(spec, now: Self.now, backdate: Self.backdate) }
        #expect(error?.code == .badInput)
    }

    /// Each date is tried as an end ("always:DATE") and as a start ("DATE:forever"), so only the
    /// date itself can make the window invalid.
    @Test("invalid calendar dates are refused", arguments: [
        "20301301Z", "20300001Z", "20300100Z", "20300132Z", "20300230Z", "20310229Z", "20300431Z", "20301131Z",
        "203001012400Z", "203001011260Z", "20300101120061Z", "19691231Z", "00000000Z",
        "20301301", "20300230", "20300431",
    ])
    func invalidDates(date: String) {
        for spec in ["always:\(date)", "\(date):forever"] {
            let error = authorityError { _ = try ValidityWindow.parse(spec, now: Self.now, backdate: Self.backdate) }
            #expect(error?.code == .badInput, "\(spec)")
        }
    }

    @Test func validCalendarEdges() throws {
        #expect(try parse("always:20300131Z").validBefore == 1_893_456_000 + 30 * 86400)
        #expect(try parse("always:20301231235959Z").validBefore == 1_924_991_999)
        #expect(try parse("always:20300101000060Z").validBefore == 1_893_456_060) // a leap second reads as the next minute
    }

    @Test func utcAbsoluteTimes() throws {
        // 2030-01-01T00:00:00Z = 1893456000; Z means UTC whatever the local zone is.
        #expect(try parse("20300101Z:20300102Z") == ValidityWindow(validAfter: 1_893_456_000, validBefore: 1_893_542_400))
        #expect(try parse("203001011230Z:20300101123045Z") == ValidityWindow(validAfter: 1_893_501_000, validBefore: 1_893_501_045))
        #expect(try parse("always:20300101Z") == ValidityWindow(validAfter: 0, validBefore: 1_893_456_000))
        #expect(try parse("20200101Z:forever", now: Self.now) == ValidityWindow(validAfter: 1_577_836_800, validBefore: .max))
        // A lone absolute time is the end: from now (backdated) to then.
        #expect(try parse("20300101Z", now: 1_800_000_000) == ValidityWindow(validAfter: 1_800_000_000 - 300, validBefore: 1_893_456_000))
        // Leap day in a leap year.
        #expect(try parse("20280229Z:20280301Z", now: 1) == ValidityWindow(validAfter: 1_835_395_200, validBefore: 1_835_481_600))
        // Mixed relative and absolute.
        #expect(try parse("-5m:20300101Z", now: 1_800_000_000) == ValidityWindow(validAfter: 1_800_000_000 - 300, validBefore: 1_893_456_000))
    }

    @Test func descriptions() {
        #expect(ValidityWindow.forever.description == "forever")
        #expect(ValidityWindow(validAfter: 0, validBefore: 1_893_456_000).description.hasPrefix("before 20"))
        #expect(ValidityWindow(validAfter: 1_893_456_000, validBefore: .max).description.hasPrefix("after 20"))
        #expect(ValidityWindow(validAfter: 1, validBefore: 2).description.hasPrefix("from 19"))
        #expect(CertificateTime.format(0) == "always")
        #expect(CertificateTime.format(.max) == "forever")
        #expect(CertificateTime.format(1_893_501_045, utc: true) == "2030-01-01T12:30:45Z")
        #expect(CertificateTime.format(UInt64(Int.max) + 1, utc: true) == "forever")
    }
}

/// Absolute times without Z are local time. These tests set TZ in this process (to zones with
/// and without DST, never UTC) and compare with `date -d` run in the same zone. They run one at a
/// time and put TZ back afterwards; nothing else in this target reads local time.
@Suite("Validity windows (local time)", .serialized)
struct LocalTimeTests {
    static let zones = ["America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "EST5EDT,M3.2.0,M11.1.0"]

    /// TZ is replaced, never removed: glibc then only swaps the value pointer, so threads that read
    /// the environment at the same time (other suites starting processes) stay safe. ":/etc/localtime"
    /// is what an unset TZ means.
    static func withTimeZone<T>(_ zone: String, _ body: () throws -> T) rethrows -> T {
        let saved = getenv("TZ").map { String(cString: $0) } ?? ":/etc/localtime"
        setenv("TZ", zone, 1)
        tzset()
        defer {
            setenv("TZ", saved, 1)
            tzset()
        }
        return try body()
    }

    /// What `date` says the local time is in seconds since the epoch.
    static func date(_ text: String, zone: String) throws -> UInt64 {
        let out = try run("date", ["-d", text, "+%s"], environment: ["TZ": zone]).stdoutText
        return try #require(UInt64(out.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    @Test(arguments: zones)
    func absoluteTimesAreLocal(zone: String) throws {
        let now: UInt64 = 1_800_000_000
        let cases: [(spec: String, from: String, to: String)] = [
            ("20300115:20300715", "2030-01-15 00:00:00", "2030-07-15 00:00:00"),
            ("203001151230:203007151745", "2030-01-15 12:30:00", "2030-07-15 17:45:00"),
            ("20300115123005:20301103120000", "2030-01-15 12:30:05", "2030-11-03 12:00:00"),
        ]
        for (spec, from, to) in cases {
            let window = try Self.withTimeZone(zone) { try ValidityWindow.parse(spec, now: now, backdate: 300) }
            #expect(window.validAfter == (try Self.date(from, zone: zone)), "\(spec) in \(zone)")
            #expect(window.validBefore == (try Self.date(to, zone: zone)), "\(spec) in \(zone)")
        }
        // A lone local end time.
        let lone = try Self.withTimeZone(zone) { try ValidityWindow.parse("20300715", now: now, backdate: 300) }
        #expect(lone == ValidityWindow(validAfter: now - 300, validBefore: try Self.date("2030-07-15 00:00:00", zone: zone)))
        // Z ignores the zone: local and UTC readings differ by the zone's offset.
        let (local, utc) = try Self.withTimeZone(zone) {
            (try ValidityWindow.parse("20300115:forever", now: now, backdate: 0).validAfter,
             try ValidityWindow.parse("20300115Z:forever", now: now, backdate: 0).validAfter)
        }
        #expect(utc == 1_894_665_600)
        #expect(local == (try Self.date("2030-01-15 00:00:00", zone: zone)))
        #expect(local != utc)
    }

    @Test("times are local like ssh-keygen's, with the offset (RFC 3339)")
    func reportTimesAreLocalLikeSSHKeygen() throws {
        let zone = "Asia/Kolkata"
        let text = Self.withTimeZone(zone) {
            (CertificateTime.format(1_893_456_000), ValidityWindow(validAfter: 1_893_456_000, validBefore: 1_893_542_400).description)
        }
        #expect(text.0 == "2030-01-01T05:30:00+05:30")
        #expect(text.1 == "from 2030-01-01T05:30:00+05:30 to 2030-01-02T05:30:00+05:30")
        #expect(CertificateTime.format(1_893_456_000, utc: true) == "2030-01-01T00:00:00Z")
        #expect(Self.withTimeZone("America/St_Johns") { CertificateTime.format(1_893_456_000) } == "2029-12-31T20:30:00-03:30")
    }
}
