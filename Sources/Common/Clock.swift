#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seconds since the epoch, the unit of certificate validity.
public enum Clock {
    public static func now() -> UInt64 {
        UInt64(max(0, time(nil)))
    }
}
