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
        /// The source is one of the container's own groups (a "cgroup"
        /// mount's binds on v1): where the child sets up its mounts while
        /// the groups are made, it waits for them at this mount.
        public var afterGo = false

        public init(destination: String, type: String, source: String, options: MountOptions, afterGo: Bool = false) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
            self.afterGo = afterGo
        }
    }

    /// Where the container's mounts live: a namespace of its own (the
    /// root filesystem set up and pivoted into), one joined by path (its
    /// root as it is), or the host's (chroot into rootfs; nothing mounted).
    public enum MountNamespace: Sendable, Equatable { case own, joined, host }

    public struct Sysctl: Equatable, Sendable {
        public var path: String
        public var value: String
    }

    /// A user namespace made for the container (with its maps), one
    /// joined by path, or none (the host's).
    public enum UserNamespace: Sendable, Equatable { case none, own, joined }

    public var cloneFlags: Int32 = 0
    public var joins: [Join] = []
    public var userNamespace = UserNamespace.none
    /// linux.uidMappings and gidMappings, for a user namespace of its own.
    public var uidMappings: [Spec.IDMapping] = []
    public var gidMappings: [Spec.IDMapping] = []
    /// A PID namespace joined by path: the first process is cloned into it.
    public var pidNamespacePath: String?
    public var mountNamespace = MountNamespace.own
    /// linux.sysctl: paths under /proc ("sys/net/...") and their values, in key order.
    public var sysctls: [Sysctl] = []
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
    /// The config's hooks, checked (see HookRunner); nil when it has none.
    public var hooks: Spec.Hooks?

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
        "uts": GK_CLONE_NEWUTS, "cgroup": GK_CLONE_NEWCGROUP, "user": GK_CLONE_NEWUSER,
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
        var joinedTypes: [Int32: String] = [:]
        for ns in spec.linux?.namespaces ?? [] {
            guard seen.insert(ns.type).inserted else {
                throw GockerError(.invalidConfig, "namespace \"\(ns.type)\" is listed twice")
            }
            if ns.type == "time" {
                throw GockerError(.invalidConfig, "time namespaces are not supported yet")
            }
            guard let flag = Self.namespaceFlags[ns.type] else {
                throw GockerError(.invalidConfig, "unknown namespace type \"\(ns.type)\"")
            }
            if let path = ns.path, !path.isEmpty {
                guard path.hasPrefix("/") else {
                    throw GockerError(.invalidConfig, "\(ns.type) namespace path \"\(path)\" is not absolute")
                }
                joinedTypes[flag] = path
                switch flag {
                case GK_CLONE_NEWPID: pidNamespacePath = path
                case GK_CLONE_NEWNS: mountNamespace = .joined
                case GK_CLONE_NEWUSER: userNamespace = .joined
                default: break
                }
                // The PID namespace is entered around clone, not by the
                // child; the user namespace first, so that the child has
                // its privileges over the others.
                if flag == GK_CLONE_NEWUSER {
                    joins.insert(Join(path: path, type: flag), at: 0)
                } else if flag != GK_CLONE_NEWPID {
                    joins.append(Join(path: path, type: flag))
                }
            } else {
                cloneFlags |= flag
                if flag == GK_CLONE_NEWUSER { userNamespace = .own }
            }
        }
        if cloneFlags & GK_CLONE_NEWNS == 0 && mountNamespace != .joined { mountNamespace = .host }
        let maps = try Self.userMaps(spec: spec, userNamespace: userNamespace, cloneFlags: cloneFlags,
                                     process: self.process, mountNamespace: mountNamespace,
                                     joinsOthers: joins.contains { $0.type != GK_CLONE_NEWUSER } || pidNamespacePath != nil)
        if userNamespace != .none && overlay != nil {
            throw GockerError(.invalidConfig, "a user namespace with gocker's overlay root is not supported yet")
        }
        uidMappings = maps.uids
        gidMappings = maps.gids
        if let hooks = spec.hooks, !hooks.isEmpty {
            try HookRunner.validate(hooks)
            // Rootless, a PID namespace joined by path is entered on a
            // thread that never comes back to the host's (see spawn.c's
            // parked launch): hooks started from it would run inside.
            if Rootless.active && pidNamespacePath != nil {
                throw Rootless.refusal("hooks with a PID namespace joined by path", "they would start inside that namespace")
            }
            self.hooks = hooks
        }
        /// Whether the container's namespace of type `flag` is its own:
        /// made for it, or joined by a path that is not the one gocker
        /// itself is in (/proc/1/ns/net is the host's).
        let made = cloneFlags
        func own(_ flag: Int32, _ type: String) -> Bool {
            if made & flag != 0 { return true }
            guard let path = joinedTypes[flag] else { return false }
            return !Self.sameFile(path, "/proc/self/ns/\(type)")
        }
        if let hostname = spec.hostname, !hostname.isEmpty {
            guard own(GK_CLONE_NEWUTS, "uts") else {
                throw GockerError(.invalidConfig, "cannot set hostname without a private UTS namespace")
            }
            self.hostname = hostname
        }
        for (key, value) in (spec.linux?.sysctl ?? [:]).sorted(by: { $0.key < $1.key }) {
            let (path, flag, type) = try Self.sysctl(key)
            guard own(flag, type) else {
                let name = type == "net" ? "network" : type
                throw GockerError(.invalidConfig, "linux.sysctl \"\(key)\" needs a \(name) namespace of the container's own")
            }
            guard !value.utf8.contains(0) else {
                throw GockerError(.invalidConfig, "linux.sysctl \"\(key)\": the value holds a NUL byte")
            }
            sysctls.append(Sysctl(path: path, value: value))
        }
        if mountNamespace != .own {
            let why = mountNamespace == .joined ? "its mount namespace is joined by path"
                : "linux.namespaces lists no mount namespace"
            func refuse(_ what: String) -> GockerError {
                GockerError(.invalidConfig, "\(what) need a mount namespace of the container's own (\(why))")
            }
            if !(spec.mounts ?? []).isEmpty { throw refuse("mounts") }
            if !maskedPaths.isEmpty || !readonlyPaths.isEmpty { throw refuse("masked and read-only paths") }
            if rootReadonly { throw refuse("a read-only root") }
            if let p = spec.linux?.rootfsPropagation, !p.isEmpty { throw refuse("rootfsPropagation") }
            if overlay != nil { throw refuse("an overlay root") }
            if mountNamespace == .joined && !(spec.linux?.devices ?? []).isEmpty { throw refuse("linux.devices") }
        }
        if let name = spec.linux?.rootfsPropagation, !name.isEmpty {
            rootPropagation = try MountOptions.propagation(named: name)
        }

        for m in spec.mounts ?? [] {
            let destination = m.destination
            guard destination.hasPrefix("/") else {
                throw GockerError(.invalidConfig, "mount destination \"\(destination)\" is not absolute")
            }
            let options = MountOptions(type: m.type, options: Rootless.mappedOptions(m.options ?? []))
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
            // Rootless, sysfs can be mounted only in a network namespace
            // of gocker's user namespace: with the host's (or another's
            // joined), the host's /sys is bound instead, as runc does.
            if Rootless.active && m.type == "sysfs" && cloneFlags & GK_CLONE_NEWNET == 0 {
                mounts.append(PlannedMount(destination: destination, type: "bind", source: "/sys",
                                           options: MountOptions(type: "bind", options: (m.options ?? []) + ["rbind"])))
                continue
            }
            mounts.append(PlannedMount(destination: destination, type: m.type ?? "bind", source: source, options: options))
        }
        // The spec's default devices are there whatever the mounts are,
        // unless /dev is the host's, bound, or that of a mount namespace
        // joined (runc makes none then either).
        let configured = spec.linux?.devices ?? []
        let devBound = mounts.contains { Paths.clean($0.destination) == "/dev" && $0.options.isBind }
        if devBound && !configured.isEmpty {
            throw GockerError(.invalidConfig, "linux.devices cannot be made in a /dev bound from the host")
        }
        if !devBound && mountNamespace != .joined {
            devices = Self.defaultDevices.filter { d in !configured.contains { $0.path == d.path } } + configured
            devSymlinks = true
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

    /// The user namespace's maps, checked: a namespace of its own needs
    /// both, covering its root and the first process's user; one joined or
    /// none takes none. The maps are written by the parent before GO
    /// (root needs no newuidmap).
    static func userMaps(spec: Spec, userNamespace: UserNamespace, cloneFlags: Int32, process: ProcessPlan,
                         mountNamespace: MountNamespace, joinsOthers: Bool) throws(GockerError) -> (uids: [Spec.IDMapping], gids: [Spec.IDMapping]) {
        // Rootless, the config's host ids are read as ids of gocker's own
        // namespace (see Rootless.inside).
        let uids = try Rootless.inside(spec.linux?.uidMappings ?? [], gids: false)
        let gids = try Rootless.inside(spec.linux?.gidMappings ?? [], gids: true)
        switch userNamespace {
        case .none:
            if !uids.isEmpty || !gids.isEmpty {
                throw GockerError(.invalidConfig, "linux.uidMappings and gidMappings need a user namespace in linux.namespaces")
            }
            return ([], [])
        case .joined:
            if !uids.isEmpty || !gids.isEmpty {
                throw GockerError(.invalidConfig, "linux.uidMappings and gidMappings cannot be given for a user namespace joined by path")
            }
            if cloneFlags & GK_CLONE_NEWPID != 0 {
                throw GockerError(.invalidConfig, "a PID namespace of the container's own with a user namespace joined by path is not supported yet")
            }
        case .own:
            // Namespaces joined by path belong to the host's user namespace:
            // a process in a new one has no privilege left to enter them.
            if joinsOthers {
                throw GockerError(.invalidConfig, "namespaces joined by path with a user namespace of the container's own are not supported yet")
            }
            for (name, maps) in [("uidMappings", uids), ("gidMappings", gids)] {
                guard !maps.isEmpty else {
                    throw GockerError(.invalidConfig, "a user namespace of the container's own needs linux.\(name)")
                }
                try Self.checkMappings(maps, name: name)
            }
            guard Self.mapped(0, uids), Self.mapped(0, gids) else {
                throw GockerError(.invalidConfig, "linux.uidMappings and gidMappings must map the container's root (id 0)")
            }
            guard Self.mapped(process.user.uid, uids) else {
                throw GockerError(.invalidConfig, "process.user.uid \(process.user.uid) is not mapped by linux.uidMappings")
            }
            for gid in [process.user.gid] + (process.user.additionalGids ?? []) where !Self.mapped(gid, gids) {
                throw GockerError(.invalidConfig, "process.user gid \(gid) is not mapped by linux.gidMappings")
            }
        }
        guard mountNamespace == .own else {
            throw GockerError(.invalidConfig, "a user namespace needs a mount namespace of the container's own")
        }
        return (uids, gids)
    }

    /// Sizes above 0, no range past 2^32, no two ranges overlapping on
    /// either side, at most the kernel's 340 lines.
    static func checkMappings(_ maps: [Spec.IDMapping], name: String) throws(GockerError) {
        guard maps.count <= 340 else {
            throw GockerError(.invalidConfig, "linux.\(name) has \(maps.count) ranges: the kernel takes at most 340")
        }
        for (i, m) in maps.enumerated() {
            guard m.size > 0, UInt64(m.containerID) + UInt64(m.size) <= 1 << 32,
                  UInt64(m.hostID) + UInt64(m.size) <= 1 << 32 else {
                throw GockerError(.invalidConfig, "linux.\(name): range \(m.containerID) \(m.hostID) \(m.size) is empty or runs past the last id")
            }
            for other in maps[..<i] {
                func overlap(_ a: UInt32, _ b: UInt32) -> Bool {
                    UInt64(a) < UInt64(b) + UInt64(other.size) && UInt64(b) < UInt64(a) + UInt64(m.size)
                }
                if overlap(m.containerID, other.containerID) || overlap(m.hostID, other.hostID) {
                    throw GockerError(.invalidConfig, "linux.\(name): ranges overlap")
                }
            }
        }
    }

    /// Whether container id `id` is in one of the ranges.
    static func mapped(_ id: UInt32, _ maps: [Spec.IDMapping]) -> Bool {
        maps.contains { UInt64(id) >= UInt64($0.containerID) && UInt64(id) < UInt64($0.containerID) + UInt64($0.size) }
    }

    /// Whether host id `id` is in one of the ranges.
    static func hostMapped(_ id: UInt32, _ maps: [Spec.IDMapping]) -> Bool {
        maps.contains { UInt64(id) >= UInt64($0.hostID) && UInt64(id) < UInt64($0.hostID) + UInt64($0.size) }
    }

    /// The maps as /proc/PID/uid_map takes them, one range a line.
    static func mapText(_ maps: [Spec.IDMapping]) -> String {
        maps.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
    }

    /// The IPC sysctls of an IPC namespace (runc's list; fs.mqueue.* too).
    static let ipcSysctls: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]

    /// A linux.sysctl key ("net.ipv4.ip_forward", or with slashes): its
    /// /proc/sys path and the namespace it belongs to. Only namespaced ones
    /// are taken, as runc: the others would change the host.
    static func sysctl(_ key: String) throws(GockerError) -> (path: String, flag: Int32, type: String) {
        let dotted = String(key.map { $0 == "/" ? "." : $0 })
        let parts = dotted.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.allSatisfy({ p in
            !p.isEmpty && p.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
        }) else {
            throw GockerError(.invalidConfig, "linux.sysctl \"\(key)\" is not a sysctl name")
        }
        let path = "sys/" + parts.joined(separator: "/")
        if ipcSysctls.contains(dotted) || dotted.hasPrefix("fs.mqueue.") { return (path, GK_CLONE_NEWIPC, "ipc") }
        if dotted.hasPrefix("net.") { return (path, GK_CLONE_NEWNET, "net") }
        if dotted == "kernel.hostname" || dotted == "kernel.domainname" { return (path, GK_CLONE_NEWUTS, "uts") }
        throw GockerError(.invalidConfig, "linux.sysctl \"\(key)\" is not in a separate kernel namespace")
    }

    /// Whether the two paths are one file (one namespace).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
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
    /// `--network slirp4netns` (a rootless container's default).
    public var slirp: SlirpNetwork?

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
        try v.field("slirp", &slirp)
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
                                           v2Root: String = Paths.cgroupRoot) {
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
                    var group = bind("\(mount)/\(record.path)", "\(m.destination)/\(name)")
                    group.afterGo = true
                    placed.append(group)
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
