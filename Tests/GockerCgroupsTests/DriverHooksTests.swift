import Glibc
import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// A controller whose weight file depends on the host, as blkio's does
/// (runc: blkio.weight, else blkio.bfq.weight; on v2 io.bfq.weight, else
/// io.weight). The weight is the controller's own, not the resources'.
struct ProbingWeight: ResourceController {
    var name = "blkio"
    var v2Name: String? { "io" }
    var weight: Int?
    /// Whether it gets a group unasked.
    var always = false

    var alwaysGrouped: Bool { always }
    var probesGroup: Bool { true }
    func isRequested(by r: Spec.Resources) -> Bool { weight != nil }
    func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        throw GockerError(.invalidConfig, "asked without its group")
    }
    func settings(for r: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> [CgroupSetting] {
        guard let weight else { return [] }
        let files = group.version == .v1 ? ["blkio.weight", "blkio.bfq.weight"] : ["io.bfq.weight", "io.weight"]
        guard let file = files.first(where: group.has) else {
            throw GockerError(.invalidConfig, "the group has none of \(files)")
        }
        return [CgroupSetting(file, "\(weight)")]
    }
}

/// A new controller the host offers, not always grouped.
struct OnDemand: ResourceController {
    var name = "rdma"
    var asked = false
    func isRequested(by r: Spec.Resources) -> Bool { asked }
    func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] {
        asked ? [CgroupSetting("rdma.max", "0")] : []
    }
}

struct DriverHooksTests {
    // MARK: host probing

