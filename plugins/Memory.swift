import GockerCgroups
import GockerCore

/// memory: limit, reservation (soft limit), memory+swap, swappiness, the
/// OOM killer switched off; OOM kills reported. Swappiness and the OOM
/// switch are cgroup v1 files: v2 has neither, and a config asking for
/// them there is refused (as crun does) rather than run without them.
public struct MemoryController: ResourceController {
    public let name = "memory"
    public var alwaysGrouped: Bool { true }

    public init() {}

    /// `-m`, `--memory-reservation`, `--memory-swap`. They take the next
    /// word even when it starts with a dash, as docker's do: "-1" is a
    /// value (unlimited, or a bad one refused with its reason).
    public static let options: [CommandOption<ResourceFlags>] = [
        .resource("memory", short: "m", "bytes", value: .signed, help: "Memory limit (b, k, m, g; at least 6m)."),
        .resource("memory-reservation", "bytes", value: .signed, help: "Memory soft limit."),
        .resource("memory-swap", "bytes", value: .signed,
                  help: "Memory plus swap limit (-1: unlimited swap; default: twice --memory)."),
        .resource("memory-swappiness", "0-100", value: .signed,
                  help: "How readily the container's memory is swapped out, 0 to 100 (-1: the host's; cgroup v1 only)."),
        .resource("oom-kill-disable", "", value: .none, help: "Do not OOM-kill the container's processes at its limit (cgroup v1 only)."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shape("memory", Spec.Resources.Memory.self)] }

