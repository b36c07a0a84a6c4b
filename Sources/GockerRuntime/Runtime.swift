import CGockerCore
import Glibc
import GockerCgroups
import GockerControllers
import GockerCore

/// The OCI lifecycle of containers under one state root: create, start,
/// state, kill, delete. `gocker oci` and the docker-like `gocker run` both
/// start containers through here.
public struct Runtime: Sendable {
    public let store: StateStore
    /// The cgroup backend new containers get: "libcgroup" (the default) or
    /// "cgroupfs".
    public let cgroupBackend: String
    /// Where containers' groups go when their config names no cgroupsPath:
    /// `<hierarchy>/<parent>/<id>` (docker's --cgroup-parent; env
    /// GOCKER_CGROUP_PARENT; default "gocker").
    public let cgroupParent: String
    /// Where compiled seccomp programs are kept (see SeccompProgram), or nil
    /// for none: `<data-root>/seccomp`.
    public var seccompCache: String?

    /// What was asked for, where anything was (the flag's or the
    /// environment's words, and which): a rootless gocker refuses them.
    let askedBackend: (value: String, by: String)?
    let askedParent: (value: String, by: String)?

    public init(stateRoot: String, cgroupBackend: String? = nil, cgroupParent: String? = nil, dataRoot: String? = nil) {
        self.store = StateStore(root: Paths.absolute(stateRoot))
        self.seccompCache = Paths.absolute(dataRoot ?? Engine.defaultDataRoot) + "/seccomp"
        askedBackend = cgroupBackend.map { ($0, "--cgroup-backend") } ?? Sys.env("GOCKER_CGROUP_BACKEND").map { ($0, "GOCKER_CGROUP_BACKEND") }
        askedParent = cgroupParent.map { ($0, "--cgroup-parent") } ?? Sys.env("GOCKER_CGROUP_PARENT").map { ($0, "GOCKER_CGROUP_PARENT") }
        self.cgroupBackend = askedBackend?.value ?? "libcgroup"
        // Rootless, containers' groups go under the subtree delegated to
        // the user, when there is one.
        self.cgroupParent = askedParent?.value
            ?? Rootless.delegatedCgroup.map { String($0.dropFirst()) + "/gocker" } ?? "gocker"
    }

    /// Rootless, the groups are made by files in the cgroup2 subtree
    /// delegated to the user, or there are none: no backend can be chosen,
    /// and without a subtree no parent either. Asking is an error, not a
    /// choice ignored (checked where a container is made, not where an
    /// existing one starts again).
    public func refuseRootlessChoices() throws(GockerError) {
        guard Rootless.active else { return }
        // (A delegated subtree is found on a pure cgroup2 host only.)
        let delegated = Rootless.delegatedCgroup
        let none = CgroupDriver.rootlessRefusal(CgroupDriver.detectVersion())
        if let (value, by) = askedBackend {
            throw GockerError(.invalidArgument, "\(by) \(value): a rootless gocker has no choice of cgroup backend: "
                + (delegated.map { "it writes the groups' files in the subtree delegated to the user (\($0))" } ?? none))
        }
        if let (value, by) = askedParent, delegated == nil {
            throw GockerError(.invalidArgument, "\(by) \(value): \(none)")
        }
    }

    public static func validateBackend(_ name: String) throws(GockerError) {
        guard name == "libcgroup" || name == "cgroupfs" else {
            throw GockerError(.invalidArgument, "invalid cgroup backend \"\(name)\": expected libcgroup or cgroupfs")
        }
    }

    /// The driver for new containers. When libcgroup cannot initialise, the
    /// whole container falls back to cgroupfs, and says so.
    static func newDriver(backend cgroupBackend: String) throws(GockerError) -> CgroupDriver {
        try Self.validateBackend(cgroupBackend)
        let version = CgroupDriver.detectVersion()
        if Rootless.active {
            // A cgroup2 subtree delegated to the user: its groups, by files
            // (libcgroup writes from the hierarchy's root down).
            if version == .v2, let delegated = Rootless.delegatedCgroup {
                return CgroupDriver(backend: CgroupfsV2Backend(offering: Paths.cgroupRoot + delegated),
                                    registry: BuiltinControllers.registry)
            }
            return CgroupDriver(backend: NoCgroupBackend(version: version, refusal: CgroupDriver.rootlessRefusal(version)),
                                registry: BuiltinControllers.registry)
        }
        let backend: any CgroupBackend
        do {
            backend = try CgroupDriver.hostBackend(named: cgroupBackend, version: version)
        } catch where cgroupBackend == "libcgroup" {
            Self.warn("\(error.description); using the cgroupfs backend")
            backend = try CgroupDriver.hostBackend(named: "cgroupfs", version: version)
        }
        return CgroupDriver(backend: backend, registry: BuiltinControllers.registry)
    }

    /// The driver for groups a container already has, with the backend that
    /// made them (or cgroupfs, which removes the same files, if that one
    /// cannot start any more).
    func driver(for record: CgroupRecord) -> CgroupDriver {
        let backend = (try? CgroupDriver.hostBackend(named: record.backend, version: record.version))
            ?? (try! CgroupDriver.hostBackend(named: "cgroupfs", version: record.version))
        return CgroupDriver(backend: backend, registry: BuiltinControllers.registry)
    }

    /// runc's rule: whatever a config's device rules deny, the default
    /// devices (null, zero, full, random, urandom, tty, console, ptmx, the
    /// pts, mknod of any node) stay usable; their rules go last, so that
    /// they win. The config's own device nodes get only what its rules
    /// give them (`--device X:r` stays read-only). Nothing is added that a
    /// rule already allows, nor without rules (all is allowed then).
    static func keepingDefaultDevices(_ r: Spec.Resources) -> Spec.Resources {
        guard var rules = r.devices, !rules.isEmpty else { return r }
        let wanted = DevicesController.dockerDeviceRules.filter(\.allow)
        // Already allowed at the end (gocker run's own list): nothing to add.
        if let lastDeny = rules.lastIndex(where: { !$0.allow }), wanted.allSatisfy({ rules[(lastDeny + 1)...].contains($0) }) {
            return r
        }
        rules += wanted
        var out = r
        out.devices = rules
        return out
    }

