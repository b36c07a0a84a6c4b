import Glibc
import GockerControllers
import GockerCore
import Testing
@testable import GockerRuntime

struct CgroupMountTests {
    func plan(namespaces: [String]) throws -> LaunchPlan {
        var spec = Spec(process: Spec.Process(args: ["true"], env: []), root: Spec.Root(path: "rootfs"))
        spec.mounts = [Spec.Mount(destination: "/proc", type: "proc", source: "proc"),
                       Spec.Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "ro"])]
        spec.linux = Spec.Linux(namespaces: namespaces.map { Spec.Namespace(type: $0) })
        return try LaunchPlan(spec: spec, bundle: "/b")
    }

    @Test func onV1ATmpfsWithTheContainersOwnGroupPerHierarchy() throws {
        var p = try plan(namespaces: ["mount", "pid"])
        let record = CgroupRecord(backend: "cgroupfs", version: .v1, path: "gocker/c1", controllers: ["cpu", "cpuacct", "pids"])
        p.placeCgroupMounts(record: record, v1Mounts: {
            ["cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "pids": "/sys/fs/cgroup/pids",
             "memory": "/sys/fs/cgroup/memory"]
        })
        #expect(p.mounts.map(\.destination) == ["/proc", "/sys/fs/cgroup", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"])
        #expect(p.mounts[4].options.flags & UInt(MS_REMOUNT | MS_BIND | MS_RDONLY) == UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), "the tmpfs made read-only last")
        #expect(p.mounts[1].type == "tmpfs")
        #expect(p.mounts[2].source == "/sys/fs/cgroup/cpu,cpuacct/gocker/c1" && p.mounts[2].options.isBind)
        #expect(p.mounts[3].options.flags & UInt(MS_RDONLY) != 0, "read-only as the config asks")
        // Only the binds of the groups wait for them to be made.
        #expect(p.mounts.map(\.afterGo) == [false, false, true, true, false])
    }

    @Test func onV2TheGroupOrWithItsOwnNamespaceCgroup2() throws {
        let record = CgroupRecord(backend: "cgroupfs", version: .v2, path: "gocker/c1", controllers: ["pids"])
        var bound = try plan(namespaces: ["mount"])
        bound.placeCgroupMounts(record: record, v1Mounts: { [:] })
        #expect(bound.mounts[1].source == "/sys/fs/cgroup/gocker/c1" && bound.mounts[1].options.isBind)
        var own = try plan(namespaces: ["mount", "cgroup"])
        own.placeCgroupMounts(record: record, v1Mounts: { [:] })
        #expect(own.mounts[1].type == "cgroup2" && !own.mounts[1].options.isBind)
    }

    func resources(devices: [Spec.Resources.DeviceRule]) -> Spec.Resources {
        var r = Spec.Resources()
        r.devices = devices
        return r
    }

    @Test func theDefaultDevicesStayUsableWhateverTheRulesDeny() {
        // A node the config reads only (`--device /dev/kmsg:/dev/kmsg:r`) gets no more than its rule.
        let kmsg = Spec.Resources.DeviceRule(allow: true, type: "c", major: 1, minor: 11, access: "r")
        let denyAll = resources(devices: [.init(allow: false, access: "rwm"), kmsg])
        let rules = Runtime.keepingDefaultDevices(denyAll).devices ?? []
        #expect(Array(rules.prefix(2)) == [.init(allow: false, access: "rwm"), kmsg])
        #expect(rules.contains(.init(allow: true, type: "c", major: 1, minor: 3, access: "rwm")))
        #expect(!rules.contains { $0.major == 1 && $0.minor == 11 && $0 != kmsg }, "\(rules)")
        // gocker run's own list already ends with them: nothing added; no rules: nothing added.
        let docker = resources(devices: DevicesController.dockerDeviceRules + [kmsg])
        #expect(Runtime.keepingDefaultDevices(resources(devices: DevicesController.dockerDeviceRules)).devices == DevicesController.dockerDeviceRules)
        #expect(Runtime.keepingDefaultDevices(docker).devices == docker.devices, "run --device X:r keeps its r")
        #expect(Runtime.keepingDefaultDevices(Spec.Resources()).devices == nil)
    }
}
