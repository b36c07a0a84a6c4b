import Foundation
import Testing

/// `gocker bench`. Nothing here asserts a time: only that every figure is
/// there, that failures are reported, and that nothing is left.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct BenchTests {
    @Test func benchWritesEverySampleAndTheSummary() throws {
        let box = try Sandbox()
        let json = box.dir + "/bench.json"
        let svg = box.dir + "/bench.svg"
        let missingPath = box.dir + "/no-such-runtime"
        let r = try box.gocker(["bench", "-n", "3", "--json", json, "--svg", svg,
                                "--runtime", "gocker-no-such-runtime", "--runtime", missingPath])
        #expect(r.status == 0, "\(r.stderr)")

        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
        let doc = try #require(object as? [String: Any])
        let machine = try #require(doc["machine"] as? [String: Any])
        #expect(machine["kernel"] is String && machine["cpus"] is Int && machine["date"] is String)
        // Read from its own smaps: the debug build's segments are not laid
        // out for 2 MB pages (the release build's are: ReleaseLayoutTests).
        #expect(machine["codeIn2MBPages"] as? Bool == false, "\(machine)")
        #expect(r.stdout.contains("; gocker's code in 4 KB pages"), "\(r.stdout.prefix(300))")
        #expect(doc["count"] as? Int == 3)
        let samples = try #require(doc["samples"] as? [[String: Any]])
        for s in samples {
            #expect(Set(s.keys) == ["runtime", "row", "index", "warmup", "ms", "ok", "error"], "\(s)")
        }
        let rows = ["gocker run --rm", "gocker run --rm seccomp=unconfined", "gocker run --rm --network none", "gocker run --rm -p 80",
                    "gocker oci run", "gocker-no-such-runtime run", "\(missingPath) run", "C floor: clone, pivot_root, exec"]
        for row in rows.prefix(5) + [rows[7]] {
            let measured = samples.filter { $0["row"] as? String == row && $0["warmup"] as? Bool == false }
            #expect(measured.map { $0["index"] as? Int } == [0, 1, 2], "\(row)")
            #expect(measured.allSatisfy { $0["ok"] as? Bool == true && $0["ms"] is Double && $0["error"] is NSNull },
                    "\(measured)")
        }
        let summary = try #require(doc["summary"] as? [[String: Any]])
        #expect(summary.map { $0["row"] as? String } == rows)
        let fields: Set<String> = ["runtime", "row", "command", "n", "failedStarts", "failed", "error", "p50", "p90",
                                   "p99", "min", "max", "mean", "total", "p25", "p75", "ratio", "throughput", "phases"]
        for s in summary { #expect(Set(s.keys) == fields, "\(s)") }
        for s in summary.prefix(5) {
            #expect(s["n"] as? Int == 3 && s["failed"] as? Bool == false)
            for key in ["p50", "p90", "p99", "min", "max", "total", "ratio", "throughput"] {
                #expect((s[key] as? Double ?? 0) > 0, "\(key) of \(s["row"]!)")
            }
            let phases = try #require(s["phases"] as? [[String: Any]])
            #expect(phases.count >= 9 && phases.allSatisfy { ($0["total"] as? Double ?? 0) > 0 }, "\(phases)")
        }
        #expect(summary[0]["ratio"] as? Double == 1)
        // The floor row ran `true` in its own namespaces and root, every time.
        #expect(summary[7]["n"] as? Int == 3 && summary[7]["failed"] as? Bool == false && (summary[7]["p50"] as? Double ?? 0) > 0)
        // The runtimes that do not exist: failed, with why, and not tried again.
        for s in summary[5...6] {
            #expect(s["failed"] as? Bool == true && s["n"] as? Int == 0 && s["p50"] is NSNull)
        }
        #expect((summary[5]["error"] as? String)?.contains("executable file not found in $PATH") == true)
        #expect((summary[6]["error"] as? String)?.contains("no such file or directory") == true)
        #expect(samples.filter { ($0["row"] as? String)?.contains("no-such-runtime") == true }.count == 2)

        #expect(r.stdout.contains("runtime/row"))
        #expect(r.stdout.contains("gocker-no-such-runtime run") && r.stdout.contains("failed: "))
        #expect(r.stdout.contains("gocker's phases"))
        let chart = box.contents(svg)
        #expect(chart.hasPrefix("<svg") && chart.contains("gocker oci run") && chart.hasSuffix("</svg>\n"))
        // Its scratch directory (bundles, copies of the image) is gone, and
        // the default network its run rows made (no bridge left behind).
        #expect(box.list(box.dataRoot + "/tmp") == [])
        #expect(box.list(box.dataRoot + "/networks").isEmpty, "\(box.list(box.dataRoot + "/networks"))")
        box.expectNothingLeft()
    }

    @Test func parallelStartsAndBadInput() throws {
        let box = try Sandbox()
        let json = box.dir + "/bench.json"
        let r = try box.gocker(["bench", "-n", "2", "--warmup", "0", "--parallel", "2", "--json", json])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect(doc["parallel"] as? Int == 2)
        let samples = try #require(doc["samples"] as? [[String: Any]])
        #expect(samples.count == 12 && samples.allSatisfy { $0["ok"] as? Bool == true }, "six rows, two each: \(samples)")
        #expect(r.stdout.contains("2 at a time"))
        let bad = try box.gocker(["bench", "--parallel", "0"])
        #expect(bad.status == 125 && bad.stderr.hasPrefix("gocker: error: "))
        box.expectNothingLeft()
    }
}