    static func warn(_ line: String) {
        let text = "gocker: warning: \(line)\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }

    // MARK: create

    /// Creates the container `id` from the bundle: namespaces, root
    /// filesystem and mounts are set up and its first process waits for
    /// `start` before it runs the command.
    /// A config that asks for a terminal needs `consoleSocket`: the pty
    /// master is sent there (runc's protocol), as containerd and podman expect.
    @discardableResult
    public func create(id: String, bundle: String, pidFile: String? = nil,
                       consoleSocket: String? = nil) throws(GockerError) -> RuntimeState {
        try create(id: id, bundle: bundle, pidFile: pidFile, allowTerminal: consoleSocket != nil,
                   consoleSocket: consoleSocket).0
    }

    /// create, also for a config that asks for a terminal: the pty master
    /// comes back to the caller, who relays it, with whether the container
    /// has a PID namespace of its own.
    /// `spec`, when given, is the bundle's config.json as its writer had it.
    /// `extras`: what the engine adds for its own containers (never read
    /// from the bundle).
    /// `ahead`: what `run` made ahead for this container (see StartAhead);
    /// nil: the driver comes up now.
    /// `consoleSocket`: the pty master is sent there (and not returned);
    /// the config must ask for a terminal.
    /// `early`: the caller starts the container once this returns and
    /// outlives it (a foreground `run`): see EarlyStart.
    /// What engines read once create has answered is there before it
    /// returns, in this order: the state, the terminal on the console
    /// socket, then the pid file, written whole (rename). A failure on the
    /// way removes the container, its groups and its state.
    func create(id: String, bundle: String, spec given: Spec? = nil, extras: LaunchExtras? = nil,
                pidFile: String?, allowTerminal: Bool, consoleSocket: String? = nil, stdio: [Int32] = [-1, -1, -1],
                ahead: StartAhead? = nil, early: EarlyStart? = nil) throws(GockerError) -> (RuntimeState, terminal: Int32?, ownPIDNamespace: Bool) {
        let networks = extras?.attachments ?? []
        var ahead = ahead ?? StartAhead(backend: cgroupBackend, networkNamespace: !networks.isEmpty || extras?.slirp != nil)
        // (`run` connected it once the address was known.)
        if ahead.attachments.isEmpty { ahead.connect(networks) }
        // A network namespace made ahead is joined by the child, and closed
        // here once it has (or when it was not asked for).
        defer { ahead.closeNetworkNamespace() }
        try Identifier.validateContainerID(id)
        let bundle = try Self.realPath(bundle, what: "bundle")
        let spec: Spec
        if let given { spec = given } else { spec = try Spec.decodeFile(path: bundle + "/config.json") }
        try spec.checkRefusedMembers()
        var plan = try LaunchPlan(spec: spec, bundle: bundle, extras: extras ?? LaunchExtras())
        if let p = spec.linux?.seccomp {
            plan.seccomp = try SeccompProgram(p, id: id, bundle: bundle, annotations: spec.annotations,
                                              cacheDirectory: seccompCache, cacheName: extras?.seccompDefault)
        } else if let name = extras?.seccompDefault {
            // `run`'s own spec, without docker's profile (its config.json
            // has it): the program by name, the profile made only to compile.
            plan.seccomp = try SeccompProgram(defaultNamed: name, capabilities: spec.process?.capabilities?.bounding ?? [],
                                              cacheDirectory: seccompCache)
        }
        if plan.process.terminal && !allowTerminal {
            throw GockerError(.invalidConfig, "process.terminal needs --console-socket")
        }
        if consoleSocket != nil && !plan.process.terminal {
            throw GockerError(.invalidConfig, "--console-socket was given but the config's process.terminal is false")
        }
        // A terminal is relayed once started, as before.
        let early = plan.process.terminal ? nil : early
        guard Sys.isDirectory(plan.rootfs) else {
            throw GockerError(.invalidConfig, "root filesystem \(plan.rootfs) is not a directory")
        }

        let cgroupPath: String
        if let p = spec.linux?.cgroupsPath {
            cgroupPath = try CgroupDriver.validatePath(p)
        } else {
            cgroupPath = "\(try CgroupDriver.validatePath(cgroupParent))/\(id)"
        }
        gk_mark(GK_MARK_CONFIG)
        try Self.validateBackend(cgroupBackend)
        var resources = Self.keepingDefaultDevices(spec.linux?.resources ?? Spec.Resources())
        // Rootless, device rules have nothing to enforce: a container in a
        // user namespace can make no device node, and opens only the nodes
        // bound into it, as the user may (see Rootless).
        if Rootless.active { resources.devices = nil }
        // Whether the child mounts its root filesystem and binds while its
        // groups are made, after the clone (see StartChoices).
        let choices = StartChoices.choose(
            cgroupVersion: CgroupDriver.detectVersion(), mounts: plan.mounts,
            newNetwork: plan.cloneFlags & GK_CLONE_NEWNET != 0, networkMadeAhead: ahead.networkNamespace != nil,
            driverMadeFor: ahead.backend, backend: cgroupBackend,
            // A user namespace's maps come with GO; hooks before pivot_root
            // need the child's host pid, and one record at a time on the
            // socket.
            goFirst: plan.userNamespace != .none || plan.hooks?.createHooks == true,
            parentMakesNetwork: !Rootless.active)
        let driverJob = choices.reuseDriver ? ahead.driver : StartAhead(backend: cgroupBackend).driver
        let lateGo = choices.lateGo

        // The groups' plan on the driver's thread, once the driver is up,
        // while the id is reserved.
        let planning = driverJob.then { made -> Result<Planned, GockerError> in
            Result { () throws(GockerError) in
                let driver = try made.get()
                let groups = try driver.plan(for: resources)
                return Planned(driver: driver, groups: groups,
                               record: CgroupRecord(backend: driver.backend.name, version: driver.backend.version,
                                                    path: cgroupPath, controllers: groups.map(\.controller.name)))
            }
        }
        let lock = try store.reserve(id)
        defer { lock.release() }
        let created = Timestamp.now()
        let rootfs = plan.rootfs
        /// The state with the child's pid (0: none yet).
        func stateRecord(pid: pid_t, cgroups: CgroupRecord) -> RuntimeState {
            var s = RuntimeState(id: id, pid: pid, pidStartTime: pid > 0 ? UInt64(gk_process_start_time(pid)) : 0,
                                 bundle: bundle, rootfs: rootfs, created: created, annotations: spec.annotations,
                                 cgroups: cgroups)
            if pid > 0 { s.hooks = plan.hooks?.afterCreate }
            return s
        }
        // Write-ahead: the state names the container's groups before any is
        // made, so that a gocker killed while it makes them leaves them to
        // `delete`, also when only some were made. Only once the id is
        // ours: the path may be that of a live container's groups until
        // then. (A missing cpuset ancestor that `prepare` fills is shared,
        // not the container's, and stays, as runc leaves it.)
        // On the driver's thread, while this one goes on to the clone: what
        // comes before the groups (`prepare`: cpuset's values from its
        // parent), then a state with no process yet. The groups come after
        // it: with a late GO once the child is cloned, by the hook that
        // sends GO, while the child sets itself up; otherwise before the
        // clone, on the driver's thread too. The state is written again
        // with the child's pid once GO is sent, while the child goes on
        // (swapped in: see StateStore.save).
        let readied = planning.then { planned -> Result<Planned, GockerError> in
            Result { () throws(GockerError) in
                var p = try planned.get()
                p.groups = try p.driver.prepare(p.groups, path: cgroupPath)
                try store.save(stateRecord(pid: 0, cgroups: p.record))
                return p
            }
        }
        // The network namespace sent with GO (StartChoices.Network.madeForGo),
        // made on the driver's thread after the state; closed here unless
        // the hook handed it over (the C core closes what it sends).
        let netnsForGo = choices.network == .madeForGo ? readied.then { _ in gk_new_netns_aside() } : nil
        var netnsHanded = false
        defer { if !netnsHanded, let fd = netnsForGo?.value(), fd >= 0 { Sys.close(fd) } }
        let groupsAhead = lateGo ? nil : readied.then { readied -> Result<(CgroupDriver, CgroupRecord), GockerError> in
            Result { () throws(GockerError) in
                let p = try readied.get()
                return (p.driver, try p.driver.create(path: cgroupPath, resources: resources, planned: p.groups))
            }
        }
        var madeLate: (driver: CgroupDriver, record: CgroupRecord)?
        var saved: RuntimeState?
        var pid: pid_t = 0
        var terminal: Int32 = -1
        var sync: Int32 = -1
        defer { if sync >= 0 { Sys.close(sync) } }
        do throws(GockerError) {
            var cloneDirectory: String?
            if let groupsAhead {
                let (driver, record) = try groupsAhead.value().get()
                plan.placeCgroupMounts(record: record, v1Mounts: { driver.mountPoints(record) })
                cloneDirectory = driver.cloneDirectory(record)
            } else if plan.mounts.contains(where: { $0.type == "cgroup" }) {
                // The groups' paths are known once they are planned; the
                // child binds them once they are made (PlannedMount.afterGo).
                let p = try planning.value().get()
                plan.placeCgroupMounts(record: p.record, v1Mounts: { p.driver.mountPoints(p.record) })
            }
            let fifo = store.fifoPath(id)
            let fifoFD = try performing("create exec fifo of \(id)") { () throws(SystemCallError) in
                try Sys.check("mkfifo", path: fifo) { mkfifo(fifo, 0o622) }
                // Writable by the container's user, whoever it is (the umask
                // took the bits away): the state directory keeps others out.
                try Sys.check("chmod", path: fifo) { chmod(fifo, 0o622) }
                return try Sys.open(fifo, GK_O_PATH)
            }
            defer { Sys.close(fifoFD) }
            if let early {
                early.fifo = try performing("open exec fifo of \(id)") { () throws(SystemCallError) in
                    try Sys.open(fifo, O_RDONLY | O_NONBLOCK)
                }
            }
            if let program = plan.seccomp {
                try program.keep(in: store.directory(id), profile: spec.linux?.seccomp)
            }
            // slirp4netns serves the namespace made ahead, which the child
            // joins, for as long as the state exists.
            if let slirp = extras?.slirp {
                guard let netns = ahead.madeNetworkNamespace else {
                    throw GockerError(.system, "create the network namespace of \(id)",
                                      cause: SystemCallError("unshare", errno: ahead.networkFailure ?? EINVAL))
                }
                try slirp.start(netns: netns, directory: store.directory(id)) { pid throws(GockerError) in
                    try store.keepCompanion(id, pid: pid)
                }
            }
            // Done before the clone (and a failure there found before it):
            // the driver's thread, busy on the CPU the child is cloned on
            // (see clone_spread), would hold it up.
            _ = try readied.value().get()
            // (GK_SPAWN_HOOKS's answer would come after it: not then.)
            let savedEarly = early != nil && plan.hooks?.runtimeHooks != true
            (pid, terminal, sync) = try spawn(id: id, plan: plan, fifoFD: fifoFD, stdio: stdio, choices: choices,
                                              ahead: ahead, bundle: bundle, annotations: spec.annotations,
                                              cgroupDirectory: cloneDirectory, savedEarly: savedEarly) { pid throws(GockerError) in
                if let groupsAhead {
                    let (driver, record) = try groupsAhead.value().get()
                    return try GoHook.join(driver, record, pid: pid)
                }
                let p = try readied.value().get()
                let made = try p.driver.create(path: cgroupPath, resources: resources, planned: p.groups)
                madeLate = (p.driver, made)
                let files = try GoHook.join(p.driver, made, pid: pid)
                guard let netnsForGo else { return files }
                let fd = netnsForGo.value()
                guard fd >= 0 else {
                    for f in files { Sys.close(f) }
                    throw GockerError(.system, "create the network namespace of \(id)",
                                      cause: SystemCallError("netns", errno: -fd))
                }
                netnsHanded = true
                return files + [fd]
            } afterGo: { pid throws(GockerError) in
                guard let record = madeLate?.record ?? groupsAhead.flatMap({ try? $0.value().get().1 }) else {
                    throw GockerError(.system, "create container \(id): its groups were not made before GO")
                }
                let state = stateRecord(pid: pid, cgroups: record)
                try store.save(state)
                saved = state
            }
            guard let state = saved else {
                throw GockerError(.system, "create container \(id): its state was not saved")
            }
            // Named by the state now: the child may outlive this process.
            // (Sent with GO already when early.)
            let r = savedEarly ? 0 : gk_send_saved(sync)
            if r < 0 {
                throw GockerError(.system, "create container \(id)", cause: SystemCallError("send", errno: -r))
            }
            if let consoleSocket, terminal >= 0 {
                let r = gk_send_console(consoleSocket, terminal)
                Sys.close(terminal)
                terminal = -1
                if r < 0 {
                    throw GockerError(.system, "send the terminal of \(id)",
                                      cause: SystemCallError("connect", path: consoleSocket, errno: -r))
                }
            }
            if let pidFile {
                try performing("write pid file") { () throws(SystemCallError) in
                    try Sys.writeFileAtomic(pidFile, Array("\(pid)".utf8))
                }
            }
            return (state, terminal >= 0 ? terminal : nil, plan.cloneFlags & GK_CLONE_NEWPID != 0)
        } catch {
            if terminal >= 0 { Sys.close(terminal) }
            if let fd = early?.takeFifo() { Sys.close(fd) }
            if pid > 0 {
                Glibc.kill(pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
            }
            // (A driver that failed has removed what it made.)
            if let groupsAhead, case .success(let (driver, record)) = groupsAhead.value() {
                try? driver.destroy(record)
            } else if let madeLate {
                try? madeLate.driver.destroy(madeLate.record)
            }
            // Not before the state with no process yet is written.
            _ = readied.value()
            try? store.remove(id)
            throw error
        }
    }

    /// The driver a container's groups are made with, what it plans for
    /// them, and the record that names them.
    struct Planned {
        let driver: CgroupDriver
        var groups: [CgroupDriver.Plan]
        let record: CgroupRecord
    }

    /// Runs `beforeGo` in the parent before GO, once the child exists (with
    /// GK_SPAWN_NET_AT_GO, while it is being cloned: pid 0): it puts the
    /// child in its cgroups, or hands it the files to join them (with a late
    /// GO, once it has made them); then `after` once GO is sent.
    final class GoHook {
        /// Places the child, or returns the `tasks` files (open for writing)
        /// through which it joins its groups itself, and with
        /// GK_SPAWN_NET_AT_GO the network namespace last; the C core sends
        /// them with GO and closes them.
        let body: (pid_t) throws(GockerError) -> [Int32]
        /// Run once GO is sent, while the child goes on (see gk_spawn's
        /// `go_sent`).
        let after: ((pid_t) throws(GockerError) -> Void)?
        var error: GockerError?
        /// Set by the C core when the child was cloned straight into its
        /// cgroup v2 group (clone3 with CLONE_INTO_CGROUP): then it is in its
        /// group already, and `body`, which places it there, is skipped.
        let joined = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        init(_ body: @escaping (pid_t) throws(GockerError) -> [Int32],
             after: ((pid_t) throws(GockerError) -> Void)? = nil) {
            self.body = body
            self.after = after
            joined.initialize(to: 0)
        }
        deinit { joined.deallocate() }

        /// The C callback; `ctx` is an unretained GoHook.
        static let call: gk_before_go_fn = { pid, ctx, fds, count in
            let hook = Unmanaged<GoHook>.fromOpaque(ctx!).takeUnretainedValue()
            count!.pointee = 0
            if hook.joined.pointee != 0 { return 0 }
            do throws(GockerError) {
                let files = try hook.body(pid)
                precondition(files.count <= Int(GK_MAX_GO_FDS))
                for (i, fd) in files.enumerated() { fds![i] = fd }
                count!.pointee = files.count
            } catch {
                hook.error = error
                return -EIO
            }
            return 0
        }

        /// The C callback after GO; `ctx` is an unretained GoHook.
        static let callGoSent: @convention(c) (pid_t, UnsafeMutableRawPointer?) -> Int32 = { pid, ctx in
            let hook = Unmanaged<GoHook>.fromOpaque(ctx!).takeUnretainedValue()
            do throws(GockerError) {
                try hook.after?(pid)
            } catch {
                hook.error = error
                return -EIO
            }
            return 0
        }

        /// Each of `record`'s `tasks` files open for writing, for the child
        /// to join its groups itself; else (v2, or a backend without the
        /// files) `pid` placed by the driver, and none.
        static func join(_ driver: CgroupDriver, _ record: CgroupRecord, pid: pid_t) throws(GockerError) -> [Int32] {
            guard let files = driver.taskFiles(record) else {
                // (pid 0: GK_SPAWN_NET_AT_GO's early call, for groups that
                // are joined through their files only.)
                guard pid > 0 else {
                    throw GockerError(.system, "join cgroup: \(driver.backend.name) gives no tasks files to join through")
                }
                try driver.attach(record, pid: pid)
                return []
            }
            var fds: [Int32] = []
            for f in files {
                let fd = Glibc.open(f, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    let e = errno
                    for fd in fds { Sys.close(fd) }
                    throw GockerError(.system, "join cgroup", cause: SystemCallError("open", path: f, errno: e))
                }
                fds.append(fd)
            }
            return fds
        }
    }

    /// With `cgroupDirectory` the child is cloned straight into that cgroup2
    /// group where the kernel can (clone3 with CLONE_INTO_CGROUP).
    /// Returns the sync socket too, on which the caller sends GK_MSG_SAVED
    /// once the state names the child (until then the child dies with this
    /// process), and which it closes.
    /// `ahead`: its network namespace is closed by the caller.
    /// `savedEarly`: GK_MSG_SAVED goes right after GO (GK_SPAWN_SAVED_EARLY),
    /// and the caller sends it no more.
    private func spawn(id: String, plan: LaunchPlan, fifoFD: Int32, stdio: [Int32], choices: StartChoices,
                       ahead: StartAhead, bundle: String, annotations: [String: String]?, cgroupDirectory: String?,
                       savedEarly: Bool,
                       beforeGo: @escaping (pid_t) throws(GockerError) -> [Int32],
                       afterGo: @escaping (pid_t) throws(GockerError) -> Void) throws(GockerError) -> (pid_t, terminal: Int32, sync: Int32) {
        let cgroupFD = cgroupDirectory.map { Glibc.open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } ?? -1
        defer { if cgroupFD >= 0 { Sys.close(cgroupFD) } }
        let hook = GoHook(beforeGo, after: afterGo)
        let arena = CArena()
        var heldFDs: [Int32] = []
        defer { for fd in heldFDs { Sys.close(fd) } }
        var joins: [gk_ns_join] = []
        for j in plan.joins {
            let fd = try Self.openNamespace(j.path, type: j.type)
            heldFDs.append(fd)
            joins.append(gk_ns_join(fd: fd, nstype: j.type))
        }
        let pidNamespace = try plan.pidNamespacePath.map { p throws(GockerError) in
            try Self.openNamespace(p, type: GK_CLONE_NEWPID)
        }
        if let pidNamespace { heldFDs.append(pidNamespace) }
        // A volume the child may seed is locked until the child is READY:
        // two containers starting with one new volume seed it once, and
        // neither sees it half-filled.
        // Each volume once (one container may mount it twice), in one
        // order for every gocker (two containers naming the same volumes in
        // other orders never wait for each other in a circle).
        var volumes: [[UInt64]: Int32] = [:]
        for m in plan.mounts where m.options.copyUp && m.options.isBind {
            let fd = Glibc.open(m.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            heldFDs.append(fd)
            var st = stat()
            if fstat(fd, &st) == 0 { volumes[[UInt64(st.st_dev), UInt64(st.st_ino)]] = fd }
        }
        for key in volumes.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) { _ = flock(volumes[key]!, LOCK_EX) }
        let mounts: [gk_mount] = plan.mounts.map { m in
            gk_mount(
                kind: Int32(m.options.isBind ? GK_MOUNT_BIND.rawValue : GK_MOUNT_FS.rawValue),
                source: arena.string(m.source), target: arena.string(m.destination),
                fstype: arena.string(m.type),
                data: m.options.data.isEmpty ? nil : arena.string(m.options.data.joined(by: ",")),
                flags: m.options.flags, propagation: m.options.propagation,
                recursive: m.options.recursive ? 1 : 0, rec_flags: m.options.recursiveFlags,
                copy_up: m.options.copyUp ? 1 : 0, after_go: m.afterGo ? 1 : 0)
        }
        let devices: [gk_device] = plan.devices.map { d in
            let type: mode_t = d.type == "b" ? S_IFBLK : (d.type == "p" ? S_IFIFO : S_IFCHR)
            return gk_device(
                path: arena.string(d.path), mode: type | mode_t(d.fileMode ?? 0o666),
                major: UInt32(truncatingIfNeeded: d.major), minor: UInt32(truncatingIfNeeded: d.minor),
                uid: d.uid ?? 0, gid: d.gid ?? 0)
        }
        var spec = plan.process.cSpawn(arena: arena, stdio: stdio)
        if let listener = try plan.seccomp?.attach(to: &spec, arena: arena) { heldFDs.append(listener) }
        var cloneFlags = plan.cloneFlags
        // Never made by clone (see StartChoices.Network).
        cloneFlags &= ~GK_CLONE_NEWNET
        switch choices.network {
        case .none:
            break
        case .joinMadeAhead:
            // Waited for only now, when it has had the longest to be made.
            if let fd = ahead.madeNetworkNamespace {
                joins.append(gk_ns_join(fd: fd, nstype: GK_CLONE_NEWNET))
            } else if let a = ahead.attachments.first {
                // A namespace of its own would have no network.
                throw GockerError(.system, "connect to network \(a.network)",
                                  cause: SystemCallError("netlink", errno: ahead.networkFailure ?? EINVAL))
            } else {
                // Making it failed: the child tries.
                spec.flags |= UInt32(GK_SPAWN_UNSHARE_NET | GK_SPAWN_LOOPBACK_UP)
            }
        case .childUnshares:
            spec.flags |= UInt32(GK_SPAWN_UNSHARE_NET | GK_SPAWN_LOOPBACK_UP)
        case .madeForGo:
            spec.flags |= UInt32(GK_SPAWN_NET_AT_GO)
        }
        if plan.devSymlinks { spec.flags |= UInt32(GK_SPAWN_DEV_SYMLINKS) }
        switch plan.mountNamespace {
        case .own: break
        case .joined: spec.flags |= UInt32(GK_SPAWN_JOINED_ROOT)
        case .host: spec.flags |= UInt32(GK_SPAWN_CHROOT)
        }
        if let pidNamespace {
            spec.flags |= UInt32(GK_SPAWN_JOIN_PID)
            spec.pid_ns_fd = pidNamespace
        }
        switch plan.userNamespace {
        case .none: break
        case .own:
            spec.flags |= UInt32(GK_SPAWN_USERNS)
            spec.uid_map = arena.string(LaunchPlan.mapText(plan.uidMappings))
            spec.gid_map = arena.string(LaunchPlan.mapText(plan.gidMappings))
            if let tree = try Self.idmappedRoot(plan) {
                heldFDs.append(tree)
                spec.flags |= UInt32(GK_SPAWN_ROOTFS_TREE)
                spec.rootfs_tree = tree
            }
        case .joined:
            // Made by the child once it is in the user namespace, which
            // then owns them (the PID namespace is never new here).
            spec.flags |= UInt32(GK_SPAWN_USERNS)
        }
        if Rootless.active { spec.flags |= UInt32(GK_SPAWN_BIND_DEVICES) }
        if Rootless.setgroupsDenied { spec.flags |= UInt32(GK_SPAWN_KEEP_GROUPS) }
        spec.sysctl_paths = arena.stringArray(plan.sysctls.map(\.path))
        spec.sysctl_values = arena.stringArray(plan.sysctls.map(\.value))
        spec.nsysctl = plan.sysctls.count
        if plan.rootReadonly { spec.flags |= UInt32(GK_SPAWN_ROOT_READONLY) }
        if plan.initProcess { spec.flags |= UInt32(GK_SPAWN_INIT) }
        if choices.lateGo { spec.flags |= UInt32(GK_SPAWN_LATE_GO) }
        spec.clone_flags = UInt(cloneFlags)
        if plan.cloneFlags & GK_CLONE_NEWCGROUP != 0 {
            // Unshared by the child once it is in its groups, its root.
            spec.clone_flags &= ~UInt(GK_CLONE_NEWCGROUP)
            spec.flags |= UInt32(GK_SPAWN_CGROUP_NS)
        }
        if plan.userNamespace == .joined {
            // Unshared by the child once it is in the user namespace (which
            // then owns them), after GO (so in its groups already).
            spec.unshare_flags = spec.clone_flags
            spec.clone_flags = 0
            if spec.flags & UInt32(GK_SPAWN_CGROUP_NS) != 0 {
                spec.flags &= ~UInt32(GK_SPAWN_CGROUP_NS)
                spec.unshare_flags |= UInt(GK_CLONE_NEWCGROUP)
            }
        }
        spec.joins = arena.array(joins)
        spec.njoins = joins.count
        spec.hostname = arena.optionalString(plan.hostname)
        spec.root_propagation = plan.rootPropagation
        spec.rootfs = arena.string(plan.rootfs)
        spec.overlay_data = arena.optionalString(plan.overlay)
        spec.mounts = arena.array(mounts)
        spec.nmounts = mounts.count
        spec.devices = arena.array(devices)
        spec.ndevices = devices.count
        spec.masked_paths = arena.stringArray(plan.maskedPaths)
        spec.nmasked = plan.maskedPaths.count
        spec.readonly_paths = arena.stringArray(plan.readonlyPaths)
        spec.nreadonly = plan.readonlyPaths.count
        spec.exec_fifo_fd = fifoFD
        spec.cgroup_fd = cgroupFD
        spec.cgroup_joined = cgroupFD >= 0 ? hook.joined : nil
        let sync = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        sync.initialize(to: -1)
        defer { sync.deallocate() }
        spec.saved_sync = sync
        if savedEarly { spec.flags |= UInt32(GK_SPAWN_SAVED_EARLY) }
        // Hooks: the runtime's at GK_MSG_HOOKS, the container's own in the
        // child (see HookRunner).
        var hooksCtx: Unmanaged<HookRunner.Parent>?
        if let hooks = plan.hooks {
            if hooks.runtimeHooks {
                let parent = HookRunner.Parent(hooks, id: id, bundle: bundle, annotations: annotations)
                hooksCtx = Unmanaged.passRetained(parent)
                spec.flags |= UInt32(GK_SPAWN_HOOKS)
                spec.run_hooks = HookRunner.Parent.call
                spec.hooks_ctx = hooksCtx!.toOpaque()
            }
            for (kind, status) in [("createContainer", ContainerStatus.creating), ("startContainer", .created)]
            where !hooks[kind].isEmpty {
                let set = HookRunner.cSet(kind, hooks[kind], template: HookRunner.stateTemplate(
                    id: id, status: status, bundle: bundle, annotations: annotations), arena: arena)
                if kind == "createContainer" { spec.create_hooks = set } else { spec.start_hooks = set }
            }
            // Its hooks fork and exec before the filter: never loaded early.
            if !hooks["startContainer"].isEmpty { spec.seccomp_early = 0 }
        }
        // The child may read the arena until its execve, past this
        // function (see gk_spawn's `release`): it holds it until then.
        spec.release = { ctx in Unmanaged<CArena>.fromOpaque(ctx!).release() }
        spec.release_ctx = Unmanaged.passRetained(arena).toOpaque()
        var pid: pid_t = 0
        var terminal: Int32 = -1
        var msg = gk_msg()
        let ctx = Unmanaged.passRetained(hook)
        spec.go_sent = GoHook.callGoSent
        spec.go_sent_ctx = ctx.toOpaque()
        let r = gk_spawn(&spec, GoHook.call, ctx.toOpaque(), &pid, &terminal, &msg)
        ctx.release()
        let hooksError = hooksCtx?.takeRetainedValue().error
        withExtendedLifetime(arena) {}
        // The child's own failure first: a hook's after GO may have failed
        // after it (gk_spawn fills `msg` only with a record the child sent).
        if r < 0 && msg.type == Int32(GK_MSG_ERROR.rawValue) && hooksError == nil {
            throw Self.childFailure(msg, doing: "create container \(id)")
        }
        if let error = hook.error { throw error }
        if let hooksError { throw GockerError(hooksError.code, "create container \(id): \(hooksError.message)") }
        if r < 0 {
            throw GockerError(.system, "create container \(id)", cause: SystemCallError("clone", errno: -r))
        }
        return (pid, terminal, sync.pointee)
    }

    /// With a user namespace of its own, the root filesystem as the
    /// container's root can use it: as it is when its owner is an id the
    /// maps give (chowned to the range, as runc expects), else a detached
    /// mount of it idmapped through the maps (files owned by host root
    /// show as the container's root); nil for the first. An error when
    /// the kernel or the filesystem cannot idmap.
    static func idmappedRoot(_ plan: LaunchPlan) throws(GockerError) -> Int32? {
        var st = stat()
        guard stat(plan.rootfs, &st) == 0 else {
            throw GockerError(.invalidConfig, "root filesystem", cause: SystemCallError("stat", path: plan.rootfs, errno: errno))
        }
        if LaunchPlan.hostMapped(st.st_uid, plan.uidMappings) && LaunchPlan.hostMapped(st.st_gid, plan.gidMappings) {
            return nil
        }
        var call: UnsafePointer<CChar>?
        let fd = gk_idmapped_tree(plan.rootfs, LaunchPlan.mapText(plan.uidMappings), LaunchPlan.mapText(plan.gidMappings), &call)
        guard fd >= 0 else {
            let what = call.map { String(cString: $0) } ?? "idmap"
            throw GockerError(.invalidConfig,
                              "root filesystem \(plan.rootfs) is owned by \(st.st_uid):\(st.st_gid), which the user namespace's maps do not cover, and its mount cannot be idmapped here (\(what): \(errnoText(-fd))): chown it into the mapped range")
        }
        return fd
    }

    /// The namespace file at `path`, open, checked to be of `type` (a
    /// CLONE_NEW* flag).
    static func openNamespace(_ path: String, type: Int32) throws(GockerError) -> Int32 {
        let name = LaunchPlan.namespaceFlags.first { $0.value == type }?.key ?? "\(type)"
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY) } catch {
            throw GockerError(.invalidConfig, "open \(name) namespace", cause: error)
        }
        let found = gk_ns_type(fd)
        guard found == type else {
            Sys.close(fd)
            let what = found < 0 ? "is not a namespace" : "is not a \(name) namespace"
            throw GockerError(.invalidConfig, "namespace path \(path) \(what)")
        }
        return fd
    }

