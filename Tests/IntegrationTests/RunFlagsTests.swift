import Foundation
import Testing

/// `run`'s --sysctl, --oom-score-adj, --cgroupns and --security-opt
/// apparmor=/label=, seen from inside the container and from the host; and
/// the OCI side they land on: a pid file there when create answers, a
/// first process that died after create told by state and start.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct RunFlagsTests {
    /// The host's cgroup layout: cgroup2 itself at /sys/fs/cgroup (a
    /// hybrid host has it only below, at unified/).
    static var cgroupV2: Bool { FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") }

    /// Whether this process has CAP_SYS_RESOURCE (bit 24), which lowering
    /// an OOM score needs.
    static var hasSysResource: Bool {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.split(separator: "\t").last ?? "", radix: 16) else { return false }
        return mask & (1 << 24) != 0
    }

    func expectRefused(_ r: Sandbox.Result, status: Int32 = 125, saying text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
    }

    /// A container's value of `/proc/sys` files differs from the host's.
    @Test func sysctlsAreTheContainersAndNotTheHosts() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let hostMsgmax = box.contents("/proc/sys/kernel/msgmax").trimmingCharacters(in: .whitespacesAndNewlines)
        let hostSomaxconn = box.contents("/proc/sys/net/core/somaxconn").trimmingCharacters(in: .whitespacesAndNewlines)
        let msgmax = hostMsgmax == "12345" ? "12346" : "12345"
        let somaxconn = hostSomaxconn == "1234" ? "1235" : "1234"
        let r = try box.gocker(["run", "--rm", "--network", "none", "--sysctl", "kernel.msgmax=\(msgmax)",
                                "--sysctl", "net.core.somaxconn=\(somaxconn)", "busybox",
                                "cat", "/proc/sys/kernel/msgmax", "/proc/sys/net/core/somaxconn"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(msgmax)\n\(somaxconn)\n")
        // The host's stay as they were.
        #expect(box.contents("/proc/sys/kernel/msgmax").trimmingCharacters(in: .whitespacesAndNewlines) == hostMsgmax)
        #expect(box.contents("/proc/sys/net/core/somaxconn").trimmingCharacters(in: .whitespacesAndNewlines) == hostSomaxconn)
    }

    /// The first process's oom_score_adj, read from the host in /proc/PID,
    /// and inspect's HostConfig showing the three new members.
    @Test func oomScoreAdjIsTheFirstProcesssAndInspectShowsIt() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        var values = [321, 1000]
        if Self.hasSysResource { values.append(-500) }
        for adj in values {
            let d = try box.gocker(["run", "-d", "--network", "none", "--oom-score-adj", "\(adj)",
                                    "--sysctl", "kernel.shmmni=2048", "busybox", "sleep", "100"])
            #expect(d.status == 0, "\(d.stderr)")
            let id = d.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let inspect = try box.gocker(["inspect", id])
            let details = try #require(
                (try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]])?.first)
            let pid = try #require((details["State"] as? [String: Any])?["Pid"] as? Int)
            #expect(pid > 0)
            #expect(box.contents("/proc/\(pid)/oom_score_adj") == "\(adj)\n")
            let host = try #require(details["HostConfig"] as? [String: Any])
            #expect(host["OomScoreAdj"] as? Int == adj)
            #expect(host["Sysctls"] as? [String: String] == ["kernel.shmmni": "2048"])
            #expect(host["CgroupnsMode"] as? String == (Self.cgroupV2 ? "private" : "host"))
            #expect(try box.gocker(["rm", "-f", id]).status == 0)
        }
        // Without the flags: docker's zero, and no Sysctls member.
        let c = try box.gocker(["create", "--network", "none", "--cgroupns", "private", "busybox", "true"])
        let id = c.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let details = try #require(
            (try JSONSerialization.jsonObject(with: Data(try box.gocker(["inspect", id]).stdout.utf8)) as? [[String: Any]])?.first)
        let host = try #require(details["HostConfig"] as? [String: Any])
        #expect(host["OomScoreAdj"] as? Int == 0)
        #expect(host["Sysctls"] == nil)
        #expect(host["CgroupnsMode"] as? String == "private")
        #expect(try box.gocker(["rm", id]).status == 0)
    }

    /// --cgroupns private: a namespace of its own rooted at the container's
    /// groups (/proc/self/cgroup reads the root in every hierarchy, the
    /// host sees the container's path), its groups read-only at
    /// /sys/fs/cgroup (the container's memory limit is there).
    @Test func privateCgroupNamespace() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let script = """
            readlink /proc/self/ns/cgroup; echo ---; cat /proc/self/cgroup; echo ---
            cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; echo ---
            touch /sys/fs/cgroup/x 2>&1 && echo writable; echo ---; sleep 100
            """
        let d = try box.gocker(["run", "-d", "--network", "none", "--cgroupns", "private", "-m", "64m",
                                "busybox", "sh", "-c", script])
        #expect(d.status == 0, "\(d.stderr)")
        let id = d.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(box.waitFor { (try? box.gocker(["logs", id]))?.stdout.components(separatedBy: "---").count == 5 })
        let parts = try box.gocker(["logs", id]).stdout.components(separatedBy: "---\n")
        try #require(parts.count == 5, "\(parts)")
        let hostNS = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/cgroup")
        #expect(parts[0].hasPrefix("cgroup:[") && parts[0] != hostNS + "\n", "\(parts[0]) vs \(hostNS)")
        let inside = parts[1].split(separator: "\n")
        #expect(!inside.isEmpty && inside.allSatisfy { $0.hasSuffix(":/") }, "\(parts[1])")
        #expect(parts[2] == "67108864\n", "the container's own memory group: \(parts[2])")
        #expect(parts[3].contains("Read-only file system") && !parts[3].contains("writable"), "\(parts[3])")
        // From the host, the same process is in the container's groups.
        let details = try #require(
            (try JSONSerialization.jsonObject(with: Data(try box.gocker(["inspect", id]).stdout.utf8)) as? [[String: Any]])?.first)
        let pid = try #require((details["State"] as? [String: Any])?["Pid"] as? Int)
        #expect(box.contents("/proc/\(pid)/cgroup").contains("/\(box.cgroupParent)/\(id)"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/cgroup") + "\n" == parts[0])
        #expect(try box.gocker(["rm", "-f", id]).status == 0)
    }

    /// --cgroupns host (and the default on cgroup v1): the host's
    /// namespace, the container's paths as the host sees them.
    @Test(arguments: [["--cgroupns", "host"], []])
    func hostCgroupNamespace(flags: [String]) throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let r = try box.gocker(["run", "--rm", "--network", "none"] + flags +
                               ["busybox", "sh", "-c", "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup"])
        #expect(r.status == 0, "\(r.stderr)")
        let hostNS = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/cgroup")
        let lines = r.stdout.split(separator: "\n")
        let privateDefault = flags.isEmpty && Self.cgroupV2
        #expect((lines.first.map(String.init) == hostNS) != privateDefault, "\(r.stdout)")
        #expect(r.stdout.contains("/\(box.cgroupParent)/") != privateDefault, "\(r.stdout)")
    }

    /// --userns host, docker's one per-container mode: the host's user
    /// namespace.
    @Test func usernsHostIsTheHosts() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let r = try box.gocker(["run", "--rm", "--network", "none", "--userns", "host", "busybox", "readlink", "/proc/self/ns/user"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user")) + "\n")
    }

    /// Each bad value: one line, gocker's 125, nothing made, for run and
    /// for create.
    @Test func badValuesAreRefusedAndLeaveNothing() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        #expect(try box.gocker(["run", "--rm", "--network", "none", "busybox", "true"]).status == 0)
        var cases: [([String], String)] = [
            (["--sysctl", "kernel.panic=1"], #"linux.sysctl "kernel.panic" is not in a separate kernel namespace"#),
            (["--sysctl", "vm.swappiness=1"], #"linux.sysctl "vm.swappiness" is not in a separate kernel namespace"#),
            (["--sysctl", "net.ipv4.ip_forward"], #"invalid argument "net.ipv4.ip_forward" for "--sysctl" flag"#),
            (["--sysctl", "net.ipv4.ip_forward=1", "--network", "host"], "cannot be set with --network host"),
            (["--oom-score-adj", "1001"], "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
            (["--oom-score-adj", "-1001"], "Invalid value -1001, range for oom score adj is [-1000, 1000]"),
            (["--oom-score-adj", "x"], "--oom-score-adj"),
            (["--cgroupns", "shared"], #"--cgroupns: invalid CGROUP mode "shared""#),
            (["--userns", "private"], #"--userns: invalid USER mode "private""#),
            (["--security-opt", "label=bogus"], #"invalid --security-opt: "label=bogus""#),
            (["--security-opt", "apparmor="], #"invalid --security-opt: "apparmor=""#),
        ]
        // As the config's own fields are refused where the host lacks the module.
        if !FileManager.default.fileExists(atPath: "/sys/kernel/security/apparmor") {
            cases.append((["--security-opt", "apparmor=docker-default"],
                          #"process.apparmorProfile "docker-default": AppArmor is not enabled on this host"#))
        }
        if !FileManager.default.fileExists(atPath: "/sys/fs/selinux/enforce") {
            cases.append((["--security-opt", "label=type:spc_t"],
                          #"process.selinuxLabel "system_u:system_r:spc_t:s0": SELinux is not enabled on this host"#))
        }
        for (flags, message) in cases {
            for verb in [["run", "--rm"], ["run", "-d"], ["create"]] {
                expectRefused(try box.gocker(verb + flags + ["busybox", "true"]), saying: message)
                box.expectNothingLeft()
            }
        }
    }

    /// apparmor=unconfined and label=disable ask for nothing: accepted, as
    /// docker does on any host.
    @Test func unconfinedAndDisabledLabelsAreNoOps() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let r = try box.gocker(["run", "--rm", "--network", "none", "--security-opt", "apparmor=unconfined",
                                "--security-opt", "label=disable", "--security-opt", "label:disable",
                                "busybox", "true"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func runHelpListsTheFlags() throws {
        let box = try Sandbox()
        let help = try box.gocker(["run", "--help"])
        #expect(help.status == 0)
        for flag in ["--sysctl <key=value>", "--oom-score-adj <int>", "--cgroupns <mode>", "apparmor=", "label="] {
            #expect(help.stdout.contains(flag), "\(flag)")
        }
    }
}

/// What engines read once `oci create` has answered, and what a first
/// process that died after that looks like to state, start and delete.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct OCICreateAnswerTests {
    func makeBundle(_ box: Sandbox, terminal: Bool = false) throws -> String {
        #expect(try box.gocker(["run", "--rm", "--network", "none", "busybox", "true"]).status == 0)
        let layerDir = box.dataRoot + "/image/layers"
        let layer = try #require(box.list(layerDir).first)
        let bundle = box.dir + "/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        #expect(try sh("cp -a '\(layerDir)/\(layer)' '\(bundle)/rootfs'") == 0)
        let config = """
            {"ociVersion": "1.0.2",
             "process": {"terminal": \(terminal), "user": {"uid": 0, "gid": 0}, "args": ["sleep", "100"],
                         "env": ["PATH=/bin"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}],
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}]}}
            """
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        return bundle
    }

    func state(_ box: Sandbox, _ id: String) throws -> [String: Any] { try OCITests().state(box, id) }

    /// Many creates at once: each pid file is there, whole and right, the
    /// moment its create exits (read before anything else is run).
    @Test func thePidFileIsThereWhenCreateAnswers() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let bundle = try makeBundle(box)
        let n = 12
        // All the creates at once, each in a shell that copies its pid file
        // the moment create exits.
        let shells = try (0..<n).map { i in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "'\(Sandbox.binary)' oci create --bundle '\(bundle)' --pid-file '\(box.dir)/pid-\(i)' p\(i) "
                + "2>'\(box.dir)/err-\(i)'; echo $? > '\(box.dir)/rc-\(i)'; cat '\(box.dir)/pid-\(i)' > '\(box.dir)/seen-\(i)'"]
            p.environment = box.environment
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            return p
        }
        for p in shells { box.finish(p, within: 60) }
        let results = (0..<n).map { i in
            (status: Int32(box.contents(box.dir + "/rc-\(i)").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1,
             pidFile: box.contents(box.dir + "/seen-\(i)"), stderr: box.contents(box.dir + "/err-\(i)"))
        }
        for i in 0..<n {
            #expect(results[i].status == 0, "\(results[i].stderr)")
            let s = try state(box, "p\(i)")
            #expect(s["status"] as? String == "created")
            #expect(results[i].pidFile == "\(s["pid"] as? Int ?? -1)", "p\(i): \(results[i].pidFile)")
        }
        // Only the pid files: no temporary file beside them.
        #expect(box.list(box.dir).filter { $0.hasPrefix("pid-") }.count == n, "\(box.list(box.dir))")
        #expect(!box.list(box.dir).contains { $0.contains(".tmp-") }, "\(box.list(box.dir))")
        for i in 0..<n { #expect(try box.gocker(["oci", "delete", "--force", "p\(i)"]).status == 0) }
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
    }

    /// A pid file that cannot be written, or a console socket nobody
    /// listens on: create fails with one line and leaves no container,
    /// no group, no pid file.
    @Test func aFailureAfterTheSpawnRemovesTheContainer() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let bundle = try makeBundle(box)
        let r = try box.gocker(["oci", "create", "--bundle", bundle, "--pid-file", box.dir + "/no/such/dir/pid", "f1"])
        #expect(r.status == 1 && r.stderr.contains("write pid file") && r.stderr.split(separator: "\n").count == 1,
                "\(r.stderr)")
        #expect(box.stateLeft() == [])
        #expect(box.cgroupsLeft() == [])

        let tty = box.dir + "/tty"
        try FileManager.default.createDirectory(atPath: tty, withIntermediateDirectories: true)
        let config = box.contents(bundle + "/config.json")
            .replacingOccurrences(of: #""terminal": false"#, with: #""terminal": true"#)
            .replacingOccurrences(of: #""path": "rootfs""#, with: #""path": "\#(bundle)/rootfs""#)
        try config.write(toFile: tty + "/config.json", atomically: true, encoding: .utf8)
        let pidFile = box.dir + "/tty.pid"
        let c = try box.gocker(["oci", "create", "--bundle", tty, "--console-socket", box.dir + "/nobody.sock",
                                "--pid-file", pidFile, "f2"])
        #expect(c.status == 1 && c.stderr.contains("send the terminal of f2") && c.stderr.split(separator: "\n").count == 1,
                "\(c.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pidFile), "no pid file for a container that is not there")
        #expect(box.stateLeft() == [])
        #expect(box.cgroupsLeft() == [])
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
    }

    /// The first process killed between create and start: state says
    /// stopped (pid 0, as runc), start fails with runc's one line and 1,
    /// kill says it is not running, delete removes everything.
    @Test func aFirstProcessThatDiedAfterCreateIsStopped() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let bundle = try makeBundle(box)
        let pidFile = box.dir + "/pid"
        #expect(try box.gocker(["oci", "create", "--bundle", bundle, "--pid-file", pidFile, "d1"]).status == 0)
        #expect(try state(box, "d1")["status"] as? String == "created")
        let pid = try #require(Int32(box.contents(pidFile)))
        #expect(kill(pid, SIGKILL) == 0)
        #expect(box.waitFor { !FileManager.default.fileExists(atPath: "/proc/\(pid)/stat")
                || box.contents("/proc/\(pid)/stat").contains(") Z ") })
        let s = try state(box, "d1")
        #expect(s["status"] as? String == "stopped")
        #expect(s["pid"] as? Int == 0)
        let st = try box.gocker(["oci", "start", "d1"])
        #expect(st.status == 1)
        #expect(st.stderr == "gocker: error: cannot start a container that has stopped\n", "\(st.stderr)")
        let k = try box.gocker(["oci", "kill", "d1", "9"])
        #expect(k.status == 1 && k.stderr.contains("container not running"), "\(k.stderr)")
        #expect(try box.gocker(["oci", "delete", "d1"]).status == 0)
        #expect(box.stateLeft() == [])
        #expect(box.cgroupsLeft() == [])
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
    }
}
