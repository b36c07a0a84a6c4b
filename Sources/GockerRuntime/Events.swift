import Glibc
import GockerCgroups
import GockerCore

/// One line of `oci events`: runc's event record ({"type": "stats" or
/// "oom", "id", "data" for stats}).
public struct RuntimeEvent: JSONShape, Sendable, Equatable {
    public var type = ""
    public var id = ""
    public var data: EventStats?

    public init() {}
    public init(type: String, id: String, data: EventStats? = nil) {
        self.type = type
        self.id = id
        self.data = data
    }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("type", &type)
        try v.field("id", &id)
        try v.field("data", &data)
    }
}

/// A container's usage in the shape of runc's types.Stats (the members
/// runc leaves out when zero are optional here).
public struct EventStats: JSONShape, Sendable, Equatable {
    public var cpu = CPU()
    public var memory = Memory()
    public var pids = Pids()
    public var blkio = Blkio()

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("cpu", &cpu)
        try v.field("memory", &memory)
        try v.field("pids", &pids)
        try v.field("blkio", &blkio)
    }

    public struct CPU: JSONShape, Sendable, Equatable {
        public var usage = Usage()
        public var throttling = Throttling()
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("usage", &usage)
            try v.field("throttling", &throttling)
        }
    }

    public struct Usage: JSONShape, Sendable, Equatable {
        public var total: UInt64?
        public var percpu: [UInt64]?
        public var percpuKernel: [UInt64]?
        public var percpuUser: [UInt64]?
        public var kernel: UInt64 = 0
        public var user: UInt64 = 0
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("total", &total)
            try v.field("percpu", &percpu)
            try v.field("percpu_kernel", &percpuKernel)
            try v.field("percpu_user", &percpuUser)
            try v.field("kernel", &kernel)
            try v.field("user", &user)
        }
    }

    public struct Throttling: JSONShape, Sendable, Equatable {
        public var periods: UInt64?
        public var throttledPeriods: UInt64?
        public var throttledTime: UInt64?
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("periods", &periods)
            try v.field("throttledPeriods", &throttledPeriods)
            try v.field("throttledTime", &throttledTime)
        }
    }

    public struct Memory: JSONShape, Sendable, Equatable {
        public var cache: UInt64?
        public var usage = Entry()
        public var swap = Entry()
        public var kernel = Entry()
        public var kernelTCP = Entry()
        public var raw: [String: UInt64]?
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("cache", &cache)
            try v.field("usage", &usage)
            try v.field("swap", &swap)
            try v.field("kernel", &kernel)
            try v.field("kernelTCP", &kernelTCP)
            try v.field("raw", &raw)
        }
    }

    public struct Entry: JSONShape, Sendable, Equatable {
        public var limit: UInt64 = 0
        public var usage: UInt64?
        public var max: UInt64?
        public var failcnt: UInt64 = 0
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("limit", &limit)
            try v.field("usage", &usage)
            try v.field("max", &max)
            try v.field("failcnt", &failcnt)
        }
    }

    public struct Pids: JSONShape, Sendable, Equatable {
        public var current: UInt64?
        public var limit: UInt64?
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("current", &current)
            try v.field("limit", &limit)
        }
    }

    public struct Blkio: JSONShape, Sendable, Equatable {
        public var ioServiceBytesRecursive: [BlkioEntry]?
        public var ioServicedRecursive: [BlkioEntry]?
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("ioServiceBytesRecursive", &ioServiceBytesRecursive)
            try v.field("ioServicedRecursive", &ioServicedRecursive)
        }
    }

    public struct BlkioEntry: JSONShape, Sendable, Equatable {
        public var major: UInt64?
        public var minor: UInt64?
        public var op: String?
        public var value: UInt64?
        public init() {}
        public init(major: UInt64, minor: UInt64, op: String, value: UInt64) {
            self.major = major == 0 ? nil : major
            self.minor = minor == 0 ? nil : minor
            self.op = op
            self.value = value == 0 ? nil : value
        }
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("major", &major)
            try v.field("minor", &minor)
            try v.field("op", &op)
            try v.field("value", &value)
        }
    }
}

