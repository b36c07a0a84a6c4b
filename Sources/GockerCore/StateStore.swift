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

    /// The files a container's directory holds: its state, the exec FIFO,
    /// its companions (see keepCompanion), its seccomp program or profile
    /// (see SeccompProgram).
    static let stateFile = "state.json", fifoFile = "exec.fifo", companionsFile = "companions"
    public static let seccompProgramFile = "seccomp.bpf", seccompProfileFile = "seccomp.json"
    static let usualFiles = [stateFile, fifoFile, companionsFile, seccompProgramFile, seccompProfileFile]

    public func directory(_ id: String) -> String { "\(root)/\(id)" }
    public func statePath(_ id: String) -> String { "\(root)/\(id)/\(Self.stateFile)" }
    public func fifoPath(_ id: String) -> String { "\(root)/\(id)/\(Self.fifoFile)" }

    /// Where the empty directories of removed containers wait to be taken
    /// by the next `reserve`: `@` is in no container id. A directory
    /// freed and made again costs more than a rename on some file systems
    /// (an ext4 without a journal passes over inodes freed in the last
    /// minute each time it makes one; mounted with `discard`, a freed
    /// block waits for the device).
    public var spareRoot: String { "\(root)/@spare" }
    /// How many are kept; a removal beyond them removes the directory.
    static let spareSlots = 2
    private func spare(_ slot: Int) -> String { "\(spareRoot)/\(slot)" }

    /// Makes the container's directory (a spare one taken, else a new
    /// one), refusing an id in use, and returns it locked.
    public func reserve(_ id: String) throws(GockerError) -> Lock {
        try Identifier.validateContainerID(id)
        do {
            try Sys.mkdirAll(root, mode: 0o711)
            if let lock = try takeSpare(as: directory(id)) { return lock }
            try Sys.check("mkdir", path: directory(id)) { mkdir(directory(id), 0o711) }
        } catch {
            if error.errno == EEXIST {
                throw GockerError(.alreadyExists, "container with id \"\(id)\" already exists")
            }
            throw GockerError(.system, "create state directory of \(id)", cause: error)
        }
        return try lock(id)
    }

    /// Renames a spare directory to `path` and returns it locked, or nil
    /// where none was free. A spare still locked (its container's removal
    /// not finished: poststop hooks run under the lock) is passed over; a
    /// spare that holds anything, or is not this user's 0711 directory, is
    /// removed instead of used. Throws EEXIST when `path` is there already.
    private func takeSpare(as path: String) throws(SystemCallError) -> Lock? {
        for slot in 0..<Self.spareSlots {
            let fd = Glibc.open(spare(slot), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            // Locked, and still the one the slot names (taken and given
            // back meanwhile: another one).
            guard flock(fd, LOCK_EX | LOCK_NB) == 0, let held = Self.named(fd, spare(slot)) else {
                Sys.close(fd)
                continue
            }
            guard gk_rename_noreplace(spare(slot), path) == 0 else {
                let e = errno
                Sys.close(fd)
                if e == EEXIST { throw SystemCallError("rename", path: path, errno: EEXIST) }
                continue
            }
            if held.st_uid == geteuid() && held.st_mode & 0o7777 == 0o711 && gk_directory_empty(fd) == 1 {
                return Lock(fd: fd)
            }
            Sys.close(fd)
            try Sys.removeAll(path)
            return nil
        }
        return nil
    }

    /// The status of the file open as `fd` when `path` names that same
    /// file, else nil.
    private static func named(_ fd: Int32, _ path: String) -> stat? {
        var held = stat(), named = stat()
        guard fstat(fd, &held) == 0, stat(path, &named) == 0,
              held.st_dev == named.st_dev, held.st_ino == named.st_ino else { return nil }
        return held
    }

    /// Locks an existing container's directory: the one its name gives
    /// once the lock is held.
    public func lock(_ id: String) throws(GockerError) -> Lock {
        try Identifier.validateContainerID(id)
        while true {
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
            // Removed while we waited for the lock (the directory made a
            // spare, or the name given to a new one)?
            if Self.named(fd, directory(id)) != nil { return Lock(fd: fd) }
            Sys.close(fd)
            if !Sys.exists(directory(id)) {
                throw GockerError(.notFound, "container \"\(id)\" does not exist")
            }
        }
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
            try Sys.writeFileAtomic(statePath(state.id), state.jsonBytes, mode: 0o600, exchange: true)
        } catch {
            throw GockerError(.system, "save state of \(state.id)", cause: error)
        }
    }

    /// Removes the container's directory and everything in it: emptied,
    /// it becomes a spare (see `spareRoot`) while a slot is free.
    public func remove(_ id: String) throws(GockerError) {
        stopCompanions(id)
        // What it usually holds, directly; anything else the long way.
        for name in Self.usualFiles { _ = unlink(directory(id) + "/" + name) }
        if keepAsSpare(directory(id)) { return }
        if rmdir(directory(id)) == 0 || errno == ENOENT { return }
        do { try Sys.removeAll(directory(id)) } catch {
            throw GockerError(.system, "remove state of \(id)", cause: error)
        }
    }

    /// Moves the directory at `path`, when empty, to a free spare slot:
    /// whether it went.
    private func keepAsSpare(_ path: String) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let empty = gk_directory_empty(fd) == 1
        Sys.close(fd)
        guard empty else { return false }
        for slot in 0..<Self.spareSlots {
            if gk_rename_noreplace(path, spare(slot)) == 0 { return true }
            if errno == ENOENT && slot == 0 {
                // The spare root, made on the first removal.
                guard mkdir(spareRoot, 0o700) == 0 || errno == EEXIST else { return false }
                if gk_rename_noreplace(path, spare(slot)) == 0 { return true }
            }
        }
        return false
    }

    /// A process that serves the container for as long as its state
    /// exists (its slirp4netns): kept as a "PID START-TIME" line in the
    /// state directory's `companions`, and stopped when the state goes.
    public func keepCompanion(_ id: String, pid: pid_t) throws(GockerError) {
        let line = Array("\(pid) \(gk_process_start_time(pid))\n".utf8)
        let path = directory(id) + "/" + Self.companionsFile
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
        guard let bytes = try? Sys.readFile(directory(id) + "/" + Self.companionsFile) else { return }
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
        ((try? Sys.listDirectory(root)) ?? []).filter { $0 != "@spare" && Sys.isDirectory(directory($0)) }.sorted()
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
