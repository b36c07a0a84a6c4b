import Glibc
import GockerCore
import GockerRuntime

/// One timed start.
public struct BenchSample: Codable, Sendable, Equatable {
    public var runtime: String
    public var row: String
    /// 0..<n for the measured starts; the warm-up starts count on their own.
    public var index: Int
    public var warmup: Bool
    /// From spawn to reap, in milliseconds; nil when nothing could be spawned.
    public var ms: Double?
    public var ok: Bool
    /// The first line of the runtime's stderr (or why it could not start).
    public var error: String?

    enum CodingKeys: String, CodingKey { case runtime, row, index, warmup, ms, ok, error }

    /// Every key, null included, so that a reader finds each field.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(row, forKey: .row)
        try c.encode(index, forKey: .index)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(ms, forKey: .ms)
        try c.encode(ok, forKey: .ok)
        try c.encode(error, forKey: .error)
    }
}

/// Latency figures of one row's successful starts, in milliseconds.
public struct BenchStats: Codable, Sendable, Equatable {
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var min: Double
    public var max: Double
    public var mean: Double
    public var total: Double
    /// Quartiles, for the chart's boxes.
    public var p25: Double
    public var p75: Double

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        p50 = Self.percentile(s, 50)
        p90 = Self.percentile(s, 90)
        p99 = Self.percentile(s, 99)
        p25 = Self.percentile(s, 25)
        p75 = Self.percentile(s, 75)
        min = s[0]
        max = s[s.count - 1]
        total = s.reduce(0, +)
        mean = total / Double(s.count)
    }

    /// Linear interpolation between the closest ranks of sorted values.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard sorted.count > 1 else { return sorted.first ?? 0 }
        let rank = p / 100 * Double(sorted.count - 1)
        let lo = Int(rank.rounded(.down))
        let hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - Double(lo))
    }
}

/// One row of the table.
public struct BenchSummary: Codable, Sendable, Equatable {
    public struct PhaseSum: Codable, Sendable, Equatable {
        public var name: String
        /// Summed over the row's measured starts, in milliseconds.
        public var total: Double
        public var mean: Double
    }

    public var runtime: String
    public var row: String
    /// The command of the first start (ids differ from start to start).
    public var command: [String]
    /// Successful measured starts.
    public var n: Int
    public var failedStarts: Int
    public var failed: Bool
    public var error: String?
    public var stats: BenchStats?
    /// p50 over the p50 of `gocker run --rm`.
    public var ratio: Double?
    /// Starts per second: successful starts over the time the row's waves took.
    public var throughput: Double?
    /// gocker's own phases (`--timings`), for gocker's rows.
    public var phases: [PhaseSum]

    enum CodingKeys: String, CodingKey {
        case runtime, row, command, n, failedStarts, failed, error, p50, p90, p99, min, max, mean, total, p25, p75
        case ratio, throughput, phases
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(row, forKey: .row)
        try c.encode(command, forKey: .command)
        try c.encode(n, forKey: .n)
        try c.encode(failedStarts, forKey: .failedStarts)
        try c.encode(failed, forKey: .failed)
        try c.encode(error, forKey: .error)
        try c.encode(stats?.p50, forKey: .p50)
        try c.encode(stats?.p90, forKey: .p90)
        try c.encode(stats?.p99, forKey: .p99)
        try c.encode(stats?.min, forKey: .min)
        try c.encode(stats?.max, forKey: .max)
        try c.encode(stats?.mean, forKey: .mean)
        try c.encode(stats?.total, forKey: .total)
        try c.encode(stats?.p25, forKey: .p25)
        try c.encode(stats?.p75, forKey: .p75)
        try c.encode(ratio, forKey: .ratio)
        try c.encode(throughput, forKey: .throughput)
        try c.encode(phases, forKey: .phases)
    }

    public init(runtime: String, row: String, command: [String], n: Int, failedStarts: Int, failed: Bool,
                error: String?, stats: BenchStats?, ratio: Double?, throughput: Double?, phases: [PhaseSum]) {
        self.runtime = runtime
        self.row = row
        self.command = command
        self.n = n
        self.failedStarts = failedStarts
        self.failed = failed
        self.error = error
        self.stats = stats
        self.ratio = ratio
        self.throughput = throughput
        self.phases = phases
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        runtime = try c.decode(String.self, forKey: .runtime)
        row = try c.decode(String.self, forKey: .row)
        command = try c.decode([String].self, forKey: .command)
        n = try c.decode(Int.self, forKey: .n)
        failedStarts = try c.decode(Int.self, forKey: .failedStarts)
        failed = try c.decode(Bool.self, forKey: .failed)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        if let p50 = try c.decodeIfPresent(Double.self, forKey: .p50) {
            var s = BenchStats([p50])!
            s.p90 = try c.decode(Double.self, forKey: .p90)
            s.p99 = try c.decode(Double.self, forKey: .p99)
            s.min = try c.decode(Double.self, forKey: .min)
            s.max = try c.decode(Double.self, forKey: .max)
            s.mean = try c.decode(Double.self, forKey: .mean)
            s.total = try c.decode(Double.self, forKey: .total)
            s.p25 = try c.decode(Double.self, forKey: .p25)
            s.p75 = try c.decode(Double.self, forKey: .p75)
            stats = s
        } else {
            stats = nil
        }
        ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
        throughput = try c.decodeIfPresent(Double.self, forKey: .throughput)
        phases = try c.decode([PhaseSum].self, forKey: .phases)
    }
}