    @Test func v1ProbeFindsTheFileTheGroupHas() throws {
        let fs = try FakeCgroupfs()
        let mounts = ["blkio": fs.root + "/blkio"]
        // The kernel makes the files on mkdir; the fake has them beforehand.
        try fs.write("blkio/g/c/blkio.bfq.weight", "")
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: mounts), registry: try ControllerRegistry([ProbingWeight(weight: 300)]))
        let record = try driver.create(path: "g/c", resources: Spec.Resources())
        #expect(record.controllers == ["blkio"])
        #expect(fs.read("blkio/g/c/blkio.bfq.weight") == "300")
        #expect(fs.read("blkio/g/c/blkio.weight") == nil)
        // With both, the first choice wins.
        try fs.write("blkio/g/d/blkio.weight", "")
        try fs.write("blkio/g/d/blkio.bfq.weight", "")
        _ = try driver.create(path: "g/d", resources: Spec.Resources())
        #expect(fs.read("blkio/g/d/blkio.weight") == "300" && fs.read("blkio/g/d/blkio.bfq.weight") == "")
        // What the group at a path has now, for a plan without making it.
        #expect(try driver.settings(for: Spec.Resources(), path: "g/c").map(\.1) == [[CgroupSetting("blkio.bfq.weight", "300")]])
    }

    @Test func v1ProbeWithNeitherFileIsRefusedAndTheGroupRemoved() throws {
        let fs = try FakeCgroupfs()
        try Sys.mkdirAll(fs.root + "/blkio/g")
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["blkio": fs.root + "/blkio"]),
                                  registry: try ControllerRegistry([ProbingWeight(weight: 300)]))
        let error = try #require(throws: GockerError.self) { try driver.create(path: "g/c", resources: Spec.Resources()) }
        #expect(error.description == "the group has none of [\"blkio.weight\", \"blkio.bfq.weight\"]")
        #expect(!Sys.exists(fs.root + "/blkio/g/c"), "the group made for the probe is removed")
    }

    @Test func v2ProbeLooksInTheUnifiedGroup() throws {
        let fs = try FakeCgroupfs()
        try fs.write("cgroup.controllers", "cpu io memory\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("g/cgroup.subtree_control", "")
        try fs.write("g/c/io.weight", "")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: try ControllerRegistry([ProbingWeight(weight: 500)]))
        let record = try driver.create(path: "g/c", resources: Spec.Resources())
        #expect(record.controllers == ["blkio"])
        #expect(fs.read("g/c/io.weight") == "500")
        #expect(fs.read("g/cgroup.subtree_control") == "+io", "io enabled for the group before it was probed")
        try fs.write("g/d/io.bfq.weight", "")
        try fs.write("g/d/io.weight", "")
        _ = try driver.create(path: "g/d", resources: Spec.Resources())
        #expect(fs.read("g/d/io.bfq.weight") == "500" && fs.read("g/d/io.weight") == "")
    }

    @Test func backendsAnswerWhetherAGroupHasAFile() throws {
        let fs = try FakeCgroupfs()
        try fs.write("memory/g/memory.max", "")
        let v1 = CgroupfsV1Backend(mounts: ["memory": fs.root + "/memory"])
        #expect(v1.hasFile("memory", path: "g", file: "memory.max"))
        #expect(!v1.hasFile("memory", path: "g", file: "memory.low"))
        #expect(!v1.hasFile("pids", path: "g", file: "memory.max"), "a hierarchy the host lacks has no files")
        let v2 = CgroupfsV2Backend(root: fs.root + "/memory")
        #expect(v2.hasFile("memory", path: "g", file: "memory.max") && !v2.hasFile("", path: "g", file: "memory.low"))
        try v1.write("memory", path: "g", settings: [CgroupSetting("memory.max", "1")])
        #expect(fs.read("memory/g/memory.max") == "1")
    }

    /// libcgroup on this host, for real: a probing controller over the
    /// pids hierarchy (v1) or the unified one (v2) finds pids.max in the
    /// group it made, and its value is in the kernel's file.
    @Test func libcgroupProbesAndWritesARealGroup() throws {
        let version = CgroupDriver.detectVersion()
        let backend = try LibcgroupBackend(version: version)
        try #require(backend.offers("pids"), "the host offers the pids controller")
        struct PidsProbe: ResourceController {
            let name = "pids"
            var probesGroup: Bool { true }
            func isRequested(by r: Spec.Resources) -> Bool { true }
            func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] { [] }
            func settings(for r: Spec.Resources, in group: CgroupProbe) throws(GockerError) -> [CgroupSetting] {
                guard group.has("pids.max"), !group.has("pids.nonexistent") else {
                    throw GockerError(.invalidConfig, "pids.max not seen in the group")
                }
                return [CgroupSetting("pids.max", "42")]
            }
        }
        let driver = CgroupDriver(backend: backend, registry: try ControllerRegistry([PidsProbe()]))
        let path = "gocker-test-probe-\(getpid())"
        let record = try driver.create(path: path, resources: Spec.Resources())
        defer { try? driver.destroy(record) }
        #expect(try backend.read("pids", path: path, file: "pids.max").trimmed == "42")
        #expect(!backend.hasFile("pids", path: path, file: "pids.nonexistent"))
    }

    // MARK: who gets a group

    @Test func aControllerNotAlwaysGroupedGetsAGroupOnlyWhenAsked() throws {
        let fs = try FakeCgroupfs()
        try fs.write("cgroup.controllers", "cpuset cpu io memory rdma pids\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("g/cgroup.subtree_control", "")
        var unasked = BuiltinControllers.registry
        try unasked.register(OnDemand())
        let backend = CgroupfsV2Backend(root: fs.root)
        let plain = try CgroupDriver(backend: backend, registry: unasked).create(path: "g/a", resources: Spec.Resources())
        #expect(!plain.controllers.contains("rdma"))
        #expect(plain.controllers == BuiltinControllers.all.filter(\.alwaysGrouped).map(\.name))
        #expect(fs.read("g/cgroup.subtree_control") != "+rdma")

        var asked = BuiltinControllers.registry
        try asked.register(OnDemand(asked: true))
        try fs.write("g/b/rdma.max", "x")
        let record = try CgroupDriver(backend: backend, registry: asked).create(path: "g/b", resources: Spec.Resources())
        #expect(record.controllers.last == "rdma")
        #expect(fs.read("g/b/rdma.max") == "0")
        #expect(fs.read("g/cgroup.subtree_control") == "+rdma")
    }

    /// The controllers exec, stats, kill --all and rm rely on.
    @Test func theBuiltinsStayAlwaysGrouped() {
        let always = Set(BuiltinControllers.all.filter(\.alwaysGrouped).map(\.name))
        #expect(always.isSuperset(of: ["freezer", "pids", "memory", "cpu", "cpuacct", "devices", "cpuset"]))
    }
}
