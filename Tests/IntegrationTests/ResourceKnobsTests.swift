import Foundation
import Testing

/// Memory swappiness and the OOM switch in a real container's group on
/// this cgroup v1 host, through both backends; net_cls/net_prio refused
/// where they are not mounted; refusals leave nothing; `oci update`
/// keeps what it set in the container's state.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"), .serialized)
struct ResourceKnobsTests {
    static let v1 = !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")

    /// Whether a v1 hierarchy has `controller` mounted now.
    static func mounted(_ controller: String) -> Bool {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").contains { line in
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { return false }
            let after = halves[1].split(separator: " ")
            return after.count > 2 && after[0] == "cgroup" && after[2].split(separator: ",").contains(Substring(controller))
        }
    }

    @Test(.enabled(if: v1, "cgroup v1 files"), arguments: ["libcgroup", "cgroupfs"])
    func swappinessAndTheOOMSwitchAreInTheGroup(backend: String) throws {
        let box = try Sandbox()
        let (p, out) = try box.start(["run", "--rm", "--cgroup-backend", backend, "-m", "64m", "--memory-swappiness", "17",
                                      "--oom-kill-disable", "busybox", "sh", "-c", "echo ready; sleep 30"])
        #expect(box.waitFor { box.contents(out).contains("ready") }, "\(box.contents(out))")
        let state = try #require(box.runningState())
        let path = try #require((state["cgroups"] as? [String: Any])?["path"] as? String)
        let group = "/sys/fs/cgroup/memory/\(path)"
        #expect(box.contents(group + "/memory.swappiness").trimmingCharacters(in: .whitespacesAndNewlines) == "17")
        #expect(box.contents(group + "/memory.oom_control").contains("oom_kill_disable 1"), "\(box.contents(group + "/memory.oom_control"))")
        #expect(box.contents(group + "/memory.limit_in_bytes").trimmingCharacters(in: .whitespacesAndNewlines) == "67108864")
        kill(pid_t(try #require(state["pid"] as? Int)), SIGKILL)
        box.finish(p)
        #expect(!FileManager.default.fileExists(atPath: group), "group left")
        box.expectNothingLeft()

        // Without the flags: the host's values (the parent's swappiness, the OOM killer on).
        let (q, plainOut) = try box.start(["run", "--rm", "--cgroup-backend", backend, "busybox", "sh", "-c", "echo ready; sleep 30"])
        #expect(box.waitFor { box.contents(plainOut).contains("ready") })
        let plain = try #require(box.runningState())
        let plainGroup = "/sys/fs/cgroup/memory/" + (try #require((plain["cgroups"] as? [String: Any])?["path"] as? String))
        #expect(box.contents(plainGroup + "/memory.oom_control").contains("oom_kill_disable 0"))
        kill(pid_t(try #require(plain["pid"] as? Int)), SIGKILL)
        box.finish(q)
        box.expectNothingLeft()
    }

    @Test(arguments: [
        (["--memory-swappiness", "101"], "invalid argument \"101\" for --memory-swappiness: must be 0 to 100 (-1: the host's)"),
        (["--memory-swappiness", "x"], "invalid argument \"x\" for --memory-swappiness"),
    ])
    func badFlagsAreRefusedWithNothingMade(flags: [String], says: String) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm"] + flags + ["busybox", "echo", "ran"])
        #expect(r.status == 125, "\(r.stderr)")
        #expect(!r.stdout.contains("ran"))
        #expect(r.stderr.contains(says), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        box.expectNothingLeft()
    }

    /// A bundle with `resources` as its linux.resources.
    func bundle(_ box: Sandbox, _ oci: OCITests, args: [String], resources: [String: Any]) throws -> String {
        let bundle = try oci.makeBundle(box, args: args)
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["resources"] = resources
            c["linux"] = linux
        }
        return bundle
    }

    /// The OCI members: in the group of a created container on v1; refused
    /// on v2 (one line, exit 1, nothing made).
    @Test func ociSwappinessAndOOMSwitch() throws {
        let box = try Sandbox()
        let oci = OCITests()
        let b = try bundle(box, oci, args: ["sleep", "30"], resources: ["memory": ["swappiness": 3, "disableOOMKiller": true]])
        defer { try? FileManager.default.removeItem(atPath: b + "/rootfs") }
        let created = try box.gocker(["oci", "create", "--bundle", b, "knobs"])
        if Self.v1 {
            #expect(created.status == 0, "\(created.stderr)")
            let pid = try #require(try oci.state(box, "knobs")["pid"] as? Int)
            let line = box.contents("/proc/\(pid)/cgroup").split(separator: "\n").first { $0.split(separator: ":")[1] == "memory" }
            let group = "/sys/fs/cgroup/memory" + (line?.split(separator: ":", maxSplits: 2).last.map(String.init) ?? "/missing")
            #expect(box.contents(group + "/memory.swappiness").trimmingCharacters(in: .whitespacesAndNewlines) == "3")
            #expect(box.contents(group + "/memory.oom_control").contains("oom_kill_disable 1"))
            #expect(try box.gocker(["oci", "delete", "--force", "knobs"]).status == 0)
        } else {
            #expect(created.status == 1 && created.stderr.contains("linux.resources.memory.swappiness"), "\(created.stderr)")
            #expect(created.stderr.split(separator: "\n").count == 1)
        }
        box.expectNothingLeft()

        // Out of range: refused naming it, nothing made.
        try oci.editConfig(b) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["resources"] = ["memory": ["swappiness": 200]]
            c["linux"] = linux
        }
        let bad = try box.gocker(["oci", "run", "--bundle", b, "knobs-bad"])
        #expect(bad.status == 1, "\(bad.stderr)")
        #expect(bad.stderr.contains("memory swappiness 200 (--memory-swappiness, linux.resources.memory.swappiness) is not valid: 0 to 100"),
                "\(bad.stderr)")
        #expect(bad.stderr.split(separator: "\n").count == 1)
        box.expectNothingLeft()
    }

    /// This host: net_cls and net_prio in /proc/cgroups, in no hierarchy.
    @Test(.enabled(if: v1 && !mounted("net_cls") && !mounted("net_prio"), "net_cls/net_prio are mounted here"),
          arguments: [
            (#"{"classID": 1048577}"#, "linux.resources.network.classID: the host offers no net_cls cgroup controller"),
            (#"{"priorities": [{"name": "lo", "priority": 3}]}"#,
             "linux.resources.network.priorities: the host offers no net_prio cgroup controller"),
          ])
    func networkIsRefusedWhereNotMountedWithNothingMade(network: String, says: String) throws {
        let box = try Sandbox()
        let oci = OCITests()
        let member = try JSONSerialization.jsonObject(with: Data(network.utf8))
        let b = try bundle(box, oci, args: ["true"], resources: ["network": member])
        defer { try? FileManager.default.removeItem(atPath: b + "/rootfs") }
        for backend in ["libcgroup", "cgroupfs"] {
            let r = try box.gocker(["oci", "--cgroup-backend", backend, "run", "--bundle", b, "net-\(backend)"])
            #expect(r.status == 1, "\(backend): \(r.stderr)")
            #expect(r.stderr.contains(says) && r.stderr.contains("not mounted"), "\(backend): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(backend): \(r.stderr)")
            #expect(try box.gocker(["oci", "state", "net-\(backend)"]).status != 0, "\(backend): no state left")
        }
        box.expectNothingLeft()
    }

    /// `oci update` keeps the limits it set in the container's state.json,
    /// laid over the config's: a later update of another member keeps them.
    @Test func updateKeepsTheNewResourcesInTheState() throws {
        let box = try Sandbox()
        let oci = OCITests()
        let b = try bundle(box, oci, args: ["sleep", "60"], resources: ["memory": ["limit": 67_108_864, "reservation": 33_554_432],
                                                                        "pids": ["limit": 100]])
        defer { try? FileManager.default.removeItem(atPath: b + "/rootfs") }
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", b, "kept"]).status == 0)
        func saved() throws -> [String: Any] {
            let data = try #require(FileManager.default.contents(atPath: "\(box.stateRoot)/kept/state.json"))
            let state = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return try #require(state["resources"] as? [String: Any], "\(state)")
        }
        #expect(try box.gocker(["oci", "update", "--memory", "128m", "kept"]).status == 0)
        var r = try saved()
        #expect((r["memory"] as? [String: Any])?["limit"] as? Int == 134_217_728)
        #expect((r["memory"] as? [String: Any])?["reservation"] as? Int == 33_554_432, "the config's member kept")
        #expect((r["pids"] as? [String: Any])?["limit"] as? Int == 100)
        #expect(try box.gocker(["oci", "update", "--pids-limit", "42", "kept"]).status == 0)
        r = try saved()
        #expect((r["memory"] as? [String: Any])?["limit"] as? Int == 134_217_728, "the first update kept")
        #expect((r["pids"] as? [String: Any])?["limit"] as? Int == 42)
        // A refused update changes nothing, in the group or the state.
        let bad = try box.gocker(["oci", "update", "--memory", "lots", "kept"])
        #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
        #expect((try saved()["pids"] as? [String: Any])?["limit"] as? Int == 42)
        #expect(try box.gocker(["oci", "delete", "--force", "kept"]).status == 0)
        box.expectNothingLeft()
    }
}
