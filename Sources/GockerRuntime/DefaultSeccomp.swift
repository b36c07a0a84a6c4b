import Glibc
import GockerCore

/// docker's default seccomp profile, as gocker's own data: calls are
/// refused with EPERM unless allowed below; the calls that only a holder of
/// a capability may make are allowed when the container has it (in its
/// bounding set); a few are allowed on their architecture only. Without
/// CAP_SYS_ADMIN, clone may make no namespace and clone3 fails with ENOSYS
/// (so that C libraries fall back to clone, whose flags the filter can
/// see); socket may not make AF_VSOCK sockets; personality takes only the
/// values programs use to query it or ask for a 32-bit address space.
public enum DefaultSeccomp {
    /// What every container may call.
    static let allowed: [String] = [
        "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
        "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
        "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
        "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
        "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
        "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
        "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl",
        "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
        "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
        "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
        "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
        "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
        "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
        "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
        "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
        "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
        "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
        "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
        "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
        "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
        "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
        "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
        "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat",
        "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
        "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
        "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
        "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
        "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
        "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
        "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
        "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
        "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid",
        "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
        "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
        "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
        "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
        "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
        "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
        "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
        "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
        "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
        "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4",
        "waitid", "waitpid", "write", "writev", "process_vm_readv", "process_vm_writev", "ptrace",
    ]

    /// What a capability allows besides.
    static let byCapability: [(cap: String, names: String)] = [
        ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
        ("CAP_SYS_ADMIN", """
            bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
            move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
            umount umount2 unshare
            """),
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYS_CHROOT", "chroot"),
        ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
        ("CAP_SYS_PACCT", "acct"),
        ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise"),
        ("CAP_SYS_RAWIO", "iopl ioperm"),
        ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
        ("CAP_SYS_TTY_CONFIG", "vhangup"),
        ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
        ("CAP_SYSLOG", "syslog"),
        ("CAP_BPF", "bpf"),
        ("CAP_PERFMON", "perf_event_open"),
    ]

