import Foundation
import Testing

/// linux.namespaces "user" with uidMappings/gidMappings: the container's
/// root is an unprivileged id range on the host; the maps are written by
/// gocker itself, the root filesystem is usable by the mapped root, and
/// a user namespace can be joined by path.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct UserNamespaceTests {
    let oci = OCITests()
    static let maps: [[String: Int]] = [["containerID": 0, "hostID": 100000, "size": 65536]]

    /// `bundle`'s config given a user namespace of its own with `maps`.
    func giveUserNamespace(_ bundle: String, maps: [[String: Int]] = maps) throws {
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            var namespaces = linux["namespaces"] as? [[String: Any]] ?? []
            namespaces.append(["type": "user"])
            linux["namespaces"] = namespaces
            linux["uidMappings"] = maps
            linux["gidMappings"] = maps
            c["linux"] = linux
        }
    }

    static let probe = "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; stat -c '%u:%g' /bin/busybox; "
        + "touch /made && stat -c '%u:%g' /made; echo x > /dev/null && cat /dev/null && echo devices; "
        + "hostname; cat /proc/self/status | grep -E '^CapEff'"

    func expectMappedRoot(_ out: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines.count == 9, "\(out)", sourceLocation: sourceLocation)
        guard lines.count == 9 else { return }
        #expect(lines[0] == "0 100000 65536" && lines[1] == "0 100000 65536", "\(out)", sourceLocation: sourceLocation)
        #expect(lines[2] == "0" && lines[3] == "0", "root inside: \(out)", sourceLocation: sourceLocation)
        #expect(lines[4] == "0:0", "the image's files are its root's: \(out)", sourceLocation: sourceLocation)
        #expect(lines[5] == "0:0", "what it makes is its root's: \(out)", sourceLocation: sourceLocation)
        #expect(lines[6] == "devices", sourceLocation: sourceLocation)
        #expect(lines[7] == "ocibox", sourceLocation: sourceLocation)
        #expect(lines[8].hasPrefix("CapEff:") && !lines[8].hasSuffix("0000000000000000"), "\(out)", sourceLocation: sourceLocation)
    }

    /// The rootfs belongs to host root, which the maps do not cover: it
    /// is idmapped, so the container's root owns it, and what it writes
    /// lands as host root's on the host.
    @Test func aUserNamespaceOfItsOwnOnARootOwnedRoot() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["sh", "-c", Self.probe + "; sleep 30"])
        defer {
            _ = try? box.gocker(["oci", "delete", "-f", "userns"])
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try giveUserNamespace(bundle)
        let out = box.dir + "/userns.out"
        let r = try box.gocker(["oci", "create", "--bundle", bundle, "userns"])
        #expect(r.status == 0, "\(r.stderr)")
        let pid = try #require(try oci.state(box, "userns")["pid"] as? Int)
        // On the host the container's root is id 100000.
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
        #expect(uid?.split(separator: "\t").dropFirst().allSatisfy { $0 == "100000" } == true, "\(uid ?? "")")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/user")
                != FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user"))
        _ = out
        let start = try box.gocker(["oci", "start", "userns"])
        #expect(start.status == 0, "\(start.stderr)")
        // Its output went to create's stdout, a file here: read /made instead.
        #expect(box.waitFor { FileManager.default.fileExists(atPath: bundle + "/rootfs/made") })
        var st = stat()
        #expect(stat(bundle + "/rootfs/made", &st) == 0 && st.st_uid == 0 && st.st_gid == 0,
                "written back as host root through the idmapped mount: \(st.st_uid)")
    }

    @Test func theProbeSeesAMappedRoot() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["sh", "-c", Self.probe])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try giveUserNamespace(bundle)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "probe"])
        #expect(r.status == 0, "\(r.stderr)")
        expectMappedRoot(r.stdout)

        // A root chowned into the range (as runc expects) is bound as it is.
        #expect(try sh("chown -R 100000:100000 '\(bundle)/rootfs'") == 0)
        try? FileManager.default.removeItem(atPath: bundle + "/rootfs/made")
        let chowned = try box.gocker(["oci", "run", "--bundle", bundle, "probe"])
        #expect(chowned.status == 0, "\(chowned.stderr)")
        expectMappedRoot(chowned.stdout)
        var st = stat()
        #expect(stat(bundle + "/rootfs/made", &st) == 0 && st.st_uid == 100000, "\(st.st_uid)")
    }

    /// A second container joins the first one's user namespace by path,
    /// with mount, UTS, IPC and network namespaces of its own (owned by
    /// that user namespace).
    @Test func aUserNamespaceJoinedByPath() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["sleep", "30"])
        defer {
            _ = try? box.gocker(["oci", "delete", "-f", "owner"])
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try giveUserNamespace(bundle)
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "owner"]).status == 0)
        let pid = try #require(try oci.state(box, "owner")["pid"] as? Int)
        let joiner = bundle + "-joiner"
        try FileManager.default.createDirectory(atPath: joiner, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: bundle + "/config.json", toPath: joiner + "/config.json")
        try oci.editConfig(joiner) { c in
            c["root"] = ["path": bundle + "/rootfs"]
            var process = c["process"] as? [String: Any] ?? [:]
            process["args"] = ["sh", "-c", "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u; hostname"]
            c["process"] = process
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["namespaces"] = [["type": "user", "path": "/proc/\(pid)/ns/user"], ["type": "mount"], ["type": "uts"],
                                   ["type": "ipc"], ["type": "network"], ["type": "pid", "path": "/proc/\(pid)/ns/pid"]]
            linux.removeValue(forKey: "uidMappings")
            linux.removeValue(forKey: "gidMappings")
            c["linux"] = linux
        }
        let r = try box.gocker(["oci", "run", "--bundle", joiner, "joiner"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines.first == (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/user")), "\(r.stdout)")
        #expect(lines.dropFirst().first == "0 100000 65536" && lines.dropFirst(2).first == "0" && lines.last == "ocibox",
                "\(r.stdout)")
    }

    /// In a user namespace the devices are the host's nodes, bound: only
    /// a node of the type and number the config gives.
    @Test func aDeviceThatIsNotTheHostsNodeIsRefused() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["true"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try giveUserNamespace(bundle)
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["devices"] = [["path": "/etc/hostname", "type": "c", "major": 1, "minor": 3]]
            c["linux"] = linux
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "notanode"])
        #expect(r.status == 1 && r.stderr.contains("the host's node is not the device at /etc/hostname"), "\(r.stderr)")
        #expect(try box.gocker(["oci", "state", "notanode"]).status != 0)
    }

    @Test(arguments: [
        ([["type": "mount"]], maps, "need a user namespace in linux.namespaces"),
        ([["type": "mount"], ["type": "user"]], [] as [[String: Int]], "needs linux.uidMappings"),
        ([["type": "mount"], ["type": "user"]], [["containerID": 1, "hostID": 100000, "size": 10]],
         "must map the container's root"),
        ([["type": "mount"], ["type": "user"]], [["containerID": 0, "hostID": 100000, "size": 10],
                                                 ["containerID": 5, "hostID": 200000, "size": 10]], "ranges overlap"),
        ([["type": "mount"], ["type": "user"]], [["containerID": 0, "hostID": 100000, "size": 0]], "is empty"),
        ([["type": "user"]], maps, "a user namespace needs a mount namespace of the container's own"),
        ([["type": "mount"], ["type": "user", "path": "/proc/self/ns/user"], ["type": "pid"]], [] as [[String: Int]],
         "a PID namespace of the container's own with a user namespace joined by path"),
        ([["type": "mount"], ["type": "user"], ["type": "network", "path": "/proc/self/ns/net"]], maps,
         "namespaces joined by path with a user namespace of the container's own"),
    ] as [([[String: String]], [[String: Int]], String)])
    func badMapsAreRefusedWithNothingLeft(namespaces: [[String: String]], maps: [[String: Int]], why: String) throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["true"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["namespaces"] = namespaces
            linux["uidMappings"] = maps
            linux["gidMappings"] = maps
            linux.removeValue(forKey: "rootfsPropagation")
            c["linux"] = linux
            c.removeValue(forKey: "hostname")
            if !namespaces.contains(where: { $0["type"] == "mount" }) { c["mounts"] = [] as [Any] }
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "badmaps"])
        #expect(r.status == 1 && r.stderr.contains(why), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try box.gocker(["oci", "state", "badmaps"]).status != 0)
    }
}
