import CGockerCore
import Glibc
import GockerCore

/// What a cgroup backend does: groups made, written, read, joined, removed.
/// For v1 `controller` names the hierarchy; a v2 backend has one hierarchy
/// and enables the controller in the ancestors' subtree_control instead
/// ("" names no controller: the group alone).
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
    /// Whether the group has `file` (a host probe: which weight file the
    /// I/O scheduler offers).
    func hasFile(_ controller: String, path: String, file: String) -> Bool
    /// Writes `settings` in order into the group, which exists.
    func write(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError)
    func attach(_ controller: String, path: String, pid: Int32) throws(GockerError)
    func processes(_ controller: String, path: String) -> [Int32]
    /// Removes the group; a missing one is not an error. `waiting`: a group
    /// whose last processes are still exiting is tried again for a while.
    func destroy(_ controller: String, path: String, waiting: Bool) throws(GockerError)

    /// The hierarchy `controller`'s groups live in: controllers that share
    /// one share their groups, which are joined, listed and removed once.
    func hierarchy(of controller: String) -> String
    /// Kills every process of the group at once (cgroup.kill); false where
    /// the kernel has no such file.
    func killAll(_ controller: String, path: String) -> Bool
    /// The group's cgroup2 directory, for clone3 with CLONE_INTO_CGROUP; nil
    /// on v1, where a process must join one group per hierarchy.
    func cloneDirectory(path: String) -> String?
    /// Attaches the device rules to the group as an eBPF program (v2).
    func attachDevicePolicy(_ rules: [DeviceRule], controller: String, path: String) throws(GockerError)
    /// The v1 group's `tasks` file, through which a single-threaded process
    /// joins the group itself (writing 0: kernels since 6.1 then take no
    /// global lock, as they do to move another process); nil on v2.
    func taskFile(_ controller: String, path: String) -> String?
    /// The directory the v1 hierarchy of `controller` is mounted on; nil on
    /// v2, or where the host has none.
    func mountPoint(of controller: String) -> String?
}

extension CgroupBackend {
    /// Removes the group, waiting for processes still exiting.
    public func destroy(_ controller: String, path: String) throws(GockerError) {
        try destroy(controller, path: path, waiting: true)
    }
}