    /// Per machine (uname): the architectures its filter covers (the native
    /// one and those its kernel also runs), and what only it allows.
    static func arch(_ machine: String) -> (arches: [String], names: String) {
        switch machine {
        case "x86_64": return (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "arch_prctl modify_ldt")
        case "i386", "i686": return (["SCMP_ARCH_X86"], "modify_ldt")
        case "aarch64":
            return (["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                    "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls")
        case "ppc64le": return (["SCMP_ARCH_PPC64LE"], "sync_file_range2 swapcontext")
        case "s390x": return (["SCMP_ARCH_S390X", "SCMP_ARCH_S390"], "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr")
        case "riscv64": return (["SCMP_ARCH_RISCV64"], "riscv_flush_icache")
        default: return ([], "")
        }
    }

    /// The words of `text`, split at spaces and newlines byte by byte (a
    /// split by Character costs a start 0.2 ms here).
    static func names(_ text: String) -> [String] {
        var text = text
        return text.withUTF8 { utf8 in
            var out: [String] = []
            out.reserveCapacity(utf8.count / 8)
            var start = 0
            for i in 0...utf8.count where i == utf8.count || utf8[i] == UInt8(ascii: " ") || utf8[i] == 0x0A {
                if i > start { out.append(String(decoding: UnsafeBufferPointer(rebasing: utf8[start..<i]), as: UTF8.self)) }
                start = i + 1
            }
            return out
        }
    }

    /// Changes with what `profile` makes (a test pins a digest of it): a
    /// program cached for an older profile is not taken for this one.
    static let version = 1

    /// The name the program of `profile(capabilities:machine:)` is cached
    /// under: the version, the machine and which of the capabilities that
    /// change it the container has.
    /// (On a start's path: no Set, no generic integer formatting.)
    public static func cacheName(capabilities: [String], machine: String = SeccompProgram.machine) -> String {
        var name = "default-\(version)-\(machine)-"
        for rule in byCapability { name += capabilities.contains(rule.cap) ? "1" : "0" }
        return name
    }

    /// config.json's `linux.seccomp` of `profile(capabilities:machine:)`:
    /// written once per cache name beside the programs (`<name>.json` in
    /// `cacheDirectory`), so that a start reads it rather than build and
    /// write the profile (0.1 ms).
    public static func rendered(capabilities: [String], cacheDirectory: String?,
                                machine: String = SeccompProgram.machine) -> [UInt8] {
        let path = cacheDirectory.map { "\($0)/\(cacheName(capabilities: capabilities, machine: machine)).json" }
        // Written whole or not at all (writeFileAtomic).
        if let path, let bytes = try? Sys.readFile(path), bytes.first == UInt8(ascii: "{"), bytes.last == UInt8(ascii: "}") {
            return bytes
        }
        let bytes = profile(capabilities: capabilities, machine: machine).jsonBytes
        if let path, let dir = cacheDirectory, (try? Sys.mkdirAll(dir, mode: 0o700)) != nil {
            // A cache that cannot be written is only slower.
            _ = try? Sys.writeFileAtomic(path, bytes, mode: 0o600)
        }
        return bytes
    }

    /// The profile of a container whose bounding set is `capabilities`.
    public static func profile(capabilities: [String], machine: String = SeccompProgram.machine) -> Spec.Seccomp {
        let caps = Set(capabilities)
        let (arches, archNames) = arch(machine)
        var allow = allowed + names(archNames)
        for (cap, more) in byCapability where caps.contains(cap) { allow += names(more) }
        var rules = [Spec.Seccomp.Syscall(names: allow, action: "SCMP_ACT_ALLOW")]
        let vsock: UInt64 = 40 // AF_VSOCK
        rules.append(.init(names: ["socket"], action: "SCMP_ACT_ALLOW", args: [.init(index: 0, value: vsock, op: "SCMP_CMP_NE")]))
        for persona: UInt64 in [0, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
            rules.append(.init(names: ["personality"], action: "SCMP_ACT_ALLOW", args: [.init(index: 0, value: persona, op: "SCMP_CMP_EQ")]))
        }
        if !caps.contains("CAP_SYS_ADMIN") {
            // CLONE_NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWCGROUP:
            // none may be set (s390 passes the flags second).
            let namespaces: UInt64 = 0x7E02_0000
            let flagsArg: UInt32 = machine.hasPrefix("s390") ? 1 : 0
            rules.append(.init(names: ["clone"], action: "SCMP_ACT_ALLOW",
                               args: [.init(index: flagsArg, value: namespaces, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")]))
            rules.append(.init(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38)) // ENOSYS
        }
        return Spec.Seccomp(defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1, // EPERM
                            architectures: arches.isEmpty ? nil : arches, syscalls: rules)
    }
}

/// `--security-opt seccomp=FILE`: an OCI `linux.seccomp` object, or a
/// profile in docker's form (its `archMap`, a rule's `name`, and its
/// `includes`/`excludes` by architecture, capability and kernel version),
/// turned into the OCI form for this machine and the container's
/// capabilities as docker turns it.
public enum SeccompProfileFile {
    struct Profile: JSONShape {
        var defaultAction = ""
        var defaultErrnoRet: UInt32?
        var architectures: [String]?
        var archMap: [ArchMap]?
        var flags: [String]?
        var listenerPath: String?
        var listenerMetadata: String?
        var syscalls: [Rule]?

        mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("defaultAction", &defaultAction)
            try v.field("defaultErrnoRet", &defaultErrnoRet)
            try v.field("architectures", &architectures)
            try v.field("archMap", &archMap)
            try v.field("flags", &flags)
            try v.field("listenerPath", &listenerPath)
            try v.field("listenerMetadata", &listenerMetadata)
            try v.field("syscalls", &syscalls)
        }
    }
    struct ArchMap: JSONShape {
        var architecture = ""
        var subArchitectures: [String]?

        mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("architecture", &architecture)
            try v.field("subArchitectures", &subArchitectures)
        }
    }
    struct Rule: JSONShape {
        var names: [String]?
        var name: String?
        var action = ""
        var errnoRet: UInt32?
        var args: [Spec.Seccomp.Arg]?
        var includes: Filter?
        var excludes: Filter?

        mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("names", &names)
            try v.field("name", &name)
            try v.field("action", &action)
            try v.field("errnoRet", &errnoRet)
            try v.field("args", &args)
            try v.field("includes", &includes)
            try v.field("excludes", &excludes)
        }
    }
    struct Filter: JSONShape {
        var arches: [String]?
        var caps: [String]?
        var minKernel: String?

        mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("arches", &arches)
            try v.field("caps", &caps)
            try v.field("minKernel", &minKernel)
        }
    }

    public static func load(_ path: String, capabilities: [String]) throws(GockerError) -> Spec.Seccomp {
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path) } catch {
            throw GockerError(.invalidArgument, "read seccomp profile \(path)", cause: error)
        }
        let p: Profile
        do { p = try JSON.read(Profile.self, from: bytes, what: "seccomp profile \(path)") } catch {
            throw GockerError(.invalidArgument, error.message, cause: error.cause)
        }
        do { return try convert(p, capabilities: capabilities) } catch {
            throw GockerError(.invalidArgument, "seccomp profile \(path): \(error.message)")
        }
    }

