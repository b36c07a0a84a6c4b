import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// memory's swappiness and OOM switch (`--memory-swappiness`,
/// `--oom-kill-disable`, OCI `swappiness` and `disableOOMKiller`): written
/// on v1, refused on v2 naming the member; and `update` of memory+swap
/// alone on v2, reckoned from the group's memory.max. Fake cgroupfs trees
/// in temporary directories.
struct MemoryKnobsTests {
    typealias Memory = Spec.Resources.Memory

    func flags(_ pairs: [(String, String)]) throws(GockerError) -> Spec.Resources {
        var f = ResourceFlags()
        for (name, value) in pairs { f.add(name, value) }
        return try BuiltinControllers.registry.resources(from: f, host: ControllerFlagsTests.host)
    }

    func refusal(_ pairs: [(String, String)]) -> String {
        do { _ = try flags(pairs); return "accepted" } catch { return error.description }
    }

    func memory(_ m: Memory) -> Spec.Resources {
        var r = Spec.Resources()
        r.memory = m
        return r
    }

    // MARK: the flags

    @Test func swappinessFlagTakesZeroToAHundredAndMinusOneIsTheHosts() throws {
        #expect(try flags([("memory-swappiness", "0")]).memory == Memory(swappiness: 0))
        #expect(try flags([("memory-swappiness", "100")]).memory == Memory(swappiness: 100))
        #expect(try flags([("memory", "64m"), ("memory-swappiness", "30")]).memory
                == Memory(limit: 64 << 20, swap: 128 << 20, swappiness: 30))
        #expect(try flags([("memory-swappiness", "-1")]).memory == nil, "docker's default asks nothing")
        for bad in ["101", "-2", "x", "", "1.5"] {
            #expect(refusal([("memory-swappiness", bad)])
                    == "invalid argument \"\(bad)\" for --memory-swappiness: must be 0 to 100 (-1: the host's)")
        }
    }

    @Test func oomKillDisableIsAFlagWithoutAValue() throws {
        #expect(try flags([("oom-kill-disable", "")]).memory == Memory(disableOOMKiller: true))
        #expect(try flags([]).memory == nil)
        let swappiness = try #require(BuiltinControllers.options.first { $0.name == "memory-swappiness" })
        #expect(swappiness.value == .signed, "-1 is a value")
        let oom = try #require(BuiltinControllers.options.first { $0.name == "oom-kill-disable" })
        #expect(oom.value == .none)
    }

    // MARK: OCI members and settings

    @Test func ociMembersAreReadAndCheckedAndWrittenBack() throws {
        let text = #"{"memory":{"limit":67108864,"swappiness":10,"disableOOMKiller":true}}"#
        let r = try JSON.read(Spec.Resources.self, from: Array(text.utf8), what: "t")
        try BuiltinControllers.registry.check(r)
        #expect(r.memory == Memory(limit: 67_108_864, swappiness: 10, disableOOMKiller: true))
        #expect(try JSONValue.parse(r.jsonBytes) == JSONValue.parse(Array(text.utf8)))
    }

    @Test func v1WritesSwappinessAndTheOOMSwitch() throws {
        let m = MemoryController()
        #expect(try m.settings(for: memory(Memory(limit: 1 << 26, swappiness: 0, disableOOMKiller: true)), version: .v1) == [
            CgroupSetting("memory.limit_in_bytes", "67108864"), CgroupSetting("memory.swappiness", "0"),
            CgroupSetting("memory.oom_control", "1")])
        // What asks nothing writes nothing: -1 (the host's), false (the kernel's default).
        let nothing = memory(Memory(swappiness: -1, disableOOMKiller: false))
        #expect(!m.isRequested(by: nothing))
        #expect(try m.settings(for: nothing, version: .v1) == [])
        #expect(try m.settings(for: nothing, version: .v2) == [])
        #expect(m.isRequested(by: memory(Memory(swappiness: 0))))
        #expect(m.isRequested(by: memory(Memory(disableOOMKiller: true))))
    }

    @Test(arguments: [CgroupVersion.v1, .v2])
    func aSwappinessOutOfRangeIsRefusedNamingIt(version: CgroupVersion) {
        for bad in [101, -2] as [Int64] {
            let error = #expect(throws: GockerError.self) {
                try MemoryController().settings(for: memory(Memory(swappiness: bad)), version: version)
            }
            #expect(error?.description
                    == "memory swappiness \(bad) (--memory-swappiness, linux.resources.memory.swappiness) is not valid: 0 to 100")
        }
    }

    @Test(arguments: [
        (Memory(swappiness: 60), "memory swappiness 60 (--memory-swappiness, linux.resources.memory.swappiness): "
            + "cgroup v2 has no per-group swappiness (memory.swappiness is cgroup v1's)"),
        (Memory(limit: 1 << 26, disableOOMKiller: true), "disabling the OOM killer (--oom-kill-disable, "
            + "linux.resources.memory.disableOOMKiller): cgroup v2 cannot (memory.oom_control is cgroup v1's)"),
        (Memory(swap: 1 << 27), "memory+swap limit 134217728 (--memory-swap, linux.resources.memory.swap) "
            + "needs a memory limit on cgroup v2: memory.swap.max is the swap beyond it"),
        (Memory(limit: -1, swap: 1 << 27), "memory+swap limit 134217728 (--memory-swap, linux.resources.memory.swap) "
            + "needs a memory limit on cgroup v2: memory.swap.max is the swap beyond it"),
    ] as [(Memory, String)])
    func v2RefusesWhatItHasNoFileForNamingIt(m: Memory, expected: String) {
        let error = #expect(throws: GockerError.self) { try MemoryController().settings(for: memory(m), version: .v2) }
        #expect(error?.description == expected)
    }

    // MARK: through the driver

    func v1(_ fs: FakeCgroupfs) throws -> CgroupDriver {
        for f in ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.swappiness", "memory.oom_control"] {
            try fs.write("memory/g/c/\(f)", "")
        }
        return CgroupDriver(backend: CgroupfsV1Backend(mounts: ["memory": fs.root + "/memory", "pids": fs.root + "/pids"]),
                            registry: BuiltinControllers.registry)
    }

    @Test func v1GroupGetsTheFiles() throws {
        let fs = try FakeCgroupfs()
        var r = try flags([("memory-swappiness", "17"), ("oom-kill-disable", "")])
        r.devices = nil  // (docker's default device rules: this tree has no devices hierarchy)
        let record = try v1(fs).create(path: "g/c", resources: r)
        #expect(record.controllers.contains("memory"))
        #expect(fs.read("memory/g/c/memory.swappiness") == "17")
        #expect(fs.read("memory/g/c/memory.oom_control") == "1")
        #expect(fs.read("memory/g/c/memory.limit_in_bytes") == "", "no limit asked, none written")
    }

    @Test func aRefusedConfigLeavesNoGroup() throws {
        let fs = try FakeCgroupfs()
        try Sys.mkdirAll(fs.root + "/pids/g")
        let v1Driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["memory": fs.root + "/memory", "pids": fs.root + "/pids"]),
                                    registry: BuiltinControllers.registry)
        #expect(throws: GockerError.self) { try v1Driver.create(path: "g/c", resources: memory(Memory(swappiness: 200))) }
        #expect(!Sys.exists(fs.root + "/memory/g/c") && !Sys.exists(fs.root + "/pids/g/c"))

        try fs.write("v2/cgroup.controllers", "memory pids\n")
        try fs.write("v2/cgroup.subtree_control", "")
        let v2Driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root + "/v2"), registry: BuiltinControllers.registry)
        for m in [Memory(swappiness: 10), Memory(disableOOMKiller: true)] {
            #expect(throws: GockerError.self) { try v2Driver.create(path: "g/c", resources: memory(m)) }
            #expect(!Sys.exists(fs.root + "/v2/g"), "\(m)")
        }
    }

    // MARK: update on v2

    /// A v2 container group `g/c` whose memory.max reads `max`.
    func v2Group(_ fs: FakeCgroupfs, memoryMax: String) throws -> (CgroupDriver, CgroupRecord) {
        try fs.write("cgroup.controllers", "memory pids\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("g/cgroup.subtree_control", "")
        try fs.write("g/c/memory.max", memoryMax)
        try fs.write("g/c/memory.swap.max", "max")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        return (driver, try driver.create(path: "g/c", resources: Spec.Resources()))
    }

    @Test func v2UpdateOfSwapAloneIsReckonedFromTheCurrentLimit() throws {
        let fs = try FakeCgroupfs()
        let (driver, record) = try v2Group(fs, memoryMax: "67108864\n")
        try driver.update(record, resources: memory(Memory(swap: 1 << 28)))
        #expect(fs.read("g/c/memory.swap.max") == "201326592", "256m of memory+swap over a 64m limit: 192m of swap")
        #expect(fs.read("g/c/memory.max") == "67108864", "the limit as it was")
        try driver.update(record, resources: memory(Memory(swap: -1)))
        #expect(fs.read("g/c/memory.swap.max") == "max")
        // Given with a limit, the limit given counts.
        try driver.update(record, resources: memory(Memory(limit: 1 << 27, swap: 1 << 28)))
        #expect(fs.read("g/c/memory.swap.max") == "134217728" && fs.read("g/c/memory.max") == "134217728")
    }

    @Test func v2UpdateOfSwapAloneIsRefusedWithoutAUsableLimit() throws {
        let fs = try FakeCgroupfs()
        let (driver, record) = try v2Group(fs, memoryMax: "max\n")
        let error = #expect(throws: GockerError.self) { try driver.update(record, resources: memory(Memory(swap: 1 << 28))) }
        #expect(error?.description.contains("needs a memory limit on cgroup v2") == true, "\(String(describing: error))")
        #expect(fs.read("g/c/memory.swap.max") == "max", "never unlimited by mistake, never half-written")

        try fs.write("g/c/memory.max", "268435456\n")
        let below = #expect(throws: GockerError.self) { try driver.update(record, resources: memory(Memory(swap: 1 << 27))) }
        #expect(below?.description == "memory+swap limit 134217728 is below the memory limit 268435456")
        #expect(fs.read("g/c/memory.swap.max") == "max")
    }

    @Test func v1UpdateOfSwapAloneWritesMemoryPlusSwapAsGiven() throws {
        let fs = try FakeCgroupfs()
        let driver = try v1(fs)
        let record = try driver.create(path: "g/c", resources: Spec.Resources())
        try driver.update(record, resources: memory(Memory(swap: 1 << 28)))
        #expect(fs.read("memory/g/c/memory.memsw.limit_in_bytes") == "268435456")
        #expect(fs.read("memory/g/c/memory.limit_in_bytes") == "")
    }
}
