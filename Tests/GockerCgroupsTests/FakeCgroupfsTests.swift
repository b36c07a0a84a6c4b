import Glibc
import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// The cgroupfs backends and the driver against a fake cgroupfs: plain
/// directories and files in a temporary directory.
final class FakeCgroupfs {
    let root: String

    init() throws {
        var t = Array("/tmp/gocker-fakecg-XXXXXX".utf8CString)
        guard let p = mkdtemp(&t) else { throw GockerError(.system, "mkdtemp") }
        root = String(cString: p)
    }

    deinit { try? Sys.removeAll(root) }

    func write(_ path: String, _ text: String) throws {
        if let slash = path.lastIndex(of: "/") { try Sys.mkdirAll(root + "/" + path[..<slash]) }
        try Sys.writeFileAtomic(root + "/" + path, Array(text.utf8))
    }

    func read(_ path: String) -> String? { try? Sys.readText(root + "/" + path) }
}

struct FakeCgroupfsTests {
    /// The controllers a container gets a group in unasked: derived from
    /// the registry, so a new plugin needs no edit here.
    static let always = BuiltinControllers.all.filter(\.alwaysGrouped)

    /// Of those, the ones a v2 root listing `offered` serves: the ones with
    /// no controller to enable, and the ones it lists.
    static func v2Grouped(offering offered: [String]) -> [any ResourceController] {
        always.filter { $0.v2Name.map(offered.contains) ?? true }
    }

    /// The last v2 controller those enable: what a fake subtree_control,
    /// which keeps its last write, holds afterwards.
    static func lastEnabled(offering offered: [String]) -> String? {
        v2Grouped(offering: offered).compactMap(\.v2Name).last.map { "+" + $0 }
    }

    let resources = Spec.Resources(
        memory: .init(limit: 67_108_864, swap: 134_217_728), cpu: .init(shares: 512, quota: 50_000, period: 100_000, cpus: "1"),
        pids: .init(limit: 50))

