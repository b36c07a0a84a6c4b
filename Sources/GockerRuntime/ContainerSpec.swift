import CGockerCore
import GockerCgroups
import GockerControllers
import GockerCore

/// What `gocker run` was asked for, before anything exists on disk.
public struct RunRequest: Sendable, Equatable {
    public var image: String
    public var command: [String] = []
    public var name: String?
    public var autoRemove = false
    public var env: [String] = []
    public var envFiles: [String] = []
    public var workdir: String?
    public var hostname: String?
    /// nil: the image's; "": none.
    public var entrypoint: String?
    public var network: NetworkMode = .default
    /// `--ip`, `--mac-address`, `--network-alias`.
    public var ip: String?
    public var macAddress: String?
    public var networkAliases: [String] = []
    /// `--dns`, `--dns-search`, `--dns-option`, `--add-host`.
    public var dns: [String] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    public var addHosts: [String] = []
    /// `-p/--publish`, as given; `-P/--publish-all`.
    public var publish: [String] = []
    public var publishAll = false
    public var interactive = false
    public var tty = false
    /// `-u user[:group]`: nil for the image's.
    public var user: String?
    public var groupAdd: [String] = []
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var privileged = false
    public var readOnly = false
    public var securityOpts: [String] = []
    public var ulimits: [String] = []
    /// `--sysctl KEY=VALUE`, as given.
    public var sysctls: [String] = []
    /// `--oom-score-adj`.
    public var oomScoreAdj: Int64?
    /// `--cgroupns private|host`; nil for docker's default: private on
    /// cgroup v2, host on v1.
    public var cgroupns: String?
    /// `--userns`: only "host" (docker's per-container mode).
    public var userns: String?
    public var initProcess = false
    public var resources = ResourceFlags()
    /// nil: GOCKER_CGROUP_BACKEND, else libcgroup.
    public var cgroupBackend: String?
    /// nil: GOCKER_CGROUP_PARENT, else "gocker".
    public var cgroupParent: String?
    /// `-d`: start under a monitor and return.
    public var detach = false
    /// `--restart`: no, on-failure[:N], always, unless-stopped.
    public var restart = "no"
    /// `--log-opt max-size=`: bytes, 0 for no bound.
    public var logMaxSize: UInt64 = 10 * 1024 * 1024
    /// `-v`, `--mount`, `--tmpfs`, `--volumes-from`, as given.
    public var volumes: [String] = []
    public var mounts: [String] = []
    public var tmpfs: [String] = []
    public var volumesFrom: [String] = []

    public init(image: String) { self.image = image }
}

/// `--security-opt seccomp=`: which profile a container gets.
public enum SeccompChoice: Sendable, Equatable {
    case `default`, unconfined
    case file(String)

    /// What `inspect` shows: "default", "unconfined" or the file.
    public func shown(privileged: Bool) -> String {
        if privileged { return "unconfined" }
        switch self {
        case .default: return "default"
        case .unconfined: return "unconfined"
        case .file(let path): return path
        }
    }
}

/// Turns a run request and its image into an OCI config: the same config
/// `gocker oci create` would read from a bundle.
public enum ContainerSpec {
    /// The process's command line, as docker forms it from the image's
    /// Entrypoint and Cmd and the request's `--entrypoint` and arguments.
    public static func commandLine(request: RunRequest, image: ImageConfig) throws(GockerError) -> [String] {
        let entrypoint: [String]
        var cmd: [String]
        if let e = request.entrypoint {
            entrypoint = e.isEmpty ? [] : [e]
            cmd = request.command
        } else {
            entrypoint = image.Entrypoint ?? []
            cmd = request.command.isEmpty ? (image.Cmd ?? []) : request.command
        }
        if request.entrypoint != nil && request.command.isEmpty && entrypoint.isEmpty { cmd = image.Cmd ?? [] }
        let args = entrypoint + cmd
        guard let first = args.first, !first.isEmpty else {
            throw GockerError(.invalidArgument, "no command specified")
        }
        return args
    }

