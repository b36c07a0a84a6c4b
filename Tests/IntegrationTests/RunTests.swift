import Foundation
import Testing

/// `gocker run` with the built-in busybox image: what a container sees from
/// inside, its exit status, and what is left after it.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct RunTests {
    @Test func commandIsPID1AndSeesOnlyItsOwnProcesses() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid,comm; true"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.first == "1")
        // PID 1 (sh) and ps itself, nothing of the host.
        let pids = lines.dropFirst(2).compactMap { Int($0.split(separator: " ").first ?? "") }
        #expect(pids.count == 2 && pids.contains(1), "\(r.stdout)")
        box.expectNothingLeft()
    }

    @Test func hostnameNetworkAndRootAreTheContainers() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--hostname", "box", "--network", "none", "busybox", "sh", "-c",
                                "hostname; cat /etc/hostname; ls /sys/class/net; cat /sys/class/net/lo/operstate; ls /; cat /etc/passwd"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0] == "box")
        #expect(lines[1] == "box")
        #expect(lines[2] == "lo", "only lo: \(r.stdout)")
        #expect(lines[3] == "unknown" || lines[3] == "up", "lo is up")
        // The root is the image's: its top-level entries and its /etc/passwd.
        let layerDir = box.dataRoot + "/image/layers"
        let layer = try #require(box.list(layerDir).first)
        let imageTop = box.list(layerDir + "/" + layer)
        #expect(Array(lines[4..<(4 + imageTop.count)]) == imageTop)
        #expect(r.stdout.hasSuffix(box.contents(layerDir + "/" + layer + "/etc/passwd")))
        box.expectNothingLeft()
    }

    @Test func defaultHostnameIsTheShortID() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "busybox", "hostname"])
        let name = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(name.count == 12 && name.allSatisfy(\.isHexDigit), "\(name)")
    }

    @Test func procDevAndSysAreMountedAsListed() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "busybox", "sh", "-c", "cat /proc/mounts; echo ---; ls -A /dev; echo ---; ls -l /dev/null /dev/fd; touch /sys/x 2>&1 || echo sys-ro"])
        #expect(r.status == 0, "\(r.stderr)")
        let parts = r.stdout.components(separatedBy: "---\n")
        let mounts = parts[0].split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        func mount(_ target: String) -> [String]? { mounts.last { $0[1] == target } }
        #expect(mount("/")?[2] == "overlay")
        // --rm: the upper layer is thrown away, so it is never synced.
        #expect(mount("/")?[3].contains("volatile") == true, "\(mount("/") ?? [])")
        #expect(mount("/proc")?[2] == "proc")
        #expect(mount("/dev")?[2] == "tmpfs")
        #expect(mount("/dev/pts")?[2] == "devpts")
        #expect(mount("/dev/pts")?[3].contains("ptmxmode=666") == true)
        #expect(mount("/dev/shm")?[2] == "tmpfs")
        #expect(mount("/dev/mqueue")?[2] == "mqueue")
        #expect(mount("/sys")?[2] == "sysfs")
        #expect(mount("/sys")?[3].hasPrefix("ro,") == true)
        for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] { #expect(mount(f) != nil, "\(f) is bind-mounted") }
        let dev = Set(parts[1].split(separator: "\n").map(String.init))
        #expect(dev.isSuperset(of: ["null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
                                    "mqueue", "fd", "stdin", "stdout", "stderr"]), "\(dev)")
        #expect(parts[2].contains("crw-rw-rw-") && parts[2].contains("1,   3"), "\(parts[2])")
        #expect(parts[2].contains("/dev/fd -> /proc/self/fd"))
        #expect(parts[2].contains("sys-ro"))
        box.expectNothingLeft()
    }

    @Test func environmentWorkdirAndEntrypoint() throws {
        let box = try Sandbox()
        let envFile = box.dir + "/env"
        try "# a comment\nFROM_FILE=yes\n\n".write(toFile: envFile, atomically: true, encoding: .utf8)
        let r = try box.gocker(["run", "--rm", "-e", "GREETING=hi", "--env-file", envFile, "-w", "/tmp/new",
                                "--hostname", "box", "busybox", "sh", "-c", "env; pwd"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("GREETING=hi"))
        #expect(lines.contains("FROM_FILE=yes"))
        #expect(lines.contains("HOSTNAME=box"))
        #expect(lines.contains("HOME=/root"))
        #expect(lines.contains { $0.hasPrefix("PATH=") })
        #expect(lines.last == "/tmp/new")
        let e = try box.gocker(["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"])
        #expect(e.stdout == "a b\n")
        box.expectNothingLeft()
    }

    @Test func hostNetworkSharesTheHostsInterfaces() throws {
        let box = try Sandbox()
        // Other tests make and remove veths and bridges meanwhile: what the
        // host had both before and after the run is what the container sees.
        let before = Set(box.list("/sys/class/net"))
        let r = try box.gocker(["run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"])
        #expect(r.status == 0, "\(r.stderr)")
        let steady = before.intersection(box.list("/sys/class/net"))
        let inside = Set(r.stdout.split(separator: "\n").map(String.init))
        #expect(steady.isSubset(of: inside) && steady.contains("lo"), "\(inside) \(steady)")
        #expect(inside.subtracting(before.union(box.list("/sys/class/net"))).allSatisfy { $0.hasPrefix("gk") || $0.hasPrefix("gocker") },
                "\(inside)")
        box.expectNothingLeft()
    }

    @Test(arguments: [
        (["sh", "-c", "exit 0"], Int32(0)),
        (["sh", "-c", "exit 7"], Int32(7)),
        (["/etc"], Int32(126)),
        (["no-such-command"], Int32(127)),
        (["/no/such/path"], Int32(127)),
    ])
    func exitStatus(command: [String], expected: Int32) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "busybox"] + command)
        #expect(r.status == expected, "\(r.stderr)")
        if expected >= 126 {
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
            #expect(r.stderr.contains(command[0]))
        }
        box.expectNothingLeft()
    }

    @Test(arguments: [
        // (--pull never: no test reaches a registry that is not its own.)
        ["run", "--rm", "--pull", "never", "no-such-image"],
        ["run", "--rm", "-w", "relative", "busybox", "true"],
        ["run", "--rm", "-w", "/etc/passwd", "busybox", "true"],
        ["run", "--rm", "--network", "bridge0", "busybox", "true"],
        ["run", "--rm", "--name", "-bad", "busybox", "true"],
        ["run", "--rm", "--hostname", "bad_host!", "busybox", "true"],
        ["run", "--rm", "--env-file", "/no/such/file", "busybox", "true"],
        ["run", "--rm", "--no-such-flag", "busybox", "true"],
        ["run", "--rm", "Bad:Image", "true"],
    ])
    func badInputFails125AndLeavesNothing(args: [String]) throws {
        let box = try Sandbox()
        let r = try box.gocker(args)
        #expect(r.status == 125, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        #expect(r.stderr.hasPrefix("gocker: "))
        box.expectNothingLeft()
    }

    @Test func killedBySignalFromTheHostExits137() throws {
        let box = try Sandbox()
        let (p, _) = try box.start(["run", "--rm", "busybox", "sleep", "100"])
        var pid: pid_t = 0
        #expect(box.waitFor {
            guard let p = box.runningState()?["pid"] as? Int else { return false }
            pid = pid_t(p)
            return true
        })
        #expect(pid > 0)
        kill(pid, SIGKILL)
        box.finish(p)
        #expect(p.terminationStatus == 137)
        box.expectNothingLeft()
    }

    @Test func signalsSentToGockerReachTheContainer() throws {
        let box = try Sandbox()
        try box.expectTERMReachesTheContainer([])
        box.expectNothingLeft()
    }

    @Test func changesStayInTheirContainer() throws {
        let box = try Sandbox()
        let first = try box.gocker(["run", "--rm", "busybox", "sh", "-c",
                                    "echo data > /tmp/written; rm /bin/ls; echo changed > /etc/passwd"])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try box.gocker(["run", "--rm", "busybox", "sh", "-c",
                                     "test ! -e /tmp/written && test -e /bin/ls && grep -q root /etc/passwd && echo clean"])
        #expect(second.stdout == "clean\n", "\(second.stderr)")
        let layerDir = box.dataRoot + "/image/layers"
        let layer = try #require(box.list(layerDir).first)
        #expect(!FileManager.default.fileExists(atPath: "\(layerDir)/\(layer)/tmp/written"))
        #expect(box.contents("\(layerDir)/\(layer)/etc/passwd").hasPrefix("root:"))
        box.expectNothingLeft()
    }

    @Test func namedContainerWithoutRmStaysUntilRemoved() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--name", "keeper", "busybox", "grep", "^overlay / ", "/proc/mounts"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("upperdir=") && !r.stdout.contains("volatile"),
                "a container that stays keeps a durable upper layer: \(r.stdout)")
        #expect(box.list(box.dataRoot + "/containers").count == 1)
        #expect(box.stateLeft() == [], "the runtime state goes when the container ends")
        let again = try box.gocker(["run", "--rm", "--name", "keeper", "busybox", "true"])
        #expect(again.status == 125 && again.stderr.contains("already in use"))
        let rm = try box.gocker(["rm", "keeper"])
        #expect(rm.status == 0, "\(rm.stderr)")
        // Created with --rm to start later: a failed start keeps it, and
        // a volatile upper layer could not be mounted a second time.
        let later = try box.gocker(["create", "--rm", "busybox", "true"])
        #expect(later.status == 0, "\(later.stderr)")
        let id = later.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let launch = box.record(id)?["launch"] as? [String: Any]
        let overlay = launch?["overlay"] as? String ?? ""
        #expect(overlay.contains("upperdir=") && !overlay.contains("volatile"), "\(overlay)")
        #expect(!box.contents(box.dataRoot + "/containers/\(id)/config.json").contains("upperdir="),
                "the overlay is in gocker's record, not in the bundle")
        #expect(try box.gocker(["rm", id]).status == 0)
        box.expectNothingLeft()
    }

    @Test func concurrentFirstRunsBuildTheImageOnce() throws {
        let box = try Sandbox()
        let runs = try (0..<3).map { _ in try box.start(["run", "--rm", "busybox", "true"]) }
        for (p, _) in runs { box.finish(p); #expect(p.terminationStatus == 0) }
        #expect(box.list(box.dataRoot + "/image/layers").count == 1)
        #expect(box.list(box.dataRoot + "/image/images").filter { $0.hasSuffix(".json") }.count == 1)
        box.expectNothingLeft()
    }
}

/// The harness's own leak check must see a live container, or its "nothing
/// left" verdicts mean nothing.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct HarnessTests {
    @Test func seesARunningContainersProcessesAndState() throws {
        let box = try Sandbox()
        let (p, out) = try box.start(["run", "--rm", "busybox", "sh", "-c", "echo ready; sleep 100"])
        #expect(box.waitFor { box.contents(out).contains("ready") })
        #expect(!box.processesRootedHere().isEmpty)
        #expect(!box.stateLeft().isEmpty)
        #expect(!box.list(box.dataRoot + "/containers").isEmpty)
        kill(p.processIdentifier, SIGKILL)  // gocker itself: the container lives on
        box.finish(p)
        #expect(!box.processesRootedHere().isEmpty)
        for pid in box.processesRootedHere() { kill(pid, SIGKILL) }
        #expect(box.waitFor { box.processesRootedHere().isEmpty })
    }
}
