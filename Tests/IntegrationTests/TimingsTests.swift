import Foundation
import Testing

extension Sandbox {
    /// Runs gocker with the sandbox's environment and measures its wall time
    /// from spawn to reap (Foundation's Process may poll for the end).
    func timed(_ args: [String]) throws -> (status: Int32, stderr: String, ms: Double) {
        let errFile = dir + "/timed-\(UUID().uuidString).err"
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([Sandbox.binary] + args).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        let r = posix_spawn(&pid, Sandbox.binary, &actions, nil, argv, envp)
        guard r == 0 else { throw POSIXError(POSIXErrorCode(rawValue: r) ?? .EIO) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        clock_gettime(CLOCK_MONOTONIC, &t1)
        let ms = Double(t1.tv_sec - t0.tv_sec) * 1e3 + Double(t1.tv_nsec - t0.tv_nsec) / 1e6
        return (status, contents(errFile), ms)
    }
}

/// `gocker run --timings`: every phase is there and they add up to most of
/// the process' life. No time is asserted.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct TimingsTests {
    @Test func timingsCoverTheWholeRun() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)  // the image, first
        let r = try box.timed(["run", "--rm", "--timings", "busybox", "true"])
        #expect(r.status == 0, "\(r.stderr)")
        var phases: [(String, Double)] = []
        for line in r.stderr.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count >= 3, words.last == "ms", let ms = Double(words[words.count - 2]) else {
                Issue.record("not a timing line: \(line)")
                continue
            }
            #expect(words[words.count - 2].split(separator: ".").last?.count == 3, "three decimals: \(line)")
            phases.append((words.dropLast(2).joined(separator: " "), ms))
        }
        let total = try #require(phases.last)
        #expect(total.0 == "total")
        phases.removeLast()
        #expect(phases.map(\.0) == [
            "arguments", "image", "config and bundle", "cgroups", "clone and namespaces", "rootfs and pivot_root",
            "mounts, devices, user", "state and start", "exec", "run and wait", "teardown",
        ])
        for (name, ms) in phases { #expect(ms > 0, "\(name)") }
        let sum = phases.reduce(0) { $0 + $1.1 }
        #expect(abs(sum - total.1) < 0.01 * Double(phases.count), "the printed total is the sum: \(sum) vs \(total.1)")
        #expect(sum <= r.ms, "phases \(sum) ms within the process' \(r.ms) ms")
        #expect(sum >= r.ms / 2, "phases \(sum) ms cover most of the process' \(r.ms) ms")
        box.expectNothingLeft()
    }

    /// The container's first process reports its own phases whichever way
    /// it is cloned: sharing gocker's memory (a plain bundle, on cgroup v1;
    /// on v2 it is cloned into its group, as a copy), or as a copy of
    /// gocker (a bundle with a createRuntime hook, which needs the child's
    /// pid before it goes on), for which its marks go through a page
    /// shared with it.
    @Test func theFirstProcessReportsItsPhasesWhicheverWayItIsCloned() throws {
        let box = try Sandbox()
        let oci = OCITests()
        let bundle = try oci.makeBundle(box, args: ["true"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let childPhases = ["clone and namespaces", "rootfs and pivot_root", "mounts, devices, user", "exec"]
        for hooked in [false, true] {
            if hooked {
                try oci.editConfig(bundle) { $0["hooks"] = ["createRuntime": [["path": "/bin/true"]]] }
            }
            let file = box.dir + "/timings-\(hooked).json"
            let r = try box.gocker(["oci", "run", "--bundle", bundle, "timed-\(hooked)"],
                                   environment: ["GOCKER_TIMINGS_FILE": file])
            #expect(r.status == 0, "\(r.stderr)")
            let data = try #require(FileManager.default.contents(atPath: file), "no timings written")
            let line = try JSONDecoder().decode(TimingsLine.self, from: data)
            let names = line.phases.map(\.name)
            for name in childPhases {
                #expect(names.contains(name), "hooked \(hooked): \(name) missing from \(names)")
            }
            for p in line.phases { #expect(p.ms > 0, "hooked \(hooked): \(p.name)") }
        }
    }
}

/// One line of GOCKER_TIMINGS_FILE.
private struct TimingsLine: Decodable {
    struct Phase: Decodable {
        var name: String
        var ms: Double
    }
    var phases: [Phase]
    var total: Double
}
