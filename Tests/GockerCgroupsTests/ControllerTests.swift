import Glibc
import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// Golden values, written from docker's and the kernel's documented
/// meanings, not from this code's output.
struct ControllerSettingsTests {
    func res(memory: Spec.Resources.Memory? = nil, cpu: Spec.Resources.CPU? = nil, pids: Int64? = nil) -> Spec.Resources {
        Spec.Resources(memory: memory, cpu: cpu, pids: pids.map { Spec.Resources.Pids(limit: $0) })
    }

    @Test func memory() throws {
        let m = MemoryController()
        let r = res(memory: .init(limit: 67_108_864))
        #expect(try m.settings(for: r, version: .v1) == [CgroupSetting("memory.limit_in_bytes", "67108864")])
        #expect(try m.settings(for: r, version: .v2) == [CgroupSetting("memory.max", "67108864")])
        let swap = res(memory: .init(limit: 67_108_864, swap: 134_217_728))
        #expect(try m.settings(for: swap, version: .v1) == [
            CgroupSetting("memory.limit_in_bytes", "67108864"), CgroupSetting("memory.memsw.limit_in_bytes", "134217728")])
        #expect(try m.settings(for: swap, version: .v2) == [
            CgroupSetting("memory.max", "67108864"), CgroupSetting("memory.swap.max", "67108864")])
        let unlimitedSwap = res(memory: .init(limit: 67_108_864, swap: -1))
        #expect(try m.settings(for: unlimitedSwap, version: .v2).last == CgroupSetting("memory.swap.max", "max"))
        #expect(try m.settings(for: unlimitedSwap, version: .v1).last == CgroupSetting("memory.memsw.limit_in_bytes", "-1"))
        let reservation = res(memory: .init(reservation: 33_554_432))
        #expect(try m.settings(for: reservation, version: .v1) == [CgroupSetting("memory.soft_limit_in_bytes", "33554432")])
        #expect(try m.settings(for: reservation, version: .v2) == [CgroupSetting("memory.low", "33554432")])
        #expect(throws: GockerError.self) { try m.settings(for: res(memory: .init(limit: 100, swap: 50)), version: .v1) }
        #expect(!m.isRequested(by: res()) && m.isRequested(by: r))
        // -1 is "no limit" (OCI); any other negative is refused, naming the field.
        #expect(try m.settings(for: res(memory: .init(limit: -1)), version: .v1) == [CgroupSetting("memory.limit_in_bytes", "-1")])
        for bad in [Spec.Resources.Memory(limit: -5), .init(reservation: -2), .init(limit: 67_108_864, swap: -5)] {
            let error = try #require(throws: GockerError.self) { try m.settings(for: res(memory: bad), version: .v1) }
            #expect(error.description.hasPrefix("memory ") && error.description.contains("-1 for no limit"), "\(error)")
        }
    }

    @Test(arguments: [(UInt64(512), "20"), (1024, "39"), (2, "1"), (262_144, "10000")])
    func cpuShares(shares: UInt64, weight: String) throws {
        let c = CPUController()
        let r = res(cpu: .init(shares: shares))
        #expect(try c.settings(for: r, version: .v1) == [CgroupSetting("cpu.shares", "\(shares)")])
        #expect(try c.settings(for: r, version: .v2) == [CgroupSetting("cpu.weight", weight)])
    }

    @Test func cpuQuota() throws {
        let c = CPUController()
        let r = res(cpu: .init(quota: 50_000, period: 100_000))
        #expect(try c.settings(for: r, version: .v1) == [
            CgroupSetting("cpu.cfs_period_us", "100000"), CgroupSetting("cpu.cfs_quota_us", "50000")])
        #expect(try c.settings(for: r, version: .v2) == [CgroupSetting("cpu.max", "50000 100000")])
        #expect(throws: GockerError.self) { try c.settings(for: res(cpu: .init(shares: 1)), version: .v1) }
        #expect(!c.isRequested(by: res(cpu: .init(shares: 0))), "0 shares means unset")
        #expect(try c.settings(for: res(cpu: .init(quota: -1, period: 100_000)), version: .v2) == [CgroupSetting("cpu.max", "max 100000")])
        for quota: Int64 in [-5, 0, 999] {
            #expect(throws: GockerError.self) { try c.settings(for: res(cpu: .init(quota: quota, period: 100_000)), version: .v1) }
        }
    }

    @Test func pids() throws {
        let p = PidsController()
        #expect(try p.settings(for: res(pids: 50), version: .v1) == [CgroupSetting("pids.max", "50")])
        #expect(try p.settings(for: res(pids: 50), version: .v2) == [CgroupSetting("pids.max", "50")])
        #expect(try p.settings(for: res(pids: -1), version: .v1) == [CgroupSetting("pids.max", "max")])
    }

    @Test func cpuset() throws {
        let c = CpusetController()
        let r = res(cpu: .init(cpus: "0-1,3", mems: "0"))
        #expect(try c.settings(for: r, version: .v1) == [CgroupSetting("cpuset.cpus", "0-1,3"), CgroupSetting("cpuset.mems", "0")])
        #expect(try c.settings(for: r, version: .v2) == [CgroupSetting("cpuset.cpus", "0-1,3"), CgroupSetting("cpuset.mems", "0")])
        for bad in ["", "a", "1-", "3-1", "1,,2"] {
            #expect(throws: GockerError.self) { try c.settings(for: res(cpu: .init(cpus: bad)), version: .v1) }
        }
    }

    @Test func devices() throws {
        let d = DevicesController()
        let r = Spec.Resources(devices: [
            .init(allow: false, access: "rwm"), .init(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
            .init(allow: true, type: "c", major: 136, access: "rw"), .init(allow: true, type: "b", access: "m"),
        ])
        #expect(try d.settings(for: r, version: .v1) == [
            CgroupSetting("devices.deny", "a *:* rwm"), CgroupSetting("devices.allow", "c 1:3 rwm"),
            CgroupSetting("devices.allow", "c 136:* rw"), CgroupSetting("devices.allow", "b *:* m"),
        ])
        // On v2 no files: the same rules as a program's policy, "any" as nil.
        #expect(try d.settings(for: r, version: .v2) == [])
        #expect(try d.devicePolicy(for: r, version: .v1) == nil)
        #expect(try d.devicePolicy(for: r, version: .v2) == [
            DeviceRule(allow: false, type: "a", major: nil, minor: nil, access: "rwm"),
            DeviceRule(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
            DeviceRule(allow: true, type: "c", major: 136, minor: nil, access: "rw"),
            DeviceRule(allow: true, type: "b", major: nil, minor: nil, access: "m"),
        ])
        #expect(try d.devicePolicy(for: Spec.Resources(), version: .v2) == nil)
        #expect(throws: GockerError.self) { try d.devicePolicy(for: Spec.Resources(devices: [.init(allow: true, access: "q")]), version: .v2) }
        // Past the kernel's 12-bit majors and 20-bit minors, on v1 and v2.
        for version in [CgroupVersion.v1, .v2] {
            #expect(throws: GockerError.self) { try d.settings(for: Spec.Resources(devices: [.init(allow: false, type: "c", major: 0x1000, access: "r")]), version: version) }
            #expect(throws: GockerError.self) { try d.devicePolicy(for: Spec.Resources(devices: [.init(allow: false, type: "c", major: 1, minor: 0x100000, access: "r")]), version: .v2) }
        }
        #expect(try d.settings(for: Spec.Resources(devices: [.init(allow: false, type: "c", major: 0xfff, minor: 0xfffff, access: "r")]), version: .v1)
                == [CgroupSetting("devices.deny", "c 4095:1048575 r")])
        #expect(throws: GockerError.self) { try d.settings(for: Spec.Resources(devices: [.init(allow: true, type: "x")]), version: .v1) }
        #expect(throws: GockerError.self) { try d.settings(for: Spec.Resources(devices: [.init(allow: true, access: "q")]), version: .v1) }
    }
}

