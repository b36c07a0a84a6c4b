import CGockerCore
import Glibc
import GockerCore

/// Everything the C core needs to start a container's first process, worked
/// out from an OCI config and its bundle. Building it is a pure function, so
/// that what a config means can be tested without root.
public struct LaunchPlan: Sendable {
    public struct Join: Equatable, Sendable {
        public var path: String
        public var type: Int32
    }

    public struct PlannedMount: Equatable, Sendable {
        public var destination: String
        public var type: String
        public var source: String
        public var options: MountOptions
    }

    public var cloneFlags: Int32 = 0
    public var joins: [Join] = []
    public var hostname: String?
    public var rootPropagation: UInt = UInt(MS_PRIVATE | MS_REC)
    public var rootfs: String
    public var rootReadonly = false
    public var overlay: String?
    public var mounts: [PlannedMount] = []
    public var devices: [Spec.Device] = []
    public var devSymlinks = false
    /// The first process: command, environment, user, capabilities, rlimits.
    public var process: ProcessPlan
    public var initProcess = false
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    /// `linux.seccomp`, compiled by `create` (see SeccompProgram).
    public var seccomp: SeccompProgram?

    /// The devices every container gets, as in runc and docker.
    public static let defaultDevices: [Spec.Device] = [
        Spec.Device(type: "c", path: "/dev/null", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0),
        Spec.Device(type: "c", path: "/dev/zero", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0),
        Spec.Device(type: "c", path: "/dev/full", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0),
        Spec.Device(type: "c", path: "/dev/random", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0),
        Spec.Device(type: "c", path: "/dev/urandom", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0),
        Spec.Device(type: "c", path: "/dev/tty", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0),
    ]

    static let namespaceFlags: [String: Int32] = [
        "pid": GK_CLONE_NEWPID, "network": GK_CLONE_NEWNET, "mount": GK_CLONE_NEWNS, "ipc": GK_CLONE_NEWIPC,
        "uts": GK_CLONE_NEWUTS, "cgroup": GK_CLONE_NEWCGROUP,
    ]

    /// `extras`: what gocker itself adds for a docker-like container; never
    /// read from the config (whose annotations anyone driving `gocker oci`
    /// writes).
    public init(spec: Spec, bundle: String, extras: LaunchExtras = LaunchExtras()) throws(GockerError) {
        guard let process = spec.process else { throw GockerError(.invalidConfig, "config has no process") }
        self.process = try ProcessPlan(process: process, userName: extras.user, groupAdd: extras.groupAdd ?? [])
        guard let root = spec.root, !root.path.isEmpty else { throw GockerError(.invalidConfig, "config has no root.path") }
        self.initProcess = extras.initProcess ?? false
        self.maskedPaths = spec.linux?.maskedPaths ?? []
        self.readonlyPaths = spec.linux?.readonlyPaths ?? []
        for p in maskedPaths + readonlyPaths where !p.hasPrefix("/") {
            throw GockerError(.invalidConfig, "masked or read-only path \"\(p)\" is not absolute")
        }
        self.rootfs = Self.absolute(root.path, in: bundle)
        self.rootReadonly = root.readonly ?? false
        self.overlay = extras.overlay

        var seen = Set<String>()
        for ns in spec.linux?.namespaces ?? [] {
            guard seen.insert(ns.type).inserted else {
                throw GockerError(.invalidConfig, "namespace \"\(ns.type)\" is listed twice")
            }
            if ns.type == "user" || ns.type == "time" {
                throw GockerError(.invalidConfig, "\(ns.type) namespaces are not supported yet")
            }
            guard let flag = Self.namespaceFlags[ns.type] else {
                throw GockerError(.invalidConfig, "unknown namespace type \"\(ns.type)\"")
            }
            if let path = ns.path, !path.isEmpty {
                if ns.type == "pid" || ns.type == "mount" {
                    throw GockerError(.invalidConfig, "joining an existing \(ns.type) namespace is not supported yet")
                }
                joins.append(Join(path: path, type: flag))
            } else {
                cloneFlags |= flag
            }
        }
        guard cloneFlags & GK_CLONE_NEWNS != 0 else {
            throw GockerError(.invalidConfig, "a container needs its own mount namespace")
        }
        if let hostname = spec.hostname, !hostname.isEmpty {
            guard cloneFlags & GK_CLONE_NEWUTS != 0 else {
                throw GockerError(.invalidConfig, "cannot set hostname without a private UTS namespace")
            }
            self.hostname = hostname
        }
        if let name = spec.linux?.rootfsPropagation, !name.isEmpty {
            rootPropagation = try MountOptions.propagation(named: name)
        }

        var createsDev = false
        for m in spec.mounts ?? [] {
            let destination = m.destination
            guard destination.hasPrefix("/") else {
                throw GockerError(.invalidConfig, "mount destination \"\(destination)\" is not absolute")
            }
            let options = MountOptions(type: m.type, options: m.options ?? [])
            var source = m.source ?? ""
            if options.isBind {
                guard !source.isEmpty else {
                    throw GockerError(.invalidConfig, "bind mount on \(destination) has no source")
                }
                source = Self.absolute(source, in: bundle)
            } else if (m.type ?? "").isEmpty {
                throw GockerError(.invalidConfig, "mount on \(destination) has no type")
            }
            if let why = Self.refusal(destination: destination, type: m.type ?? "bind", isBind: options.isBind, source: source) {
                throw GockerError(.invalidConfig, "mount \(destination): \(why)")
            }
            if destination == "/dev" && !options.isBind { createsDev = true }
            mounts.append(PlannedMount(destination: destination, type: m.type ?? "bind", source: source, options: options))
        }
        let configured = spec.linux?.devices ?? []
        if createsDev {
            devices = Self.defaultDevices.filter { d in !configured.contains { $0.path == d.path } } + configured
            devSymlinks = true
        } else {
            devices = configured
        }
        for d in devices where d.type != "c" && d.type != "u" && d.type != "b" && d.type != "p" {
            throw GockerError(.invalidConfig, "device \(d.path) has unknown type \"\(d.type)\"")
        }
    }

