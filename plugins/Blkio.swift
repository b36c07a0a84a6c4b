import GockerCgroups
import GockerCore

/// blkio (v2: io): the container's share of block I/O, a weight from 10 to
/// 1000. Which file takes it depends on the host's I/O scheduler, so the
/// controller looks in the group first (as runc does): on v1 `blkio.weight`
/// (CFQ), else `blkio.bfq.weight` (BFQ); on v2 `io.bfq.weight` (BFQ, the
/// same scale), else `io.weight` (the kernel's I/O cost model, 1 to 10000).
/// A host with neither (no BFQ, no CFQ) is refused, naming the files.
public struct BlkioController: ResourceController {
    public let name = "blkio"
    public var v2Name: String? { "io" }
    public var probesGroup: Bool { true }

    public init() {}

    /// The weights docker and the kernel accept (0 leaves it unset).
    public static let weights: ClosedRange<UInt16> = 10...1000

    public static let options: [CommandOption<ResourceFlags>] = [
        // .signed: "-1" is a value, refused with the range like any other.
        .resource("blkio-weight", "weight", value: .signed, help: "Block I/O weight, 10 to 1000 (0: unset)."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shape("blockIO", Spec.Resources.BlockIO.self)] }

    /// docker's rule: 0 (unset) or 10 to 1000.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        guard let text = flags["blkio-weight"] else { return }
        guard let w = UInt16(text), w == 0 || Self.weights.contains(w) else {
            throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --blkio-weight: must be 0 (unset) or 10 to 1000")
        }
        if w != 0 { r.blockIO = Spec.Resources.BlockIO(weight: w) }
    }

    /// A weight of 0 is none (runc writes nothing for it).
    public func isRequested(by r: Spec.Resources) -> Bool { (r.blockIO?.weight ?? 0) != 0 }

    /// The files to try, first choice first.
    public static func weightFiles(_ version: CgroupVersion) -> [String] {
        version == .v1 ? ["blkio.weight", "blkio.bfq.weight"] : ["io.bfq.weight", "io.weight"]
    }

    /// The value `file` takes for `weight`: io.weight's scale is 1 to
    /// 10000, mapped linearly from 10 to 1000 (runc's conversion); every
    /// other file takes the weight as it is.
    public static func setting(_ file: String, weight: UInt16) -> CgroupSetting {
        guard file == "io.weight" else { return CgroupSetting(file, "\(weight)") }
        return CgroupSetting(file, "\(1 + (Int(weight) - 10) * 9999 / 990)")
    }

    /// The weight asked for, checked: nil when none.
    func weight(_ r: Spec.Resources) throws(GockerError) -> UInt16? {
        guard let w = r.blockIO?.weight, w != 0 else { return nil }
        guard Self.weights.contains(w) else {
            throw GockerError(.invalidConfig, "linux.resources.blockIO.weight \(w) is not valid: 10 to 1000 (0: unset)")
        }
        return w
    }

    /// Without looking at a group: what a group with the kernel's generic
    /// file takes (v1 blkio.weight, v2 io.weight). The driver asks
    /// `settings(for:in:)` instead, since this controller probes.
    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        guard let w = try weight(r) else { return [] }
        return [Self.setting(version == .v1 ? "blkio.weight" : "io.weight", weight: w)]
    }

    public func settings(for r: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> [CgroupSetting] {
        guard let w = try weight(r) else { return [] }
        let files = Self.weightFiles(group.version)
        guard let file = files.first(where: group.has) else {
            throw GockerError(.invalidConfig, "blkio weight \(w) (--blkio-weight, linux.resources.blockIO.weight): "
                + "this host's I/O scheduler offers no weight (no \(files[0]) or \(files[1]))")
        }
        return [Self.setting(file, weight: w)]
    }
}

/// `linux.resources.blockIO`, read by BlkioController. Only `weight` is
/// modeled: OCI's leafWeight, weightDevice and the throttle*Device lists
/// are left undeclared, so that the registry refuses a config giving them,
/// naming the member, rather than run it without the limit.
extension Spec.Resources {
    public struct BlockIO: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("weight", &weight)
        }

        /// 10 to 1000; 0 or absent for none.
        public var weight: UInt16?

        public init(weight: UInt16?) { self.weight = weight }
    }

    public var blockIO: BlockIO? {
        get { member("blockIO") }
        set { setMember("blockIO", newValue) }
    }
}