/// Reading a group's files into EventStats: the totals `gocker stats`
/// reads (the controllers' own stats) and the rest of runc's record from
/// the same groups.
enum EventStatsReader {
    /// "key value" lines.
    static func table(_ text: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let v = UInt64(f[1]) { out[String(f[0])] = v }
        }
        return out
    }

    static func numbers(_ text: String) -> [UInt64] { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt64($0) } }

    /// A limit file: "max" (v2) is no limit.
    static func limit(_ text: String?, unlimited: UInt64) -> UInt64? {
        guard let t = text?.trimmed, !t.isEmpty else { return nil }
        return t == "max" ? unlimited : UInt64(t)
    }

    /// v1 blkio's "8:0 Read 4096" lines ("Total" left out).
    static func blkioV1(_ text: String) -> [EventStats.BlkioEntry]? {
        let entries: [EventStats.BlkioEntry] = text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 3, let v = UInt64(f[2]) else { return nil }
            let dev = f[0].split(separator: ":")
            guard dev.count == 2, let major = UInt64(dev[0]), let minor = UInt64(dev[1]) else { return nil }
            return EventStats.BlkioEntry(major: major, minor: minor, op: String(f[1]), value: v)
        }
        return entries.isEmpty ? nil : entries
    }

    /// v2 io.stat's "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." as runc
    /// turns it: bytes and counts, Read and Write.
    static func ioV2(_ text: String) -> (bytes: [EventStats.BlkioEntry]?, ios: [EventStats.BlkioEntry]?) {
        var bytes: [EventStats.BlkioEntry] = [], ios: [EventStats.BlkioEntry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard let first = f.first else { continue }
            let dev = first.split(separator: ":")
            guard dev.count == 2, let major = UInt64(dev[0]), let minor = UInt64(dev[1]) else { continue }
            for kv in f.dropFirst() {
                let p = kv.split(separator: "=")
                guard p.count == 2, let v = UInt64(p[1]) else { continue }
                switch p[0] {
                case "rbytes": bytes.append(.init(major: major, minor: minor, op: "Read", value: v))
                case "wbytes": bytes.append(.init(major: major, minor: minor, op: "Write", value: v))
                case "rios": ios.append(.init(major: major, minor: minor, op: "Read", value: v))
                case "wios": ios.append(.init(major: major, minor: minor, op: "Write", value: v))
                default: break
                }
            }
        }
        return (bytes.isEmpty ? nil : bytes, ios.isEmpty ? nil : ios)
    }

    static func nonZero(_ v: UInt64?) -> UInt64? { v == 0 ? nil : v }

    static func read(_ record: CgroupRecord, driver: CgroupDriver) -> EventStats {
        let backend = driver.backend
        let totals = driver.stats(record)
        func text(_ controller: String, _ file: String) -> String? { try? backend.read(controller, path: record.path, file: file) }
        var s = EventStats()
        s.cpu.usage.total = nonZero(totals["cpu.usage_ns"])
        s.pids.current = nonZero(totals["pids.current"])
        switch record.version {
        case .v1:
            let ticks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
            s.cpu.usage.percpu = text("cpuacct", "cpuacct.usage_percpu").map(numbers)
            s.cpu.usage.percpuKernel = text("cpuacct", "cpuacct.usage_percpu_sys").map(numbers)
            s.cpu.usage.percpuUser = text("cpuacct", "cpuacct.usage_percpu_user").map(numbers)
            let stat = table(text("cpuacct", "cpuacct.stat") ?? "")
            s.cpu.usage.user = (stat["user"] ?? 0) * 1_000_000_000 / ticks
            s.cpu.usage.kernel = (stat["system"] ?? 0) * 1_000_000_000 / ticks
            let throttle = table(text("cpu", "cpu.stat") ?? "")
            s.cpu.throttling.periods = nonZero(throttle["nr_periods"])
            s.cpu.throttling.throttledPeriods = nonZero(throttle["nr_throttled"])
            s.cpu.throttling.throttledTime = nonZero(throttle["throttled_time"])
            func entry(_ prefix: String) -> EventStats.Entry {
                var e = EventStats.Entry()
                e.usage = nonZero(text("memory", prefix + "usage_in_bytes").flatMap { UInt64($0.trimmed) })
                e.max = nonZero(text("memory", prefix + "max_usage_in_bytes").flatMap { UInt64($0.trimmed) })
                e.limit = text("memory", prefix + "limit_in_bytes").flatMap { UInt64($0.trimmed) } ?? 0
                e.failcnt = text("memory", prefix + "failcnt").flatMap { UInt64($0.trimmed) } ?? 0
                return e
            }
            s.memory.usage = entry("memory.")
            s.memory.swap = entry("memory.memsw.")
            s.memory.kernel = entry("memory.kmem.")
            s.memory.kernelTCP = entry("memory.kmem.tcp.")
            let raw = table(text("memory", "memory.stat") ?? "")
            s.memory.raw = raw.isEmpty ? nil : raw
            s.memory.cache = nonZero(raw["cache"])
            s.pids.limit = nonZero(limit(text("pids", "pids.max"), unlimited: 0))
            s.blkio.ioServiceBytesRecursive = text("blkio", "blkio.throttle.io_service_bytes_recursive").flatMap(blkioV1)
            s.blkio.ioServicedRecursive = text("blkio", "blkio.throttle.io_serviced_recursive").flatMap(blkioV1)
        case .v2:
            let stat = table(text("cpu", "cpu.stat") ?? "")
            s.cpu.usage.user = (stat["user_usec"] ?? 0) * 1000
            s.cpu.usage.kernel = (stat["system_usec"] ?? 0) * 1000
            s.cpu.throttling.periods = nonZero(stat["nr_periods"])
            s.cpu.throttling.throttledPeriods = nonZero(stat["nr_throttled"])
            s.cpu.throttling.throttledTime = nonZero(stat["throttled_usec"].map { $0 * 1000 })
            let current = text("memory", "memory.current").flatMap { UInt64($0.trimmed) }
            s.memory.usage.usage = nonZero(current)
            s.memory.usage.max = nonZero(text("memory", "memory.peak").flatMap { UInt64($0.trimmed) })
            s.memory.usage.limit = limit(text("memory", "memory.max"), unlimited: .max) ?? 0
            s.memory.usage.failcnt = table(text("memory", "memory.events") ?? "")["max"] ?? 0
            // runc's v2 swap: memory and swap together, as v1's memsw.
            if let swap = text("memory", "memory.swap.current").flatMap({ UInt64($0.trimmed) }) {
                s.memory.swap.usage = nonZero(swap + (current ?? 0))
                let l = limit(text("memory", "memory.swap.max"), unlimited: .max) ?? 0
                s.memory.swap.limit = l == .max || s.memory.usage.limit == .max ? .max : l + s.memory.usage.limit
            }
            let raw = table(text("memory", "memory.stat") ?? "")
            s.memory.raw = raw.isEmpty ? nil : raw
            s.memory.cache = nonZero(raw["file"])
            s.pids.limit = nonZero(limit(text("pids", "pids.max"), unlimited: 0))
            let io = ioV2(text("io", "io.stat") ?? "")
            s.blkio.ioServiceBytesRecursive = io.bytes
            s.blkio.ioServicedRecursive = io.ios
        }
        return s
    }
}

