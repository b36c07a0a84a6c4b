import Glibc

/// A progress line on standard error for a long import, load, save, commit
/// or export: "Saving 412MB / 1.7GB (24%)  98.1MB/s  ETA 13s". Drawn only
/// when standard error is a terminal, once the work has run a second, at
/// most ten times a second; `end` clears it. The ETA needs the total.
public final class ProgressLine {
    public var verb: String
    private var total: UInt64?
    private let enabled: Bool
    private var started: Double
    private var lastShown: Double = 0
    private var shown = false
    public private(set) var done: UInt64 = 0

    /// Below this, nothing is drawn: the work is too short to need it.
    static let delay = 1.0
    /// The least time between two draws.
    static let interval = 0.1

    /// `quiet`: -q, no line at all (nor is there one when standard error
    /// is not a terminal).
    public init(_ verb: String, total: UInt64? = nil, quiet: Bool = false) {
        self.verb = verb
        self.total = total
        self.enabled = !quiet && Self.wanted
        started = Self.now()
    }

    /// Whether standard error is a terminal.
    public static var wanted: Bool { isatty(2) == 1 }

    /// A new phase of the work: its verb and total, counted from zero.
    public func restart(_ verb: String, total: UInt64?) {
        self.verb = verb
        self.total = total
        done = 0
        started = Self.now()
    }

    /// The bytes done so far.
    public func update(_ done: UInt64) {
        self.done = done
        guard enabled else { return }
        let now = Self.now()
        guard now - started >= Self.delay, now - lastShown >= Self.interval else { return }
        lastShown = now
        shown = true
        Self.write("\r" + Self.line(verb: verb, done: done, total: total, seconds: now - started) + "\u{1B}[K")
    }

    /// `count` more bytes done.
    public func add(_ count: Int) { update(done + UInt64(count)) }

    /// Clears the line, if one was drawn.
    public func end() {
        if shown { Self.write("\r\u{1B}[K") }
        shown = false
    }

    /// The line's text: bytes (of the total, with a percentage), the mean
    /// rate, and the time left at that rate when the total is known.
    public static func line(verb: String, done: UInt64, total: UInt64?, seconds: Double) -> String {
        var text = "\(verb) \(HumanUnits.size(Int64(clamping: done)))"
        if let total, total > 0 {
            let shownDone = min(done, total)
            text += " / \(HumanUnits.size(Int64(clamping: total))) (\(shownDone * 100 / total)%)"
        }
        let rate = seconds > 0 ? Double(done) / seconds : 0
        text += "  \(HumanUnits.size(Int64(rate)))/s"
        if let total, total > done, rate > 0 {
            text += "  ETA \(clock(Double(total - done) / rate))"
        }
        return text
    }

    /// "42s", "3m05s", "1h02m".
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        if s < 60 { return "\(s)s" }
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        if s < 3600 { return "\(s / 60)m\(two(s % 60))s" }
        return "\(s / 3600)h\(two(s / 60 % 60))m"
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func write(_ s: String) {
        var text = s
        text.withUTF8 { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(2, raw.baseAddress! + off, raw.count - off)
                if n > 0 { off += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}

/// A sink that counts what goes through it into a progress line.
public final class ProgressSink: ByteSink {
    private let inner: any ByteSink
    private let progress: ProgressLine

    public init(_ inner: any ByteSink, progress: ProgressLine) {
        self.inner = inner
        self.progress = progress
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        try inner.write(bytes)
        progress.add(bytes.count)
    }

    /// The inner sink's copy, in pieces of 16 MiB for the line to move.
    public func copy(from fd: Int32, count: Int64, name: String) throws(GockerError) -> Int64 {
        var done: Int64 = 0
        while done < count {
            let n = try inner.copy(from: fd, count: min(count - done, 16 << 20), name: name)
            if n == 0 { break }
            done += n
            progress.add(Int(n))
        }
        return done
    }
}
