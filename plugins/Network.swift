import GockerCgroups
import GockerCore

/// net_cls: the class id the container's packets carry (`net_cls.classid`),
/// for tc and netfilter to match on. OCI `linux.resources.network.classID`;
/// docker has no flag for it. A cgroup v1 controller only: v2 has no
/// net_cls (runc drops the value there; gocker refuses it), and a v1 host
/// that has not mounted it (the controller is in /proc/cgroups but in no
/// hierarchy) refuses it through the driver, naming the member. A
/// container gets a group in it only when it asks.
public struct NetClsController: ResourceController {
    public let name = "net_cls"
    /// No v2 controller of that name: on v2 the request is refused.
    public var v2Name: String? { nil }

    public init() {}

    public var resourceMembers: [ResourceMember] { [.shape("network", Spec.Resources.Network.self)] }

    /// 0 is none, as runc and crun take it.
    public func isRequested(by r: Spec.Resources) -> Bool { (r.network?.classID ?? 0) != 0 }

    public func request(in r: Spec.Resources) -> String { "linux.resources.network.classID" }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        guard let id = r.network?.classID, id != 0 else { return [] }
        guard version == .v1 else {
            throw GockerError(.invalidConfig, "linux.resources.network.classID \(id): cgroup v2 has no net_cls controller")
        }
        return [CgroupSetting("net_cls.classid", "\(id)")]
    }
}

/// net_prio: the priority of the container's packets on each host
/// interface named (`net_prio.ifpriomap`, one "NAME PRIORITY" a write).
/// OCI `linux.resources.network.priorities`; v1 only, as net_cls.
public struct NetPrioController: ResourceController {
    public let name = "net_prio"
    public var v2Name: String? { nil }

    public init() {}

    public func isRequested(by r: Spec.Resources) -> Bool { !(r.network?.priorities ?? []).isEmpty }

    public func request(in r: Spec.Resources) -> String { "linux.resources.network.priorities" }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        let priorities = r.network?.priorities ?? []
        guard !priorities.isEmpty else { return [] }
        guard version == .v1 else {
            throw GockerError(.invalidConfig, "linux.resources.network.priorities: cgroup v2 has no net_prio controller")
        }
        var out: [CgroupSetting] = []
        for (i, p) in priorities.enumerated() {
            if let key = p.unmodeled.keys.sorted().first(where: { !p.unmodeled[$0]!.isEmpty }) {
                throw GockerError(.invalidConfig, "linux.resources.network.priorities.\(i).\(key) is not supported")
            }
            guard Self.isInterfaceName(p.name) else {
                throw GockerError(.invalidConfig,
                    "linux.resources.network.priorities.\(i).name \"\(p.name)\" is not an interface name (1 to 15 characters, no /, : or spaces)")
            }
            // One line a write: the kernel reads one pair per write.
            out.append(CgroupSetting("net_prio.ifpriomap", "\(p.name) \(p.priority)\n"))
        }
        return out
    }

    /// What the kernel takes as a network interface's name.
    static func isInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), name != ".", name != ".." else { return false }
        return !bytes.contains { $0 <= 0x20 || $0 == 0x7f || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") }
    }
}

/// `linux.resources.network`, read by NetClsController (classID) and
/// NetPrioController (priorities).
extension Spec.Resources {
    public struct Network: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("classID", &classID)
            try v.field("priorities", &priorities)
        }

        /// The class id, as net_cls.classid takes it (0xAAAABBBB: major
        /// AAAA, minor BBBB); 0 or absent for none.
        public var classID: UInt32?
        public var priorities: [InterfacePriority]?

        public init(classID: UInt32? = nil, priorities: [InterfacePriority]? = nil) {
            self.classID = classID
            self.priorities = priorities
        }
    }

    /// One interface's priority.
    public struct InterfacePriority: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(name: "", priority: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("name", &name)
            try v.field("priority", &priority)
        }

        public var name: String
        public var priority: UInt32

        public init(name: String, priority: UInt32) {
            self.name = name
            self.priority = priority
        }
    }

    public var network: Network? {
        get { member("network") }
        set { setMember("network", newValue) }
    }
}