extension Runtime {
    /// runc's `events`: `stats` alone prints one stats record; otherwise a
    /// stats record every `interval` seconds and an "oom" record each time
    /// the kernel OOM-kills in the container's memory group, until the
    /// container ends. `emit` gets each record's JSON line.
    public func events(id: String, interval: Double, statsOnly: Bool, emit: (String) -> Void) throws(GockerError) {
        guard interval > 0 else { throw GockerError(.invalidArgument, "duration interval must be greater than 0") }
        let s: RuntimeState
        do { s = try store.load(id) } catch where error.code == .notFound {
            throw GockerError(.notFound, "container does not exist")
        }
        guard status(of: s) != .stopped else { throw GockerError(.invalidState, "container with id \(id) is not running") }
        guard let record = s.cgroups else { throw GockerError(.invalidState, "container \(id) has no cgroups to read") }
        let driver = driver(for: record)
        func line(_ e: RuntimeEvent) { emit(String(decoding: e.jsonBytes, as: UTF8.self)) }
        func stats() { line(RuntimeEvent(type: "stats", id: id, data: EventStatsReader.read(record, driver: driver))) }
        if statsOnly { return stats() }

        let watch = OOMWatch(record)
        defer { watch.close() }
        var reported = driver.stat(record, controller: "memory", "memory.oom_kill") ?? 0
        /// An "oom" record for each kill the counter has that was not told.
        func oomKills() {
            let now = driver.stat(record, controller: "memory", "memory.oom_kill") ?? reported
            while reported < now {
                line(RuntimeEvent(type: "oom", id: id))
                reported += 1
            }
        }
        // Woken by the watch, or at least every 0.2 s to see whether the
        // container has ended; a stats record at each interval.
        var next = Self.monotonic() + interval
        while true {
            let wait = Swift.min(Swift.max(next - Self.monotonic(), 0), 0.2)
            if watch.wait(seconds: wait) { oomKills() }
            guard let now = try? store.load(id), status(of: now) != .stopped, now.pidStartTime == s.pidStartTime else {
                oomKills()
                return
            }
            if Self.monotonic() >= next {
                oomKills()
                stats()
                next += interval
            }
        }
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// eventfd(2) from glibc: <sys/eventfd.h> is not part of Swift's Glibc
/// module (EFD_CLOEXEC is O_CLOEXEC).
@_silgen_name("eventfd")
private func gockerEventfd(_ initval: UInt32, _ flags: Int32) -> Int32

/// What wakes `events` when the kernel OOM-kills in a group: on v1 an
/// eventfd registered on memory.oom_control through cgroup.event_control,
/// on v2 an inotify watch of memory.events (its oom_kill counter). The
/// count itself is read from the files; this only wakes the reader.
final class OOMWatch {
    var fd: Int32 = -1
    var version: CgroupVersion

    init(_ record: CgroupRecord) {
        version = record.version
        switch record.version {
        case .v1:
            guard let mount = CgroupfsV1Backend.hostMounts()["memory"] else { return }
            let dir = record.path.isEmpty ? mount : mount + "/" + record.path
            let control = Glibc.open(dir + "/memory.oom_control", O_RDONLY | O_CLOEXEC)
            guard control >= 0 else { return }
            defer { Sys.close(control) }
            let efd = gockerEventfd(0, O_CLOEXEC)
            guard efd >= 0 else { return }
            let text = "\(efd) \(control)"
            let ec = Glibc.open(dir + "/cgroup.event_control", O_WRONLY | O_CLOEXEC)
            guard ec >= 0, text.withCString({ write(ec, $0, strlen($0)) }) > 0 else {
                if ec >= 0 { Sys.close(ec) }
                Sys.close(efd)
                return
            }
            Sys.close(ec)
            fd = efd
        case .v2:
            let dir = record.path.isEmpty ? Paths.cgroupRoot : Paths.cgroupRoot + "/" + record.path
            let ifd = inotify_init1(Int32(IN_CLOEXEC))
            guard ifd >= 0 else { return }
            guard inotify_add_watch(ifd, dir + "/memory.events", UInt32(IN_MODIFY)) >= 0 else {
                Sys.close(ifd)
                return
            }
            fd = ifd
        }
    }

    /// Waits up to `seconds`; true when the watch fired (drained).
    func wait(seconds: Double) -> Bool {
        guard fd >= 0 else {
            var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
            nanosleep(&ts, nil)
            // Without a watch the counter is read at every wake.
            return true
        }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(seconds * 1000)) > 0, p.revents & Int16(POLLIN) != 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = read(fd, &buffer, buffer.count)
        return true
    }

    func close() {
        if fd >= 0 { Sys.close(fd) }
        fd = -1
    }
}
