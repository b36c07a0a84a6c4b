import CGockerCore
import Glibc
import GockerCore

/// The runtime-spec's "features" document (features.md): what this gocker
/// accepts. Each list is read from the table the code itself checks a
/// config against, so that it cannot say more or less than gocker does.
public struct RuntimeFeatures: JSONShape, Sendable, Equatable {
    public var ociVersionMin = ""
    public var ociVersionMax = ""
    public var hooks: [String] = []
    public var mountOptions: [String] = []
    public var linux = Linux()
    public var annotations: [String: String] = [:]

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("ociVersionMin", &ociVersionMin)
        try v.field("ociVersionMax", &ociVersionMax)
        try v.field("hooks", &hooks)
        try v.field("mountOptions", &mountOptions)
        try v.field("linux", &linux)
        try v.field("annotations", &annotations)
    }

    public struct Linux: JSONShape, Sendable, Equatable {
        public var namespaces: [String] = []
        public var capabilities: [String] = []
        public var cgroup = Cgroup()
        public var seccomp = Seccomp()
        public var apparmor = Enabled()
        public var selinux = Enabled()
        public var intelRdt = Enabled()

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("namespaces", &namespaces)
            try v.field("capabilities", &capabilities)
            try v.field("cgroup", &cgroup)
            try v.field("seccomp", &seccomp)
            try v.field("apparmor", &apparmor)
            try v.field("selinux", &selinux)
            try v.field("intelRdt", &intelRdt)
        }
    }

    public struct Cgroup: JSONShape, Sendable, Equatable {
        public var v1 = false
        public var v2 = false
        public var systemd = false
        public var systemdUser = false

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("v1", &v1)
            try v.field("v2", &v2)
            try v.field("systemd", &systemd)
            try v.field("systemdUser", &systemdUser)
        }
    }

    public struct Seccomp: JSONShape, Sendable, Equatable {
        public var enabled = false
        public var actions: [String] = []
        public var operators: [String] = []
        public var archs: [String] = []
        public var knownFlags: [String] = []
        public var supportedFlags: [String] = []

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("enabled", &enabled)
            try v.field("actions", &actions)
            try v.field("operators", &operators)
            try v.field("archs", &archs)
            try v.field("knownFlags", &knownFlags)
            try v.field("supportedFlags", &supportedFlags)
        }
    }

    public struct Enabled: JSONShape, Sendable, Equatable {
        public var enabled = false

        public init() {}
        public init(_ enabled: Bool) { self.enabled = enabled }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("enabled", &enabled)
        }
    }
}

extension RuntimeFeatures {
    /// The oldest config version gocker runs (Spec.isSupported takes the
    /// whole 1.x line; the spec's first release is 1.0.0).
    public static let versionMin = "1.0.0"

    /// The hook kinds gocker runs (see HookRunner): the hooks' own table.
    public static var hooks: [String] { Spec.Hooks.kinds }

    /// The namespace types a config may ask for: LaunchPlan's table.
    public static var namespaces: [String] { LaunchPlan.namespaceFlags.keys.sorted() }

    /// The names of the runtime-spec's seccomp values, the candidates that
    /// `seccompFeatures` asks gocker's own compiler about.
    static let seccompActions = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                 "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]
    static let seccompOperators = ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                                   "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]
    static let seccompArchs = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS",
                               "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
                               "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_PPC",
                               "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390",
                               "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
                               "SCMP_ARCH_X86_64"]
    /// Each filter flag of the spec and the kernel release that brought it.
    static let seccompFlags: [(name: String, since: (Int, Int))] = [
        ("SECCOMP_FILTER_FLAG_TSYNC", (3, 17)), ("SECCOMP_FILTER_FLAG_LOG", (4, 14)),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", (4, 17)), ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", (5, 19)),
    ]

    /// What this gocker on this host accepts.
    public static func current() -> RuntimeFeatures {
        var f = RuntimeFeatures()
        f.ociVersionMin = versionMin
        f.ociVersionMax = Spec.version
        f.hooks = hooks
        f.mountOptions = MountOptions.names
        f.linux.namespaces = namespaces
        f.linux.capabilities = Capabilities.names
        // cgroupfs v1 and v2, through libcgroup or plain writes; no systemd.
        f.linux.cgroup.v1 = true
        f.linux.cgroup.v2 = true
        f.linux.seccomp = seccompFeatures(kernel: kernelRelease())
        f.linux.apparmor = Enabled(Sys.exists("/sys/kernel/security/apparmor")
            && ((try? Sys.readText("/sys/module/apparmor/parameters/enabled")) ?? "").hasPrefix("Y"))
        f.linux.selinux = Enabled(Sys.exists("/sys/fs/selinux/enforce"))
        f.annotations = ["io.github.seccomp.libseccomp.version": String(cString: gk_seccomp_version())]
        return f
    }

    /// The seccomp values gocker's compiler (csrc/seccomp.c) takes: each
    /// candidate tried in a profile of its own; the flags the kernel
    /// release `kernel` has among those it knows.
    static func seccompFeatures(kernel: (Int, Int)) -> Seccomp {
        func compiles(_ p: Spec.Seccomp) -> Bool { (try? SeccompProgram.compile(p, plain: true)) != nil }
        var s = Seccomp()
        s.enabled = true
        s.actions = seccompActions.filter { a in
            compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [.init(names: ["getpid"], action: a)]))
        }
        s.operators = seccompOperators.filter { op in
            compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [
                .init(names: ["read"], action: "SCMP_ACT_ERRNO", args: [.init(index: 0, value: 1, valueTwo: 1, op: op)]),
            ]))
        }
        s.archs = seccompArchs.filter { compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", architectures: [$0])) }
        s.knownFlags = seccompFlags.map(\.name).filter { compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", flags: [$0])) }
        s.supportedFlags = seccompFlags.filter { s.knownFlags.contains($0.name) && kernel >= $0.since }.map(\.name)
        return s
    }

    /// The running kernel's major and minor release ("6.1.0-13" -> (6, 1)).
    static func kernelRelease() -> (Int, Int) {
        var u = utsname()
        guard uname(&u) == 0 else { return (0, 0) }
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : (0, 0)
    }
}
