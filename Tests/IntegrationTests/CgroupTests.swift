import Foundation
import GockerCgroups
import GockerCore
import Testing

/// Resource limits through both backends, seen from inside the container
/// and from the host's cgroup files.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct CgroupTests {
    static let backends = ["libcgroup", "cgroupfs"]

    /// The container's state file, once it is running.
    func runningState(_ box: Sandbox) -> [String: Any]? { box.runningState() }

    @Test(arguments: backends)
    func limitsAreInTheFilesWhileRunningAndGoneAfter(backend: String) throws {
        let box = try Sandbox()
        let (p, out) = try box.start(["run", "--rm", "--cgroup-backend", backend, "-m", "64m", "--memory-swap", "128m",
                                      "--cpuset-cpus", "0", "--cpu-shares", "512", "--cpus", "0.5", "--pids-limit", "50",
                                      "busybox", "sh", "-c", "grep Cpus_allowed_list /proc/self/status; echo ready; sleep 30"])
        #expect(box.waitFor { box.contents(out).contains("ready") })
        let state = try #require(runningState(box))
        let cgroups = try #require(state["cgroups"] as? [String: Any])
        #expect(cgroups["backend"] as? String == backend)
        let path = try #require(cgroups["path"] as? String)
        #expect(path == "\(box.cgroupParent)/\(state["id"] as? String ?? "")")
        func file(_ controller: String, _ name: String) -> String {
            box.contents("/sys/fs/cgroup/\(controller)/\(path)/\(name)").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(file("memory", "memory.limit_in_bytes") == "67108864")
        #expect(file("memory", "memory.memsw.limit_in_bytes") == "134217728")
        #expect(file("cpu", "cpu.shares") == "512")
        #expect(file("cpu", "cpu.cfs_quota_us") == "50000")
        #expect(file("cpu", "cpu.cfs_period_us") == "100000")
        #expect(file("pids", "pids.max") == "50")
        #expect(file("cpuset", "cpuset.cpus") == "0")
        // Every rule of docker's default list landed, in the kernel's order
        // (the first through the backend's group creation, the rest one
        // write each).
        #expect(file("devices", "devices.list").split(separator: "\n") == [
            "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
            "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"], "\(file("devices", "devices.list"))")
        // Every controller the host offers has a group with the container in it.
        let pid = try #require(state["pid"] as? Int)
        for c in ["memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer"] {
            #expect(file(c, "cgroup.procs").split(separator: "\n").contains("\(pid)"), "\(c)")
        }
        #expect(box.contents(out).contains("Cpus_allowed_list:\t0\n"))
        kill(p.processIdentifier, SIGTERM)  // forwarded; sh as PID 1 ignores it, so:
        kill(pid_t(pid), SIGKILL)
        box.finish(p)
        #expect(p.terminationStatus == 137)
        for c in ["memory", "cpu", "pids", "cpuset"] {
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(c)/\(path)"))
        }
        box.expectNothingLeft()
    }

    @Test(arguments: backends)
    func pidsLimitStopsAForkLoop(backend: String) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--cgroup-backend", backend, "--pids-limit", "10", "busybox", "sh", "-c",
                                // The forking shell dies at the limit; its sleeps stay, PID 1 counts them.
                                "sh -c 'for i in $(seq 1 30); do sleep 10 & done' 2>/dev/null; set -- /proc/[0-9]*; echo $#"])
        let count = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(count > 1 && count <= 10, "\(r.stdout)\(r.stderr)")
        box.expectNothingLeft()
    }

    @Test(arguments: backends)
    func memoryLimitOOMKills(backend: String) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--cgroup-backend", backend, "-m", "16m", "busybox", "sh", "-c",
                                "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"])
        #expect(r.status == 137, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("OOM-killed"))
        #expect(!r.stdout.contains("survived"))
        box.expectNothingLeft()
    }

    @Test(arguments: backends)
    func devicesControllerDeniesABlockDevice(backend: String) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--cgroup-backend", backend, "busybox", "sh", "-c",
                                "mknod /tmp/disk b 8 0 && echo made; head -c 1 /tmp/disk > /dev/null && echo read; echo x > /dev/null && echo null-ok"])
        #expect(r.stdout.contains("made"), "mknod is allowed: \(r.stderr)")
        #expect(!r.stdout.contains("read\n"))
        #expect(r.stderr.contains("Operation not permitted"))
        #expect(r.stdout.contains("null-ok"))
        let privileged = try box.gocker(["run", "--rm", "--cgroup-backend", backend, "--privileged", "busybox", "sh", "-c",
                                         "mknod /tmp/null c 1 3 && echo x > /tmp/null && echo ok"])
        #expect(privileged.stdout == "ok\n", "\(privileged.stderr)")
        box.expectNothingLeft()
    }

    @Test(arguments: [
        (["-m", "12zz"], "--memory"), (["-m", "1m"], "--memory"), (["--memory-swap", "64m"], "--memory-swap"),
        (["-m", "64m", "--memory-swap", "32m"], "--memory-swap"), (["--memory-reservation", "x"], "--memory-reservation"),
        (["--cpuset-cpus", "0-"], "--cpuset-cpus"), (["--cpuset-cpus", "999"], "--cpuset-cpus"),
        (["--cpuset-mems", "77"], "--cpuset-mems"), (["--cpu-shares", "1"], "--cpu-shares"),
        (["--cpu-shares", "300000"], "--cpu-shares"), (["--cpus", "abc"], "--cpus"), (["--cpus", "999"], "--cpus"),
        (["--pids-limit", "many"], "pids-limit"), (["--device", "/etc/passwd"], "--device"),
        (["--device", "/no/such/dev"], "--device"), (["--cgroup-backend", "systemd"], "cgroup backend"),
    ])
    func badValuesAreRefusedWithNothingMade(flags: [String], named: String) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm"] + flags + ["busybox", "true"])
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr.contains(named), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        box.expectNothingLeft()
    }

    @Test func theLibcgroupBackendGoesThroughLibcgroup() throws {
        let backend = try LibcgroupBackend(version: CgroupDriver.detectVersion())
        let path = "gocker-test-libcgroup-\(getpid())"
        let before = backend.calls
        try backend.create("pids", path: path, settings: [CgroupSetting("pids.max", "7")])
        defer { try? backend.destroy("pids", path: path) }
        #expect(backend.calls > before)
        let mount = try #require(backend.mountPoint("pids"))
        #expect((try? String(contentsOfFile: "\(mount)/\(path)/pids.max", encoding: .utf8)) == "7\n")
        try backend.destroy("pids", path: path)
        #expect(!FileManager.default.fileExists(atPath: "\(mount)/\(path)"))
    }

    /// libcgroup opens /proc/mounts before every group it makes and every
    /// value it writes; the static release binary (libcgroup linked in, its
    /// fopen wrapped) reads the table once per start. Seen by strace.
    @Test func theReleaseBinaryReadsTheMountTableOncePerStart() throws {
        let strace = "/usr/bin/strace"
        let missing = [strace, VM.binary].filter { !FileManager.default.isExecutableFile(atPath: $0) }
        guard missing.isEmpty else {
            if VM.isCI { Issue.record("missing \(missing): ./build.sh test installs strace and builds the release binary") }
            return
        }
        let box = try Sandbox()
        let trace = box.dir + "/trace"
        // Memory and pids limits and the default device rules: values in several groups.
        let r = try box.gocker(["-f", "-qq", "-e", "trace=open,openat", "-o", trace, VM.binary,
                                "run", "--rm", "--cgroup-backend", "libcgroup", "-m", "64m", "--pids-limit", "50",
                                "busybox", "true"], binary: strace)
        #expect(r.status == 0, "\(r.stderr)")
        let opens = box.contents(trace).split(separator: "\n")
        #expect(opens.contains { $0.contains("/sys/fs/cgroup/pids/\(box.cgroupParent)/") && $0.contains("pids.max") },
                "the limit went through libcgroup")
        #expect(opens.filter { $0.contains("\"/proc/mounts\"") }.count == 1, "\(opens.filter { $0.contains("mounts") })")
        box.expectNothingLeft()
    }

    /// The container's other processes die with its first one, its PID
    /// namespace's init, so a foreground run does not look for any in its
    /// groups. A process put in them from outside that namespace is still
    /// found (the groups are busy), killed, and the groups removed.
    @Test func aProcessPutInTheGroupsFromOutsideIsKilledAtTheEnd() throws {
        let box = try Sandbox()
        let (p, out) = try box.start(["run", "--rm", "busybox", "sh", "-c", "echo ready; sleep 1"])
        defer { box.finish(p) }
        #expect(box.waitFor { box.contents(out).contains("ready") })
        let state = try #require(runningState(box))
        let cgroups = try #require(state["cgroups"] as? [String: Any])
        let path = try #require(cgroups["path"] as? String)
        let controllers = try #require(cgroups["controllers"] as? [String])
        let stray = Process()
        stray.executableURL = URL(fileURLWithPath: "/bin/sleep")
        stray.arguments = ["60"]
        try stray.run()
        defer {
            kill(stray.processIdentifier, SIGKILL)
            stray.waitUntilExit()
        }
        var moved = 0
        for c in controllers {
            let procs = "/sys/fs/cgroup/\(c)/\(path)/cgroup.procs"
            if (try? "\(stray.processIdentifier)".write(toFile: procs, atomically: false, encoding: .utf8)) != nil { moved += 1 }
        }
        #expect(moved == controllers.count, "\(controllers)")
        box.finish(p, within: 30)
        #expect(p.terminationStatus == 0, "\(box.contents(out + ".err"))")
        #expect(box.waitFor(5) { !stray.isRunning }, "the stray process was killed")
        #expect(stray.terminationReason == .uncaughtSignal && stray.terminationStatus == SIGKILL)
        #expect(box.cgroupsLeft() == [])
        box.expectNothingLeft()
    }

    @Test func oomAndBackendAreRecordedForANamedContainer() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--name", "hog", "--cgroup-backend", "cgroupfs", "-m", "8m", "busybox", "sh", "-c",
                                "x=$(head -c 32m /dev/zero | tr '\\0' a)"])
        #expect(r.status == 137)
        let id = try #require(box.list(box.dataRoot + "/containers").first)
        let record = try #require(box.record(id))
        #expect(record["oomKilled"] as? Bool == true, "\(record)")
        #expect(box.cgroupsLeft() == [], "the groups go when the container ends")
        #expect(try box.gocker(["rm", "hog"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func statsReadsTheGroups() throws {
        let box = try Sandbox()
        let (p, out) = try box.start(["run", "--rm", "--name", "stat1", "-m", "64m", "busybox", "sh", "-c", "echo ready; sleep 30; true"])
        #expect(box.waitFor { box.contents(out).contains("ready") })
        let r = try box.gocker(["stats", "--no-stream", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let row = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String])
        #expect(row["Name"] == "stat1")
        #expect(row["MemUsage"]?.hasSuffix(" / 64MiB") == true, "\(row)")
        #expect(row["PIDs"] == "2", "sh and sleep: \(row)")
        let table = try box.gocker(["stats", "--no-stream"])
        #expect(table.stdout.hasPrefix("CONTAINER ID   NAME "))
        #expect(table.stdout.contains("stat1"))
        #expect(try box.gocker(["rm", "-f", "stat1"]).status == 0)
        box.finish(p)
        box.expectNothingLeft()
    }

    @Test func aLaterGockerCleansUpAfterAKilledOne() throws {
        let box = try Sandbox()
        let (p, out) = try box.start(["run", "--rm", "-m", "32m", "busybox", "sh", "-c", "echo ready; sleep 30"])
        #expect(box.waitFor { box.contents(out).contains("ready") })
        let state = try #require(runningState(box))
        kill(p.processIdentifier, SIGKILL)
        box.finish(p)
        // The container outlives its gocker; then it ends too.
        #expect(!box.processesRootedHere().isEmpty)
        let pid = pid_t(state["pid"] as? Int ?? 0)
        kill(pid, SIGKILL)
        // Gone for good: no /proc entry, or only a zombie's.
        #expect(box.waitFor {
            let stat = box.contents("/proc/\(pid)/stat")
            return stat.isEmpty || stat.split(separator: ")").last?.dropFirst().first == "Z"
        })
        #expect(!box.cgroupsLeft().isEmpty, "nobody has cleaned up yet")
        // Any gocker that looks at containers cleans up after the dead one.
        #expect(try box.gocker(["stats", "--no-stream"]).status == 0)
        box.expectNothingLeft()
    }
}
