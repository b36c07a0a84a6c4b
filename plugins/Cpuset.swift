import GockerCgroups
import GockerCore

/// cpuset: cpus and memory nodes. On v1 a new group starts with empty
/// cpus and mems and takes no task until both are set: prepare fills every
/// ancestor from its parent and gives the group its parent's values.
public struct CpusetController: ResourceController {
    public let name = "cpuset"

    public init() {}

    public func isRequested(by r: Spec.Resources) -> Bool { r.cpu?.cpus != nil || r.cpu?.mems != nil }

    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        var out: [CgroupSetting] = []
        if let cpus = r.cpu?.cpus { out.append(CgroupSetting("cpuset.cpus", try Self.validateList(cpus, what: "cpus"))) }
        if let mems = r.cpu?.mems { out.append(CgroupSetting("cpuset.mems", try Self.validateList(mems, what: "mems"))) }
        return out
    }

    /// "0-3,5": comma-separated numbers and ranges.
    public static func validateList(_ text: String, what: String) throws(GockerError) -> String {
        let ok = !text.isEmpty && text.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { part in
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else { return false }
            return bounds.count == 1 || Int(bounds[0])! <= Int(bounds[1])!
        }
        if !ok { throw GockerError(.invalidConfig, "invalid cpuset \(what) \"\(text)\"") }
        return text
    }

    public func prepare(path: String, backend: any CgroupBackend) throws(GockerError) -> [CgroupSetting] {
        guard backend.version == .v1 else { return [] }
        var parent = ""
        for part in path.split(separator: "/").dropLast() {
            let level = parent.isEmpty ? String(part) : "\(parent)/\(part)"
            let cpus = (try? backend.read(name, path: level, file: "cpuset.cpus"))?.trimmed ?? ""
            if !backend.exists(name, path: level) || cpus.isEmpty {
                try backend.create(name, path: level, settings: try inherited(from: parent, backend))
            }
            parent = level
        }
        return try inherited(from: parent, backend)
    }

    private func inherited(from parent: String, _ backend: any CgroupBackend) throws(GockerError) -> [CgroupSetting] {
        [
            CgroupSetting("cpuset.cpus", try backend.read(name, path: parent, file: "cpuset.cpus").trimmed),
            CgroupSetting("cpuset.mems", try backend.read(name, path: parent, file: "cpuset.mems").trimmed),
        ]
    }
}