/// `gocker bench --bundle`, `--write-bundle` and `--images`.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct BenchModeTests {
    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// A tree's files, symlinks and directories with their sizes and targets.
    func snapshot(_ dir: String) -> [String] {
        let fm = FileManager.default
        return ((fm.enumerator(atPath: dir)?.allObjects as? [String]) ?? []).sorted().map { p in
            let attrs = (try? fm.attributesOfItem(atPath: dir + "/" + p)) ?? [:]
            let link = (try? fm.destinationOfSymbolicLink(atPath: dir + "/" + p)) ?? ""
            return "\(p) \(attrs[.type] ?? "") \(attrs[.size] ?? "") \(attrs[.posixPermissions] ?? "") \(link)"
        }
    }

    @Test func aBundleAsGivenUnderEveryRuntime() throws {
        let box = try Sandbox()
        let bundle = box.dir + "/tiny"
        let w = try box.gocker(["bench", "--write-bundle", bundle])
        #expect(w.status == 0, "\(w.stderr)")
        let config = try json(bundle + "/config.json")
        let process = try #require(config["process"] as? [String: Any])
        #expect(process["args"] as? [String] == ["true"] && process["terminal"] as? Bool == false)
        #expect((config["root"] as? [String: Any])?["path"] as? String == "rootfs")
        #expect(FileManager.default.isExecutableFile(atPath: bundle + "/rootfs/bin/busybox"))
        // Never over one that exists.
        let again = try box.gocker(["bench", "--write-bundle", bundle])
        #expect(again.status == 125 && again.stderr.hasPrefix("gocker: error: ") && again.stderr.contains("exists"))
        let before = (box.contents(bundle + "/config.json"), snapshot(bundle))
        #expect(before.1.count > 5)

        let out = box.dir + "/bench.json"
        let r = try box.gocker(["bench", "-n", "2", "--runtime", "runc", "--bundle", bundle, "--json", out])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try json(out)
        let summary = try #require(doc["summary"] as? [[String: Any]])
        let samples = try #require(doc["samples"] as? [[String: Any]])
        for row in ["gocker oci run [tiny]", "runc run [tiny]"] {
            let s = try #require(summary.first { $0["row"] as? String == row }, "\(summary.map { $0["row"] ?? "" })")
            #expect(s["n"] as? Int == 2 && s["failed"] as? Bool == false && (s["p50"] as? Double ?? 0) > 0, "\(s)")
            #expect((s["command"] as? [String])?.contains(bundle) == true, "\(s)")
            let measured = samples.filter { $0["row"] as? String == row && $0["warmup"] as? Bool == false }
            #expect(measured.count == 2 && measured.allSatisfy { $0["ok"] as? Bool == true && ($0["ms"] as? Double ?? 0) > 0 })
            #expect(r.stdout.split(separator: "\n").contains { $0.hasPrefix(row + " ") && $0.contains(" 2 ") })
        }
        // The bundle's own rows come after the bench's bundle rows, before the floor.
        #expect(summary.last?["row"] as? String == "C floor: clone, pivot_root, exec")
        // Used as given: not a byte of the bundle changed.
        #expect(box.contents(bundle + "/config.json") == before.0)
        #expect(snapshot(bundle) == before.1)
        #expect(box.list(box.dataRoot + "/tmp") == [])
        box.expectNothingLeft()
    }

    /// What `runc spec --bundle DIR` leaves there is the config kept: only
    /// its args and terminal change, and a busybox root comes beside it.
    @Test func writeBundleKeepsTheConfigRuncSpecWrote() throws {
        let box = try Sandbox()
        let bundle = box.dir + "/runc-spec"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: false)
        let spec = try runTool("/usr/sbin/runc", ["spec", "--bundle", bundle], scratch: box.dir)
        #expect(spec.status == 0, "\(spec.output)")
        let written = try json(bundle + "/config.json")
        let w = try box.gocker(["bench", "--write-bundle", bundle])
        #expect(w.status == 0, "\(w.stderr)")
        let config = try json(bundle + "/config.json")
        let process = try #require(config["process"] as? [String: Any])
        #expect(process["args"] as? [String] == ["true"] && process["terminal"] as? Bool == false)
        // runc's own choices stay: its hostname, no cgroup namespace.
        #expect(config["hostname"] as? String == written["hostname"] as? String && config["hostname"] as? String == "runc")
        let namespaces = ((config["linux"] as? [String: Any])?["namespaces"] as? [[String: Any]])?.compactMap { $0["type"] as? String }
        #expect(namespaces == ((written["linux"] as? [String: Any])?["namespaces"] as? [[String: Any]])?.compactMap { $0["type"] as? String })
        #expect(FileManager.default.isExecutableFile(atPath: bundle + "/rootfs/bin/busybox"))
        // Not over a bundle that holds more than a config.
        let again = try box.gocker(["bench", "--write-bundle", bundle])
        #expect(again.status == 125 && again.stderr.contains("exists"), "\(again.stderr)")
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "rs-kept"])
        #expect(r.status == 0, "\(r.stderr)")
        box.expectNothingLeft()
    }

    @Test func twoBundlesOfOneNameAreToldApart() throws {
        let box = try Sandbox()
        for d in ["a/b", "c/b"] {
            try FileManager.default.createDirectory(atPath: box.dir + "/" + d, withIntermediateDirectories: true)
        }
        #expect(try box.gocker(["bench", "--write-bundle", box.dir + "/a/b/x"]).status == 0)
        #expect(try box.gocker(["bench", "--write-bundle", box.dir + "/c/b/x"]).status == 0)
        let r = try box.gocker(["bench", "-n", "1", "--warmup", "0", "--bundle", box.dir + "/a/b/x", "--bundle", box.dir + "/c/b/x"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("gocker oci run [x] ") && r.stdout.contains("gocker oci run [x-2] "), "\(r.stdout)")
        box.expectNothingLeft()
    }

    @Test func aBadBundleIsOneLineAndLeavesNothing() throws {
        let box = try Sandbox()
        let noConfig = box.dir + "/no-config"
        let badJSON = box.dir + "/bad-json"
        let file = box.dir + "/a-file"
        for d in [noConfig, badJSON] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try Data("{\"ociVersion\": ".utf8).write(to: URL(fileURLWithPath: badJSON + "/config.json"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let cases = [(box.dir + "/missing", "not a directory"), (file, "not a directory"),
                     (noConfig, "no config.json"), (badJSON, "config.json")]
        for (path, why) in cases {
            let r = try box.gocker(["bench", "-n", "1", "--bundle", path])
            #expect(r.status == 125, "\(path): \(r.stderr)")
            #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(path) && r.stderr.contains(why), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        // Refused before anything was made: not even the data root.
        #expect(!FileManager.default.fileExists(atPath: box.dataRoot))
        #expect(box.contents(badJSON + "/config.json") == "{\"ociVersion\": ")
        box.expectNothingLeft()
    }

    @Test func imagesSideBySideAndNothingLeft() throws {
        let box = try Sandbox()
        let tmp = box.dir + "/tmpdir"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let out = box.dir + "/images.json"
        let r = try box.gocker(["bench", "--images", "--size", "2M", "-n", "1", "--json", out], environment: ["TMPDIR": tmp])
        #expect(r.status == 0, "\(r.stderr)")
        let operations = ["import tar", "import tar.gz", "load", "save", "commit", "export"]
        let lines = r.stdout.split(separator: "\n").map(String.init)
        for op in operations {
            // operation  n  gocker s  pipeline s  ratio  RSS MB
            let row = try #require(lines.first { $0.hasPrefix(op + "  ") }, "\(op): \(r.stdout)")
            let cells = row.dropFirst(op.count).split(separator: " ").map(String.init)
            #expect(cells.count == 5 && cells[0] == "1", "\(row)")
            guard cells.count == 5 else { continue }
            #expect((Double(cells[1]) ?? 0) > 0 && (Double(cells[2]) ?? 0) > 0, "\(row)")
            #expect(cells[3].hasSuffix("x") && (Double(cells[3].dropLast()) ?? 0) > 0, "\(row)")
            #expect((Double(cells[4]) ?? 0) > 1, "gocker's peak RSS in MB: \(row)")
        }
        let doc = try json(out)
        #expect(doc["count"] as? Int == 1 && doc["size"] as? Int == 2 << 20)
        let tree = try #require(doc["tree"] as? [String: Any])
        #expect((tree["files"] as? Int ?? 0) > 20 && (tree["directories"] as? Int ?? 0) > 1 && (tree["symlinks"] as? Int ?? 0) > 0, "\(tree)")
        #expect(abs((tree["bytes"] as? Int ?? 0) - (2 << 20)) < 1 << 16, "\(tree)")
        // Neither all zeros nor all random: gzip takes it to between a
        // sixth and nine tenths.
        let tarBytes = Double(doc["tarBytes"] as? Int ?? 0), gzipBytes = Double(doc["gzipBytes"] as? Int ?? 0)
        #expect(gzipBytes > tarBytes / 6 && gzipBytes < tarBytes * 0.9, "\(tarBytes) \(gzipBytes)")
        let ops = try #require(doc["operations"] as? [[String: Any]])
        #expect(ops.map { $0["name"] as? String } == operations)
        for op in ops {
            #expect((op["gockerSeconds"] as? [Double])?.count == 1 && (op["pipelineSeconds"] as? [Double])?.count == 1, "\(op)")
            #expect((op["ratio"] as? Double ?? 0) > 0 && (op["peakRSSKB"] as? Int ?? 0) > 0 && op["error"] is NSNull, "\(op)")
        }
        // Everything it made is gone: the tree, the archives, the data
        // roots, the container; nothing in TMPDIR.
        #expect(box.list(tmp) == [])
        #expect(box.list(box.dataRoot) == [], "\(box.list(box.dataRoot))")
        box.expectNothingLeft()
    }

    /// `--pull` against skopeo, from a docker-registry of its own: a row with
    /// both sides' times, an image of the layers asked for, and no registry,
    /// store or copy left.
    @Test(.enabled(if: PrivateRegistry.installed || ProcessInfo.processInfo.environment["CI"] == "true"))
    func pullSideBySideAndNothingLeft() throws {
        let box = try Sandbox()
        let out = box.dir + "/pull.json"
        let r = try box.gocker(["bench", "--pull", "--size", "1M", "--layers", "3", "-n", "1", "--warmup", "0", "--json", out])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("gocker bench --pull: an image of 3 layers holding ") == true, "\(r.stdout)")
        let row = try #require(lines.first { $0.hasPrefix("pull  ") }, "\(r.stdout)")
        let cells = row.dropFirst(4).split(separator: " ").map(String.init)
        #expect(cells.count == 5 && cells[0] == "1" && cells[3].hasSuffix("x"), "\(row)")
        let doc = try json(out)
        #expect(doc["layers"] as? Int == 3 && doc["size"] as? Int == 1 << 20, "\(doc)")
        let op = try #require((doc["operations"] as? [[String: Any]])?.first)
        #expect((op["gockerSeconds"] as? [Double])?.count == 1 && (op["pipelineSeconds"] as? [Double])?.count == 1, "\(op)")
        #expect(op["error"] is NSNull && (op["pipeline"] as? String)?.hasPrefix("skopeo ") == true, "\(op)")
        // The registry it started is stopped; its scratch directory (the
        // image, the registry's storage, the stores and copies) is gone.
        #expect(Self.registryProcesses(under: box.dataRoot).isEmpty)
        #expect(box.list(box.dataRoot) == [], "\(box.list(box.dataRoot))")

        let wrong = try box.gocker(["bench", "--pull", "--images"])
        #expect(wrong.status != 0 && wrong.stderr.contains("--images and --pull are two benches"), "\(wrong.stderr)")
        let layers = try box.gocker(["bench", "--layers", "2"])
        #expect(layers.status != 0 && layers.stderr.contains("--layers goes with --pull"), "\(layers.stderr)")
        box.expectNothingLeft()
    }

    /// The pids of docker-registry processes running now whose command
    /// line names a path under `dir` (their configuration).
    static func registryProcesses(under dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
            guard pid.allSatisfy(\.isNumber),
                  let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let text = String(decoding: line, as: UTF8.self)
            return text.hasPrefix("docker-registry") || text.contains("/docker-registry\0") ? text.contains(dir + "/") : false
        }
    }
}