    /// The environment: the image's, HOSTNAME, then the request's (a later
    /// entry replaces an earlier one of the same name). HOME, when none of
    /// these sets it, is added inside the container from the user's entry
    /// in its /etc/passwd.
    public static func environment(image: [String], hostname: String, request: [String]) -> [String] {
        // docker: an image without PATH gets the usual one.
        let path = image.contains(where: { $0.hasPrefix("PATH=") }) ? [] : ["PATH=\(defaultPath)"]
        return merge(path + image + ["HOSTNAME=\(hostname)"], request)
    }

    /// `base` with `more` on top: a later entry replaces an earlier one of
    /// the same name, in the earlier one's place.
    public static func merge(_ base: [String], _ more: [String]) -> [String] {
        var order: [String] = []
        var values: [String: String] = [:]
        for entry in base + more {
            let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            if values[key] == nil { order.append(key) }
            values[key] = entry
        }
        return order.map { values[$0]! }
    }

    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// `-e NAME=VALUE` as given; `-e NAME` takes the value from gocker's own
    /// environment and is dropped when that has none.
    public static func resolveEnv(_ entries: [String], lookup: (String) -> String? = Sys.env) throws(GockerError) -> [String] {
        var out: [String] = []
        for e in entries {
            if e.hasPrefix("=") || e.isEmpty { throw GockerError(.invalidArgument, "invalid environment variable: \"\(e)\"") }
            if e.contains("=") {
                out.append(e)
            } else if let v = lookup(e) {
                out.append("\(e)=\(v)")
            }
        }
        return out
    }

    /// docker's `-w`: an absolute path, when given.
    public static func validateWorkdir(_ w: String?) throws(GockerError) {
        if let w, !w.hasPrefix("/") {
            throw GockerError(.invalidArgument, "the working directory '\(w)' is invalid, it needs to be an absolute path")
        }
    }

    /// `--env-file` files, then `-e` entries, resolved.
    public static func userEnvironment(env: [String], envFiles: [String]) throws(GockerError) -> [String] {
        var out: [String] = []
        for file in envFiles {
            let text = try performing("read env file \(file)", code: .invalidArgument) { () throws(SystemCallError) in
                try Sys.readText(file)
            }
            out += try parseEnvFile(text)
        }
        return out + (try resolveEnv(env))
    }

    /// The lines of an `--env-file`: NAME=VALUE or NAME; # comments and
    /// blank lines are skipped.
    public static func parseEnvFile(_ text: String, lookup: (String) -> String? = Sys.env) throws(GockerError) -> [String] {
        var entries: [String] = []
        // "\r\n" is one Character in Swift: split on both line ends.
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = Substring(raw)
            while let f = line.first, f == " " || f == "\t" { line = line.dropFirst() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            let name = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            if name.contains(" ") || name.contains("\t") {
                throw GockerError(.invalidArgument, "invalid environment variable \"\(name)\": contains whitespace")
            }
            entries.append(String(line))
        }
        return try resolveEnv(entries, lookup: lookup)
    }

