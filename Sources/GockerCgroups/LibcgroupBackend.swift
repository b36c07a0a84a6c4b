import CGockerCore
import CLibcgroup
import Glibc
import GockerCore
import Synchronization

/// The backend over the system's libcgroup. libcgroup finds the hierarchies
/// itself (from /proc/mounts), so it always works on the real host.
///
/// libcgroup's quirks handled here: every kernel error comes back as
/// ECGOTHER (the real errno is in cgroup_get_last_errno); creation stops at
/// the first failure without undoing what it made (the driver removes what
/// was made); ownership is left alone (ignore_ownership=1) since gocker runs
/// as root and chowning every file doubles the cost.
///
/// On v2 the files have their v2 names (libcgroup 2.0 does not translate
/// v1 names there). What libcgroup has no call for is done on the group's
/// files: the group alone without a controller (controller ""), cgroup.kill,
/// and the device rules' eBPF program.
public final class LibcgroupBackend: CgroupBackend, @unchecked Sendable {
    public let name = "libcgroup"
    public let version: CgroupVersion
    /// How many libcgroup calls this backend made (reported by `--timings`
    /// and checked by the tests: the backend really goes through libcgroup).
    public var calls: Int { callCount.load(ordering: .relaxed) }
    private let callCount = Atomic<Int>(0)

    private static let initialised: Int32 = {
        gk_libcgroup_enter()
        defer { gk_libcgroup_leave() }
        return cgroup_init()
    }()
    /// The unified hierarchy on v2: where the version was detected.
    public let v2Root: String

    /// Fails when libcgroup cannot initialise (no cgroup mounts it understands).
    public init(version: CgroupVersion, v2Root: String = Paths.cgroupRoot) throws(GockerError) {
        self.version = version
        self.v2Root = v2Root
        let r = Self.initialised
        if r != 0 {
            throw GockerError(.system, "libcgroup cannot initialise: \(Self.describe(r))")
        }
    }

    static func describe(_ code: Int32) -> String {
        if code == Int32(ECGOTHER) { return errnoText(cgroup_get_last_errno()) }
        return String(cString: cgroup_strerror(code))
    }

    /// Every libcgroup call goes through here: counted, and with its reads
    /// of /proc/mounts served from the one copy (csrc/libcgroup_mounts.c).
    @discardableResult
    private func counted<T>(_ body: () -> T) -> T {
        callCount.add(1, ordering: .relaxed)
        gk_libcgroup_enter()
        defer { gk_libcgroup_leave() }
        return body()
    }

    /// A libcgroup group with one controller, freed after `body`.
    private func withGroup<T>(_ controller: String, _ path: String,
                              _ body: (OpaquePointer, OpaquePointer) throws(GockerError) -> T) throws(GockerError) -> T {
        guard let cg = counted({ cgroup_new_cgroup(path.isEmpty ? "/" : path) }) else {
            throw GockerError(.system, "libcgroup: cgroup_new_cgroup \(path) failed")
        }
        var group: OpaquePointer? = cg
        defer { counted { cgroup_free(&group) } }
        guard let ctrl = counted({ cgroup_add_controller(cg, controller) }) else {
            throw GockerError(.system, "libcgroup: cgroup_add_controller \(controller) failed")
        }
        return try body(cg, ctrl)
    }

    /// `what` is worded only on failure: describing the settings costs
    /// more than writing them.
    private func check(_ r: Int32, _ what: @autoclosure () -> String) throws(GockerError) {
        if r != 0 { throw GockerError(.system, "\(what()): \(Self.describe(r))") }
    }

    public func mountPoint(_ controller: String) -> String? {
        var mp: UnsafeMutablePointer<CChar>?
        guard counted({ cgroup_get_subsys_mount_point(controller, &mp) }) == 0, let mp else { return nil }
        defer { free(mp) }
        return String(cString: mp)
    }

