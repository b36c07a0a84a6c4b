import Foundation
import Testing

/// `gocker oci` on a hand-written bundle: the OCI lifecycle and state JSON.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct OCITests {
    /// A bundle whose rootfs is a copy of the built-in busybox image.
    func makeBundle(_ box: Sandbox, args: [String], extraMounts: String = "", propagation: String = "rprivate") throws -> String {
        // Build the image through gocker, then copy its layer as a plain rootfs.
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let layerDir = box.dataRoot + "/image/layers"
        let layer = try #require(box.list(layerDir).first)
        let bundle = box.dir + "/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = ["-a", "\(layerDir)/\(layer)", bundle + "/rootfs"]
        try cp.run()
        cp.waitUntilExit()
        let argsJSON = String(decoding: try JSONSerialization.data(withJSONObject: args), as: UTF8.self)
        let config = """
            {"ociVersion": "1.0.2",
             "process": {"user": {"uid": 0, "gid": 0}, "args": \(argsJSON), "env": ["PATH=/bin:/usr/bin"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "hostname": "ocibox",
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}\(extraMounts)],
             "linux": {"rootfsPropagation": "\(propagation)",
                       "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]}}
            """
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        return bundle
    }

    func state(_ box: Sandbox, _ id: String) throws -> [String: Any] {
        let r = try box.gocker(["oci", "state", id])
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    @Test func createStartStateDelete() throws {
        let box = try Sandbox()
        let marker = box.dir + "/marker"
        let bundle = try makeBundle(box, args: ["sh", "-c", "hostname > /out/host; echo $$ >> /out/host; sleep 0.3"],
                                    extraMounts: #", {"destination": "/out", "type": "bind", "source": "\#(box.dir)", "options": ["rbind"]}"#)
        let pidFile = box.dir + "/pid"
        let c = try box.gocker(["oci", "create", "--bundle", bundle, "--pid-file", pidFile, "c1"])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(c.stdout.isEmpty)
        var s = try state(box, "c1")
        #expect(s["ociVersion"] as? String == "1.0.2")
        #expect(s["id"] as? String == "c1")
        #expect(s["status"] as? String == "created")
        #expect(s["bundle"] as? String == bundle)
        let pid = try #require(s["pid"] as? Int)
        #expect(pid > 0)
        #expect(box.contents(pidFile) == "\(pid)")
        // Created: the process exists, but has not run the command yet.
        #expect(FileManager.default.fileExists(atPath: "/proc/\(pid)"))
        #expect(!FileManager.default.fileExists(atPath: box.dir + "/host"))

        let st = try box.gocker(["oci", "start", "c1"])
        #expect(st.status == 0, "\(st.stderr)")
        s = try state(box, "c1")
        #expect(s["status"] as? String == "running")
        #expect(box.waitFor { box.contents(box.dir + "/host") == "ocibox\n1\n" }, "\(box.contents(box.dir + "/host"))")
        #expect(box.waitFor { (try? state(box, "c1"))?["status"] as? String == "stopped" })

        let d = try box.gocker(["oci", "delete", "c1"])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(try box.gocker(["oci", "state", "c1"]).status == 1)
        _ = marker
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
        box.expectNothingLeft()
    }

    @Test func deleteRefusesARunningContainerUnlessForced() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sleep", "100"])
        #expect(try box.gocker(["oci", "run", "--detach", "--bundle", bundle, "c2"]).status == 0)
        #expect(try state(box, "c2")["status"] as? String == "running")
        let refused = try box.gocker(["oci", "delete", "c2"])
        #expect(refused.status == 1 && refused.stderr.contains("not stopped"))
        let k = try box.gocker(["oci", "kill", "c2", "KILL"])
        #expect(k.status == 0, "\(k.stderr)")
        #expect(box.waitFor { (try? state(box, "c2"))?["status"] as? String == "stopped" })
        #expect(try box.gocker(["oci", "delete", "c2"]).status == 0)
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "c3"]).status == 0)
        #expect(try box.gocker(["oci", "delete", "--force", "c3"]).status == 0)
        #expect(try box.gocker(["oci", "delete", "--force", "never-was"]).status == 0)
        box.expectNothingLeft()
    }

    /// What containerd's shim and podman run: list, ps (json: host pids),
    /// and kill --all of a container that already ended.
    @Test func listPsAndKillAsRuncAnswersThem() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sleep", "100"])
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "c4"]).status == 0)
        let pid = try #require(try state(box, "c4")["pid"] as? Int)
        let table = try box.gocker(["oci", "list"]).stdout.split(separator: "\n").map(String.init)
        #expect(table.count == 2 && table[0].hasPrefix("ID          PID         STATUS") && table[0].hasSuffix("OWNER"), "\(table)")
        #expect(table[1].hasPrefix("c4") && table[1].contains(" \(pid) ") && table[1].contains(" running ")
                && table[1].contains(bundle) && table[1].hasSuffix("root"), "\(table)")
        #expect(try box.gocker(["oci", "list", "-q"]).stdout == "c4\n")
        let listed = try JSONSerialization.jsonObject(with: Data(try box.gocker(["oci", "list", "--format", "json"]).stdout.utf8)) as? [[String: Any]]
        #expect(listed?.count == 1 && listed?[0]["id"] as? String == "c4" && listed?[0]["pid"] as? Int == pid
                && listed?[0]["status"] as? String == "running", "\(String(describing: listed))")
        let pids = try JSONSerialization.jsonObject(with: Data(try box.gocker(["oci", "ps", "--format", "json", "c4"]).stdout.utf8)) as? [Int]
        #expect(pids == [pid])
        let ps = try box.gocker(["oci", "ps", "c4"]).stdout.split(separator: "\n")
        #expect(ps.count == 2 && ps[0].contains("PID") && ps[1].contains(" \(pid) ") && ps[1].hasSuffix("sleep 100"), "\(ps)")
        let psOptions = try box.gocker(["oci", "ps", "c4", "-o", "pid,comm"]).stdout.split(separator: "\n")
        #expect(psOptions.count == 2 && psOptions[1].hasSuffix("sleep"), "\(psOptions)")
        #expect(try box.gocker(["oci", "ps", "--format", "json", "c4", "-ef"]).status == 1)

        #expect(try box.gocker(["oci", "kill", "c4", "KILL"]).status == 0)
        #expect(box.waitFor { (try? state(box, "c4"))?["status"] as? String == "stopped" })
        // The shim's second kill: runc answers 0 with --all, and "container
        // not running" without.
        let again = try box.gocker(["oci", "kill", "--all", "c4", "9"])
        #expect(again.status == 0, "\(again.stderr)")
        let single = try box.gocker(["oci", "kill", "c4", "9"])
        #expect(single.status == 1 && single.stderr.contains("container not running"), "\(single.stderr)")
        #expect(try box.gocker(["oci", "ps", "--format", "json", "c4"]).stdout == "[]\n")
        #expect(try box.gocker(["oci", "list"]).stdout.contains(" 0           stopped "))
        #expect(try box.gocker(["oci", "delete", "c4"]).status == 0)
        #expect(try box.gocker(["oci", "list", "--format", "json"]).stdout == "null\n")
        // --log: a failure is written there too, as runc's logrus writes it.
        let log = box.dir + "/runtime.log"
        #expect(try box.gocker(["oci", "--log", log, "--log-format", "json", "kill", "c4", "9"]).status == 1)
        #expect(try box.gocker(["oci", "--log", log, "state", "c4"]).status == 1)
        let lines = box.contents(log).split(separator: "\n").map(String.init)
        let entry = try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: String]
        #expect(entry?["level"] == "error" && entry?["msg"] == "container \"c4\" does not exist" && entry?["time"] != nil, "\(lines)")
        #expect(lines.count == 2 && lines[1].hasPrefix("time=\"") && lines[1].hasSuffix(#"level=error msg="container \"c4\" does not exist""#), "\(lines)")
        box.expectNothingLeft()
    }

    /// As runc: a command the container does not have fails `create`,
    /// with the words podman turns into 127 (and 126), and nothing is left.
    @Test(arguments: [("nosuch", "exec: \"nosuch\": executable file not found in $PATH"),
                      ("/bin/nosuch", "exec: \"/bin/nosuch\": no such file or directory"),
                      ("/etc/passwd", "exec: \"/etc/passwd\": permission denied")])
    func createFailsForACommandTheContainerCannotRun(command: String, message: String) throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: [command])
        let r = try box.gocker(["oci", "create", "--bundle", bundle, "c5"])
        #expect(r.status == 1 && r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try box.gocker(["oci", "state", "c5"]).status == 1)
        #expect(try box.gocker(["oci", "list", "-q"]).stdout.isEmpty)
        box.expectNothingLeft()
    }

    /// podman's --tmpfs and --read-only: a tmpfs with runc's tmpcopyup
    /// starts with what the image holds there, and the image keeps it as it was.
    @Test func aTmpfsWithTmpcopyupHoldsTheImagesContent() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c", "grep -c root /etc/passwd; touch /etc/new && grep -q tmpfs /proc/mounts && echo writable"],
                                    extraMounts: #", {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "tmpcopyup", "mode=755"]}"#)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "t5"])
        #expect(r.status == 0 && r.stdout == "1\nwritable\n", "\(r.stdout) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle + "/rootfs/etc/new"))
        // Read-only (podman's --tmpfs DIR:ro): seeded first, then read-only.
        let config = box.contents(bundle + "/config.json")
            .replacingOccurrences(of: #""tmpcopyup", "mode=755""#, with: #""tmpcopyup", "ro", "mode=755""#)
            .replacingOccurrences(of: #"&& grep -q tmpfs"#, with: #"2>/dev/null || echo read-only; grep -q tmpfs"#)
            .replacingOccurrences(of: #"&& echo writable"#, with: "")
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let ro = try box.gocker(["oci", "run", "--bundle", bundle, "t6"])
        #expect(ro.status == 0 && ro.stdout == "1\nread-only\n", "\(ro.stdout) \(ro.stderr)")
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
        box.expectNothingLeft()
    }

    /// runc's `update` (podman update, the shim's Update): by flags and by
    /// a resources file, into the running container's groups.
    @Test func updateChangesTheLimitsOfARunningContainer() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sleep", "100"])
        let config = box.contents(bundle + "/config.json").replacingOccurrences(
            of: #""linux": {"#, with: #""linux": {"resources": {"memory": {"limit": 67108864}, "pids": {"limit": 100}}, "#)
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "u1"]).status == 0)
        let pid = try #require(try state(box, "u1")["pid"] as? Int)
        let v2 = box.contents("/proc/\(pid)/cgroup").hasPrefix("0::")
        func group(_ controller: String) -> String {
            let lines = box.contents("/proc/\(pid)/cgroup").split(separator: "\n")
            let line = lines.first { v2 || $0.split(separator: ":")[1].split(separator: ",").contains(Substring(controller)) } ?? ""
            let path = line.split(separator: ":", maxSplits: 2).last.map(String.init) ?? ""
            return v2 ? "/sys/fs/cgroup" + path : "/sys/fs/cgroup/\(controller)" + path
        }
        func value(_ controller: String, _ v1: String, _ v2file: String) -> String {
            box.contents(group(controller) + "/" + (v2 ? v2file : v1)).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(value("memory", "memory.limit_in_bytes", "memory.max") == "67108864")
        let r = try box.gocker(["oci", "update", "--memory", "128m", "--pids-limit", "50", "u1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(value("memory", "memory.limit_in_bytes", "memory.max") == "134217728")
        #expect(value("pids", "pids.max", "pids.max") == "50")
        // A resources file, as the shim writes it; the flag goes over it.
        let file = box.dir + "/resources.json"
        // (With the default device rules in it, as containerd sends them.)
        try #"{"memory": {"limit": 100663296}, "pids": {"limit": 70}, "devices": [{"allow": false, "access": "rwm"}]}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try box.gocker(["oci", "update", "--resources", file, "--pids-limit", "80", "u1"]).status == 0)
        #expect(value("memory", "memory.limit_in_bytes", "memory.max") == "100663296")
        #expect(value("pids", "pids.max", "pids.max") == "80")
        #expect(box.contents("/proc/\(pid)/status").contains("State:"), "the device rules left alone: it still runs")
        if !v2 {
            // Above the memory+swap limit: that one is raised first.
            let both = try box.gocker(["oci", "update", "--memory", "256m", "--memory-swap", "512m", "u1"])
            #expect(both.status == 0, "\(both.stderr)")
            #expect(value("memory", "memory.limit_in_bytes", "") == "268435456"
                    && value("memory", "memory.memsw.limit_in_bytes", "") == "536870912")
        }
        for (args, text) in [(["--memory", "lots"], "invalid size"), ([String](), "nothing to update"),
                             (["--pids-limit", "x"], "invalid value")] {
            let bad = try box.gocker(["oci", "update"] + args + ["u1"])
            #expect(bad.status == 1 && bad.stderr.contains(text), "\(args): \(bad.stderr)")
        }
        #expect(value("pids", "pids.max", "pids.max") == "80")
        #expect(try box.gocker(["oci", "kill", "u1", "KILL"]).status == 0)
        #expect(box.waitFor { (try? state(box, "u1"))?["status"] as? String == "stopped" })
        let stopped = try box.gocker(["oci", "update", "--pids-limit", "9", "u1"])
        #expect(stopped.status == 1 && stopped.stderr.contains("container not running"), "\(stopped.stderr)")
        #expect(try box.gocker(["oci", "delete", "u1"]).status == 0)
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
        box.expectNothingLeft()
    }

    @Test func runInTheForegroundAndTheGockerOciName() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c", "echo hello from $(hostname); exit 5"])
        let link = box.dir + "/gocker-oci"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Sandbox.binary)
        let r = try box.gocker(["run", "--bundle", bundle, "fg"], binary: link)
        #expect(r.stdout == "hello from ocibox\n")
        #expect(r.status == 5)
        #expect(box.stateLeft() == [])
        let dup1 = try box.gocker(["oci", "create", "--bundle", bundle, "dup"])
        #expect(dup1.status == 0)
        let dup2 = try box.gocker(["oci", "create", "--bundle", bundle, "dup"])
        #expect(dup2.status == 1 && dup2.stderr.contains("already exists"))
        #expect(try box.gocker(["oci", "delete", "dup"]).status == 0)
        box.expectNothingLeft()
    }

    /// (On cgroup v1 the parent makes the namespace while the child sets
    /// itself up, and sends it with GO: the child's sysfs, mounted after
    /// it joined, shows the namespace's devices, not the host's.)
    @Test func aBundlesContainerMakesItsOwnNetworkNamespaceWithLoUp() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c",
            "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip -o link show lo; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo reached; ls /sys/class/net | tr '\\n' ' '"],
            extraMounts: #", {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}"#)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "net"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 5, "\(r.stdout)")
        #expect(lines[4] == "lo ", "the sysfs of its own namespace: \(lines[4])")
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        #expect(lines[0].hasPrefix("net:[") && lines[0] != host, "a namespace of its own: \(lines[0]) vs \(host)")
        #expect(lines[1] == "lo", "only lo: \(r.stdout)")
        #expect(lines[2].contains(",UP,"), "lo is up: \(lines[2])")
        #expect(lines[3] == "reached")
        box.expectNothingLeft()
    }

    /// The parent moves a new child off its own CPU while it makes the
    /// child's groups, before GO: the command still runs on every CPU
    /// gocker may use (a move after GO, or one never undone, would leave it
    /// on fewer).
    @Test func theCommandRunsOnEveryCPUGockerMayUse() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["grep", "Cpus_allowed_list", "/proc/self/status"])
        let mine = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list") }.map { String($0) + "\n" }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "cpus"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == mine, "\(r.stdout) vs \(mine ?? "")")
        let run = try box.gocker(["run", "--rm", "busybox", "grep", "Cpus_allowed_list", "/proc/self/status"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == mine, "\(run.stdout) vs \(mine ?? "")")
        box.expectNothingLeft()
    }

    @Test(arguments: ["rshared", "shared", "rslave", "private"])
    func rootPropagationNeverLeaksAMountToTheHost(propagation: String) throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c", "grep -E '^([^ ]+ ){4}/ ' /proc/self/mountinfo"], propagation: propagation)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "prop"])
        #expect(r.status == 0, "\(r.stderr)")
        if propagation.hasSuffix("shared") { #expect(r.stdout.contains("shared:"), "\(r.stdout)") }
        #expect(box.hostMountsHere() == [], "nothing of the container shows on the host")
        box.expectNothingLeft()
    }

    /// gocker's own settings for its docker-like containers (the overlay
    /// on the root, the user, --group-add, --init) never come from a
    /// bundle: an annotation that once asked for an overlay of host
    /// directories as the root is an ordinary annotation, the root is
    /// root.path, and the user is process.user.
    @Test func gockersOldAnnotationsInABundleChangeNothing() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c",
            "ls /; echo ---; id -u; id -G; cat /proc/1/comm; cat /marker"])
        defer { try? FileManager.default.removeItem(atPath: bundle + "/rootfs") }
        try "own root\n".write(toFile: bundle + "/rootfs/marker", atomically: true, encoding: .utf8)
        for sub in ["upper", "work"] {
            try FileManager.default.createDirectory(atPath: box.dir + "/" + sub, withIntermediateDirectories: true)
        }
        try editConfig(bundle) { config in
            config["annotations"] = [
                "io.gocker.rootfs.overlay": "lowerdir=\(bundle)/rootfs:/etc,upperdir=\(box.dir)/upper,workdir=\(box.dir)/work",
                "io.gocker.user": "65534:65534", "io.gocker.group-add": "4242", "io.gocker.init": "true",
            ]
        }
        for verb in [["run"], ["create"]] {
            let id = "annotated-\(verb[0])"
            var out: String
            if verb == ["run"] {
                let r = try box.gocker(["oci", "run", "--bundle", bundle, id])
                #expect(r.status == 0, "\(r.stderr)")
                out = r.stdout
            } else {
                // create + start: the output goes to a bind-free file in the root.
                try editConfig(bundle) { config in
                    var p = config["process"] as! [String: Any]
                    p["args"] = ["sh", "-c", "(ls /; echo ---; id -u; id -G; cat /proc/1/comm; cat /marker) > /out.txt"]
                    config["process"] = p
                }
                let c = try box.gocker(["oci", "create", "--bundle", bundle, id])
                #expect(c.status == 0, "\(c.stderr)")
                #expect(try box.gocker(["oci", "start", id]).status == 0)
                #expect(box.waitFor { (try? state(box, id))?["status"] as? String == "stopped" })
                out = box.contents(bundle + "/rootfs/out.txt")
            }
            let parts = out.components(separatedBy: "---\n")
            try #require(parts.count == 2, "\(out)")
            let root = parts[0].split(separator: "\n")
            #expect(!root.contains("shadow") && !root.contains("passwd") && root.contains("bin") && root.contains("etc"),
                    "the root is the bundle's rootfs alone: \(root)")
            #expect(parts[1] == "0\n0\nsh\nown root\n", "user 0 with no added group, the command as PID 1: \(parts[1])")
            #expect(box.list(box.dir + "/upper") == [] && box.list(box.dir + "/work") == [], "no overlay was mounted")
            #expect(try box.gocker(["oci", "delete", "--force", id]).status == 0)
        }
        box.expectNothingLeft()
    }

    @Test func aBrokenConfigIsRefusedWithNothingLeft() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["true"])
        try #"{"ociVersion": "1.0.2", "process": {"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}}"#
            .write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let r = try box.gocker(["oci", "create", "--bundle", bundle, "broken"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("process.args"))
        let bad = try box.gocker(["oci", "create", "--bundle", bundle, "../escape"])
        #expect(bad.status == 1 && bad.stderr.contains("invalid container id"))
        for version in ["invalid", "2.0.0", "1.0.x", ""] {
            try #"{"ociVersion": "\#(version)", "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}}"#
                .write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
            let r = try box.gocker(["oci", "create", "--bundle", bundle, "v1"])
            if version.isEmpty {
                // Not given: as runc, no version to judge (and with no
                // namespaces listed, the host's are kept: it runs).
                #expect(r.status == 0, "\(r.stderr)")
                #expect(try box.gocker(["oci", "delete", "-f", "v1"]).status == 0)
            } else {
                #expect(r.status == 1 && r.stderr.contains("ociVersion \"\(version)\" is not supported"), "\(version): \(r.stderr)")
            }
        }
        box.expectNothingLeft()
    }

    /// What `runc spec` writes: ambient capabilities without inheritable
    /// ones, every device denied, a "cgroup" mount. It runs as under runc:
    /// the default devices stay usable, the container sees its own groups.
    @Test func aConfigAsRuncSpecWritesItRuns() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c",
            "cat /sys/fs/cgroup/pids/pids.max; ls /sys/fs/cgroup | tr '\\n' ' '; echo; echo x > /dev/null && echo null-ok; mkdir /sys/fs/cgroup/x 2>/dev/null || echo ro-ok; grep CapAmb /proc/self/status"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let url = URL(fileURLWithPath: bundle + "/config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var process = try #require(config["process"] as? [String: Any])
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        process["capabilities"] = ["bounding": caps, "effective": caps, "permitted": caps, "ambient": caps]
        config["process"] = process
        var mounts = try #require(config["mounts"] as? [[String: Any]])
        mounts.append(["destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]])
        config["mounts"] = mounts
        var linux = try #require(config["linux"] as? [String: Any])
        linux["resources"] = ["devices": [["allow": false, "access": "rwm"]], "pids": ["limit": 55]]
        config["linux"] = linux
        try JSONSerialization.data(withJSONObject: config).write(to: url)

        let r = try box.gocker(["oci", "run", "--bundle", bundle, "rs1"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "55", "its own pids group: \(r.stdout)")
        #expect(lines.count > 1 && lines[1].contains("pids") && lines[1].contains("memory"), "\(r.stdout)")
        #expect(lines.contains("null-ok"))
        #expect(lines.contains("ro-ok"), "the tmpfs holding the groups is read-only too: \(r.stdout)")
        #expect(lines.last?.hasPrefix("CapAmb:") == true && lines.last?.hasSuffix("0000000000000000") == true, "\(r.stdout)")
    }

    /// Rewrites the bundle's config.json through `change`.
    func editConfig(_ bundle: String, _ change: (inout [String: Any]) throws -> Void) throws {
        let url = URL(fileURLWithPath: bundle + "/config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        try change(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
    }

    /// A cgroup namespace of its own is rooted at the container's groups,
    /// not at gocker's: it is made once the child has joined them.
    @Test func aCgroupNamespaceIsRootedAtTheContainersGroups() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try editConfig(bundle) { config in
            var linux = try #require(config["linux"] as? [String: Any])
            var namespaces = try #require(linux["namespaces"] as? [[String: Any]])
            namespaces.append(["type": "cgroup"])
            linux["namespaces"] = namespaces
            config["linux"] = linux
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "cgns1"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let memory = lines.first { $0.contains(":memory:") || $0.hasPrefix("0::") }
        #expect(memory?.hasSuffix(":/") == true, "the group is the namespace's root: \(r.stdout)")
        #expect(!r.stdout.contains("/.."), "\(r.stdout)")
        #expect(lines.last?.hasPrefix("cgroup:[") == true)
        #expect(lines.last != (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/cgroup")),
                "a namespace of its own")
    }

    /// The child mounts while its groups are still being made: a mount that
    /// fails there is reported as such, and a limit the kernel refuses
    /// meanwhile stops the child; either way nothing is left.
    @Test func failuresWhileTheChildSetsUpBesideItsGroups() throws {
        let box = try Sandbox()
        let bundle = try makeBundle(box, args: ["true"], extraMounts: #", {"destination": "/x", "type": "bind", "source": "\#(box.dir)/no-such-source", "options": ["bind"]}"#)
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "late1"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("bind source \(box.dir)/no-such-source") && r.stderr.contains("no such file"), "\(r.stderr)")
        box.expectNothingLeft()

        try editConfig(bundle) { config in
            var mounts = try #require(config["mounts"] as? [[String: Any]])
            mounts.removeAll { ($0["destination"] as? String) == "/x" }
            config["mounts"] = mounts
            var linux = try #require(config["linux"] as? [String: Any])
            linux["resources"] = ["cpu": ["cpus": "999"]]
            config["linux"] = linux
        }
        let bad = try box.gocker(["oci", "run", "--bundle", bundle, "late2"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("cpuset.cpus"), "\(bad.stderr)")
    }
}
