import GockerCore

/// One value a controller writes: `value` into `file` of the container's group.
public struct CgroupSetting: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var value: String

    public init(_ file: String, _ value: String) {
        self.file = file
        self.value = value
    }

    public var description: String { "\(file)=\(value)" }
}

/// A resource controller: what an OCI `linux.resources` means for one cgroup
/// controller, for v1 and for v2. Controllers are small values in plugins/,
/// listed once in the registry; the driver and the backends know none of them.
public protocol ResourceController: Sendable {
    /// The controller's name: its v1 hierarchy, and its name in v2's
    /// cgroup.controllers where it has one.
    var name: String { get }

    /// The name to enable in v2's cgroup.subtree_control, or nil when the
    /// controller has no v2 file interface (devices is an eBPF program there).
    var v2Name: String? { get }

    /// Whether `resources` asks anything of this controller.
    func isRequested(by resources: Spec.Resources) -> Bool

    /// The files and values `resources` turns into, in the order they must be
    /// written. A pure function of its arguments.
    func settings(for resources: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting]

    /// Work before the group is made (cpuset on v1 fills its ancestors), and
    /// settings the group needs even when nothing is asked of it. Requested
    /// settings replace these.
    func prepare(path: String, backend: any CgroupBackend) throws(GockerError) -> [CgroupSetting]

    /// What this controller reports about the group, by name ("memory.usage").
    func stats(path: String, backend: any CgroupBackend) -> [String: UInt64]
}

extension ResourceController {
    public var v2Name: String? { name }
    public func prepare(path: String, backend: any CgroupBackend) throws(GockerError) -> [CgroupSetting] { [] }
    public func stats(path: String, backend: any CgroupBackend) -> [String: UInt64] { [:] }
}

/// The ordered list of controllers the driver applies. The built-in list is
/// in plugins/Registry.swift.
public struct ControllerRegistry: Sendable {
    public private(set) var controllers: [any ResourceController] = []

    public init() {}

    public init(_ controllers: [any ResourceController]) throws(GockerError) {
        for c in controllers { try register(c) }
    }

    /// Adds a controller at the end; a second one with the same name is refused.
    public mutating func register(_ controller: any ResourceController) throws(GockerError) {
        guard !controllers.contains(where: { $0.name == controller.name }) else {
            throw GockerError(.alreadyExists, "a controller named \"\(controller.name)\" is already registered")
        }
        controllers.append(controller)
    }

    public var names: [String] { controllers.map(\.name) }
}
