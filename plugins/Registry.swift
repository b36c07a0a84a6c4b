import GockerCgroups

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
        DevicesController(),
        FreezerController(),
    ]

    public static var registry: ControllerRegistry {
        // The list above holds no duplicate name; register checks it.
        try! ControllerRegistry(all)
    }
}
