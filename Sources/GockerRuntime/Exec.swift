import CGockerCore
import Glibc
import GockerCgroups
import GockerCore

/// `exec`: a new process inside a running container, in every one of its
/// namespaces and cgroups, with the process settings the caller gives
/// (usually the container's own, so that an exec has the same capabilities,
/// no_new_privs and rlimits as its first process).
extension Runtime {
    /// The namespaces an exec joins, in the order it joins them: the user
    /// namespace first (it decides what the others allow), the mount
    /// namespace last. The PID namespace is entered around the clone.
    static let execJoinOrder: [(name: String, type: Int32)] = [
        ("user", GK_CLONE_NEWUSER), ("ipc", GK_CLONE_NEWIPC), ("uts", GK_CLONE_NEWUTS),
        ("net", GK_CLONE_NEWNET), ("cgroup", GK_CLONE_NEWCGROUP), ("mnt", GK_CLONE_NEWNS),
    ]

    /// The container's process settings, from its bundle: the base an
    /// exec starts from.
    public func containerProcess(id: String) throws(GockerError) -> Spec.Process {
        let s = try store.load(id)
        let spec = try Spec.decodeFile(path: s.bundle + "/config.json")
        guard let process = spec.process else { throw GockerError(.invalidConfig, "config has no process") }
        return process
    }

    /// Starts `process` in the running container `id` with `stdio` (-1:
    /// inherit). Returns once the command runs: its pid on the host, and
    /// the pty master when the process has a terminal.
    public func exec(id: String, process: ProcessPlan, stdio: [Int32] = [-1, -1, -1]) throws(GockerError) -> (pid: pid_t, terminal: Int32?) {
        // Held until the command runs: a pause cannot come between the
        // check below and the new process joining the cgroups.
        let lock = try store.lock(id)
        defer { lock.release() }
        let s = try store.load(id)
        switch status(of: s) {
        case .stopped: throw GockerError(.invalidState, "container \(id) is not running")
        case .paused: throw GockerError(.invalidState, "container \(id) is paused, unpause the container before exec")
        default: break
        }
        var fds: [Int32] = []
        defer { for fd in fds { Sys.close(fd) } }
        func open(_ name: String) throws(GockerError) -> Int32? {
            let path = "/proc/\(s.pid)/ns/\(name)"
            guard let theirs = Sys.fileID(path) else {
                throw GockerError(.invalidState, "container \(id) is not running")
            }
            // A namespace the container shares with us is not joined (the
            // kernel refuses to re-enter one's own user namespace).
            if theirs == Sys.fileID("/proc/self/ns/\(name)") { return nil }
            do {
                let fd = try Sys.open(path, O_RDONLY)
                fds.append(fd)
                return fd
            } catch {
                throw GockerError(.invalidState, "container \(id) is not running", cause: error)
            }
        }
        var joins: [gk_ns_join] = []
        for ns in Self.execJoinOrder {
            if let fd = try open(ns.name) { joins.append(gk_ns_join(fd: fd, nstype: ns.type)) }
        }
        let pidNS = try open("pid") ?? -1
        // A container with no mount namespace of its own (the host's kept)
        // has its root by chroot: the new process is chrooted there too,
        // never left on the host's root.
        var chrootFD: Int32 = -1
        if Sys.fileID("/proc/\(s.pid)/ns/mnt") == Sys.fileID("/proc/self/ns/mnt") {
            do {
                chrootFD = try Sys.open("/proc/\(s.pid)/root", GK_O_PATH | O_DIRECTORY)
                fds.append(chrootFD)
            } catch {
                throw GockerError(.invalidState, "container \(id) is not running", cause: error)
            }
        }
        // The descriptors are the container's only if its first process is
        // still the one recorded (not a reused pid).
        guard UInt64(gk_process_start_time(s.pid)) == s.pidStartTime else {
            throw GockerError(.invalidState, "container \(id) is not running")
        }

        // The container's filter, as runc applies it to every process: the
        // one `create` kept, not what the bundle's config says now.
        let seccomp = try SeccompProgram.kept(in: store.directory(id), id: id, bundle: s.bundle,
                                              annotations: s.annotations, cacheDirectory: seccompCache)
        let arena = CArena()
        var spec = process.cSpawn(arena: arena, stdio: stdio)
        if let listener = try seccomp?.attach(to: &spec, arena: arena) { fds.append(listener) }
        spec.joins = arena.array(joins)
        spec.njoins = joins.count
        if Rootless.setgroupsDenied { spec.flags |= UInt32(GK_SPAWN_KEEP_GROUPS) }
        if chrootFD >= 0 {
            spec.flags |= UInt32(GK_SPAWN_CHROOT)
            spec.rootfs_tree = chrootFD
        }
        let join: (pid_t) throws(GockerError) -> [Int32]
        if let cgroups = s.cgroups {
            let driver = driver(for: cgroups)
            join = { (child: pid_t) throws(GockerError) -> [Int32] in try GoHook.join(driver, cgroups, pid: child) }
        } else {
            join = { (_: pid_t) throws(GockerError) -> [Int32] in [] }
        }
        let hook = GoHook(join)
        var pid: pid_t = 0
        var terminal: Int32 = -1
        var msg = gk_msg()
        let ctx = Unmanaged.passRetained(hook)
        let r = gk_exec(&spec, pidNS, GoHook.call, ctx.toOpaque(), &pid, &terminal, &msg)
        ctx.release()
        withExtendedLifetime(arena) {}
        if let error = hook.error { throw error }
        if r == -ESRCH { throw GockerError(.invalidState, "container \(id) is not running") }
        if r < 0 {
            if msg.type == Int32(GK_MSG_ERROR.rawValue) { throw Self.childFailure(msg, doing: "exec in container \(id)") }
            throw GockerError(.system, "exec in container \(id)", cause: SystemCallError("clone", errno: -r))
        }
        return (pid, terminal >= 0 ? terminal : nil)
    }
}
