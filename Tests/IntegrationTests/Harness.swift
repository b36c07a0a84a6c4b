import Foundation
import Testing

/// One gocker installation for one test: its own data root and state root
/// in a temporary directory, the built `gocker` binary, and a check that
/// nothing is left behind.
final class Sandbox {
    let dir: String
    let dataRoot: String
    let stateRoot: String

    /// The `gocker` built beside this test bundle.
    static let binary: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = (exe as NSString).deletingLastPathComponent
        // The test runner may live inside the .xctest bundle.
        while !dir.isEmpty && dir != "/" && !FileManager.default.isExecutableFile(atPath: dir + "/gocker") {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir + "/gocker"
    }()

    init() throws {
        var template = Array("/tmp/gocker-test-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw POSIXError(.EIO) }
        dir = String(cString: p)
        dataRoot = dir + "/data"
        stateRoot = dir + "/state"
    }

    /// This sandbox's containers' groups go under this parent in every
    /// hierarchy (GOCKER_CGROUP_PARENT), so that what they leave can be seen.
    /// A top-level group of its own ("gocker-test-XXXXXX"), removed on deinit,
    /// so that no test leaves a shared parent behind.
    var cgroupParent: String { (dir as NSString).lastPathComponent }

    /// The hierarchies' directories for this sandbox's cgroup parent.
    var cgroupParentDirs: [String] {
        list("/sys/fs/cgroup").map { "/sys/fs/cgroup/\($0)/\(cgroupParent)" }
    }

    /// Groups left under this sandbox's parent.
    func cgroupsLeft() -> [String] {
        cgroupParentDirs.flatMap { d in
            ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).filter {
                var isDir: ObjCBool = false
                return FileManager.default.fileExists(atPath: "\(d)/\($0)", isDirectory: &isDir) && isDir.boolValue
            }.map { "\(d)/\($0)" }
        }
    }

