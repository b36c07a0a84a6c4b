import Foundation
import GockerCore
import Testing

/// `gocker pull` from a registry of the test's own on loopback: what skopeo
/// pushed comes back with its layers checked and runs; what is already here
/// is not downloaded again; a platform is chosen from an index; basic auth
/// through `login`, TLS through a registry's own CA; and each bad answer is
/// one line, exit 125, and nothing left.
@Suite(.enabled(if: canRunContainers && (PrivateRegistry.installed || ProcessInfo.processInfo.environment["CI"] == "true"),
                "needs root, Debian's docker-registry, skopeo and openssl (./build.sh deps installs them)"))
struct PullTests {
    /// gocker with its credentials and certificates in the sandbox.
    func gocker(_ box: Sandbox, _ args: [String], input: String? = nil,
                environment extra: [String: String] = [:]) throws -> Sandbox.Result {
        try box.gocker(args, input: input, environment: ["DOCKER_CONFIG": box.dir + "/docker",
                                                          "GOCKER_CONFIG": box.dir + "/gocker-config"].merging(extra) { $1 })
    }

    /// A refusal: exit 125, exactly one line, which holds `message`.
    func expectRefused(_ r: Sandbox.Result, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 125, "\(r.stdout) \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)",
                sourceLocation: sourceLocation)
        #expect(r.stderr.contains(message), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    /// `gocker image inspect`'s object for `name`.
    func inspect(_ box: Sandbox, _ name: String) throws -> [String: Any] {
        let r = try gocker(box, ["image", "inspect", name])
        try #require(r.status == 0, "\(r.stderr)")
        let array = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
        return try #require(array?.first)
    }

    /// What the image store holds: its images, layers and anything else
    /// (but its lock files, made once).
    func storeListing(_ box: Sandbox) -> [String] {
        let root = box.dataRoot + "/image"
        return box.list(root).filter { !$0.hasSuffix("lock") }.flatMap { entry in
            ["images", "layers", "archives"].contains(entry) ? box.list(root + "/" + entry).map { entry + "/" + $0 } : [entry]
        }.sorted()
    }

    /// The busybox image pushed as test/busybox:1, then removed here, so
    /// that a pull has to download its layer.
    func pushedBusybox(_ box: Sandbox, _ registry: PrivateRegistry) throws -> String {
        try registry.push(ociArchive: try PrivateRegistry.busyboxArchive(box), as: "test/busybox:1")
        #expect(try box.gocker(["rmi", "busybox"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers").isEmpty)
        return registry.host + "/test/busybox:1"
    }

    @Test func aPulledImageRunsAndIsNotDownloadedTwice() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let name = try pushedBusybox(box, registry)

