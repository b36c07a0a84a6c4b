import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// `--hugetlb-limit SIZE:LIMIT` and `linux.resources.hugepageLimits`:
/// their reading against the huge page sizes a host the test describes
/// has, the OCI member, and the files for v1 and v2.
struct HugetlbTests {
    /// A host with 2MB and 1GB huge pages (as /sys/kernel/mm/hugepages
    /// names them: hugepages-2048kB, hugepages-1048576kB).
    static let controller = HugetlbController(pageSizes: { ["2MB", "1GB"] })

    func resources(_ values: [String], _ c: HugetlbController = controller) throws(GockerError) -> Spec.Resources {
        var flags = ResourceFlags()
        for v in values { flags.add("hugetlb-limit", v) }
        var r = Spec.Resources()
        try c.resources(from: flags, host: HostFacts(), into: &r)
        return r
    }

    func refusal(_ values: [String], _ c: HugetlbController = controller) -> String {
        do {
            _ = try resources(values, c)
            return "accepted"
        } catch { return error.description }
    }

    typealias Limit = Spec.Resources.HugepageLimit

    @Test(arguments: [
        ("2MB:4MB", Limit(pageSize: "2MB", limit: 4 << 20)),
        ("2M:4m", Limit(pageSize: "2MB", limit: 4 << 20)),
        ("2MiB:8388608", Limit(pageSize: "2MB", limit: 8 << 20)),
        ("2048k:0", Limit(pageSize: "2MB", limit: 0)),
        ("1GB:2g", Limit(pageSize: "1GB", limit: 2 << 30)),
        ("1g:1GiB", Limit(pageSize: "1GB", limit: 1 << 30)),
    ] as [(String, Limit)])
    func sizesInBinaryUnitsBecomeTheKernelsNames(text: String, expected: Limit) throws {
        #expect(try resources([text]).hugepageLimits == [expected])
    }

    @Test func repeatedFlagsOnePerSizeTheLastOfASizeCounting() throws {
        let r = try resources(["2MB:4MB", "1GB:1GB", "2M:8MB"])
        #expect(r.hugepageLimits == [Limit(pageSize: "2MB", limit: 8 << 20), Limit(pageSize: "1GB", limit: 1 << 30)])
        // No flag: nothing asked of hugetlb.
        let none = try resources([])
        #expect(none.hugepageLimits == nil)
        #expect(!Self.controller.isRequested(by: none))
        #expect(Self.controller.isRequested(by: r))
    }

    @Test(arguments: [
        ("3MB:4MB", "invalid argument \"3MB:4MB\" for --hugetlb-limit: the host has no 3MB huge pages (it has 2MB, 1GB)"),
        ("64KB:1MB", "invalid argument \"64KB:1MB\" for --hugetlb-limit: the host has no 64KB huge pages (it has 2MB, 1GB)"),
        ("2MB", "invalid argument \"2MB\" for --hugetlb-limit: expected SIZE:LIMIT (2MB:64MB)"),
        ("2MB:", "invalid argument \"2MB:\" for --hugetlb-limit: expected SIZE:LIMIT (2MB:64MB)"),
        (":4MB", "invalid argument \":4MB\" for --hugetlb-limit: expected SIZE:LIMIT (2MB:64MB)"),
        ("2MB:4MB:1", "invalid argument \"2MB:4MB:1\" for --hugetlb-limit: expected SIZE:LIMIT (2MB:64MB)"),
        ("huge:4MB", "invalid argument \"huge:4MB\" for --hugetlb-limit: invalid page size \"huge\""),
        ("0:4MB", "invalid argument \"0:4MB\" for --hugetlb-limit: invalid page size \"0\""),
        ("2MB:lots", "invalid argument \"2MB:lots\" for --hugetlb-limit: invalid limit \"lots\""),
        ("2MB:-1", "invalid argument \"2MB:-1\" for --hugetlb-limit: invalid limit \"-1\""),
        ("2MB:3MB", "invalid argument \"2MB:3MB\" for --hugetlb-limit: the limit must be a whole number of 2MB pages"),
    ] as [(String, String)])
    func badValuesAreRefusedNamingTheFlag(text: String, expected: String) {
        #expect(refusal([text]) == expected)
        // A bad value among good ones is refused too.
        #expect(refusal(["1GB:1GB", text]) == expected)
    }

