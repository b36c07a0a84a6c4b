import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// blkio: `--blkio-weight` and OCI `linux.resources.blockIO.weight`, and
/// the weight file picked by what the group has, on fake v1 and v2 trees
/// through the cgroupfs backends.
struct BlkioTests {
    func resources(_ pairs: [(String, String)]) throws(GockerError) -> Spec.Resources {
        var f = ResourceFlags()
        for (name, value) in pairs { f.add(name, value) }
        return try BuiltinControllers.registry.resources(from: f, host: ControllerFlagsTests.host)
    }

    func refusal(_ value: String) -> String {
        do {
            _ = try resources([("blkio-weight", value)])
            return "accepted"
        } catch { return error.description }
    }

    func weight(_ w: UInt16?) -> Spec.Resources {
        var r = Spec.Resources()
        r.blockIO = Spec.Resources.BlockIO(weight: w)
        return r
    }

    // MARK: the flag

    @Test func flagTakesTenToAThousandAndZeroLeavesItUnset() throws {
        #expect(try resources([("blkio-weight", "10")]).blockIO == Spec.Resources.BlockIO(weight: 10))
        #expect(try resources([("blkio-weight", "1000")]).blockIO == Spec.Resources.BlockIO(weight: 1000))
        #expect(try resources([("blkio-weight", "300"), ("blkio-weight", "500")]).blockIO?.weight == 500, "the last counts")
        #expect(try resources([("blkio-weight", "0")]).blockIO == nil)
        #expect(try resources([]).blockIO == nil)
        for bad in ["9", "1001", "x", "-1", "65546", ""] {
            #expect(refusal(bad) == "invalid argument \"\(bad)\" for --blkio-weight: must be 0 (unset) or 10 to 1000")
        }
    }

    @Test func flagIsOnRunsLineAndTakesADashedValue() throws {
        let option = try #require(BuiltinControllers.options.first { $0.name == "blkio-weight" })
        #expect(option.value == .signed)
        #expect(BuiltinControllers.registry.options.contains { $0.name == "blkio-weight" })
    }

    // MARK: OCI linux.resources.blockIO

