import Testing
@testable import GockerCLI
import GockerRegistry

struct BenchArgumentTests {
    @Test func benchFlags() throws {
        let b = try #require(try Gocker.parseAsRoot(["bench", "-n", "3", "--runtime", "runc", "--runtime", "/opt/crun",
                                                     "--matrix", "--parallel", "2", "--warmup", "0",
                                                     "--json", "/tmp/b.json", "--svg", "/tmp/b.svg"]) as? Bench)
        #expect(b.count == 3 && b.runtime == ["runc", "/opt/crun"] && b.matrix && b.parallel == 2 && b.warmup == 0)
        #expect(b.json == "/tmp/b.json" && b.svg == "/tmp/b.svg")
        let d = try #require(try Gocker.parseAsRoot(["bench"]) as? Bench)
        #expect(d.count == nil && d.runtime == [] && !d.matrix && d.parallel == 1 && d.warmup == 1)
        #expect(d.bundle == [] && d.writeBundle == nil && !d.images && d.size == nil)
    }

    @Test func bundleAndImagesFlags() throws {
        let b = try #require(try Gocker.parseAsRoot(["bench", "--bundle", "/b/one", "--bundle", "two", "--runtime", "runc"]) as? Bench)
        #expect(b.bundle == ["/b/one", "two"] && b.runtime == ["runc"])
        let w = try #require(try Gocker.parseAsRoot(["bench", "--write-bundle", "/tmp/canonical"]) as? Bench)
        #expect(w.writeBundle == "/tmp/canonical")
        let i = try #require(try Gocker.parseAsRoot(["bench", "--images", "--size", "2M", "-n", "1", "--json", "/tmp/i.json"]) as? Bench)
        #expect(i.images && i.size == "2M" && i.count == 1 && i.json == "/tmp/i.json")
        #expect(try #require(try Gocker.parseAsRoot(["bench", "--images"]) as? Bench).size == nil)
    }

    @Test func badBundleAndImagesInputIsRefusedBeforeAnythingRuns() {
        #expect(GockerMain.run(["bench", "--bundle", ""]) == 125)
        #expect(GockerMain.run(["bench", "--write-bundle", ""]) == 125)
        #expect(GockerMain.run(["bench", "--size", "2M"]) == 125)  // only with --images
        for size in ["", "x", "-1m", "12q", "100"] {
            #expect(GockerMain.run(["bench", "--images", "--size", size]) == 125, "\(size)")
        }
        for other in [["--runtime", "runc"], ["--matrix"], ["--bundle", "/b"], ["--parallel", "2"], ["--svg", "/tmp/x.svg"],
                      ["--write-bundle", "/tmp/b"]] {
            #expect(GockerMain.run(["bench", "--images"] + other) == 125, "\(other)")
        }
        #expect(GockerMain.run(["bench", "--images", "-n", "0"]) == 125)
    }

    @Test func helpExplainsBothModes() throws {
        let help = Bench.helpMessage()
        for word in ["--bundle", "--write-bundle", "--images", "--size", "sha256sum", "gzip -1", "runc spec"] {
            #expect(help.contains(word), "\(word)")
        }
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

/// docker's lines of a pull's layers, as the board draws them.
struct LayerBoardTests {
    @Test func aBarWhereThereIsRoomAndNeverWiderThanTheTerminal() {
        let half = Puller.LayerState.downloading(28_100_000, 56_200_000)
        let wide = LayerBoard.line("a1b2c3d4e5f6", half, columns: 120)
        #expect(wide == "a1b2c3d4e5f6: Downloading [" + String(repeating: "=", count: 24) + ">" + String(repeating: " ", count: 25)
                + "]  28.1MB/56.2MB")
        // Narrower than docker's 110 columns: the bytes alone.
        #expect(LayerBoard.line("a1b2c3d4e5f6", half, columns: 80) == "a1b2c3d4e5f6: Downloading  28.1MB/56.2MB")
        // Narrower still: cut, so that no line wraps.
        #expect(LayerBoard.line("a1b2c3d4e5f6", half, columns: 20) == "a1b2c3d4e5f6: Downl")
        #expect(LayerBoard.line("a1b2c3d4e5f6", .complete, columns: 80) == "a1b2c3d4e5f6: Pull complete")
        #expect(LayerBoard.line("a1b2c3d4e5f6", .downloading(0, 10), columns: 0).contains("[" + String(repeating: " ", count: 50) + "]"))
    }
}
