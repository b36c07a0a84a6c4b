import Foundation
import GockerRuntime
import GockerCore
import Testing
@testable import GockerBench

struct BenchPlanTests {
    @Test func defaultRows() {
        let rows = Bench.rows(runtimes: ["runc", "/opt/crun"], matrix: false)
        #expect(rows.map(\.name) == ["gocker run --rm", "gocker run --rm seccomp=unconfined", "gocker run --rm --network none",
                                     "gocker run --rm -p 80", "gocker oci run", "runc run",
                                     "/opt/crun run", "C floor: clone, pivot_root, exec"])
        #expect(rows[7].target == .floor)
        #expect(rows[0].target == .run(flags: []))
        #expect(rows[1].target == .run(flags: ["--security-opt", "seccomp=unconfined"]))
        #expect(rows[2].target == .run(flags: ["--network", "none"]))
        #expect(rows[3].target == .run(flags: ["-p", "80"]))
        #expect(rows[4].target == .oci)
        #expect(rows[6].target == .runtime("/opt/crun") && rows[6].runtime == "/opt/crun")
        #expect(rows.allSatisfy { !$0.limits })
    }

    @Test func theMatrix() {
        let rows = Bench.rows(runtimes: ["runc"], matrix: true)
        #expect(rows.map(\.name) == [
            "gocker run --rm", "gocker run --rm seccomp=unconfined", "gocker run --rm --network none", "gocker run --rm -p 80",
            "gocker run --rm cgroupfs", "gocker run --rm limits",
            "gocker run --rm cgroupfs limits",
            "gocker run --rm --network host", "gocker oci run", "gocker oci run limits", "runc run", "runc run limits",
            "C floor: clone, pivot_root, exec",
        ])
        #expect(rows[6].target == .run(flags: ["--cgroup-backend=cgroupfs"] + Bench.limitFlags))
        #expect(rows.filter(\.limits).count == 4)
    }

    @Test func bundleRowsForEveryRuntime() {
        let bundles = [Bench.UserBundle(name: "canonical", path: "/b/canonical"), Bench.UserBundle(name: "x", path: "/y/x")]
        let rows = Bench.rows(runtimes: ["runc"], matrix: true, bundles: bundles)
        let given = rows.filter { $0.bundle != nil }
        #expect(given.map(\.name) == ["gocker oci run [canonical]", "runc run [canonical]", "gocker oci run [x]", "runc run [x]"])
        #expect(given.map(\.bundle) == ["/b/canonical", "/b/canonical", "/y/x", "/y/x"])
        #expect(given.map(\.target) == [.oci, .runtime("runc"), .oci, .runtime("runc")])
        #expect(given.allSatisfy { !$0.limits })
        #expect(rows.last?.target == .floor)
        #expect(Bench.rows(runtimes: ["runc"], matrix: true).count == rows.count - 4)
    }

    @Test func bundlesAreCheckedAndNamed() throws {
        let dir = try TempDir()
        for d in ["a/same", "b/same", "c/same", "same-2/", "nocfg", "bad"] {
            try FileManager.default.createDirectory(atPath: dir.path + "/" + d, withIntermediateDirectories: true)
        }
        let config = JSONText.pretty(Bench.canonicalSpec().jsonBytes)
        for d in ["a/same", "b/same", "c/same", "same-2"] {
            try Data(config).write(to: URL(fileURLWithPath: "\(dir.path)/\(d)/config.json"))
        }
        try Data("[1,".utf8).write(to: URL(fileURLWithPath: dir.path + "/bad/config.json"))
        let named = try Bench.checkBundles(["a/same", "b/same", "same-2", "c/same/"].map { dir.path + "/" + $0 })
        #expect(named.map(\.name) == ["same", "same-2", "same-2-2", "same-3"])
        #expect(named[3].path == dir.path + "/c/same")
        for (bad, why) in [("nocfg", "no config.json"), ("bad", "parse"), ("none", "not a directory"), ("a/same/config.json", "not a directory")] {
            #expect { try Bench.checkBundles([dir.path + "/" + bad]) } throws: { error in
                let e = error as? GockerError
                return e?.description.contains(why) == true && e?.description.contains("--bundle \(dir.path)/\(bad)") == true
            }
        }
    }

    @Test func theCanonicalBundleIsRuncSpecRunningTrue() throws {
        var spec = Bench.canonicalSpec()
        #expect(spec.process?.args == ["true"] && spec.process?.terminal == false)
        spec.process?.args = ["sh"]
        spec.process?.terminal = true
        #expect(spec == DefaultSpec.make())
    }

    @Test func theTreeIsTheSameForTheSameSeed() throws {
        let dir = try TempDir()
        let one = try BenchTree(size: 1 << 20, seed: 7).write(to: dir.path + "/one") { false }
        let two = try BenchTree(size: 1 << 20, seed: 7).write(to: dir.path + "/two") { false }
        let other = try BenchTree(size: 1 << 20, seed: 8).write(to: dir.path + "/other") { false }
        #expect(one == two && one.bytes == 1 << 20 && other.bytes == one.bytes)
        #expect(one.files > 10 && one.directories > 1)
        func contents(_ root: String) throws -> [String: Data] {
            var out: [String: Data] = [:]
            for p in FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? [] {
                let full = root + "/" + p
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: full) {
                    // Beside its target, never above the tree.
                    #expect(!target.contains("/") && FileManager.default.fileExists(atPath: (full as NSString).deletingLastPathComponent + "/" + target))
                    out[p] = Data(("-> " + target).utf8)
                } else if let d = FileManager.default.contents(atPath: full) {
                    out[p] = d
                }
            }
            return out
        }
        let a = try contents(dir.path + "/one")
        #expect(try a == contents(dir.path + "/two"))
        #expect(try a != contents(dir.path + "/other"))
        // Not all zeros, not all the same byte.
        let all = a.values.reduce(into: Data()) { $0.append($1) }
        #expect(Set(all).count > 200)
    }

    @Test func percentilesInterpolate() throws {
        let s = try #require(BenchStats((1...100).map(Double.init).reversed()))
        #expect(s.min == 1 && s.max == 100 && s.total == 5050 && s.mean == 50.5)
        #expect(s.p50 == 50.5)
        #expect(abs(s.p99 - 99.01) < 1e-9)
        #expect(BenchStats([]) == nil)
        #expect(BenchStats([7])?.p99 == 7)
    }

    @Test func theBundleIsWhatRunAsksFor() throws {
        let bench = Bench(Bench.Options(dataRoot: "/d", stateRoot: "/s", gocker: "/g"))
        let image = ImageRecord(id: "x", layers: [], config: ImageConfig(Env: ["PATH=/bin"]), created: "")
        let spec = try bench.bundleSpec(image: image, etc: "/b/etc", rootfs: "/b/rootfs", cgroupsPath: "/p/c1", limits: true)
        #expect(spec.root == Spec.Root(path: "/b/rootfs", readonly: false))
        #expect(spec.annotations == nil)
        #expect(spec.linux?.cgroupsPath == "/p/c1")
        #expect(spec.process?.args == ["true"])
        #expect(spec.linux?.resources?.memory?.limit == 64 << 20)
        #expect(spec.linux?.resources?.pids?.limit == 100)
        #expect(spec.linux?.namespaces?.map(\.type).sorted() == ["ipc", "mount", "network", "pid", "uts"])
        #expect(spec.mounts?.contains { $0.destination == "/etc/hosts" && $0.source == "/b/etc/hosts" } == true)
    }
}

