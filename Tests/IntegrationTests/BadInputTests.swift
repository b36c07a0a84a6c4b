import Foundation
import Testing

/// Input gocker must refuse, or read as docker reads it: image names
/// outside docker's grammar, negative numbers as separate words, relative
/// roots, broken archives and configs. Each refusal is one line on stderr,
/// gocker's status, and nothing left behind.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct BadInputTests {
    func expectRefused(_ r: Sandbox.Result, status: Int32 = 125, saying text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func imageNamesOutsideDockersGrammarAreRefused() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let repositories = box.contents(box.dataRoot + "/image/repositories.json")
        expectRefused(try box.gocker(["tag", "busybox", "../../x:1"]), saying: "invalid reference format: \"../../x:1\"")
        expectRefused(try box.gocker(["run", "--rm", "../../etc"]), saying: "invalid reference format: \"../../etc\"")
        expectRefused(try box.gocker(["create", "Busybox"]), saying: "invalid reference format")
        // rmi reports each image it could not remove and exits 1, as docker does.
        expectRefused(try box.gocker(["rmi", "../../x:1"]), status: 1, saying: "invalid reference format")
        #expect(try box.gocker(["run", "--name", "src", "busybox", "true"]).status == 0)
        expectRefused(try box.gocker(["commit", "src", "../../x:1"]), saying: "invalid reference format")
        #expect(try box.gocker(["export", "-o", box.dir + "/root.tar", "src"]).status == 0)
        expectRefused(try box.gocker(["import", box.dir + "/root.tar", "../x"]), saying: "invalid reference format")
        #expect(try box.gocker(["rm", "src"]).status == 0)
        #expect(box.contents(box.dataRoot + "/image/repositories.json") == repositories, "no tag was added")

        // An archive whose name would be a path out of the store.
        let archive = box.dir + "/busybox.tar", unpacked = box.dir + "/unpacked"
        #expect(try box.gocker(["save", "-o", archive, "busybox"]).status == 0)
        #expect(try shell("mkdir '\(unpacked)' && tar -xf '\(archive)' -C '\(unpacked)'").status == 0)
        let indexURL = URL(fileURLWithPath: unpacked + "/index.json")
        var index = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        var manifests = try #require(index["manifests"] as? [[String: Any]])
        manifests[0]["annotations"] = ["io.containerd.image.name": "../../../tmp/x/pwned:1",
                                       "org.opencontainers.image.ref.name": "../../../tmp/x/pwned:1"]
        index["manifests"] = manifests
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        #expect(try shell("tar -cf '\(box.dir)/pwned.tar' -C '\(unpacked)' .").status == 0)
        #expect(try box.gocker(["rmi", "busybox"]).status == 0)
        expectRefused(try box.gocker(["load", "-i", box.dir + "/pwned.tar"]), saying: "invalid reference format")
        #expect(try box.gocker(["images", "-q"]).stdout == "", "nothing was loaded")
        #expect(box.list(box.dataRoot + "/image/layers") == [])
        #expect(!FileManager.default.fileExists(atPath: "/tmp/x/pwned"))

        // A blob of the wrong size is said to be one.
        let size = try #require(manifests[0]["size"] as? Int)
        manifests[0]["size"] = size + 1
        manifests[0]["annotations"] = nil
        index["manifests"] = manifests
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        #expect(try shell("tar -cf '\(box.dir)/size.tar' -C '\(unpacked)' .").status == 0)
        let wrongSize = try box.gocker(["load", "-i", box.dir + "/size.tar"])
        expectRefused(wrongSize, saying: "size mismatch: expected \(size + 1) bytes, got \(size)")
        #expect(!wrongSize.stderr.contains("digest mismatch"), "the digest is right: \(wrongSize.stderr)")
        #expect(try box.gocker(["images", "-q"]).stdout == "")
        #expect(box.list(box.dataRoot + "/image").filter { $0.hasPrefix(".tmp") } == [])
        box.expectNothingLeft()
    }

    /// `-1` as a word of its own is the option's value, as in docker:
    /// unlimited for --pids-limit and --memory-swap, refused with its
    /// reason for the others.
    @Test func negativeNumbersAreValues() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--pids-limit", "-1", "-m", "64m", "--memory-swap", "-1", "busybox", "sh", "-c",
                                "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || true"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("Missing value"), "\(r.stderr)")
        expectRefused(try box.gocker(["run", "--rm", "-m", "-1", "busybox", "true"]), saying: "invalid argument \"-1\" for --memory")
        expectRefused(try box.gocker(["run", "--rm", "--cpus", "-1", "busybox", "true"]), saying: "invalid argument \"-1\" for --cpus")
        expectRefused(try box.gocker(["create", "--memory-reservation", "-1", "busybox", "true"]),
                      saying: "invalid argument \"-1\" for --memory-reservation")

        // stop -t -1 waits as long as it takes: the container's TERM trap
        // ends it after a second, not a SIGKILL at once.
        let d = try box.gocker(["run", "-d", "--name", "slow", "busybox", "sh", "-c",
                                "trap 'sleep 1; exit 7' TERM; echo ready; while true; do sleep 0.1; done"])
        #expect(d.status == 0, "\(d.stderr)")
        let id = d.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(box.waitFor { (try? box.gocker(["logs", "slow"]))?.stdout == "ready\n" })
        let stop = try box.gocker(["stop", "-t", "-1", "slow"])
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(box.record(id)?["exitCode"] as? Int == 7, "the trap's own exit: \(String(describing: box.record(id)))")
        #expect(try box.gocker(["rm", "slow"]).status == 0)
        box.expectNothingLeft()
    }

    /// Relative roots are made absolute at the start, as docker does: a
    /// container starts, runs in the background and goes, and everything
    /// lives under the one directory the relative name means.
    @Test func relativeRootsAreTakenFromTheWorkingDirectory() throws {
        let box = try Sandbox()
        let work = box.dir + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        func gocker(_ args: String) throws -> Sandbox.Result {
            try box.gocker(["-c", "cd '\(work)' && GOCKER_DATA_ROOT=rel-data GOCKER_STATE_ROOT=./rel-state exec '\(Sandbox.binary)' \(args)"],
                           binary: "/bin/sh")
        }
        let run = try gocker("run --rm busybox sh -c 'echo ran'")
        #expect(run.status == 0 && run.stdout == "ran\n", "\(run.stderr)")
        let id = try gocker("run -d busybox sleep 30").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 64)
        let ps = try gocker("ps -q")
        #expect(ps.stdout == String(id.prefix(12)) + "\n", "\(ps.stdout) \(ps.stderr)")
        let viaFlag = try box.gocker(["-c", "cd '\(box.dir)' && exec '\(Sandbox.binary)' ps -q --data-root work/rel-data --root work/rel-state"],
                                     binary: "/bin/sh")
        #expect(viaFlag.stdout == ps.stdout, "the same roots, named from elsewhere: \(viaFlag.stderr)")
        #expect(try gocker("rm -f \(id)").status == 0)
        #expect(box.list(work).sorted() == ["rel-data", "rel-state"], "\(box.list(work))")
        #expect(box.list(work + "/rel-data/containers") == [])
        #expect(box.stateLeft(in: work + "/rel-state") == [])
        #expect(box.list(work + "/rel-data/image/images").filter { $0.hasSuffix(".json") }.count == 1)
        box.expectNothingLeft()
    }

    /// A config's bad field is named; a memory limit below -1 is refused
    /// by the memory plugin before anything is left.
    @Test func ociConfigsWithBadNumbersAreRefusedNamingTheField() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let layer = try #require(box.list(box.dataRoot + "/image/layers").first)
        let bundle = box.dir + "/bundle"
        #expect(try shell("mkdir -p '\(bundle)' && cp -a '\(box.dataRoot)/image/layers/\(layer)' '\(bundle)/rootfs'").status == 0)
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        func config(uid: Int, memory: Int) throws {
            try """
                {"ociVersion": "1.0.2",
                 "process": {"user": {"uid": \(uid), "gid": 0}, "args": ["true"], "env": ["PATH=/bin"], "cwd": "/"},
                 "root": {"path": "rootfs"},
                 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
                 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
                           "resources": {"memory": {"limit": \(memory)}}}}
                """.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        }
        try config(uid: -1, memory: 67_108_864)
        expectRefused(try box.gocker(["oci", "run", "--bundle", bundle, "baduid"]), status: 1,
                      saying: "\"process.user.uid\": -1 is not an unsigned 32-bit integer")
        try config(uid: 0, memory: -5)
        expectRefused(try box.gocker(["oci", "run", "--bundle", bundle, "badmem"]), status: 1,
                      saying: "memory limit -5 is not valid")
        try config(uid: 0, memory: -1)
        let unlimited = try box.gocker(["oci", "run", "--bundle", bundle, "unlimited"])
        #expect(unlimited.status == 0, "-1 is no limit: \(unlimited.stderr)")
        box.expectNothingLeft()
    }
}
