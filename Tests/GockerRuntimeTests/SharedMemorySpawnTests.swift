import CGockerCore
import Glibc
import Testing
@testable import GockerCore
@testable import GockerRuntime

/// A container's first process shares gocker's memory until its execve
/// (CLONE_VM | CLONE_VFORK, see spawn.c), one such process at a time: a
/// second container made meanwhile gets a copy. Either way the command
/// runs as before. Seen through /proc/PID/mem: a word this process writes
/// after the clone reads the same in the child only if they share it.
@Suite(.enabled(if: getuid() == 0 || Sys.env("CI") == "true", "starts containers: needs root"), .serialized)
struct SharedMemorySpawnTests {
    /// A bundle of a busybox root running `sh -c SCRIPT`.
    func bundle(in dir: String, script: String) throws -> String {
        let bundle = dir + "/bundle-" + script.filter(\.isNumber)
        try Sys.mkdirAll(bundle + "/rootfs/bin")
        try Sys.mkdirAll(bundle + "/rootfs/proc")
        let busybox = try Sys.readFile("/bin/busybox")
        try Sys.writeFileExclusive(bundle + "/rootfs/bin/busybox", busybox, mode: 0o755)
        let config = """
            {"ociVersion": "1.0.2",
             "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/busybox", "sh", "-c", "\(script)"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]}}
            """
        try Sys.writeFileExclusive(bundle + "/config.json", Array(config.utf8))
        return bundle
    }

    /// The 8 bytes at `address` in process `pid`'s memory.
    func word(of pid: pid_t, at address: UnsafeMutablePointer<UInt64>) -> UInt64? {
        let fd = open("/proc/\(pid)/mem", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var v: UInt64 = 0
        let n = pread(fd, &v, 8, off_t(Int(bitPattern: address)))
        return n == 8 ? v : nil
    }

    /// The exit status of child `pid` of this process.
    func exitStatus(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 { guard errno == EINTR else { return nil } }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : nil
    }

    @Test func firstProcessSharesMemoryUntilExecOneAtATime() throws {
        var t = Array("/tmp/gocker-unit-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&t)!)
        defer { try? Sys.removeAll(dir) }
        let runtime = Runtime(stateRoot: dir + "/state")
        let a = "vmshare-\(getpid())-a", b = "vmshare-\(getpid())-b"
        defer {
            _ = try? runtime.delete(id: a, force: true)
            _ = try? runtime.delete(id: b, force: true)
        }
        let marker = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        defer { marker.deallocate() }
        marker.pointee = 1

        let first = try runtime.create(id: a, bundle: try bundle(in: dir, script: "exit 7"))
        let second = try runtime.create(id: b, bundle: try bundle(in: dir, script: "exit 9"))
        marker.pointee = 2
        // The first waits for start in this process's memory; the second,
        // made while the first was in flight, in a copy made before the
        // word changed.
        #expect(word(of: first.pid, at: marker) == 2)
        #expect(word(of: second.pid, at: marker) == 1)

        _ = try runtime.start(id: a)
        _ = try runtime.start(id: b)
        #expect(exitStatus(first.pid) == 7)
        #expect(exitStatus(second.pid) == 9)

        // Once the first has run (its cloning thread, woken by the execve,
        // then lets go), a later one shares the memory again.
        let c = "vmshare-\(getpid())-c"
        let script = try bundle(in: dir, script: "exit 3")
        var shared = false
        for attempt in 1...100 where !shared {
            let third = try runtime.create(id: c, bundle: script)
            marker.pointee = 100 + UInt64(attempt)
            shared = word(of: third.pid, at: marker) == marker.pointee
            _ = try runtime.start(id: c)
            #expect(exitStatus(third.pid) == 3)
            try runtime.delete(id: c)
            if !shared { usleep(20_000) }
        }
        #expect(shared)
    }
}
