import CGockerCore
import Glibc
import GockerCore

/// Applies the registry's controllers to one container: every always-grouped
/// controller the host offers gets a group, limits or not, and any other one
/// when the resources ask something of it; prepare -> create -> set, then
/// attach once the first process exists.
public struct CgroupDriver: Sendable {
    public let backend: any CgroupBackend
    public let registry: ControllerRegistry

    public init(backend: any CgroupBackend, registry: ControllerRegistry) {
        self.backend = backend
        self.registry = registry
    }

    /// statfs of the cgroup root: the cgroup2 magic means v2, anything else
    /// (hybrid included) v1.
    public static func detectVersion(root: String = Paths.cgroupRoot) -> CgroupVersion {
        gk_fs_type(root) == 0x6367_7270 ? .v2 : .v1
    }

    /// The backend called `name` ("libcgroup" or "cgroupfs") for the host.
    public static func hostBackend(named name: String, version: CgroupVersion) throws(GockerError) -> any CgroupBackend {
        switch name {
        case "libcgroup": return try LibcgroupBackend(version: version)
        case "cgroupfs":
            return version == .v2 ? CgroupfsV2Backend() : CgroupfsV1Backend(mounts: CgroupfsV1Backend.hostMounts())
        case "none": return NoCgroupBackend(version: version, refusal: rootlessRefusal(version))
        default:
            throw GockerError(.invalidArgument, "invalid cgroup backend \"\(name)\": expected libcgroup or cgroupfs")
        }
    }

    /// Why a rootless gocker has no groups here.
    public static func rootlessRefusal(_ version: CgroupVersion) -> String {
        version == .v1
            ? "a rootless container has no cgroups on this host (cgroup v1 delegates none to a user), so it runs without limits"
            : "a rootless container has no cgroups here (no cgroup2 subtree of this user's own with controllers enabled), so it runs without limits"
    }

    /// A cgroup path from a config: relative to each hierarchy's root,
    /// without "..", "." or empty components.
    public static func validatePath(_ text: String) throws(GockerError) -> String {
        let parts = Sys.components(text)
        guard !parts.isEmpty, !parts.contains(where: { $0 == ".." || $0 == "." }) else {
            throw GockerError(.invalidConfig, "invalid cgroupsPath \"\(text)\"")
        }
        return parts.joined(by: "/")
    }

    /// What the driver does for one controller: its settings, and on v2 the
    /// device rules it enforces as a program.
    public struct Plan {
        public var controller: any ResourceController
        /// For a controller that `probesGroup`, asked of it once its group
        /// is made: nil until then.
        public var settings: [CgroupSetting]?
        public var devicePolicy: [DeviceRule]?
        /// What the controller's `prepare` gave for the group, once done
        /// ahead (`prepare(_:path:)`): nil, `create` asks it then.
        public var prepared: [CgroupSetting]? = nil
    }

    /// Each controller that gets a group (always-grouped ones the host
    /// offers, and those `resources` asks something of), with what it asks.
    /// Refuses a request the host cannot serve.
    public func plan(for resources: Spec.Resources) throws(GockerError) -> [Plan] {
        try registry.check(resources)
        var out: [Plan] = []
        for c in registry.controllers {
            let requested = c.isRequested(by: resources)
            guard requested || c.alwaysGrouped else { continue }
            guard backend.offers(c.backendName(backend.version)) else {
                if requested, let none = backend as? NoCgroupBackend {
                    throw GockerError(.invalidArgument, "\(c.request(in: resources)): \(none.refusal)")
                }
                if requested {
                    let delegated = (backend as? CgroupfsV2Backend).map { $0.offering != $0.root } ?? false
                    let why = backend.version == .v1 ? "it is not mounted as a cgroup v1 hierarchy on this host"
                        : delegated ? "the cgroup2 subtree delegated to this user does not list it in cgroup.controllers"
                        : "the cgroup2 root does not list it in cgroup.controllers"
                    throw GockerError(.invalidConfig, "\(c.request(in: resources)): the host offers no \(c.name) cgroup controller (\(why))")
                }
                continue
            }
            guard requested else {
                out.append(Plan(controller: c, settings: [], devicePolicy: nil))
                continue
            }
            out.append(Plan(controller: c, settings: c.probesGroup ? nil : try c.settings(for: resources, version: backend.version),
                            devicePolicy: try c.devicePolicy(for: resources, version: backend.version)))
        }
        return out
    }

