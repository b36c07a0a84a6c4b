import Foundation
import Testing

/// Where a mount lands once the image's symlinks are followed inside the
/// container's root: never into /proc (but proc itself and runc's
/// allow-list), never a bind into /sys, never onto the root itself; a
/// dangling symlink's target is made inside the root. Every refusal is one
/// line on stderr, exit 125, and nothing left behind.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct MountTargetTests {
    /// The busybox layer with `extra` (a shell script run in a copy of it)
    /// applied: as a directory in the sandbox, and imported as `name`.
    @discardableResult
    func craft(_ box: Sandbox, name: String, extra: String) throws -> String {
        if box.list(box.dataRoot + "/image/layers").isEmpty {
            let r = try box.gocker(["run", "--rm", "busybox", "true"])
            try #require(r.status == 0, "\(r.stderr)")
        }
        let layers = box.dataRoot + "/image/layers"
        let busybox = try #require(box.list(layers).first { FileManager.default.fileExists(atPath: "\(layers)/\($0)/bin/busybox") })
        let root = box.dir + "/root-\(name.replacingOccurrences(of: ":", with: "-"))"
        try #require(try sh("mkdir '\(root)' && cp -a '\(layers)/\(busybox)/.' '\(root)/' && cd '\(root)' && \(extra)") == 0)
        try #require(try sh("tar -C '\(root)' -cf '\(root).tar' .") == 0)
        let i = try box.gocker(["import", root + ".tar", name])
        try #require(i.status == 0, "\(i.stderr)")
        return name
    }

    /// A refusal: exit 125, exactly one line, which holds `message`.
    func expectRefused(_ r: Sandbox.Result, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 125, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.hasSuffix("\n"), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(message), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func imageSymlinksCannotPutTheHostsFileOverProcFiles() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        // Before: the hosts file was bound over the container's
        // /proc/1/attr/exec, and over /proc/sys/kernel/core_pattern.
        let attr = try craft(box, name: "attr:1", extra: "rm -f etc/hosts && ln -s /proc/self/attr/exec etc/hosts")
        let core = try craft(box, name: "core:1", extra: "rm -f etc/hosts && ln -s /proc/sys/kernel/core_pattern etc/hosts")
        for flags in [["--rm"], [], ["-d"]] {
            let a = try box.gocker(["run"] + flags + [attr, "sh", "-c", "grep ' /proc/1/attr/exec ' /proc/self/mountinfo"])
            expectRefused(a, "mount /etc/hosts: target resolves into /proc (/etc/hosts -> /proc/self/attr/exec)")
            let c = try box.gocker(["run"] + flags + [core, "sh", "-c", "grep core_pattern /proc/self/mountinfo"])
            expectRefused(c, "mount /etc/hosts: target resolves into /proc (/etc/hosts -> /proc/sys/kernel/core_pattern)")
        }
        #expect(!box.contents("/proc/sys/kernel/core_pattern").contains("localhost"))
        // The same in an OCI bundle, whose mounts gocker does not order.
        let bundle = box.dir + "/bundle"
        try #require(try sh("mkdir -p '\(bundle)' && cp -a '\(box.dir)/root-attr-1' '\(bundle)/rootfs' && echo x > '\(box.dir)/hosts'") == 0)
        try """
            {"ociVersion": "1.0.2",
             "process": {"user": {"uid": 0, "gid": 0}, "args": ["true"], "env": ["PATH=/bin"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                        {"destination": "/etc/hosts", "type": "bind", "source": "\(box.dir)/hosts", "options": ["bind"]}],
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}}
            """.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let oci = try box.gocker(["oci", "run", "--bundle", bundle, "oci-attr"])
        #expect(oci.status == 1 && oci.stderr.split(separator: "\n").count == 1, "\(oci.stderr)")
        #expect(oci.stderr.contains("mount /etc/hosts: target resolves into /proc (/etc/hosts -> /proc/self/attr/exec)"), "\(oci.stderr)")
    }

    @Test func procAndSysTargetsAreRefusedBeforeAnythingIsMade() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let src = box.dir + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let cases: [([String], String)] = [
            // Before: "exited before it could start", and accepted.
            (["-v", "\(src):/proc"], "mount /proc: only a proc filesystem can be mounted on /proc"),
            (["-v", "\(src):/proc/sys"], "mount /proc/sys: target resolves into /proc"),
            (["-v", "vol:/proc/sys"], "mount /proc/sys: target resolves into /proc"),
            (["--mount", "type=bind,src=\(src),dst=/proc/sys/kernel"], "mount /proc/sys/kernel: target resolves into /proc"),
            (["--tmpfs", "/proc"], "mount /proc: only a proc filesystem can be mounted on /proc"),
            (["--tmpfs", "/proc/x"], "mount /proc/x: target resolves into /proc"),
            (["-v", "\(src):/sys/kernel"], "mount /sys/kernel: target resolves into /sys"),
            (["-v", "\(src):/proc/../proc/sys"], "mount /proc/sys: target resolves into /proc"),
        ]
        for (flags, message) in cases {
            for detach in [[], ["-d"]] {
                let r = try box.gocker(["run"] + detach + flags + ["busybox", "true"])
                #expect(r.stderr == "gocker: error: \(message)\n", "\(flags)")
                #expect(r.status == 125, "\(flags)")
            }
        }
        #expect(box.list(box.dataRoot + "/volumes").filter { !$0.hasPrefix(".") } == [])
        #expect(box.list(src) == [])
    }

    @Test func runcsAllowListBindsOverProcFiles() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let file = box.dir + "/uptime"
        try "12345.67 89.10\n".write(toFile: file, atomically: true, encoding: .utf8)
        let r = try box.gocker(["run", "--rm", "-v", "\(file):/proc/uptime:ro", "busybox", "sh", "-c",
                                "cat /proc/uptime; grep -c ' /proc/uptime ' /proc/self/mountinfo"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "12345.67 89.10\n1\n")
        // The masked and read-only paths of /proc still are.
        let masks = try box.gocker(["run", "--rm", "busybox", "sh", "-c",
                                    "grep -c ' /proc/sys ro,' /proc/self/mountinfo; wc -c < /proc/timer_list; echo x > /proc/sys/kernel/domainname"])
        #expect(masks.stdout.hasPrefix("1\n0\n"), "\(masks.stdout) \(masks.stderr)")
        #expect(masks.status != 0 && masks.stderr.contains("Read-only file system"), "\(masks.stderr)")
    }

    @Test func aTargetThatResolvesToTheRootIsAnError() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let src = box.dir + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try "h\n".write(toFile: src + "/f", atomically: true, encoding: .utf8)
        // Before: exit 0 and /h not visible anywhere.
        let image = try craft(box, name: "roots:1", extra: "ln -s / data && ln -s . dot && mkdir d && ln -s .. d/up")
        for (target, link) in [("/data", "/data -> /"), ("/dot", "/dot -> ."), ("/d/up", "/d/up -> ..")] {
            let r = try box.gocker(["run", "--rm", "-v", "\(src):\(target)", image, "cat", "/f"])
            expectRefused(r, "mount \(target): target resolves to the container's root (\(link))")
            #expect(r.stdout == "")
        }
        let volume = try box.gocker(["run", "--rm", "-v", "anon:/data", image, "true"])
        expectRefused(volume, "mount /data: target resolves to the container's root (/data -> /)")
        _ = try box.gocker(["volume", "prune", "-a", "-f"])
    }

    @Test func aDanglingImageSymlinkLeadsToATargetMadeInsideTheRoot() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let tag = UUID().uuidString.prefix(8).lowercased()
        let src = box.dir + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try "h-\(tag)\n".write(toFile: src + "/f", atomically: true, encoding: .utf8)
        let image = try craft(box, name: "dangling:1", extra: """
            ln -s /tmp/newsub-\(tag) data && mkdir deep && ln -s ../tmp/rel-\(tag)/a deep/up && \
            ln -s /sys/firmware fw && ln -s /proc/self/cwd magic && ln -s /loop loop
            """)
        // Before: "create mount point /data: no such file or directory".
        let bind = try box.gocker(["run", "--rm", "-v", "\(src):/data", image, "sh", "-c",
                                   "cat /tmp/newsub-\(tag)/f; grep -c ' /tmp/newsub-\(tag) ' /proc/self/mountinfo"])
        #expect(bind.status == 0, "\(bind.stderr)")
        #expect(bind.stdout == "h-\(tag)\n1\n")
        let rel = try box.gocker(["run", "--rm", "-v", "\(src):/deep/up/in", image, "cat", "/tmp/rel-\(tag)/a/in/f"])
        #expect(rel.status == 0 && rel.stdout == "h-\(tag)\n", "\(rel.stderr)")
        let workdir = try box.gocker(["run", "--rm", "-w", "/data/w", image, "pwd"])
        #expect(workdir.status == 0 && workdir.stdout == "/tmp/newsub-\(tag)/w\n", "\(workdir.stderr)")
        let tmpfs = try box.gocker(["run", "--rm", "--tmpfs", "/data", image, "grep", "-c", " /tmp/newsub-\(tag) tmpfs", "/proc/mounts"])
        #expect(tmpfs.status == 0 && tmpfs.stdout == "1\n", "\(tmpfs.stderr)")
        let device = try box.gocker(["run", "--rm", "--device", "/dev/null:/data/n", image, "sh", "-c",
                                     "test -c /tmp/newsub-\(tag)/n && echo char"])
        #expect(device.status == 0 && device.stdout == "char\n", "\(device.stderr)")
        // Made in the container's root, never on the host.
        #expect(!FileManager.default.fileExists(atPath: "/tmp/newsub-\(tag)"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/rel-\(tag)"))

        // What still fails names the symlinks it went through.
        expectRefused(try box.gocker(["run", "--rm", "--tmpfs", "/fw/x", image, "true"]),
                      "create mount point /fw/x (/fw -> /sys/firmware): read-only file system")
        expectRefused(try box.gocker(["run", "--rm", "-v", "\(src):/fw", image, "true"]),
                      "mount /fw: target resolves into /sys (/fw -> /sys/firmware)")
        expectRefused(try box.gocker(["run", "--rm", "-v", "\(src):/magic", image, "true"]),
                      "mount /magic: target resolves into /proc (/magic -> /proc/self/cwd)")
        expectRefused(try box.gocker(["run", "--rm", "-w", "/magic/x", image, "true"]),
                      "working directory /magic/x (/magic -> /proc/self/cwd): too many levels of symbolic links")
        expectRefused(try box.gocker(["run", "--rm", "-v", "\(src):/loop", image, "true"]),
                      "create mount point /loop (/loop -> /loop, /loop -> /loop")
        #expect(try box.gocker(["run", "--rm", "-v", "\(src):/loop", image, "true"]).stderr.hasSuffix("too many levels of symbolic links\n"))
    }

    /// A relative link that climbs above the root, as real images carry
    /// them: imported as written; in the container it stops at the
    /// container's root, also for a mount made through it.
    @Test func aClimbingImageSymlinkStaysInsideTheRoot() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let tag = UUID().uuidString.prefix(8).lowercased()
        let src = box.dir + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try "c-\(tag)\n".write(toFile: src + "/f", atomically: true, encoding: .utf8)
        // Before: "symlink target climbs above the layer's root".
        let image = try craft(box, name: "climbing:1", extra: """
            mkdir -p var/lib tmp/in-\(tag) && echo inside > tmp/in-\(tag)/which && \
            ln -s ../../../../../../tmp/in-\(tag) var/lib/data2
            """)
        let r = try box.gocker(["run", "--rm", image, "sh", "-c", "readlink /var/lib/data2; cat /var/lib/data2/which"])
        #expect(r.status == 0 && r.stdout == "../../../../../../tmp/in-\(tag)\ninside\n", "\(r.stderr)")
        let bind = try box.gocker(["run", "--rm", "-v", "\(src):/var/lib/data2/v", image, "cat", "/tmp/in-\(tag)/v/f"])
        #expect(bind.status == 0 && bind.stdout == "c-\(tag)\n", "\(bind.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/in-\(tag)"))
    }

    @Test func anOCIMountDestinationMustBeAbsolute() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        try craft(box, name: "plain:1", extra: "true")
        let bundle = box.dir + "/bundle"
        try #require(try sh("mkdir -p '\(bundle)' && cp -a '\(box.dir)/root-plain-1' '\(bundle)/rootfs'") == 0)
        func config(_ destination: String, type: String = "tmpfs") -> String {
            """
            {"ociVersion": "1.0.2",
             "process": {"user": {"uid": 0, "gid": 0}, "args": ["true"], "env": ["PATH=/bin"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                        {"destination": "\(destination)", "type": "\(type)", "source": "\(type)"}],
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}}
            """
        }
        // Before: taken as "/data".
        for (destination, type, message) in [
            ("data", "tmpfs", "mount destination \"data\" is not absolute"),
            ("proc", "proc", "mount destination \"proc\" is not absolute"),
            ("/proc/sys", "tmpfs", "mount /proc/sys: target resolves into /proc"),
            ("/", "tmpfs", "mount /: target resolves to the container's root"),
        ] {
            try config(destination, type: type).write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
            let r = try box.gocker(["oci", "run", "--bundle", bundle, "rel"])
            #expect(r.status == 1, "\(destination): \(r.stderr)")
            #expect(r.stderr == "gocker: error: \(message)\n", "\(destination)")
        }
        #expect(!FileManager.default.fileExists(atPath: bundle + "/rootfs/data"))
        try config("/data").write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let ok = try box.gocker(["oci", "run", "--bundle", bundle, "abs"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}
