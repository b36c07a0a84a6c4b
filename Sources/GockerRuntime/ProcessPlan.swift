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
        return s
    }
}
