import Testing
@testable import GockerCLI

struct BenchArgumentTests {
    @Test func benchFlags() throws {
        let b = try #require(try Gocker.parseAsRoot(["bench", "-n", "3", "--runtime", "runc", "--runtime", "/opt/crun",
                                                     "--matrix", "--parallel", "2", "--warmup", "0",
                                                     "--json", "/tmp/b.json", "--svg", "/tmp/b.svg"]) as? Bench)
        #expect(b.count == 3 && b.runtime == ["runc", "/opt/crun"] && b.matrix && b.parallel == 2 && b.warmup == 0)
        #expect(b.json == "/tmp/b.json" && b.svg == "/tmp/b.svg")
        let d = try #require(try Gocker.parseAsRoot(["bench"]) as? Bench)
        #expect(d.count == 100 && d.runtime == [] && !d.matrix && d.parallel == 1 && d.warmup == 1)
    }

    @Test func badBenchInputIsRefusedBeforeAnythingRuns() {
        #expect(GockerMain.run(["bench", "-n", "0"]) == 125)
        #expect(GockerMain.run(["bench", "--parallel", "0"]) == 125)
        #expect(GockerMain.run(["bench", "--runtime", ""]) == 125)
    }

    @Test func runTakesTimings() throws {
        let run = try #require(try RunLine.parse(["--rm", "--timings", "busybox", "true"]))
        #expect(run.timings && run.request.image == "busybox" && run.request.command == ["true"])
        #expect(try #require(try RunLine.parse(["busybox"])).timings == false)
    }
}
