import Foundation
import Testing

/// Volumes and mounts: named, anonymous, binds, tmpfs, --volumes-from, the
/// volume commands, and targets that stay inside the container's root.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct VolumeTests {
    func volumeNames(_ box: Sandbox) -> [String] { box.list(box.dataRoot + "/volumes").filter { !$0.hasPrefix(".") } }

    /// An image made with `gocker import` from the busybox layer plus
    /// `extra` (a shell script run in the copied root).
    func importImage(_ box: Sandbox, name: String, extra: String) throws -> String {
        let r = try box.gocker(["run", "--rm", "busybox", "true"])
        try #require(r.status == 0, "\(r.stderr)")
        let layers = box.list(box.dataRoot + "/image/layers")
        let root = box.dir + "/root-\(name)"
        try #require(try sh("mkdir '\(root)' && cp -a '\(box.dataRoot)/image/layers/\(layers[0])/.' '\(root)/' && cd '\(root)' && \(extra) && tar -C '\(root)' -cf '\(root).tar' .") == 0)
        let i = try box.gocker(["import", root + ".tar", name])
        try #require(i.status == 0, "\(i.stderr)")
        return name
    }

    @Test func namedVolumeIsSeededFromTheImageAndKeepsDataForTheNextContainer() throws {
        let box = try Sandbox()
        let image = try importImage(box, name: "seed:1", extra: "mkdir data && echo from-image > data/seed && chown -R 1000:1001 data && chmod 0750 data")
        let first = try box.gocker(["run", "--rm", "-v", "store:/data", image, "sh", "-c", "cat /data/seed; rm /data/seed; echo kept > /data/f"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == "from-image\n")
        // The volume took the owner and mode of the image's directory.
        let path = box.dataRoot + "/volumes/store/_data"
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.ownerAccountID] as? NSNumber)?.intValue == 1000)
        #expect((attrs[.groupOwnerAccountID] as? NSNumber)?.intValue == 1001)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o750)

        // The next container reads what the first wrote; a volume with content is not seeded again.
        let second = try box.gocker(["run", "--rm", "-v", "store:/data", image, "sh", "-c", "cat /data/f; ls /data"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout == "kept\nf\n")

        let ls = try box.gocker(["volume", "ls"])
        #expect(ls.stdout == "DRIVER    VOLUME NAME\nlocal     store\n")
        let inspect = try box.gocker(["volume", "inspect", "store"])
        #expect(inspect.stdout.contains("\"Mountpoint\": \"\(path)\""), "\(inspect.stdout)")
        #expect(try box.gocker(["volume", "rm", "store"]).stdout == "store\n")
        #expect(volumeNames(box) == [])
        box.expectNothingLeft()
    }

    @Test func readOnlyIsReadOnlyAlsoBelowTheSourceWhereAsked() throws {
        let box = try Sandbox()
        let src = box.dir + "/src"
        try #require(try sh("mkdir -p '\(src)/sub' && echo top > '\(src)/top' && mount -t tmpfs -o size=1m gocker-test '\(src)/sub'") == 0)
        defer { _ = umount2(src + "/sub", Int32(MNT_DETACH)) }

        let ro = try box.gocker(["run", "--rm", "-v", "\(src):/data:ro", "busybox", "sh", "-c",
                                 "cat /data/top; touch /data/x 2>&1; touch /data/sub/x 2>&1; true"])
        #expect(ro.status == 0, "\(ro.stderr)")
        #expect(ro.stdout == "top\ntouch: /data/x: Read-only file system\ntouch: /data/sub/x: Read-only file system\n")

        let writable = try box.gocker(["run", "--rm", "--mount", "type=bind,src=\(src),dst=/data,readonly,bind-recursive=writable",
                                       "busybox", "sh", "-c", "touch /data/x 2>&1; touch /data/sub/x && echo sub-written"])
        #expect(writable.stdout == "touch: /data/x: Read-only file system\nsub-written\n", "\(writable.stderr)")
        #expect(FileManager.default.fileExists(atPath: src + "/sub/x"))
        #expect(!FileManager.default.fileExists(atPath: src + "/x"))

        let volume = try box.gocker(["run", "--rm", "-v", "ro-vol:/v:ro", "busybox", "sh", "-c", "echo x > /v/f"])
        #expect(volume.status != 0 && volume.stderr.contains("Read-only file system"))
        #expect(box.list(box.dataRoot + "/volumes/ro-vol/_data") == [])
        _ = try box.gocker(["volume", "rm", "ro-vol"])
        _ = umount2(src + "/sub", Int32(MNT_DETACH))
        box.expectNothingLeft()
    }

    @Test func tmpfsSizeIsEnforcedAndItIsNoexec() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,dst=/other,tmpfs-size=512k,tmpfs-mode=700",
                                "busybox", "sh", "-c",
                                """
                                df -k /scratch /other | tail -n 2 | awk '{print $2}'; stat -c %a /other
                                dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>&1 | grep -o 'No space left on device'
                                cp /bin/busybox /other/bb; /other/bb true || echo noexec
                                """])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "1024\n512\n700\nNo space left on device\nnoexec\n", "\(r.stdout)")
        box.expectNothingLeft()
    }

    @Test func volumesFromSharesVolumesAndBinds() throws {
        let box = try Sandbox()
        let host = box.dir + "/hostdir"
        let create = try box.gocker(["create", "--name", "holder", "-v", "/shared", "-v", "\(host):/hb", "busybox", "true"])
        #expect(create.status == 0, "\(create.stderr)")
        #expect(FileManager.default.fileExists(atPath: host), "-v makes a missing host directory")
        let write = try box.gocker(["run", "--rm", "--volumes-from", "holder", "busybox", "sh", "-c", "echo shared > /shared/x; echo bound > /hb/y"])
        #expect(write.status == 0, "\(write.stderr)")
        #expect(box.contents(host + "/y") == "bound\n")
        let read = try box.gocker(["run", "--rm", "--volumes-from", "holder:ro", "busybox", "sh", "-c", "cat /shared/x /hb/y; touch /shared/z"])
        #expect(read.stdout == "shared\nbound\n")
        #expect(read.status == 1 && read.stderr.contains("Read-only file system"))
        #expect(volumeNames(box).count == 1, "one anonymous volume, shared")
        let rm = try box.gocker(["rm", "-v", "holder"])
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(volumeNames(box) == [])
        box.expectNothingLeft()
    }

    @Test func aVolumeInUseIsKeptAndRmVRemovesAnonymousVolumes() throws {
        let box = try Sandbox()
        let c = try box.gocker(["create", "--name", "user", "-v", "keep:/k", "-v", "/anon", "busybox", "true"])
        #expect(c.status == 0, "\(c.stderr)")
        let id = c.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let anon = try #require(volumeNames(box).first { $0 != "keep" })
        #expect(anon.count == 64)

        for name in ["keep", anon] {
            let rm = try box.gocker(["volume", "rm", name])
            #expect(rm.status == 1)
            #expect(rm.stderr == "gocker: error: remove \(name): volume is in use - [\(id)]\n")
        }
        #expect(try box.gocker(["volume", "ls", "-q", "--filter", "dangling=false"]).stdout == ([anon, "keep"].sorted().joined(separator: "\n") + "\n"))
        #expect(try box.gocker(["volume", "prune", "-f", "-a"]).stdout == "Total reclaimed space: 0B\n")

        #expect(try box.gocker(["rm", "-v", "user"]).status == 0)
        #expect(volumeNames(box) == ["keep"], "rm -v removes the anonymous volume only")
        #expect(try box.gocker(["volume", "rm", "keep"]).status == 0)

        // run --rm takes its anonymous volumes along; rm without -v leaves them to prune.
        #expect(try box.gocker(["run", "--rm", "-v", "/a1", "busybox", "true"]).status == 0)
        #expect(volumeNames(box) == [])
        #expect(try box.gocker(["run", "--name", "left", "-v", "/a2", "-v", "named:/n", "busybox", "sh", "-c", "echo 12345 > /a2/f"]).status == 0)
        #expect(try box.gocker(["rm", "left"]).status == 0)
        let anon2 = try #require(volumeNames(box).first { $0 != "named" })
        let prune = try box.gocker(["volume", "prune", "-f"])
        #expect(prune.stdout == "Deleted Volumes:\n\(anon2)\n\nTotal reclaimed space: 6B\n")
        #expect(volumeNames(box) == ["named"])
        #expect(try box.gocker(["volume", "prune", "-f", "--all"]).stdout.contains("named\n"))
        #expect(volumeNames(box) == [])
        box.expectNothingLeft()
    }

    @Test func symlinksInTheImageCannotSendAMountOutsideTheContainer() throws {
        let box = try Sandbox()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let image = try importImage(box, name: "links:1", extra: "ln -s /etc data && ln -s /proc/self/cwd magic && mkdir -p deep/a")
        // A link that climbs far above the root; import refuses such links,
        // so it is planted in the layer, as another image source could hold it.
        let layer = try #require(box.list(box.dataRoot + "/image/layers").first { name in
            FileManager.default.fileExists(atPath: box.dataRoot + "/image/layers/\(name)/magic")
                || (try? FileManager.default.destinationOfSymbolicLink(atPath: box.dataRoot + "/image/layers/\(name)/magic")) != nil
        })
        try FileManager.default.createSymbolicLink(atPath: box.dataRoot + "/image/layers/\(layer)/deep/a/up",
                                                   withDestinationPath: "../../../../tmp")
        let src = box.dir + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try "host-\(tag)\n".write(toFile: src + "/marker-\(tag)", atomically: true, encoding: .utf8)
        // A file only the host's /tmp holds: the container's /tmp must not show it.
        let sentinel = "/tmp/gocker-sentinel-\(tag)"
        try "host\n".write(toFile: sentinel, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: sentinel) }
        func hostMountsOnEtcAndTmp() -> [String] {
            box.contents("/proc/self/mountinfo").split(separator: "\n").compactMap { line in
                let f = line.split(separator: " ")
                return f.count > 4 && (f[4] == "/etc" || f[4] == "/tmp" || f[4].hasSuffix(tag)) ? String(line) : nil
            }
        }
        let mountsBefore = hostMountsOnEtcAndTmp()

        let etc = try box.gocker(["run", "--rm", "-v", "\(src):/data", image, "sh", "-c", "cat /etc/marker-\(tag); readlink /data"])
        #expect(etc.status == 0, "\(etc.stderr)")
        #expect(etc.stdout == "host-\(tag)\n/etc\n", "the bind covers the container's /etc")

        let tmp = try box.gocker(["run", "--rm", "-v", "\(src):/deep/a/up/new-\(tag)", "--tmpfs", "/deep/a/up/t-\(tag)", image,
                                  "sh", "-c", "cat /tmp/new-\(tag)/marker-\(tag); grep -c ' /tmp/t-\(tag) tmpfs' /proc/mounts; ls /tmp"])
        #expect(tmp.status == 0, "\(tmp.stderr)")
        #expect(tmp.stdout == "host-\(tag)\n1\nnew-\(tag)\nt-\(tag)\n", "made and mounted in the container's own /tmp")

        let magic = try box.gocker(["run", "--rm", "-v", "\(src):/magic", image, "true"])
        #expect(magic.status == 125)
        #expect(magic.stderr.contains("mount /magic: target resolves into /proc (/magic -> /proc/self/cwd)"), "\(magic.stderr)")
        // The anonymous volume made for a container that could not start goes with it.
        for detach in [[], ["-d"]] {
            let r = try box.gocker(["run"] + detach + ["-v", "/magic", image, "true"])
            #expect(r.status == 125 && r.stderr.contains("mount /magic: target resolves into /proc"), "\(r.stderr)")
            #expect(volumeNames(box) == [], "\(detach)")
        }

        // Nothing was made in, or mounted on, the host's /etc and /tmp.
        for path in ["/etc/marker-\(tag)", "/tmp/new-\(tag)", "/tmp/t-\(tag)", "/tmp/marker-\(tag)"] {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path)")
        }
        #expect(hostMountsOnEtcAndTmp() == mountsBefore)
        #expect(box.contents(sentinel) == "host\n")
        // What was made was made in the source bound over the container's
        // /etc: the mount points of /etc/hostname, /etc/hosts and
        // /etc/resolv.conf, as docker makes them there.
        #expect(box.list(src) == ["hostname", "hosts", "marker-\(tag)", "resolv.conf"])
        box.expectNothingLeft()
    }

    @Test func anOCIBundlesMountsAlsoStayInsideItsRoot() throws {
        let box = try Sandbox()
        let tag = UUID().uuidString.prefix(8).lowercased()
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let layer = try #require(box.list(box.dataRoot + "/image/layers").first)
        let bundle = box.dir + "/bundle", src = box.dir + "/src"
        try #require(try sh("""
            mkdir -p '\(bundle)' '\(src)' && cp -a '\(box.dataRoot)/image/layers/\(layer)' '\(bundle)/rootfs' && \
            ln -s ../../../../../../tmp '\(bundle)/rootfs/up' && ln -s /etc '\(bundle)/rootfs/conf' && echo oci > '\(src)/m'
            """) == 0)
        let config = """
            {"ociVersion": "1.0.2",
             "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "cat /tmp/in-\(tag)/m; grep -c ' /etc tmpfs' /proc/mounts"],
                         "env": ["PATH=/bin"], "cwd": "/"},
             "root": {"path": "rootfs"},
             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                        {"destination": "/up/in-\(tag)", "type": "bind", "source": "\(src)", "options": ["rbind", "ro"]},
                        {"destination": "/conf", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}],
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}}
            """
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "oci-\(tag)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "oci\n1\n")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/in-\(tag)"))
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/tmp/in-\(tag)"))
        #expect(box.hostMountsHere() == [])
        #expect(box.stateLeft() == [])
    }

    @Test func badMountsAreRefusedBeforeAnythingIsMade() throws {
        let box = try Sandbox()
        let missing = box.dir + "/no-such-dir"
        let cases: [([String], String)] = [
            (["-v", "./rel:/x"], "gocker: error: \"./rel\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path\n"),
            (["-v", "/srv/../etc:/x"], "gocker: error: invalid host path \"/srv/../etc\": it must not contain \"..\"\n"),
            (["--mount", "type=bind,src=\(missing),dst=/x"], "gocker: error: invalid mount config for type \"bind\": bind source path does not exist: \(missing)\n"),
            (["-v", "v1:/x", "--tmpfs", "/x"], "gocker: error: Duplicate mount point: /x\n"),
            (["--volumes-from", "nosuch"], "gocker: error: No such container: nosuch\n"),
            (["--tmpfs", "/t:size=huge"], "gocker: error: invalid argument \"huge\" for --tmpfs size: invalid size\n"),
            (["-v", "/a:/"], "gocker: error: invalid mount path '/' in '/a:/': destination can't be '/'\n"),
        ]
        for (flags, message) in cases {
            let r = try box.gocker(["run", "--rm"] + flags + ["busybox", "true"])
            #expect(r.status == 125, "\(flags)")
            #expect(r.stderr == message, "\(flags)")
        }
        // Checks done, nothing is made for a run that fails on its image.
        let noImage = try box.gocker(["run", "--rm", "--pull", "never", "-v", "\(missing):/x", "-v", "fresh:/y", "-v", "/z",
                                      "no-such-image", "true"])
        #expect(noImage.status == 125 && noImage.stderr.split(separator: "\n").count == 1, "\(noImage.stderr)")
        #expect(!FileManager.default.fileExists(atPath: missing))
        #expect(volumeNames(box) == [])
        #expect(try box.gocker(["volume", "create", "x/y"]).status == 125)
        let inspect = try box.gocker(["volume", "inspect", "nosuch"])
        #expect(inspect.status == 1 && inspect.stderr == "gocker: error: get nosuch: no such volume\n")
        #expect(try box.gocker(["volume", "rm", "nosuch"]).status == 1)
        #expect(try box.gocker(["volume", "rm", "-f", "nosuch"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func seedingCopiesOnlyTheImagesOwnFiles() throws {
        let box = try Sandbox()
        defer {
            _ = try? box.gocker(["volume", "prune", "-a", "-f"])
            box.expectNothingLeft()
        }
        // A symlink in the image to the container's /dev/pts, mounted
        // before (its ptmx must not be copied). /proc and /sys are refused
        // as targets (MountTargetTests).
        let image = try importImage(box, name: "links:1", extra: "ln -s /dev/pts data")
        let r = try box.gocker(["run", "--rm", "-v", "pts:/data", image, "true"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(box.list(box.dataRoot + "/volumes/pts/_data") == [], "nothing of devpts in the volume")
    }

    @Test func theDataRootIsRootsAloneAndOneNewVolumeIsSeededOnce() throws {
        let box = try Sandbox()
        defer {
            _ = try? box.gocker(["volume", "prune", "-a", "-f"])
            box.expectNothingLeft()
        }
        // Setuid files in layers and volumes are out of other users' reach:
        // what an older gocker left open is closed; a data root gocker
        // makes is root's alone, one that exists keeps its mode.
        func mode(_ path: String) throws -> Int? {
            (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        }
        for sub in ["", "/image", "/containers", "/volumes"] {
            try FileManager.default.createDirectory(atPath: box.dataRoot + sub, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        }
        #expect(try box.gocker(["volume", "ls"]).status == 0)
        #expect(try mode(box.dataRoot) == 0o755)
        for sub in ["/image", "/containers", "/volumes"] { #expect(try mode(box.dataRoot + sub) == 0o700, "\(sub)") }
        let fresh = box.dir + "/fresh-root"
        #expect(try box.gocker(["volume", "ls", "--data-root", fresh]).status == 0)
        #expect(try mode(fresh) == 0o700)
        // Two containers start at once with the same new volume over /bin:
        // both run, and the volume holds the image's /bin once, whole.
        let starts = try (0..<2).map { _ in try box.start(["run", "--rm", "-v", "shared-bin:/bin", "busybox", "true"]) }
        for (p, out) in starts {
            box.finish(p)
            #expect(p.terminationStatus == 0, "\(box.contents(out + ".err"))")
        }
        let seeded = box.list(box.dataRoot + "/volumes/shared-bin/_data")
        #expect(seeded.contains("busybox") && seeded.contains("sh") && seeded.contains("true"), "\(seeded)")
    }

    @Test func rslaveKeepsReceivingTheHostsMounts() throws {
        let box = try Sandbox()
        let src = box.dir + "/shared-src"
        try FileManager.default.createDirectory(atPath: src + "/sub", withIntermediateDirectories: true)
        #expect(try sh("mount --bind '\(src)' '\(src)' && mount --make-shared '\(src)'") == 0)
        defer {
            _ = try? box.gocker(["rm", "-f", "prop"])
            _ = try? sh("umount '\(src)/sub' 2>/dev/null; umount '\(src)'")
            box.expectNothingLeft()
        }
        let run = try box.gocker(["run", "-d", "--name", "prop", "-v", "\(src):/data:rslave", "busybox", "sleep", "60"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try sh("mount -t tmpfs gocker-test '\(src)/sub'") == 0)
        let seen = try box.gocker(["exec", "prop", "sh", "-c", "grep -c ' /data/sub ' /proc/self/mountinfo"])
        #expect(seen.stdout == "1\n", "the host's new mount shows inside: \(seen.stdout)\(seen.stderr)")
        // ...and nothing the container mounts reaches the host.
        _ = try box.gocker(["exec", "--privileged", "prop", "sh", "-c", "mkdir -p /data/sub/in && mount -t tmpfs t /data/sub/in"])
        #expect(!box.contents("/proc/self/mountinfo").contains("\(src)/sub/in"))
    }

    @Test func oneVolumeTwiceAndAFailedCreateThatNamedItsContainer() throws {
        let box = try Sandbox()
        defer {
            _ = try? box.gocker(["volume", "prune", "-a", "-f"])
            box.expectNothingLeft()
        }
        // The same new volume at two places of one container: seeded once, no wait on itself.
        let (p, out) = try box.start(["run", "--rm", "-v", "twice:/a", "-v", "twice:/b", "busybox", "ls", "/a", "/b"])
        box.finish(p, within: 20)
        #expect(p.terminationStatus == 0, "\(box.contents(out + ".err"))")
        // A create refused for its mounts leaves no name behind.
        let bad = try box.gocker(["run", "--rm", "--name", "keepme", "-v", "/etc/hostname/sub:/x", "busybox", "true"])
        #expect(bad.status == 125, "\(bad.stderr)")
        let again = try box.gocker(["run", "--rm", "--name", "keepme", "busybox", "true"])
        #expect(again.status == 0, "\(again.stderr)")
    }
}