    deinit {
        // Whatever a failing test left: its processes, then its groups and files.
        for pid in processesRootedHere() { kill(pid, SIGKILL) }
        for _ in 0..<100 where !processesRootedHere().isEmpty { usleep(20_000) }
        // Bridges are the host's: the networks of every data root in the
        // sandbox go (a test may use more than one), with their containers
        // (the default network's bridge is made by the first run).
        for root in networkDataRoots() {
            let ids = ((try? gocker(["ps", "--data-root", root, "-aq", "--no-trunc"]))?.stdout ?? "")
                .split(separator: "\n").map(String.init)
            if !ids.isEmpty { _ = try? gocker(["rm", "--data-root", root, "-f"] + ids) }
            _ = try? gocker(["network", "prune", "--data-root", root, "-f"])
        }
        for group in cgroupsLeft() { rmdir(group) }
        for d in cgroupParentDirs { rmdir(d) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The data roots under the sandbox's directory that hold networks.
    func networkDataRoots() -> [String] {
        var roots: [String] = []
        guard let e = FileManager.default.enumerator(atPath: dir) else { return roots }
        while let path = e.nextObject() as? String {
            if path.split(separator: "/").count > 4 { e.skipDescendants(); continue }
            if (path as NSString).lastPathComponent == "networks" {
                roots.append(dir + "/" + (path as NSString).deletingLastPathComponent)
                e.skipDescendants()
            } else if path.hasSuffix("/containers") || path.hasSuffix("/image") || path.hasSuffix("/volumes") {
                e.skipDescendants()
            }
        }
        return roots
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["GOCKER_DATA_ROOT"] = dataRoot
        env["GOCKER_STATE_ROOT"] = stateRoot
        env["GOCKER_CGROUP_PARENT"] = cgroupParent
        // No run reaches a registry that is not the test's own (the pull
        // tests ask for one by --pull).
        env["GOCKER_PULL"] = "never"
        return env
    }

    /// Runs gocker to completion, with `input` (or nothing) on its stdin.
    @discardableResult
    func gocker(_ args: [String], binary: String = Sandbox.binary, input: String? = nil,
                environment extra: [String: String] = [:]) throws -> Result {
        try Self.run(binary, args, environment: environment.merging(extra) { $1 }, filesIn: dir, input: input)
    }

    /// Runs a program to completion, with `input` (or nothing) on its
    /// stdin. Its output goes to files in `dir` (no pipe can fill up and
    /// stall the child), removed once read. `environment` nil: this
    /// process's.
    static func run(_ executable: String, _ args: [String], environment: [String: String]?, filesIn dir: String,
                    input: String? = nil, workingDirectory: String? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if let environment { p.environment = environment }
        if let workingDirectory { p.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let base = dir + "/run-\(UUID().uuidString)"
        defer { for s in [".out", ".err", ".in"] { try? FileManager.default.removeItem(atPath: base + s) } }
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        p.standardError = FileHandle(forWritingAtPath: base + ".err")
        if let input {
            _ = FileManager.default.createFile(atPath: base + ".in", contents: Data(input.utf8))
            p.standardInput = FileHandle(forReadingAtPath: base + ".in")
        } else {
            p.standardInput = FileHandle.nullDevice
        }
        try p.run()
        p.waitUntilExit()
        let outData = FileManager.default.contents(atPath: base + ".out") ?? Data()
        let errData = FileManager.default.contents(atPath: base + ".err") ?? Data()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return Result(status: status, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Starts gocker in the background with its output going to files in the sandbox.
    func start(_ args: [String]) throws -> (Process, outFile: String) {
        let outFile = dir + "/bg-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: outFile, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Sandbox.binary)
        p.arguments = args
        p.environment = environment
        _ = FileManager.default.createFile(atPath: outFile + ".err", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: outFile)
        p.standardError = FileHandle(forWritingAtPath: outFile + ".err")
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return (p, outFile)
    }

    /// The terminal test's ^C and ^D, or a stuck container, must never hang
    /// the suite: a helper that waits for a background gocker at most
    /// `seconds`, then kills it.
    func finish(_ p: Process, within seconds: Double = 20) {
        if !waitFor(seconds, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Runs a container whose PID 1 traps TERM, sends TERM to gocker, and
    /// checks that the trap ran: gocker passed the signal on.
    func expectTERMReachesTheContainer(_ runFlags: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let script = "trap 'echo trapped-TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done"
        let (p, out) = try start(["run", "--rm"] + runFlags + ["busybox", "sh", "-c", script])
        #expect(waitFor { self.contents(out).contains("ready") }, sourceLocation: sourceLocation)
        kill(p.processIdentifier, SIGTERM)
        finish(p)
        #expect(contents(out).contains("trapped-TERM"), sourceLocation: sourceLocation)
        #expect(p.terminationStatus == 3, sourceLocation: sourceLocation)
    }

    /// A container's record (container.json), as JSON values.
    func record(_ id: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: "\(dataRoot)/containers/\(id)/container.json") else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// The state of the one container in the state root once it has
    /// started: its state file written with its process (not the state
    /// written ahead, with none yet) and its exec FIFO gone.
    func runningState() -> [String: Any]? {
        guard let id = stateLeft().first,
              !FileManager.default.fileExists(atPath: "\(stateRoot)/\(id)/exec.fifo"),
              let data = FileManager.default.contents(atPath: "\(stateRoot)/\(id)/state.json"),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              (obj["pid"] as? Int ?? 0) > 0 else { return nil }
        return obj
    }

    /// Polls until `condition` holds, for up to `seconds`.
    func waitFor(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        Self.wait(seconds, condition)
    }

    /// `condition` polled every 20 ms until it holds or `seconds` pass.
    static func wait(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    func contents(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    func list(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// The state root's containers: every entry but the spare directories
    /// gocker keeps for the next container (StateStore.spareRoot), and
    /// those too, by name, when one is not empty.
    func stateLeft(in root: String? = nil) -> [String] { Self.stateLeft(in: root ?? stateRoot) }

    static func stateLeft(in root: String) -> [String] {
        func list(_ path: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        }
        let spares = list(root + "/@spare").filter { !list("\(root)/@spare/\($0)").isEmpty }
        return list(root).filter { $0 != "@spare" } + spares.map { "@spare/\($0)" }
    }

    /// Host processes whose root directory lies under this sandbox: the
    /// mount at "/" in their own mount table is an overlay of this sandbox's
    /// layers or a bind of a directory in it. (/proc/PID/root cannot tell:
    /// after pivot_root it reads "/".)
    func processesRootedHere() -> [pid_t] {
        list("/proc").compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != getpid() else { return nil }
            let rootMount = contents("/proc/\(name)/mountinfo").split(separator: "\n").first { line in
                let fields = line.split(separator: " ")
                return fields.count > 4 && fields[4] == "/"
            }
            return rootMount?.contains(dir) == true ? pid : nil
        }
    }

    /// Mounts on the host that mention this sandbox.
    func hostMountsHere() -> [String] {
        contents("/proc/self/mountinfo").split(separator: "\n").map(String.init).filter { $0.contains(dir) }
    }

    /// Asserts that no container of this sandbox left anything: container
    /// directories, names, runtime state, mounts or processes.
    func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(list(dataRoot + "/containers") == [], "container directories left", sourceLocation: sourceLocation)
        #expect(list(dataRoot + "/names") == [], "names left", sourceLocation: sourceLocation)
        #expect(stateLeft() == [], "runtime state left", sourceLocation: sourceLocation)
        #expect(hostMountsHere() == [], "mounts left", sourceLocation: sourceLocation)
        #expect(processesRootedHere() == [], "processes left", sourceLocation: sourceLocation)
        #expect(cgroupsLeft() == [], "cgroups left", sourceLocation: sourceLocation)
        for n in list(dataRoot + "/networks") where !n.hasPrefix(".") {
            let dir = "\(dataRoot)/networks/\(n)"
            let record = (try? JSONSerialization.jsonObject(with: Data(contents(dir + "/network.json").utf8))) as? [String: Any]
            if let br = record?["bridge"] as? String {
                // A veth goes with its network namespace, when the kernel
                // has taken that down.
                _ = waitFor { list("/sys/class/net/\(br)/brif").isEmpty }
                #expect(list("/sys/class/net/\(br)/brif") == [], "veths left on \(br)", sourceLocation: sourceLocation)
            }
            let book = (try? JSONSerialization.jsonObject(with: Data(contents(dir + "/ipam.json").utf8))) as? [String: Any]
            let held = (book?["addresses"] as? [String: Any]) ?? [:]
            #expect(held.isEmpty, "addresses left on \(n): \(held)", sourceLocation: sourceLocation)
        }
    }
}

/// The integration tests start real containers: they need root. Under CI
/// they always run (and fail if not root) rather than skip.
let canRunContainers = getuid() == 0 || ProcessInfo.processInfo.environment["CI"] == "true"

/// Runs a shell script on the host; its exit status.
@discardableResult
func sh(_ script: String) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// Runs `executable` with `args` to its end, stdin from /dev/null, stdout
/// and stderr together through a file in `scratch` (no pipe to fill up):
/// its status and output.
/// A TCP socket listening on a free port of 127.0.0.1: it and the port.
func listenOnLoopback() throws -> (Int32, UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound, listen(fd, 16) == 0 else {
        let e = errno
        close(fd)
        throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
    }
    return (fd, UInt16(bigEndian: addr.sin_port))
}

func runTool(_ executable: String, _ args: [String], environment: [String: String]? = nil,
             scratch: String) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = scratch + "/out-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    p.standardOutput = FileHandle(forWritingAtPath: out)
    p.standardError = FileHandle(forWritingAtPath: out)
    p.standardInput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(atPath: out)
    return (p.terminationStatus, text)
}

/// The host's cgroup layout as other tests find it. HugetlbTests mount a v1
/// hugetlb hierarchy for a few seconds; an engine that reads the layout
/// when it starts a container (containerd's shim, podman) may catch it then
/// and lose the container's groups (the shim then reports no metrics). A
/// test that changes the layout holds this lock exclusively, and one that
/// drives such an engine holds it shared, for as long as the object lives.
/// (flock: the suites share one process, each lock its own descriptor.)
final class CgroupLayoutLock {
    private let fd: Int32

    init(exclusive: Bool) {
        fd = open(NSTemporaryDirectory() + "gocker-tests-cgroup-layout.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { _ = flock(fd, exclusive ? LOCK_EX : LOCK_SH) }
    }

    deinit { if fd >= 0 { close(fd) } }
}
