import Foundation
import Testing

/// OCI hooks on real containers: each kind runs at its moment, in its
/// namespaces, with the runtime-spec's state on its stdin; failures fail
/// create (leaving nothing) or start, or are warnings (poststart, poststop).
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct HooksTests {
    let oci = OCITests()

    /// A bundle running `script` in busybox's sh, with the sandbox's `out`
    /// directory bound at /out (where a startContainer hook, which runs in
    /// the container, writes).
    func makeBundle(_ box: Sandbox, script: String) throws -> (bundle: String, out: String) {
        let out = box.dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let bind = #",{"destination": "/out", "type": "bind", "source": "\#(out)", "options": ["rbind"]}"#
        let bundle = try oci.makeBundle(box, args: ["sh", "-c", script], extraMounts: bind)
        return (bundle, out)
    }

    /// A hook that is a shell script: /bin/sh (the host's, or the
    /// container's for startContainer), with the script as `sh -c`.
    func shHook(_ script: String, timeout: Int? = nil, env: [String]? = nil, extraArgs: [String] = []) -> [String: Any] {
        var h: [String: Any] = ["path": "/bin/sh", "args": ["sh", "-c", script] + extraArgs]
        if let timeout { h["timeout"] = timeout }
        if let env { h["env"] = env }
        return h
    }

    /// A script that keeps the state it reads as OUT/KIND.json, its own
    /// mount namespace as OUT/KIND.mnt, that of the pid in the state as
    /// OUT/KIND.pidmnt, and appends KIND to OUT/order. (`out` as the hook
    /// sees it.)
    func recorder(_ kind: String, out: String) -> String {
        """
        s=$(cat); printf '%s' "$s" > \(out)/\(kind).json
        pid=$(printf '%s' "$s" | sed -n 's/.*"pid": *\\([0-9]*\\).*/\\1/p')
        readlink /proc/self/ns/mnt > \(out)/\(kind).mnt
        readlink /proc/$pid/ns/mnt > \(out)/\(kind).pidmnt 2>/dev/null
        echo \(kind) >> \(out)/order
        """
    }

    func setHooks(_ bundle: String, _ hooks: [String: [[String: Any]]]) throws {
        try oci.editConfig(bundle) { $0["hooks"] = hooks }
    }

    func json(_ path: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: path), "\(path) was not written")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(path)")
    }

    func line(_ box: Sandbox, _ path: String) -> String {
        box.contents(path).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func order(_ box: Sandbox, _ out: String) -> [String] {
        box.contents(out + "/order").split(separator: "\n").map(String.init)
    }

    /// create, start, kill, delete, each kind at its moment: prestart and
    /// createRuntime in gocker's mount namespace with the container's pid
    /// (a live process in another mount namespace), createContainer in
    /// the container's mount namespace, startContainer in the container
    /// after pivot_root, before the command; poststart with "running",
    /// poststop once the container's state is gone.
    @Test func everyKindRunsAtItsMoment() throws {
        let box = try Sandbox()
        let (bundle, out) = try makeBundle(box, script: "echo command >> /out/order; exec sleep 100")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let hostMnt = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        try setHooks(bundle, [
            "prestart": [shHook(recorder("prestart", out: out))],
            "createRuntime": [shHook(recorder("createRuntime", out: out))],
            "createContainer": [shHook(recorder("createContainer", out: out))],
            // Inside the container: its /bin/sh, its /proc, /out bound.
            "startContainer": [shHook(recorder("startContainer", out: "/out"))],
            "poststart": [shHook(recorder("poststart", out: out))],
            "poststop": [shHook(recorder("poststop", out: out) + "\n[ -e \(box.stateRoot)/hk1 ] && echo left > \(out)/poststop.state; true")],
        ])
        let created = try box.gocker(["oci", "create", "--bundle", bundle, "hk1"])
        #expect(created.status == 0, "\(created.stderr)")
        let pid = try #require(try oci.state(box, "hk1")["pid"] as? Int)
        let containerMnt = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
        #expect(containerMnt != hostMnt)
        #expect(order(box, out) == ["prestart", "createRuntime", "createContainer"])
        for kind in ["prestart", "createRuntime", "createContainer"] {
            let state = try json("\(out)/\(kind).json")
            #expect(state["status"] as? String == "creating", "\(kind): \(state)")
            #expect(state["id"] as? String == "hk1" && state["bundle"] as? String == bundle, "\(kind): \(state)")
            #expect(state["pid"] as? Int == pid, "\(kind): \(state)")
            #expect(state["ociVersion"] as? String != nil)
            // The pid is the container's first process, alive, in its own
            // mount namespace.
            #expect(line(box, "\(out)/\(kind).pidmnt") == containerMnt, "\(kind)")
        }
        #expect(line(box, out + "/prestart.mnt") == hostMnt)
        #expect(line(box, out + "/createRuntime.mnt") == hostMnt)
        #expect(line(box, out + "/createContainer.mnt") == containerMnt)
        #expect(!FileManager.default.fileExists(atPath: out + "/startContainer.json"), "startContainer ran at create")

        let started = try box.gocker(["oci", "start", "hk1"])
        #expect(started.status == 0, "\(started.stderr)")
        #expect(try oci.state(box, "hk1")["status"] as? String == "running")
        let start = try json(out + "/startContainer.json")
        #expect(start["status"] as? String == "created" && start["pid"] as? Int == pid, "\(start)")
        #expect(line(box, out + "/startContainer.mnt") == containerMnt)
        let poststart = try json(out + "/poststart.json")
        #expect(poststart["status"] as? String == "running" && poststart["pid"] as? Int == pid, "\(poststart)")
        #expect(line(box, out + "/poststart.mnt") == hostMnt)
        #expect(box.waitFor { order(box, out).contains("command") })
        let o = order(box, out)
        #expect(Array(o.prefix(4)) == ["prestart", "createRuntime", "createContainer", "startContainer"], "\(o)")
        #expect(Set(o.dropFirst(4)) == ["command", "poststart"], "\(o)")

        #expect(try box.gocker(["oci", "kill", "hk1", "KILL"]).status == 0)
        #expect(box.waitFor { (try? oci.state(box, "hk1")["status"] as? String) == "stopped" })
        #expect(!FileManager.default.fileExists(atPath: out + "/poststop.json"), "poststop ran before delete")
        let deleted = try box.gocker(["oci", "delete", "hk1"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        let poststop = try json(out + "/poststop.json")
        #expect(poststop["status"] as? String == "stopped" && poststop["id"] as? String == "hk1", "\(poststop)")
        #expect(box.contents(out + "/poststop.state").isEmpty, "the state was still there when poststop ran")
        #expect(order(box, out).last == "poststop")
    }

    /// A hook gets its args (args[0] is its argv[0]) and exactly its env;
    /// one without env gets none. In the parent (prestart) and in the
    /// container's first process (createContainer) alike.
    @Test func argsAndEnvArePassedExactly() throws {
        let box = try Sandbox()
        let (bundle, out) = try makeBundle(box, script: "true")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        // dash exports PWD itself: left out.
        func dump(_ kind: String) -> String {
            #"env | grep -v '^PWD=' | sort > \#(out)/\#(kind).env; printf '%s|%s|%s\n' "$0" "$1" "$2" > \#(out)/\#(kind).args"#
        }
        try setHooks(bundle, [
            "prestart": [shHook(dump("prestart"), env: ["A=1", "B=two words"], extraArgs: ["name0", "x y", "z"])],
            "createContainer": [shHook(dump("createContainer"), env: ["C=3"], extraArgs: ["n", "one"])],
            "poststop": [shHook(dump("poststop"))],
        ])
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "hk2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(box.contents(out + "/prestart.env") == "A=1\nB=two words\n")
        #expect(box.contents(out + "/prestart.args") == "name0|x y|z\n")
        #expect(box.contents(out + "/createContainer.env") == "C=3\n")
        #expect(box.contents(out + "/createContainer.args") == "n|one|\n")
        #expect(box.contents(out + "/poststop.env") == "")
        #expect(box.contents(out + "/poststop.args") == "sh||\n")
    }

    /// A failing prestart, createRuntime or createContainer hook (a non-zero
    /// status, a program that is not there, its timeout) fails create with
    /// one line naming the kind and the path, exit 1, and leaves nothing.
    @Test func aFailingCreateHookFailsCreateLeavingNothing() throws {
        let box = try Sandbox()
        let (bundle, out) = try makeBundle(box, script: "true")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let cases: [(String, [String: Any], String)] = [
            ("prestart", shHook("exit 3"), "exited with status 3"),
            ("createRuntime", shHook("kill -9 $$"), "killed by signal 9"),
            ("createContainer", shHook("exit 4"), "exited with status 4"),
            ("prestart", ["path": "/nonexistent/hook"], "no such file or directory"),
            ("createContainer", ["path": "/nonexistent/hook"], "no such file or directory"),
        ]
        for (i, (kind, hook, why)) in cases.enumerated() {
            // The hooks before it ran; the one after it never does.
            var hooks: [String: [[String: Any]]] = [kind: [hook]]
            hooks["poststop"] = [shHook("echo poststop >> \(out)/order")]
            if kind != "prestart" { hooks["prestart"] = [shHook("echo prestart >> \(out)/order")] }
            if kind == "createContainer" { hooks["createRuntime"] = [shHook("echo createRuntime >> \(out)/order")] }
            try setHooks(bundle, hooks)
            try? FileManager.default.removeItem(atPath: out + "/order")
            let r = try box.gocker(["oci", "create", "--bundle", bundle, "hk3-\(i)"])
            #expect(r.status == 1, "\(kind): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(r.stderr)")
            let path = hook["path"] as! String
            #expect(r.stderr.contains("\(kind) hook \(path)") && r.stderr.contains(why), "\(r.stderr)")
            #expect(box.stateLeft() == [], "\(kind): state left")
            #expect(box.cgroupsLeft() == [], "\(kind): cgroups left")
            #expect(box.processesRootedHere() == [], "\(kind): processes left")
            let ran = order(box, out)
            #expect(!ran.contains("poststop"), "\(ran)")
            if kind == "createContainer" { #expect(ran == ["prestart", "createRuntime"]) }
        }
    }

    /// A hook that runs past its timeout is killed (SIGKILL) and fails
    /// create, well before it would have ended; in the parent and in the
    /// container's first process alike.
    @Test func aHookPastItsTimeoutIsKilled() throws {
        let box = try Sandbox()
        let (bundle, out) = try makeBundle(box, script: "true")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        for kind in ["createRuntime", "createContainer"] {
            // A sleep the hook started records its pid as the host sees it
            // (the host's /proc is there before pivot_root), to check that
            // it is gone with the hook (its process group is killed).
            try setHooks(bundle, [kind: [shHook("sh -c \"cut -d' ' -f4 /proc/self/stat > \(out)/\(kind).pid; exec sleep 10\" & wait", timeout: 1)]])
            let began = Date()
            let r = try box.gocker(["oci", "create", "--bundle", bundle, "hk4"])
            let took = Date().timeIntervalSince(began)
            #expect(r.status == 1 && r.stderr.contains("\(kind) hook /bin/sh: timed out after 1 s"), "\(r.stderr)")
            #expect(took >= 1 && took < 8, "\(kind): create took \(took) s")
            let pid = try #require(Int32(line(box, "\(out)/\(kind).pid")))
            #expect(box.waitFor(5) { kill(pid, 0) != 0 }, "\(kind): what the hook started still runs")
            #expect(box.stateLeft() == [] && box.cgroupsLeft() == [])
        }
    }

    /// A failing startContainer hook fails start with its error and the
    /// container stops; a failing poststart is a warning and the container
    /// runs on; a failing poststop is a warning and delete removes it all.
    @Test func laterFailures() throws {
        let box = try Sandbox()
        let (bundle, out) = try makeBundle(box, script: "echo command >> /out/order; exec sleep 100")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try setHooks(bundle, ["startContainer": [shHook("exit 5")]])
        #expect(try box.gocker(["oci", "create", "--bundle", bundle, "hk5"]).status == 0)
        let started = try box.gocker(["oci", "start", "hk5"])
        #expect(started.status == 1, "\(started.stderr)")
        #expect(started.stderr.contains("startContainer hook /bin/sh: exited with status 5"), "\(started.stderr)")
        // (Stopped once its parent, the reaper it was left to, has reaped it.)
        #expect(box.waitFor { (try? oci.state(box, "hk5")["status"] as? String) == "stopped" })
        #expect(!order(box, out).contains("command"), "the command ran")
        #expect(try box.gocker(["oci", "delete", "hk5"]).status == 0)

        try setHooks(bundle, ["poststart": [shHook("exit 6")], "poststop": [shHook("exit 7")]])
        #expect(try box.gocker(["oci", "create", "--bundle", bundle, "hk6"]).status == 0)
        let ran = try box.gocker(["oci", "start", "hk6"])
        #expect(ran.status == 0, "\(ran.stderr)")
        #expect(ran.stderr.contains("warning") && ran.stderr.contains("poststart hook /bin/sh: exited with status 6"), "\(ran.stderr)")
        #expect(try oci.state(box, "hk6")["status"] as? String == "running")
        let deleted = try box.gocker(["oci", "delete", "--force", "hk6"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stderr.contains("warning") && deleted.stderr.contains("poststop hook /bin/sh: exited with status 7"), "\(deleted.stderr)")
        #expect(box.stateLeft() == [])
    }

    /// `oci run` (create, start, wait and delete in one process) runs all
    /// six, in their order.
    @Test func ociRunRunsAllSix() throws {
        let box = try Sandbox()
        let (bundle, out) = try makeBundle(box, script: "echo command >> /out/order")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        var hooks: [String: [[String: Any]]] = [:]
        for kind in ["prestart", "createRuntime", "createContainer", "poststart", "poststop"] {
            hooks[kind] = [shHook("echo \(kind) >> \(out)/order")]
        }
        hooks["startContainer"] = [shHook("echo startContainer >> /out/order")]
        try setHooks(bundle, hooks)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "hk7"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = order(box, out)
        #expect(Array(o.prefix(4)) == ["prestart", "createRuntime", "createContainer", "startContainer"], "\(o)")
        #expect(Set(o.dropFirst(4).dropLast()) == ["command", "poststart"], "\(o)")
        #expect(o.last == "poststop", "\(o)")
    }

    /// A hook whose path is not absolute, or whose timeout is not
    /// positive, is refused at create, naming it, leaving nothing.
    @Test func badHooksAreRefused() throws {
        let box = try Sandbox()
        let (bundle, _) = try makeBundle(box, script: "true")
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        for (hook, why) in [(["path": "bin/sh"], "hook \"bin/sh\": path is not absolute"),
                            (["path": "/bin/sh", "timeout": 0] as [String: Any], "timeout 0 is not a positive")] {
            try setHooks(bundle, ["createRuntime": [hook]])
            let r = try box.gocker(["oci", "create", "--bundle", bundle, "hk8"])
            #expect(r.status == 1 && r.stderr.contains("hooks.createRuntime") && r.stderr.contains(why), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }
    }
}
