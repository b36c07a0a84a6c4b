import GockerCgroups
import GockerCore

/// The controllers gocker applies, in order: cpuset first (on v1 a task
/// cannot join a cpuset group before its cpus and mems are set). Adding a
/// controller is one file in this folder and one line here.
public enum BuiltinControllers {
    public static let all: [any ResourceController] = [
        CpusetController(),
        CPUController(),
        CPUAcctController(),
        MemoryController(),
        PidsController(),
        HugetlbController(),
        BlkioController(),
        NetClsController(),
        NetPrioController(),
        DevicesController(),
        FreezerController(),
    ]

    public static var registry: ControllerRegistry {
        // The list above holds no duplicate name; register checks it.
        try! ControllerRegistry(all)
    }

    /// `run`'s and `create`'s resource flags: every controller's, in order
    /// (`ControllerRegistry.options` without making a registry first).
    public static let options: [CommandOption<ResourceFlags>] = {
        var out: [CommandOption<ResourceFlags>] = []
        for c in all { out += c.options }
        return out
    }()
}

extension ResourceFlags {
    /// The OCI resources these flags ask for, with docker's rules and
    /// limits, each built-in controller adding its part; every bad value is
    /// refused naming its flag.
    public func resources(privileged: Bool, host: HostFacts = .live) throws(GockerError) -> Spec.Resources {
        var flags = self
        flags.privileged = privileged
        var r = Spec.Resources()
        for c in BuiltinControllers.all { try c.resources(from: flags, host: host, into: &r) }
        return r
    }
}
