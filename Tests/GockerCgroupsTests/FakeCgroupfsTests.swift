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
    let resources = Spec.Resources(
        memory: .init(limit: 67_108_864, swap: 134_217_728), cpu: .init(shares: 512, quota: 50_000, period: 100_000, cpus: "1"),
        pids: .init(limit: 50))

    /// mkdir on a real cgroupfs makes the control files; here the fake
    /// makes them by being written to (the backend opens with O_TRUNC, not
    /// O_CREAT, so make the files a group gets before creating it).
    @Test func v1DriverCreatesEveryGroupWithItsValuesAndRemovesThem() throws {
        let fs = try FakeCgroupfs()
        let controllers = ["cpuset", "cpu", "cpuacct", "memory", "pids", "devices", "freezer"]
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

        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: mounts), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "gocker/c1", resources: resources)
        #expect(record.backend == "cgroupfs" && record.version == .v1)
        #expect(record.controllers == BuiltinControllers.registry.names)
        #expect(fs.read("memory/gocker/c1/memory.limit_in_bytes") == "67108864")
        #expect(fs.read("memory/gocker/c1/memory.memsw.limit_in_bytes") == "134217728")
        #expect(fs.read("cpu/gocker/c1/cpu.shares") == "512")
        #expect(fs.read("cpu/gocker/c1/cpu.cfs_quota_us") == "50000")
        #expect(fs.read("pids/gocker/c1/pids.max") == "50")
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
        try fs.write("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
        try fs.write("cgroup.subtree_control", "")
        try fs.write("gocker/cgroup.subtree_control", "")
        for f in ["memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max", "cpuset.cpus", "cpuset.mems"] {
            try fs.write("gocker/nested/c2/\(f)", "")
        }
        try fs.write("gocker/nested/cgroup.subtree_control", "")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "gocker/nested/c2", resources: resources)
        #expect(record.version == .v2)
        #expect(record.controllers == ["cpuset", "cpu", "memory", "pids"], "only what cgroup.controllers lists")
        #expect(fs.read("gocker/nested/c2/memory.max") == "67108864")
        #expect(fs.read("gocker/nested/c2/memory.swap.max") == "67108864")
        #expect(fs.read("gocker/nested/c2/cpu.weight") == "20")
        #expect(fs.read("gocker/nested/c2/cpu.max") == "50000 100000")
        #expect(fs.read("gocker/nested/c2/pids.max") == "50")
        // Each ancestor's subtree_control got the controller (the fake keeps the last write).
        #expect(fs.read("cgroup.subtree_control") == "+pids")
        #expect(fs.read("gocker/cgroup.subtree_control") == "+pids")
        #expect(fs.read("gocker/nested/cgroup.subtree_control") == "+pids")
    }

    @Test func cgroupsPathsAreValidated() throws {
        #expect(try CgroupDriver.validatePath("/a/b/") == "a/b")
        for bad in ["", "/", "a/../b", "./a"] {
            #expect(throws: GockerError.self) { try CgroupDriver.validatePath(bad) }
        }
    }
}
