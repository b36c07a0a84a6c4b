import CGockerCore
import Glibc
import GockerCore

/// The phases of one gocker invocation that starts a container, from the C
/// core's monotonic marks (csrc/include/gocker_timings.h): `gocker run
/// --timings` prints them on stderr after the run; with GOCKER_TIMINGS_FILE
/// set, gocker appends them as one JSON line to that file (which is how
/// `gocker bench` collects them from every start it times).
public enum Timings {
    public struct Phase: Codable, Sendable, Equatable {
        public var name: String
        public var ms: Double

        public init(name: String, ms: Double) {
            self.name = name
            self.ms = ms
        }
    }

    /// One invocation's phases, as written to GOCKER_TIMINGS_FILE.
    public struct Line: Codable, Sendable, Equatable {
        public var phases: [Phase]
        public var total: Double
    }

    public static let fileVariable = "GOCKER_TIMINGS_FILE"

    /// The phase that ends at each mark: the time since the mark reached
    /// just before belongs to it. Marks a command does not pass (the image of
    /// `gocker oci run`) are skipped, their time going to the next. GO ends
    /// the wait for the cgroups wherever it falls: before the child's root
    /// filesystem, or after its mounts when the child set itself up while
    /// the parent made its groups.
    static let phaseEndingAt: [(mark: gk_timing_mark, phase: String)] = [
        (GK_MARK_PARSED, "arguments"),
        (GK_MARK_IMAGE, "image"),
        (GK_MARK_BUNDLE, "config and bundle"),
        (GK_MARK_CONFIG, "config and bundle"),
        (GK_MARK_CLONE, "cgroups"),
        (GK_MARK_CHILD, "clone and namespaces"),
        (GK_MARK_GO, "cgroups"),
        (GK_MARK_PIVOTED, "rootfs and pivot_root"),
        (GK_MARK_MOUNTED, "mounts, devices, user"),
        (GK_MARK_READY, "mounts, devices, user"),
        (GK_MARK_EXEC, "state and start"),
        (GK_MARK_STARTED, "exec"),
        (GK_MARK_EXITED, "run and wait"),
        (GK_MARK_END, "teardown"),
    ]

    /// Every phase name, in the order a start passes them.
    public static let phaseNames: [String] = phaseEndingAt.reduce(into: []) { names, p in
        if !names.contains(p.phase) { names.append(p.phase) }
    }

    /// The phases of a list of marks (nanoseconds by gk_timing_mark, 0 when
    /// not reached), each summed over its segments, in the order of
    /// `phaseNames`; a phase without any segment is left out. Segments run
    /// between the reached marks in the order of their times.
    public static func phases(marks: [UInt64]) -> Line {
        var reached: [(ns: UInt64, phase: String)] = []
        for (mark, phase) in phaseEndingAt {
            let i = Int(mark.rawValue)
            if i < marks.count, marks[i] != 0 { reached.append((marks[i], phase)) }
        }
        reached.sort { $0.ns < $1.ns }  // stable for equal times: the list's order
        let start = marks.indices.contains(Int(GK_MARK_START.rawValue)) ? marks[Int(GK_MARK_START.rawValue)] : 0
        let first = start != 0 ? start : (reached.first?.ns ?? 0)
        var sums: [String: UInt64] = [:]
        var previous = first
        for (ns, phase) in reached where ns >= previous {
            if previous != 0 { sums[phase, default: 0] += ns - previous }
            previous = ns
        }
        let phases = phaseNames.compactMap { name in sums[name].map { Phase(name: name, ms: Double($0) / 1e6) } }
        return Line(phases: phases, total: Double(previous - first) / 1e6)
    }

    /// This process's marks so far.
    public static func currentMarks() -> [UInt64] {
        (0..<GK_MARK_COUNT.rawValue).map { gk_mark_ns(gk_timing_mark(rawValue: $0)) }
    }

    /// Set by `--timings`: print the phases on stderr at exit.
    nonisolated(unsafe) static var printAtExit = false
    nonisolated(unsafe) static var file: String?

    /// At the top of main: the first mark; GOCKER_TIMINGS_FILE turns the
    /// child's marks on.
    public static func begin() {
        gk_mark(GK_MARK_START)
        if let f = Sys.env(fileVariable), !f.isEmpty {
            file = f
            _ = gk_timings_share()
        }
    }

    /// After the command line is parsed.
    public static func commandParsed() { gk_mark(GK_MARK_PARSED) }

    /// `--timings`: the phases go to stderr once the command is done.
    public static func printOnExit() {
        printAtExit = true
        _ = gk_timings_share()
    }

    /// At the end of main: the last mark, then the report asked for.
    public static func finish() {
        guard printAtExit || file != nil else { return }
        gk_mark(GK_MARK_END)
        let line = phases(marks: currentMarks())
        guard line.phases.count > 1 else { return }  // no container was started
        if printAtExit {
            let text = render(line)
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
        if let file {
            let fd = Glibc.open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 {
                try? Sys.writeAll(fd, Array(json(line).utf8), path: file)
                Sys.close(fd)
            }
        }
    }

    /// One line per phase, milliseconds with three decimals, then the total.
    public static func render(_ line: Line) -> String {
        let width = max(22, (line.phases.map(\.name.count).max() ?? 0) + 2)
        func row(_ name: String, _ ms: Double) -> String {
            let value = fixed(ms, 3)
            return name + String(repeating: " ", count: max(1, width - name.count + 10 - value.count)) + value + " ms\n"
        }
        return line.phases.map { row($0.name, $0.ms) }.joined() + row("total", line.total)
    }

    /// The JSON line, written by hand: the names are fixed ASCII, and no
    /// encoder is set up at the end of a timed start.
    /// (Appended piece by piece: `joined(separator:)` and a C varargs
    /// list each cost a search of every protocol conformance in the
    /// binary on first use, half a millisecond at the end of each timed
    /// start.)
    static func json(_ line: Line) -> String {
        var out = #"{"phases":["#
        for (i, p) in line.phases.enumerated() {
            if i > 0 { out += "," }
            out += #"{"name":""# + p.name + #"","ms":"# + fixed(p.ms, 6) + "}"
        }
        return out + #"],"total":"# + fixed(line.total, 6) + "}\n"
    }

    /// C's "%.Nf" (N up to 9), without C's varargs (see `json`) for a
    /// finite value below 2^53 once scaled: rounded half away from zero,
    /// and no sign on a zero.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        let digits = max(0, min(decimals, 9))
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value.magnitude * scale).rounded()
        guard value.isFinite, scaled < 9.0e15 else {
            // (The largest double has 309 digits.)
            var buf = [CChar](repeating: 0, count: 330)
            _ = withVaList([Int32(digits), value]) { vsnprintf(&buf, buf.count, "%.*f", $0) }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let n = UInt64(scaled), unit = UInt64(scale)
        var out = value < 0 && n != 0 ? "-" : ""
        out += String(n / unit)
        if digits > 0 {
            let fraction = String(n % unit)
            out += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return out
    }
}
