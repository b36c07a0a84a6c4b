import CGockerCore
import Glibc
import GockerCore

/// OCI hooks (runtime-spec config.md "POSIX-platform Hooks", runtime.md
/// "Lifecycle"): programs run at points of a container's life, each with
/// the container's state (JSON) on its stdin.
///
/// - prestart, createRuntime: by `create`, in gocker's namespaces, once the
///   first process has its namespaces and its root filesystem, before its
///   pivot_root (the C core stops there: GK_SPAWN_HOOKS); a failure fails
///   create.
/// - createContainer: by the first process itself at the same point, in
///   the container's namespaces (csrc/hooks.c); a failure fails create.
/// - startContainer: by the first process once `start` opened the exec
///   FIFO, before the command (its path is the container's); a failure
///   fails start and the container stops.
/// - poststart: by `start` once the command runs; poststop: by `delete`
///   once the container is gone. A failure there is a warning: the spec
///   lets neither undo what happened.
enum HookRunner {
    /// Checks every hook of the config: an absolute path, a positive
    /// timeout, no NUL byte anywhere (it could not reach execve).
    static func validate(_ hooks: Spec.Hooks) throws(GockerError) {
        for kind in Spec.Hooks.kinds {
            for h in hooks[kind] {
                let what = "hooks.\(kind): hook \"\(h.path)\""
                guard h.path.hasPrefix("/") else { throw GockerError(.invalidConfig, "\(what): path is not absolute") }
                if let t = h.timeout, t <= 0 {
                    throw GockerError(.invalidConfig, "\(what): timeout \(t) is not a positive number of seconds")
                }
                if let t = h.timeout, t > Int(Int32.max) {
                    throw GockerError(.invalidConfig, "\(what): timeout \(t) is too large")
                }
                if ([h.path] + (h.args ?? []) + (h.env ?? [])).contains(where: { $0.utf8.contains(0) }) {
                    throw GockerError(.invalidConfig, "\(what): a NUL byte in its path, args or env")
                }
            }
        }
    }

    /// The argv a hook is run with: its args (args[0] is argv[0]), or its
    /// path alone.
    static func argv(_ h: Spec.Hook) -> [String] {
        if let args = h.args, !args.isEmpty { return args }
        return [h.path]
    }

    /// The runtime-spec's state a hook reads.
    static func state(id: String, status: ContainerStatus, pid: Int32, bundle: String,
                      annotations: [String: String]?) -> [UInt8] {
        OCIState(id: id, status: status, pid: pid, bundle: bundle, owner: nil, annotations: annotations).jsonBytes
    }

    /// `state` with its pid left as GK_SECCOMP_PID_WIDTH spaces, for the
    /// first process to fill in (it alone knows it then), and where.
    static func stateTemplate(id: String, status: ContainerStatus, bundle: String,
                              annotations: [String: String]?) -> (bytes: [UInt8], pidAt: Int) {
        var bytes = state(id: id, status: status, pid: SeccompProgram.pidMarker, bundle: bundle, annotations: annotations)
        // (It comes before the annotations: the first one is the state's.)
        guard let at = SeccompProgram.blankPids(&bytes).first else { preconditionFailure("the state has no pid") }
        return (bytes, at)
    }

    /// Runs the hooks of `kind` in order, each to its end; the first that
    /// fails (a non-zero status, a signal, its timeout) is thrown.
    static func run(_ kind: String, _ hooks: [Spec.Hook], state: [UInt8]) throws(GockerError) {
        for h in hooks { try run(kind, h, state: state) }
    }

    /// Runs the hooks of `kind`, each whatever the one before did; a
    /// failure is a warning on stderr (poststart, poststop).
    static func runWarning(_ kind: String, _ hooks: [Spec.Hook], state: [UInt8]) {
        for h in hooks {
            do { try run(kind, h, state: state) } catch { Runtime.warn(error.description) }
        }
    }