    /// Files of /proc that lxcfs and the like bind their own versions over
    /// (runc's list): the only mount targets inside /proc.
    public static let procAllowList = ["/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/uptime", "/proc/loadavg",
                                       "/proc/diskstats", "/proc/swaps"]

    /// Why a mount on `destination` is refused from its path alone, before
    /// anything is made: the root; inside /proc (but proc itself, or a bind
    /// of the host's procfs, on /proc, or a file of `procAllowList`); for
    /// a bind (volumes too) inside /sys, unless it binds the host's /sys.
    /// nil when the path is fine; the C core judges again where the path
    /// leads in the container's root, through its symlinks, and on what
    /// filesystem (csrc/mounts.c gk_refuse_target), with the same words.
    public static func refusal(destination: String, type: String, isBind: Bool, source: String) -> String? {
        // Lexically, as the container's root sees it ("/sys/../etc" is /etc).
        let path = Paths.clean(destination)
        let source = Paths.clean(source)
        func under(_ p: String, _ dir: String) -> Bool { p == dir || p.hasPrefix(dir + "/") }
        if path == "/" { return "target resolves to the container's root" }
        if path == "/proc" {
            let procItself = isBind ? under(source, "/proc") : type == "proc"
            if !procItself { return "only a proc filesystem can be mounted on /proc" }
        } else if under(path, "/proc") && !procAllowList.contains(path) {
            return "target resolves into /proc"
        }
        if isBind && under(path, "/sys") && !under(source, "/sys") { return "target resolves into /sys" }
        return nil
    }

    static func absolute(_ path: String, in bundle: String) -> String {
        path.hasPrefix("/") ? path : (bundle == "/" ? "/" + path : bundle + "/" + path)
    }
}

/// What `gocker run` adds to a container's OCI config to start it: settings
/// an OCI config has no field for. The engine hands them to the runtime in
/// its own process and keeps them in the container's record (container.json
/// under the data root), never in the bundle: a bundle's annotations come
/// from whoever drives `gocker oci` (podman passes its users' through), and
/// an overlay named there could make any host directory a container's root.
public struct LaunchExtras: JSONShape, Sendable, Equatable {
    /// overlayfs's mount data for the bundle's root, mounted inside the
    /// container's mount namespace (it disappears with the container and
    /// never shows on the host).
    public var overlay: String?
    /// docker's `-u user[:group]`, names resolved in the container's files.
    public var user: String?
    /// docker's `--group-add`: names or ids.
    public var groupAdd: [String]?
    /// docker's `--init`: a tiny init as PID 1.
    public var initProcess: Bool?
    /// The config's seccomp profile is docker's default made by gocker, and
    /// its program is cached under this name (DefaultSeccomp.cacheName): a
    /// start finds it without reading the profile.
    public var seccompDefault: String?
    /// The bridge network it is connected to at each start: the first,
    /// whose gateway is its default route and which holds its published
    /// ports.
    public var network: NetworkAttachment?
    /// The networks `network connect` added, in the order it did.
    public var moreNetworks: [NetworkAttachment]?