        let pull = try gocker(box, ["pull", name])
        #expect(pull.status == 0, "\(pull.stderr)")
        let lines = pull.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "1: Pulling from test/busybox", "\(pull.stdout)")
        #expect(lines.contains { $0.hasSuffix(": Pull complete") }, "\(pull.stdout)")
        #expect(lines.contains("Status: Downloaded newer image for \(name)"), "\(pull.stdout)")
        #expect(lines.last == name)
        // The digest it names is the registry's manifest's.
        let manifest = try registry.get("/v2/test/busybox/manifests/1", headers: ["Accept": PrivateRegistry.manifestTypes.joined(separator: ", ")])
        let digest = try #require(manifest.headers["docker-content-digest"])
        #expect(lines.contains("Digest: \(digest)"), "\(pull.stdout)")

        let run = try gocker(box, ["run", "--rm", "--network", "none", name, "sh", "-c", "echo pulled; ls /bin/busybox"])
        #expect(run.status == 0 && run.stdout == "pulled\n/bin/busybox\n", "\(run.stderr)")
        let images = try gocker(box, ["images"])
        #expect(images.stdout.split(separator: "\n").contains { $0.hasPrefix(registry.host + "/test/busybox   1 ") }, "\(images.stdout)")
        // Its id is its config's digest, as docker's is; where it came from is kept.
        let document = try JSONSerialization.jsonObject(with: Data(manifest.body.utf8)) as? [String: Any]
        let configDigest = try #require((document?["config"] as? [String: Any])?["digest"] as? String)
        let inspected = try inspect(box, name)
        #expect(inspected["Id"] as? String == configDigest)
        #expect(inspected["RepoDigests"] as? [String] == [registry.host + "/test/busybox@" + digest])

        // Again: nothing downloaded, the image up to date.
        let layers = box.list(box.dataRoot + "/image/layers")
        let again = try gocker(box, ["pull", name])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains(": Already exists\n") && !again.stdout.contains("Pull complete"), "\(again.stdout)")
        #expect(again.stdout.contains("Status: Image is up to date for \(name)\n"), "\(again.stdout)")
        #expect(box.list(box.dataRoot + "/image/layers") == layers)

        // By digest: the same content, -q prints the name alone.
        let byDigest = try gocker(box, ["pull", "-q", registry.host + "/test/busybox@" + digest])
        #expect(byDigest.status == 0 && byDigest.stdout == registry.host + "/test/busybox@" + digest + "\n", "\(byDigest.stderr)")
        let runByDigest = try gocker(box, ["run", "--rm", "--network", "none", registry.host + "/test/busybox@" + digest, "echo", "pinned"])
        #expect(runByDigest.status == 0 && runByDigest.stdout == "pinned\n", "\(runByDigest.stderr)")
        #expect(!box.list(box.dataRoot + "/image").contains { $0.hasPrefix(".tmp-pull-") })

        // Pushed to another repository of the same registry: the registry
        // takes the layer from the one it was pulled from.
        let copy = registry.host + "/test/copy:1"
        #expect(try gocker(box, ["tag", name, copy]).status == 0)
        let push = try gocker(box, ["push", copy])
        #expect(push.status == 0 && push.stdout.contains(": Mounted from test/busybox\n"), "\(push.stdout) \(push.stderr)")
        // The config as it was pulled, byte for byte: the same id there.
        let copied = try registry.manifest("test/copy", "1")
        #expect(copied.status == 200)
        let copiedDocument = try JSONSerialization.jsonObject(with: Data(copied.body.utf8)) as? [String: Any]
        #expect((copiedDocument?["config"] as? [String: Any])?["digest"] as? String == configDigest, "\(copied.body)")
        #expect(try gocker(box, ["rmi", name, copy]).status == 0)
    }

    /// An image of three layers (busybox's and two committed on it), pushed,
    /// into stores that have none of them: the layers download (several at
    /// a time) while the first are extracted, with docker's lines per
    /// layer, or a board redrawn in place on a terminal. A blob tampered
    /// with in the registry fails the pull after the layers before it were
    /// extracted: those go again, and nothing is left.
    @Test func aLayeredPullExtractsWhileItDownloadsAndAFailureLeavesNothing() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let name = registry.host + "/test/layered:1"
        for (i, (from, to)) in [("busybox", "layered-1"), ("layered-1", name)].enumerated() {
            let made = try gocker(box, ["run", "--name", "layer-\(i)", "--network", "none", from, "sh", "-c",
                                        "echo \(i) > /file-\(i); mkdir -p /dir-\(i)/sub"])
            try #require(made.status == 0, "\(made.stderr)")
            try #require(try gocker(box, ["commit", "layer-\(i)", to]).status == 0)
            #expect(try gocker(box, ["rm", "layer-\(i)"]).status == 0)
        }
        let push = try gocker(box, ["push", name])
        try #require(push.status == 0, "\(push.stderr)")
        let made = try inspect(box, name)
        #expect(try gocker(box, ["rmi", name, "layered-1"]).status == 0)

        // Lines per layer where stdout is no terminal, each layer's in order.
        let fresh = ["GOCKER_DATA_ROOT": box.dir + "/fresh"]
        defer { _ = try? gocker(box, ["rmi", name], environment: fresh) }
        let pull = try gocker(box, ["pull", name], environment: fresh)
        #expect(pull.status == 0, "\(pull.stderr)")
        let lines = pull.stdout.split(separator: "\n").map(String.init)
        let layers = Set(lines.compactMap { $0.hasSuffix(": Pulling fs layer") ? $0.prefix(12) : nil })
        #expect(layers.count == 3, "\(pull.stdout)")
        for id in layers {
            let states = lines.filter { $0.hasPrefix(id + ": ") }.map { $0.dropFirst(14) }
            #expect(states == ["Pulling fs layer", "Download complete", "Pull complete"], "\(pull.stdout)")
        }
        // The same image as the one pushed: its id (its config's digest, as
        // docker's) and its layers.
        let back = try gocker(box, ["image", "inspect", name], environment: fresh)
        let pulled = try #require((try JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as? [[String: Any]])?.first)
        #expect(pulled["Id"] as? String == made["Id"] as? String, "\(back.stdout)")
        #expect((pulled["RootFS"] as? [String: Any])?["Layers"] as? [String] == (made["RootFS"] as? [String: Any])?["Layers"] as? [String])
        let run = try gocker(box, ["run", "--rm", "--network", "none", name, "sh", "-c", "cat /file-0 /file-1; ls -d /dir-*/sub"],
                             environment: fresh)
        #expect(run.status == 0 && run.stdout == "0\n1\n/dir-0/sub\n/dir-1/sub\n", "\(run.stdout) \(run.stderr)")

        // On a terminal: a line per layer, redrawn in place (cursor up), and
        // the bar while bytes come.
        let tty = ["GOCKER_DATA_ROOT": box.dir + "/tty", "DOCKER_CONFIG": box.dir + "/docker"]
        let drawn = try box.gocker(["-qec", "\(Sandbox.binary) pull \(name)", "/dev/null"], binary: "/usr/bin/script", environment: tty)
        #expect(drawn.status == 0, "\(drawn.stdout)")
        #expect(drawn.stdout.contains(": Downloading [") && drawn.stdout.contains("\u{1B}[") && drawn.stdout.contains(": Pull complete"),
                "\(drawn.stdout.debugDescription)")
        #expect(try gocker(box, ["rmi", name], environment: tty).status == 0)

        // The last layer's blob changed in the registry (its size kept).
        let manifest = try registry.manifest("test/layered", "1")
        let document = try JSONSerialization.jsonObject(with: Data(manifest.body.utf8)) as? [String: Any]
        let last = try #require((document?["layers"] as? [[String: Any]])?.last?["digest"] as? String)
        let hex = String(last.dropFirst(7))
        let data = registry.dir + "/storage/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: data))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: data))
        let broken = box.dir + "/broken"
        expectRefused(try gocker(box, ["pull", name], environment: ["GOCKER_DATA_ROOT": broken]), "blob \(last): digest mismatch")
        for dir in ["images", "layers", "archives"] {
            #expect(box.list(broken + "/image/" + dir).isEmpty, "\(dir): \(box.list(broken + "/image/" + dir))")
        }
        #expect(!box.list(broken + "/image").contains { $0.hasPrefix(".tmp-pull-") })
    }

    /// registries.json's mirrors: a registry's image comes from its
    /// mirror, and the registry (here one that nothing answers for, on
    /// loopback) is asked only where the mirror lacks the image. A file
    /// gocker cannot read whole is one line, and nothing is pulled.
    @Test func aMirrorIsAskedFirst() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        _ = try pushedBusybox(box, registry)
        let upstream = "127.0.0.1:9"
        let config = box.dir + "/gocker-config"
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        try #"{"mirrors": {"\#(upstream)": ["http://\#(registry.host)"]}}"#
            .write(toFile: config + "/registries.json", atomically: true, encoding: .utf8)

        let name = upstream + "/test/busybox:1"
        let pull = try gocker(box, ["pull", name])
        #expect(pull.status == 0, "\(pull.stdout) \(pull.stderr)")
        #expect(pull.stdout.contains("1: Pulling from test/busybox\n") && pull.stdout.contains("Status: Downloaded newer image for \(name)\n"),
                "\(pull.stdout)")
        let run = try gocker(box, ["run", "--rm", "--network", "none", name, "echo", "mirrored"])
        #expect(run.status == 0 && run.stdout == "mirrored\n", "\(run.stderr)")
        #expect(try gocker(box, ["rmi", name]).status == 0)

        // Not on the mirror: the registry itself, which does not answer.
        let before = storeListing(box)
        let absent = try gocker(box, ["pull", upstream + "/test/absent:1"], environment: ["GOCKER_REGISTRY_TIMEOUT": "5"])
        expectRefused(absent, upstream)
        #expect(storeListing(box) == before)

        for (text, why) in [(#"{"registry-mirrors": ["http://\#(registry.host)/v2"]}"#, "is not an http(s)://HOST[:PORT] URL"),
                            (#"{"max-concurrent-downloads": 3}"#, "unsupported member \"max-concurrent-downloads\"")] {
            try text.write(toFile: config + "/registries.json", atomically: true, encoding: .utf8)
            expectRefused(try gocker(box, ["pull", name]), why)
            expectRefused(try gocker(box, ["push", name]), why)
            #expect(storeListing(box) == before)
        }
    }

    @Test func runAndCreatePullAMissingImage() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let name = try pushedBusybox(box, registry)

        expectRefused(try gocker(box, ["run", "--rm", "--pull", "never", name, "true"]), "unable to find image '\(name)' locally")
        expectRefused(try gocker(box, ["run", "--rm", "--pull", "sometimes", name, "true"]), "invalid pull option: 'sometimes'")
        let run = try gocker(box, ["run", "--rm", "--pull", "missing", "--network", "none", name, "echo", "ran"])
        #expect(run.status == 0 && run.stdout == "ran\n", "\(run.stderr)")
        #expect(run.stderr.hasPrefix("Unable to find image '\(name)' locally\n1: Pulling from test/busybox\n"), "\(run.stderr)")
        #expect(run.stderr.contains("Status: Downloaded newer image for \(name)\n"), "\(run.stderr)")
        // Present now: nothing pulled, nothing said.
        let again = try gocker(box, ["run", "--rm", "--network", "none", name, "echo", "again"])
        #expect(again.status == 0 && again.stdout == "again\n" && again.stderr.isEmpty, "\(again.stderr)")
        // --pull always asks the registry first.
        let always = try gocker(box, ["create", "--pull", "always", "--network", "none", name, "true"])
        #expect(always.status == 0 && always.stderr.contains("Status: Image is up to date for \(name)\n"), "\(always.stderr)")
        let id = always.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try gocker(box, ["rm", id]).status == 0)
        #expect(try gocker(box, ["rmi", name]).status == 0)
    }

    /// Two pulls of one image at once: one downloads, the other waits and
    /// finds the layer here; both end with the image.
    @Test func concurrentPullsDownloadOnce() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let name = try pushedBusybox(box, registry)
        let started = [try box.start(["pull", name]), try box.start(["pull", name])]
        for (p, _) in started { box.finish(p, within: 60) }
        let both = started.map { (p, out) in (status: p.terminationStatus, stdout: box.contents(out), stderr: box.contents(out + ".err")) }
        #expect(both.allSatisfy { $0.status == 0 }, "\(both.map(\.stderr))")
        #expect(both.filter { $0.stdout.contains(": Pull complete\n") }.count == 1, "\(both.map(\.stdout))")
        #expect(both.filter { $0.stdout.contains(": Already exists\n") }.count == 1, "\(both.map(\.stdout))")
        #expect(box.list(box.dataRoot + "/image/layers").count == 1)
        #expect(try gocker(box, ["rmi", name]).status == 0)
    }

    /// gocker's own image pushed, read back by skopeo, then pulled back
    /// into an empty store: the same layers and the same content.
    @Test func aPushedImageComesBackTheSame() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        // Names, modes, links, owners and sizes; not the times (two runs a
        // minute apart differ there: /etc's per-container files are new).
        let listing = "ls -la /bin /etc | awk '{ $6 = $7 = $8 = \"\"; print }' | md5sum"
        let before = try gocker(box, ["run", "--rm", "--network", "none", "busybox", "sh", "-c", listing])
        try #require(before.status == 0, "\(before.stderr)")
        let original = try inspect(box, "busybox")
        let name = registry.host + "/test/pushed:1"
        #expect(try gocker(box, ["tag", "busybox", name]).status == 0)

        let push = try gocker(box, ["push", name])
        #expect(push.status == 0, "\(push.stderr)")
        let lines = push.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "The push refers to repository [\(registry.host)/test/pushed]", "\(push.stdout)")
        #expect(lines.contains { $0.hasSuffix(": Pushed") }, "\(push.stdout)")
        let manifest = try registry.get("/v2/test/pushed/manifests/1", headers: ["Accept": PrivateRegistry.manifestTypes.joined(separator: ", ")])
        #expect(manifest.status == 200)
        let digest = try #require(manifest.headers["docker-content-digest"])
        #expect(lines.last?.hasPrefix("1: digest: \(digest) size: ") == true, "\(push.stdout)")
        // Another tool reads it whole (every blob against its digest).
        let copy = try registry.skopeo(["copy"] + registry.access("src-") + ["docker://\(name)", "oci-archive:\(box.dir)/back.tar"])
        #expect(copy.status == 0, "\(copy.output)")
        let again = try gocker(box, ["push", name])
        #expect(again.status == 0 && again.stdout.contains(": Layer already exists\n") && !again.stdout.contains(": Pushed\n"),
                "\(again.stdout) \(again.stderr)")

        // Back into a store without it.
        #expect(try gocker(box, ["rmi", name, "busybox"]).status == 0)
        #expect(box.list(box.dataRoot + "/image/layers").isEmpty)
        let pull = try gocker(box, ["pull", "-q", name])
        #expect(pull.status == 0, "\(pull.stderr)")
        let pulled = try inspect(box, name)
        let document = try JSONSerialization.jsonObject(with: Data(manifest.body.utf8)) as? [String: Any]
        #expect(pulled["Id"] as? String == (document?["config"] as? [String: Any])?["digest"] as? String)
        #expect(pulled["Id"] as? String == original["Id"] as? String, "gocker's busybox keeps its id through a registry")
        #expect((pulled["RootFS"] as? [String: Any])?["Layers"] as? [String] == (original["RootFS"] as? [String: Any])?["Layers"] as? [String])
        let after = try gocker(box, ["run", "--rm", "--network", "none", name, "sh", "-c", listing])
        #expect(after.status == 0 && after.stdout == before.stdout, "\(after.stderr)")
        expectRefused(try gocker(box, ["push", registry.host + "/test/absent:1"]), "unable to find image")
        #expect(try gocker(box, ["rmi", name]).status == 0)
    }

    /// The store's disk fills up halfway through: one line, and nothing
    /// of the pull left (what a killed pull left goes with the next).
    @Test func aFullDiskLeavesNothing() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let name = try pushedBusybox(box, registry)
        // A store of its own on a 1.5 MB tmpfs: the gzip layer (about 1 MB)
        // fits, what it unpacks to (about 2 MB) does not.
        let small = box.dir + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try #require(try sh("mount -t tmpfs -o size=1536k tmpfs '\(small)'") == 0)
        defer { _ = try? sh("umount '\(small)'") }
        try FileManager.default.createDirectory(atPath: small + "/image/.tmp-pull-0123456789abcdef/blobs", withIntermediateDirectories: true)
        let r = try gocker(box, ["pull", name], environment: ["GOCKER_DATA_ROOT": small])
        expectRefused(r, "no space left on device")
        let left = box.list(small + "/image").filter { !$0.hasSuffix("lock") }
        #expect(left.allSatisfy { ["images", "layers", "archives", "repositories.json", "init"].contains($0) }, "\(left)")
        for dir in ["images", "layers", "archives"] {
            #expect(box.list(small + "/image/" + dir).isEmpty, "\(dir): \(box.list(small + "/image/" + dir))")
        }
    }

    @Test func badAnswersLeaveNothing() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let name = try pushedBusybox(box, registry)
        let before = storeListing(box)

        expectRefused(try gocker(box, ["pull", registry.host + "/test/busybox:nope"]),
                      "manifest for \(registry.host)/test/busybox:nope not found: manifest unknown")
        expectRefused(try gocker(box, ["pull", registry.host + "/test/none"]), "manifest for \(registry.host)/test/none:latest not found")
        expectRefused(try gocker(box, ["pull", registry.host + "/test/busybox@sha256:" + String(repeating: "0", count: 64)]),
                      "not found")
        expectRefused(try gocker(box, ["pull", "Bad/Name"]), "invalid reference format")
        expectRefused(try gocker(box, ["pull", "--platform", "linux", name]), "invalid platform \"linux\"")
        expectRefused(try gocker(box, ["pull", "--platform", "linux/s390x", name]), "the image is for linux/amd64, not linux/s390x")
        #expect(storeListing(box) == before)

        // A layer blob changed in the registry's storage, its size kept:
        // refused before anything of it is extracted.
        let blobs = registry.dir + "/storage/docker/registry/v2/blobs/sha256"
        let manifest = try registry.manifest("test/busybox", "1")
        let document = try JSONSerialization.jsonObject(with: Data(manifest.body.utf8)) as? [String: Any]
        let layer = try #require((document?["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        let hex = String(layer.dropFirst(7))
        let data = "\(blobs)/\(hex.prefix(2))/\(hex)/data"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: data))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: data))
        expectRefused(try gocker(box, ["pull", name]), "blob \(layer): digest mismatch")
        #expect(storeListing(box) == before)
    }

    @Test func aPlatformIsChosenFromAnIndex() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box)
        let archive = try PrivateRegistry.busyboxArchive(box)
        // An OCI layout whose index names busybox twice: as it is
        // (linux/amd64) and with a config that says linux/arm64.
        let layout = box.dir + "/multi"
        try FileManager.default.createDirectory(atPath: layout, withIntermediateDirectories: true)
        #expect(try sh("tar -xf '\(archive)' -C '\(layout)'") == 0)
        func json(_ path: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        }
        func blob(_ object: Any) throws -> [String: Any] {
            let bytes = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            let hex = SHA256.hash([UInt8](bytes)).hex
            try bytes.write(to: URL(fileURLWithPath: "\(layout)/blobs/sha256/\(hex)"))
            return ["digest": "sha256:" + hex, "size": bytes.count]
        }
        let top = try json(layout + "/index.json")
        let entry = try #require((top["manifests"] as? [[String: Any]])?.first)
        let amd64Digest = try #require(entry["digest"] as? String)
        var manifest = try json("\(layout)/blobs/sha256/\(amd64Digest.dropFirst(7))")
        let configDescriptor = try #require(manifest["config"] as? [String: Any])
        var config = try json("\(layout)/blobs/sha256/\((configDescriptor["digest"] as! String).dropFirst(7))")
        #expect(config["architecture"] as? String == "amd64")
        config["architecture"] = "arm64"
        config["variant"] = "v8"
        manifest["config"] = configDescriptor.merging(try blob(config)) { $1 }
        let arm64 = try blob(manifest)
        let index: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64Digest, "size": entry["size"]!,
             "platform": ["os": "linux", "architecture": "amd64"]],
            ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64["digest"]!, "size": arm64["size"]!,
             "platform": ["os": "linux", "architecture": "arm64", "variant": "v8"]],
        ]]
        var nested = try blob(index)
        nested["mediaType"] = "application/vnd.oci.image.index.v1+json"
        nested["annotations"] = ["org.opencontainers.image.ref.name": "multi"]
        let newTop: [String: Any] = ["schemaVersion": 2, "manifests": [nested]]
        try JSONSerialization.data(withJSONObject: newTop).write(to: URL(fileURLWithPath: layout + "/index.json"))
        let copy = try registry.skopeo(["copy", "--all"] + registry.access("dest-") + ["oci:\(layout):multi", "docker://\(registry.host)/test/multi:1"])
        try #require(copy.status == 0, "\(copy.output)")

        let name = registry.host + "/test/multi:1"
        let indexDigest = try #require(try registry.get("/v2/test/multi/manifests/1", headers: [
            "Accept": PrivateRegistry.manifestTypes.joined(separator: ", ")]).headers["docker-content-digest"])
        let host = try gocker(box, ["pull", name])
        #expect(host.status == 0 && host.stdout.contains("Digest: \(indexDigest)\n"), "\(host.stdout) \(host.stderr)")
        let hostImage = try inspect(box, name)
        #expect(hostImage["Architecture"] as? String == "amd64")
        let arm = try gocker(box, ["pull", "--platform", "linux/arm64", name])
        #expect(arm.status == 0 && arm.stdout.contains("Digest: \(indexDigest)\n"), "\(arm.stdout) \(arm.stderr)")
        // The same layer, already here: not downloaded for the second.
        #expect(arm.stdout.contains(": Already exists\n"), "\(arm.stdout)")
        let armImage = try inspect(box, name)
        #expect(armImage["Architecture"] as? String == "arm64")
        #expect(armImage["Id"] as? String != hostImage["Id"] as? String)
        // Pushed on, it carries the config another tool wrote, byte for
        // byte: its id stays the config's digest.
        let armConfig = try #require((manifest["config"] as? [String: Any])?["digest"] as? String)
        #expect(armImage["Id"] as? String == armConfig)
        let armCopy = registry.host + "/test/armcopy:1"
        #expect(try gocker(box, ["tag", name, armCopy]).status == 0)
        #expect(try gocker(box, ["push", "-q", armCopy]).status == 0)
        let pushed = try JSONSerialization.jsonObject(with: Data(try registry.manifest("test/armcopy", "1").body.utf8)) as? [String: Any]
        #expect((pushed?["config"] as? [String: Any])?["digest"] as? String == armConfig)
        #expect(try gocker(box, ["rmi", armCopy]).status == 0)
        #expect(try gocker(box, ["rmi", hostImage["Id"] as! String]).status == 0)
        _ = arm64
        expectRefused(try gocker(box, ["pull", "--platform", "linux/s390x", name]),
                      "no matching manifest for linux/s390x in the manifest list entries")
        #expect(try gocker(box, ["rmi", name]).status == 0)
        _ = try gocker(box, ["rmi", "busybox"])
    }

    @Test func basicAuthThroughLoginAndLogout() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box, htpasswd: (user: "tester", password: "s3cret-pw"))
        let name = try pushedBusybox(box, registry)

        expectRefused(try gocker(box, ["pull", name]), "no basic auth credentials")
        expectRefused(try gocker(box, ["login", "-u", "tester", "--password-stdin", registry.host], input: "wrong\n"),
                      "login attempt to http://\(registry.host)/v2/ failed with status: 401")
        #expect(!FileManager.default.fileExists(atPath: box.dir + "/docker/config.json"))
        let login = try gocker(box, ["login", "-u", "tester", "--password-stdin", registry.host], input: "s3cret-pw\n")
        #expect(login.status == 0 && login.stdout == "Login Succeeded\n", "\(login.stderr)")
        let config = box.dir + "/docker/config.json"
        let mode = try FileManager.default.attributesOfItem(atPath: config)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let stored = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config))) as? [String: Any])
        let auth = (stored["auths"] as? [String: [String: String]])?[registry.host]?["auth"]
        #expect(auth == Data("tester:s3cret-pw".utf8).base64EncodedString())

        let pull = try gocker(box, ["pull", "-q", name])
        #expect(pull.status == 0 && pull.stdout == name + "\n", "\(pull.stderr)")
        #expect(try gocker(box, ["tag", name, registry.host + "/test/again:1"]).status == 0)
        let push = try gocker(box, ["push", "-q", registry.host + "/test/again:1"])
        #expect(push.status == 0 && push.stdout.isEmpty, "\(push.stderr)")
        #expect(try gocker(box, ["rmi", registry.host + "/test/again:1"]).status == 0)
        let logout = try gocker(box, ["logout", registry.host])
        #expect(logout.stdout == "Removing login credentials for \(registry.host)\n", "\(logout.stderr)")
        #expect(try gocker(box, ["logout", registry.host]).stdout == "Not logged in to \(registry.host)\n")
        #expect(try gocker(box, ["rmi", name]).status == 0)
        expectRefused(try gocker(box, ["pull", name]), "no basic auth credentials")
    }

    /// A registry that wants bearer tokens from a token server: an
    /// anonymous token pulls but does not push; `login` goes through the
    /// token server; with the credentials a push gets a token for both
    /// repositories it needs (its own, and the one it mounts a layer from).
    @Test func bearerTokensAnonymousAndWithCredentials() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let tokens = try TokenServer(in: box, user: "tester", password: "t0ken-pw")
        let registry = try PrivateRegistry(in: box, token: tokens)
        let name = try pushedBusybox(box, registry)
        #expect(tokens.requests.contains { $0.user == "tester" && $0.actions["test/busybox"] == ["pull", "push"] },
                "skopeo's push: \(tokens.requests)")

        var before = tokens.requests.count
        let pull = try gocker(box, ["pull", "-q", name])
        #expect(pull.status == 0 && pull.stdout == name + "\n", "\(pull.stderr)")
        #expect(Array(tokens.requests.dropFirst(before))
                == [.init(user: "", service: tokens.service, scopes: ["repository:test/busybox:pull"])], "\(tokens.requests)")

        let again = registry.host + "/test/again:1"
        #expect(try gocker(box, ["tag", name, again]).status == 0)
        expectRefused(try gocker(box, ["push", again]), "authentication required")

        expectRefused(try gocker(box, ["login", "-u", "tester", "--password-stdin", registry.host], input: "wrong\n"),
                      "wrong user name or password")
        #expect(!FileManager.default.fileExists(atPath: box.dir + "/docker/config.json"))
        before = tokens.requests.count
        let login = try gocker(box, ["login", "-u", "tester", "--password-stdin", registry.host], input: "t0ken-pw\n")
        #expect(login.status == 0 && login.stdout == "Login Succeeded\n", "\(login.stderr)")
        #expect(Array(tokens.requests.dropFirst(before)) == [.init(user: "tester", service: tokens.service, scopes: [])],
                "\(tokens.requests)")

        before = tokens.requests.count
        let push = try gocker(box, ["push", again])
        #expect(push.status == 0 && push.stdout.contains("Mounted from test/busybox"), "\(push.stdout) \(push.stderr)")
        #expect(tokens.requests.dropFirst(before).contains {
            $0.user == "tester" && $0.actions == ["test/again": ["pull", "push"], "test/busybox": ["pull"]]
        }, "\(tokens.requests)")
        #expect(try registry.manifest("test/again", "1").status == 401, "the registry asks for a token")

        #expect(try gocker(box, ["logout", registry.host]).status == 0)
        #expect(try gocker(box, ["rmi", again]).status == 0)
        #expect(try gocker(box, ["rmi", name]).status == 0)
    }

    @Test func tlsIsVerifiedAgainstTheRegistrysOwnCA() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        let registry = try PrivateRegistry(in: box, tls: true)
        let name = try pushedBusybox(box, registry)

        expectRefused(try gocker(box, ["pull", name]), "certificate")
        let certs = box.dir + "/gocker-config/certs.d/" + registry.host
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try #require(registry.caFile), toPath: certs + "/ca.crt")
        let pull = try gocker(box, ["pull", name])
        #expect(pull.status == 0 && pull.stdout.hasSuffix(name + "\n"), "\(pull.stdout) \(pull.stderr)")
        #expect(try gocker(box, ["rmi", name]).status == 0)
    }

    /// A server on loopback that says nothing, or nonsense.
    @Test func aStallingOrGarbledRegistryIsAnErrorInTime() throws {
        let box = try Sandbox()
        defer { box.expectNothingLeft() }
        for reply in ["", "hello there\r\n\r\n"] {
            let (server, port) = try listenOnLoopback()
            defer { close(server) }
            // Each connection gets `reply` and is held open until the end.
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                var held: [Int32] = []
                while true {
                    let c = accept(server, nil, nil)
                    if c < 0 { break }
                    held.append(c)
                    _ = reply.withCString { write(c, $0, strlen($0)) }
                }
                for c in held { close(c) }
                done.signal()
            }
            thread.start()
            let r = try gocker(box, ["pull", "127.0.0.1:\(port)/test/x:1"], environment: ["GOCKER_REGISTRY_TIMEOUT": "1"])
            shutdown(server, Int32(SHUT_RDWR))
            done.wait()
            expectRefused(r, reply.isEmpty ? "timeout" : "malformed HTTP response")
        }
        #expect(!box.list(box.dataRoot + "/image").contains { $0.hasPrefix(".tmp-pull-") })
    }
}
