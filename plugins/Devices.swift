import GockerCgroups
import GockerCore

/// devices: which device nodes the container may create (mknod) and open.
/// v1 writes devices.deny / devices.allow; on v2 the same rules become an
/// eBPF program attached to the group (`devicePolicy`): no files there.
public struct DevicesController: ResourceController {
    public let name = "devices"
    public let v2Name: String? = nil

    public init() {}

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

/// freezer (v1): no settings; the group `pause` and `commit --pause` use.
public struct FreezerController: ResourceController {
    public let name = "freezer"
    public let v2Name: String? = nil

    public init() {}

    public func isRequested(by r: Spec.Resources) -> Bool { false }
    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] { [] }
}
