import Foundation
import Testing

/// `--blkio-weight` for real, with both backends. Whether the host can take
/// it depends on its I/O scheduler: with a weight file (CFQ or BFQ) the
/// value is in the running container's group; without one (this machine:
/// mq-deadline, no BFQ) the run is refused naming the files, and leaves
/// nothing. Which case holds is found out beforehand, from a group of the
/// test's own, so that each case asserts its effect.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct BlkioTests {
    static let backends = ["libcgroup", "cgroupfs"]
    static let v1 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/blkio")

    static var v2OffersIO: Bool {
        ((try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8)) ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("io")
    }

    /// The file a new group of this host takes the weight in (nil: none),
    /// from a probe group made and removed here.
    static func hostWeightFile(_ box: Sandbox) throws -> String? {
        let fm = FileManager.default
        if v1 {
            let probe = "/sys/fs/cgroup/blkio/\(box.cgroupParent)-probe"
            try fm.createDirectory(atPath: probe, withIntermediateDirectories: false)
            defer { rmdir(probe) }
            return ["blkio.weight", "blkio.bfq.weight"].first { fm.fileExists(atPath: "\(probe)/\($0)") }
        }
        // v2: a group of the root's, io enabled for the root's children
        // as gocker enables it (a host that offers no io has no file).
        let root = "/sys/fs/cgroup"
        guard v2OffersIO else { return nil }
        try "+io".write(toFile: "\(root)/cgroup.subtree_control", atomically: false, encoding: .utf8)
        let probe = "\(root)/\(box.cgroupParent)-probe"
        try fm.createDirectory(atPath: probe, withIntermediateDirectories: false)
        defer { rmdir(probe) }
        return ["io.bfq.weight", "io.weight"].first { fm.fileExists(atPath: "\(probe)/\($0)") }
    }

    @Test(arguments: backends)
    func weightIsInTheGroupOrRefusedLeavingNothing(backend: String) throws {
        let box = try Sandbox()
        let file = try Self.hostWeightFile(box)
        guard let file else {
            // No weight file on this host: one line naming the files, 125,
            // no group, no container.
            let r = try box.gocker(["run", "--rm", "--cgroup-backend", backend, "--blkio-weight", "500", "busybox", "echo", "ran"])
            #expect(r.status == 125, "\(r.stdout)\(r.stderr)")
            #expect(!r.stdout.contains("ran"))
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "one line: \(r.stderr)")
            let refusal = Self.v1 ? "this host's I/O scheduler offers no weight (no blkio.weight or blkio.bfq.weight)"
                : Self.v2OffersIO ? "this host's I/O scheduler offers no weight (no io.bfq.weight or io.weight)"
                : "the host offers no blkio cgroup controller"
            #expect(r.stderr.contains(refusal), "\(r.stderr)")
            box.expectNothingLeft()
            // And without the flag the same run works (the refusal was the weight's).
            let plain = try box.gocker(["run", "--rm", "--cgroup-backend", backend, "busybox", "echo", "ran"])
            #expect(plain.status == 0 && plain.stdout == "ran\n", "\(plain.stderr)")
            box.expectNothingLeft()
            return
        }
        // A weight file: its value while the container runs.
        let (p, out) = try box.start(["run", "--rm", "--cgroup-backend", backend, "--blkio-weight", "500",
                                      "busybox", "sh", "-c", "echo ready; sleep 30"])
        #expect(box.waitFor { box.contents(out).contains("ready") })
        let state = try #require(box.runningState())
        let path = try #require((state["cgroups"] as? [String: Any])?["path"] as? String)
        let group = Self.v1 ? "/sys/fs/cgroup/blkio/\(path)" : "/sys/fs/cgroup/\(path)"
        let value = box.contents("\(group)/\(file)").trimmingCharacters(in: .whitespacesAndNewlines)
        // io.weight and the bfq files read back as "default N" (the
        // device-specific lines after it); blkio.weight as "N".
        let expected = file == "io.weight" ? "4950" : "500"
        #expect(value == expected || value.hasPrefix("default \(expected)"), "\(file): \(value)")
        let pid = try #require(state["pid"] as? Int)
        kill(pid_t(pid), SIGKILL)
        box.finish(p)
        #expect(!FileManager.default.fileExists(atPath: group))
        box.expectNothingLeft()
    }

    /// A bad weight never gets as far as a group.
    @Test(arguments: ["5", "1001", "x"])
    func badWeightIsOneLineAnd125(value: String) throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--blkio-weight", value, "busybox", "true"])
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("invalid argument \"\(value)\" for --blkio-weight: must be 0 (unset) or 10 to 1000"), "\(r.stderr)")
        box.expectNothingLeft()
    }

    /// OCI `linux.resources.blockIO`: the weight as with the flag; a member
    /// gocker does not model (weightDevice) refused naming it, before
    /// anything is made.
    @Test func ociBlockIOWeightAndAnUnmodeledMember() throws {
        let box = try Sandbox()
        let oci = OCITests()
        let bundle = try oci.makeBundle(box, args: ["true"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        func resources(_ blockIO: [String: Any]) throws {
            try oci.editConfig(bundle) { config in
                var linux = try #require(config["linux"] as? [String: Any])
                linux["resources"] = ["blockIO": blockIO]
                config["linux"] = linux
            }
        }
        try resources(["weight": 500, "weightDevice": [["major": 8, "minor": 0, "weight": 100]]])
        // (The oci verbs fail with 1, as runc does.)
        var r = try box.gocker(["oci", "run", "--bundle", bundle, "b1"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("linux.resources.blockIO.weightDevice is not supported"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")

        try resources(["weight": 500])
        guard let file = try Self.hostWeightFile(box) else {
            r = try box.gocker(["oci", "run", "--bundle", bundle, "b2"])
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.contains("offers no weight") || r.stderr.contains("offers no blkio"), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            return
        }
        // Created, not started: the weight is in its group.
        r = try box.gocker(["oci", "create", "--bundle", bundle, "b2"])
        #expect(r.status == 0, "\(r.stderr)")
        let path = try #require((box.runningState()?["cgroups"] as? [String: Any])?["path"] as? String)
        let group = Self.v1 ? "/sys/fs/cgroup/blkio/\(path)" : "/sys/fs/cgroup/\(path)"
        let value = box.contents("\(group)/\(file)").trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = file == "io.weight" ? "4950" : "500"
        #expect(value == expected || value.hasPrefix("default \(expected)"), "\(file): \(value)")
        #expect(try box.gocker(["oci", "delete", "--force", "b2"]).status == 0)
    }
}
