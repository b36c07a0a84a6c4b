import Glibc
import GockerCore

/// Freezes and thaws a container's processes through its cgroup: v1's
/// freezer.state (FROZEN / THAWED), v2's cgroup.freeze (1 / 0). These are
/// the kernel's files whichever backend made the group. `commit --pause`
/// uses it so that the upper layer is read while nothing writes to it.
public struct Freezer: Sendable {
    /// The group's directory that holds the freezer's files.
    public let directory: String
    public let version: CgroupVersion

    /// The freezer of the groups in `record`, or nil when it has none.
    public init?(record: CgroupRecord, v1Mounts: [String: String] = CgroupfsV1Backend.hostMounts(),
                 v2Root: String = "/sys/fs/cgroup") {
        version = record.version
        switch record.version {
        case .v1:
            guard record.controllers.contains("freezer"), let mount = v1Mounts["freezer"] else { return nil }
            directory = "\(mount)/\(record.path)"
        case .v2:
            directory = "\(v2Root)/\(record.path)"
            guard Sys.exists(directory + "/cgroup.freeze") else { return nil }
        }
    }

    /// Freezes (or thaws) and waits until the kernel says it is done.
    public func set(frozen: Bool, timeout seconds: Double = 10) throws(GockerError) {
        let (file, value) = version == .v1 ? ("freezer.state", frozen ? "FROZEN" : "THAWED")
                                           : ("cgroup.freeze", frozen ? "1" : "0")
        try CgroupFiles.write(directory, CgroupSetting(file, value))
        let steps = Int(seconds * 200)
        for _ in 0..<max(steps, 1) {
            if isFrozen() == frozen { return }
            if version == .v1 && frozen {
                // v1 may stay FREEZING while a task is busy: asking again retries it.
                try CgroupFiles.write(directory, CgroupSetting(file, value))
            }
            var ts = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&ts, nil)
        }
        throw GockerError(.system, "\(frozen ? "freeze" : "thaw") \(directory): the kernel did not finish in \(Int(seconds)) s")
    }

    public func isFrozen() -> Bool {
        if version == .v1 {
            return ((try? CgroupFiles.read(directory, "freezer.state")) ?? "").hasPrefix("FROZEN")
        }
        let events = (try? CgroupFiles.read(directory, "cgroup.events")) ?? ""
        return events.split(separator: "\n").contains("frozen 1")
    }
}
