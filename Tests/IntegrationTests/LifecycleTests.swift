import Foundation
import Testing

/// Detached containers through their whole life, each step checked by its effect.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct LifecycleTests {
    func ps(_ box: Sandbox, _ extra: [String] = []) throws -> [[String: String]] {
        let r = try box.gocker(["ps", "--format", "json"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
    }

    @Test func theTour() throws {
        let box = try Sandbox()
        let run = try box.gocker(["run", "-d", "--name", "web", "busybox", "sh", "-c",
                                  "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done"])
        #expect(run.status == 0, "\(run.stderr)")
        let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))

        var rows = try ps(box)
        #expect(rows.count == 1)
        #expect(rows.first?["Names"] == "web" && rows.first?["ID"] == String(id.prefix(12)))
        #expect(rows.first?["Status"]?.hasPrefix("Up ") == true)
        let table = try box.gocker(["ps"])
        #expect(table.stdout.hasPrefix("CONTAINER ID   IMAGE     COMMAND"))

        // Logs: present and in order, with -t and --tail.
        #expect(box.waitFor { (try? box.gocker(["logs", "web"]))?.stdout.contains("tick5\n") == true })
        let logs = try box.gocker(["logs", "web"]).stdout.split(separator: "\n")
        #expect(Array(logs.prefix(6)) == ["tick0", "tick1", "tick2", "tick3", "tick4", "tick5"])
        let tail = try box.gocker(["logs", "--tail", "2", "-t", "web"]).stdout.split(separator: "\n")
        #expect(tail.count == 2 && tail.allSatisfy { $0.contains("Z tick") })

        // stop: sh as PID 1 ignores TERM, so it is killed after the grace time.
        let stop = try box.gocker(["stop", "-t", "1", "web"])
        #expect(stop.status == 0 && stop.stdout == "web\n", "\(stop.stderr)")
        rows = try ps(box, ["-a"])
        #expect(rows.first?["Status"]?.hasPrefix("Exited (137)") == true, "\(rows)")
        #expect(try ps(box).isEmpty, "ps without -a shows running ones only")
        #expect(try ps(box, ["-f", "status=exited"]).count == 1)

        // start again; the container keeps its files.
        #expect(try box.gocker(["start", "web"]).status == 0)
        #expect(try box.gocker(["ps", "-q"]).stdout == String(id.prefix(12)) + "\n")

        let inspect = try box.gocker(["inspect", "web"])
        let details = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]])
        let state = try #require(details.first?["State"] as? [String: Any])
        #expect(state["Running"] as? Bool == true)
        #expect((state["Pid"] as? Int ?? 0) > 0)
        #expect(details.first?["Cgroups"] != nil)

        #expect(try box.gocker(["kill", "-s", "KILL", "web"]).status == 0)
        #expect(try box.gocker(["wait", "web"]).stdout == "137\n")
        #expect(try box.gocker(["rm", "web"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func stopGivesTheTrapsOwnExitCodeAndRestartKeepsFiles() throws {
        let box = try Sandbox()
        let script = "trap 'exit 42' TERM; [ -e /kept ] && echo found-kept; touch /kept; while true; do sleep 0.1; done"
        #expect(try box.gocker(["run", "-d", "--name", "trapper", "busybox", "sh", "-c", script]).status == 0)
        #expect(box.waitFor { box.contents("\(box.dataRoot)/containers/\(box.list(box.dataRoot + "/containers")[0])/upper/kept") == "" && FileManager.default.fileExists(atPath: "\(box.dataRoot)/containers/\(box.list(box.dataRoot + "/containers")[0])/upper/kept") })
        #expect(try box.gocker(["stop", "-t", "10", "trapper"]).status == 0)
        #expect(try ps(box, ["-a"]).first?["Status"]?.hasPrefix("Exited (42)") == true)
        #expect(try box.gocker(["restart", "trapper"]).status == 0)
        #expect(box.waitFor { (try? box.gocker(["logs", "trapper"]))?.stdout.contains("found-kept") == true })
        #expect(try box.gocker(["rm", "-f", "trapper"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func createThenStartAttached() throws {
        let box = try Sandbox()
        let c = try box.gocker(["create", "--name", "later", "busybox", "sh", "-c", "echo hi; exit 3"])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(try ps(box, ["-a"]).first?["Status"] == "Created")
        let s = try box.gocker(["start", "-a", "later"])
        #expect(s.stdout == "hi\n")
        #expect(s.status == 3)
        #expect(try box.gocker(["container", "prune", "-f"]).stdout.contains("Deleted Containers"))
        box.expectNothingLeft()
    }

    @Test func attachedContainersAreLoggedToo() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--name", "att", "busybox", "sh", "-c", "echo out1; echo err1 >&2; echo out2"])
        #expect(r.stdout == "out1\nout2\n" && r.stderr == "err1\n", "still printed where gocker prints")
        let logs = try box.gocker(["logs", "att"])
        #expect(logs.stdout == "out1\nout2\n")
        #expect(logs.stderr == "err1\n")
        let id = try #require(box.list(box.dataRoot + "/containers").first)
        let lines = box.contents("\(box.dataRoot)/containers/\(id)/container.log").split(separator: "\n")
        #expect(lines.count == 3 && lines.allSatisfy { $0.hasPrefix("{\"log\":\"") && $0.contains("\"time\":\"") })
        #expect(try box.gocker(["rm", "att"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func theLogIsBounded() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--name", "chatty", "--log-opt", "max-size=4k", "busybox", "sh", "-c",
                                "i=0; while [ $i -lt 400 ]; do echo line$i; i=$((i+1)); done"])
        #expect(r.status == 0)
        let id = try #require(box.list(box.dataRoot + "/containers").first)
        let dir = "\(box.dataRoot)/containers/\(id)"
        let size = { (p: String) in (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0 }
        #expect(size(dir + "/container.log") <= 4096 && size(dir + "/container.log.1") <= 4096)
        #expect(try box.gocker(["logs", "--tail", "1", "chatty"]).stdout == "line399\n")
        #expect(try box.gocker(["rm", "chatty"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func detachedRmLeavesNothingAfterExit() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.3"]).status == 0)
        #expect(box.waitFor { box.list(box.dataRoot + "/containers").isEmpty && box.stateLeft().isEmpty })
        #expect(box.waitFor { box.processesRootedHere().isEmpty })
        box.expectNothingLeft()
    }

    @Test func onFailureRestartsExactlyThreeTimes() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "-d", "--name", "flaky", "--restart", "on-failure:3", "busybox",
                                "sh", "-c", "echo attempt; exit 1"]).status == 0)
        #expect(box.waitFor(15) { try! ps(box, ["-a"]).first?["Status"]?.hasPrefix("Exited (1)") == true })
        usleep(1_500_000)  // a fourth restart would come within the back-off
        let attempts = try box.gocker(["logs", "flaky"]).stdout.split(separator: "\n").filter { $0 == "attempt" }
        #expect(attempts.count == 4, "one run and three restarts")
        let details = try box.gocker(["inspect", "flaky"]).stdout
        #expect(details.contains("\"RestartCount\": 3"))
        #expect(try box.gocker(["rm", "flaky"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func rmDuringTheRestartBackOffEndsIt() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "-d", "--name", "looper", "--restart", "always", "busybox", "false"]).status == 0)
        #expect(box.waitFor { (try? box.gocker(["inspect", "looper"]))?.stdout.contains("\"RestartCount\": 2") == true })
        #expect(try box.gocker(["rm", "-f", "looper"]).status == 0)
        usleep(500_000)
        #expect(box.waitFor { box.processesRootedHere().isEmpty })
        box.expectNothingLeft()
    }

    @Test func badInputAndNoOps() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["logs", "nosuch"]).status != 0)
        #expect(try box.gocker(["stop", "nosuch"]).stderr.contains("No such container"))
        #expect(try box.gocker(["run", "-d", "--restart", "sometimes", "busybox", "true"]).status == 125)
        #expect(try box.gocker(["run", "-d", "--rm", "--restart", "always", "busybox", "true"]).status == 125)
        #expect(try box.gocker(["run", "-d", "--name", "x1", "busybox", "sleep", "30"]).status == 0)
        #expect(try box.gocker(["start", "x1"]).status == 0, "starting a running container is no error")
        let rm = try box.gocker(["rm", "x1"])
        #expect(rm.status != 0 && rm.stderr.contains("stop the container"))
        #expect(try box.gocker(["stop", "-t", "0", "x1"]).status == 0)
        #expect(try box.gocker(["stop", "x1"]).status == 0, "stopping a stopped container is no error")
        #expect(try box.gocker(["run", "-d", "nosuchcmd"]).status == 125)
        let missing = try box.gocker(["run", "-d", "busybox", "nosuchcmd"])
        #expect(missing.status == 127 && missing.stderr.contains("nosuchcmd"), "\(missing.stderr)")
        #expect(try box.gocker(["rm", "-f", "x1"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func crashRecovery() throws {
        let box = try Sandbox()
        let id = try box.gocker(["run", "-d", "--name", "orphan", "busybox", "sleep", "60"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let owner = box.record(id)?["ownerPid"] as? Int
        let monitor = Int32(try #require(owner))
        kill(monitor, SIGKILL)
        usleep(200_000)
        #expect(try ps(box).first?["Status"]?.hasPrefix("Up") == true, "the container lives on")
        #expect(try box.gocker(["rm", "-f", "orphan"]).status == 0)
        box.expectNothingLeft()

        // The gocker of an attached container.
        let (p, out) = try box.start(["run", "--name", "attached", "busybox", "sh", "-c", "echo ready; sleep 60"])
        #expect(box.waitFor { box.contents(out).contains("ready") })
        kill(p.processIdentifier, SIGKILL)
        box.finish(p)
        #expect(try ps(box).first?["Names"] == "attached")
        #expect(try box.gocker(["rm", "-f", "attached"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func concurrentDetachedContainers() throws {
        let box = try Sandbox()
        let starts = try (0..<20).map { _ in try box.start(["run", "-d", "busybox", "sleep", "30"]) }
        for (p, _) in starts { box.finish(p); #expect(p.terminationStatus == 0) }
        let ids = starts.map { box.contents($0.outFile).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(Set(ids).count == 20 && ids.allSatisfy { $0.count == 64 })
        let rows = try ps(box)
        #expect(rows.count == 20)
        #expect(Set(rows.compactMap { $0["Names"] }).count == 20)
        let removals = try ids.map { try box.start(["rm", "-f", $0]) }
        for (p, _) in removals { box.finish(p); #expect(p.terminationStatus == 0) }
        #expect(box.waitFor { box.processesRootedHere().isEmpty })
        box.expectNothingLeft()
    }

    @Test func monitorMemoryIsReported() throws {
        let box = try Sandbox()
        let id = try box.gocker(["run", "-d", "busybox", "sleep", "30"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let owner = box.record(id)?["ownerPid"] as? Int
        let monitor = Int32(try #require(owner))
        let status = box.contents("/proc/\(monitor)/status")
        let rss = status.split(separator: "\n").filter { $0.hasPrefix("VmRSS") || $0.hasPrefix("RssAnon") }
        #expect(rss.count == 2)
        print("monitor memory: \(rss.joined(separator: ", "))")
        let rm = try box.gocker(["rm", "-f", id])
        #expect(rm.status == 0, "\(rm.stderr)")
        box.expectNothingLeft()
    }
}

/// `pause` and `unpause`: the container's processes really stop and go on.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct PauseTests {
    @Test(arguments: ["libcgroup", "cgroupfs"])
    func pauseFreezesEveryProcessAndUnpauseThaws(backend: String) throws {
        let box = try Sandbox()
        defer {
            _ = try? box.gocker(["rm", "-f", "pz"])
            box.expectNothingLeft()
        }
        let run = try box.gocker(["run", "-d", "--name", "pz", "--cgroup-backend", backend, "busybox", "sh", "-c",
                                  "i=0; while true; do i=$((i+1)); echo $i > /count; usleep 20000; done"])
        #expect(run.status == 0, "\(run.stderr)")
        let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let counter = "\(box.dataRoot)/containers/\(id)/upper/count"
        #expect(box.waitFor { !box.contents(counter).isEmpty })

        let pause = try box.gocker(["pause", "pz"])
        #expect(pause.status == 0 && pause.stdout == "pz\n", "\(pause.stderr)")
        #expect(box.contents("/sys/fs/cgroup/freezer/\(box.cgroupParent)/\(id)/freezer.state") == "FROZEN\n")
        let frozenAt = box.contents(counter)
        usleep(300_000)
        #expect(box.contents(counter) == frozenAt, "no progress while paused")
        #expect(try box.gocker(["ps"]).stdout.contains("(Paused)"))
        let again = try box.gocker(["pause", "pz"])
        #expect(again.status == 1 && again.stderr.contains("already paused"), "\(again.stderr)")

        #expect(try box.gocker(["unpause", "pz"]).status == 0)
        #expect(box.waitFor { box.contents(counter) != frozenAt }, "progress again after unpause")
        let notPaused = try box.gocker(["unpause", "pz"])
        #expect(notPaused.status == 1 && notPaused.stderr.contains("not paused"), "\(notPaused.stderr)")

        // A paused container can still be stopped, killed and removed: it is thawed to die.
        #expect(try box.gocker(["pause", "pz"]).status == 0)
        let stop = try box.gocker(["stop", "-t", "1", "pz"])
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(try box.gocker(["ps", "-a", "--format", "{{.Status}}"]).stdout.hasPrefix("Exited"))
        #expect(try box.gocker(["start", "pz"]).status == 0)
        #expect(try box.gocker(["pause", "pz"]).status == 0)
        #expect(try box.gocker(["kill", "pz"]).status == 0)
        #expect(box.waitFor { (try? box.gocker(["ps", "-a", "--format", "{{.Status}}"]))?.stdout.hasPrefix("Exited (137)") == true })
        #expect(try box.gocker(["start", "pz"]).status == 0)
        #expect(try box.gocker(["pause", "pz"]).status == 0)
        let rm = try box.gocker(["rm", "-f", "pz"])
        #expect(rm.status == 0, "\(rm.stderr)")
    }
}
