import ArgumentParser
import GockerCore
import GockerRuntime
import Testing
@testable import GockerCLI

/// The hand-read `run` lines ask for exactly what ArgumentParser reads in
/// them; whatever the fast path does not take, ArgumentParser gets.
struct RunFastPathTests {
    @Test(arguments: [
        ["busybox", "true"],
        ["--rm", "busybox", "true"],
        ["--rm", "--cgroup-backend", "cgroupfs", "busybox", "true"],
        ["--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "100", "busybox", "true"],
        ["--rm", "--network", "host", "busybox", "true"],
        ["--net=host", "--name", "web", "-d", "busybox", "sleep", "5"],
        ["-it", "--rm", "busybox", "sh"],
        ["-t", "-i", "-e", "A=1", "--env", "B=2", "-w", "/tmp", "-u", "1000:1000", "busybox", "env"],
        ["--detach", "--memory=16m", "--cgroup-parent", "p/q", "--timings", "busybox"],
        ["--data-root", "/d", "--root", "/r", "busybox", "ls", "-l", "--", "-x"],
        ["--rm", "busybox", "sh", "-c", "echo --rm -d"],
        ["--rm", "--security-opt", "seccomp=unconfined", "--security-opt=no-new-privileges", "busybox", "true"],
    ])
    func readsWhatArgumentParserReads(args: [String]) throws {
        let fast = try #require(RunFastPath(args))
        let parsed = try Run.parse(args)
        #expect(try fast.request() == parsed.request())
        #expect((fast.values["timings"] != nil) == parsed.timings)
        #expect((fast.values["data-root"] ?? Engine.defaultDataRoot) == parsed.global.dataRoot)
        #expect((fast.values["root"] ?? StateStore.defaultRoot) == parsed.global.stateRoot)
    }

    @Test(arguments: [
        [], ["--rm"], ["--help", "busybox"], ["-h", "x", "busybox"], ["--", "busybox"], ["--rm", "--rm", "busybox"],
        ["--name", "a", "--name", "b", "busybox"], ["--name"], ["--pids-limit", "-1", "busybox"],
        ["--pids-limit", "many", "busybox"], ["-m64m", "busybox"], ["-itm", "64m", "busybox"], ["--privileged", "busybox"],
        ["--rm=yes", "busybox"], ["-v", "/a:/b", "busybox"], ["--memory", "--rm", "busybox"],
    ])
    func leavesTheRestToArgumentParser(args: [String]) {
        #expect(RunFastPath(args) == nil)
    }
}
