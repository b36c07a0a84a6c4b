import GockerCgroups
import GockerCore

/// pids: the most tasks the container may have at once.
public struct PidsController: ResourceController {
    public let name = "pids"
    public var alwaysGrouped: Bool { true }

    public init() {}

    public static let options: [CommandOption<ResourceFlags>] = [
        .resource("pids-limit", "n", value: .integer, help: "Most processes at once (-1: unlimited)."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shape("pids", Spec.Resources.Pids.self)] }

    /// 0 or less: unlimited (-1).
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        guard let text = flags["pids-limit"] else { return }
        let limit = Int64(text) ?? 0  // read as an integer already
        r.pids = Spec.Resources.Pids(limit: limit <= 0 ? -1 : limit)
    }

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

/// `linux.resources.pids`, read by PidsController.
extension Spec.Resources {
    public struct Pids: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(limit: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("limit", &limit)
        }

        /// -1 (or 0) for no limit.
        public var limit: Int64
        public init(limit: Int64) { self.limit = limit }
    }

    public var pids: Pids? {
        get { member("pids") }
        set { setMember("pids", newValue) }
    }
}