    func spec(_ resourcesJSON: String) throws -> Spec {
        try JSON.read(Spec.self, from: Array(#"{"ociVersion":"1","linux":{"resources":"#.utf8) + Array(resourcesJSON.utf8) + Array("}}".utf8),
                      what: "config.json")
    }

    @Test func ociWeightIsReadCheckedAndWrittenBack() throws {
        let s = try spec(#"{"blockIO":{"weight":500},"pids":{"limit":7}}"#)
        let r = try #require(s.linux?.resources)
        try BuiltinControllers.registry.check(r)
        #expect(r.blockIO == Spec.Resources.BlockIO(weight: 500))
        #expect(BlkioController().isRequested(by: r))
        // Written and read again: the same member, with the same value.
        let again = try JSON.read(Spec.self, from: s.jsonBytes, what: "config.json")
        #expect(again.linux?.resources == r)
        #expect(String(decoding: s.jsonBytes, as: UTF8.self).contains(#""blockIO":{"weight":500}"#))
        // Set through the accessor, it reads back the same.
        var made = Spec.Resources()
        made.blockIO = r.blockIO
        made.pids = r.pids
        #expect(made == r)
        #expect(BuiltinControllers.all.flatMap { $0.resourceMembers.map(\.key) }.contains("blockIO"))
        // A weight of 0 asks nothing.
        #expect(!BlkioController().isRequested(by: try #require(try spec(#"{"blockIO":{"weight":0}}"#).linux?.resources)))
    }

    @Test(arguments: [
        (#"{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":100}]}}"#, "linux.resources.blockIO.weightDevice is not supported"),
        (#"{"blockIO":{"leafWeight":300}}"#, "linux.resources.blockIO.leafWeight is not supported"),
        (#"{"blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}"#,
         "linux.resources.blockIO.throttleReadBpsDevice is not supported"),
        (#"{"blockIO":{"weight":"500"}}"#, "wrong type at \"linux.resources.blockIO.weight\""),
        (#"{"blockIO":{"weight":70000}}"#, "linux.resources.blockIO.weight"),
    ] as [(String, String)])
    func unmodeledBlockIOMembersAreRefusedNamingThem(text: String, expected: String) throws {
        let r = try #require(try spec(text).linux?.resources)
        let error = #expect(throws: GockerError.self) { try BuiltinControllers.registry.check(r) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
    }

    @Test func ociWeightOutOfRangeIsRefusedAndTheGroupRemoved() throws {
        let fs = try FakeCgroupfs()
        try Sys.mkdirAll(fs.root + "/blkio/g")
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["blkio": fs.root + "/blkio"]), registry: BuiltinControllers.registry)
        let error = try #require(throws: GockerError.self) { try driver.create(path: "g/c", resources: weight(5)) }
        #expect(error.description == "linux.resources.blockIO.weight 5 is not valid: 10 to 1000 (0: unset)")
        #expect(!Sys.exists(fs.root + "/blkio/g/c"))
    }

    // MARK: the file, by what the group has

    func v1Driver(_ fs: FakeCgroupfs) -> CgroupDriver {
        CgroupDriver(backend: CgroupfsV1Backend(mounts: ["blkio": fs.root + "/blkio", "pids": fs.root + "/pids"]),
                     registry: BuiltinControllers.registry)
    }

    @Test func v1WritesBlkioWeightFirstElseTheBFQOne() throws {
        let fs = try FakeCgroupfs()
        // The kernel makes the files on mkdir; the fake has them beforehand.
        try fs.write("blkio/g/both/blkio.weight", "")
        try fs.write("blkio/g/both/blkio.bfq.weight", "")
        try fs.write("blkio/g/bfq/blkio.bfq.weight", "")
        let driver = v1Driver(fs)
        let record = try driver.create(path: "g/both", resources: weight(500))
        #expect(record.controllers == ["pids", "blkio"])
        #expect(fs.read("blkio/g/both/blkio.weight") == "500")
        #expect(fs.read("blkio/g/both/blkio.bfq.weight") == "", "the second choice untouched")
        _ = try driver.create(path: "g/bfq", resources: weight(10))
        #expect(fs.read("blkio/g/bfq/blkio.bfq.weight") == "10")
        #expect(fs.read("blkio/g/bfq/blkio.weight") == nil)
    }

    @Test func v1WithNeitherFileIsRefusedNamingThemAndNothingIsLeft() throws {
        let fs = try FakeCgroupfs()
        try Sys.mkdirAll(fs.root + "/blkio/g")
        try Sys.mkdirAll(fs.root + "/pids/g")
        let error = try #require(throws: GockerError.self) { try v1Driver(fs).create(path: "g/c", resources: weight(500)) }
        #expect(error.description == "blkio weight 500 (--blkio-weight, linux.resources.blockIO.weight): "
            + "this host's I/O scheduler offers no weight (no blkio.weight or blkio.bfq.weight)")
        #expect(!Sys.exists(fs.root + "/blkio/g/c"), "the group made for the probe is removed")
        #expect(!Sys.exists(fs.root + "/pids/g/c"), "and the groups made before it")
    }

    /// A v2 tree offering io, with `files` in the container's group `g/<name>`.
    func v2(_ fs: FakeCgroupfs, _ name: String, files: [String]) throws -> CgroupDriver {
        try fs.write("cgroup.controllers", "io\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("g/cgroup.subtree_control", "")
        for f in files { try fs.write("g/\(name)/\(f)", "") }
        return CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: try ControllerRegistry([BlkioController()]))
    }

    @Test(arguments: [(10, "1"), (1000, "10000"), (500, "4950"), (100, "910")] as [(UInt16, String)])
    func v2WritesIOWeightOnItsScale(w: UInt16, expected: String) throws {
        let fs = try FakeCgroupfs()
        let record = try v2(fs, "c", files: ["io.weight"]).create(path: "g/c", resources: weight(w))
        #expect(record.controllers == ["blkio"])
        #expect(fs.read("g/c/io.weight") == expected)
        #expect(fs.read("g/cgroup.subtree_control") == "+io", "io enabled for the group")
    }

    @Test func v2WritesTheBFQWeightFirstAsItIs() throws {
        let fs = try FakeCgroupfs()
        _ = try v2(fs, "c", files: ["io.bfq.weight", "io.weight"]).create(path: "g/c", resources: weight(500))
        #expect(fs.read("g/c/io.bfq.weight") == "500")
        #expect(fs.read("g/c/io.weight") == "", "the second choice untouched")
    }

    @Test func v2WithNeitherFileIsRefusedNamingThemAndTheGroupRemoved() throws {
        let fs = try FakeCgroupfs()
        let driver = try v2(fs, "c", files: [])
        let error = try #require(throws: GockerError.self) { try driver.create(path: "g/c", resources: weight(500)) }
        #expect(error.description.hasSuffix("this host's I/O scheduler offers no weight (no io.bfq.weight or io.weight)"))
        #expect(!Sys.exists(fs.root + "/g/c"))
    }

    /// Without the probe (a plan, `settings(for:version:)`): the generic files.
    @Test func unprobedSettingsAreTheGenericFiles() throws {
        let c = BlkioController()
        #expect(try c.settings(for: weight(500), version: .v1) == [CgroupSetting("blkio.weight", "500")])
        #expect(try c.settings(for: weight(500), version: .v2) == [CgroupSetting("io.weight", "4950")])
        #expect(try c.settings(for: weight(0), version: .v2) == [])
        #expect(try c.settings(for: Spec.Resources(), version: .v1) == [])
    }

    // MARK: who gets a group

    @Test func aContainerWithoutTheFlagGetsNoBlkioGroup() throws {
        let fs = try FakeCgroupfs()
        try fs.write("blkio/g/blkio.weight", "")
        let driver = v1Driver(fs)
        #expect(!BlkioController().alwaysGrouped)
        for (path, r) in [("g/plain", Spec.Resources()), ("g/w0", weight(0))] {
            let record = try driver.create(path: path, resources: r)
            #expect(record.controllers == ["pids"], "\(path)")
            #expect(!Sys.exists(fs.root + "/blkio/" + path), "\(path): no blkio group made")
            #expect(Sys.exists(fs.root + "/pids/" + path))
        }
    }
}
