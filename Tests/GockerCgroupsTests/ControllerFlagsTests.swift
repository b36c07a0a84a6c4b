import Glibc
import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// Each controller's docker flags, read into OCI resources against a host
/// the test describes (its online CPUs and memory nodes, its device nodes):
/// docker's values, units, cross-flag rules and host checks.
struct ControllerFlagsTests {
    /// Two CPUs (0-1), one memory node, /dev/fuse a character device 10:229.
    static let host = HostFacts(onlineCPUs: { [0, 1] }, onlineMems: { [0] }, device: { path in
        switch path {
        case "/dev/fuse": .success(HostFacts.DeviceNode(type: "c", major: 10, minor: 229, mode: 0o666))
        case "/dev/sda": .success(HostFacts.DeviceNode(type: "b", major: 8, minor: 0, mode: 0o660))
        case "/etc/passwd": .success(nil)
        default: .failure(SystemCallError("stat", path: path, errno: ENOENT))
        }
    })

    func flags(_ pairs: [(String, String)], privileged: Bool = false) -> ResourceFlags {
        var f = ResourceFlags()
        for (name, value) in pairs { f.add(name, value) }
        f.privileged = privileged
        return f
    }

    func resources(_ pairs: [(String, String)], privileged: Bool = false) throws(GockerError) -> Spec.Resources {
        try BuiltinControllers.registry.resources(from: flags(pairs, privileged: privileged), host: Self.host)
    }

    func refusal(_ pairs: [(String, String)]) -> String {
        do {
            _ = try resources(pairs)
            return "accepted"
        } catch { return error.description }
    }

