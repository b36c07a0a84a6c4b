import Foundation
import Testing

/// Runs `sh -c script` and returns its status and output.
@discardableResult
func shell(_ script: String) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self))
}

extension Sandbox {
    /// `gocker image inspect` of one image, decoded.
    func inspectImage(_ ref: String) throws -> [String: Any] {
        let r = try gocker(["image", "inspect", ref])
        try #require(r.status == 0, "\(r.stderr)")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        return try #require(info.first)
    }

    func layers(of ref: String) throws -> [String] {
        let rootfs = try #require(try inspectImage(ref)["RootFS"] as? [String: Any])
        return try #require(rootfs["Layers"] as? [String])
    }

    /// A container from busybox that adds, changes and deletes files, and
    /// replaces a directory of the image (an opaque directory).
    func makeChangedContainer(_ name: String) throws {
        let script = "echo added > /added; echo changed >> /etc/passwd; rm /bin/ls; rm -rf /usr/sbin; mkdir /usr/sbin; echo only > /usr/sbin/only"
        let r = try gocker(["run", "--name", name, "busybox", "sh", "-c", script])
        try #require(r.status == 0, "\(r.stderr)")
    }
}

/// commit, diff, history, save/load, export: containers become images and
/// images travel as archives.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct CommitTests {
    @Test func aCommittedImageHoldsExactlyTheContainersChanges() throws {
        let box = try Sandbox()
        try box.makeChangedContainer("c1")
        let busyboxLayers = try box.layers(of: "busybox")

        let diff = try box.gocker(["diff", "c1"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let changes = diff.stdout.split(separator: "\n").map(String.init)
        for line in ["A /added", "C /etc/passwd", "D /bin/ls", "C /usr/sbin", "A /usr/sbin/only", "D /usr/sbin/chroot"] {
            #expect(changes.contains(line), "\(line) in \(changes)")
        }
        #expect(!changes.contains { $0.contains("hostname") || $0.contains("resolv.conf") || $0.hasSuffix("/etc/hosts") },
                "the runtime's mount points are not changes: \(changes)")
        let paths = changes.map { $0.dropFirst(2) }
        #expect(paths == paths.sorted(), "sorted by path")

        let commit = try box.gocker(["commit", "-m", "add tools", "-a", "Jane <jane@example.com>",
                                     "-c", #"CMD ["cat", "/added"]"#, "-c", "ENV FOO=bar", "-c", "WORKDIR /tmp", "c1", "web:v2"])
        #expect(commit.status == 0, "\(commit.stderr)")
        let id = commit.stdout.trimmingCharacters(in: .newlines)
        #expect(id.hasPrefix("sha256:") && id.count == 71, "\(commit.stdout)")

        // One new layer on top of the image's, which are shared.
        let info = try box.inspectImage("web:v2")
        let layers = try box.layers(of: "web:v2")
        #expect(info["Id"] as? String == id)
        #expect(layers.count == busyboxLayers.count + 1 && Array(layers.prefix(busyboxLayers.count)) == busyboxLayers)
        #expect(info["Comment"] as? String == "add tools" && info["Author"] as? String == "Jane <jane@example.com>")
        #expect(info["Parent"] as? String == (try box.inspectImage("busybox")["Id"] as? String))
        let layerDirs = box.list(box.dataRoot + "/image/layers")
        #expect(layerDirs.count == 2, "\(layerDirs)")

        // On disk, the new layer is in overlay form: a whiteout device for /bin/ls.
        let top = box.dataRoot + "/image/layers/" + layers.last!.dropFirst(7)
        #expect(box.contents(top + "/added") == "added\n")
        var st = stat()
        #expect(lstat(top + "/bin/ls", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0)
        #expect(!FileManager.default.fileExists(atPath: top + "/etc/hostname"))

        // In a container: added, changed, deleted, and the replaced directory hides the old one.
        let run = try box.gocker(["run", "--rm", "web:v2", "sh", "-c",
                                  "cat /added; tail -1 /etc/passwd; ls /bin/ls 2>/dev/null || echo no-ls; ls /usr/sbin; echo $FOO; pwd"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "added\nchanged\nno-ls\nonly\nbar\n/tmp\n")
        let cmd = try box.gocker(["run", "--rm", "web:v2"])
        #expect(cmd.stdout == "added\n", "the CMD given with -c: \(cmd.stderr)")

        // A second generation: what the first deleted stays deleted; a file
        // of the first generation's layer deleted now is gone.
        let c2 = try box.gocker(["run", "--name", "c2", "web:v2", "sh", "-c", "rm /added; echo two > /two"])
        #expect(c2.status == 0, "\(c2.stderr)")
        #expect(try box.gocker(["commit", "c2", "web:v3"]).status == 0)
        #expect(try box.layers(of: "web:v3").count == layers.count + 1)
        let run3 = try box.gocker(["run", "--rm", "web:v3", "sh", "-c",
                                   "ls /added 2>/dev/null || echo no-added; cat /two; ls /bin/ls 2>/dev/null || echo no-ls; ls /usr/sbin; tail -1 /etc/passwd"])
        #expect(run3.stdout == "no-added\ntwo\nno-ls\nonly\nchanged\n", "\(run3.stderr)")
        // The committed image runs what the container ran.
        let v3 = try #require(try box.inspectImage("web:v3")["Config"] as? [String: Any])
        #expect(v3["Cmd"] as? [String] == ["sh", "-c", "rm /added; echo two > /two"])

        // History, newest first, with the message and the command.
        let history = try box.gocker(["history", "web:v3"])
        let rows = history.stdout.split(separator: "\n").map(String.init)
        #expect(rows.count == 4, "\(history.stdout)")
        #expect(rows.first?.hasPrefix("IMAGE          CREATED") == true)
        #expect(rows.count > 2 && rows[1].contains("sh -c rm /added; echo two > /two") && rows[2].contains("add tools"))
        #expect(rows.count > 2 && rows[2].hasPrefix(String(id.dropFirst(7).prefix(12))))
        let quiet = try box.gocker(["history", "-q", "--no-trunc", "web:v2"])
        #expect(quiet.stdout.split(separator: "\n").first.map(String.init) == id)

        for c in ["c1", "c2"] { #expect(try box.gocker(["rm", c]).status == 0) }
        #expect(try box.gocker(["rmi", "web:v3", "web:v2"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers").count == 1)
        #expect(box.list(box.dataRoot + "/image/archives").count == 2, "the busybox layer's archive and its digest")
        box.expectNothingLeft()
    }

    @Test func theInitLayerHoldsTheMountPointsOnlyWhereTheImageLooksTheSame() throws {
        let box = try Sandbox()
        let initLayer = box.dataRoot + "/image/init"
        // busybox's /etc is root's, 0755, without the three files: the
        // container's mount points come from the shared init layer, and its
        // own upper layer gets no copy of /etc.
        let first = try box.gocker(["run", "--name", "plain", "busybox", "sh", "-c",
                                    "grep '^overlay / ' /proc/mounts; stat -c '%a %u' /etc; cat /etc/hostname"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("lowerdir=\(initLayer):"), "\(first.stdout)")
        #expect(first.stdout.contains("\n755 0\n"), "\(first.stdout)")
        let id = try #require(box.list(box.dataRoot + "/containers").first)
        #expect(box.list(box.dataRoot + "/containers/\(id)/upper") == [], "nothing copied up")
        #expect(box.list(initLayer + "/etc").sorted() == ["hostname", "hosts", "resolv.conf"])
        #expect(box.contents(initLayer + "/etc/hosts") == "", "the init layer's files stay empty")
        #expect(try box.gocker(["diff", "plain"]).stdout == "")

        // An image whose /etc is 0700 would show the init layer's 0755: it
        // gets none, and its container sees its own /etc.
        #expect(try box.gocker(["run", "--name", "closed", "busybox", "chmod", "700", "/etc"]).status == 0)
        #expect(try box.gocker(["commit", "closed", "closed:1"]).status == 0)
        let second = try box.gocker(["run", "--rm", "closed:1", "sh", "-c",
                                     "grep '^overlay / ' /proc/mounts; stat -c '%a' /etc; cat /etc/hostname"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(!second.stdout.contains(initLayer) && second.stdout.contains("\n700\n"), "\(second.stdout)")
        // ... and its files are bound all the same.
        #expect(second.stdout.hasSuffix("\n") && second.stdout.split(separator: "\n").last?.count == 12, "\(second.stdout)")

        // An image whose /etc/hosts is a symlink keeps it: the bind lands
        // where it leads, as without the init layer.
        let tree = box.dir + "/linked"
        let made = try shell("""
            mkdir -p \(tree)/etc \(tree)/bin && cp /bin/busybox \(tree)/bin/busybox && chmod 755 \(tree)/etc && \
            echo old > \(tree)/etc/real-hosts && ln -s real-hosts \(tree)/etc/hosts && tar -C \(tree) -cf \(tree).tar .
            """)
        try #require(made.status == 0, "\(made.output)")
        #expect(try box.gocker(["import", tree + ".tar", "linked:1"]).status == 0)
        let third = try box.gocker(["run", "--rm", "linked:1", "/bin/busybox", "sh", "-c",
                                    "busybox grep '^overlay / ' /proc/mounts; busybox readlink /etc/hosts; busybox grep -c localhost /etc/real-hosts"])
        #expect(third.status == 0, "\(third.stderr)")
        #expect(!third.stdout.contains(initLayer) && third.stdout.hasSuffix("real-hosts\n2\n"), "\(third.stdout)")
        for name in ["plain", "closed"] { #expect(try box.gocker(["rm", name]).status == 0) }
        #expect(try box.gocker(["rmi", "closed:1", "linked:1"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func aRunningContainerIsFrozenWhileCommittedAndThawedAfter() throws {
        let box = try Sandbox()
        let run = try box.gocker(["run", "-d", "--name", "live", "busybox", "sh", "-c",
                                  "echo x > /f; i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done"])
        #expect(run.status == 0, "\(run.stderr)")
        let id = run.stdout.trimmingCharacters(in: .newlines)
        #expect(box.waitFor { box.contents(box.dataRoot + "/containers/\(id)/upper/count") != "" })
        let commit = try box.gocker(["commit", "live", "live:img"])
        #expect(commit.status == 0, "\(commit.stderr)")
        let noPause = try box.gocker(["commit", "--pause=false", "live", "live:img2"])
        #expect(noPause.status == 0, "\(noPause.stderr)")
        // Still running, not frozen: its counter goes on.
        let freezer = "/sys/fs/cgroup/freezer/\(box.cgroupParent)/\(id)/freezer.state"
        if FileManager.default.fileExists(atPath: freezer) {
            #expect(box.contents(freezer) == "THAWED\n")
        }
        let before = box.contents(box.dataRoot + "/containers/\(id)/upper/count")
        #expect(box.waitFor { box.contents(box.dataRoot + "/containers/\(id)/upper/count") != before })
        let cat = try box.gocker(["run", "--rm", "live:img", "cat", "/f"])
        #expect(cat.stdout == "x\n", "\(cat.stderr)")
        #expect(try box.gocker(["rm", "-f", "live"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func saveRmiLoadRoundTripsAndTamperedArchivesAreRefused() throws {
        let box = try Sandbox()
        try box.makeChangedContainer("c1")
        let commit = try box.gocker(["commit", "-m", "add tools", "c1", "web:v2"])
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(try box.gocker(["rm", "c1"]).status == 0)
        let id = commit.stdout.trimmingCharacters(in: .newlines)
        let archive = box.dir + "/web.tar"
        let save = try box.gocker(["save", "-o", archive, "web:v2"])
        #expect(save.status == 0 && save.stdout == "", "\(save.stderr)")

        // An OCI image layout, with docker's manifest.json beside it.
        let unpacked = box.dir + "/unpacked"
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        #expect(try shell("tar -xf '\(archive)' -C '\(unpacked)'").status == 0)
        #expect(box.contents(unpacked + "/oci-layout") == #"{"imageLayoutVersion":"1.0.0"}"#)
        let index = try #require(try JSONSerialization.jsonObject(with: Data(box.contents(unpacked + "/index.json").utf8)) as? [String: Any])
        let descriptors = try #require(index["manifests"] as? [[String: Any]])
        #expect(descriptors.count == 1)
        let annotations = descriptors.first?["annotations"] as? [String: String]
        #expect(annotations?["io.containerd.image.name"] == "docker.io/library/web:v2")
        #expect(annotations?["org.opencontainers.image.ref.name"] == "v2")
        let manifestDigest = try #require(descriptors.first?["digest"] as? String)
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(box.contents(unpacked + "/blobs/sha256/" + manifestDigest.dropFirst(7)).utf8)) as? [String: Any])
        let layerDescriptors = try #require(manifest["layers"] as? [[String: Any]])
        #expect(layerDescriptors.count == 2)
        // Each layer's kept archive as it is: a plain tar (as docker's save
        // writes them), or gzip where the layer came as one.
        let types = ["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip"]
        #expect(layerDescriptors.allSatisfy { types.contains($0["mediaType"] as? String ?? "") }, "\(layerDescriptors)")
        // Each blob's name is its sha256; each layer's (gunzipped) sha256 is its diff id.
        let sums = try shell("cd '\(unpacked)/blobs/sha256' && sha256sum *").output
        for line in sums.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            #expect(parts.count == 2 && parts[0] == parts[1], "\(line)")
        }
        let diffIDs = try box.layers(of: "web:v2")
        for (i, layer) in layerDescriptors.enumerated() {
            let digest = try #require(layer["digest"] as? String)
            let read = layer["mediaType"] as? String == types[1] ? "gzip -dc" : "cat"
            let sum = try shell("\(read) '\(unpacked)/blobs/sha256/\(digest.dropFirst(7))' | sha256sum").output
            #expect(i < diffIDs.count && sum.hasPrefix(diffIDs[i].dropFirst(7)))
        }

        // save -> rmi -> load: the same image, id and all, and it runs.
        #expect(try box.gocker(["rmi", "web:v2", "busybox"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers") == [])
        let load = try box.gocker(["load", "-i", archive])
        #expect(load.status == 0 && load.stdout == "Loaded image: web:v2\n", "\(load.stderr)")
        #expect(try box.inspectImage("web:v2")["Id"] as? String == id)
        #expect(try box.inspectImage("web:v2")["Comment"] as? String == "add tools")
        let run = try box.gocker(["run", "--rm", "web:v2", "sh", "-c", "cat /added; ls /bin/ls 2>/dev/null || echo no-ls; ls /usr/sbin"])
        #expect(run.stdout == "added\nno-ls\nonly\n", "\(run.stderr)")
        // Saved again, the archive is the same, byte for byte.
        #expect(try box.gocker(["save", "-o", box.dir + "/again.tar", "web:v2"]).status == 0)
        #expect(try shell("cmp '\(archive)' '\(box.dir)/again.tar'").status == 0)
        // Loading again changes nothing. What a killed load left goes; the
        // staging of a load still running (its directory locked) stays.
        let stale = box.dataRoot + "/image/.tmp-load-stale", running = box.dataRoot + "/image/.tmp-load-running"
        #expect(try shell("mkdir -p '\(stale)/blobs' '\(running)' && echo x > '\(stale)/blobs/x'").status == 0)
        let holder = open(running, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try #require(holder >= 0 && flock(holder, LOCK_EX) == 0)
        #expect(try box.gocker(["load", "-q", "-i", archive]).stdout == "")
        #expect(box.list(box.dataRoot + "/image/layers").count == 2)
        #expect(box.list(box.dataRoot + "/image").filter { $0.hasPrefix(".tmp-load-") } == [".tmp-load-running"])
        // Its holder gone, the next load removes it (checked below).
        close(holder)

        // docker's format: the same blobs through manifest.json alone.
        let dockerDir = box.dir + "/docker"
        #expect(try shell("cp -r '\(unpacked)' '\(dockerDir)' && rm '\(dockerDir)/index.json' '\(dockerDir)/oci-layout' && tar -cf '\(box.dir)/docker.tar' -C '\(dockerDir)' .").status == 0)
        #expect(try box.gocker(["rmi", "web:v2"]).status == 0)
        let dockerLoad = try box.gocker(["load", "-i", box.dir + "/docker.tar"])
        #expect(dockerLoad.status == 0 && dockerLoad.stdout == "Loaded image: web:v2\n", "\(dockerLoad.stderr)")
        #expect(try box.inspectImage("web:v2")["Id"] as? String == id)
        #expect(try box.gocker(["rmi", "web:v2"]).status == 0)

        // Tampered: one byte of a layer blob changed (OCI), one byte of a
        // layer's content changed (docker's format, uncompressed layers).
        let top = try #require(layerDescriptors.last?["digest"] as? String)
        let blob = unpacked + "/blobs/sha256/" + top.dropFirst(7)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: blob))
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: blob))
        #expect(try shell("tar -cf '\(box.dir)/tampered.tar' -C '\(unpacked)' .").status == 0)
        let before = box.list(box.dataRoot + "/image/layers")
        let refused = try box.gocker(["load", "-i", box.dir + "/tampered.tar"])
        #expect(refused.status == 125 && refused.stderr.contains("digest mismatch"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)

        let manifestJSON = box.contents(dockerDir + "/manifest.json")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(manifestJSON.utf8)) as? [[String: Any]])
        let dockerLayers = try #require(entries.first?["Layers"] as? [String])
        let last = try #require(dockerLayers.last)
        // Uncompressed, with "added" changed to "adder" (same size): only the diff id can tell.
        let edit = #"""
            import sys
            data = bytearray(sys.stdin.buffer.read())
            i = next(i for i in range(0, len(data), 512) if data[i:i + 6] == b"added\n")
            data[i:i + 6] = b"adder\n"
            sys.stdout.buffer.write(data)
            """#
        try edit.write(toFile: box.dir + "/edit.py", atomically: true, encoding: .utf8)
        let readLast = layerDescriptors.last?["mediaType"] as? String == types[1] ? "gzip -dc" : "cat"
        #expect(try shell("cd '\(dockerDir)' && \(readLast) '\(last)' | python3 '\(box.dir)/edit.py' > layer.tar && mv layer.tar '\(last)'").status == 0)
        #expect(try shell("tar -cf '\(box.dir)/tampered-docker.tar' -C '\(dockerDir)' .").status == 0)
        let refused2 = try box.gocker(["load", "-i", box.dir + "/tampered-docker.tar"])
        #expect(refused2.status == 125 && refused2.stderr.contains("digest mismatch"), "\(refused2.stderr)")
        // Nothing of the refused images is left.
        #expect(box.list(box.dataRoot + "/image/layers") == before)
        #expect(try box.gocker(["images", "-q", "web"]).stdout == "")
        #expect(box.list(box.dataRoot + "/image").filter { $0.hasPrefix(".tmp") } == [])
        box.expectNothingLeft()
    }

    @Test func aLayerWithoutItsArchiveIsArchivedWhenSaved() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--name", "src", "busybox", "sh", "-c", "echo old > /old"]).status == 0)
        #expect(try box.gocker(["export", "-o", box.dir + "/old.tar", "src"]).status == 0)
        #expect(try box.gocker(["rm", "src"]).status == 0)
        #expect(try box.gocker(["import", box.dir + "/old.tar", "old:1"]).status == 0)
        // As a store from before layers kept their archive.
        let layer = try #require(try box.layers(of: "old:1").first?.dropFirst(7))
        // (A plain tarball's layer keeps its plain stream: "<id>.tar".)
        for suffix in [".tar", ".json"] {
            try FileManager.default.removeItem(atPath: box.dataRoot + "/image/archives/" + layer + suffix)
        }
        let save = try box.gocker(["save", "-o", box.dir + "/saved.tar", "old:1"])
        #expect(save.status == 0, "\(save.stderr)")
        #expect(box.list(box.dataRoot + "/image/archives").filter { $0.hasPrefix(".") } == [])
        #expect(try box.gocker(["rmi", "old:1"]).status == 0)
        let load = try box.gocker(["load", "-i", box.dir + "/saved.tar"])
        #expect(load.status == 0 && load.stdout == "Loaded image: old:1\n", "\(load.stderr)")
        let run = try box.gocker(["run", "--rm", "old:1", "cat", "/old"])
        #expect(run.stdout == "old\n", "\(run.stderr)")
        box.expectNothingLeft()
    }

    @Test func exportThenImportGivesTheSameFiles() throws {
        let box = try Sandbox()
        let script = "mkdir /data; echo hi > /data/f; ln /data/f /data/h; ln -s f /data/s; chmod 4711 /data/f; rm /bin/ls; rm -rf /usr/sbin; mkdir /usr/sbin; echo only > /usr/sbin/only"
        #expect(try box.gocker(["run", "--name", "ex", "busybox", "sh", "-c", script]).status == 0)
        let tar = box.dir + "/rootfs.tar"
        let export = try box.gocker(["export", "-o", tar, "ex"])
        #expect(export.status == 0 && export.stdout == "", "\(export.stderr)")
        let names = try shell("tar -tf '\(tar)'").output.split(separator: "\n").map(String.init)
        #expect(names.contains("data/f") && names.contains("usr/sbin/only") && names.contains("bin/busybox"))
        #expect(!names.contains("bin/ls") && !names.contains("usr/sbin/chroot"))
        #expect(!names.contains { $0.contains(".wh.") }, "a merged tree has no whiteouts")

        #expect(try box.gocker(["import", tar, "exported:1"]).status == 0)
        #expect(try box.gocker(["commit", "ex", "committed:1"]).status == 0)
        // The same tree, seen from containers of both: names, modes, owners, links, contents.
        // (Mount points and the runtime's files differ between any two
        // containers; overlayfs counts a merged directory's links as 1.)
        let survey = "cd / && find . -xdev ! -path ./etc/hostname ! -path ./etc/hosts ! -path ./etc/resolv.conf ! -path ./proc ! -path ./sys ! -path ./dev | sort | while read p; do stat -c '%n %f %u %g' \"$p\"; done; find . -xdev -type f ! -path ./etc/hostname ! -path ./etc/hosts ! -path ./etc/resolv.conf | sort | while read p; do stat -c '%n %h' \"$p\"; md5sum \"$p\"; done; readlink data/s"
        let a = try box.gocker(["run", "--rm", "exported:1", "sh", "-c", survey])
        let b = try box.gocker(["run", "--rm", "committed:1", "sh", "-c", survey])
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        #expect(a.stdout == b.stdout && a.stdout.contains("./data/f 89c9 0 0\n") && a.stdout.contains("./data/f 2\n") && a.stdout.hasSuffix("\nf\n"), "\(a.stdout.prefix(400))")
        #expect(try box.gocker(["rm", "ex"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func badInputIsOneLineAndLeavesNothing() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--name", "cc", "busybox", "true"]).status == 0)
        let text = box.dir + "/not-a-tar"
        try String(repeating: "hello\n", count: 200).write(toFile: text, atomically: true, encoding: .utf8)
        // A manifest.json whose layer is outside the archive.
        let evil = box.dir + "/evil"
        try FileManager.default.createDirectory(atPath: evil, withIntermediateDirectories: true)
        try #"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["../../../../etc/passwd"]}]"#
            .write(toFile: evil + "/manifest.json", atomically: true, encoding: .utf8)
        try #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:\#(String(repeating: "0", count: 64))"]}}"#
            .write(toFile: evil + "/c.json", atomically: true, encoding: .utf8)
        #expect(try shell("tar -cf '\(box.dir)/evil.tar' -C '\(evil)' .").status == 0)
        let cases: [([String], String)] = [
            (["commit", "nope", "x:1"], "No such container: nope"),
            (["commit", "cc", "Bad:Name"], "invalid reference format"),
            (["commit", "-c", "RUN rm -rf /", "cc", "x:1"], "commit: change"),
            (["commit", "--pause", "maybe", "cc"], "is invalid for '--pause"),
            (["save", "-o", box.dir + "/out.tar", "nope:1"], "unable to find image"),
            (["load", "-i", text], "load:"),
            (["load", "-i", box.dir + "/missing.tar"], "load:"),
            (["load", "-i", box.dir + "/evil.tar"], "outside the archive"),
            (["export", "-o", box.dir + "/out2.tar", "nope"], "No such container: nope"),
            (["diff", "nope"], "No such container: nope"),
            (["history", "nope:1"], "unable to find image"),
        ]
        for (args, message) in cases {
            let r = try box.gocker(args)
            #expect(r.status == 125, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1,
                    "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: box.dir + "/out.tar"))
        #expect(!FileManager.default.fileExists(atPath: box.dir + "/out2.tar"))
        #expect(box.list(box.dataRoot + "/image/layers").count == 1, "only busybox's")
        #expect(try box.gocker(["images", "-q"]).stdout.split(separator: "\n").count == 1)
        #expect(box.list(box.dataRoot + "/image").filter { $0.hasPrefix(".tmp") } == [])
        #expect(box.list(box.dataRoot + "/image/layers").filter { $0.hasPrefix(".tmp") } == [])
        #expect(try box.gocker(["rm", "cc"]).status == 0)
        box.expectNothingLeft()
    }
}