    /// `prepare` done ahead (as a start does before its clone) reads the
    /// cpuset parent's values then and fills a missing ancestor; `create`
    /// later writes those values and reads the parent no more, while a plan
    /// not prepared reads them at `create`.
    @Test func v1CpusetPreparedAheadIsWhatCreateWrites() throws {
        let fs = try FakeCgroupfs()
        let mounts = ["cpuset": fs.root + "/cpuset"]
        try fs.write("cpuset/cpuset.cpus", "0-3\n")
        try fs.write("cpuset/cpuset.mems", "0\n")
        for level in ["gocker", "gocker/a", "gocker/b"] {
            for f in ["cpuset.cpus", "cpuset.mems"] { try fs.write("cpuset/\(level)/\(f)", "") }
        }
        let registry = try ControllerRegistry([CpusetController()])
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: mounts), registry: registry)
        let plan = try driver.plan(for: Spec.Resources())
        #expect(plan.map(\.controller.name) == ["cpuset"] && plan[0].prepared == nil)
        let prepared = try driver.prepare(plan, path: "gocker/a")
        #expect(prepared[0].prepared == [CgroupSetting("cpuset.cpus", "0-3"), CgroupSetting("cpuset.mems", "0")])
        // The ancestor was filled from the root then.
        #expect(fs.read("cpuset/gocker/cpuset.cpus") == "0-3")
        // The parent changes between the two: the prepared values are kept.
        try fs.write("cpuset/gocker/cpuset.cpus", "1\n")
        _ = try driver.create(path: "gocker/a", resources: Spec.Resources(), planned: prepared)
        #expect(fs.read("cpuset/gocker/a/cpuset.cpus") == "0-3")
        #expect(fs.read("cpuset/gocker/a/cpuset.mems") == "0")
        // Not prepared: read at create.
        _ = try driver.create(path: "gocker/b", resources: Spec.Resources(), planned: plan)
        #expect(fs.read("cpuset/gocker/b/cpuset.cpus") == "1")
    }

    /// mkdir on a real cgroupfs makes the control files; here the fake
    /// makes them by being written to (the backend opens with O_TRUNC, not
    /// O_CREAT, so make the files a group gets before creating it).
    @Test func v1DriverCreatesEveryGroupWithItsValuesAndRemovesThem() throws {
        let fs = try FakeCgroupfs()
        let controllers = Self.always.map(\.name)
        var mounts: [String: String] = [:]
        for c in controllers { mounts[c] = "\(fs.root)/\(c)" }
        try fs.write("cpuset/cpuset.cpus", "0-3\n")
        try fs.write("cpuset/cpuset.mems", "0\n")
        let files = [
            "cpuset": ["cpuset.cpus", "cpuset.mems"], "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"],
            "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"], "pids": ["pids.max"],
            "devices": ["devices.allow", "devices.deny"],
        ]
        for (c, names) in files {
            for level in ["gocker", "gocker/c1"] { for f in names { try fs.write("\(c)/\(level)/\(f)", "") } }
            for f in names { try fs.write("\(c)/\(f)", "") }
        }
        try fs.write("cpuset/cpuset.cpus", "0-3\n")
        try fs.write("cpuset/cpuset.mems", "0\n")
        for c in controllers { try fs.write("\(c)/gocker/c1/cgroup.procs", "") }

        var resources = resources
        resources.devices = [.init(allow: false, access: "rwm"), .init(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
                             .init(allow: true, type: "c", major: 136, access: "rw"), .init(allow: true, type: "b", access: "m")]
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: mounts), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "gocker/c1", resources: resources)
        #expect(record.backend == "cgroupfs" && record.version == .v1)
        #expect(record.controllers == controllers)
        #expect(fs.read("memory/gocker/c1/memory.limit_in_bytes") == "67108864")
        #expect(fs.read("memory/gocker/c1/memory.memsw.limit_in_bytes") == "134217728")
        #expect(fs.read("cpu/gocker/c1/cpu.shares") == "512")
        #expect(fs.read("cpu/gocker/c1/cpu.cfs_quota_us") == "50000")
        #expect(fs.read("pids/gocker/c1/pids.max") == "50")
        // The device rules, one write each, in order, through one
        // descriptor (a plain file keeps them all, one after the other).
        let rules = try driver.settings(for: resources).first { $0.0.name == "devices" }!.1
        #expect(rules.count > 2 && rules[0].file == "devices.deny")
        #expect(fs.read("devices/gocker/c1/devices.allow")
                == rules.filter { $0.file == "devices.allow" }.map(\.value).joined())
        #expect(fs.read("cpuset/gocker/c1/cpuset.cpus") == "1")
        // The ancestor got its parent's cpus and mems, and so did mems of the group.
        #expect(fs.read("cpuset/gocker/cpuset.cpus") == "0-3")
        #expect(fs.read("cpuset/gocker/c1/cpuset.mems") == "0")

        try driver.attach(record, pid: 4242)
        for c in controllers { #expect(fs.read("\(c)/gocker/c1/cgroup.procs") == "4242") }

        // A fake group is a directory with files: empty them so rmdir works.
        for c in controllers {
            for f in (try? Sys.listDirectory("\(fs.root)/\(c)/gocker/c1")) ?? [] { unlink("\(fs.root)/\(c)/gocker/c1/\(f)") }
        }
        try driver.destroy(record)
        for c in controllers { #expect(!Sys.exists("\(fs.root)/\(c)/gocker/c1")) }
    }

    @Test func v1RefusesAControllerTheHostLacks() throws {
        let fs = try FakeCgroupfs()
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["memory": fs.root + "/memory"]),
                                  registry: BuiltinControllers.registry)
        #expect(throws: GockerError.self) { try driver.settings(for: Spec.Resources(pids: .init(limit: 5))) }
        // Controllers the host lacks are skipped when nothing is asked of them.
        #expect(try driver.settings(for: Spec.Resources()).map { $0.0.name } == ["memory"])
    }

    @Test func v2EnablesControllersInAncestorsAndWritesV2Names() throws {
        let fs = try FakeCgroupfs()
        let offered = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]
        try fs.write("cgroup.controllers", offered.joined(separator: " ") + "\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("gocker/cgroup.subtree_control", "")
        for f in ["memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max", "cpuset.cpus", "cpuset.mems"] {
            try fs.write("gocker/nested/c2/\(f)", "")
        }
        try fs.write("gocker/nested/cgroup.subtree_control", "")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "gocker/nested/c2", resources: resources)
        #expect(record.version == .v2)
        // What cgroup.controllers lists, and what every v2 group has (cpu.stat,
        // cgroup.freeze, a device program).
        #expect(record.controllers == Self.v2Grouped(offering: offered).map(\.name))
        #expect(Set(record.controllers).isSuperset(of: ["cpuset", "cpu", "cpuacct", "memory", "pids", "devices", "freezer"]))
        #expect(fs.read("gocker/nested/c2/memory.max") == "67108864")
        #expect(fs.read("gocker/nested/c2/memory.swap.max") == "67108864")
        #expect(fs.read("gocker/nested/c2/cpu.weight") == "20")
        #expect(fs.read("gocker/nested/c2/cpu.max") == "50000 100000")
        #expect(fs.read("gocker/nested/c2/pids.max") == "50")
        // Each ancestor's subtree_control got the controllers (the fake keeps the last write).
        let last = try #require(Self.lastEnabled(offering: offered))
        #expect(fs.read("cgroup.subtree_control") == last)
        #expect(fs.read("gocker/cgroup.subtree_control") == last)
        #expect(fs.read("gocker/nested/cgroup.subtree_control") == last)
    }

    /// A fake v2 root listing `controllers`, with subtree_control files at `levels`.
    func v2Root(_ controllers: String, subtree: [String: String] = [:]) throws -> FakeCgroupfs {
        let fs = try FakeCgroupfs()
        try fs.write("cgroup.controllers", controllers + "\n")
        for (level, enabled) in subtree { try fs.write(level.isEmpty ? "cgroup.subtree_control" : "\(level)/cgroup.subtree_control", enabled) }
        return fs
    }

    @Test func v2LeavesEnabledAncestorsAloneAndNeverTheGroupItself() throws {
        let fs = try v2Root("cpuset cpu io memory pids", subtree: ["": "cpuset cpu io memory pids\n", "a": "cpu memory pids cpuset\n", "a/b": ""])
        try fs.write("a/b/c/memory.max", "")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "a/b/c", resources: Spec.Resources(memory: .init(limit: 8_388_608)))
        #expect(fs.read("cgroup.subtree_control") == "cpuset cpu io memory pids\n", "already enabled: not written")
        #expect(fs.read("a/cgroup.subtree_control") == "cpu memory pids cpuset\n", "already enabled: not written")
        #expect(fs.read("a/b/cgroup.subtree_control") == "+pids", "enabled one by one where missing")
        #expect(fs.read("a/b/c/cgroup.subtree_control") == nil, "a leaf enables nothing: it holds the processes")
        #expect(fs.read("a/b/c/memory.max") == "8388608")
        #expect(record.path == "a/b/c")
    }

    @Test func v2MakesMissingAncestorsAndSkipsControllersTheRootLacks() throws {
        let fs = try v2Root("memory cpu", subtree: ["": ""])
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        // A group made by mkdir: the fake's mkdir makes no files, the kernel's does.
        #expect(throws: GockerError.self) { try driver.create(path: "x/y/z", resources: Spec.Resources()) }
        for level in ["x", "x/y"] { try fs.write("\(level)/cgroup.subtree_control", "") }
        // Nothing asked of pids or cpuset: skipped.
        let record = try driver.create(path: "x/y/z", resources: Spec.Resources())
        #expect(record.controllers == Self.v2Grouped(offering: ["memory", "cpu"]).map(\.name))
        #expect(!record.controllers.contains("pids") && !record.controllers.contains("cpuset"))
        #expect(Sys.isDirectory(fs.root + "/x/y/z"))
        #expect(fs.read("x/y/cgroup.subtree_control") == Self.lastEnabled(offering: ["memory", "cpu"]))
        #expect(fs.read("x/cgroup.subtree_control") == Self.lastEnabled(offering: ["memory", "cpu"]))
        // Asked of a controller the root does not list: refused before anything is made.
        #expect(throws: GockerError.self) { try driver.create(path: "x/y/w", resources: Spec.Resources(pids: .init(limit: 5))) }
        #expect(!Sys.exists(fs.root + "/x/y/w"))
    }

    @Test func v2IsOneGroupJoinedListedAndRemovedOnce() throws {
        let fs = try v2Root("cpuset cpu memory pids", subtree: ["": "", "g": ""])
        try fs.write("g/c/cgroup.procs", "")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "g/c", resources: Spec.Resources())
        try driver.attach(record, pid: 4242)
        #expect(fs.read("g/c/cgroup.procs") == "4242")
        #expect(driver.processes(record) == [4242])
        #expect(driver.cloneDirectory(record) == fs.root + "/g/c", "clone3 goes straight into the v2 group")
        unlink(fs.root + "/g/c/cgroup.procs")
        try driver.destroy(record)
        #expect(!Sys.exists(fs.root + "/g/c"))
        #expect(Sys.isDirectory(fs.root + "/g"), "the parent stays")
    }

    @Test func v1HasNoCloneDirectory() throws {
        let fs = try FakeCgroupfs()
        try fs.write("memory/gocker/c/memory.limit_in_bytes", "")
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["memory": fs.root + "/memory", "pids": fs.root + "/pids"]),
                                  registry: BuiltinControllers.registry)
        let record = try driver.create(path: "gocker/c", resources: Spec.Resources())
        #expect(driver.cloneDirectory(record) == nil, "a process joins one group per v1 hierarchy")
    }

    @Test func killAllUsesCgroupKillElseKillsEachProcess() throws {
        let fs = try v2Root("memory", subtree: ["": ""])
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "k", resources: Spec.Resources())
        try fs.write("k/cgroup.kill", "")
        try fs.write("k/cgroup.procs", "")
        driver.killAll(record)
        #expect(fs.read("k/cgroup.kill") == "1")

        // A kernel without cgroup.kill: each listed process gets SIGKILL.
        unlink(fs.root + "/k/cgroup.kill")
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("30"), nil]
        defer { for a in argv { free(a) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, &argv, environ) == 0)
        try fs.write("k/cgroup.procs", "\(pid)\n")
        driver.killAll(record)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect(status & 0x7f == SIGKILL)
    }

    @Test func v2StatsComeFromMemoryStatCpuStatAndMemoryEvents() throws {
        let fs = try v2Root("cpu memory pids", subtree: ["": ""])
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "s", resources: Spec.Resources())
        try fs.write("s/memory.current", "10485760\n")
        try fs.write("s/memory.stat", "anon 4194304\nfile 6291456\ninactive_file 2097152\nactive_file 4194304\n")
        try fs.write("s/memory.max", "67108864\n")
        try fs.write("s/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
        try fs.write("s/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
        try fs.write("s/pids.current", "3\n")
        let stats = driver.stats(record)
        #expect(stats["memory.usage"] == 8_388_608, "memory.current less inactive_file, as docker shows it")
        #expect(stats["memory.limit"] == 67_108_864)
        #expect(stats["memory.oom_kill"] == 1)
        #expect(stats["cpu.usage_ns"] == 1_500_000)
        #expect(stats["pids.current"] == 3)
        // Alone, from its own file; the rest through stats.
        try fs.write("s/memory.stat", "")
        #expect(driver.stat(record, controller: "memory", "memory.oom_kill") == 1)
        #expect(driver.stat(record, controller: "pids", "pids.current") == 3)
        #expect(driver.stat(record, controller: "memory", "memory.limit") == 67_108_864)
        #expect(driver.stat(record, controller: "hugetlb", "memory.oom_kill") == nil)
    }

    @Test func v2DeviceRulesAreNeverDropped() throws {
        // A fake group is no cgroup: the program cannot be attached, and the
        // container must not start without its allow-list.
        let fs = try v2Root("memory", subtree: ["": ""])
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let rules = Spec.Resources(devices: [.init(allow: false, access: "rwm"), .init(allow: true, type: "c", major: 1, minor: 3, access: "rwm")])
        #expect(throws: GockerError.self) { try driver.create(path: "d", resources: rules) }
        #expect(!Sys.exists(fs.root + "/d"), "what was made is removed")
    }

    @Test func cgroupsPathsAreValidated() throws {
        #expect(try CgroupDriver.validatePath("/a/b/") == "a/b")
        #expect(try CgroupDriver.validatePath("//a//b.c/..d") == "a/b.c/..d")
        #expect(try CgroupDriver.validatePath("x") == "x")
        for bad in ["", "/", "//", "a/../b", "./a", "a/..", "a/.", ".."] {
            #expect(throws: GockerError.self) { try CgroupDriver.validatePath(bad) }
        }
    }
}