    /// Every network it is on, the first one first.
    public var attachments: [NetworkAttachment] {
        get { (network.map { [$0] } ?? []) + (moreNetworks ?? []) }
        set {
            network = newValue.first
            moreNetworks = newValue.count > 1 ? Array(newValue.dropFirst()) : nil
        }
    }

    public init(overlay: String? = nil, user: String? = nil, groupAdd: [String]? = nil, initProcess: Bool? = nil,
                seccompDefault: String? = nil) {
        self.overlay = overlay
        self.user = user
        self.groupAdd = groupAdd
        self.initProcess = initProcess
        self.seccompDefault = seccompDefault
    }

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("overlay", &overlay)
        try v.field("user", &user)
        try v.field("groupAdd", &groupAdd)
        try v.field("initProcess", &initProcess)
        try v.field("seccompDefault", &seccompDefault)
        try v.field("network", &network)
        try v.field("moreNetworks", &moreNetworks)
    }
}

extension LaunchPlan {
    /// An OCI mount of type "cgroup", as runc makes it: with a cgroup
    /// namespace of its own on v2, the cgroup2 filesystem; otherwise the
    /// container's own groups, bound: on v2 its group, on v1 a tmpfs with a
    /// directory per hierarchy (named as on the host) holding its group
    /// there. (Mounting "cgroup" itself fails on v1: its hierarchies are
    /// mounted already.) `v1Mounts`: controller to the hierarchy's mount.
    public mutating func placeCgroupMounts(record: CgroupRecord, v1Mounts: () -> [String: String],
                                           v2Root: String = "/sys/fs/cgroup") {
        guard mounts.contains(where: { $0.type == "cgroup" && !$0.options.isBind }) else { return }
        var placed: [PlannedMount] = []
        for m in mounts {
            guard m.type == "cgroup" && !m.options.isBind else {
                placed.append(m)
                continue
            }
            let readOnly = m.options.flags & UInt(MS_RDONLY) != 0
            let bindOptions = ["rbind", "nosuid", "nodev", "noexec"] + (readOnly ? ["ro"] : [])
            func bind(_ source: String, _ destination: String) -> PlannedMount {
                PlannedMount(destination: destination, type: "bind", source: source,
                             options: MountOptions(type: "bind", options: bindOptions))
            }
            switch record.version {
            case .v2 where cloneFlags & GK_CLONE_NEWCGROUP != 0:
                placed.append(PlannedMount(destination: m.destination, type: "cgroup2", source: "cgroup", options: m.options))
            case .v2:
                placed.append(bind(record.path.isEmpty ? v2Root : "\(v2Root)/\(record.path)", m.destination))
            case .v1:
                placed.append(PlannedMount(destination: m.destination, type: "tmpfs", source: "tmpfs",
                                           options: MountOptions(type: "tmpfs", options: ["nosuid", "nodev", "noexec", "mode=755"])))
                var done = Set<String>()
                for (controller, mount) in v1Mounts().sorted(by: { $0.key < $1.key })
                where record.controllers.contains(controller) && done.insert(mount).inserted {
                    let name = mount.split(separator: "/").last.map(String.init) ?? controller
                    placed.append(bind("\(mount)/\(record.path)", "\(m.destination)/\(name)"))
                }
                if readOnly {
                    // The tmpfs too, once its mount points are made.
                    var remount = MountOptions(type: "tmpfs", options: ["remount", "ro", "nosuid", "nodev", "noexec"])
                    remount.flags |= UInt(MS_BIND)
                    placed.append(PlannedMount(destination: m.destination, type: "tmpfs", source: "tmpfs", options: remount))
                }
            }
        }
        mounts = placed
    }
}
