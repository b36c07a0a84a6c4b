import Foundation
import Testing

/// A containerd of the test's own: its root, state, socket, ctr's fifos and
/// runc's state all in the sandbox, stopped (and its leftovers removed) on
/// deinit, so also when a test fails.
final class PrivateContainerd {
    let dir: String
    let socket: String
    let process: Process
    /// containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever
    /// its state directory: removed after, when the test made it.
    let madeRunDirectory = !FileManager.default.fileExists(atPath: "/run/containerd")

    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/containerd") }

    /// Held while this containerd runs (see CgroupLayoutLock).
    private let layout = CgroupLayoutLock(exclusive: false)

    init(in box: Sandbox) throws {
        dir = box.dir + "/containerd"
        socket = dir + "/containerd.sock"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // No CRI (it would want CNI and the host's paths), no debug or metrics listeners.
        let config = """
            version = 2
            root = "\(dir)/root"
            state = "\(dir)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = ""
            [debug]
              address = ""
            [metrics]
              address = ""
            """
        try config.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/containerd")
        process.arguments = ["--config", dir + "/config.toml", "--log-level", "warn"]
        _ = FileManager.default.createFile(atPath: dir + "/log", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: dir + "/log")
        process.standardError = FileHandle(forWritingAtPath: dir + "/log")
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Ready once it answers.
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: socket), (try? ctr(["version"]).status) == 0 { return }
            usleep(50_000)
        }
        throw POSIXError(.ETIMEDOUT)
    }

    deinit {
        // Whatever a failing test left running goes first, then containerd.
        for id in (try? ctr(["tasks", "ls", "-q"]).output.split(separator: "\n").map(String.init)) ?? [] {
            _ = try? ctr(["tasks", "kill", "-s", "KILL", id])
            _ = try? ctr(["tasks", "delete", "-f", id])
            _ = try? ctr(["containers", "delete", id])
        }
        if process.isRunning {
            process.terminate()
            for _ in 0..<100 where process.isRunning { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        // The snapshots are overlay mounts while containers live; none should be left.
        _ = try? shell("grep -o ' \(dir)[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l")
        if madeRunDirectory {
            rmdir("/run/containerd/s")
            rmdir("/run/containerd")
        }
    }

    /// Runs ctr against this containerd.
    @discardableResult
    func ctr(_ args: [String]) throws -> (status: Int32, output: String) {
        try runTool("/usr/bin/ctr", ["--address", socket] + args, scratch: dir)
    }

    /// `ctr run --rm` of a task that prints and exits at once. containerd's
    /// shim can drop what such a task wrote last when it ends before the copy
    /// drains (containerd issue 770 and others; seen here with Debian's runc
    /// too; the shim copies the task's output whatever the runtime): a run
    /// that succeeded with a cut-short prefix of `expected` is run again, at
    /// most twice more, each time said on stderr. Any other output is
    /// returned as it came.
    func ctrRun(_ args: [String], expecting expected: String) throws -> (status: Int32, output: String) {
        var run = try ctr(["run", "--rm"] + args)
        for _ in 0..<2 where run.status == 0 && run.output != expected && expected.hasPrefix(run.output) {
            FileHandle.standardError.write(Data("ctr run \(args.suffix(3)): output cut short (\(run.output.debugDescription)), run again\n".utf8))
            run = try ctr(["run", "--rm"] + args)
        }
        return run
    }
}

/// The archive `gocker save` writes is an image containerd imports and runs.
@Suite(.enabled(if: canRunContainers && (PrivateContainerd.installed || ProcessInfo.processInfo.environment["CI"] == "true"),
                "needs root and Debian's containerd (./build.sh deps installs it)"))
struct ContainerdTests {
    @Test func aSavedImageImportsIntoContainerdAndRunsThere() throws {
        let box = try Sandbox()
        try box.makeChangedContainer("c1")
        let commit = try box.gocker(["commit", "-c", #"CMD ["cat", "/added"]"#, "c1", "web:v2"])
        #expect(commit.status == 0, "\(commit.stderr)")
        let archive = box.dir + "/web.tar"
        #expect(try box.gocker(["save", "-o", archive, "web:v2"]).status == 0)
        #expect(try box.gocker(["rm", "c1"]).status == 0)

        let containerd = try PrivateContainerd(in: box)
        let imported = try containerd.ctr(["images", "import", archive])
        #expect(imported.status == 0, "\(imported.output)")
        let images = try containerd.ctr(["images", "ls", "-q"])
        #expect(images.output.split(separator: "\n").contains("docker.io/library/web:v2"), "\(images.output)")

        // Run by containerd's shim, first with runc (Debian's, which containerd
        // depends on), then with gocker's own OCI runtime in its place.
        let script = "cat /added; ls /bin/ls 2>/dev/null || echo no-ls; ls /usr/sbin; tail -1 /etc/passwd"
        for (id, runtime) in [("web-runc", [String]()), ("web-gocker", ["--runc-binary", try gockerOCI(box)])] {
            let expected = "added\nno-ls\nonly\nchanged\n"
            let run = try containerd.ctrRun(["--fifo-dir", containerd.dir + "/fifo",
                                             "--runc-root", containerd.dir + "/runc", "--cgroup", "\(box.cgroupParent)/\(id)"]
                                            + runtime + ["docker.io/library/web:v2", id, "sh", "-c", script], expecting: expected)
            #expect(run.status == 0 && run.output == expected, "\(id): \(run.output)")
        }
        let cmd = try containerd.ctrRun(["--fifo-dir", containerd.dir + "/fifo", "--runc-root", containerd.dir + "/runc",
                                         "--cgroup", "\(box.cgroupParent)/web-cmd", "docker.io/library/web:v2", "web-cmd"],
                                        expecting: "added\n")
        #expect(cmd.status == 0 && cmd.output == "added\n", "the image's CMD: \(cmd.output)")
        box.expectNothingLeft()
    }

    /// What the shim asks of the runtime beyond a run: `ctr task ps`
    /// (`ps --format json`), and `task kill -a` then `task rm -f` (a second
    /// `kill --all` of a container that already ended).
    @Test func containerdsShimListsKillsAllAndRemovesAGockerTask() throws {
        let box = try Sandbox()
        let archive = box.dir + "/busybox.tar"
        #expect(try box.gocker(["save", "-o", archive, "busybox"]).status == 0)
        let containerd = try PrivateContainerd(in: box)
        #expect(try containerd.ctr(["images", "import", archive]).status == 0)
        let id = "bb-gocker"
        let run = try containerd.ctr(["run", "-d", "--fifo-dir", containerd.dir + "/fifo", "--runc-root", containerd.dir + "/runc",
                                      "--cgroup", "\(box.cgroupParent)/\(id)", "--runc-binary", try gockerOCI(box),
                                      "docker.io/library/busybox:latest", id, "sleep", "100"])
        #expect(run.status == 0, "\(run.output)")
        let ps = try containerd.ctr(["tasks", "ps", id])
        let rows = ps.output.split(separator: "\n")
        #expect(ps.status == 0 && rows.count == 2 && rows[0].hasPrefix("PID"), "\(ps.output)")
        let pid = try #require(Int32(rows.last?.split(separator: " ").first ?? ""))
        #expect(try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).hasPrefix("sleep"))
        // The shim's metrics come from the groups gocker made (a failure
        // shows containerd's log).
        let metrics = try containerd.ctr(["tasks", "metrics", id])
        #expect(metrics.status == 0 && metrics.output.contains(id) && metrics.output.contains("memory.usage"),
                "\(metrics.output)\ncontainerd's log: \(box.contents(containerd.dir + "/log").suffix(3000))")
        let kill = try containerd.ctr(["tasks", "kill", "-a", "-s", "SIGKILL", id])
        #expect(kill.status == 0, "\(kill.output)")
        #expect(box.waitFor { !FileManager.default.fileExists(atPath: "/proc/\(pid)") })
        let rm = try containerd.ctr(["tasks", "rm", "-f", id])
        #expect(rm.status == 0, "\(rm.output)")
        #expect(try containerd.ctr(["containers", "rm", id]).status == 0)
        #expect(try containerd.ctr(["tasks", "ls", "-q"]).output.isEmpty)
        // ctr run -t (on a terminal of script's): the pty over the console
        // socket, and create's pipes let go (it hung on them).
        let tty = try shell("timeout -s KILL 60 script -qec '/usr/bin/ctr --address \(containerd.socket) run -t --rm --fifo-dir \(containerd.dir)/fifo --runc-root \(containerd.dir)/runc --cgroup \(box.cgroupParent)/bb-tty --runc-binary \(try gockerOCI(box)) docker.io/library/busybox:latest bb-tty tty' /dev/null")
        #expect(tty.status == 0 && tty.output.contains("/dev/pts/0"), "\(tty.status) \(tty.output)")
        box.expectNothingLeft()
    }

    /// A `gocker-oci` link to the gocker under test, as containerd is given it.
    func gockerOCI(_ box: Sandbox) throws -> String {
        let link = box.dir + "/gocker-oci"
        if !FileManager.default.fileExists(atPath: link) {
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Sandbox.binary)
        }
        return link
    }
}
