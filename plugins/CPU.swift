import GockerCgroups
import GockerCore

/// cpu: relative shares (weight on v2) and a quota per period (`--cpus`).
public struct CPUController: ResourceController {
    public let name = "cpu"
    public var alwaysGrouped: Bool { true }

    public init() {}

    public static let options: [CommandOption<ResourceFlags>] = [
        .resource("cpu-shares", short: "c", aliases: ["cpushare"], "shares", value: .integer,
                  help: "Relative CPU weight, 2 to 262144 (0: unset)."),
        .resource("cpus", "number", value: .signed, help: "Number of CPUs (decimal, e.g. 0.5)."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shape("cpu", Spec.Resources.CPU.self)] }

    /// `--cpu-shares` as OCI shares; `--cpus` as a quota of a 100 ms
    /// period, at most the host's online CPUs.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        let cpuShares = flags["cpu-shares"].map { Int64($0) ?? 0 }, cpus = flags["cpus"]
        guard cpuShares != nil || cpus != nil else { return }
        var cpu = r.cpu ?? Spec.Resources.CPU()
        if let shares = cpuShares, shares != 0 {
            guard (2...262_144).contains(shares) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(shares)\" for --cpu-shares: must be 0 (unset) or 2 to 262144")
            }
            cpu.shares = UInt64(shares)
        }
        if let text = cpus {
            guard let n = Double(text), n > 0, text.allSatisfy({ $0.isNumber || $0 == "." }) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --cpus: expected a decimal number of CPUs")
            }
            let count = max(host.onlineCPUs().count, 1)
            guard n <= Double(count) else {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(text)\" for --cpus: range of CPUs is from 0.01 to \(count).00, as there are only \(count) CPUs available")
            }
            cpu.period = 100_000
            cpu.quota = Int64((n * 100_000).rounded())
            guard cpu.quota! >= 1000 else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --cpus: at least 0.01 CPUs")
            }
        }
        if cpu != Spec.Resources.CPU() { r.cpu = cpu }
    }

    public func isRequested(by r: Spec.Resources) -> Bool {
        guard let c = r.cpu else { return false }
        return (c.shares ?? 0) != 0 || c.quota != nil || c.period != nil
    }

    /// cgroup v2 weight from v1 shares, as Debian's runc 1.1 and crun 1.8 map it.
    public static func weight(shares: UInt64) -> UInt64 {
        1 + ((shares - 2) * 9999) / 262_142
    }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        guard let c = r.cpu else { return [] }
        var out: [CgroupSetting] = []
        if let shares = c.shares, shares != 0 {
            guard (2...262_144).contains(shares) else {
                throw GockerError(.invalidConfig, "cpu shares \(shares) out of range 2..262144")
            }
            out.append(version == .v1 ? CgroupSetting("cpu.shares", "\(shares)")
                                      : CgroupSetting("cpu.weight", "\(Self.weight(shares: shares))"))
        }
        if c.quota != nil || c.period != nil {
            let period = c.period ?? 100_000
            guard (1000...1_000_000).contains(period) else {
                throw GockerError(.invalidConfig, "cpu period \(period) out of range 1000..1000000")
            }
            let quota = c.quota ?? -1
            // Microseconds a period, or -1 for no limit; the kernel's least is 1000.
            guard quota == -1 || quota >= 1000 else {
                throw GockerError(.invalidConfig, "cpu quota \(quota) is not valid: 1000 or more microseconds, or -1 for no limit")
            }
            switch version {
            case .v1:
                out.append(CgroupSetting("cpu.cfs_period_us", "\(period)"))
                out.append(CgroupSetting("cpu.cfs_quota_us", "\(quota)"))
            case .v2:
                out.append(CgroupSetting("cpu.max", "\(quota < 0 ? "max" : "\(quota)") \(period)"))
            }
        }
        return out
    }
}

/// cpuacct: no settings; the group's cpu usage for `stats`, from
/// cpuacct.usage on v1 and from cpu.stat, which every v2 group has, on v2.
public struct CPUAcctController: ResourceController {
    public let name = "cpuacct"
    public let v2Name: String? = nil
    public var alwaysGrouped: Bool { true }

    public init() {}

    public func isRequested(by r: Spec.Resources) -> Bool { false }
    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] { [] }

    public func stats(path: String, backend: any CgroupBackend) -> [String: UInt64] {
        let key = backendName(backend.version)
        switch backend.version {
        case .v1:
            guard let v = (try? backend.read(key, path: path, file: "cpuacct.usage")).flatMap({ UInt64($0.trimmed) }) else { return [:] }
            return ["cpu.usage_ns": v]
        case .v2:
            let stat = (try? backend.read(key, path: path, file: "cpu.stat")) ?? ""
            guard let usec = CgroupStatFile.field(stat, "usage_usec") else { return [:] }
            return ["cpu.usage_ns": usec * 1000]
        }
    }
}

/// `linux.resources.cpu`, read by CPUController (its cpus and mems by CpusetController).
extension Spec.Resources {
    public struct CPU: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("shares", &shares)
            try v.field("quota", &quota)
            try v.field("period", &period)
            try v.field("cpus", &cpus)
            try v.field("mems", &mems)
        }

        public var shares: UInt64?
        public var quota: Int64?
        public var period: UInt64?
        public var cpus: String?
        public var mems: String?

        public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil,
                    mems: String? = nil) {
            self.shares = shares
            self.quota = quota
            self.period = period
            self.cpus = cpus
            self.mems = mems
        }
    }

    public var cpu: CPU? {
        get { member("cpu") }
        set { setMember("cpu", newValue) }
    }
}
