import CGockerCore
import Glibc
import GockerCore

/// `--restart`: what the monitor does when the container ends.
public struct RestartPolicy: Sendable, Equatable {
    public enum Kind: String, Sendable { case no, onFailure = "on-failure", always, unlessStopped = "unless-stopped" }
    public var kind: Kind
    /// For on-failure: the most restarts (0: no bound).
    public var maxRetries: Int

    public init(parsing text: String) throws(GockerError) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let kind = Kind(rawValue: parts.first ?? "") else {
            throw GockerError(.invalidArgument, "invalid restart policy \"\(text)\": expected no, on-failure[:N], always or unless-stopped")
        }
        self.kind = kind
        self.maxRetries = 0
        if parts.count == 2 {
            guard kind == .onFailure, let n = Int(parts[1]), n >= 0 else {
                throw GockerError(.invalidArgument, "invalid restart policy \"\(text)\": only on-failure takes a count")
            }
            maxRetries = n
        }
    }

    /// Whether a container that ended with `exitCode` after `restarts`
    /// restarts is started again.
    public func restarts(exitCode: Int32, restarts: Int, stopped: Bool) -> Bool {
        if stopped { return false }
        switch kind {
        case .no: return false
        case .always, .unlessStopped: return true
        case .onFailure: return exitCode != 0 && (maxRetries == 0 || restarts < maxRetries)
        }
    }
}

/// A container's status as `ps` shows it.
public enum DockerState: String, Sendable {
    case created, running, paused, restarting, exited
}

extension Engine {
    public func logPath(_ id: String) -> String { containerDir(id) + "/container.log" }

    // MARK: the monitor

