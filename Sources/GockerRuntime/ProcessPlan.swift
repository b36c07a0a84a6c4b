import CGockerCore
import Glibc
import GockerCore

/// What the C core needs to become one process of a container, from an OCI
/// `process`: the first process (inside a LaunchPlan) and every process
/// `exec` starts. Building it is a pure function of the config.
public struct ProcessPlan: Sendable {
    public var args: [String]
    public var env: [String]
    public var cwd: String
    public var user: Spec.User
    /// "user[:group]" to resolve inside the container (docker's `-u`).
    public var userName: String?
    public var groupAdd: [String] = []
    public var terminal = false
    public var noNewPrivileges = false
    /// nil: capabilities are left as they are.
    public var capabilities: gk_caps?
    public var rlimits: [gk_rlimit] = []
    /// process.oomScoreAdj.
    public var oomScoreAdj: Int32?
    /// The file of /proc/self/attr the label is written to (relative to
    /// /proc), and the label:
    /// process.apparmorProfile or process.selinuxLabel, on a host that has
    /// that security module.
    public var label: (path: String, text: String)?

    /// `userName` and `groupAdd` come from docker's `-u` and `--group-add`
    /// (resolved in the container's own files): from gocker's own record of
    /// a docker-like container, never from a config.
    public init(process: Spec.Process, userName: String? = nil, groupAdd: [String] = []) throws(GockerError) {
        guard let args = process.args, !args.isEmpty, !args[0].isEmpty else {
            throw GockerError(.invalidConfig, "process.args must name a command")
        }
        guard process.cwd.hasPrefix("/") else {
            throw GockerError(.invalidConfig, "process.cwd \"\(process.cwd)\" is not an absolute path")
        }
        self.args = args
        self.env = process.env ?? []
        self.cwd = process.cwd
        self.user = process.user
        self.terminal = process.terminal ?? false
        self.noNewPrivileges = process.noNewPrivileges ?? false
        self.userName = userName.flatMap { $0.isEmpty ? nil : $0 }
        self.groupAdd = groupAdd
        if let c = process.capabilities {
            capabilities = gk_caps(
                bounding: try Capabilities.mask(c.bounding), effective: try Capabilities.mask(c.effective),
                permitted: try Capabilities.mask(c.permitted), inheritable: try Capabilities.mask(c.inheritable),
                ambient: try Capabilities.mask(c.ambient))
        }
        for r in process.rlimits ?? [] {
            rlimits.append(gk_rlimit(resource: try Ulimits.resource(r.type), soft: r.soft, hard: r.hard))
        }
        if let adj = process.oomScoreAdj {
            guard (-1000...1000).contains(adj) else {
                throw GockerError(.invalidConfig, "process.oomScoreAdj \(adj) is outside -1000..1000")
            }
            oomScoreAdj = Int32(adj)
        }
        let apparmor = process.apparmorProfile ?? "", selinux = process.selinuxLabel ?? ""
        if !apparmor.isEmpty && !selinux.isEmpty {
            throw GockerError(.invalidConfig, "process.apparmorProfile and process.selinuxLabel are both given: a host has one of them")
        }
        if !apparmor.isEmpty {
            guard Self.hostHasAppArmor() else {
                throw GockerError(.invalidConfig, "process.apparmorProfile \"\(apparmor)\": AppArmor is not enabled on this host")
            }
            // The profile the command gets at execve (as aa_change_onexec).
            label = (Sys.exists("/proc/self/attr/apparmor/exec") ? "self/attr/apparmor/exec" : "self/attr/exec",
                     "exec \(apparmor)")
        } else if !selinux.isEmpty {
            guard Sys.exists("/sys/fs/selinux/enforce") else {
                throw GockerError(.invalidConfig, "process.selinuxLabel \"\(selinux)\": SELinux is not enabled on this host")
            }
            label = ("self/attr/exec", selinux)
        }
        if let label, label.text.utf8.contains(0) {
            throw GockerError(.invalidConfig, "process label \"\(label.text)\" holds a NUL byte")
        }
    }

    /// AppArmor is loaded and enabled (its module parameter says Y).
    static func hostHasAppArmor() -> Bool {
        guard let text = try? Sys.readFile("/sys/module/apparmor/parameters/enabled") else { return false }
        return text.first == UInt8(ascii: "Y")
    }

    /// The process's PATH, for looking the command up.
    public var searchPath: String? {
        env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
    }

    /// The process part of the C core's description, its strings in
    /// `arena`; the caller adds the rest.
    func cSpawn(arena: CArena, stdio: [Int32]) -> gk_spawn {
        var s = gk_spawn()
        var flags: UInt32 = 0
        if terminal { flags |= UInt32(GK_SPAWN_TERMINAL) }
        if capabilities != nil { flags |= UInt32(GK_SPAWN_SET_CAPS) }
        if noNewPrivileges { flags |= UInt32(GK_SPAWN_NO_NEW_PRIVS) }
        s.flags = flags
        s.argv = arena.stringArray(args)
        // One spare NULL slot at the end of envp: the child may add HOME.
        let envp = arena.stringArray(env + [""])
        UnsafeMutablePointer(mutating: envp)[env.count] = nil
        s.envp = envp
        s.env_spare_slot = 1
        s.path = arena.optionalString(searchPath)
        s.cwd = arena.string(cwd)
        let groups = user.additionalGids ?? []
        s.uid = user.uid
        s.gid = user.gid
        s.groups = arena.array(groups)
        s.ngroups = groups.count
        s.user = arena.optionalString(userName)
        s.group_add = arena.stringArray(groupAdd)
        s.ngroup_add = groupAdd.count
        s.caps = capabilities ?? gk_caps()
        s.rlimits = arena.array(rlimits)
        s.nrlimits = rlimits.count
        s.stdio = (stdio[0], stdio[1], stdio[2])
        s.rootfs_tree = -1
        s.pid_ns_fd = -1
        if let oomScoreAdj {
            s.flags |= UInt32(GK_SPAWN_OOM_SCORE_ADJ)
            s.oom_score_adj = oomScoreAdj
        }
        if let label {
            s.label_path = arena.string(label.path)
            s.label = arena.string(label.text)
        }
        return s
    }
}