/// What v1 has: a group per hierarchy, no cgroup.kill, devices as files.
extension CgroupBackend {
    public func hierarchy(of controller: String) -> String { controller }
    public func killAll(_ controller: String, path: String) -> Bool { false }
    public func cloneDirectory(path: String) -> String? { nil }
    public func taskFile(_ controller: String, path: String) -> String? { nil }
    public func mountPoint(of controller: String) -> String? { nil }
    public func attachDevicePolicy(_ rules: [DeviceRule], controller: String, path: String) throws(GockerError) {
        throw GockerError(.invalidConfig, "cgroup \(version.rawValue) takes device rules as files, not as a program")
    }
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
        mounts(inMountinfo: (try? Sys.readText("/proc/self/mountinfo")) ?? "")
    }

    /// Each v1 controller's hierarchy in the text of a mountinfo file: a
    /// line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] -
    /// FSTYPE SOURCE SUPEROPTIONS" (spaces in paths are escaped as \040).
    /// Read as bytes: on the start path of a container with a "cgroup"
    /// mount, where a search for " - " in each line as a String cost
    /// a third of a millisecond.
    static func mounts(inMountinfo text: String) -> [String: String] {
        let known = ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio",
                     "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"]
        var out: [String: String] = [:]
        for line in text.utf8.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard let dash = fields.firstIndex(where: { $0.count == 1 && $0.first == UInt8(ascii: "-") }),
                  dash > 5, fields.count > dash + 3, fields[dash + 1].elementsEqual("cgroup".utf8) else { continue }
            let mountPoint = String(decoding: fields[4], as: UTF8.self)
            for option in fields[dash + 3].split(separator: UInt8(ascii: ",")) {
                let name = String(decoding: option, as: UTF8.self)
                if known.contains(name) && out[name] == nil { out[name] = mountPoint }
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

    /// Co-mounted controllers (cpu,cpuacct) share one directory.
    public func hierarchy(of controller: String) -> String { mounts[controller] ?? controller }

    public func exists(_ controller: String, path: String) -> Bool {
        (try? dir(controller, path)).map(Sys.isDirectory) ?? false
    }

    public func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        let d = try dir(controller, path)
        try performing("create cgroup \(d)") { () throws(SystemCallError) in try Sys.mkdirAll(d) }
        try CgroupFiles.write(d, settings)
    }

    public func read(_ controller: String, path: String, file: String) throws(GockerError) -> String {
        try CgroupFiles.read(try dir(controller, path), file)
    }

    public func hasFile(_ controller: String, path: String, file: String) -> Bool {
        (try? dir(controller, path)).map { Sys.exists("\($0)/\(file)") } ?? false
    }

    public func write(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        try CgroupFiles.write(try dir(controller, path), settings)
    }

    public func attach(_ controller: String, path: String, pid: Int32) throws(GockerError) {
        try CgroupFiles.write(try dir(controller, path), CgroupSetting("cgroup.procs", "\(pid)"))
    }

    public func taskFile(_ controller: String, path: String) -> String? {
        (try? dir(controller, path)).map { "\($0)/tasks" }
    }

    public func mountPoint(of controller: String) -> String? { mounts[controller] }

    public func processes(_ controller: String, path: String) -> [Int32] {
        ((try? read(controller, path: path, file: "cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    public func destroy(_ controller: String, path: String, waiting: Bool) throws(GockerError) {
        try CgroupFiles.removeGroup(try dir(controller, path), waiting: waiting)
    }
}

/// The raw cgroupfs backend for v2: one unified hierarchy; a controller is
/// enabled in every ancestor's cgroup.subtree_control before it is used.
/// The root is a constructor argument, so that tests can point it at a fake
/// cgroupfs in a temporary directory.
public struct CgroupfsV2Backend: CgroupBackend {
    public let name = "cgroupfs"
    public let version = CgroupVersion.v2
    public let root: String
    /// The group whose cgroup.controllers says what is offered (the root;
    /// rootless, the subtree delegated to the user).
    public let offering: String

    public init(root: String = Paths.cgroupRoot, offering: String? = nil) {
        self.root = root
        self.offering = offering ?? root
    }

    func dir(_ path: String) -> String { path.isEmpty ? root : "\(root)/\(path)" }

    /// "" (the group alone) always; a controller when the offering group
    /// lists it.
    public func offers(_ controller: String) -> Bool {
        if controller.isEmpty { return true }
        let available = ((try? Sys.readText(offering + "/cgroup.controllers")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        return available.contains { $0 == controller }
    }

    public func exists(_ controller: String, path: String) -> Bool { Sys.isDirectory(dir(path)) }

    public func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        try CgroupFiles.makeV2Group(root: root, path: path, enabling: controller)
        try CgroupFiles.write(dir(path), settings)
    }

    public func read(_ controller: String, path: String, file: String) throws(GockerError) -> String {
        try CgroupFiles.read(dir(path), file)
    }

    public func hasFile(_ controller: String, path: String, file: String) -> Bool { Sys.exists("\(dir(path))/\(file)") }

    public func write(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        try CgroupFiles.write(dir(path), settings)
    }

    public func attach(_ controller: String, path: String, pid: Int32) throws(GockerError) {
        try CgroupFiles.write(dir(path), CgroupSetting("cgroup.procs", "\(pid)"))
    }

    public func processes(_ controller: String, path: String) -> [Int32] {
        ((try? CgroupFiles.read(dir(path), "cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    public func destroy(_ controller: String, path: String, waiting: Bool) throws(GockerError) {
        try CgroupFiles.removeGroup(dir(path), waiting: waiting)
    }

    public func hierarchy(of controller: String) -> String { "" }
    public func killAll(_ controller: String, path: String) -> Bool { CgroupFiles.kill(dir(path)) }
    public func cloneDirectory(path: String) -> String? { dir(path) }

    public func attachDevicePolicy(_ rules: [DeviceRule], controller: String, path: String) throws(GockerError) {
        try CgroupFiles.attachDevicePolicy(rules, dir: dir(path))
    }
}

/// File access shared by the cgroupfs backends.
enum CgroupFiles {
    static func write(_ dir: String, _ s: CgroupSetting) throws(GockerError) {
        try write(dir, [s])
    }

    /// Each setting in order, one write each, each file opened once: a
    /// file written again (devices.allow, one rule a write) is written
    /// through the descriptor it was first opened with.
    static func write(_ dir: String, _ settings: [CgroupSetting]) throws(GockerError) {
        var open: [(file: String, fd: Int32)] = []
        defer { for o in open { Sys.close(o.fd) } }
        for s in settings {
            let path = "\(dir)/\(s.file)"
            let fd: Int32
            if let o = open.first(where: { $0.file == s.file }) {
                fd = o.fd
            } else {
                fd = Glibc.open(path, O_WRONLY | O_CLOEXEC | O_TRUNC)
                guard fd >= 0 else {
                    throw GockerError(.system, "write cgroup", cause: SystemCallError("open", path: path, errno: errno))
                }
                open.append((s.file, fd))
            }
            let bytes = Array(s.value.utf8)
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n == bytes.count else {
                throw GockerError(.system, "write cgroup", cause: SystemCallError("write", path: path, data: s.value, errno: n < 0 ? errno : EIO))
            }
        }
    }

    static func read(_ dir: String, _ file: String) throws(GockerError) -> String {
        try performing("read cgroup") { () throws(SystemCallError) in try Sys.readText("\(dir)/\(file)") }
    }

    /// Makes the v2 group `path` under `root` and its missing ancestors,
    /// enabling `controller` (unless "") in the subtree_control of the root
    /// and of every ancestor, where it is not yet enabled.
    static func makeV2Group(root: String, path: String, enabling controller: String) throws(GockerError) {
        var current = root
        for part in path.split(separator: "/") {
            if !controller.isEmpty {
                let enabled = ((try? read(current, "cgroup.subtree_control")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
                if !enabled.contains(where: { $0 == controller }) {
                    try write(current, CgroupSetting("cgroup.subtree_control", "+\(controller)"))
                }
            }
            current += "/\(part)"
            let next = current
            try performing("create cgroup \(next)") { () throws(SystemCallError) in try Sys.mkdirAll(next) }
        }
    }

    /// Writes 1 to the group's cgroup.kill (Linux 5.14 and later): false
    /// where there is none.
    static func kill(_ dir: String) -> Bool {
        guard Sys.exists("\(dir)/cgroup.kill") else { return false }
        return (try? write(dir, CgroupSetting("cgroup.kill", "1"))) != nil
    }

    /// Loads the device rules as a BPF_PROG_TYPE_CGROUP_DEVICE program and
    /// attaches it to the cgroup2 directory `dir`.
    static func attachDevicePolicy(_ rules: [DeviceRule], dir: String) throws(GockerError) {
        let fd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw GockerError(.system, "attach the device rules", cause: SystemCallError("open", path: dir, errno: errno))
        }
        defer { Sys.close(fd) }
        let c = rules.map { r in
            gk_dev_rule(
                allow: r.allow ? 1 : 0, type: CChar(UInt8(ascii: r.type == "c" ? "c" : r.type == "b" ? "b" : "a")),
                major: r.major ?? -1, minor: r.minor ?? -1,
                access: (r.access.contains("m") ? UInt32(GK_DEV_MKNOD) : 0) | (r.access.contains("r") ? UInt32(GK_DEV_READ) : 0)
                    | (r.access.contains("w") ? UInt32(GK_DEV_WRITE) : 0))
        }
        var log = [CChar](repeating: 0, count: 512)
        let r = gk_dev_attach(fd, c, c.count, &log, log.count)
        guard r == 0 else {
            let verifier = Sys.string(log).split(separator: "\n").first.map { " (verifier: \($0))" } ?? ""
            throw GockerError(.system, "attach the device rules to cgroup \(dir) as an eBPF program\(verifier)",
                              cause: SystemCallError("bpf", path: dir, errno: -r))
        }
    }

    /// rmdir, retried while the kernel still counts exiting tasks.
    static func removeGroup(_ dir: String, waiting: Bool) throws(GockerError) {
        let attempts = waiting ? 200 : 1
        for attempt in 0..<attempts {
            if rmdir(dir) == 0 || errno == ENOENT { return }
            let e = errno
            guard e == EBUSY, attempt < attempts - 1 else {
                throw GockerError(.system, "remove cgroup", cause: SystemCallError("rmdir", path: dir, errno: e))
            }
            var ts = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&ts, nil)
        }
    }
}

/// No groups at all: a rootless gocker on a host that has delegated no
/// cgroups to its user (any cgroup v1 host, and v2 without a subtree of
/// the user's own). Its containers run without limits, and a limit is
/// refused with `refusal`, never dropped.
public struct NoCgroupBackend: CgroupBackend {
    public let name = "none"
    public let version: CgroupVersion
    /// Why there are no groups, for the refusal of a limit.
    public let refusal: String

    public init(version: CgroupVersion, refusal: String) {
        self.version = version
        self.refusal = refusal
    }

    public func offers(_ controller: String) -> Bool { false }
    public func exists(_ controller: String, path: String) -> Bool { false }
    public func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        throw GockerError(.invalidConfig, refusal)
    }
    public func read(_ controller: String, path: String, file: String) throws(GockerError) -> String {
        throw GockerError(.invalidConfig, refusal)
    }
    public func hasFile(_ controller: String, path: String, file: String) -> Bool { false }
    public func write(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        throw GockerError(.invalidConfig, refusal)
    }
    public func attach(_ controller: String, path: String, pid: Int32) throws(GockerError) {
        throw GockerError(.invalidConfig, refusal)
    }
    public func processes(_ controller: String, path: String) -> [Int32] { [] }
    public func destroy(_ controller: String, path: String, waiting: Bool) throws(GockerError) {}
}
