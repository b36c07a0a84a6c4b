import Glibc

/// Container ids and names: generation and validation.
public enum Identifier {
    /// A new 64-hex-digit container id, as docker makes them.
    public static func newContainerID() -> String { Sys.randomBytes(32).hex }

    /// An OCI container id, as runc accepts them: letters, digits and
    /// `_ + - .`, 1 to 1024 characters, not "." or "..".
    public static func validateContainerID(_ id: String) throws(GockerError) {
        let ok = !id.isEmpty && id.utf8.count <= 1024 && id != "." && id != ".."
            && id.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
                    || c == UInt8(ascii: "_") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
                    || c == UInt8(ascii: ".")
            }
        if !ok { throw GockerError(.invalidArgument, "invalid container id \"\(id)\": only [a-zA-Z0-9_+.-] allowed") }
    }

    /// A docker container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, 2 to 255 characters.
    public static func validateName(_ name: String) throws(GockerError) {
        let bytes = Array(name.utf8)
        func alnum(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
        }
        let ok = bytes.count >= 2 && bytes.count <= 255 && alnum(bytes[0])
            && bytes.dropFirst().allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        if !ok {
            throw GockerError(.invalidArgument, "invalid container name \"\(name)\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
    }

    private static let adjectives = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quirky", "sharp", "tender", "upbeat", "vivid", "witty", "zealous", "bold",
    ]
    private static let nouns = [
        "turing", "hopper", "lovelace", "knuth", "ritchie", "thompson", "torvalds", "dijkstra",
        "hamilton", "liskov", "lamport", "babbage", "noether", "curie", "euler", "gauss",
        "shannon", "kay", "wirth", "backus",
    ]

    /// A random docker-style name such as "witty_lovelace".
    public static func randomName() -> String {
        let r = Sys.randomBytes(2)
        return "\(adjectives[Int(r[0]) % adjectives.count])_\(nouns[Int(r[1]) % nouns.count])"
    }
}

/// Wall-clock timestamps in RFC 3339 with nanoseconds, UTC, as runc and docker write them.
public enum Timestamp {
    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: ts.tv_sec, nanoseconds: Int(ts.tv_nsec))
    }

    /// Worked out here rather than by gmtime_r, which first reads the
    /// host's /etc/localtime (glibc sets up the time zone on every first
    /// conversion): seven system calls on each container start.
    public static func format(seconds: Int, nanoseconds: Int) -> String {
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let inDay = seconds - days * 86400
        let (year, month, day) = civil(days: days)
        let ns = String(nanoseconds)
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T"
            + "\(pad(inDay / 3600, 2)):\(pad(inDay / 60 % 60, 2)):\(pad(inDay % 60, 2))."
            + String(repeating: "0", count: 9 - ns.count) + ns + "Z"
    }

    /// The proleptic Gregorian date `days` after 1970-01-01: counted in
    /// 400-year eras from 0000-03-01 (a year that begins in March ends with
    /// its leap day).
    static func civil(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let m = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * m + 2) / 5 + 1
        let month = m < 10 ? m + 3 : m - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and line ends.
    /// Inlinable: the callers in other modules get it specialized for their
    /// String or Substring instead of going through the generic code.
    @inlinable
    public var trimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}

extension Array where Element == String {
    /// `joined(separator:)` without the standard library's generic code:
    /// its first use in a process has the runtime build a generic type from
    /// its mangled name and, to check that type's requirements, scan every
    /// protocol conformance in the binary (tens of microseconds, on a
    /// start's path).
    public func joined(by separator: String) -> String {
        var out = ""
        for i in 0..<count {
            if i > 0 { out += separator }
            out += self[i]
        }
        return out
    }
}
