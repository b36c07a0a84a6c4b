import Glibc
import GockerCore

/// One process as `ps -ef` shows it, read from /proc.
public struct ProcessRow: Sendable, Equatable {
    public var uid: UInt32
    public var pid: Int32
    public var ppid: Int32
    public var cpuPercent: Int
    public var startTime: Int  // seconds since the epoch
    public var tty: String
    public var cpuSeconds: Int
    public var command: String

    /// `ps -ef`'s header.
    public static let header = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]

    /// Reads /proc/PID; nil when the process is gone.
    public static func read(pid: Int32, clock: ProcClock) -> ProcessRow? {
        guard let stat = try? Sys.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
              let status = try? Sys.readText("/proc/\(pid)/status") else { return nil }
        let comm = stat[stat.index(after: stat.firstIndex(of: "(") ?? stat.startIndex)..<close]
        // Field N of stat(5) is fields[N - 3] after the command's ")".
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ppid = Int32(fields[1]), let ttyNr = Int(fields[4]),
              let utime = Int(fields[11]), let stime = Int(fields[12]), let start = Int(fields[19]) else { return nil }
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
            .flatMap { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first }
            .flatMap { UInt32($0) } ?? 0
        let cmdline = (try? Sys.readFile("/proc/\(pid)/cmdline")) ?? []
        var command = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        while command.hasSuffix(" ") { command.removeLast() }
        if command.isEmpty { command = "[\(comm)]" }
        let cpu = (utime + stime) / clock.hz
        let elapsed = max(clock.uptime - start / clock.hz, 1)
        return ProcessRow(uid: uid, pid: pid, ppid: ppid, cpuPercent: min(cpu * 100 / elapsed, 99),
                          startTime: clock.bootTime + start / clock.hz, tty: ttyName(ttyNr),
                          cpuSeconds: cpu, command: command)
    }

    /// stat's tty_nr as ps names it: pts/N, ttyN, or "?".
    static func ttyName(_ nr: Int) -> String {
        let major = (nr >> 8) & 0xfff, minor = (nr & 0xff) | ((nr >> 12) & 0xfff00)
        switch major {
        case 0: return "?"
        case 136...143: return "pts/\((major - 136) * 256 + minor)"
        case 4 where minor < 64: return "tty\(minor)"
        case 4: return "ttyS\(minor - 64)"
        default: return "?"
        }
    }

    /// The row's cells, as `ps -ef` prints them.
    public func cells(userName: (UInt32) -> String?, now: Int) -> [String] {
        var t = time_t(startTime), tm = tm()
        localtime_r(&t, &tm)
        var n = time_t(now), today = Glibc.tm()
        localtime_r(&n, &today)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let stime = tm.tm_yday == today.tm_yday && tm.tm_year == today.tm_year
            ? "\(two(tm.tm_hour)):\(two(tm.tm_min))" : "\(months[Int(tm.tm_mon)])\(two(tm.tm_mday))"
        let days = cpuSeconds / 86400, h = Int32(cpuSeconds / 3600 % 24), m = Int32(cpuSeconds / 60 % 60), s = Int32(cpuSeconds % 60)
        let time = (days > 0 ? "\(days)-" : "") + "\(two(h)):\(two(m)):\(two(s))"
        return [userName(uid) ?? "\(uid)", "\(pid)", "\(ppid)", "\(cpuPercent)", stime, tty, time, command]
    }
}

/// What turning /proc's clock ticks into times needs.
public struct ProcClock: Sendable {
    public var hz: Int
    public var uptime: Int
    public var bootTime: Int

    public static func now() -> ProcClock {
        let uptime = ((try? Sys.readText("/proc/uptime")) ?? "").split(separator: " ").first
            .flatMap { Double($0) }.map { Int($0) } ?? 0
        let btime = ((try? Sys.readText("/proc/stat")) ?? "").split(separator: "\n").first { $0.hasPrefix("btime ") }
            .flatMap { Int($0.dropFirst(6)) } ?? 0
        return ProcClock(hz: max(Int(sysconf(Int32(_SC_CLK_TCK))), 1), uptime: uptime, bootTime: btime)
    }
}

extension Engine {
    /// `gocker top`: the container's processes (those in its cgroups), as
    /// rows under a header. Without `psOptions` as `ps -ef` shows them;
    /// with them, the host's ps output cut down to the container's processes.
    public func top(_ ref: String, psOptions: [String] = []) throws(GockerError) -> [[String]] {
        let record = try lookup(ref)
        guard let s = try? runtime.store.load(record.id), runtime.status(of: s) != .stopped else {
            throw GockerError(.invalidState, "container \(record.id) is not running")
        }
        let pids = runtime(for: record).processes(of: s)
        if !psOptions.isEmpty { return try Self.hostPS(psOptions, pids: Set(pids)) }
        let clock = ProcClock.now()
        let names = Self.userNames()
        let now = Int(time(nil))
        let rows = pids.compactMap { ProcessRow.read(pid: $0, clock: clock) }
        return [ProcessRow.header] + rows.map { $0.cells(userName: { names[$0] }, now: now) }
    }

    /// Uid to name, from the host's /etc/passwd.
    static func userNames() -> [UInt32: String] {
        var out: [UInt32: String] = [:]
        for line in ((try? Sys.readText("/etc/passwd")) ?? "").split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count > 2, let uid = UInt32(f[2]), out[uid] == nil { out[uid] = String(f[0]) }
        }
        return out
    }

    /// Runs the host's ps with `options` and keeps the header and the rows
    /// whose PID column is one of `pids` (docker's `top CONTAINER OPTIONS`).
    public static func hostPS(_ options: [String], pids: Set<Int32>) throws(GockerError) -> [[String]] {
        guard let ps = ["/usr/bin/ps", "/bin/ps"].first(where: Sys.exists) else {
            throw GockerError(.notFound, "ps options need the host's ps, which is not installed")
        }
        let text = String(decoding: try Sys.output(of: [ps] + options), as: UTF8.self)
        let lines = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        guard let header = lines.first, let column = header.firstIndex(of: "PID") else {
            throw GockerError(.invalidArgument, "ps \(options.joined(separator: " ")) prints no PID column")
        }
        var rows = [header]
        for cells in lines.dropFirst() where cells.count >= header.count {
            guard let pid = Int32(cells[column]), pids.contains(pid) else { continue }
            // The last column (the command) keeps its spaces.
            rows.append(Array(cells[..<(header.count - 1)]) + [cells[(header.count - 1)...].joined(separator: " ")])
        }
        return rows
    }
}
