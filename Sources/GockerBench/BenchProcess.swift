import Glibc
import GockerCore

/// The bench's side of one timed start: an external process, from
/// posix_spawn to waitpid, measured the same way whatever the runtime.
enum BenchProcess {
    /// CLOCK_MONOTONIC in nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// A NULL-terminated array of C strings, made before the clock starts.
    final class CStrings {
        var pointers: [UnsafeMutablePointer<CChar>?]
        init(_ strings: [String]) { pointers = strings.map { strdup($0) } + [nil] }
        deinit { for p in pointers { free(p) } }
    }

    /// A command ready to be spawned: everything allocated up front.
    final class Prepared {
        let path: String
        let argv: CStrings
        let envp: CStrings
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()

        /// stdin and stdout /dev/null, stderr to `stderrPath` (truncated),
        /// `fd3` (if any) as descriptor 3; default signal handling and an
        /// empty signal mask (the bench blocks INT, TERM and HUP in itself only).
        init(path: String, argv: [String], env: [String], stderrPath: String, fd3: Int32? = nil) {
            self.path = path
            self.argv = CStrings(argv)
            self.envp = CStrings(env)
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            if let fd3 { posix_spawn_file_actions_adddup2(&actions, fd3, 3) }
            posix_spawnattr_init(&attributes)
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigmask(&attributes, &none)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        }

        deinit {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }

        /// Starts it: the pid, or the errno of a failed exec.
        func spawn() -> (pid: pid_t, errno: Int32) {
            var pid: pid_t = 0
            let r = posix_spawn(&pid, path, &actions, &attributes, argv.pointers, envp.pointers)
            return (r == 0 ? pid : 0, r)
        }
    }

    /// Waits for any child: its pid, wait status and the time it was reaped.
    static func waitAny() -> (pid: pid_t, status: Int32, at: UInt64)? {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, 0)
            let at = now()
            if pid > 0 { return (pid, status, at) }
            if errno != EINTR { return nil }
        }
    }

    /// Runs a command to its end, untimed, its output discarded (cleaning up
    /// after a failed start).
    static func runQuietly(path: String, argv: [String], env: [String]) {
        let p = Prepared(path: path, argv: argv, env: env, stderrPath: "/dev/null")
        let (pid, e) = p.spawn()
        guard e == 0 else { return }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// What one command, run to its end, took: its wait status (or the
    /// errno of a failed spawn), its wall time from spawn to reap, and its
    /// peak resident size in kB (wait4's ru_maxrss: the largest of it and
    /// the children it waited for).
    struct Timed {
        var status: Int32
        var spawnErrno: Int32
        var ns: UInt64
        var maxRSSKB: Int
        var ok: Bool { spawnErrno == 0 && status == 0 }
        var seconds: Double { Double(ns) / 1e9 }
    }

    /// Runs a command to its end, timed: stdin and stdout /dev/null, stderr
    /// to `stderrPath`.
    static func runTimed(path: String, argv: [String], env: [String], stderrPath: String) -> Timed {
        let p = Prepared(path: path, argv: argv, env: env, stderrPath: stderrPath)
        let start = now()
        let (pid, e) = p.spawn()
        guard e == 0 else { return Timed(status: -1, spawnErrno: e, ns: now() - start, maxRSSKB: 0) }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let end = now()
        return Timed(status: status, spawnErrno: 0, ns: end - start, maxRSSKB: Int(usage.ru_maxrss))
    }

    /// A pipe for a child's timings: the read end (non-blocking) and the
    /// write end, both close-on-exec (the child gets the write end as 3).
    static func timingsPipe() -> (read: Int32, write: Int32)? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    /// What is in a pipe now (its writers are gone).
    static func drain(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { out.append(contentsOf: buf[0..<n]) } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return out
    }

    /// The first non-empty line of a file (a failed start's stderr).
    static func firstLine(of path: String) -> String? {
        guard let bytes = try? Sys.readFile(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.benchTrimmed() }.first { !$0.isEmpty }
    }

    /// `name` as execvp would find it: a path as given, else the first
    /// executable in $PATH.
    static func lookup(_ name: String) -> String? {
        if name.contains("/") { return name }
        let path = Sys.env("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            if access(candidate, X_OK) == 0 && !Sys.isDirectory(candidate) { return candidate }
        }
        return nil
    }

    /// The process's environment as NAME=VALUE strings.
    static func environment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(String(cString: entry))
            p += 1
        }
        return out
    }

    /// The signals that stop a bench: held while it runs, checked between
    /// waves, so that it can clean up before it goes.
    static let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    static func blockStopSignals() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in stopSignals { sigaddset(&set, s) }
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &set, &old)
        return old
    }

    static func restoreSignals(_ old: sigset_t) {
        var old = old
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }

    /// A stop signal that arrived (and is now consumed), or nil.
    static func pendingStopSignal() -> Int32? {
        var pending = sigset_t()
        sigpending(&pending)
        for s in stopSignals where sigismember(&pending, s) == 1 {
            var one = sigset_t()
            sigemptyset(&one)
            sigaddset(&one, s)
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            _ = sigtimedwait(&one, nil, &zero)
            return s
        }
        return nil
    }
}

extension Substring {
    /// Without leading and trailing blanks.
    func benchTrimmed() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