/// Everything one bench run measured: what `--json` writes.
public struct BenchResult: Codable, Sendable, Equatable {
    public struct Machine: Codable, Sendable, Equatable {
        public var kernel: String
        public var cpus: Int
        public var date: String
        /// Whether this gocker's code was mapped in 2 MB pages when the
        /// report was begun (at the end of a run of starts, at the start of
        /// `--images`), as the release binary's is while its page cache is
        /// the one `./build.sh release` wrote (2 MB folios); after the
        /// kernel evicted it and read it back in, 4 KB pages (a start about
        /// 6 % slower here). nil where /proc/self/smaps could not say.
        public var codeIn2MBPages: Bool? = nil
    }

    public var machine: Machine
    public var gocker: String
    public var count: Int
    public var warmup: Int
    public var parallel: Int
    /// The signal that stopped the run early, if one did.
    public var interruptedBy: Int32?
    public var summary: [BenchSummary]
    public var samples: [BenchSample]

    public static func machineNow() -> Machine {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let smaps = (try? Sys.readText("/proc/self/smaps")) ?? ""
        return Machine(kernel: release, cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), date: Timestamp.now(),
                       codeIn2MBPages: codeIn2MBPages(smaps: smaps, binary: Bench.selfPath()))
    }

    /// From a process's smaps: whether `binary`'s executable mapping has
    /// any of it in 2 MB pages (FilePmdMapped); nil without that mapping.
    public static func codeIn2MBPages(smaps: String, binary: String) -> Bool? {
        var inside = false
        var found: Bool?
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let first = fields.first else { continue }
            if first.contains("-") && first.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                inside = fields.count >= 6 && fields[1] == "r-xp" && fields[5...].joined(separator: " ") == binary
                if inside && found == nil { found = false }
            } else if inside && first == "FilePmdMapped:", fields.count >= 2, let kB = Int(fields[1]), kB > 0 {
                found = true
            }
        }
        return found
    }
}

// MARK: the table

extension BenchResult {
    /// What `gocker bench` prints on stdout.
    public func table() -> String {
        let fixed = Timings.fixed
        let mode = parallel == 1 ? "one at a time" : "\(parallel) at a time"
        var out = "gocker bench: \(count) starts of `true` per row, \(mode), rows interleaved"
        out += warmup > 0 ? " (after \(warmup) warm-up)" : ""
        out += "; Linux \(machine.kernel), \(machine.cpus) CPUs, \(machine.date.prefix(19))Z"
        if let huge = machine.codeIn2MBPages {
            out += huge ? "; gocker's code in 2 MB pages" : "; gocker's code in 4 KB pages (./build.sh release writes it for 2 MB ones)"
        }
        out += "\nlatency in ms, from spawn of the command to its reap, the container's removal included\n\n"
        var rows = [["runtime/row", "n", "p50", "p90", "p99", "min", "max", "total", "starts/s", "ratio"]]
        var notes: [String] = []
        for s in summary {
            if let st = s.stats {
                rows.append([s.row, "\(s.n)", fixed(st.p50, 2), fixed(st.p90, 2), fixed(st.p99, 2), fixed(st.min, 2),
                             fixed(st.max, 2), fixed(st.total, 0), s.throughput.map { fixed($0, 1) } ?? "-",
                             s.ratio.map { fixed($0, 2) + "x" } ?? "-"])
            } else {
                rows.append([s.row, "0", "failed: " + (s.error ?? "no start succeeded")])
            }
            if s.stats != nil && s.failedStarts > 0 {
                notes.append("\(s.row): \(s.failedStarts) start(s) failed: \(s.error ?? "?")")
            }
        }
        out += Self.render(rows)
        if let interruptedBy {
            out += "\ninterrupted by signal \(interruptedBy): the figures above cover the starts made until then\n"
        }
        for n in notes { out += n + "\n" }
        let timed = summary.filter { !$0.phases.isEmpty }
        if !timed.isEmpty {
            out += "\ngocker's phases (--timings), mean ms per start:\n"
            var phaseRows = [["phase"] + timed.map(\.row)]
            for name in Timings.phaseNames + ["total"] {
                let cells = timed.map { s -> String in
                    if name == "total" { return fixed(s.phases.reduce(0) { $0 + $1.mean }, 3) }
                    return s.phases.first { $0.name == name }.map { fixed($0.mean, 3) } ?? "-"
                }
                if cells.allSatisfy({ $0 == "-" }) { continue }
                phaseRows.append([name] + cells)
            }
            out += Self.render(phaseRows)
        }
        return out
    }

    /// Columns: the first left-aligned, the others right-aligned; a row with
    /// fewer cells (a failed runtime) runs its last cell on.
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for r in rows where r.count == columns {
            for (i, cell) in r.enumerated() { widths[i] = Swift.max(widths[i], cell.count) }
        }
        return rows.map { r -> String in
            var line = ""
            for (i, cell) in r.enumerated() {
                let pad = String(repeating: " ", count: Swift.max(0, widths[i] - cell.count))
                if i == 0 {
                    line += cell + pad
                } else if i == r.count - 1 && r.count < columns {
                    line += "  " + cell
                } else {
                    line += "  " + pad + cell
                }
            }
            return line + "\n"
        }.joined()
    }
}
