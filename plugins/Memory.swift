import GockerCgroups
import GockerCore

/// memory: limit, reservation (soft limit), memory+swap; OOM kills reported.
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
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shape("memory", Spec.Resources.Memory.self)] }

    /// docker's rules: a limit of at least 6 MB; memory+swap needs the
    /// limit, is at least it, and is twice it unless given; the
    /// reservation is at most the limit.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        let memory = flags["memory"], memorySwap = flags["memory-swap"], memoryReservation = flags["memory-reservation"]
        guard memory != nil || memorySwap != nil || memoryReservation != nil else { return }
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
        if mem.limit != nil || mem.reservation != nil { r.memory = mem }
    }

    public func isRequested(by r: Spec.Resources) -> Bool {
        guard let m = r.memory else { return false }
        return m.limit != nil || m.reservation != nil || m.swap != nil
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
        func v1(_ v: Int64) -> String { v < 0 ? "-1" : "\(v)" }
        func v2(_ v: Int64) -> String { v < 0 ? "max" : "\(v)" }
        var out: [CgroupSetting] = []
        switch version {
        case .v1:
            // The limit before memory+swap: the kernel keeps memsw >= limit.
            if let limit = m.limit { out.append(CgroupSetting("memory.limit_in_bytes", v1(limit))) }
            if let swap = m.swap { out.append(CgroupSetting("memory.memsw.limit_in_bytes", v1(swap))) }
            if let res = m.reservation { out.append(CgroupSetting("memory.soft_limit_in_bytes", v1(res))) }
        case .v2:
            if let limit = m.limit { out.append(CgroupSetting("memory.max", v2(limit))) }
            if let swap = m.swap {
                // v2 limits swap alone: memory+swap minus memory.
                let value = swap < 0 || (m.limit ?? -1) < 0 ? "max" : "\(swap - m.limit!)"
                out.append(CgroupSetting("memory.swap.max", value))
            }
            if let res = m.reservation { out.append(CgroupSetting("memory.low", v2(res))) }
        }
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
        }

        /// Bytes; -1 for no limit.
        public var limit: Int64?
        public var reservation: Int64?
        /// Memory plus swap, bytes; -1 for no limit.
        public var swap: Int64?

        public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil) {
            self.limit = limit
            self.reservation = reservation
            self.swap = swap
        }
    }

    public var memory: Memory? {
        get { member("memory") }
        set { setMember("memory", newValue) }
    }
}