    /// Each controller that gets a group, with the settings `resources`
    /// asks of it. A controller that probes its group is asked about the
    /// group at `path` as it is now.
    public func settings(for resources: Spec.Resources, path: String = "") throws(GockerError) -> [(any ResourceController, [CgroupSetting])] {
        var out: [(any ResourceController, [CgroupSetting])] = []
        for p in try plan(for: resources) {
            let c = p.controller
            if let settings = p.settings { out.append((c, settings)) } else {
                out.append((c, try c.settings(for: resources, in: probe(c, path))))
            }
        }
        return out
    }

    /// What `controller` may ask about the group at `path`.
    public func probe(_ controller: any ResourceController, _ path: String) -> CgroupProbe {
        CgroupProbe(backend: backend, controller: controller.backendName(backend.version), path: path)
    }

    /// prepare -> create -> set (and on v2 the device program, before any
    /// process is in the group). A controller that probes its group has it
    /// made with `prepare`'s settings first, then is asked, then its
    /// settings are written. On failure removes what it made.
    public func create(path: String, resources: Spec.Resources) throws(GockerError) -> CgroupRecord {
        try create(path: path, resources: resources, planned: try plan(for: resources))
    }

    /// `planned` with each controller's work before its group is made done
    /// now, for a group at `path` (cpuset on v1 reads its parent's CPUs and
    /// memory nodes, and fills missing ancestors): a start does it before
    /// the clone, so that `create` after it only makes the groups.
    public func prepare(_ planned: [Plan], path: String) throws(GockerError) -> [Plan] {
        var out = planned
        for i in out.indices where out[i].prepared == nil {
            out[i].prepared = try out[i].controller.prepare(path: path, backend: backend)
        }
        return out
    }

    /// `create` with the plan made already for `resources` (`plan(for:)`).
    public func create(path: String, resources: Spec.Resources, planned: [Plan]) throws(GockerError) -> CgroupRecord {
        var made: [String] = []
        do throws(GockerError) {
            for p in planned {
                let c = p.controller
                var all: [CgroupSetting]
                if let prepared = p.prepared { all = prepared } else { all = try c.prepare(path: path, backend: backend) }
                made.append(c.name)
                let key = c.backendName(backend.version)
                if let settings = p.settings {
                    all.removeAll { d in settings.contains { $0.file == d.file } }
                    try backend.create(key, path: path, settings: all + settings)
                } else {
                    try backend.create(key, path: path, settings: all)
                    let settings = try c.settings(for: resources, in: probe(c, path))
                    if !settings.isEmpty { try backend.write(key, path: path, settings: settings) }
                }
                if let rules = p.devicePolicy { try backend.attachDevicePolicy(rules, controller: key, path: path) }
            }
        } catch {
            let partial = CgroupRecord(backend: backend.name, version: backend.version, path: path, controllers: made)
            for key in groups(partial).reversed() { try? backend.destroy(key, path: path) }
            throw error
        }
        return CgroupRecord(backend: backend.name, version: backend.version, path: path, controllers: made)
    }

    /// `update`: the settings `resources` asks of each controller, written
    /// into the container's existing groups. A controller it never got a
    /// group for is refused. Device rules are left as they are, as runc
    /// leaves them (containerd sends the whole linux.resources, the
    /// default rules among them). A controller may first complete the
    /// request from what its group holds (`updating`). Where the kernel refuses a controller's
    /// settings in their order (v1: a memory limit above the current
    /// memory+swap one), they are written the other way round.
    public func update(_ record: CgroupRecord, resources: Spec.Resources) throws(GockerError) {
        var resources = resources
        resources.unmodeled["devices"] = nil
        for c in registry.controllers where record.controllers.contains(c.name) && c.isRequested(by: resources) {
            resources = try c.updating(resources, in: probe(c, record.path))
        }
        for (c, settings) in try settings(for: resources, path: record.path) where c.isRequested(by: resources) {
            guard record.controllers.contains(c.name) else {
                throw GockerError(.invalidState, "the container has no \(c.name) group: its \(c.name) limits can only be set at create")
            }
            guard !settings.isEmpty else { continue }
            let key = c.backendName(backend.version)
            do { try backend.write(key, path: record.path, settings: settings) } catch {
                guard settings.count > 1 else { throw error }
                try backend.write(key, path: record.path, settings: settings.reversed())
            }
        }
    }

