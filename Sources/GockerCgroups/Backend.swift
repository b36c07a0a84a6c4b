import Glibc
import GockerCore

/// What a cgroup backend does: groups made, written, read, joined, removed.
/// For v1 `controller` names the hierarchy; a v2 backend has one hierarchy
/// and enables the controller in the ancestors' subtree_control instead.
public protocol CgroupBackend: Sendable {
    /// "libcgroup" or "cgroupfs": recorded in the container's state.
    var name: String { get }
    var version: CgroupVersion { get }
    /// Whether the host offers `controller`.
    func offers(_ controller: String) -> Bool
    func exists(_ controller: String, path: String) -> Bool
    /// Makes the group (and missing ancestors) and writes `settings` in order.
    func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError)
    func read(_ controller: String, path: String, file: String) throws(GockerError) -> String
    func attach(_ controller: String, path: String, pid: Int32) throws(GockerError)
    func processes(_ controller: String, path: String) -> [Int32]
    /// Removes the group; a missing one is not an error.
    func destroy(_ controller: String, path: String) throws(GockerError)
}

/// The raw cgroupfs backend for v1: one mount per controller, file writes.
/// The mounts are a constructor argument, so that tests can point it at a
/// fake cgroupfs in a temporary directory.
public struct CgroupfsV1Backend: CgroupBackend {
    public let name = "cgroupfs"
    public let version = CgroupVersion.v1
    /// Controller name to the directory its hierarchy is mounted on.
    public let mounts: [String: String]

    public init(mounts: [String: String]) { self.mounts = mounts }

    /// The host's v1 hierarchies, from /proc/self/mountinfo.
    public static func hostMounts() -> [String: String] {
        var out: [String: String] = [:]
        for line in ((try? Sys.readText("/proc/self/mountinfo")) ?? "").split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let before = halves[0].split(separator: " "), after = halves[1].split(separator: " ")
            guard before.count > 4, after.count > 2, after[0] == "cgroup" else { continue }
            for option in after[2].split(separator: ",") where !option.hasPrefix("name=") {
                let known = ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio",
                             "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"]
                if known.contains(String(option)) && out[String(option)] == nil {
                    out[String(option)] = String(before[4])
                }
            }
        }
        return out
    }

    func dir(_ controller: String, _ path: String) throws(GockerError) -> String {
        guard let mount = mounts[controller] else {
            throw GockerError(.notFound, "the host offers no \(controller) cgroup controller")
        }
        return path.isEmpty ? mount : "\(mount)/\(path)"
    }

    public func offers(_ controller: String) -> Bool { mounts[controller] != nil }

    public func exists(_ controller: String, path: String) -> Bool {
        (try? dir(controller, path)).map(Sys.isDirectory) ?? false
    }

    public func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        let d = try dir(controller, path)
        try performing("create cgroup \(d)") { () throws(SystemCallError) in try Sys.mkdirAll(d) }
        for s in settings { try CgroupFiles.write(d, s) }
    }

    public func read(_ controller: String, path: String, file: String) throws(GockerError) -> String {
        try CgroupFiles.read(try dir(controller, path), file)
    }

    public func attach(_ controller: String, path: String, pid: Int32) throws(GockerError) {
        try CgroupFiles.write(try dir(controller, path), CgroupSetting("cgroup.procs", "\(pid)"))
    }

    public func processes(_ controller: String, path: String) -> [Int32] {
        ((try? read(controller, path: path, file: "cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    public func destroy(_ controller: String, path: String) throws(GockerError) {
        try CgroupFiles.removeGroup(try dir(controller, path))
    }
}

/// The raw cgroupfs backend for v2: one unified hierarchy; a controller is
/// enabled in every ancestor's cgroup.subtree_control before it is used.
public struct CgroupfsV2Backend: CgroupBackend {
    public let name = "cgroupfs"
    public let version = CgroupVersion.v2
    public let root: String

    public init(root: String = "/sys/fs/cgroup") { self.root = root }

    func dir(_ path: String) -> String { path.isEmpty ? root : "\(root)/\(path)" }

    public func offers(_ controller: String) -> Bool {
        let available = ((try? Sys.readText(root + "/cgroup.controllers")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        return available.contains { $0 == controller }
    }

    public func exists(_ controller: String, path: String) -> Bool { Sys.isDirectory(dir(path)) }

    public func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        // Enable the controller from the root down to the group's parent.
        var current = ""
        for part in path.split(separator: "/") {
            let d = dir(current)
            let enabled = ((try? CgroupFiles.read(d, "cgroup.subtree_control")) ?? "").split(separator: " ")
            if !enabled.contains(where: { $0 == controller }) {
                try CgroupFiles.write(d, CgroupSetting("cgroup.subtree_control", "+\(controller)"))
            }
            current = current.isEmpty ? String(part) : "\(current)/\(part)"
            let next = dir(current)
            try performing("create cgroup \(next)") { () throws(SystemCallError) in try Sys.mkdirAll(next) }
        }
        for s in settings { try CgroupFiles.write(dir(path), s) }
    }

    public func read(_ controller: String, path: String, file: String) throws(GockerError) -> String {
        try CgroupFiles.read(dir(path), file)
    }

    public func attach(_ controller: String, path: String, pid: Int32) throws(GockerError) {
        try CgroupFiles.write(dir(path), CgroupSetting("cgroup.procs", "\(pid)"))
    }

    public func processes(_ controller: String, path: String) -> [Int32] {
        ((try? CgroupFiles.read(dir(path), "cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    public func destroy(_ controller: String, path: String) throws(GockerError) {
        try CgroupFiles.removeGroup(dir(path))
    }
}

/// File access shared by the cgroupfs backends.
enum CgroupFiles {
    static func write(_ dir: String, _ s: CgroupSetting) throws(GockerError) {
        let path = "\(dir)/\(s.file)"
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC | O_TRUNC)
        guard fd >= 0 else {
            throw GockerError(.system, "write cgroup", cause: SystemCallError("open", path: path, errno: errno))
        }
        defer { Sys.close(fd) }
        let bytes = Array(s.value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else {
            throw GockerError(.system, "write cgroup", cause: SystemCallError("write", path: path, data: s.value, errno: n < 0 ? errno : EIO))
        }
    }

    static func read(_ dir: String, _ file: String) throws(GockerError) -> String {
        try performing("read cgroup") { () throws(SystemCallError) in try Sys.readText("\(dir)/\(file)") }
    }

    /// rmdir, retried while the kernel still counts exiting tasks.
    static func removeGroup(_ dir: String) throws(GockerError) {
        for attempt in 0..<200 {
            if rmdir(dir) == 0 || errno == ENOENT { return }
            let e = errno
            guard e == EBUSY, attempt < 199 else {
                throw GockerError(.system, "remove cgroup", cause: SystemCallError("rmdir", path: dir, errno: e))
            }
            var ts = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&ts, nil)
        }
    }
}