/// A temporary directory, removed at the end.
final class TempDir {
    let path: String
    init() throws {
        var template = Array("/tmp/gocker-bench-unit-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw POSIXError(.EIO) }
        path = String(cString: p)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct BenchReportTests {
    /// Whether the binary's code is in 2 MB pages, read from smaps: its
    /// executable mapping's FilePmdMapped, not another file's, nor its data's.
    @Test func codeIn2MBPagesFromSmaps() {
        func smaps(code: Int, data: Int, path: String = "/opt/gocker bin/gocker") -> String {
            """
            00200000-007ac000 r--p 00000000 fe:00 12                                 \(path)
            Rss:                4096 kB
            FilePmdMapped:      \(data) kB
            00800000-0183f000 r-xp 00400000 fe:00 12                                 \(path)
            Rss:                8316 kB
            FilePmdMapped:      \(code) kB
            VmFlags: rd ex mr mw me
            7f0000000000-7f0000200000 r-xp 00000000 fe:00 99                         /usr/lib/other.so
            FilePmdMapped:      2048 kB
            """
        }
        #expect(BenchResult.codeIn2MBPages(smaps: smaps(code: 8192, data: 0), binary: "/opt/gocker bin/gocker") == true)
        #expect(BenchResult.codeIn2MBPages(smaps: smaps(code: 0, data: 4096), binary: "/opt/gocker bin/gocker") == false)
        #expect(BenchResult.codeIn2MBPages(smaps: smaps(code: 8192, data: 0), binary: "/usr/bin/gocker") == nil)
        #expect(BenchResult.codeIn2MBPages(smaps: "", binary: "/opt/gocker bin/gocker") == nil)
    }

    func result() -> BenchResult {
        let ok = BenchStats([10, 11, 12, 30])!
        return BenchResult(
            machine: .init(kernel: "6.1.0-test", cpus: 2, date: "2026-01-02T03:04:05.6Z"), gocker: "/g",
            count: 4, warmup: 1, parallel: 1, interruptedBy: nil,
            summary: [
                BenchSummary(runtime: "gocker", row: "gocker run --rm", command: ["/g"], n: 4, failedStarts: 0,
                             failed: false, error: nil, stats: ok, ratio: 1, throughput: 80,
                             phases: [.init(name: "exec", total: 4, mean: 1)]),
                BenchSummary(runtime: "crun", row: "crun run", command: ["crun"], n: 0, failedStarts: 1,
                             failed: true, error: "cgroups in hybrid mode <not> supported & more", stats: nil,
                             ratio: nil, throughput: nil, phases: []),
            ],
            samples: [BenchSample(runtime: "crun", row: "crun run", index: 0, warmup: true, ms: nil, ok: false, error: "x")])
    }

    @Test func theTable() {
        let t = result().table()
        #expect(t.contains("Linux 6.1.0-test, 2 CPUs"))
        #expect(!t.contains("gocker's code in"), "nothing said where smaps said nothing")
        var huge = result()
        huge.machine.codeIn2MBPages = true
        #expect(huge.table().contains("2026-01-02T03:04:05Z; gocker's code in 2 MB pages\n"))
        huge.machine.codeIn2MBPages = false
        #expect(huge.table().contains("; gocker's code in 4 KB pages (./build.sh release writes it for 2 MB ones)\n"))
        let lines = t.split(separator: "\n")
        let header = try! #require(lines.first { $0.hasPrefix("runtime/row") })
        for column in ["n", "p50", "p90", "p99", "min", "max", "total", "starts/s", "ratio"] {
            #expect(header.split(separator: " ").contains(Substring(column)))
        }
        #expect(lines.contains { $0.hasPrefix("gocker run --rm") && $0.contains("11.50") && $0.hasSuffix("1.00x") })
        #expect(lines.contains { $0.hasPrefix("crun run") && $0.contains("failed: cgroups in hybrid mode") })
        #expect(lines.contains { $0.hasPrefix("exec") && $0.hasSuffix("1.000") })
    }

    @Test func everyFieldInTheJSONNullsIncluded() throws {
        let text = String(decoding: JSON.encode(result()), as: UTF8.self)
        #expect(text.contains(#""ms":null"#))
        #expect(text.contains(#""p50":null"#))
        #expect(text.contains(#""ratio":null"#))
        let back = try JSON.decode(BenchResult.self, from: Array(text.utf8), what: "bench")
        #expect(back == result())
    }

    @Test func theChart() {
        let svg = result().svg()
        #expect(svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("Linux 6.1.0-test · 2 CPUs · 2026-01-02 03:04 UTC"))
        #expect(svg.contains("&lt;not&gt; supported &amp; more"))
        #expect(!svg.contains("<not>"))
        #expect(svg.contains("milliseconds"))
    }

    @Test func niceAxis() {
        #expect(BenchResult.niceStep(3.3) == 5)
        #expect(BenchResult.niceStep(0.7) == 1)
        #expect(BenchResult.niceStep(12) == 20)
        #expect(BenchResult.niceCeiling(21, margin: 1) == 25)
    }
}
