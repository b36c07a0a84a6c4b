import GockerCgroups
import GockerCore

/// cpuset: cpus and memory nodes. On v1 a new group starts with empty
/// cpus and mems and takes no task until both are set: prepare fills every
/// ancestor from its parent and gives the group its parent's values.
public struct CpusetController: ResourceController {
    public let name = "cpuset"
    public var alwaysGrouped: Bool { true }

    public init() {}

    public static let options: [CommandOption<ResourceFlags>] = [
        .resource("cpuset-cpus", aliases: ["cpuset"], "list", help: "CPUs the container may run on (0-3, 0,1)."),
        .resource("cpuset-mems", "list", help: "Memory nodes the container may use (0-3, 0,1)."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }

    /// Each list well formed, and every CPU or node in it online here.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        let cpusetCpus = flags["cpuset-cpus"], cpusetMems = flags["cpuset-mems"]
        guard cpusetCpus != nil || cpusetMems != nil else { return }
        var cpu = r.cpu ?? Spec.Resources.CPU()
        if let list = cpusetCpus {
            do { _ = try Self.validateList(list, what: "cpus") } catch {
                throw GockerError(.invalidArgument, "invalid argument \"\(list)\" for --cpuset-cpus: expected a list like 0-2,4")
            }
            let missing = Self.expand(list).subtracting(host.onlineCPUs())
            guard missing.isEmpty else {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(list)\" for --cpuset-cpus: CPUs \(missing.sorted()) are not available on this host")
            }
            cpu.cpus = list
        }
        if let list = cpusetMems {
            do { _ = try Self.validateList(list, what: "mems") } catch {
                throw GockerError(.invalidArgument, "invalid argument \"\(list)\" for --cpuset-mems: expected a list like 0-1")
            }
            let missing = Self.expand(list).subtracting(host.onlineMems())
            guard missing.isEmpty else {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(list)\" for --cpuset-mems: memory nodes \(missing.sorted()) are not available on this host")
            }
            cpu.mems = list
        }
        r.cpu = cpu
    }

    /// The numbers a valid list names.
    static func expand(_ list: String) -> Set<Int> {
        var out = Set<Int>()
        for part in list.split(separator: ",") {
            let b = part.split(separator: "-").compactMap { Int($0) }
            if b.count == 1 { out.insert(b[0]) } else if b.count == 2 { out.formUnion(b[0]...max(b[0], b[1])) }
        }
        return out
    }

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
