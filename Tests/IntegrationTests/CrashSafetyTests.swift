import Foundation
import Testing

/// What a gocker that dies at any point leaves, names that outlive their
/// containers, a full disk, and gocker processes racing each other: every
/// case ends with `ps -a` telling the truth and nothing left behind.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct CrashSafetyTests {
    /// `ps -a` rows (full ids), as JSON values.
    func psAll(_ box: Sandbox) throws -> [[String: String]] {
        let r = try box.gocker(["ps", "-a", "--no-trunc", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
    }

    /// Processes in any group under the sandbox's cgroup parent.
    func processesInGroups(_ box: Sandbox) -> [String] {
        box.cgroupsLeft().flatMap { group in
            box.contents(group + "/cgroup.procs").split(separator: "\n").map { "\(group): \($0)" }
        }
    }

    /// SIGKILLs at random points (0-20 ms after spawn) of run, run --rm,
    /// run -d, create, start and rm -f; then `ps -a` lists every container
    /// that exists, and rm -f of each and a prune leave nothing at all.
    @Test func killLoop() throws {
        let box = try Sandbox()
        // The image exists before the clock starts.
        #expect(try box.gocker(["create", "--name", "seed", "busybox", "true"]).status == 0)
        var names = ["seed"]
        var rng = SystemRandomNumberGenerator()
        let kills = 200
        let started = Date()
        for i in 0..<kills {
            let name = "k\(i)"
            let args: [String]
            switch i % 6 {
            case 0: args = ["run", "--name", name, "busybox", "sleep", "30"]
            case 1: args = ["run", "--rm", "--name", name, "busybox", "sleep", "30"]
            case 2: args = ["run", "-d", "--name", name, "busybox", "sleep", "30"]
            case 3: args = ["create", "--name", name, "busybox", "sleep", "30"]
            case 4: args = ["start", names.randomElement(using: &rng)!]
            default: args = ["rm", "-f", names.randomElement(using: &rng)!]
            }
            if i % 6 < 4 { names.append(name) }
            let (p, _) = try box.start(args)
            usleep(UInt32.random(in: 0...20_000, using: &rng))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        print("kill loop: \(kills) kills in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")

        // ps -a shows every container there is (its own clean-up first).
        let rows = try psAll(box)
        let listed = Set(rows.compactMap { $0["ID"] })
        let dirs = Set(box.list(box.dataRoot + "/containers").filter { !$0.hasPrefix(".") })
        #expect(listed == dirs, "containers ps -a does not show: \(dirs.subtracting(listed))")
        for id in box.stateLeft() {
            #expect(dirs.contains(id), "runtime state of a container without a record: \(id)")
        }
        // Every one of them goes with rm -f (by name where it has one).
        for row in rows {
            let ref = row["Names"].flatMap { $0.isEmpty ? nil : $0 } ?? row["ID"]!
            let rm = try box.gocker(["rm", "-f", ref])
            #expect(rm.status == 0, "rm -f \(ref) (\(row["Status"] ?? "")): \(rm.stderr)")
        }
        let prune = try box.gocker(["container", "prune", "-f"])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(box.waitFor { box.processesRootedHere().isEmpty && processesInGroups(box).isEmpty })
        #expect(processesInGroups(box) == [])
        #expect(box.list(box.dataRoot + "/containers") == [], "container directories (also half-made ones) left")
        box.expectNothingLeft()
    }

    /// A name file left empty (a full disk, or a SIGKILL of an older
    /// gocker), or naming a container that is gone, blocks nothing.
    @Test func staleNamesAreFree() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["create", "--name", "other", "busybox", "true"]).status == 0)
        let names = box.dataRoot + "/names"
        #expect(FileManager.default.createFile(atPath: names + "/empty", contents: Data()))
        #expect(FileManager.default.createFile(atPath: names + "/gone", contents: Data(String(repeating: "ab", count: 32).utf8)))
        for name in ["empty", "gone"] {
            let run = try box.gocker(["run", "--name", name, "busybox", "echo", "hello"])
            #expect(run.status == 0 && run.stdout == "hello\n", "\(run.stderr)")
            let ps = try psAll(box)
            #expect(ps.contains { $0["Names"] == name })
            #expect(try box.gocker(["rm", "-f", name]).status == 0)
        }
        // rm -f of a name whose container is gone removes the name.
        #expect(FileManager.default.createFile(atPath: names + "/empty", contents: Data()))
        let rm = try box.gocker(["rm", "-f", "empty"])
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(!FileManager.default.fileExists(atPath: names + "/empty"))
        // A name that is really held says by whom.
        let otherID = try #require(psAll(box).first { $0["Names"] == "other" }?["ID"])
        let taken = try box.gocker(["create", "--name", "other", "busybox", "true"])
        #expect(taken.status == 125 && taken.stderr.contains("in use by container \"\(otherID)\""), "\(taken.stderr)")
        #expect(try box.gocker(["rm", "-f", "other"]).status == 0)
        box.expectNothingLeft()
    }

    /// Creators racing for one name (free, or held by a stale file): exactly
    /// one wins, the others are told who holds it, and nothing is lost.
    @Test func concurrentCreatorsOfOneName() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["create", "busybox", "true"]).status == 0)  // the image and the names directory
        for stale in [false, true] {
            if stale {
                #expect(FileManager.default.createFile(atPath: box.dataRoot + "/names/same", contents: Data()))
            }
            let racers = try (0..<10).map { _ in try box.start(["create", "--name", "same", "busybox", "true"]) }
            for (p, _) in racers { box.finish(p) }
            let winners = racers.filter { $0.0.terminationStatus == 0 }
            #expect(winners.count == 1, "stale name file: \(stale)")
            let id = winners.first.map { box.contents($0.outFile).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
            for (p, out) in racers where p.terminationStatus != 0 {
                #expect(p.terminationStatus == 125)
                #expect(box.contents(out + ".err").contains("in use by container \"\(id)\""), "\(box.contents(out + ".err"))")
            }
            #expect(try psAll(box).filter { $0["Names"] == "same" }.count == 1)
            #expect(try box.gocker(["rm", "-f", "same"]).status == 0)
        }
        #expect(try box.gocker(["container", "prune", "-f"]).status == 0)
        box.expectNothingLeft()
    }

    /// On a full disk stop and kill still stop the container: the record
    /// they cannot write is a warning.
    @Test func stopAndKillOnAFullDisk() throws {
        let box = try Sandbox()
        let root = box.dir + "/full"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
        #expect(mount("tmpfs", root, "tmpfs", 0, "size=12m") == 0, "mount tmpfs: \(errno)")
        defer {
            for pid in box.processesRootedHere() { kill(pid, SIGKILL) }
            _ = box.waitFor { box.processesRootedHere().isEmpty }
            umount2(root, Int32(MNT_DETACH))
        }
        for verb in [["stop", "-t", "1"], ["kill"]] {
            // (No network: its bridge would outlive the tmpfs root.)
            let run = try box.gocker(["run", "--data-root", root, "-d", "--network", "none", "busybox", "sleep", "60"])
            #expect(run.status == 0, "\(run.stderr)")
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            // Fill the disk.
            let filler = open(root + "/filler", O_WRONLY | O_CREAT, 0o600)
            let chunk = [UInt8](repeating: 0, count: 1 << 16)
            while write(filler, chunk, chunk.count) > 0 {}
            #expect(errno == ENOSPC)
            close(filler)
            let probe = open(root + "/probe", O_WRONLY | O_CREAT, 0o600)
            let wrote = probe >= 0 ? write(probe, "x", 1) : -1
            if probe >= 0 { close(probe) }
            #expect(wrote < 0, "the disk is full")
            let stop = try box.gocker([verb[0], "--data-root", root] + verb.dropFirst() + [id])
            #expect(stop.status == 0, "\(verb): \(stop.stderr)")
            #expect(box.waitFor(5) { box.processesRootedHere().isEmpty }, "\(verb): the container still runs")
            unlink(root + "/filler")
            unlink(root + "/probe")
            let rm = try box.gocker(["rm", "--data-root", root, "-f", id])
            #expect(rm.status == 0, "\(rm.stderr)")
        }
        umount2(root, Int32(MNT_DETACH))
        box.expectNothingLeft()
    }

    /// rmi -f racing run -d never removes the image of a container that
    /// ends up running; prune beside starting containers never takes one.
    @Test func rmiAndPruneRaceStarts() throws {
        let box = try Sandbox()
        for round in 0..<10 {
            // The image by its id: rmi -f removes it whole, unless a running
            // container uses it. (busybox is made again on first use.)
            let seed = try box.gocker(["create", "busybox", "true"])
            #expect(try box.gocker(["rm", seed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)]).status == 0)
            let imageID = try #require(box.gocker(["image", "inspect", "busybox"]).stdout
                .split(separator: "\"").first { $0.hasPrefix("sha256:") }.map(String.init))
            let (run, out) = try box.start(["run", "-d", "busybox", "sleep", "30"])
            usleep(UInt32(round * 1_000))
            let rmi = try box.gocker(["rmi", "-f", imageID])
            box.finish(run)
            let id = box.contents(out).trimmingCharacters(in: .whitespacesAndNewlines)
            if run.terminationStatus == 0 {
                let image = try box.gocker(["image", "inspect", imageID])
                #expect(image.status == 0, "round \(round): a running container's image was removed: rmi \(rmi.status) \(rmi.stdout)")
                #expect(try box.gocker(["rm", "-f", id]).status == 0)
            }
        }
        // prune while containers start: no start fails.
        let starts = try (0..<15).map { _ in try box.start(["run", "-d", "busybox", "sleep", "30"]) }
        var prunes = 0
        while starts.contains(where: { $0.0.isRunning }) && prunes < 200 {
            #expect(try box.gocker(["container", "prune", "-f"]).status == 0)
            prunes += 1
        }
        for (p, out) in starts {
            box.finish(p)
            #expect(p.terminationStatus == 0, "\(box.contents(out + ".err"))")
        }
        let running = try psAll(box).filter { $0["State"] == "running" }
        #expect(running.count == 15)
        #expect(try box.gocker(["container", "prune", "-f"]).status == 0)
        for row in try psAll(box) { #expect(try box.gocker(["rm", "-f", row["ID"]!]).status == 0) }
        #expect(box.waitFor { box.processesRootedHere().isEmpty })
        box.expectNothingLeft()
    }
}