    /// The backend's name of one controller of each distinct group the
    /// record names (one per hierarchy: a single one on v2), preferring a
    /// real controller to "" (the v2 group alone).
    func groups(_ record: CgroupRecord) -> [String] {
        var out: [(hierarchy: String, key: String)] = []
        for name in record.controllers {
            let key = registry.controllers.first { $0.name == name }?.backendName(backend.version) ?? name
            let h = backend.hierarchy(of: key)
            if let i = out.firstIndex(where: { $0.hierarchy == h }) {
                if out[i].key.isEmpty { out[i].key = key }
            } else {
                out.append((h, key))
            }
        }
        return out.map(\.key)
    }

    public func attach(_ record: CgroupRecord, pid: Int32) throws(GockerError) {
        for key in groups(record) { try backend.attach(key, path: record.path, pid: pid) }
    }

    /// The `tasks` file of each of the record's groups, for a new
    /// single-threaded process to join them itself (v1); nil where a
    /// backend has none.
    public func taskFiles(_ record: CgroupRecord) -> [String]? {
        var files: [String] = []
        for key in groups(record) {
            guard let f = backend.taskFile(key, path: record.path) else { return nil }
            files.append(f)
        }
        return files
    }

    /// Where the v1 hierarchy of each of the record's controllers is
    /// mounted, by controller name (what a "cgroup" mount binds): from the
    /// backend, which found the hierarchies when it came up, instead of a
    /// second read of the host's mount table. Empty on v2.
    public func mountPoints(_ record: CgroupRecord) -> [String: String] {
        var out: [String: String] = [:]
        for name in record.controllers {
            let key = registry.controllers.first { $0.name == name }?.backendName(backend.version) ?? name
            if let mount = backend.mountPoint(of: key) { out[name] = mount }
        }
        return out
    }

    /// The directory to clone the first process straight into (clone3 with
    /// CLONE_INTO_CGROUP), when all its groups are that one cgroup2 directory.
    public func cloneDirectory(_ record: CgroupRecord) -> String? {
        groups(record).count == 1 ? backend.cloneDirectory(path: record.path) : nil
    }

    /// Every process in the container's groups.
    public func processes(_ record: CgroupRecord) -> [Int32] {
        var seen = Set<Int32>()
        for key in groups(record) { seen.formUnion(backend.processes(key, path: record.path)) }
        return seen.sorted()
    }

    /// SIGKILL to every process in the container's groups: through
    /// cgroup.kill where the kernel has it, else one by one.
    public func killAll(_ record: CgroupRecord) {
        for key in groups(record) where !backend.killAll(key, path: record.path) {
            for pid in backend.processes(key, path: record.path) { _ = Glibc.kill(pid, SIGKILL) }
        }
    }

    /// Removes every group the record names; tries them all, reports the
    /// first failure. `waiting`: see CgroupBackend.destroy.
    public func destroy(_ record: CgroupRecord, waiting: Bool = true) throws(GockerError) {
        var first: GockerError?
        for key in groups(record).reversed() {
            do { try backend.destroy(key, path: record.path, waiting: waiting) } catch { first = first ?? error }
        }
        if let first { throw first }
    }

    /// What `controller` reports as `key` ("memory.oom_kill"), or nil.
    public func stat(_ record: CgroupRecord, controller: String, _ key: String) -> UInt64? {
        guard record.controllers.contains(controller),
              let c = registry.controllers.first(where: { $0.name == controller }) else { return nil }
        return c.stat(key, path: record.path, backend: backend)
    }

    /// What the controllers report, merged ("memory.oom_kill", "pids.current",
    /// ...).
    public func stats(_ record: CgroupRecord) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for c in registry.controllers where record.controllers.contains(c.name) {
            out.merge(c.stats(path: record.path, backend: backend)) { a, _ in a }
        }
        return out
    }
}
