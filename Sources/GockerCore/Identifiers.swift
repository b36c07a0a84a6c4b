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

    public static func format(seconds: Int, nanoseconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let ns = String(nanoseconds)
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))."
            + String(repeating: "0", count: 9 - ns.count) + ns + "Z"
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
