import GockerCgroups
import GockerCore

/// hugetlb: the most huge-page memory of each page size the container may
/// use. A container gets a group in it only when it asks for a limit.
public struct HugetlbController: ResourceController {
    public let name = "hugetlb"

    /// The huge page sizes the host has, as the kernel names them in the
    /// controller's files ("2MB", "1GB"). Tests hand in their own.
    public let pageSizes: @Sendable () -> [String]

    public init(pageSizes: @escaping @Sendable () -> [String] = { HugetlbController.hostPageSizes() }) {
        self.pageSizes = pageSizes
    }

    public static let options: [CommandOption<ResourceFlags>] = [
        .resource("hugetlb-limit", "size:limit", repeatable: true,
                  help: "Huge page limit for one page size, e.g. 2MB:64MB (repeatable; the last of a size counts)."),
    ]
    public var options: [CommandOption<ResourceFlags>] { Self.options }
    public var resourceMembers: [ResourceMember] { [.shapes("hugepageLimits", Spec.Resources.HugepageLimit.self)] }

    /// Each `--hugetlb-limit SIZE:LIMIT`. SIZE is a page size in binary
    /// units as iSulad's flag takes it ("2MB", "2M", "2MiB", "2048k" are
    /// one size), the host must have it; LIMIT is bytes with docker's units,
    /// a whole number of pages. A size given again replaces its limit.
    public func resources(from flags: ResourceFlags, host: HostFacts, into r: inout Spec.Resources) throws(GockerError) {
        let values = flags.all("hugetlb-limit")
        guard !values.isEmpty else { return }
        var limits: [Spec.Resources.HugepageLimit] = []
        for text in values {
            func refuse(_ why: String) -> GockerError {
                GockerError(.invalidArgument, "invalid argument \"\(text)\" for --hugetlb-limit: \(why)")
            }
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw refuse("expected SIZE:LIMIT (2MB:64MB)") }
            let size: (name: String, bytes: Int64)
            do { size = try pageSize(String(parts[0])) } catch { throw refuse(error.message) }
            let limit: Int64
            do { limit = try ResourceFlags.parseSize(String(parts[1]), flag: "--hugetlb-limit") } catch {
                throw refuse("invalid limit \"\(parts[1])\"")
            }
            guard limit % size.bytes == 0 else {
                throw refuse("the limit must be a whole number of \(size.name) pages")
            }
            let entry = Spec.Resources.HugepageLimit(pageSize: size.name, limit: UInt64(limit))
            if let i = limits.firstIndex(where: { $0.pageSize == size.name }) { limits[i] = entry } else { limits.append(entry) }
        }
        r.hugepageLimits = limits
    }

    /// A page size as the kernel names it, with its bytes; refused unless
    /// the host has it, naming the sizes it has.
    func pageSize(_ text: String) throws(GockerError) -> (name: String, bytes: Int64) {
        guard let bytes = try? ResourceFlags.parseSize(text, flag: ""), bytes > 0 else {
            throw GockerError(.invalidArgument, "invalid page size \"\(text)\"")
        }
        let name = Self.kernelName(bytes)
        let host = pageSizes()
        guard host.contains(name) else {
            throw GockerError(.invalidArgument, "the host has no \(name) huge pages (it has \(host.isEmpty ? "none" : host.joined(by: ", ")))")
        }
        return (name, bytes)
    }

    /// The kernel's name of a page size in the controller's files: whole
    /// GB, else whole MB, else KB ("2MB", "1GB", "64KB").
    public static func kernelName(_ bytes: Int64) -> String {
        if bytes >= 1 << 30, bytes % (1 << 30) == 0 { return "\(bytes >> 30)GB" }
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20)MB" }
        return "\(bytes >> 10)KB"
    }

    /// The sizes in /sys/kernel/mm/hugepages ("hugepages-2048kB"), smallest
    /// first, by their kernel names.
    @Sendable public static func hostPageSizes() -> [String] {
        let names = (try? Sys.listDirectory("/sys/kernel/mm/hugepages")) ?? []
        var kb: [Int64] = []
        for n in names where n.hasPrefix("hugepages-") && n.hasSuffix("kB") {
            if let v = Int64(n.dropFirst("hugepages-".count).dropLast(2)), v > 0 { kb.append(v) }
        }
        return kb.sorted().map { kernelName($0 << 10) }
    }

    public func isRequested(by r: Spec.Resources) -> Bool { !(r.hugepageLimits ?? []).isEmpty }

    /// One file per page size: v1 `hugetlb.<size>.limit_in_bytes`, v2
    /// `hugetlb.<size>.max`. A config's page size is checked as the flag's.
    public func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        var out: [CgroupSetting] = []
        for l in r.hugepageLimits ?? [] {
            let size: (name: String, bytes: Int64)
            do { size = try pageSize(l.pageSize) } catch {
                throw GockerError(.invalidConfig, "linux.resources.hugepageLimits pageSize \"\(l.pageSize)\": \(error.message)")
            }
            let file = version == .v1 ? "hugetlb.\(size.name).limit_in_bytes" : "hugetlb.\(size.name).max"
            guard !out.contains(where: { $0.file == file }) else {
                throw GockerError(.invalidConfig, "linux.resources.hugepageLimits names the page size \(size.name) twice")
            }
            guard l.limit % UInt64(size.bytes) == 0 else {
                throw GockerError(.invalidConfig,
                    "linux.resources.hugepageLimits limit \(l.limit) for \(size.name) is not a whole number of pages")
            }
            out.append(CgroupSetting(file, "\(l.limit)"))
        }
        return out
    }
}

/// `linux.resources.hugepageLimits`, read by HugetlbController.
extension Spec.Resources {
    public struct HugepageLimit: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(pageSize: "", limit: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("pageSize", &pageSize)
            try v.field("limit", &limit)
        }

        /// "2MB", "1GB": the kernel's name of the page size.
        public var pageSize: String
        /// Bytes of huge pages of that size.
        public var limit: UInt64

        public init(pageSize: String, limit: UInt64) {
            self.pageSize = pageSize
            self.limit = limit
        }
    }

    public var hugepageLimits: [HugepageLimit]? {
        get { members("hugepageLimits") }
        set { setMembers("hugepageLimits", newValue) }
    }
}
