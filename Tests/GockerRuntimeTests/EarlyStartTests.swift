import CGockerCore
import Glibc
import Testing
@testable import GockerCore
@testable import GockerRuntime

/// A foreground `run` starts what it created at once (Runtime.EarlyStart):
/// `create` opens the exec FIFO's read end before the clone and sends SAVED
/// with GO, so that the child goes from READY to its execve without waiting
/// for `start` or for a message after READY. Seen here as a child that runs
/// its command to the end although nothing ever starts it, and although the
/// sync socket is closed once `create` returns (a child still waiting for
/// SAVED then would exit with gocker's set-up status instead).
@Suite(.enabled(if: getuid() == 0 || Sys.env("CI") == "true", "starts containers: needs root"), .serialized)
struct EarlyStartTests {
    /// A bundle of a busybox root running `sh -c SCRIPT`, with a
    /// createRuntime hook running `hook` when given.
    func bundle(in dir: String, script: String, hook: String? = nil) throws -> String {
        let bundle = dir + "/bundle"
        try Sys.mkdirAll(bundle + "/rootfs/bin")
        try Sys.mkdirAll(bundle + "/rootfs/proc")
        let busybox = try Sys.readFile("/bin/busybox")
        try Sys.writeFileExclusive(bundle + "/rootfs/bin/busybox", busybox, mode: 0o755)
        let hooks = hook.map { #", "hooks": {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "\#($0)"]}]}"# } ?? ""
        let config = """
            {"ociVersion": "1.0.2",
             "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/busybox", "sh", "-c", "\(script)"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]}\(hooks)}
            """
        try Sys.writeFileExclusive(bundle + "/config.json", Array(config.utf8))
        return bundle
    }

    /// The exit status of child `pid` of this process, waited for up to 10 s
    /// (then it is killed, and nil).
    func exitStatus(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        for _ in 0..<1000 {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return status & 0x7f == 0 ? (status >> 8) & 0xff : nil }
            if r < 0 && errno != EINTR { return nil }
            var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&ts, nil)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        return nil
    }

    /// Creates a container with an early start and returns how its command
    /// ended, never starting it.
    func runWithoutStart(script: String, hook: String? = nil, in dir: String) throws -> (status: Int32?, fifoOpened: Bool) {
        let runtime = Runtime(stateRoot: dir + "/state")
        let id = "early-\(getpid())"
        defer { _ = try? runtime.delete(id: id, force: true) }
        let early = Runtime.EarlyStart()
        let (state, _, _) = try runtime.create(id: id, bundle: try bundle(in: dir, script: script, hook: hook),
                                               pidFile: nil, allowTerminal: false, early: early)
        let opened = early.fifo >= 0
        // (The read end stays open while the child runs on.)
        let status = withExtendedLifetime(early) { exitStatus(state.pid) }
        return (status, opened)
    }

    @Test func theChildRunsOnFromReadyWithoutStart() throws {
        var t = Array("/tmp/gocker-unit-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&t)!)
        defer { try? Sys.removeAll(dir) }
        let (status, opened) = try runWithoutStart(script: "exit 5", in: dir)
        #expect(opened)
        #expect(status == 5)
    }

    /// With a runtime hook, whose answer the child reads after GO, SAVED
    /// comes after READY as before (and is answered): the FIFO opened early
    /// still lets the command run.
    @Test func aRuntimeHookKeepsSavedAfterReady() throws {
        var t = Array("/tmp/gocker-unit-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&t)!)
        defer { try? Sys.removeAll(dir) }
        let mark = dir + "/hook-ran"
        let (status, opened) = try runWithoutStart(script: "exit 6", hook: "touch \(mark)", in: dir)
        #expect(opened)
        #expect(status == 6)
        #expect(Sys.exists(mark))
    }
}
