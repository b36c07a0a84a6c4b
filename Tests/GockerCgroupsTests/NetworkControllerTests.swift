import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// net_cls and net_prio (OCI `linux.resources.network`): written on v1
/// where they are mounted (apart or together), refused naming the member
/// where they are not and on v2, with nothing made. Fake cgroupfs trees.
struct NetworkControllerTests {
    typealias Network = Spec.Resources.Network

    func network(_ n: Network) -> Spec.Resources {
        var r = Spec.Resources()
        r.network = n
        return r
    }

    let both = Network(classID: 0x10_0001, priorities: [.init(name: "eth0", priority: 5), .init(name: "lo", priority: 2)])

    @Test func theMemberIsReadCheckedAndWrittenBack() throws {
        let text = #"{"network":{"classID":1048577,"priorities":[{"name":"eth0","priority":5},{"name":"lo","priority":2}]}}"#
        let r = try JSON.read(Spec.Resources.self, from: Array(text.utf8), what: "t")
        try BuiltinControllers.registry.check(r)
        #expect(r.network == both)
        #expect(try JSONValue.parse(r.jsonBytes) == JSONValue.parse(Array(text.utf8)))
    }

    @Test func settingsOnV1() throws {
        #expect(try NetClsController().settings(for: network(both), version: .v1) == [CgroupSetting("net_cls.classid", "1048577")])
        #expect(try NetPrioController().settings(for: network(both), version: .v1)
                == [CgroupSetting("net_prio.ifpriomap", "eth0 5\n"), CgroupSetting("net_prio.ifpriomap", "lo 2\n")])
        // A class id of 0 and no priorities ask nothing.
        let none = network(Network(classID: 0, priorities: []))
        #expect(!NetClsController().isRequested(by: none) && !NetPrioController().isRequested(by: none))
        #expect(NetClsController().isRequested(by: network(Network(classID: 1))))
        #expect(!NetPrioController().isRequested(by: network(Network(classID: 1))))
    }

    @Test(arguments: ["", "a/b", "a b", "x:1", "..", "sixteen-chars-xx"])
    func aBadInterfaceNameIsRefusedNamingIt(name: String) {
        let r = network(Network(priorities: [.init(name: "eth0", priority: 1), .init(name: name, priority: 1)]))
        let error = #expect(throws: GockerError.self) { try NetPrioController().settings(for: r, version: .v1) }
        #expect(error?.description.hasPrefix("linux.resources.network.priorities.1.name \"\(name)\" is not an interface name") == true)
    }

    @Test func v1SeparateMountsGetOneGroupEachWithTheirFiles() throws {
        let fs = try FakeCgroupfs()
        try fs.write("net_cls/g/c/net_cls.classid", "")
        try fs.write("net_prio/g/c/net_prio.ifpriomap", "")
        let mounts = ["net_cls": fs.root + "/net_cls", "net_prio": fs.root + "/net_prio", "pids": fs.root + "/pids"]
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: mounts), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "g/c", resources: network(both))
        #expect(record.controllers == ["pids", "net_cls", "net_prio"])
        #expect(fs.read("net_cls/g/c/net_cls.classid") == "1048577")
        #expect(fs.read("net_prio/g/c/net_prio.ifpriomap") == "eth0 5\nlo 2\n", "one write each, through one descriptor")
    }

    /// systemd's layout: net_cls,net_prio mounted together: one directory.
    @Test func v1CoMountedShareOneGroup() throws {
        let fs = try FakeCgroupfs()
        try fs.write("net/g/c/net_cls.classid", "")
        try fs.write("net/g/c/net_prio.ifpriomap", "")
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["net_cls": fs.root + "/net", "net_prio": fs.root + "/net"]),
                                  registry: try ControllerRegistry([NetClsController(), NetPrioController()]))
        let record = try driver.create(path: "g/c", resources: network(both))
        #expect(fs.read("net/g/c/net_cls.classid") == "1048577")
        #expect(fs.read("net/g/c/net_prio.ifpriomap") == "eth0 5\nlo 2\n")
        #expect(driver.taskFiles(record) == [fs.root + "/net/g/c/tasks"], "one group, joined once")
    }

    /// This host's case: in /proc/cgroups, mounted nowhere.
    @Test(arguments: [
        (Network(classID: 7), "linux.resources.network.classID: the host offers no net_cls cgroup controller "
            + "(it is not mounted as a cgroup v1 hierarchy on this host)"),
        (Network(priorities: [.init(name: "lo", priority: 1)]), "linux.resources.network.priorities: the host offers no "
            + "net_prio cgroup controller (it is not mounted as a cgroup v1 hierarchy on this host)"),
    ] as [(Network, String)])
    func v1NotMountedIsRefusedNamingTheMemberWithNothingMade(n: Network, expected: String) throws {
        let fs = try FakeCgroupfs()
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: ["pids": fs.root + "/pids", "memory": fs.root + "/memory"]),
                                  registry: BuiltinControllers.registry)
        let error = #expect(throws: GockerError.self) { try driver.create(path: "g/c", resources: network(n)) }
        #expect(error?.description == expected)
        #expect(((try? Sys.listDirectory(fs.root)) ?? []) == [])
    }

    @Test(arguments: [
        (Network(classID: 7), "linux.resources.network.classID 7: cgroup v2 has no net_cls controller"),
        (Network(priorities: [.init(name: "lo", priority: 1)]), "linux.resources.network.priorities: cgroup v2 has no net_prio controller"),
    ] as [(Network, String)])
    func v2IsRefusedNamingTheMemberWithNothingMade(n: Network, expected: String) throws {
        let fs = try FakeCgroupfs()
        try fs.write("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
        try fs.write("cgroup.subtree_control", "")
        let driver = CgroupDriver(backend: CgroupfsV2Backend(root: fs.root), registry: BuiltinControllers.registry)
        let error = #expect(throws: GockerError.self) { try driver.create(path: "g/c", resources: network(n)) }
        #expect(error?.description == expected)
        #expect(!Sys.exists(fs.root + "/g"))
    }

    @Test func aContainerThatDoesNotAskGetsNoNetworkGroup() throws {
        let fs = try FakeCgroupfs()
        let mounts = ["net_cls": fs.root + "/net_cls", "net_prio": fs.root + "/net_prio", "pids": fs.root + "/pids"]
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: mounts), registry: BuiltinControllers.registry)
        let record = try driver.create(path: "g/c", resources: network(Network(classID: 0)))
        #expect(record.controllers == ["pids"])
        #expect(!Sys.exists(fs.root + "/net_cls/g") && !Sys.exists(fs.root + "/net_prio/g"))
    }
}
