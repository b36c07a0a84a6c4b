import Glibc
import GockerCgroups
import GockerCore

/// devices: which device nodes the container may create (mknod) and open.
/// v1 writes devices.deny / devices.allow; on v2 the same rules become an
/// eBPF program attached to the group (`devicePolicy`): no files there.
public struct DevicesController: ResourceController {
    public let name = "devices"
    public let v2Name: String? = nil
    public var alwaysGrouped: Bool { true }

    public init() {}

    public static let options: [CommandOption<ResourceFlags>] = [
        .resource("device", "device", repeatable: true, help: "Add a host device: /dev/HOST[:/dev/CONTAINER[:rwm]]."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shapes("devices", Spec.Resources.DeviceRule.self)] }

    /// docker's allow-list and a rule for each `--device`; with
    /// `--privileged`, every device.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        if flags.privileged {
            r.devices = [Spec.Resources.DeviceRule(allow: true, access: "rwm")]
        } else {
            r.devices = Self.dockerDeviceRules + (try Self.devices(from: flags, host: host).map { $0.rule })
        }
    }

    /// Docker's device allow-list: everything denied, except creating any
    /// node (mknod) and using null, zero, full, random, urandom, tty,
    /// console, ptmx and the pts.
    public static let dockerDeviceRules: [Spec.Resources.DeviceRule] = [
        .init(allow: false, access: "rwm"),
        .init(allow: true, type: "c", access: "m"),
        .init(allow: true, type: "b", access: "m"),
    ] + [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)].map {
        Spec.Resources.DeviceRule(allow: true, type: "c", major: $0.0, minor: $0.1, access: "rwm")
    } + [.init(allow: true, type: "c", major: 136, access: "rwm")]

    /// Each `--device HOST[:CONTAINER[:PERMISSIONS]]`: the node to create
    /// in the container and the rule that allows it.
    public static func devices(from flags: ResourceFlags,
                               host: HostFacts) throws(GockerError) -> [(node: Spec.Device, rule: Spec.Resources.DeviceRule)] {
        var out: [(Spec.Device, Spec.Resources.DeviceRule)] = []
        for text in flags.all("device") {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (1...3).contains(parts.count), parts[0].hasPrefix("/") else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device: expected /dev/HOST[:/dev/CONTAINER[:rwm]]")
            }
            let hostPath = parts[0]
            var target = parts.count > 1 ? parts[1] : hostPath
            var access = "rwm"
            if parts.count == 2, !parts[1].hasPrefix("/"), parts[1].allSatisfy({ "rwm".contains($0) }) {
                access = parts[1]
                target = hostPath
            }
            if parts.count == 3 { access = parts[2] }
            guard target.hasPrefix("/"), !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device: bad container path or permissions")
            }
            let node: HostFacts.DeviceNode
            switch host.device(hostPath) {
            case .failure(let cause):
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device", cause: cause)
            case .success(nil):
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device: \(hostPath) is not a device")
            case .success(let found?):
                node = found
            }
            out.append((Spec.Device(type: node.type, path: target, major: node.major, minor: node.minor,
                                    fileMode: node.mode, uid: 0, gid: 0),
                        Spec.Resources.DeviceRule(allow: true, type: node.type, major: node.major, minor: node.minor, access: access)))
        }
        return out
    }

    public func isRequested(by r: Spec.Resources) -> Bool { !(r.devices ?? []).isEmpty }

    /// One rule in the kernel's v1 syntax: "c 1:3 rwm", "a *:* rwm".
    public static func rule(_ d: Spec.Resources.DeviceRule) throws(GockerError) -> String {
        let type = d.type ?? "a"
        guard ["a", "c", "b"].contains(type) else { throw GockerError(.invalidConfig, "invalid device type \"\(type)\"") }
        let access = d.access ?? "rwm"
        guard !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else {
            throw GockerError(.invalidConfig, "invalid device access \"\(access)\"")
        }
        if type == "a" { return "a *:* \(access)" }
        // The kernel's device numbers: 12-bit majors, 20-bit minors.
        if let m = d.major, m > 0xfff { throw GockerError(.invalidConfig, "invalid device major number \(m)") }
        if let m = d.minor, m > 0xfffff { throw GockerError(.invalidConfig, "invalid device minor number \(m)") }
        let major = d.major.map { $0 < 0 ? "*" : "\($0)" } ?? "*"
        let minor = d.minor.map { $0 < 0 ? "*" : "\($0)" } ?? "*"
        return "\(type) \(major):\(minor) \(access)"
    }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        let rules = r.devices ?? []
        let written = try rules.map { d throws(GockerError) in
            CgroupSetting(d.allow ? "devices.allow" : "devices.deny", try Self.rule(d))
        }
        return version == .v1 ? written : []
    }

    public func devicePolicy(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [DeviceRule]? {
        guard version == .v2, let rules = r.devices, !rules.isEmpty else { return nil }
        return try rules.map { d throws(GockerError) in
            _ = try Self.rule(d)  // the same checks as v1
            let type = d.type ?? "a"
            return DeviceRule(allow: d.allow, type: type, major: type == "a" ? nil : d.major.flatMap { $0 < 0 ? nil : $0 },
                              minor: type == "a" ? nil : d.minor.flatMap { $0 < 0 ? nil : $0 }, access: d.access ?? "rwm")
        }
    }
}

