import Foundation
import Testing

/// `gocker oci spec`, `events` and `exec`'s failure status, on real containers.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct OCIVerbsTests {
    /// A bundle with the busybox image's layer as its rootfs and the
    /// config `oci spec` writes, changed by `edit`.
    func specBundle(_ box: Sandbox, edit: (inout [String: Any]) -> Void) throws -> String {
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let layerDir = box.dataRoot + "/image/layers"
        let layer = try #require(box.list(layerDir).first)
        let bundle = box.dir + "/bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        #expect(try sh("cp -a '\(layerDir)/\(layer)' '\(bundle)/rootfs'") == 0)
        let r = try box.gocker(["oci", "spec", "--bundle", bundle])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(box.contents(bundle + "/config.json").utf8)) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        return bundle
    }

    func setProcess(_ c: inout [String: Any], args: [String]) {
        var p = c["process"] as! [String: Any]
        p["args"] = args
        p["terminal"] = false
        c["process"] = p
    }

    func stats(_ box: Sandbox, _ id: String) throws -> [String: Any] {
        let r = try box.gocker(["oci", "events", "--stats", id])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stdout)")
        let record = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
        #expect(record["type"] as? String == "stats" && record["id"] as? String == id)
        return try #require(record["data"] as? [String: Any])
    }

    /// runc's starting config runs (with a command busybox has and no
    /// terminal), and is never written over.
    @Test func specRunsAndIsNotOverwritten() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let bundle = try specBundle(box) { setProcess(&$0, args: ["sh", "-c", "test -e /proc/1/status && test -d /sys/fs/cgroup"]) }
        let run = try box.gocker(["oci", "run", "--bundle", bundle, "s1"])
        #expect(run.status == 0, "\(run.stderr)")
        // oci run removes what it ran, as runc's.
        let before = box.contents(bundle + "/config.json")
        let again = try box.gocker(["oci", "spec", "-b", bundle])
        #expect(again.status == 1)
        #expect(again.stderr == "gocker: error: File config.json exists. Remove it first\n")
        #expect(box.contents(bundle + "/config.json") == before)
        let rootless = try box.gocker(["oci", "spec", "--rootless", "-b", box.dir + "/nowhere"])
        #expect(rootless.status == 1 && rootless.stderr.contains("not a directory"), "\(rootless.stderr)")
    }

    /// --stats: one record with the container's real numbers; a stopped or
    /// unknown container fails with runc's words.
    @Test func statsAreTheContainers() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        // sh and two sleeps: three processes. (The shell makes the file
        // itself: a `touch` would be a fourth process while it runs.)
        let bundle = try specBundle(box) { c in
            setProcess(&c, args: ["sh", "-c", "sleep 100 & sleep 100 & : > /tmp/ready; wait"])
            c["root"] = ["path": "rootfs", "readonly": false]
        }
        defer { _ = try? box.gocker(["oci", "delete", "--force", "e1"]) }
        let run = try box.gocker(["oci", "run", "-d", "--bundle", bundle, "e1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(box.waitFor { FileManager.default.fileExists(atPath: bundle + "/rootfs/tmp/ready") })
        let data = try stats(box, "e1")
        let pids = try #require(data["pids"] as? [String: Any])
        #expect(pids["current"] as? Int == 3, "\(pids)")
        let memory = try #require(data["memory"] as? [String: Any])
        let usage = try #require(memory["usage"] as? [String: Any])
        #expect((usage["usage"] as? Int ?? 0) > 0, "\(memory)")
        let cpu = try #require((data["cpu"] as? [String: Any])?["usage"] as? [String: Any])
        #expect((cpu["total"] as? Int ?? 0) > 0, "\(cpu)")

        #expect(try box.gocker(["oci", "kill", "e1", "KILL"]).status == 0)
        #expect(box.waitFor { (try? box.gocker(["oci", "state", "e1"]).stdout.contains("stopped")) == true })
        let stopped = try box.gocker(["oci", "events", "--stats", "e1"])
        #expect(stopped.status == 1 && stopped.stderr == "gocker: error: container with id e1 is not running\n", "\(stopped.stderr)")
        #expect(try box.gocker(["oci", "delete", "e1"]).status == 0)
        let unknown = try box.gocker(["oci", "events", "e1"])
        #expect(unknown.status == 1 && unknown.stderr == "gocker: error: container does not exist\n", "\(unknown.stderr)")
        let bad = try box.gocker(["oci", "events", "--interval", "soon", "e1"])
        #expect(bad.status == 1 && bad.stderr.contains("invalid value \"soon\" for flag -interval"), "\(bad.stderr)")
    }

    /// Without --stats: stats records every interval, an "oom" record when
    /// the memory limit kills, and the end with the container.
    @Test func eventsSeeAnOOMKillAndEnd() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let bundle = try specBundle(box) { c in
            setProcess(&c, args: ["sh", "-c", "sleep 1; x=a; while :; do x=$x$x; done"])
            var linux = c["linux"] as! [String: Any]
            var resources = linux["resources"] as! [String: Any]
            resources["memory"] = ["limit": 16 << 20, "swap": 16 << 20]
            linux["resources"] = resources
            c["linux"] = linux
        }
        defer { _ = try? box.gocker(["oci", "delete", "--force", "o1"]) }
        let run = try box.gocker(["oci", "run", "-d", "--bundle", bundle, "o1"])
        #expect(run.status == 0, "\(run.stderr)")
        let (events, out) = try box.start(["oci", "events", "--interval", "200ms", "o1"])
        box.finish(events, within: 30)
        #expect(events.terminationStatus == 0, "\(box.contents(out + ".err"))")
        let records = box.contents(out).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(records.contains { $0["type"] as? String == "oom" && $0["id"] as? String == "o1" }, "\(box.contents(out))")
        #expect(records.contains { $0["type"] as? String == "stats" && $0["data"] != nil })
        #expect(try box.gocker(["oci", "delete", "o1"]).status == 0)
    }

    /// A process exec cannot start exits 255 with runc's "exec failed"
    /// (what containerd and podman look for); the process's own status passes through.
    @Test func failedExecExits255() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let bundle = try specBundle(box) { c in setProcess(&c, args: ["sleep", "100"]) }
        defer { _ = try? box.gocker(["oci", "delete", "--force", "x1"]) }
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "x1"]).status == 0)
        let missing = try box.gocker(["oci", "exec", "x1", "no-such-command"])
        #expect(missing.status == 255, "\(missing.stderr)")
        #expect(missing.stderr.hasPrefix("gocker: error: exec failed: ") && missing.stderr.contains("executable file not found in $PATH"),
                "\(missing.stderr)")
        #expect(try box.gocker(["oci", "exec", "x1", "sh", "-c", "exit 7"]).status == 7)
        // A line that does not read is not an exec failure: runc's 1... (gocker's 125 for every OCI line).
        #expect(try box.gocker(["oci", "exec", "--bogus", "x1", "true"]).status != 255)
        #expect(try box.gocker(["oci", "delete", "--force", "x1"]).status == 0)
    }
}