    /// The group's directory: under the controller's mount point on v1,
    /// under the unified hierarchy on v2.
    func directory(_ controller: String, _ path: String) -> String? {
        guard let mp = version == .v2 ? v2Root : mountPoint(controller) else { return nil }
        return path.isEmpty ? mp : "\(mp)/\(path)"
    }

    /// On v2, "" is the group alone, with no controller: libcgroup has no call for that.
    private func groupAlone(_ controller: String) -> Bool { version == .v2 && controller.isEmpty }

    /// On v1, a controller in a v1 hierarchy of its own: libcgroup also
    /// names the unified hierarchy of a hybrid host as the mount point of
    /// a controller bound there (hugetlb on this kind of machine), whose
    /// files are v2's.
    public func offers(_ controller: String) -> Bool {
        if groupAlone(controller) { return true }
        guard let mp = mountPoint(controller) else { return false }
        return version == .v2 || gk_fs_type(mp) != 0x6367_7270
    }

    public func exists(_ controller: String, path: String) -> Bool {
        directory(controller, path).map(Sys.isDirectory) ?? false
    }

    public func create(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        if groupAlone(controller) {
            try CgroupFiles.makeV2Group(root: v2Root, path: path, enabling: "")
            try CgroupFiles.write(directory(controller, path)!, settings)
            return
        }
        if version == .v2 {
            // libcgroup 2.0.2 on v2 neither makes missing ancestors nor
            // enables a controller for a group that exists already (cpu after
            // cpuset): enable it from the root down and make the group here;
            // libcgroup then writes the values into it.
            try CgroupFiles.makeV2Group(root: v2Root, path: path, enabling: controller)
        }
        // libcgroup holds one value per file name in a group: it makes the
        // group with the settings up to the first file written again
        // (devices.allow, one rule a write); the rest, in order, go
        // through one descriptor per file, not one libcgroup call (a new
        // group object, a check of the mounts, an open) a rule.
        var first: [CgroupSetting] = []
        var rest = settings[...]
        while let s = rest.first, !first.contains(where: { $0.file == s.file }) {
            first.append(s)
            rest = rest.dropFirst()
        }
        try withGroup(controller, path) { (cg, ctrl) throws(GockerError) in
            for s in first {
                try check(counted { cgroup_add_value_string(ctrl, s.file, s.value) },
                          "libcgroup: set \(s.file) of \(controller):/\(path) to \"\(s.value)\"")
            }
            try check(counted { cgroup_create_cgroup(cg, 1) },
                      "libcgroup: create \(controller):/\(path) with \(first)")
        }
        if !rest.isEmpty {
            guard let dir = directory(controller, path) else {
                throw GockerError(.notFound, "the host offers no \(controller) cgroup controller")
            }
            try CgroupFiles.write(dir, Array(rest))
        }
    }

    /// Reads one file under the mount point libcgroup reports.
    /// (cgroup_get_cgroup would read every file of every controller of the
    /// group, and refuses the root group.)
    public func read(_ controller: String, path: String, file: String) throws(GockerError) -> String {
        guard let dir = directory(controller, path) else {
            throw GockerError(.notFound, "the host offers no \(controller) cgroup controller")
        }
        return try CgroupFiles.read(dir, file)
    }

    /// Looks in the directory libcgroup reports for the group.
    public func hasFile(_ controller: String, path: String, file: String) -> Bool {
        directory(controller, path).map { Sys.exists("\($0)/\(file)") } ?? false
    }

    /// Through cgroup_modify_cgroup, up to the first file written again;
    /// the rest as `create` writes them.
    public func write(_ controller: String, path: String, settings: [CgroupSetting]) throws(GockerError) {
        guard let dir = directory(controller, path) else {
            throw GockerError(.notFound, "the host offers no \(controller) cgroup controller")
        }
        if groupAlone(controller) { return try CgroupFiles.write(dir, settings) }
        var first: [CgroupSetting] = []
        var rest = settings[...]
        while let s = rest.first, !first.contains(where: { $0.file == s.file }) {
            first.append(s)
            rest = rest.dropFirst()
        }
        if !first.isEmpty {
            try withGroup(controller, path) { (cg, ctrl) throws(GockerError) in
                for s in first {
                    try check(counted { cgroup_add_value_string(ctrl, s.file, s.value) },
                              "libcgroup: set \(s.file) of \(controller):/\(path) to \"\(s.value)\"")
                }
                try check(counted { cgroup_modify_cgroup(cg) }, "libcgroup: write \(first) into \(controller):/\(path)")
            }
        }
        if !rest.isEmpty { try CgroupFiles.write(dir, Array(rest)) }
    }