/// freezer: no settings; the group `pause` and `commit --pause` use
/// (freezer.state on v1; on v2 every group has cgroup.freeze).
public struct FreezerController: ResourceController {
    public let name = "freezer"
    public let v2Name: String? = nil
    public var alwaysGrouped: Bool { true }

    public init() {}

    public func isRequested(by r: Spec.Resources) -> Bool { false }
    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] { [] }

    /// "freezer.frozen": 1 while the group is frozen or freezing.
    public func stats(path: String, backend: any CgroupBackend) -> [String: UInt64] {
        guard let state = try? backend.read(backendName(backend.version), path: path, file: stateFile(backend.version)).trimmed else { return [:] }
        return ["freezer.frozen": state == "FROZEN" || state == "FREEZING" || state == "1" ? 1 : 0]
    }

    func stateFile(_ version: CgroupVersion) -> String { version == .v1 ? "freezer.state" : "cgroup.freeze" }

    /// Freezes or thaws every process of the group (`pause`, `unpause`,
    /// `commit --pause`) and returns once the kernel says it is done.
    public func setFrozen(_ frozen: Bool, path: String, backend: any CgroupBackend) throws(GockerError) {
        let file = stateFile(backend.version)
        let want = backend.version == .v1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0")
        let ask = { () throws(GockerError) in
            try backend.create(self.backendName(backend.version), path: path, settings: [CgroupSetting(file, want)])
        }
        try ask()
        // v2's cgroup.freeze reads back what was asked; cgroup.events says when it is done.
        func done() -> Bool {
            let key = backendName(backend.version)
            if backend.version == .v1 { return (try? backend.read(key, path: path, file: file).trimmed) == want }
            let events = (try? backend.read(key, path: path, file: "cgroup.events")) ?? ""
            return events.split(separator: "\n").contains("frozen \(want)")
        }
        for _ in 0..<500 {
            if done() { return }
            // v1 may stay FREEZING while a task is busy: asking again retries it.
            if backend.version == .v1 && frozen { try ask() }
            var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&ts, nil)
        }
        throw GockerError(.system, "the freezer of \(path) did not become \(want) within 5 s")
    }
}

/// `linux.resources.devices`, read by DevicesController.
extension Spec.Resources {
    public struct DeviceRule: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(allow: false) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("allow", &allow)
            try v.field("type", &type)
            try v.field("major", &major)
            try v.field("minor", &minor)
            try v.field("access", &access)
        }

        public var allow: Bool
        /// "a" (all), "c" or "b"; nil means all.
        public var type: String?
        /// nil means any (*).
        public var major: Int64?
        public var minor: Int64?
        /// Some of "rwm"; nil means all.
        public var access: String?

        public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
            self.allow = allow
            self.type = type
            self.major = major
            self.minor = minor
            self.access = access
        }
    }

    public var devices: [DeviceRule]? {
        get { members("devices") }
        set { setMembers("devices", newValue) }
    }
}