struct RegistryTests {
    struct Fake: ResourceController {
        let name: String
        func isRequested(by r: Spec.Resources) -> Bool { false }
        func settings(for r: Spec.Resources, version: CgroupVersion) throws(GockerError) -> [CgroupSetting] { [] }
    }

    @Test func builtinsInOrderCpusetFirst() {
        let names = BuiltinControllers.registry.names
        #expect(names.first == "cpuset")
        #expect(Set(names).isSuperset(of: ["memory", "cpu", "cpuacct", "pids", "devices", "freezer"]))
    }

    @Test func registerRefusesADuplicate() throws {
        var r = BuiltinControllers.registry
        #expect(throws: GockerError.self) { try r.register(Fake(name: "memory")) }
        try r.register(Fake(name: "rdma"))
        #expect(r.names.last == "rdma")
    }

    /// plugins/README.md's table: one row per file, its controllers in the
    /// second column, what asks for them in the third. Every registered
    /// controller has a row, and its row names each of its flags (by one
    /// of its spellings, in backquotes), so the table stays true as
    /// plugins come and go.
    @Test func readmeTableListsEveryControllerAndItsFlags() throws {
        let readme = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/"))
        let text = try Sys.readText("/" + readme + "/plugins/README.md")
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| `") }.map { row in
            row.split(separator: "|").map { $0.trimmed }
        }
        #expect(rows.count >= 5, "the table was found")
        for c in BuiltinControllers.all {
            let row = rows.first { $0.count > 2 && $0[1].split(separator: ",").map { $0.trimmed }.contains(c.name) }
            guard let row else {
                Issue.record("plugins/README.md's table has no row for \(c.name)")
                continue
            }
            for o in c.options {
                #expect(o.spellings.contains { row[2].contains("`\($0)`") }, "\(c.name)'s row lacks \(o.spellings)")
            }
        }
    }
}
