import Foundation
import Testing

/// Members of config.json that change what the container's first process
/// is and where it lives: namespaces joined by path or not listed, sysctls,
/// oomScoreAdj, the default devices, mounts in their order.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct SpecFieldsTests {
    let oci = OCITests()

    func setNamespaces(_ bundle: String, _ namespaces: [[String: String]]) throws {
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["namespaces"] = namespaces
            c["linux"] = linux
        }
    }

    /// A second bundle beside `bundle`, whose config is `bundle`'s changed
    /// by `change`, its root that of `bundle`.
    func sibling(_ bundle: String, _ name: String, _ change: (inout [String: Any]) throws -> Void) throws -> String {
        let other = bundle + "-" + name
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: bundle + "/config.json", toPath: other + "/config.json")
        try oci.editConfig(other) { c in
            c["root"] = ["path": bundle + "/rootfs"]
            try change(&c)
        }
        return other
    }

    @Test func namespacesJoinedByPathAreTheOtherContainers() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["sleep", "30"])
        defer {
            _ = try? box.gocker(["oci", "delete", "-f", "owner"])
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try setNamespaces(bundle, ["pid", "mount", "uts", "ipc", "network", "cgroup"].map { ["type": $0] })
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "owner"]).status == 0)
        let pid = try #require(try oci.state(box, "owner")["pid"] as? Int)
        let kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup"]
        let types = ["pid": "pid", "mnt": "mount", "uts": "uts", "ipc": "ipc", "net": "network", "cgroup": "cgroup"]
        let joiner = try sibling(bundle, "joiner") { c in
            c["mounts"] = [] as [Any]
            c["hostname"] = "joined"
            var process = c["process"] as? [String: Any] ?? [:]
            process["args"] = ["sh", "-c", "for n in \(kinds.joined(separator: " ")); do readlink /proc/self/ns/$n; done; hostname; echo $$"]
            c["process"] = process
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["namespaces"] = kinds.map { ["type": types[$0]!, "path": "/proc/\(pid)/ns/\($0)"] }
            linux.removeValue(forKey: "rootfsPropagation")
            c["linux"] = linux
        }
        let r = try box.gocker(["oci", "run", "--bundle", joiner, "joiner"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == kinds.count + 2, "\(r.stdout)")
        for (i, kind) in kinds.enumerated() {
            let owners = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")
            #expect(lines[i] == owners, "\(kind): \(lines[i]) vs \(owners)")
        }
        // The UTS namespace joined is the owner's: its hostname changed too.
        #expect(lines[kinds.count] == "joined")
        #expect(lines[kinds.count + 1] != "1", "not the first process of the PID namespace it joined")

        // A path that is not a namespace of that type is refused.
        let wrong = try sibling(bundle, "wrong") { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["namespaces"] = [["type": "mount"], ["type": "uts"], ["type": "network", "path": "/proc/\(pid)/ns/ipc"]]
            c["linux"] = linux
        }
        let w = try box.gocker(["oci", "run", "--bundle", wrong, "wrong"])
        #expect(w.status == 1 && w.stderr.contains("is not a network namespace"), "\(w.stderr)")
        #expect(try box.gocker(["oci", "state", "wrong"]).status != 0)
    }

    /// Without a mount namespace in the list the host's is kept: nothing is
    /// mounted, the root is the bundle's by chroot, and the default devices
    /// are made in it; a config that asks for mounts is refused.
    @Test func noMountNamespaceKeepsTheHostsAndChrootsIntoTheRoot() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["sleep", "30"])
        defer {
            _ = try? box.gocker(["oci", "delete", "-f", "hostmnt"])
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try setNamespaces(bundle, ["pid", "uts", "ipc", "network"].map { ["type": $0] })
        let refused = try box.gocker(["oci", "run", "--bundle", bundle, "hostmnt"])
        #expect(refused.status == 1 && refused.stderr.contains("need a mount namespace of the container's own"),
                "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
        try oci.editConfig(bundle) { c in
            c["mounts"] = [] as [Any]
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux.removeValue(forKey: "rootfsPropagation")
            c["linux"] = linux
        }
        let before = box.hostMountsHere()
        let r = try box.gocker(["oci", "run", "-d", "--bundle", bundle, "hostmnt"])
        #expect(r.status == 0, "\(r.stderr)")
        let pid = try #require(try oci.state(box, "hostmnt")["pid"] as? Int)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
                == FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/root") == bundle + "/rootfs")
        #expect(box.hostMountsHere() == before, "nothing mounted on the host")
        // exec lands in the same chroot, never on the host's root.
        try "in the chroot\n".write(toFile: bundle + "/rootfs/chroot-marker", atomically: true, encoding: .utf8)
        let e = try box.gocker(["oci", "exec", "hostmnt", "cat", "/chroot-marker"])
        #expect(e.status == 0 && e.stdout == "in the chroot\n", "\(e.status) \(e.stderr)")
        var st = stat()
        #expect(stat(bundle + "/rootfs/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR
                && (st.st_rdev >> 8) & 0xfff == 1 && st.st_rdev & 0xff == 3)
    }

    @Test func sysctlsAreWrittenInTheContainersOwnNamespacesOnly() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni",
                                                    "/proc/sys/net/ipv4/conf/lo/forwarding"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let hostForward = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8)
        let hostShmmni = try String(contentsOfFile: "/proc/sys/kernel/shmmni", encoding: .utf8)
        let forward = hostForward == "1\n" ? "0" : "1"
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["sysctl"] = ["net.ipv4.ip_forward": forward, "kernel.shmmni": "1234", "net/ipv4/conf/lo/forwarding": forward]
            c["linux"] = linux
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "sysctl"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(forward)\n1234\n\(forward)\n")
        #expect(try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8) == hostForward)
        #expect(try String(contentsOfFile: "/proc/sys/kernel/shmmni", encoding: .utf8) == hostShmmni)

        // In the host's network namespace (not listed, or joined by the
        // host's path) a net.* sysctl is refused; one of no namespace too.
        for (namespaces, sysctl, why) in [
            ([["type": "mount"], ["type": "uts"], ["type": "ipc"]], ["net.ipv4.ip_forward": "1"],
             "needs a network namespace of the container's own"),
            ([["type": "mount"], ["type": "uts"], ["type": "network", "path": "/proc/self/ns/net"]], ["net.ipv4.ip_forward": "1"],
             "needs a network namespace of the container's own"),
            ([["type": "mount"], ["type": "uts"], ["type": "network"]], ["kernel.shmmax": "1"],
             "needs a ipc namespace of the container's own"),
            ([["type": "mount"], ["type": "uts"], ["type": "network"]], ["net..x": "1"], "is not a sysctl name"),
        ] as [([[String: String]], [String: String], String)] {
            try oci.editConfig(bundle) { c in
                var linux = c["linux"] as? [String: Any] ?? [:]
                linux["namespaces"] = namespaces
                linux["sysctl"] = sysctl
                c["linux"] = linux
            }
            let refused = try box.gocker(["oci", "run", "--bundle", bundle, "sysctl"])
            #expect(refused.status == 1 && refused.stderr.contains(why), "\(refused.stderr)")
            #expect(try box.gocker(["oci", "state", "sysctl"]).status != 0)
        }
        #expect(try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8) == hostForward)
    }

    /// Raised, the score is the first process's; lowered, it needs
    /// CAP_SYS_RESOURCE (which this machine's root may lack): without it
    /// create fails naming the file, with nothing left.
    @Test(arguments: [500, 1000, -500])
    func oomScoreAdjIsTheFirstProcesss(adj: Int) throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["cat", "/proc/self/oom_score_adj"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try oci.editConfig(bundle) { c in
            var process = c["process"] as? [String: Any] ?? [:]
            process["oomScoreAdj"] = adj
            c["process"] = process
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "oom"])
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let effective = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
        if adj >= 0 || effective & (1 << 24) != 0 {
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout == "\(adj)\n")
        } else {
            #expect(r.status == 1 && r.stderr.contains("write oom_score_adj: permission denied"), "\(r.stderr)")
        }
    }

    /// The spec's default devices are there whatever the mounts are: a
    /// bundle that mounts nothing on /dev gets them in its root's /dev.
    @Test func theDefaultDevicesWithoutADevMount() throws {
        let box = try Sandbox()
        let bundle = try oci.makeBundle(box, args: ["sh", "-c",
            "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done; sleep 0 & wait; echo x > /dev/null && echo written"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try oci.editConfig(bundle) { c in
            c["mounts"] = [["destination": "/proc", "type": "proc", "source": "proc"]]
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "devs"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            /dev/null character special file 1:3
            /dev/zero character special file 1:5
            /dev/full character special file 1:7
            /dev/random character special file 1:8
            /dev/urandom character special file 1:9
            /dev/tty character special file 5:0
            written

            """, "\(r.stdout)")
    }

    /// Mounts are made in the config's order: a later one sits on an
    /// earlier one, and a bind may land inside a tmpfs made before it.
    @Test func mountsAreMadeInTheConfigsOrder() throws {
        let box = try Sandbox()
        try "marker\n".write(toFile: box.dir + "/marker", atomically: true, encoding: .utf8)
        let bundle = try oci.makeBundle(box, args: ["sh", "-c",
            "stat -f -c %T /mnt; cat /mnt/in/marker; ls /mnt/in/over; stat -f -c %T /mnt/in/over; grep ' /mnt' /proc/self/mountinfo | cut -d' ' -f1,2,5"],
            extraMounts: """
                , {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"},
                  {"destination": "/mnt/in", "type": "bind", "source": "\(box.dir)", "options": ["rbind", "ro"]},
                  {"destination": "/mnt/in/over", "type": "tmpfs", "source": "tmpfs"}
                """)
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        try FileManager.default.createDirectory(atPath: box.dir + "/over/below", withIntermediateDirectories: true)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "order"])
        #expect(r.status == 0, "\(r.stderr)")
        // /mnt a tmpfs, the bind inside it, and the last tmpfs over the
        // bind's "over" directory (its "below" hidden), mounted last.
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.prefix(3) == ["tmpfs", "marker", "tmpfs"], "\(r.stdout)")
        // Each sits on the one before it (its parent mount).
        var mounts: [String: (id: String, parent: String)] = [:]
        for line in lines.dropFirst(3) {
            let f = line.split(separator: " ").map(String.init)
            if f.count == 3 { mounts[f[2]] = (f[0], f[1]) }
        }
        #expect(mounts["/mnt/in"]?.parent == mounts["/mnt"]?.id && mounts["/mnt"] != nil, "\(r.stdout)")
        #expect(mounts["/mnt/in/over"]?.parent == mounts["/mnt/in"]?.id && mounts["/mnt/in"] != nil, "\(r.stdout)")
    }
}
