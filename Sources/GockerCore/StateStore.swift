import CGockerCore
import Glibc

/// What gocker keeps about a live container under the state root
/// (`--root`, default /run/gocker), one directory per id, as runc does.
public struct RuntimeState: JSONShape, Sendable, Equatable {
    public var id: String
    public var pid: Int32
    /// The start time of `pid` (clock ticks since boot): a pid reused by
    /// another process does not pass for the container.
    public var pidStartTime: UInt64
    public var bundle: String
    public var rootfs: String
    public var created: String
    public var annotations: [String: String]?
    /// The groups made for the container, and by which backend.
    public var cgroups: CgroupRecord?
    /// Its `linux.resources` as `update` last left them: the config's,
    /// with every update's members laid over them (runc keeps the same in
    /// its state.json). Absent until the first update, when the config's
    /// are the container's.
    public var resources: Spec.Resources?
    /// The config's poststart and poststop hooks, which `start` and
    /// `delete` run; absent when it has none.
    public var hooks: Spec.Hooks?

    public init(id: String, pid: Int32, pidStartTime: UInt64, bundle: String,
                rootfs: String, created: String, annotations: [String: String]?, cgroups: CgroupRecord? = nil) {
        self.cgroups = cgroups
        self.id = id
        self.pid = pid
        self.pidStartTime = pidStartTime
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.annotations = annotations
    }

    public init() { self.init(id: "", pid: 0, pidStartTime: 0, bundle: "", rootfs: "", created: "", annotations: nil) }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("id", &id)
        try v.field("pid", &pid)
        try v.field("pidStartTime", &pidStartTime)
        try v.field("bundle", &bundle)
        try v.field("rootfs", &rootfs)
        try v.field("created", &created)
        try v.field("annotations", &annotations)
        try v.field("cgroups", &cgroups)
        try v.field("resources", &resources)
        try v.field("hooks", &hooks)
    }
}

/// The state root: `<root>/<id>/state.json`, `<root>/<id>/exec.fifo`.
/// The state file is written at create (and again by `update`, for the
/// limits it set): a container is "created"
/// while its exec FIFO exists (`start` removes it), and its process says the
/// rest.
/// Every change to one container happens under an flock of its directory,
/// and state files are replaced atomically.
public struct StateStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public static var defaultRoot: String { Sys.env("GOCKER_STATE_ROOT") ?? Rootless.defaultStateRoot }

    public func directory(_ id: String) -> String { "\(root)/\(id)" }
    public func statePath(_ id: String) -> String { "\(root)/\(id)/state.json" }
    public func fifoPath(_ id: String) -> String { "\(root)/\(id)/exec.fifo" }

    /// Makes the container's directory, refusing an id in use, and returns
    /// it locked.
    public func reserve(_ id: String) throws(GockerError) -> Lock {
        try Identifier.validateContainerID(id)
        do {
            try Sys.mkdirAll(root, mode: 0o711)
            try Sys.check("mkdir", path: directory(id)) { mkdir(directory(id), 0o711) }
        } catch {
            if error.errno == EEXIST {
                throw GockerError(.alreadyExists, "container with id \"\(id)\" already exists")
            }
            throw GockerError(.system, "create state directory of \(id)", cause: error)
        }
        return try lock(id)
    }

    /// Locks an existing container's directory.
    public func lock(_ id: String) throws(GockerError) -> Lock {
        try Identifier.validateContainerID(id)
        let fd = Glibc.open(directory(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { throw GockerError(.notFound, "container \"\(id)\" does not exist") }
            throw GockerError(.system, "open", cause: SystemCallError("open", path: directory(id), errno: errno))
        }
        do {
            try Sys.check("flock", path: directory(id)) { flock(fd, LOCK_EX) }
        } catch {
            Sys.close(fd)
            throw GockerError(.system, "lock container \(id)", cause: error)
        }
        // Deleted while we waited for the lock?
        if !Sys.exists(directory(id)) {
            Sys.close(fd)
            throw GockerError(.notFound, "container \"\(id)\" does not exist")
        }
        return Lock(fd: fd)
    }

    public func load(_ id: String) throws(GockerError) -> RuntimeState {
        try Identifier.validateContainerID(id)
        do {
            return try JSON.readFile(RuntimeState.self, path: statePath(id))
        } catch where error.code == .notFound {
            throw GockerError(.notFound, "container \"\(id)\" does not exist")
        }
    }

    public func save(_ state: RuntimeState) throws(GockerError) {
        do {
            try Sys.writeFileAtomic(statePath(state.id), state.jsonBytes, mode: 0o600)
        } catch {
            throw GockerError(.system, "save state of \(state.id)", cause: error)
        }
    }

    /// Removes the container's directory and everything in it.
    public func remove(_ id: String) throws(GockerError) {
        stopCompanions(id)
        // What it usually holds, directly; anything else the long way.
        _ = unlink(statePath(id))
        _ = unlink(fifoPath(id))
        if rmdir(directory(id)) == 0 || errno == ENOENT { return }
        do { try Sys.removeAll(directory(id)) } catch {
            throw GockerError(.system, "remove state of \(id)", cause: error)
        }
    }

    /// A process that serves the container for as long as its state
    /// exists (its slirp4netns): kept as a "PID START-TIME" line in the
    /// state directory's `companions`, and stopped when the state goes.
    public func keepCompanion(_ id: String, pid: pid_t) throws(GockerError) {
        let line = Array("\(pid) \(gk_process_start_time(pid))\n".utf8)
        let path = directory(id) + "/companions"
        try performing("record the companion process of \(id)") { () throws(SystemCallError) in
            let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o600)
            defer { Sys.close(fd) }
            _ = try Sys.check("write", path: path) { line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        }
    }

    /// SIGKILL to each companion still running (the same process: its
    /// start time too), reaped when it is this process's child (a
    /// foreground `run`'s; a detached container's monitor reaps its own).
    func stopCompanions(_ id: String) {
        guard let bytes = try? Sys.readFile(directory(id) + "/companions") else { return }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 2, let pid = pid_t(f[0]), pid > 0, let start = UInt64(f[1]),
                  UInt64(gk_process_start_time(pid)) == start else { continue }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// Ids of every container with a state directory.
    public func ids() -> [String] {
        ((try? Sys.listDirectory(root)) ?? []).filter { Sys.isDirectory(directory($0)) }.sorted()
    }

    /// An flock held until `release()` or the end of the process.
    public final class Lock {
        private var fd: Int32
        init(fd: Int32) { self.fd = fd }
        public func release() {
            if fd >= 0 { Sys.close(fd); fd = -1 }
        }
        deinit { release() }
    }
}