    /// docker's rules: a limit of at least 6 MB; memory+swap needs the
    /// limit, is at least it, and is twice it unless given; the
    /// reservation is at most the limit.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        let memory = flags["memory"], memorySwap = flags["memory-swap"], memoryReservation = flags["memory-reservation"]
        let swappiness = flags["memory-swappiness"], oomKillDisable = flags["oom-kill-disable"] != nil
        guard memory != nil || memorySwap != nil || memoryReservation != nil || swappiness != nil || oomKillDisable else { return }
        var mem = Spec.Resources.Memory()
        if let m = memory {
            let v = try ResourceFlags.parseSize(m, flag: "--memory")
            guard v >= 6 * 1024 * 1024 else {
                throw GockerError(.invalidArgument, "invalid argument \"\(m)\" for --memory: minimum memory limit allowed is 6MB")
            }
            mem.limit = v
        }
        if let s = memorySwap {
            guard let limit = mem.limit else {
                throw GockerError(.invalidArgument, "--memory-swap \"\(s)\" needs --memory: set the memory limit too")
            }
            if s == "-1" { mem.swap = -1 } else {
                let v = try ResourceFlags.parseSize(s, flag: "--memory-swap")
                guard v >= limit else {
                    throw GockerError(.invalidArgument,
                        "invalid argument \"\(s)\" for --memory-swap: it must be at least the memory limit (\(memory!)), or -1")
                }
                mem.swap = v
            }
        } else if let limit = mem.limit {
            mem.swap = limit * 2  // docker: as much swap as memory
        }
        if let res = memoryReservation {
            let v = try ResourceFlags.parseSize(res, flag: "--memory-reservation")
            if let limit = mem.limit, v > limit {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(res)\" for --memory-reservation: it must be below the memory limit (\(memory!))")
            }
            mem.reservation = v
        }
        // docker's: -1 (its default) leaves the host's swappiness.
        if let text = swappiness {
            guard let v = Int64(text), v == -1 || Self.swappiness.contains(v) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --memory-swappiness: must be 0 to 100 (-1: the host's)")
            }
            if v != -1 { mem.swappiness = v }
        }
        if oomKillDisable { mem.disableOOMKiller = true }
        if mem.limit != nil || mem.reservation != nil || mem.swappiness != nil || mem.disableOOMKiller != nil { r.memory = mem }
    }

    /// The swappiness values the kernel takes (memory.swappiness, v1).
    public static let swappiness: ClosedRange<Int64> = 0...100

    public func isRequested(by r: Spec.Resources) -> Bool {
        guard let m = r.memory else { return false }
        return m.limit != nil || m.reservation != nil || m.swap != nil || m.asksSwappiness || m.disableOOMKiller == true
    }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        guard let m = r.memory else { return [] }
        // Bytes, or -1 for no limit (OCI): any other negative is a mistake.
        for (field, v) in [("limit", m.limit), ("reservation", m.reservation), ("swap", m.swap)] {
            if let v, v < -1 {
                throw GockerError(.invalidConfig, "memory \(field) \(v) is not valid: bytes, or -1 for no limit")
            }
        }
        if let limit = m.limit, limit >= 0, let swap = m.swap, swap >= 0, swap < limit {
            throw GockerError(.invalidConfig, "memory+swap limit \(swap) is below the memory limit \(limit)")
        }
        // Swappiness: 0 to 100, or -1 for the host's (docker's default,
        // which engines pass on); disableOOMKiller false is the kernel's
        // default and asks nothing (runc writes nothing for it either).
        if let s = m.swappiness, s != -1, !Self.swappiness.contains(s) {
            throw GockerError(.invalidConfig,
                "memory swappiness \(s) (--memory-swappiness, linux.resources.memory.swappiness) is not valid: 0 to 100")
        }
        func v1(_ v: Int64) -> String { v < 0 ? "-1" : "\(v)" }
        func v2(_ v: Int64) -> String { v < 0 ? "max" : "\(v)" }
        var out: [CgroupSetting] = []
        switch version {
        case .v1:
            // The limit before memory+swap: the kernel keeps memsw >= limit.
            if let limit = m.limit { out.append(CgroupSetting("memory.limit_in_bytes", v1(limit))) }
            if let swap = m.swap { out.append(CgroupSetting("memory.memsw.limit_in_bytes", v1(swap))) }
            if let res = m.reservation { out.append(CgroupSetting("memory.soft_limit_in_bytes", v1(res))) }
            if m.asksSwappiness, let s = m.swappiness { out.append(CgroupSetting("memory.swappiness", "\(s)")) }
            if m.disableOOMKiller == true { out.append(CgroupSetting("memory.oom_control", "1")) }
        case .v2:
            // No file for either on v2: runc drops them, crun refuses them;
            // a container must not run believing it has them.
            if m.asksSwappiness, let s = m.swappiness {
                throw GockerError(.invalidConfig, "memory swappiness \(s) (--memory-swappiness, linux.resources.memory.swappiness): "
                    + "cgroup v2 has no per-group swappiness (memory.swappiness is cgroup v1's)")
            }
            if m.disableOOMKiller == true {
                throw GockerError(.invalidConfig, "disabling the OOM killer (--oom-kill-disable, linux.resources.memory.disableOOMKiller): "
                    + "cgroup v2 cannot (memory.oom_control is cgroup v1's)")
            }
            // memory.swap.max is the swap beyond memory.max: without a
            // memory limit a swap limit means nothing (runc refuses it too).
            if let swap = m.swap, swap >= 0, (m.limit ?? -1) < 0 {
                throw GockerError(.invalidConfig, "memory+swap limit \(swap) (--memory-swap, linux.resources.memory.swap) "
                    + "needs a memory limit on cgroup v2: memory.swap.max is the swap beyond it")
            }
            if let limit = m.limit { out.append(CgroupSetting("memory.max", v2(limit))) }
            if let swap = m.swap {
                // v2 limits swap alone: memory+swap minus memory.
                let value = swap < 0 ? "max" : "\(swap - m.limit!)"
                out.append(CgroupSetting("memory.swap.max", value))
            }
            if let res = m.reservation { out.append(CgroupSetting("memory.low", v2(res))) }
        }
        return out
    }

    /// `update` on v2 of memory+swap without a memory limit: the swap
    /// beyond the group's current memory.max, as runc reckons it from the
    /// limit it has. With no limit there ("max") it is refused, as a swap
    /// limit without a memory limit is at create; never unlimited swap.
    public func updating(_ r: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> Spec.Resources {
        guard group.version == .v2, var m = r.memory, let swap = m.swap, swap >= 0, m.limit == nil else { return r }
        guard let current = group.read("memory.max") else {
            throw GockerError(.system, "update memory+swap limit \(swap): cannot read the group's memory.max")
        }
        if current == "max" { m.limit = -1 } else {
            guard let limit = Int64(current) else {
                throw GockerError(.system, "update memory+swap limit \(swap): the group's memory.max reads \"\(current)\"")
            }
            m.limit = limit
        }
        var out = r
        out.memory = m
        return out
    }

    /// Usage as docker reports it: the charge less the page cache that can
    /// be dropped at once (inactive_file of memory.stat).
    public func stats(path: String, backend: any CgroupBackend) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        func text(_ file: String) -> String { (try? backend.read(name, path: path, file: file)) ?? "" }
        func value(_ file: String) -> UInt64? { UInt64(text(file).trimmed) }
        let usage: UInt64?, inactive: UInt64?
        switch backend.version {
        case .v1:
            usage = value("memory.usage_in_bytes")
            inactive = CgroupStatFile.field(text("memory.stat"), "total_inactive_file")
            out["memory.limit"] = value("memory.limit_in_bytes")
            out["memory.oom_kill"] = CgroupStatFile.field(text("memory.oom_control"), "oom_kill")
        case .v2:
            usage = value("memory.current")
            inactive = CgroupStatFile.field(text("memory.stat"), "inactive_file")
            out["memory.limit"] = value("memory.max")
            out["memory.oom_kill"] = CgroupStatFile.field(text("memory.events"), "oom_kill")
        }
        if let usage { out["memory.usage"] = usage - min(usage, inactive ?? 0) }
        return out
    }

    /// "memory.oom_kill" from its one file (a foreground run asks for it
    /// at every exit); anything else from `stats`.
    public func stat(_ key: String, path: String, backend: any CgroupBackend) -> UInt64? {
        guard key == "memory.oom_kill" else { return stats(path: path, backend: backend)[key] }
        let file = backend.version == .v1 ? "memory.oom_control" : "memory.events"
        return CgroupStatFile.field((try? backend.read(name, path: path, file: file)) ?? "", "oom_kill")
    }
}

/// `linux.resources.memory`, read by MemoryController.
extension Spec.Resources {
    public struct Memory: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("limit", &limit)
            try v.field("reservation", &reservation)
            try v.field("swap", &swap)
            try v.field("swappiness", &swappiness)
            try v.field("disableOOMKiller", &disableOOMKiller)
        }

        /// Bytes; -1 for no limit.
        public var limit: Int64?
        public var reservation: Int64?
        /// Memory plus swap, bytes; -1 for no limit.
        public var swap: Int64?
        /// 0 to 100 (OCI's is unsigned); -1, docker's default, leaves the
        /// host's, as no value does.
        public var swappiness: Int64?
        /// true: processes over the limit wait instead of being OOM-killed.
        public var disableOOMKiller: Bool?

        public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil,
                    swappiness: Int64? = nil, disableOOMKiller: Bool? = nil) {
            self.limit = limit
            self.reservation = reservation
            self.swap = swap
            self.swappiness = swappiness
            self.disableOOMKiller = disableOOMKiller
        }

        /// Whether a swappiness other than the host's is asked for.
        public var asksSwappiness: Bool { swappiness.map { $0 != -1 } ?? false }
    }

    public var memory: Memory? {
        get { member("memory") }
        set { setMember("memory", newValue) }
    }
}
