import GockerCgroups
import GockerControllers
import GockerCore
import Testing

/// `linux.resources` members belong to the controllers that declare them:
/// each is read as its controller's shape, and what no controller reads
/// is refused, naming it.
struct ResourceMemberTests {
    func resources(_ text: String) throws -> Spec.Resources {
        try JSON.read(Spec.self, from: Array(#"{"ociVersion":"1","linux":{"resources":"#.utf8) + Array(text.utf8) + Array("}}".utf8),
                      what: "config.json").linux!.resources!
    }

    @Test func eachBuiltinMemberIsReadByItsController() throws {
        let r = try resources(#"{"memory":{"limit":67108864,"swap":-1},"cpu":{"shares":512,"cpus":"0"},"pids":{"limit":7},"devices":[{"allow":false,"access":"rwm"}]}"#)
        try BuiltinControllers.registry.check(r)
        #expect(r.memory == Spec.Resources.Memory(limit: 67_108_864, swap: -1))
        #expect(r.cpu?.shares == 512 && r.cpu?.cpus == "0")
        #expect(r.pids?.limit == 7)
        #expect(r.devices == [Spec.Resources.DeviceRule(allow: false, access: "rwm")])
        // Written back as read.
        var copy = Spec.Resources()
        copy.memory = r.memory
        copy.cpu = r.cpu
        copy.pids = r.pids
        copy.devices = r.devices
        #expect(copy == r)
        // Each member is declared by one controller only.
        let declared = BuiltinControllers.all.flatMap { $0.resourceMembers.map(\.key) }
        #expect(Set(declared).count == declared.count, "\(declared)")
        #expect(Set(declared).isSuperset(of: ["memory", "cpu", "pids", "devices"]))
    }

    @Test(arguments: [
        (#"{"rdma":{"mlx5_1":{"hcaHandles":3}}}"#, "linux.resources.rdma is not supported"),
        (#"{"memory":{"limit":1,"kernelTCP":10}}"#, "linux.resources.memory.kernelTCP is not supported"),
        (#"{"network":{"classID":1,"x":2}}"#, "linux.resources.network.x is not supported"),
        (#"{"devices":[{"allow":true},{"allow":false,"x":1}]}"#, "linux.resources.devices.1.x is not supported"),
        (#"{"pids":{"limit":"7"}}"#, "wrong type at \"linux.resources.pids.limit\""),
        (#"{"pids":{}}"#, "missing field \"linux.resources.pids.limit\""),
        (#"{"cpu":{"shares":-2}}"#, "invalid value at \"linux.resources.cpu.shares\""),
    ] as [(String, String)])
    func whatNoControllerReadsIsRefusedNamingIt(text: String, expected: String) throws {
        let r = try resources(text)
        let error = #expect(throws: GockerError.self) { try BuiltinControllers.registry.check(r) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
        // The driver checks before it makes anything.
        let driver = CgroupDriver(backend: CgroupfsV1Backend(mounts: [:]), registry: BuiltinControllers.registry)
        #expect(throws: GockerError.self) { try driver.plan(for: r) }
    }

    @Test func emptyMembersNoControllerReadsAreLeftAlone() throws {
        try BuiltinControllers.registry.check(resources(#"{"blockIO":{},"hugepageLimits":[],"memory":{"kernelTCP":null},"unified":null}"#))
    }
}