    public func attach(_ controller: String, path: String, pid: Int32) throws(GockerError) {
        if groupAlone(controller) {
            return try CgroupFiles.write(directory(controller, path)!, CgroupSetting("cgroup.procs", "\(pid)"))
        }
        try withGroup(controller, path) { (cg, _) throws(GockerError) in
            try check(counted { cgroup_attach_task_pid(cg, pid) }, "libcgroup: attach \(pid) to \(controller):/\(path)")
        }
    }

    /// libcgroup's own way to join a group, cgroup_attach_task, writes the
    /// caller's thread id, which takes the kernel's global lock; a process
    /// that writes 0 to the same file joins without it (kernels since 6.1).
    /// libcgroup still names the directory.
    public func taskFile(_ controller: String, path: String) -> String? {
        version == .v1 ? directory(controller, path).map { "\($0)/tasks" } : nil
    }

    public func mountPoint(of controller: String) -> String? {
        version == .v1 ? mountPoint(controller) : nil
    }

    public func processes(_ controller: String, path: String) -> [Int32] {
        if groupAlone(controller) {
            return ((try? read(controller, path: path, file: "cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
        }
        var pids: UnsafeMutablePointer<pid_t>?
        var size: Int32 = 0
        let r = path.withCString { p in
            controller.withCString { c in
                counted { cgroup_get_procs(UnsafeMutablePointer(mutating: p), UnsafeMutablePointer(mutating: c), &pids, &size) }
            }
        }
        guard r == 0, let pids else { return [] }
        defer { free(pids) }
        return (0..<Int(size)).map { pids[$0] }
    }

    public func destroy(_ controller: String, path: String, waiting: Bool) throws(GockerError) {
        guard exists(controller, path: path) else { return }
        if groupAlone(controller) { return try CgroupFiles.removeGroup(directory(controller, path)!, waiting: waiting) }
        // Only an empty group is removed (a task still there is never moved
        // out to the parent, and libcgroup then reads no tasks file): one
        // whose last processes are still exiting is tried again.
        // Whether the group is gone is judged by its directory: libcgroup
        // 2.0 reports success for a group that was busy.
        let flags = Int32(CGFLAG_DELETE_EMPTY_ONLY.rawValue)
        let attempts = waiting ? 200 : 1
        for attempt in 0..<attempts {
            let r = try withGroup(controller, path) { (cg, _) throws(GockerError) in
                counted { cgroup_delete_cgroup_ext(cg, flags) }
            }
            if !exists(controller, path: path) { return }
            if attempt == attempts - 1 {
                try check(r, "libcgroup: delete \(controller):/\(path)")
                throw GockerError(.system, "libcgroup: delete \(controller):/\(path): the group still has processes or groups")
            }
            var ts = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&ts, nil)
        }
    }

    public func hierarchy(of controller: String) -> String { version == .v2 ? "" : controller }

    public func killAll(_ controller: String, path: String) -> Bool {
        version == .v2 && directory(controller, path).map(CgroupFiles.kill) == true
    }

    public func cloneDirectory(path: String) -> String? { version == .v2 ? directory("", path) : nil }

    public func attachDevicePolicy(_ rules: [DeviceRule], controller: String, path: String) throws(GockerError) {
        guard version == .v2, let dir = directory(controller, path) else {
            throw GockerError(.invalidConfig, "cgroup v1 takes device rules as files, not as a program")
        }
        try CgroupFiles.attachDevicePolicy(rules, dir: dir)
    }
}
