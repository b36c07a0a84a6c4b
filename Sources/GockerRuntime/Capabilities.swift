import Glibc
import GockerCore

/// Linux capabilities by name, docker's default set, and `--cap-add`,
/// `--cap-drop` and `--privileged` as docker applies them.
public enum Capabilities {
    /// CAP_* names in the kernel's numbering (index = capability number).
    public static let names = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// Docker's default set.
    public static let dockerDefault = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]

    /// Every capability gocker itself holds: what `--privileged` gives
    /// (a container cannot be given more than its runtime has).
    public static func all() -> [String] {
        let held = ownSet("CapPrm")
        return names.enumerated().filter { held & (1 << UInt64($0.offset)) != 0 }.map(\.element)
    }

    /// A capability set of this process from /proc/self/status ("CapEff", "CapPrm").
    static func ownSet(_ field: String) -> UInt64 {
        let status = (try? Sys.readText("/proc/self/status")) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
            .flatMap { UInt64($0.dropFirst(field.count + 1).trimmed, radix: 16) } ?? 0
    }

    /// "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" to "CAP_NET_ADMIN".
    public static func canonical(_ name: String) throws(GockerError) -> String {
        var n = name.uppercased()
        if !n.hasPrefix("CAP_") { n = "CAP_" + n }
        guard names.contains(n) else { throw GockerError(.invalidArgument, "unknown capability: \"\(name)\"") }
        return n
    }

    /// Docker's rule: start from the default set (or all, when privileged),
    /// drop what `--cap-drop` names (ALL drops everything), then add what
    /// `--cap-add` names (ALL adds everything).
    public static func set(add: [String], drop: [String], privileged: Bool) throws(GockerError) -> [String] {
        if privileged { return all() }
        var caps = dockerDefault
        for d in drop {
            if d.uppercased() == "ALL" { caps = [] } else {
                let c = try canonical(d)
                caps.removeAll { $0 == c }
            }
        }
        for a in add {
            if a.uppercased() == "ALL" { caps = all() } else {
                let c = try canonical(a)
                if !caps.contains(c) { caps.append(c) }
            }
        }
        return names.filter { caps.contains($0) }
    }

    /// A set of names as a bit mask.
    static func mask(_ list: [String]?) throws(GockerError) -> UInt64 {
        var m: UInt64 = 0
        for name in list ?? [] {
            guard let i = names.firstIndex(of: name) else {
                throw GockerError(.invalidConfig, "unknown capability \"\(name)\"")
            }
            m |= 1 << UInt64(i)
        }
        return m
    }
}

/// `--ulimit name=soft[:hard]` and the OCI rlimit names.
public enum Ulimits {
    static let resources: [String: Int32] = [
        "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
        "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
    ]

    /// The resource number of "RLIMIT_NOFILE".
    static func resource(_ type: String) throws(GockerError) -> Int32 {
        guard type.hasPrefix("RLIMIT_"), let r = resources[String(type.dropFirst(7)).lowercased()] else {
            throw GockerError(.invalidConfig, "unknown rlimit \"\(type)\"")
        }
        return r
    }

    /// Parses docker's `--ulimit nofile=1024:2048` (soft[:hard]; -1 for unlimited).
    public static func parse(_ text: String) throws(GockerError) -> Spec.Rlimit {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, resources[parts[0]] != nil else {
            throw GockerError(.invalidArgument, "invalid ulimit \"\(text)\": expected name=soft[:hard] with a known name")
        }
        func value(_ s: Substring) throws(GockerError) -> UInt64 {
            if s == "-1" || s == "unlimited" { return UInt64.max }
            guard let v = UInt64(s) else { throw GockerError(.invalidArgument, "invalid ulimit value \"\(s)\" in \"\(text)\"") }
            return v
        }
        let limits = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        guard limits.count == 1 || limits.count == 2 else {
            throw GockerError(.invalidArgument, "invalid ulimit \"\(text)\": too many colons")
        }
        let soft = try value(limits[0])
        let hard = limits.count == 2 ? try value(limits[1]) : soft
        guard soft <= hard else {
            throw GockerError(.invalidArgument, "invalid ulimit \"\(text)\": soft limit \(soft) is above hard limit \(hard)")
        }
        return Spec.Rlimit(type: "RLIMIT_" + parts[0].uppercased(), hard: hard, soft: soft)
    }

    /// Without CAP_SYS_RESOURCE nobody may raise a hard limit: say so before
    /// anything is made, naming the limit this machine has.
    public static func checkAgainstHost(_ limits: [Spec.Rlimit]) throws(GockerError) {
        // (No limits, nothing to read: /proc/self/status is not free.)
        if limits.isEmpty || Capabilities.ownSet("CapEff") & (1 << 24) != 0 { return }
        for l in limits {
            let r = try resource(l.type)
            var cur = rlimit()
            guard getrlimit(__rlimit_resource_t(UInt32(r)), &cur) == 0 else { continue }
            if cur.rlim_max != rlim_t.max && l.hard > UInt64(cur.rlim_max) {
                let name = String(l.type.dropFirst(7)).lowercased()
                throw GockerError(.invalidArgument,
                    "ulimit \(name): hard limit \(l.hard) is above this machine's \(cur.rlim_max) (raising it needs CAP_SYS_RESOURCE)")
            }
        }
    }
}

/// Docker's masked and read-only paths.
public enum DefaultPaths {
    public static let masked = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ]
    public static let readonly = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
}