    static func text(of msg: gk_msg) -> String {
        withUnsafeBytes(of: msg.text) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// What a child's error record means: a command that could not be
    /// exec'd (127 not found, 126 not executable) or a failed set-up stage.
    static func childFailure(_ msg: gk_msg, doing what: String) -> GockerError {
        let text = Self.text(of: msg)
        let e = msg.err
        if msg.stage == Int32(GK_STAGE_EXEC.rawValue) && text.hasPrefix("exec ") {
            let command = text.dropFirst("exec ".count)
            if e == ENOENT || e == ENOTDIR {
                let why = command.contains("/") ? "no such file or directory" : "executable file not found in $PATH"
                return GockerError(.commandNotFound, "exec: \"\(command)\": \(why)")
            }
            return GockerError(.commandNotExecutable, "exec: \"\(command)\": \(errnoText(e))")
        }
        // A missing user or group says so itself, as does a refusal (errno
        // 0: a mount target gocker will not mount on); other failures add errno.
        let selfExplained = e == 0 || (msg.stage == Int32(GK_STAGE_USER.rawValue) && e == ENOENT)
        let detail = selfExplained ? text : "\(text): \(errnoText(e))"
        return GockerError(.containerSetup, "\(what): \(detail)")
    }

    // MARK: start

    /// Lets a created container run its command. Returns once the command
    /// has been exec'd, or throws with the reason it could not be.
    @discardableResult
    public func start(id: String) throws(GockerError) -> RuntimeState {
        let lock = try store.lock(id)
        defer { lock.release() }
        let state = try store.load(id)
        let status = self.status(of: state)
        // runc's words: an init that died after create answered (killed,
        // or failed on its way to the exec FIFO) makes the container
        // stopped, and start says so.
        switch status {
        case .created: break
        case .stopped: throw GockerError(.invalidState, "cannot start a container that has stopped")
        case .running: throw GockerError(.invalidState, "cannot start an already running container")
        default: throw GockerError(.invalidState, "cannot start a container in the \(status.rawValue) state")
        }
        try begin(state)
        poststart(state)
        return state
    }

    /// The poststart hooks of the container just started: a failure is a
    /// warning, the container runs on (the runtime-spec's rule).
    func poststart(_ s: RuntimeState) {
        guard let hooks = s.hooks?["poststart"], !hooks.isEmpty else { return }
        HookRunner.runWarning("poststart", hooks, state: HookRunner.state(
            id: s.id, status: .running, pid: s.pid, bundle: s.bundle, annotations: s.annotations))
    }

    /// The poststop hooks of the container just removed: a failure is a
    /// warning, it stays removed.
    func poststop(_ s: RuntimeState) {
        guard let hooks = s.hooks?["poststop"], !hooks.isEmpty else { return }
        HookRunner.runWarning("poststop", hooks, state: HookRunner.state(
            id: s.id, status: .stopped, pid: s.pid, bundle: s.bundle, annotations: s.annotations))
    }

    /// Opens the exec FIFO of the created container `state` (locked by the
    /// caller) and waits for its exec. The FIFO is gone afterwards, which
    /// is what makes the container "running" from then on (`status(of:)`):
    /// its state file is not written again.
    /// `opened`: the FIFO's read end, opened already (see EarlyStart),
    /// which this closes.
    private func begin(_ state: RuntimeState, opened: Int32 = -1) throws(GockerError) {
        let id = state.id
        let fifo = store.fifoPath(id)
        var msg = gk_msg()
        let r = opened >= 0 ? gk_start_wait_fd(opened, state.pid, &msg) : gk_start_wait(fifo, state.pid, &msg)
        _ = unlink(fifo)
        if r == -EIO { throw Self.childFailure(msg, doing: "start container \(id)") }
        if r == -ESRCH {
            // Died while start waited for it (runc's words).
            throw GockerError(.invalidState, "container process is already dead")
        }
        if r < 0 {
            throw GockerError(.system, "start container \(id)", cause: SystemCallError("open", path: fifo, errno: -r))
        }
    }

    // MARK: state

    /// The container's status now, from its recorded state and its process.
    public func status(of state: RuntimeState) -> ContainerStatus {
        guard state.pid > 0, UInt64(gk_process_start_time(state.pid)) == state.pidStartTime else { return .stopped }
        if Sys.exists(store.fifoPath(state.id)) { return .created }
        if let r = state.cgroups, r.controllers.contains("freezer"),
           driver(for: r).stat(r, controller: "freezer", "freezer.frozen") == 1 {
            return .paused
        }
        return .running
    }

    public func state(id: String) throws(GockerError) -> OCIState {
        let s = try store.load(id)
        let status = self.status(of: s)
        return OCIState(id: s.id, status: status, pid: status == .stopped ? 0 : s.pid, bundle: s.bundle,
                        rootfs: s.rootfs, created: s.created, owner: "", annotations: s.annotations)
    }

    // MARK: update

    /// runc's `update`: new limits for a container that has not stopped,
    /// written into its groups, then kept in its state (`resources`: what
    /// it had, the config's before the first update, with the new members
    /// laid over), replaced atomically under the container's lock, for a
    /// later reader to see.
    public func update(id: String, resources: Spec.Resources) throws(GockerError) {
        let lock = try store.lock(id)
        defer { lock.release() }
        var s = try store.load(id)
        guard status(of: s) != .stopped else { throw GockerError(.invalidState, "container not running") }
        guard let record = s.cgroups else {
            throw GockerError(.invalidState, "container \(id) has no cgroups to update")
        }
        try driver(for: record).update(record, resources: resources)
        let before = s.resources
            ?? (try? JSON.readFile(Spec.self, path: "\(s.bundle)/config.json"))?.linux?.resources
            ?? Spec.Resources()
        s.resources = Self.updated(before, with: resources)
        try store.save(s)
    }

    /// `resources` laid over `before`, member by member: an object's
    /// members one by one (a new memory limit keeps the reservation), any
    /// other value whole. Device rules stay as they were: `update` does not
    /// change them.
    static func updated(_ before: Spec.Resources, with resources: Spec.Resources) -> Spec.Resources {
        var out = before
        for (key, value) in resources.unmodeled where key != "devices" {
            if case .object(let new) = value, case .object(var old)? = out.unmodeled[key] {
                for (k, v) in new { old[k] = v }
                out.unmodeled[key] = .object(old)
            } else {
                out.unmodeled[key] = value
            }
        }
        return out
    }

    // MARK: kill

    /// Sends `signal` to the container's first process, or with `all` to
    /// every process of the container.
    /// runc's words and ways, which containerd's shim matches on: a
    /// stopped container's process is "not running" (an error), and
    /// `--all` signals whatever is left, which may be nothing (no error:
    /// the shim's `kill --all ID 9` after the container ended).
    public func kill(id: String, signal: Int32, all: Bool = false) throws(GockerError) {
        let s = try store.load(id)
        guard status(of: s) != .stopped else {
            guard all else { throw GockerError(.invalidState, "container not running") }
            // What is left in its groups (its pid may be another's now).
            if let record = s.cgroups {
                for pid in driver(for: record).processes(record) { _ = Glibc.kill(pid, signal) }
            }
            return
        }
        if all && signal == SIGKILL, let record = s.cgroups {
            return driver(for: record).killAll(record)
        }
        let targets = all ? processes(of: s) : [s.pid]
        for pid in targets {
            if Glibc.kill(pid, signal) < 0 && errno != ESRCH {
                throw GockerError(.system, "kill container \(id)", cause: SystemCallError("kill", data: "\(pid)", errno: errno))
            }
        }
        if signal == SIGKILL { thawIfPaused(s) }
    }

    /// The container's processes on the host: those in its cgroups, or
    /// without cgroups those in its PID namespace.
    public func processes(of s: RuntimeState) -> [pid_t] {
        if let record = s.cgroups {
            let procs = driver(for: record).processes(record)
            return procs.isEmpty && status(of: s) != .stopped ? [s.pid] : procs
        }
        guard let ns = Self.pidNamespace(of: s.pid) else { return [s.pid] }
        if ns == Self.pidNamespace(of: getpid()) { return [s.pid] }
        var out: [pid_t] = []
        for name in (try? Sys.listDirectory("/proc")) ?? [] {
            guard let pid = pid_t(name) else { continue }
            if Self.pidNamespace(of: pid) == ns { out.append(pid) }
        }
        return out
    }

    static func pidNamespace(of pid: pid_t) -> String? {
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/\(pid)/ns/pid", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: delete

    /// Removes the container's state. A created container is killed first;
    /// a running one only with `force`.
    public func delete(id: String, force: Bool = false) throws(GockerError) {
        let lock: StateStore.Lock
        do { lock = try store.lock(id) } catch where error.code == .notFound && force {
            return
        }
        defer { lock.release() }
        guard let s = try? store.load(id) else {
            // A directory without a state file: a create that died half-way.
            try store.remove(id)
            return
        }
        let status = self.status(of: s)
        if (status == .running || status == .paused) && !force {
            throw GockerError(.invalidState, "cannot delete container \(id) that is not stopped: \(status.rawValue)")
        }
        if status != .stopped {
            if let record = s.cgroups { driver(for: record).killAll(record) }
            for pid in processes(of: s) { _ = Glibc.kill(pid, SIGKILL) }
            thawIfPaused(s)
            waitUntilGone(s)
        }
        if let record = s.cgroups {
            let driver = driver(for: record)
            driver.killAll(record)
            try driver.destroy(record)
        }
        try store.remove(id)
        poststop(s)
    }

    /// The end of a foreground container whose first process was reaped:
    /// what it left in its groups killed, the groups and the state removed,
    /// from the state in hand. `emptied`: no process of the container is
    /// left (the first one was its PID namespace's init), so its groups
    /// are not searched for any, unless one is found busy.
    func remove(_ s: RuntimeState, emptied: Bool = false) throws(GockerError) {
        let lock = try store.lock(s.id)
        defer { lock.release() }
        if let record = s.cgroups {
            let driver = driver(for: record)
            if !emptied { driver.killAll(record) }
            do {
                try driver.destroy(record, waiting: !emptied)
            } catch where emptied {
                // A process put in its groups from outside its namespace.
                driver.killAll(record)
                try driver.destroy(record)
            }
        }
        try store.remove(s.id)
        poststop(s)
    }

    /// Waits (up to 10 s) until the container's first process is gone,
    /// reaping it if it is our child.
    func waitUntilGone(_ s: RuntimeState) {
        for _ in 0..<10_000 {
            var status: Int32 = 0
            _ = waitpid(s.pid, &status, WNOHANG)
            if UInt64(gk_process_start_time(s.pid)) != s.pidStartTime { return }
            var ts = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&ts, nil)
        }
    }

    // MARK: run in the foreground

    /// How a foreground container's terminal is wired, when it has one.
    public struct TerminalIO: Sendable {
        /// Copied to the container's terminal (nil: nothing is).
        public var input: Int32?
        public var output: Int32 = 1
        /// Whose window size the container's terminal takes, also on SIGWINCH.
        public var windowSize: Int32 = 1
        /// Put this terminal in raw mode while the container runs.
        public var rawMode: Int32?
        /// Send the pty master to this unix socket instead (runc's
        /// --console-socket); the caller only waits.
        public var consoleSocket: String?

        public init(input: Int32?, rawMode: Int32?) {
            self.input = input
            self.rawMode = rawMode
        }

        /// docker's `-t`, on gocker's own stdio: input, and raw mode when
        /// that is a terminal, only with `-i` as well.
        public static func standard(interactive: Bool) -> TerminalIO {
            let input: Int32? = interactive ? 0 : nil
            var io = TerminalIO(input: input, rawMode: input != nil && isatty(0) == 1 ? 0 : nil)
            io.windowSize = isatty(1) == 1 ? 1 : 0
            return io
        }
    }

    /// A start that follows its create at once, in a process that outlives
    /// the container (a foreground `run` with no terminal, no console socket
    /// and no pid file):
    /// `create` opens the exec FIFO's read end before the clone, so that the
    /// child's open of the write end does not wait for `start`, and sends
    /// GK_MSG_SAVED with GO (GK_SPAWN_SAVED_EARLY), so that the child finds
    /// it at READY: from READY the child goes on to its execve at once, while
    /// this process takes the container's lock and waits on the FIFO.
    final class EarlyStart {
        /// The FIFO's read end, once `create` opened it; `begin` closes it.
        var fifo: Int32 = -1
        deinit { if fifo >= 0 { Sys.close(fifo) } }

        /// The read end, now the taker's to close (nil: not opened).
        func takeFifo() -> Int32? {
            defer { fifo = -1 }
            return fifo >= 0 ? fifo : nil
        }
    }

    /// How a foreground container ended.
    public struct Exit: Sendable, Equatable {
        /// As a shell reports it: the exit code, or 128+N for signal N.
        public var status: Int32
        /// Killed by its memory limit.
        public var oomKilled: Bool
    }

    /// create + start + wait: how the container ended. Signals sent to
    /// gocker go to the container. The state is deleted when it ends.
    /// With `log`, the container's stdout and stderr pass through gocker,
    /// which also keeps them in that log file (docker's json-file lines,
    /// rotated past `maxSize` bytes).
    /// With `checkOOM` false (`oci run`, which has no use for it) the
    /// memory controller is not asked whether anything was OOM-killed.
    public func runForeground(id: String, bundle: String, pidFile: String? = nil,
                              terminal io: TerminalIO? = nil,
                              log: (path: String, maxSize: UInt64)? = nil,
                              checkOOM: Bool = true, spec: Spec? = nil,
                              extras: LaunchExtras? = nil, ahead: StartAhead? = nil) throws(GockerError) -> Exit {
        _ = gk_forward_block()
        // Pipes for the container's stdout and stderr when they are logged.
        var pipes: [Int32] = []
        if log != nil && io == nil {
            for _ in 0..<2 {
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else {
                    for fd in pipes { Sys.close(fd) }
                    throw GockerError(.system, "create output pipes", cause: SystemCallError("pipe", errno: errno))
                }
                for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                pipes += fds
            }
        }
        let stdio: [Int32] = pipes.isEmpty ? [-1, -1, -1] : [-1, pipes[1], pipes[3]]
        let created: (RuntimeState, terminal: Int32?, ownPIDNamespace: Bool)
        // (A pid file is written after READY, and the terminal sent to a
        // console socket then: both before the start, as before.)
        let early = pidFile == nil && io?.consoleSocket == nil ? EarlyStart() : nil
        do {
            created = try create(id: id, bundle: bundle, spec: spec, extras: extras, pidFile: pidFile,
                                 allowTerminal: io != nil, consoleSocket: io?.consoleSocket, stdio: stdio, ahead: ahead,
                                 early: early)
        } catch {
            for fd in pipes { Sys.close(fd) }
            throw error
        }
        let (state, terminal, ownPIDNamespace) = created
        if !pipes.isEmpty {
            Sys.close(pipes[1])
            Sys.close(pipes[3])
        }
        defer { if let terminal { Sys.close(terminal) } }
        do throws(GockerError) {
            // The state just made is started as it is, not read back.
            let lock = try store.lock(id)
            defer { lock.release() }
            try begin(state, opened: early?.takeFifo() ?? -1)
        } catch {
            if !pipes.isEmpty {
                Sys.close(pipes[0])
                Sys.close(pipes[2])
            }
            try? delete(id: id, force: true)
            throw error
        }
        gk_mark(GK_MARK_STARTED)
        poststart(state)
        let status: Int32
        if let log, !pipes.isEmpty {
            // gk_wait_logged closes the read ends.
            status = gk_wait_logged(state.pid, pipes[0], pipes[2], 1, 2, log.path, log.maxSize)
        } else {
            status = Self.waitAttached(pid: state.pid, terminal: terminal, io: io, log: log)
        }
        gk_mark(GK_MARK_EXITED)
        let oom = checkOOM
            && state.cgroups.map { (driver(for: $0).stat($0, controller: "memory", "memory.oom_kill") ?? 0) > 0 } ?? false
        // Reaped, the first process of a PID namespace of its own has taken
        // every other process of the container with it.
        try? remove(state, emptied: ownPIDNamespace && status >= 0)
        if status < 0 {
            throw GockerError(.system, "wait for container \(id)", cause: SystemCallError("waitpid", errno: -status))
        }
        return Exit(status: Self.exitCode(status), oomKilled: oom)
    }

    /// Waits for our child `pid` in the foreground: its terminal relayed
    /// to `io`, or else signals sent to gocker forwarded to it. Returns the
    /// wait status or -errno.
    /// With `log`, a terminal's output is also kept in that log.
    public static func waitAttached(pid: pid_t, terminal: Int32?, io: TerminalIO?,
                                    log: (path: String, maxSize: UInt64)? = nil) -> Int32 {
        guard let terminal, let io else { return gk_wait_forward(pid) }
        _ = gk_copy_winsize(io.windowSize, terminal)
        var saved = [UInt8](repeating: 0, count: gk_termios_size())
        let raw = io.rawMode.map { fd in gk_term_raw(fd, &saved) == 0 } ?? false
        let status = gk_relay_wait(pid, terminal, io.input ?? -1, io.output, io.windowSize, log?.path, log?.maxSize ?? 0)
        if raw, let fd = io.rawMode { _ = gk_term_restore(fd, saved) }
        return status
    }

    /// A wait status as the shell reports it: the exit code, or 128+N for a signal.
    public static func exitCode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig == 0 { return (status >> 8) & 0xff }
        return 128 + sig
    }

    static func realPath(_ path: String, what: String) throws(GockerError) -> String {
        guard let p = realpath(path, nil) else {
            throw GockerError(.notFound, "\(what) \(path)", cause: SystemCallError("realpath", path: path, errno: errno))
        }
        defer { free(p) }
        return String(cString: p)
    }
}
