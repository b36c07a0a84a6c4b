import Foundation
import Testing

/// Builds tarballs with python3's tarfile: a copy of a directory (the
/// busybox layer) plus extra entries, or only the given entries.
private func makeTarball(_ box: Sandbox, name: String, base: String? = nil, compression: String = "gz",
                         entries: [[String: Any]]) throws -> String {
    let script = #"""
    import io, json, sys, tarfile
    spec = json.load(open(sys.argv[1]))
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "link": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(sys.argv[2], {"none": "w", "gz": "w:gz", "xz": "w:xz"}[spec["compression"]],
                      format=tarfile.PAX_FORMAT) as t:
        if spec.get("base"):
            t.add(spec["base"], arcname=".")
        for e in spec["entries"]:
            ti = tarfile.TarInfo(e["name"])
            ti.type = types[e.get("type", "file")]
            ti.mode, ti.uid, ti.gid = e.get("mode", 0o644), e.get("uid", 0), e.get("gid", 0)
            ti.mtime = e.get("mtime", 1000000000)
            ti.linkname = e.get("linkname", "")
            data = e.get("data", "").encode()
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    """#
    var spec: [String: Any] = ["entries": entries, "compression": compression]
    if let base { spec["base"] = base }
    let specPath = box.dir + "/\(name).json", scriptPath = box.dir + "/maketar.py", out = box.dir + "/" + name
    try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specPath))
    try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = [scriptPath, specPath, out]
    try p.run()
    p.waitUntilExit()
    try #require(p.terminationStatus == 0)
    return out
}

private func lstatOf(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

/// The image commands: import (safe extraction, round trip), layers shared
/// between images, images/rmi/tag/inspect.
@Suite(.enabled(if: canRunContainers, "imports as root and starts real containers: needs root"))
struct ImageTests {
    /// The busybox layer's directory (built on first use).
    func busyboxLayer(_ box: Sandbox) throws -> String {
        let r = try box.gocker(["run", "--rm", "busybox", "true"])
        try #require(r.status == 0, "\(r.stderr)")
        let layers = box.list(box.dataRoot + "/image/layers")
        try #require(layers.count == 1)
        return box.dataRoot + "/image/layers/" + layers[0]
    }

    @Test func maliciousTarballsAreRefusedNamingTheEntryAndWriteNothingOutside() throws {
        let box = try Sandbox()
        let outside = box.dir + "/x"  // where a symlinked "etc" would lead
        let absolute = "/tmp/gocker-abs-\(UUID().uuidString)"
        let shadowLinks = lstatOf("/etc/shadow")?.st_nlink
        let cases: [(String, [[String: Any]], String)] = [
            ("dotdot", [["name": "fine", "data": "x"], ["name": "../escape", "data": "x"]],
             #"entry "../escape": path escapes the layer"#),
            ("absolute", [["name": absolute + "/file", "data": "x"]],
             #"entry "\#(absolute)/file": path escapes the layer (absolute name)"#),
            ("symlink", [["name": "etc", "type": "symlink", "linkname": outside], ["name": "etc/file", "data": "x"]],
             #"entry "etc/file": path goes through the symlink "etc""#),
            ("hardlink", [["name": "shadow", "type": "link", "linkname": "/etc/shadow"]],
             #"entry "shadow": hard link target "/etc/shadow" is outside the layer"#),
        ]
        for (name, entries, message) in cases {
            for compression in ["none", "xz"] {
                let tar = try makeTarball(box, name: "\(name).\(compression)", compression: compression, entries: entries)
                let r = try box.gocker(["import", tar, "evil:\(name)"])
                #expect(r.status == 125, "\(name): \(r.stdout)")
                #expect(r.stderr == "gocker: error: import: \(message)\n", "\(name)")
                #expect(r.stdout == "")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: outside))
        #expect(!FileManager.default.fileExists(atPath: absolute))
        #expect(!FileManager.default.fileExists(atPath: box.dataRoot + "/image/escape"))
        #expect(!FileManager.default.fileExists(atPath: box.dataRoot + "/image/layers/escape"))
        #expect(lstatOf("/etc/shadow")?.st_nlink == shadowLinks)
        // No layer, temporary directory, image or tag is left.
        #expect(box.list(box.dataRoot + "/image/layers") == [])
        #expect(box.list(box.dataRoot + "/image/images") == [])
        let images = try box.gocker(["images", "-q"])
        #expect(images.status == 0 && images.stdout == "")
    }

    @Test func badInputLeavesNothing() throws {
        let box = try Sandbox()
        let text = box.dir + "/not-a-tar"
        try String(repeating: "hello\n", count: 200).write(toFile: text, atomically: true, encoding: .utf8)
        for args in [["import", text], ["import", box.dir + "/missing.tar"], ["import", text, "Bad:Name"],
                     ["import", "-c", "RUN rm -rf /", text]] {
            let r = try box.gocker(args)
            #expect(r.status == 125, "\(args)")
            #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        #expect(box.list(box.dataRoot + "/image/layers") == [])
        #expect(box.list(box.dataRoot + "/image/images") == [])
    }

    @Test func aGoodTarballRoundTripsAndRuns() throws {
        let box = try Sandbox()
        let base = try busyboxLayer(box)
        let tar = try makeTarball(box, name: "root.tar.gz", base: base, entries: [
            ["name": "data", "type": "dir", "mode": 0o755],
            ["name": "data/owned", "data": "owned by 1234\n", "mode": 0o640, "uid": 1234, "gid": 5678, "mtime": 1_234_567_890],
            ["name": "data/suid", "data": "#!/bin/sh\necho suid\n", "mode": 0o4755],
            ["name": "data/sgid-dir", "type": "dir", "mode": 0o2775, "gid": 50],
            ["name": "data/hard", "type": "link", "linkname": "data/owned"],
            ["name": "data/sym", "type": "symlink", "linkname": "../etc/passwd"],
            ["name": "data/abs", "type": "symlink", "linkname": "/bin/busybox"],
            ["name": "data/empty", "type": "dir", "mode": 0o700, "mtime": 1_111_111_111],
            ["name": "data/fifo", "type": "fifo", "mode": 0o620],
            ["name": "./data/dotslash", "data": "x"],
        ])
        let r = try box.gocker(["import", "-m", "from a tarball", tar, "myroot:1.0"])
        #expect(r.status == 0, "\(r.stderr)")
        let id = r.stdout.trimmingCharacters(in: .newlines)
        #expect(id.hasPrefix("sha256:") && id.count == 71, "\(id)")

        let inspect = try box.gocker(["image", "inspect", "myroot:1.0"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]])
        #expect(info.count == 1 && info[0]["Id"] as? String == id)
        #expect(info[0]["RepoTags"] as? [String] == ["myroot:1.0"])
        #expect(info[0]["Comment"] as? String == "from a tarball")
        let config = try #require(info[0]["Config"] as? [String: Any])
        #expect(config["Cmd"] is NSNull && config["Entrypoint"] is NSNull)
        let rootfs = try #require(info[0]["RootFS"] as? [String: Any])
        let layers = try #require(rootfs["Layers"] as? [String])
        #expect(rootfs["Type"] as? String == "layers" && layers.count == 1)
        // The layer id is the sha256 of the uncompressed tar stream.
        let gunzip = Process()
        gunzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gunzip.arguments = ["-c", "gzip -dc '\(tar)' | sha256sum"]
        let pipe = Pipe()
        gunzip.standardOutput = pipe
        try gunzip.run()
        let sum = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        gunzip.waitUntilExit()
        #expect(layers[0] == "sha256:" + String(sum.prefix(64)))

        // On the host: owners, modes, times, links as the archive says.
        let layer = box.dataRoot + "/image/layers/" + String(layers[0].dropFirst(7))
        let owned = try #require(lstatOf(layer + "/data/owned"))
        #expect(owned.st_uid == 1234 && owned.st_gid == 5678 && owned.st_mode & 0o7777 == 0o640)
        #expect(owned.st_mtim.tv_sec == 1_234_567_890 && owned.st_nlink == 2)
        #expect(lstatOf(layer + "/data/hard")?.st_ino == owned.st_ino)
        #expect(lstatOf(layer + "/data/suid").map { $0.st_mode & 0o7777 } == 0o4755)
        #expect(lstatOf(layer + "/data/sgid-dir").map { $0.st_mode & 0o7777 == 0o2775 && $0.st_gid == 50 } == true)
        #expect(lstatOf(layer + "/data/empty").map { $0.st_mode & 0o7777 == 0o700 && $0.st_mtim.tv_sec == 1_111_111_111 } == true)
        #expect(lstatOf(layer + "/data/fifo").map { $0.st_mode & S_IFMT == S_IFIFO && $0.st_mode & 0o777 == 0o620 } == true)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: layer + "/data/sym") == "../etc/passwd")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: layer + "/data/abs") == "/bin/busybox")
        #expect(box.list(layer + "/data/empty") == [])
        // The busybox part is the same tree: same names, modes and sizes.
        for name in ["bin/busybox", "etc/passwd", "tmp", "bin/sh"] {
            let a = try #require(lstatOf(base + "/" + name)), b = try #require(lstatOf(layer + "/" + name))
            #expect(a.st_mode == b.st_mode && a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec, "\(name)")
        }

        // And it runs, seeing the same.
        let run = try box.gocker(["run", "--rm", "myroot:1.0", "/bin/sh", "-c",
                                  "stat -c '%u:%g %a %Y %h' /data/owned; stat -c '%i' /data/owned /data/hard; stat -c %a /data/suid; cat /data/sym | head -1; ls -A /data/empty; readlink /data/abs"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 6, "\(run.stdout)")
        if lines.count == 6 {
            #expect(lines[0] == "1234:5678 640 1234567890 2")
            #expect(lines[1] == lines[2])
            #expect(lines[3] == "4755")
            #expect(lines[4].hasPrefix("root:"))
            #expect(lines[5] == "/bin/busybox")
        }
        box.expectNothingLeft()
    }

    @Test func layersAreSharedBetweenImages() throws {
        let box = try Sandbox()
        let base = try busyboxLayer(box)
        let tar = try makeTarball(box, name: "root.tar.xz", base: base, compression: "xz", entries: [])
        let a = try box.gocker(["import", tar, "first"])
        let b = try box.gocker(["import", "--change", #"CMD ["sh", "-c", "echo from b"]"#, "-c", "ENV PATH=/bin:/usr/bin",
                                "-c", "WORKDIR /tmp", tar, "second:2"])
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        #expect(a.stdout != b.stdout, "different configs are different images")
        #expect(try box.gocker(["tag", "first", "third:3"]).status == 0)
        let layers = box.list(box.dataRoot + "/image/layers")
        #expect(layers.count == 2, "busybox's and one imported layer: \(layers)")
        let ids = ["first", "second:2", "third:3"].map { ref -> String in
            let r = try? box.gocker(["image", "inspect", ref])
            let info = (try? JSONSerialization.jsonObject(with: Data((r?.stdout ?? "").utf8))) as? [[String: Any]]
            return ((info?.first?["RootFS"] as? [String: Any])?["Layers"] as? [String])?.joined() ?? "?"
        }
        #expect(ids[0] == ids[1] && ids[1] == ids[2] && ids[0] != "?")
        let run = try box.gocker(["run", "--rm", "second:2"])
        #expect(run.status == 0 && run.stdout == "from b\n", "\(run.stderr)")
        let pwd = try box.gocker(["run", "--rm", "second:2", "pwd"])
        #expect(pwd.stdout == "/tmp\n", "\(pwd.stderr)")
        // Removing one image keeps the layer the other uses.
        #expect(try box.gocker(["rmi", "first", "third:3"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers").count == 2)
        #expect(try box.gocker(["image", "rm", "second:2"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers") == [(base as NSString).lastPathComponent])
        box.expectNothingLeft()
    }

    @Test func imagesRmiTagAndInspect() throws {
        let box = try Sandbox()
        let base = try busyboxLayer(box)
        let tar = try makeTarball(box, name: "r.tar", base: base, compression: "none", entries: [])
        let imported = try box.gocker(["import", tar, "myroot:1.0"])
        let id = String(imported.stdout.dropFirst(7).prefix(64))
        #expect(id.count == 64, "\(imported.stderr)")
        #expect(try box.gocker(["tag", String(id.prefix(10)), "other/name:v2"]).status == 0)

        let table = try box.gocker(["images"])
        let rows = table.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first?.hasPrefix("REPOSITORY   TAG       IMAGE ID       CREATED") == true, "\(table.stdout)")
        #expect(rows.first?.hasSuffix("SIZE") == true)
        let mine = rows.filter { $0.hasPrefix("myroot ") }
        #expect(mine.count == 1 && mine[0].contains(" 1.0 ") && mine[0].contains(String(id.prefix(12))), "\(rows)")
        #expect(mine.first?.contains("ago") == true && mine.first?.hasSuffix("MB") == true)
        #expect(rows.contains { $0.hasPrefix("other/name ") && $0.contains(" v2 ") })
        #expect(rows.contains { $0.hasPrefix("busybox ") })

        let quiet = try box.gocker(["images", "-q", "myroot"])
        #expect(quiet.stdout == String(id.prefix(12)) + "\n")
        let json = try box.gocker(["image", "ls", "--format", "json"])
        let objects = json.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.count == 3)
        #expect(objects.contains { $0["Repository"] as? String == "myroot" && $0["Tag"] as? String == "1.0" && $0["ID"] as? String == String(id.prefix(12)) && ($0["CreatedSince"] as? String)?.hasSuffix("ago") == true })
        #expect(try box.gocker(["images", "--format", "{{.ID}}"]).status != 0)

        // Inspect: several at once; a missing one fails but the others print.
        let inspect = try box.gocker(["image", "inspect", "myroot:1.0", "busybox", "nope"])
        #expect(inspect.status == 1 && inspect.stderr.contains("No such image: nope"))
        let info = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        #expect(info?.count == 2)
        #expect(info?.first?["RepoTags"] as? [String] == ["myroot:1.0", "other/name:v2"])

        // In use by a container (a stopped one): refused, unless forced.
        #expect(try box.gocker(["run", "--name", "xx", "myroot:1.0", "/bin/true"]).status == 0)
        #expect(try box.gocker(["rmi", "other/name:v2"]).stdout == "Untagged: other/name:v2\n", "other tags: only untagged")
        let refused = try box.gocker(["rmi", "myroot:1.0"])
        #expect(refused.status == 1 && refused.stderr.contains("must force") && refused.stderr.contains("is using its referenced image"), "\(refused.stderr)")
        let byID = try box.gocker(["rmi", String(id.prefix(12))])
        #expect(byID.status == 1 && byID.stderr.contains("being used by stopped container"), "\(byID.stderr)")
        #expect(try box.gocker(["images", "-q", "myroot"]).stdout == String(id.prefix(12)) + "\n")
        #expect(try box.gocker(["rm", "xx"]).status == 0)
        let removed = try box.gocker(["rmi", "myroot:1.0"])
        #expect(removed.status == 0 && removed.stdout == "Untagged: myroot:1.0\nDeleted: sha256:\(id)\n", "\(removed.stderr)")
        #expect(try box.gocker(["images", "-q", "myroot"]).stdout == "")
        #expect(box.list(box.dataRoot + "/image/layers") == [(base as NSString).lastPathComponent])
        let missing = try box.gocker(["rmi", "myroot:1.0"])
        #expect(missing.status == 1 && missing.stderr == "gocker: error: No such image: myroot:1.0\n")

        // -f with a stopped container: the image goes, its layer stays until the container does.
        // Imported again: a new image (its config says when, and names it,
        // as docker's does), on the same layer.
        let again = try box.gocker(["import", tar, "myroot:1.0"])
        #expect(again.status == 0 && again.stdout.hasPrefix("sha256:") && again.stdout != imported.stdout, "\(again.stdout)")
        #expect(try box.gocker(["run", "--name", "yy", "myroot:1.0", "/bin/true"]).status == 0)
        #expect(try box.gocker(["rmi", "-f", "myroot:1.0"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers").count == 2)
        #expect(try box.gocker(["rm", "yy"]).status == 0)
        #expect(try box.gocker(["rmi", "busybox"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers") == [])
        #expect(box.list(box.dataRoot + "/image/images") == [])
        box.expectNothingLeft()
    }
}