    /// docker's names of the architectures a machine runs.
    static func goArch(_ machine: String) -> String {
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        case "i386", "i686": return "386"
        default: return machine
        }
    }

    static func convert(_ p: Profile, capabilities: [String], machine: String = SeccompProgram.machine,
                        kernel: [Int] = kernelVersion()) throws(GockerError) -> Spec.Seccomp {
        if p.architectures != nil && p.archMap != nil {
            throw GockerError(.invalidArgument, "use either architectures or archMap, not both")
        }
        var arches = p.architectures
        if let map = p.archMap {
            let native = DefaultSeccomp.arch(machine).arches.first
            arches = map.filter { $0.architecture == native }.flatMap { [$0.architecture] + ($0.subArchitectures ?? []) }
        }
        let caps = Set(capabilities)
        let arch = goArch(machine)
        func kernelAtLeast(_ text: String) throws(GockerError) -> Bool {
            let want = text.split(separator: ".").map { Int($0) }
            guard !want.isEmpty, want.count <= 3, want.allSatisfy({ $0 != nil }) else {
                throw GockerError(.invalidArgument, "invalid minKernel \"\(text)\"")
            }
            return !kernel.lexicographicallyPrecedes(want.map { $0! })
        }
        var rules: [Spec.Seccomp.Syscall] = []
        for r in p.syscalls ?? [] {
            if let inc = r.includes {
                if let a = inc.arches, !a.contains(arch) { continue }
                if let c = inc.caps, !c.allSatisfy(caps.contains) { continue }
                if let k = inc.minKernel, try !kernelAtLeast(k) { continue }
            }
            if let exc = r.excludes {
                if let a = exc.arches, a.contains(arch) { continue }
                if let c = exc.caps, c.contains(where: caps.contains) { continue }
                if let k = exc.minKernel, try kernelAtLeast(k) { continue }
            }
            guard r.name == nil || r.names == nil else {
                throw GockerError(.invalidArgument, "a rule has both name and names")
            }
            let names = r.names ?? r.name.map { [$0] } ?? []
            guard !names.isEmpty else { throw GockerError(.invalidArgument, "a rule names no syscall") }
            rules.append(.init(names: names, action: r.action, errnoRet: r.errnoRet, args: r.args))
        }
        return Spec.Seccomp(defaultAction: p.defaultAction, defaultErrnoRet: p.defaultErrnoRet, architectures: arches,
                            flags: p.flags, listenerPath: p.listenerPath, listenerMetadata: p.listenerMetadata,
                            syscalls: rules)
    }

    static func kernelVersion() -> [Int] {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return release.split(whereSeparator: { !$0.isNumber }).prefix(3).compactMap { Int($0) }
    }
}
