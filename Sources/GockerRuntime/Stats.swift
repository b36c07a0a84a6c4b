import CGockerCore
import Glibc
import GockerCgroups
import GockerCore

/// One line of `gocker stats`, with docker's JSON field names.
public struct ContainerStats: Codable, Sendable, Equatable {
    public var ID: String
    public var Name: String
    public var CPUPerc: String
    public var MemUsage: String
    public var MemPerc: String
    /// Bytes received / sent on its network interfaces (lo left out).
    public var NetIO: String
    public var PIDs: String
}

extension Engine {
    /// Running containers' usage, read from their cgroups: memory and pids
    /// now, CPU over `interval` seconds (as a share of one CPU, times 100).
    public func stats(interval: Double = 0.5) -> [ContainerStats] {
        reapOrphans()
        var live: [(ContainerRecord, CgroupDriver, CgroupRecord)] = []
        var pids: [Int32] = []
        for record in records() {
            guard let state = try? runtime.store.load(record.id), runtime.status(of: state) != .stopped,
                  let groups = state.cgroups else { continue }
            live.append((record, runtime.driver(for: groups), groups))
            pids.append(state.pid)
        }
        let before = live.map { $0.1.stats($0.2)["cpu.usage_ns"] ?? 0 }
        if !live.isEmpty {
            var ts = timespec(tv_sec: Int(interval), tv_nsec: Int((interval - Double(Int(interval))) * 1e9))
            nanosleep(&ts, nil)
        }
        let hostMemory = Self.hostMemory()
        return live.enumerated().map { i, entry in
            let (record, driver, groups) = entry
            let now = driver.stats(groups)
            let cpuDelta = Double((now["cpu.usage_ns"] ?? 0) &- before[i])
            let cpu = interval > 0 ? cpuDelta / (interval * 1e9) * 100 : 0
            let usage = now["memory.usage"] ?? 0
            var limit = now["memory.limit"] ?? hostMemory
            if limit == 0 || limit > hostMemory { limit = hostMemory }
            return ContainerStats(
                ID: String(record.id.prefix(12)), Name: record.name,
                CPUPerc: Self.percent(cpu), MemUsage: "\(Self.binary(usage)) / \(Self.binary(limit))",
                MemPerc: Self.percent(limit > 0 ? Double(usage) / Double(limit) * 100 : 0),
                NetIO: record.network == "host" ? "0B / 0B" : Self.netIO(pid: pids[i]),
                PIDs: "\(now["pids.current"] ?? 0)")
        }
    }

    /// docker's NET I/O: the interfaces' received and sent bytes, from
    /// the container's /proc/PID/net/dev (its network namespace's).
    static func netIO(pid: Int32) -> String {
        let (rx, tx) = interfaceBytes((try? Sys.readText("/proc/\(pid)/net/dev")) ?? "")
        return "\(decimal(rx)) / \(decimal(tx))"
    }

    /// Received and sent bytes of every interface but lo in a
    /// /proc/net/dev text.
    static func interfaceBytes(_ text: String) -> (rx: UInt64, tx: UInt64) {
        var rx: UInt64 = 0, tx: UInt64 = 0
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon].filter { $0 != " " })
            let f = line[line.index(after: colon)...].split(separator: " ")
            guard name != "lo", f.count >= 9, let r = UInt64(f[0]), let t = UInt64(f[8]) else { continue }
            rx &+= r
            tx &+= t
        }
        return (rx, tx)
    }

    /// Sizes as docker's stats prints NET I/O: three significant digits
    /// and a decimal unit (0B, 648B, 1.23kB, 45.6MB).
    static func decimal(_ bytes: UInt64) -> String {
        scaled(bytes, step: 1000, units: ["B", "kB", "MB", "GB", "TB"], digits: 3)
    }

    static func percent(_ v: Double) -> String {
        let hundredths = Int((v * 100).rounded())
        let frac = hundredths % 100
        return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)%"
    }

    /// Sizes as docker's stats prints them: four significant digits and a
    /// binary unit (1.5MiB, 64MiB, 23.45GiB).
    public static func binary(_ bytes: UInt64) -> String {
        scaled(bytes, step: 1024, units: ["B", "KiB", "MiB", "GiB", "TiB"], digits: 4)
    }

    /// `bytes` in the largest unit below `step` times it, to `digits`
    /// significant digits (fewer when they are zeros after the point).
    static func scaled(_ bytes: UInt64, step: Double, units: [String], digits: Int) -> String {
        var v = Double(bytes)
        var u = 0
        while v >= step && u < units.count - 1 {
            v /= step
            u += 1
        }
        let scale = pow(10, Double(digits - (v >= 100 ? 3 : v >= 10 ? 2 : 1)))
        var text = String((v * scale).rounded() / scale)
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text + units[u]
    }

    static func hostMemory() -> UInt64 {
        let info = (try? Sys.readText("/proc/meminfo")) ?? ""
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
              let kb = UInt64(line.dropFirst(9).trimmed.split(separator: " ").first ?? "") else { return 0 }
        return kb * 1024
    }
}
