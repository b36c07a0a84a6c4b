import CGockerCore
import Glibc
import GockerCore

/// Applies the registry's controllers to one container: every controller the
/// host offers gets a group, limits or not; prepare -> create -> set, then
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
    public static func detectVersion(root: String = "/sys/fs/cgroup") -> CgroupVersion {
        gk_fs_type(root) == 0x6367_7270 ? .v2 : .v1
    }

    /// The backend called `name` ("libcgroup" or "cgroupfs") for the host.
    public static func hostBackend(named name: String, version: CgroupVersion) throws(GockerError) -> any CgroupBackend {
        switch name {
        case "libcgroup": return try LibcgroupBackend(version: version)
        case "cgroupfs":
            return version == .v2 ? CgroupfsV2Backend() : CgroupfsV1Backend(mounts: CgroupfsV1Backend.hostMounts())
        default:
            throw GockerError(.invalidArgument, "invalid cgroup backend \"\(name)\": expected libcgroup or cgroupfs")
        }
    }

    /// A cgroup path from a config: relative to each hierarchy's root,
    /// without "..", "." or empty components.
    public static func validatePath(_ text: String) throws(GockerError) -> String {
        let parts = text.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.isEmpty, !parts.contains(where: { $0 == ".." || $0 == "." }) else {
            throw GockerError(.invalidConfig, "invalid cgroupsPath \"\(text)\"")
        }
        return parts.joined(separator: "/")
    }

    /// Each controller the host offers, with the settings `resources` asks
    /// of it. Refuses a request the host cannot serve.
    public func settings(for resources: Spec.Resources) throws(GockerError) -> [(any ResourceController, [CgroupSetting])] {
        var out: [(any ResourceController, [CgroupSetting])] = []
        for c in registry.controllers {
            let requested = c.isRequested(by: resources)
            guard backend.offers(c.name) else {
                if requested { throw GockerError(.invalidConfig, "the host offers no \(c.name) cgroup controller") }
                continue
            }
            out.append((c, requested ? try c.settings(for: resources, version: backend.version) : []))
        }
        return out
    }

    /// prepare -> create -> set. On failure removes what it made.
    public func create(path: String, resources: Spec.Resources) throws(GockerError) -> CgroupRecord {
        let planned = try settings(for: resources)
        var made: [String] = []
        do throws(GockerError) {
            for (c, requested) in planned {
                var all = try c.prepare(path: path, backend: backend)
                all.removeAll { d in requested.contains { $0.file == d.file } }
                made.append(c.name)
                try backend.create(c.name, path: path, settings: all + requested)
            }
        } catch {
            for name in made.reversed() { try? backend.destroy(name, path: path) }
            throw error
        }
        return CgroupRecord(backend: backend.name, version: backend.version, path: path, controllers: made)
    }

    public func attach(_ record: CgroupRecord, pid: Int32) throws(GockerError) {
        for name in record.controllers { try backend.attach(name, path: record.path, pid: pid) }
    }

    /// Every process in the container's groups.
    public func processes(_ record: CgroupRecord) -> [Int32] {
        var seen = Set<Int32>()
        for name in record.controllers { seen.formUnion(backend.processes(name, path: record.path)) }
        return seen.sorted()
    }

    /// Removes every group the record names; tries them all, reports the first failure.
    public func destroy(_ record: CgroupRecord) throws(GockerError) {
        var first: GockerError?
        for name in record.controllers.reversed() {
            do { try backend.destroy(name, path: record.path) } catch { first = first ?? error }
        }
        if let first { throw first }
    }

    /// What the controllers report, merged ("memory.oom_kill", "pids.current",
    /// ...); with `only`, what that one controller reports.
    public func stats(_ record: CgroupRecord, only: String? = nil) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for c in registry.controllers where record.controllers.contains(c.name) && (only == nil || only == c.name) {
            out.merge(c.stats(path: record.path, backend: backend)) { a, _ in a }
        }
        return out
    }
}
