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
