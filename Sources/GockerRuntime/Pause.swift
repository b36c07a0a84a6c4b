import Glibc
import GockerControllers
import GockerCore

/// `pause` and `unpause` (runc's `pause` and `resume`): every process of the
/// container frozen or thawed through its freezer cgroup.
extension Runtime {
    public func pause(id: String) throws(GockerError) { try setFrozen(id: id, true) }
    public func resume(id: String) throws(GockerError) { try setFrozen(id: id, false) }

    func setFrozen(id: String, _ frozen: Bool) throws(GockerError) {
        let lock = try store.lock(id)
        defer { lock.release() }
        let s = try store.load(id)
        let status = status(of: s)
        if frozen && status != .running {
            throw GockerError(.invalidState, status == .paused ? "container \(id) is already paused" : "container \(id) is not running")
        }
        if !frozen && status != .paused { throw GockerError(.invalidState, "container \(id) is not paused") }
        guard let r = s.cgroups, r.controllers.contains("freezer") else {
            throw GockerError(.invalidState, "container \(id) has no freezer cgroup: it cannot be paused")
        }
        try FreezerController().setFrozen(frozen, path: r.path, backend: driver(for: r).backend)
    }

    /// Thaws a paused container after a signal was sent to it, so that the
    /// signal is acted on (stop, kill, delete of a paused container).
    func thawIfPaused(_ s: RuntimeState) {
        guard let r = s.cgroups, status(of: s) == .paused else { return }
        try? FreezerController().setFrozen(false, path: r.path, backend: driver(for: r).backend)
    }
}

extension Engine {
    /// `gocker pause` / `gocker unpause`.
    public func setPaused(_ ref: String, _ paused: Bool) throws(GockerError) {
        let record = try lookup(ref)
        let runtime = runtime(for: record)
        guard (try? runtime.store.load(record.id)) != nil else {
            throw GockerError(.invalidState, "container \(record.id) is not running")
        }
        if paused { try runtime.pause(id: record.id) } else { try runtime.resume(id: record.id) }
    }
}
