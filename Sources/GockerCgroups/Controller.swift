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

/// One rule of a device allow-list (OCI `linux.resources.devices`). On v1
/// it is a line of devices.allow or devices.deny; on v2 the rules together
/// become an eBPF program attached to the group.
public struct DeviceRule: Equatable, Sendable {
    public var allow: Bool
    /// "a" (any device), "c" or "b".
    public var type: String
    /// nil: any.
    public var major: Int64?
    public var minor: Int64?
    /// Some of "rwm".
    public var access: String

    public init(allow: Bool, type: String, major: Int64?, minor: Int64?, access: String) {
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
    }
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

    /// On v2, the device rules to enforce with an eBPF program attached to
    /// the group, when there are files for them on v1 only (nil: none).
    /// A pure function, like `settings`.
    func devicePolicy(for resources: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [DeviceRule]?

    /// Work before the group is made (cpuset on v1 fills its ancestors), and
    /// settings the group needs even when nothing is asked of it. Requested
    /// settings replace these.
    func prepare(path: String, backend: any CgroupBackend) throws(GockerError) -> [CgroupSetting]

    /// What this controller reports about the group, by name ("memory.usage").
    func stats(path: String, backend: any CgroupBackend) -> [String: UInt64]

    /// One of `stats`, read alone when the controller can (the default
    /// reads them all).
    func stat(_ key: String, path: String, backend: any CgroupBackend) -> UInt64?

    /// Its docker flags (`run`/`create` list them in registry order, and
    /// `--help` shows them): `.resource` entries, whose values land in a
    /// `ResourceFlags` under the option's long name.
    var options: [CommandOption<ResourceFlags>] { get }

    /// Its flags' values turned into OCI resources, with docker's rules
    /// (units, ranges, cross-flag defaults, host checks against `host`);
    /// every bad value refused naming its flag. Called in registry order.
    func resources(from flags: ResourceFlags, host: HostFacts, into resources: inout Spec.Resources) throws(GockerError)

    /// Whether every container gets a group in this controller, asked for
    /// or not (freezer for pause, memory for stats and OOM reports, ...).
    /// Otherwise the group is made only when `isRequested`, so that a new
    /// controller adds nothing to a plain start.
    var alwaysGrouped: Bool { get }

    /// The members of `linux.resources` this controller reads, each
    /// declared with its shape (an extension of Spec.Resources in the
    /// controller's file). A member no controller declares is refused.
    var resourceMembers: [ResourceMember] { get }

    /// Whether `settings(for:in:)` looks at the group's files: the driver
    /// then makes the group first (with `prepare`'s settings), asks, and
    /// writes the answer into it.
    var probesGroup: Bool { get }

    /// The settings, for a controller whose files depend on the host (a
    /// weight file the I/O scheduler may or may not offer): `group` says
    /// which files the container's group has. The default is
    /// `settings(for:version:)`.
    func settings(for resources: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> [CgroupSetting]

    /// `update`: the resources to write into the container's existing
    /// group, given what it holds now. A controller whose file combines
    /// values fills in from the group what an update leaves out (v2's
    /// memory.swap.max is the swap beyond memory.max: `--memory-swap`
    /// alone is reckoned from the current limit). The default: as given.
    func updating(_ resources: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> Spec.Resources

    /// What `resources` asks of this controller, for a message:
    /// "linux.resources.hugepageLimits". The default names the members it
    /// declares that `resources` gives.
    func request(in resources: Spec.Resources) -> String
}

/// What a controller may ask about the container's group while choosing
/// its settings: the cgroup version, and whether a file is there. Made by
/// the driver over its backend, for one controller and one group.
public struct CgroupProbe: Sendable {
    public let backend: any CgroupBackend
    /// The backend's name of the controller (`backendName`).
    public let controller: String
    public let path: String

    public init(backend: any CgroupBackend, controller: String, path: String) {
        self.backend = backend
        self.controller = controller
        self.path = path
    }

    public var version: CgroupVersion { backend.version }

    /// Whether the group has `file` ("blkio.weight").
    public func has(_ file: String) -> Bool { backend.hasFile(controller, path: path, file: file) }

    /// What the group's `file` holds now, without its last newline; nil
    /// when it cannot be read.
    public func read(_ file: String) -> String? {
        (try? backend.read(controller, path: path, file: file))?.trimmed
    }
}

extension ResourceController {
    public var v2Name: String? { name }
    public func devicePolicy(for resources: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [DeviceRule]? { nil }

    /// The name a backend knows this controller by: its v1 hierarchy; on v2
    /// its name in cgroup.controllers, or "" for what every v2 group has
    /// without a controller to enable (cpu.stat, cgroup.freeze, a device
    /// program).
    public func backendName(_ version: CgroupVersion) -> String {
        version == .v1 ? name : (v2Name ?? "")
    }
    public func prepare(path: String, backend: any CgroupBackend) throws(GockerError) -> [CgroupSetting] { [] }
    public func stats(path: String, backend: any CgroupBackend) -> [String: UInt64] { [:] }
    public func stat(_ key: String, path: String, backend: any CgroupBackend) -> UInt64? {
        stats(path: path, backend: backend)[key]
    }
    public var options: [CommandOption<ResourceFlags>] { [] }
    public func resources(from flags: ResourceFlags, host: HostFacts, into resources: inout Spec.Resources) throws(GockerError) {}
    public var alwaysGrouped: Bool { false }
    public var resourceMembers: [ResourceMember] { [] }
    public var probesGroup: Bool { false }
    public func settings(for resources: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> [CgroupSetting] {
        try settings(for: resources, version: group.version)
    }
    public func updating(_ resources: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> Spec.Resources { resources }
    public func request(in resources: Spec.Resources) -> String {
        let given = resourceMembers.map(\.key).filter { resources.unmodeled[$0].map { !$0.isEmpty } ?? false }
        return given.isEmpty ? "the \(name) limits" : given.map { "linux.resources.\($0)" }.joined(by: ", ")
    }
}

/// The ordered list of controllers the driver applies. The built-in list is
/// in plugins/Registry.swift.
/// A member of `linux.resources` and how to check it: it reads as its
/// shape, and holds nothing the shape does not model.
public struct ResourceMember {
    public let key: String
    /// The member's shape (the element's, for an array).
    public let shape: any JSONShape.Type
    /// Reads the member as its shape; the path below the member of the
    /// first thing given that the shape does not model ("swappiness",
    /// "0.foo"), or nil.
    @usableFromInline let firstUnmodeled: (JSONValue) throws(JSONError) -> String?

    @inlinable init(key: String, shape: any JSONShape.Type, firstUnmodeled: @escaping (JSONValue) throws(JSONError) -> String?) {
        self.key = key
        self.shape = shape
        self.firstUnmodeled = firstUnmodeled
    }

    /// An object of shape `T`. (Inlinable: specialized in the
    /// controller's module, so that checking it instantiates nothing at
    /// run time.)
    @inlinable public static func shape<T: JSONShape>(_ key: String, _: T.Type) -> ResourceMember {
        ResourceMember(key: key, shape: T.self) { v throws(JSONError) in firstGiven(try T(json: v).unmodeled) }
    }

    /// An array of objects of shape `T`.
    @inlinable public static func shapes<T: JSONShape>(_ key: String, _: T.Type) -> ResourceMember {
        ResourceMember(key: key, shape: T.self) { v throws(JSONError) in
            let items: [T] = try JSONFields.array(v)
            for i in items.indices {
                if let k = firstGiven(items[i].unmodeled) { return "\(i).\(k)" }
            }
            return nil
        }
    }

    /// The first name, by order, whose value is not empty.
    @usableFromInline static func firstGiven(_ members: [String: JSONValue]) -> String? {
        if members.isEmpty { return nil }
        return members.keys.sorted().first { !members[$0]!.isEmpty }
    }
}

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

    /// `resources` holds only members a controller declares, each reading
    /// as its shape and holding nothing the shape does not model; anything
    /// else given (not null, "", [] or {}) is refused, naming it: a limit
    /// no controller enforces must not pass for enforced.
    public func check(_ resources: Spec.Resources) throws(GockerError) {
        for key in resources.unmodeled.keys.sorted() {
            let value = resources.unmodeled[key]!
            var declared: ResourceMember?
            for c in controllers {
                if let m = c.resourceMembers.first(where: { $0.key == key }) { declared = m; break }
            }
            guard let declared else {
                if value.isEmpty { continue }
                throw GockerError(.invalidConfig, "linux.resources.\(key) is not supported: no cgroup controller of gocker reads it")
            }
            let extra: String?
            do { extra = try declared.firstUnmodeled(value) } catch {
                throw GockerError(.invalidConfig, "config.json: \(error.under(key).under("resources").under("linux"))")
            }
            if let extra { throw GockerError(.invalidConfig, "linux.resources.\(key).\(extra) is not supported") }
        }
    }

    /// The controllers' flags, in registry order: `run`'s and `create`'s
    /// resource options.
    public var options: [CommandOption<ResourceFlags>] {
        var out: [CommandOption<ResourceFlags>] = []
        for c in controllers { out += c.options }
        return out
    }

    /// The OCI resources `flags` ask for, each controller adding its part
    /// in registry order.
    public func resources(from flags: ResourceFlags, host: HostFacts = .live) throws(GockerError) -> Spec.Resources {
        var r = Spec.Resources()
        for c in controllers { try c.resources(from: flags, host: host, into: &r) }
        return r
    }
}

/// The "key value" lines of memory.stat, cpu.stat, memory.events, ...
public enum CgroupStatFile {
    public static func field(_ text: String, _ key: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix(key + " ") {
            return UInt64(line.dropFirst(key.count + 1).trimmed)
        }
        return nil
    }
}