    /// The mounts every docker-like container gets, in runc's order, plus
    /// the bind-mounted /etc/hostname, /etc/hosts and /etc/resolv.conf.
    public static func defaultMounts(containerDir: String) -> [Spec.Mount] {
        [
            Spec.Mount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            Spec.Mount(destination: "/dev", type: "tmpfs", source: "tmpfs",
                       options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Spec.Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
                       options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            Spec.Mount(destination: "/dev/shm", type: "tmpfs", source: "shm",
                       options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            Spec.Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            Spec.Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
            Spec.Mount(destination: "/etc/resolv.conf", type: "bind", source: containerDir + "/resolv.conf",
                       options: ["rbind", "rprivate"]),
            Spec.Mount(destination: "/etc/hostname", type: "bind", source: containerDir + "/hostname",
                       options: ["rbind", "rprivate"]),
            Spec.Mount(destination: "/etc/hosts", type: "bind", source: containerDir + "/hosts",
                       options: ["rbind", "rprivate"]),
        ]
    }

    /// What `--security-opt` asks for.
    public struct SecurityOptions: Sendable, Equatable {
        public var noNewPrivileges = false
        public var seccomp = SeccompChoice.default
        /// `apparmor=PROFILE`: process.apparmorProfile (nil: none, as
        /// `apparmor=unconfined`).
        public var apparmorProfile: String?
        /// `label=user:|role:|type:|level:VALUE`: process.selinuxLabel,
        /// container_t's parts with those given laid over (nil: none, as
        /// `label=disable`).
        public var selinuxLabel: String?
    }

    /// `--security-opt`: no-new-privileges[:true|false],
    /// seccomp=unconfined|FILE.json, apparmor=PROFILE|unconfined,
    /// label=user:U|role:R|type:T|level:L|disable (each also with ':' for '=').
    /// A profile or label is refused later, by ProcessPlan, where the host
    /// has no such security module, as the config's fields are.
    public static func securityOptions(_ opts: [String]) throws(GockerError) -> SecurityOptions {
        var out = SecurityOptions()
        // user, role, type, level
        var label: [String?] = [nil, nil, nil, nil]
        var labelDisabled = false
        func value(_ o: String, _ key: String) -> String? {
            guard o.hasPrefix(key + "=") || o.hasPrefix(key + ":") else { return nil }
            return String(o.dropFirst(key.count + 1))
        }
        for o in opts {
            switch o {
            case "no-new-privileges", "no-new-privileges:true", "no-new-privileges=true": out.noNewPrivileges = true
            case "no-new-privileges:false", "no-new-privileges=false": out.noNewPrivileges = false
            case _ where value(o, "seccomp") != nil:
                let v = value(o, "seccomp")!
                guard !v.isEmpty else { throw GockerError(.invalidArgument, "invalid --security-opt: \"\(o)\"") }
                out.seccomp = v == "unconfined" ? .unconfined : .file(v)
            case _ where value(o, "apparmor") != nil:
                let v = value(o, "apparmor")!
                guard !v.isEmpty else { throw GockerError(.invalidArgument, "invalid --security-opt: \"\(o)\"") }
                out.apparmorProfile = v == "unconfined" ? nil : v
            case _ where value(o, "label") != nil:
                let v = value(o, "label")!
                if v == "disable" {
                    labelDisabled = true
                    continue
                }
                let parts = v.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2, !parts[1].isEmpty,
                      let at = ["user", "role", "type", "level"].firstIndex(of: parts[0]) else {
                    throw GockerError(.invalidArgument, "invalid --security-opt: \"\(o)\": expected label=user:, role:, type: or level:VALUE, or label=disable")
                }
                label[at] = parts[1]
            default: throw GockerError(.invalidArgument, "unsupported security option: \"\(o)\"")
            }
        }
        if !labelDisabled && label.contains(where: { $0 != nil }) {
            let defaults = ["system_u", "system_r", "container_t", "s0"]
            out.selinuxLabel = (0..<4).map { label[$0] ?? defaults[$0] }.joined(separator: ":")
        }
        return out
    }

    public static func noNewPrivileges(_ opts: [String]) throws(GockerError) -> Bool {
        try securityOptions(opts).noNewPrivileges
    }

    /// The seccomp profile of a docker-like container: docker's default
    /// for its capabilities, none (`unconfined`, `--privileged`), or a
    /// profile file, read and compiled here so that a bad one is refused
    /// before anything of the container is made.
    public static func seccompProfile(_ choice: SeccompChoice, privileged: Bool,
                                      capabilities: [String]) throws(GockerError) -> Spec.Seccomp? {
        if privileged { return nil }
        switch choice {
        case .unconfined: return nil
        case .default: return DefaultSeccomp.profile(capabilities: capabilities)
        case .file(let path):
            let profile = try SeccompProfileFile.load(path, capabilities: capabilities)
            _ = try SeccompProgram(profile)
            return profile
        }
    }

    /// `--sysctl KEY=VALUE` entries as linux.sysctl, each judged as the
    /// runtime judges the config's (LaunchPlan.sysctl: only namespaced
    /// ones, refused otherwise with its line), before anything is made.
    /// A network sysctl needs the container's own network namespace.
    public static func sysctls(_ entries: [String], network: NetworkMode) throws(GockerError) -> [String: String]? {
        guard !entries.isEmpty else { return nil }
        var out: [String: String] = [:]
        for e in entries {
            let kv = e.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty else {
                throw GockerError(.invalidArgument, "invalid argument \"\(e)\" for \"--sysctl\" flag: expected KEY=VALUE")
            }
            let (_, flag, _) = try LaunchPlan.sysctl(kv[0])
            if flag == GK_CLONE_NEWNET && network == .host {
                throw GockerError(.invalidArgument, "sysctl \"\(kv[0])\" cannot be set with --network host: it needs a network namespace of the container's own")
            }
            out[kv[0]] = kv[1]
        }
        return out
    }

    /// docker's `--oom-score-adj` range check.
    public static func validateOOMScoreAdj(_ adj: Int64?) throws(GockerError) {
        if let adj, !(-1000...1000).contains(adj) {
            throw GockerError(.invalidArgument, "Invalid value \(adj), range for oom score adj is [-1000, 1000]")
        }
    }

    /// `--cgroupns`: whether the container gets a cgroup namespace of its
    /// own; docker's default is private on cgroup v2, host on v1.
    public static func privateCgroupNamespace(_ mode: String?, version: CgroupVersion) throws(GockerError) -> Bool {
        switch mode {
        case nil: return version == .v2
        case "private": return true
        case "host": return false
        case let m?: throw GockerError(.invalidArgument, "--cgroupns: invalid CGROUP mode \"\(m)\": expected private or host")
        }
    }

    /// What gocker itself adds to a docker-like container's config to start
    /// it, kept in its record: the overlay of the image's layers
    /// (`layerPaths`, bottom first) and the container's upper layer, the
    /// user, `--group-add` and `--init`.
    /// `volatileUpper`: the container starts once, here, and goes when it
    /// ends or fails to start (`run --rm` in the foreground).
    public static func extras(request: RunRequest, image: ImageRecord, layerPaths: [String], containerDir: String,
                              volatileUpper: Bool = false) -> LaunchExtras {
        let lower = Array(layerPaths.reversed()).joined(by: ":")
        var overlay = "lowerdir=\(lower),upperdir=\(containerDir)/upper,workdir=\(containerDir)/work"
        // A container removed when it ends never needs its upper layer on
        // disk: overlayfs's "volatile" skips the syncs of the whole upper
        // filesystem (at unmount, on every copy-up and fsync) that the
        // kernel otherwise makes for it. Such an upper layer cannot be
        // mounted again, so only for a container that starts once and goes
        // whether it ran or failed to start: not one created to be started
        // later (`create --rm`, `run -d --rm`), which a failed start keeps.
        if volatileUpper { overlay += ",volatile" }
        // Rootless: overlayfs's own attributes in user.overlay.*.
        if Rootless.active { overlay += ",userxattr" }
        let imageUser = image.config.User.flatMap { $0.isEmpty ? nil : $0 }
        return LaunchExtras(overlay: overlay, user: request.user ?? imageUser ?? "0",
                            groupAdd: request.groupAdd.isEmpty ? nil : request.groupAdd,
                            initProcess: request.initProcess ? true : nil)
    }

    /// The OCI config of a docker-like container. `request` has been
    /// validated (its ulimits, capabilities and security options parse).
    /// `userMounts` (volumes, binds, tmpfs) come after the default mounts and
    /// replace any of them with the same destination. Its root is the
    /// bundle's empty `rootfs`, on which the overlay of `extras` is mounted.
    /// `defaultSeccomp` false: docker's default profile, when it applies,
    /// is left out (the caller writes it rendered and names it to the
    /// runtime: see DefaultSeccomp.rendered and LaunchExtras.seccompDefault).
    /// `cgroupVersion`: the host's, which `--cgroupns`'s default follows.
    public static func build(request: RunRequest, image: ImageRecord, containerDir: String,
                             hostname: String, env: [String], args: [String],
                             userMounts: [Spec.Mount] = [], defaultSeccomp: Bool = true,
                             cgroupVersion: CgroupVersion = CgroupDriver.detectVersion()) throws(GockerError) -> Spec {
        var namespaces = ["pid", "ipc", "uts", "mount"].map { Spec.Namespace(type: $0) }
        if request.network.ownNamespace { namespaces.append(Spec.Namespace(type: "network")) }
        let privateCgroups = try privateCgroupNamespace(request.cgroupns, version: cgroupVersion)
        if let mode = request.userns, mode != "host" {
            throw GockerError(.invalidArgument, "--userns: invalid USER mode \"\(mode)\": only host is supported (a user namespace with maps is an OCI config's, run by gocker oci)")
        }
        if privateCgroups { namespaces.append(Spec.Namespace(type: "cgroup")) }
        let caps = try Capabilities.set(add: request.capAdd, drop: request.capDrop, privileged: request.privileged)
        let security = try securityOptions(request.securityOpts)
        let sysctl = try sysctls(request.sysctls, network: request.network)
        try validateOOMScoreAdj(request.oomScoreAdj)
        var mounts = defaultMounts(containerDir: containerDir)
        if request.privileged, let sys = mounts.firstIndex(where: { $0.destination == "/sys" }) {
            mounts[sys].options = ["nosuid", "noexec", "nodev", "rw"]
        }
        if privateCgroups {
            // As docker: the container's own groups at /sys/fs/cgroup,
            // read-only unless privileged (the runtime places them: on v2
            // cgroup2 itself, rooted at the namespace's root; on v1 each
            // hierarchy's group bound under a tmpfs).
            mounts.append(Spec.Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                                     options: ["nosuid", "noexec", "nodev", "relatime", request.privileged ? "rw" : "ro"]))
        }
        // As docker: a parent before what lies below it (a volume on /etc
        // goes before the /etc/hosts bind), otherwise in order.
        mounts = (mounts.filter { m in !userMounts.contains { $0.destination == m.destination } } + userMounts)
            .enumerated().sorted { a, b in
                let (da, db) = (a.element.destination.split(separator: "/").count, b.element.destination.split(separator: "/").count)
                return da != db ? da < db : a.offset < b.offset
            }.map(\.element)
        var process = Spec.Process(
            terminal: request.tty, args: args, env: env,
            cwd: request.workdir ?? image.config.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/",
            capabilities: Spec.Capabilities(bounding: caps, effective: caps, inheritable: [], permitted: caps, ambient: []),
            rlimits: try request.ulimits.map { u throws(GockerError) in try Ulimits.parse(u) },
            noNewPrivileges: security.noNewPrivileges)
        process.oomScoreAdj = request.oomScoreAdj.map { Int($0) }
        process.apparmorProfile = security.apparmorProfile
        process.selinuxLabel = security.selinuxLabel
        // A label or profile the host cannot apply is refused now, with the
        // runtime's words for the config's fields.
        _ = try ProcessPlan(process: process)
        var spec = Spec(
            process: process,
            root: Spec.Root(path: "rootfs", readonly: request.readOnly),
            hostname: hostname,
            mounts: mounts,
            linux: Spec.Linux(
                namespaces: namespaces,
                devices: request.privileged ? nil : try DevicesController.devices(from: request.resources, host: .live).map { $0.node },
                resources: try request.resources.resources(privileged: request.privileged),
                rootfsPropagation: "rprivate",
                maskedPaths: request.privileged ? [] : DefaultPaths.masked,
                readonlyPaths: request.privileged ? [] : DefaultPaths.readonly,
                seccomp: defaultSeccomp || security.seccomp != .default
                    ? try seccompProfile(security.seccomp, privileged: request.privileged, capabilities: caps) : nil))
        spec.linux?.sysctl = sysctl
        return spec
    }
}
