import GockerControllers
import GockerCore

extension Spec.Resources {
    /// The members the built-in controllers read, set at once.
    init(memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil, devices: [DeviceRule]? = nil) {
        self.init()
        self.memory = memory
        self.cpu = cpu
        self.pids = pids
        self.devices = devices
    }
}