    @Test func aHostWithoutHugePagesSaysSo() {
        #expect(refusal(["2MB:4MB"], HugetlbController(pageSizes: { [] }))
                == "invalid argument \"2MB:4MB\" for --hugetlb-limit: the host has no 2MB huge pages (it has none)")
    }

    @Test func theKernelsNamesOfPageSizes() {
        #expect(HugetlbController.kernelName(2048 << 10) == "2MB")
        #expect(HugetlbController.kernelName(1_048_576 << 10) == "1GB")
        #expect(HugetlbController.kernelName(64 << 10) == "64KB")
        #expect(HugetlbController.kernelName(32 << 20) == "32MB")
        #expect(HugetlbController.kernelName(16 << 30) == "16GB")
        // This host's, read from /sys/kernel/mm/hugepages: kernel names,
        // smallest first, each one a directory there.
        let live = HugetlbController.hostPageSizes()
        for name in live {
            let kb = name.hasSuffix("GB") ? Int(name.dropLast(2))! << 20 : name.hasSuffix("MB") ? Int(name.dropLast(2))! << 10
                : Int(name.dropLast(2))!
            #expect(Sys.isDirectory("/sys/kernel/mm/hugepages/hugepages-\(kb)kB"), "\(name)")
        }
        #expect(live.count == ((try? Sys.listDirectory("/sys/kernel/mm/hugepages")) ?? []).count)
    }

    // MARK: the OCI member

    func config(_ resources: String) throws -> Spec.Resources {
        try JSON.read(Spec.self, from: Array(#"{"ociVersion":"1","linux":{"resources":"#.utf8) + Array(resources.utf8)
                      + Array("}}".utf8), what: "config.json").linux!.resources!
    }

    @Test func theMemberRoundTrips() throws {
        let r = try config(#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304},{"pageSize":"1GB","limit":0}]}"#)
        try BuiltinControllers.registry.check(r)
        #expect(r.hugepageLimits == [Limit(pageSize: "2MB", limit: 4 << 20), Limit(pageSize: "1GB", limit: 0)])
        // Written from the accessor, read back the same.
        var built = Spec.Resources()
        built.hugepageLimits = r.hugepageLimits
        #expect(built == r)
        var spec = Spec()
        spec.linux = Spec.Linux()
        spec.linux?.resources = built
        let again = try JSON.read(Spec.self, from: spec.jsonBytes, what: "config.json")
        #expect(again.linux?.resources?.hugepageLimits == r.hugepageLimits)
    }

    @Test(arguments: [
        (#"{"hugepageLimits":[{"pageSize":"2MB","limit":1},{"pageSize":"1GB","limit":0,"rsvd":true}]}"#,
         "linux.resources.hugepageLimits.1.rsvd is not supported"),
        (#"{"hugepageLimits":[{"pageSize":"2MB"}]}"#, "missing field \"linux.resources.hugepageLimits.0.limit\""),
        (#"{"hugepageLimits":[{"pageSize":"2MB","limit":-1}]}"#, "linux.resources.hugepageLimits.0.limit"),
        (#"{"hugepageLimits":{"pageSize":"2MB","limit":1}}"#, "linux.resources.hugepageLimits"),
    ] as [(String, String)])
    func anUnmodeledOrMistypedMemberIsRefused(text: String, expected: String) throws {
        let r = try config(text)
        let error = #expect(throws: GockerError.self) { try BuiltinControllers.registry.check(r) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
    }

    // MARK: settings

    @Test func filesForV1AndV2() throws {
        let r = try resources(["2MB:4MB", "1GB:2GB"])
        #expect(try Self.controller.settings(for: r, version: .v1) == [
            CgroupSetting("hugetlb.2MB.limit_in_bytes", "4194304"), CgroupSetting("hugetlb.1GB.limit_in_bytes", "2147483648")])
        #expect(try Self.controller.settings(for: r, version: .v2) == [
            CgroupSetting("hugetlb.2MB.max", "4194304"), CgroupSetting("hugetlb.1GB.max", "2147483648")])
        #expect(try Self.controller.settings(for: Spec.Resources(), version: .v1) == [])
    }

    @Test(arguments: [
        (Limit(pageSize: "3MB", limit: 0),
         "linux.resources.hugepageLimits pageSize \"3MB\": the host has no 3MB huge pages (it has 2MB, 1GB)"),
        (Limit(pageSize: "big", limit: 0), "linux.resources.hugepageLimits pageSize \"big\": invalid page size \"big\""),
        (Limit(pageSize: "2MB", limit: 1000), "linux.resources.hugepageLimits limit 1000 for 2MB is not a whole number of pages"),
    ] as [(Limit, String)])
    func aConfigsPageSizeIsCheckedAsTheFlags(limit: Limit, expected: String) {
        var r = Spec.Resources()
        r.hugepageLimits = [limit]
        for version in [CgroupVersion.v1, .v2] {
            #expect(throws: GockerError.self) { try Self.controller.settings(for: r, version: version) }
            do { _ = try Self.controller.settings(for: r, version: version) } catch { #expect(error.description == expected) }
        }
    }

    @Test func aConfigsOtherSpellingIsWrittenAsTheKernelNamesIt() throws {
        var r = Spec.Resources()
        r.hugepageLimits = [Limit(pageSize: "2M", limit: 2 << 20)]
        #expect(try Self.controller.settings(for: r, version: .v2) == [CgroupSetting("hugetlb.2MB.max", "2097152")])
        r.hugepageLimits = [Limit(pageSize: "2M", limit: 2 << 20), Limit(pageSize: "2MB", limit: 4 << 20)]
        #expect(throws: GockerError.self) { try Self.controller.settings(for: r, version: .v1) }
    }

    // MARK: who gets a group

    /// A v2 host offering hugetlb: a container without the flag gets no
    /// hugetlb group (and hugetlb is not enabled for it); with it, one with
    /// the limit in it.
    @Test func onlyAContainerThatAsksGetsAHugetlbGroup() throws {
        let fs = try FakeCgroupfs()
        try fs.write("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("g/cgroup.subtree_control", "")
        let registry = try ControllerRegistry(BuiltinControllers.all.map { $0.name == "hugetlb" ? Self.controller : $0 })
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: registry)
        #expect(!HugetlbController().alwaysGrouped)
        #expect(try driver.plan(for: Spec.Resources()).allSatisfy { $0.controller.name != "hugetlb" })
        let plain = try driver.create(path: "g/a", resources: Spec.Resources())
        #expect(!plain.controllers.contains("hugetlb"))
        #expect(fs.read("g/cgroup.subtree_control")?.contains("hugetlb") != true)

        try fs.write("g/b/hugetlb.2MB.max", "max")
        let asked = try driver.create(path: "g/b", resources: try resources(["2MB:4MB"]))
        #expect(asked.controllers.contains("hugetlb"))
        #expect(fs.read("g/b/hugetlb.2MB.max") == "4194304")
        #expect(fs.read("g/cgroup.subtree_control") == "+hugetlb")
    }

    /// A host whose backend offers no hugetlb refuses the flag before it
    /// makes anything.
    @Test func aHostWithoutTheControllerRefusesTheLimit() throws {
        let fs = try FakeCgroupfs()
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["pids": fs.root + "/pids"]), registry: try ControllerRegistry([Self.controller]))
        let error = #expect(throws: GockerError.self) { try driver.create(path: "g", resources: try resources(["2MB:4MB"])) }
        #expect(error?.description == "linux.resources.hugepageLimits: the host offers no hugetlb cgroup controller "
            + "(it is not mounted as a cgroup v1 hierarchy on this host)")
        #expect(((try? Sys.listDirectory(fs.root)) ?? []) == [])
    }
}