    static func run(_ kind: String, _ h: Spec.Hook, state: [UInt8]) throws(GockerError) {
        let name = "\(kind) hook \(h.path)"
        func fail(_ call: String, _ e: Int32) -> GockerError {
            GockerError(.containerSetup, name, cause: SystemCallError(call, errno: e))
        }
        if access(h.path, X_OK) != 0 {
            throw GockerError(.containerSetup, "\(name): \(errnoText(errno))")
        }
        // Its stdin is a socket: a hook that exits before it read the state
        // raises no SIGPIPE here.
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw fail("socketpair", errno)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, sv[1], 0)
        posix_spawn_file_actions_adddup2(&actions, 2, 1)  // what it prints goes to stderr
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Not gocker's blocked signals (`run` forwards them) nor ignored ones.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        // A process group of its own: a timeout kills what it started too.
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var cargs: [UnsafeMutablePointer<CChar>?] = argv(h).map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = (h.env ?? []).map { strdup($0) } + [nil]
        defer {
            for p in cargs { free(p) }
            for p in cenv { free(p) }
        }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, h.path, &actions, &attr, &cargs, &cenv)
        Sys.close(sv[1])
        guard r == 0 else {
            Sys.close(sv[0])
            throw GockerError(.containerSetup, "\(name): \(errnoText(r))")
        }

        var input: Int32 = sv[0]
        var sent = 0
        let start = Self.now()
        let limit = h.timeout.map { UInt64($0) * 1_000_000_000 }
        var step = 50_000  // ns, doubling up to 5 ms
        var status: Int32 = 0
        while true {
            if input >= 0 {
                let n = sent < state.count
                    ? state.withUnsafeBytes { send(input, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                    : 0
                if n > 0 { sent += n }
                if sent == state.count || (n < 0 && errno != EAGAIN && errno != EINTR) {
                    Sys.close(input)
                    input = -1
                }
            }
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR {
                let e = errno
                if input >= 0 { Sys.close(input) }
                throw fail("waitpid", e)
            }
            if let limit, Self.now() - start >= limit {
                Glibc.kill(-pid, SIGKILL)
                Glibc.kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                if input >= 0 { Sys.close(input) }
                throw GockerError(.containerSetup, "\(name): timed out after \(h.timeout!) s")
            }
            var ts = timespec(tv_sec: 0, tv_nsec: step)
            nanosleep(&ts, nil)
            if step < 5_000_000 { step *= 2 }
        }
        if input >= 0 { Sys.close(input) }
        let signal = status & 0x7f
        if signal != 0 { throw GockerError(.containerSetup, "\(name): killed by signal \(signal)") }
        let code = (status >> 8) & 0xff
        if code != 0 { throw GockerError(.containerSetup, "\(name): exited with status \(code)") }
    }

    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// The kinds the first process runs itself, as the C core takes them.
    static func cSet(_ kind: String, _ hooks: [Spec.Hook], template: (bytes: [UInt8], pidAt: Int),
                     arena: CArena) -> gk_hook_set {
        var set = gk_hook_set()
        guard !hooks.isEmpty else { return set }
        let list: [gk_hook] = hooks.map { h in
            gk_hook(kind: arena.string(kind), path: arena.string(h.path), argv: arena.stringArray(argv(h)),
                    envp: arena.stringArray(h.env ?? []), timeout: Int32(h.timeout ?? 0))
        }
        let text = arena.array(of: CChar.self, count: template.bytes.count + 1)
        for (i, b) in template.bytes.enumerated() { text[i] = CChar(bitPattern: b) }
        text[template.bytes.count] = 0
        set.hooks = arena.array(list)
        set.nhooks = list.count
        set.state = UnsafePointer(text)
        set.state_len = template.bytes.count
        set.pid_at = template.pidAt
        return set
    }

    /// The C callback of GK_MSG_HOOKS: prestart then createRuntime, run in
    /// the parent; `ctx` is an unretained Parent.
    final class Parent {
        let hooks: Spec.Hooks
        let id: String
        let bundle: String
        let annotations: [String: String]?
        var error: GockerError?

        init(_ hooks: Spec.Hooks, id: String, bundle: String, annotations: [String: String]?) {
            self.hooks = hooks
            self.id = id
            self.bundle = bundle
            self.annotations = annotations
        }

        static let call: gk_hooks_fn = { pid, ctx in
            let me = Unmanaged<Parent>.fromOpaque(ctx!).takeUnretainedValue()
            let state = HookRunner.state(id: me.id, status: .creating, pid: pid, bundle: me.bundle, annotations: me.annotations)
            do throws(GockerError) {
                try HookRunner.run("prestart", me.hooks["prestart"], state: state)
                try HookRunner.run("createRuntime", me.hooks["createRuntime"], state: state)
            } catch {
                me.error = error
                return -EIO
            }
            return 0
        }
    }
}

extension Spec.Hooks {
    /// Those the runtime runs itself during create (prestart, createRuntime).
    var runtimeHooks: Bool { !self["prestart"].isEmpty || !self["createRuntime"].isEmpty }

    /// Those run while the container is created, which need the first
    /// process to know its host pid before pivot_root.
    var createHooks: Bool { runtimeHooks || !self["createContainer"].isEmpty }

    /// What `start` and `delete` run later, kept in the container's state.
    var afterCreate: Spec.Hooks? {
        var h = Spec.Hooks()
        h.poststart = poststart?.isEmpty == false ? poststart : nil
        h.poststop = poststop?.isEmpty == false ? poststop : nil
        return h.isEmpty ? nil : h
    }
}