    /// Starts a created or stopped container under a new monitor and waits
    /// until it runs (or says why it could not).
    public func startDetached(_ record: inout ContainerRecord) throws(GockerError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw GockerError(.system, "start", cause: SystemCallError("pipe", errno: errno)) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        defer { Sys.close(readEnd) }
        let roots = ["--data-root", dataRoot, "--root", runtime.store.root]
        // With a terminal the monitor holds the pty master (see monitor.c).
        let spec = try? Spec.decodeFile(path: containerDir(record.id) + "/config.json")
        let terminal = spec?.process?.terminal == true ? "tty" : "-"
        let argv = ["gocker-monitor", logPath(record.id), "\(record.logMaxSize ?? 0)", "\(writeEnd)", terminal,
                    "--state", runtime.store.statePath(record.id), "--start", "gocker", "__start"] + roots + ["--report-fd", "\(writeEnd)", record.id]
            + ["--exited", "gocker", "__exited"] + roots + [record.id]
        // This process owns the container until the monitor does: from
        // this write on, prune and rmi -f see it starting, not stopped.
        record = try updateRecord(record.id) { r in
            r.stopRequested = nil
            r.started = Timestamp.now()
            r.ownerPid = getpid()
            r.ownerStart = UInt64(gk_process_start_time(getpid()))
        }
        let pid: pid_t
        do { pid = try Sys.spawnDetached(argv, keep: writeEnd) } catch {
            Sys.close(writeEnd)
            throw error
        }
        Sys.close(writeEnd)
        record = try updateRecord(record.id) { r in
            r.ownerPid = pid
            r.ownerStart = UInt64(gk_process_start_time(pid))
        }
        // The first start reports on the pipe: "ok" or "error STATUS MESSAGE".
        var report: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n > 0 { report += buf[0..<n] } else if n == 0 || errno != EINTR { break }
        }
        let text = String(decoding: report, as: UTF8.self).trimmed
        if text == "ok" { return }
        if text.hasPrefix("error ") {
            let rest = text.dropFirst(6)
            let code = Int32(rest.prefix { $0 != " " }) ?? 125
            let message = String(rest.drop { $0 != " " }.dropFirst())
            throw GockerError(code == 126 ? .commandNotExecutable : code == 127 ? .commandNotFound : .containerSetup, message)
        }
        throw GockerError(.system, "start container \(record.id): the monitor ended without a report")
    }

    /// The monitor's start command: create and start the container, report
    /// on `reportFD`, and leave (the container stays with the monitor).
    /// With a terminal, the pty master goes to the monitor on `consoleFD`.
    public func startUnderMonitor(id: String, reportFD: Int32, consoleFD: Int32 = -1) -> Int32 {
        func report(_ line: String) {
            guard reportFD >= 0 else { return }
            _ = (line + "\n").withCString { write(reportFD, $0, strlen($0)) }
        }
        do throws(GockerError) {
            // The monitor (this process's parent) owns the container from
            // here on, whatever becomes of the gocker that spawned it: a
            // `run -d` killed before it could say so leaves no container
            // that looks abandoned mid-start.
            let monitor = getppid()
            let record = try updateRecord(id) { r in
                r.ownerPid = monitor
                r.ownerStart = UInt64(gk_process_start_time(monitor))
            }
            // stop or rm came while the monitor waited to restart it.
            if record.stopRequested == true {
                throw GockerError(.invalidState, "container \(record.name) was stopped")
            }
            let runtime = runtime(for: record)
            try? runtime.delete(id: id, force: true)  // what a previous run left
            try joinNetworkOfContainer(record)
            try ensureBridges(of: record)
            let (_, terminal, _) = try runtime.create(id: id, bundle: containerDir(id), extras: launchExtras(of: record),
                                                   pidFile: nil, allowTerminal: consoleFD >= 0)
            if let terminal {
                let r = gk_send_fd(consoleFD, terminal)
                Sys.close(terminal)
                if r < 0 {
                    try? runtime.delete(id: id, force: true)
                    throw GockerError(.system, "pass the terminal to the monitor", cause: SystemCallError("sendmsg", errno: -r))
                }
            }
            do { try runtime.start(id: id) } catch {
                try? runtime.delete(id: id, force: true)
                throw error
            }
            try updateRecord(id) { r in
                r.started = Timestamp.now()
                r.exitCode = nil
                r.finished = nil
            }
            report("ok")
            return 0
        } catch {
            report("error \(error.exitStatus) \(error.description)")
            return 1
        }
    }

    /// The monitor's exited command: records how the container ended,
    /// removes its runtime state and groups, and says whether to restart
    /// (GK_MONITOR_RESTART) or stop.
    public func containerExited(id: String, waitStatus: Int32) -> Int32 {
        // The runtime state and groups go first, whatever happened to the record.
        var oom = false
        if let state = try? runtime.store.load(id), let groups = state.cgroups {
            oom = (runtime.driver(for: groups).stat(groups, controller: "memory", "memory.oom_kill") ?? 0) > 0
        }
        try? runtime.delete(id: id, force: true)
        var restart = false
        let recorded = try? updateRecord(id) { r in
            // A negative status: the monitor could not see how it ended.
            r.exitCode = waitStatus < 0 ? nil : Runtime.exitCode(waitStatus)
            r.finished = Timestamp.now()
            r.oomKilled = oom
            let policy = (try? RestartPolicy(parsing: r.restartPolicy ?? "no")) ?? (try! RestartPolicy(parsing: "no"))
            if let code = r.exitCode, policy.restarts(exitCode: code, restarts: r.restartCount ?? 0, stopped: r.stopRequested == true) {
                r.restartCount = (r.restartCount ?? 0) + 1
                restart = true
            } else {
                r.ownerPid = nil
                r.ownerStart = nil
            }
        }
        guard let record = recorded else { return 0 }
        if restart {
            // docker's back-off: 100 ms, doubling, at most 6.4 s.
            let delay = 100_000_000 << min((record.restartCount ?? 1) - 1, 6)
            var ts = timespec(tv_sec: delay / 1_000_000_000, tv_nsec: delay % 1_000_000_000)
            nanosleep(&ts, nil)
            // stop or rm may have come meanwhile; then __start refuses too.
            if let now = try? load(id), now.stopRequested != true { return Int32(GK_MONITOR_RESTART) }
            _ = try? updateRecord(id) { r in
                r.ownerPid = nil
                r.ownerStart = nil
            }
            return 0
        }
        if record.autoRemove { try? remove(id: id, name: record.name, anonymousVolumes: record.mounts) }
        return 0
    }

    // MARK: state

    /// The container's state now, from its record and its runtime state.
    public func state(of record: ContainerRecord) -> DockerState {
        if let s = try? runtime.store.load(record.id) {
            switch runtime.status(of: s) {
            case .running, .created: return .running
            case .paused: return .paused
            default: break
            }
        }
        if let owner = record.ownerPid, UInt64(gk_process_start_time(owner)) == record.ownerStart,
           record.finished != nil || record.started != nil {
            // The monitor lives and the container is between runs.
            return record.exitCode == nil ? .running : .restarting
        }
        if record.started == nil { return .created }
        return .exited
    }

    /// The container's first process, when it runs.
    public func pid(of record: ContainerRecord) -> Int32? {
        guard let s = try? runtime.store.load(record.id), runtime.status(of: s) != .stopped else { return nil }
        return s.pid
    }

    // MARK: stop, kill, wait

    /// `stop`: SIGTERM, then SIGKILL after `timeout` seconds (negative:
    /// none, it waits as long as the container takes, as in docker);
    /// returns once the container has ended. A container that is not
    /// running is no error.
    public func stop(_ ref: String, timeout: Int) throws(GockerError) {
        let record = try requestStop(try lookup(ref))
        guard let pid = pid(of: record) else { return }
        _ = Glibc.kill(pid, SIGTERM)
        let state = try? runtime.store.load(record.id)
        if let state { runtime.thawIfPaused(state) }
        if timeout < 0 {
            while !waitUntilStopped(record, seconds: 60) {}
        } else if !waitUntilStopped(record, seconds: Double(timeout)) {
            if let state {
                for p in runtime.processes(of: state) { _ = Glibc.kill(p, SIGKILL) }
            }
            _ = waitUntilStopped(record, seconds: 10)
        }
        // Let the monitor record the exit before returning.
        _ = waitUntilRecorded(record.id, seconds: 5)
    }

    /// `kill -s SIG`.
    public func kill(_ ref: String, signal: Int32) throws(GockerError) {
        let record = try lookup(ref)
        guard let pid = pid(of: record) else {
            throw GockerError(.invalidState, "cannot kill container \(record.name): container \(record.id.prefix(12)) is not running")
        }
        if signal == SIGKILL || signal == SIGTERM { _ = try requestStop(record) }
        if Glibc.kill(pid, signal) < 0 {
            throw GockerError(.system, "kill container \(record.name)", cause: SystemCallError("kill", errno: errno))
        }
        if signal == SIGKILL, let s = try? runtime.store.load(record.id) { runtime.thawIfPaused(s) }
    }

    /// Records that the container is not to be restarted (before it is
    /// signalled: its monitor must not start it again). Stopping never
    /// depends on that: a record that cannot be written (a full disk) is a
    /// warning, and the container is stopped all the same.
    func requestStop(_ record: ContainerRecord) throws(GockerError) -> ContainerRecord {
        do {
            return try updateRecord(record.id) { $0.stopRequested = true }
        } catch where error.code != .notFound {
            Runtime.warn("\(error.description) (the container is stopped all the same)")
            return record
        }
    }

    /// Waits until the container's process is gone.
    func waitUntilStopped(_ record: ContainerRecord, seconds: Double) -> Bool {
        let steps = Int(seconds * 100)
        for _ in 0...max(steps, 0) {
            if pid(of: record) == nil { return true }
            var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&ts, nil)
        }
        return pid(of: record) == nil
    }

    /// Waits until the container's exit is in its record (or the record is gone).
    func waitUntilRecorded(_ id: String, seconds: Double) -> Bool {
        for _ in 0...Int(seconds * 100) {
            guard let r = try? load(id) else { return true }
            if state(of: r) == .exited || state(of: r) == .created { return true }
            var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&ts, nil)
        }
        return false
    }

    /// `wait`: blocks until the container has ended; its exit code.
    public func wait(_ ref: String) throws(GockerError) -> Int32 {
        let id = try lookup(ref).id
        while true {
            guard let r = try? load(id) else {
                throw GockerError(.notFound, "No such container: \(ref)")
            }
            let s = state(of: r)
            if s == .exited || s == .created { return r.exitCode ?? 0 }
            var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&ts, nil)
        }
    }
}

extension Sys {
    /// Starts `argv` (run as this very binary, under argv[0]) in a new
    /// session with /dev/null as stdio, keeping `keep` open; does not wait.
    public static func spawnDetached(_ argv: [String], keep: Int32) throws(GockerError) -> pid_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))  // the monitor calls setsid itself
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Int32(0)...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        _ = fcntl(keep, F_SETFD, 0)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, "/proc/self/exe", &actions, &attr, &cargs, environ)
        guard r == 0 else {
            throw GockerError(.system, "start the monitor", cause: SystemCallError("posix_spawn", path: "/proc/self/exe", errno: r))
        }
        return pid
    }
}