    @Test func memoryLimitSwapAndReservation() throws {
        var r = try resources([("memory", "64m")])
        #expect(r.memory == Spec.Resources.Memory(limit: 64 << 20, swap: 128 << 20), "swap defaults to twice the limit")
        r = try resources([("memory", "1g"), ("memory-swap", "-1"), ("memory-reservation", "512m")])
        #expect(r.memory == Spec.Resources.Memory(limit: 1 << 30, reservation: 512 << 20, swap: -1))
        r = try resources([("memory", "64m"), ("memory-swap", "100m")])
        #expect(r.memory?.swap == 100 << 20)
        // The last of a single-valued flag counts.
        r = try resources([("memory", "64m"), ("memory", "32m")])
        #expect(r.memory?.limit == 32 << 20)
        #expect(refusal([("memory", "5m")]) == "invalid argument \"5m\" for --memory: minimum memory limit allowed is 6MB")
        #expect(refusal([("memory", "lots")]) == "invalid argument \"lots\" for --memory: invalid size")
        #expect(refusal([("memory-swap", "1g")]) == "--memory-swap \"1g\" needs --memory: set the memory limit too")
        #expect(refusal([("memory", "64m"), ("memory-swap", "32m")])
                == "invalid argument \"32m\" for --memory-swap: it must be at least the memory limit (64m), or -1")
        #expect(refusal([("memory", "64m"), ("memory-reservation", "65m")])
                == "invalid argument \"65m\" for --memory-reservation: it must be below the memory limit (64m)")
    }

    @Test func cpuSharesAndCpusAgainstTheHostsCPUs() throws {
        var r = try resources([("cpu-shares", "512"), ("cpus", "1.5")])
        #expect(r.cpu == Spec.Resources.CPU(shares: 512, quota: 150_000, period: 100_000))
        r = try resources([("cpu-shares", "0")])
        #expect(r.cpu == nil, "0 leaves shares unset")
        #expect(refusal([("cpu-shares", "1")]) == "invalid argument \"1\" for --cpu-shares: must be 0 (unset) or 2 to 262144")
        #expect(refusal([("cpus", "3")])
                == "invalid argument \"3\" for --cpus: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available")
        #expect(refusal([("cpus", "0.001")]) == "invalid argument \"0.001\" for --cpus: at least 0.01 CPUs")
        #expect(refusal([("cpus", "-1")]) == "invalid argument \"-1\" for --cpus: expected a decimal number of CPUs")
    }

    @Test func cpusetListsAgainstTheHostsCPUsAndNodes() throws {
        let r = try resources([("cpuset-cpus", "0-1"), ("cpuset-mems", "0"), ("cpus", "1")])
        #expect(r.cpu == Spec.Resources.CPU(quota: 100_000, period: 100_000, cpus: "0-1", mems: "0"), "cpuset and cpu share linux.resources.cpu")
        #expect(refusal([("cpuset-cpus", "1-3")])
                == "invalid argument \"1-3\" for --cpuset-cpus: CPUs [2, 3] are not available on this host")
        #expect(refusal([("cpuset-cpus", "1-")]) == "invalid argument \"1-\" for --cpuset-cpus: expected a list like 0-2,4")
        #expect(refusal([("cpuset-mems", "0,1")])
                == "invalid argument \"0,1\" for --cpuset-mems: memory nodes [1] are not available on this host")
    }

    @Test func pidsLimit() throws {
        #expect(try resources([("pids-limit", "100")]).pids?.limit == 100)
        #expect(try resources([("pids-limit", "0")]).pids?.limit == -1, "0 or less: unlimited")
        #expect(try resources([]).pids == nil)
    }

    @Test func devicesDockersListPlusEachDeviceOrAllWhenPrivileged() throws {
        #expect(try resources([]).devices == DevicesController.dockerDeviceRules)
        let r = try resources([("device", "/dev/fuse"), ("device", "/dev/sda:/dev/xvda:r")])
        #expect(r.devices == DevicesController.dockerDeviceRules + [
            .init(allow: true, type: "c", major: 10, minor: 229, access: "rwm"),
            .init(allow: true, type: "b", major: 8, minor: 0, access: "r"),
        ])
        let nodes = try DevicesController.devices(from: flags([("device", "/dev/sda:/dev/xvda:r"), ("device", "/dev/fuse:rw")]),
                                                  host: Self.host)
        #expect(nodes.map(\.node) == [
            Spec.Device(type: "b", path: "/dev/xvda", major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 0),
            Spec.Device(type: "c", path: "/dev/fuse", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0),
        ])
        #expect(nodes[1].rule.access == "rw")
        #expect(try resources([("device", "/dev/fuse")], privileged: true).devices == [.init(allow: true, access: "rwm")])
        #expect(refusal([("device", "fuse")]) == "invalid argument \"fuse\" for --device: expected /dev/HOST[:/dev/CONTAINER[:rwm]]")
        #expect(refusal([("device", "/dev/fuse:/dev/f:rwx")])
                == "invalid argument \"/dev/fuse:/dev/f:rwx\" for --device: bad container path or permissions")
        #expect(refusal([("device", "/etc/passwd")]) == "invalid argument \"/etc/passwd\" for --device: /etc/passwd is not a device")
        #expect(refusal([("device", "/dev/nope")]).hasPrefix("invalid argument \"/dev/nope\" for --device"))
    }

    /// The live host facts: this machine's online CPUs, and a real device node.
    @Test func liveHostFacts() throws {
        let cpus = HostFacts.live.onlineCPUs()
        #expect(cpus.contains(0) && cpus.count == Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let null = try HostFacts.statDevice("/dev/null").get()
        #expect(null == HostFacts.DeviceNode(type: "c", major: 1, minor: 3, mode: 0o666))
        #expect(try HostFacts.statDevice("/").get() == nil)
    }

    /// No flag, no host question: a plain start reads no host file.
    @Test func noFlagsAskTheHostNothing() throws {
        let untouched = HostFacts(onlineCPUs: { Issue.record("asked for CPUs"); return [] },
                                  onlineMems: { Issue.record("asked for memory nodes"); return [] },
                                  device: { Issue.record("asked for \($0)"); return .success(nil) })
        let r = try BuiltinControllers.registry.resources(from: ResourceFlags(), host: untouched)
        #expect(r == Spec.Resources(devices: DevicesController.dockerDeviceRules))
    }

    /// Every option a controller declares stores its value under its own
    /// long name, whichever spelling was typed, and no two controllers
    /// declare the same name.
    @Test func optionsLandUnderTheirNames() throws {
        let options = BuiltinControllers.options
        #expect(options.map(\.name) == BuiltinControllers.all.flatMap { $0.options.map(\.name) }, "registry order")
        let spellings = options.flatMap(\.spellings)
        #expect(Set(spellings).count == spellings.count)
        for o in options {
            var f = ResourceFlags()
            try o.apply(&f, "7")
            #expect(f[o.name] == "7" && f.all(o.name) == ["7"], "\(o.name)")
        }
    }
}
