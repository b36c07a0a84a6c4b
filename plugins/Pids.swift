import GockerCgroups
import GockerCore

/// pids: the most tasks the container may have at once.
public struct PidsController: ResourceController {
    public let name = "pids"

    public init() {}

    public func isRequested(by r: Spec.Resources) -> Bool { r.pids != nil }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        guard let limit = r.pids?.limit else { return [] }
        // 0 and -1 both mean no limit (runc, docker).
        return [CgroupSetting("pids.max", limit > 0 ? "\(limit)" : "max")]
    }

    public func stats(path: String, backend: any CgroupBackend) -> [String: UInt64] {
        guard let v = (try? backend.read(name, path: path, file: "pids.current")).flatMap({ UInt64($0.trimmed) }) else { return [:] }
        return ["pids.current": v]
    }
}
