import GockerCore
import GockerRuntime
import Testing
@testable import GockerCLI

/// `run` and `create` lines are read by one table, RunLine.options: what
/// a line asks for, the forms docker takes, and ArgumentParser's wording
/// of a refusal (the other commands' errors read the same).
struct RunOptionsTests {
    func line(_ args: [String]) throws -> RunLine { try #require(try RunLine.parse(args)) }

    @Test func commonLines() throws {
        var r = try line(["--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "100", "--cgroup-backend", "cgroupfs", "busybox", "true"])
        #expect(r.request.autoRemove && r.request.resources["memory"] == "64m" && r.request.resources["cpus"] == "0.5")
        #expect(r.request.resources["pids-limit"] == "100" && r.request.cgroupBackend == "cgroupfs" && r.request.command == ["true"])
        r = try line(["--net=host", "--name", "web", "-d", "busybox", "sleep", "5"])
        #expect(r.request.network == .host && r.request.name == "web" && r.request.detach && r.request.command == ["sleep", "5"])
        r = try line(["-t", "-i", "-e", "A=1", "--env", "B=2", "--env=C=3", "-w", "/tmp", "-u", "1000:1000", "busybox", "env"])
        #expect(r.request.tty && r.request.interactive && r.request.env == ["A=1", "B=2", "C=3"])
        #expect(r.request.workdir == "/tmp" && r.request.user == "1000:1000")
        r = try line(["--data-root", "/d", "--root=/r", "--timings", "busybox", "ls", "-l", "--", "-x"])
        #expect(r.dataRoot == "/d" && r.stateRoot == "/r" && r.timings && r.request.command == ["ls", "-l", "--", "-x"])
        r = try line(["--security-opt", "seccomp=unconfined", "--security-opt=no-new-privileges", "busybox"])
        #expect(r.request.securityOpts == ["seccomp=unconfined", "no-new-privileges"] && r.request.command == [])
        // The last of a single-valued option counts; "-" and "--" end the options.
        r = try line(["--name", "a", "--name", "b", "--", "-", "x"])
        #expect(r.request.name == "b" && r.request.image == "-" && r.request.command == ["x"])
        r = try line(["--log-opt", "max-size=1m", "-c", "-5", "busybox"])
        #expect(r.request.logMaxSize == 1024 * 1024 && r.request.resources["cpu-shares"] == "-5")
    }

    @Test(arguments: [["-it"], ["-dit"], ["-ti", "-d"], ["-d", "-i", "-t"], ["--detach", "-ti"]])
    func shortFlagsTogether(flags: [String]) throws {
        let r = try line(flags + ["busybox", "sh"])
        #expect(r.request.interactive && r.request.tty && r.request.detach == flags.joined().contains("d"))
        // The last letter of a group may take the next word.
        let m = try line(["-itm", "64m", "busybox"])
        #expect(m.request.interactive && m.request.tty && m.request.resources["memory"] == "64m")
        // Letters that take a value take the next words in order.
        let mc = try line(["-mic", "1g", "5", "busybox"])
        #expect(mc.request.interactive && mc.request.resources["memory"] == "1g" && mc.request.resources["cpu-shares"] == "5")
    }

    @Test func helpIsNotAnImage() throws {
        #expect(try RunLine.parse(["--rm", "--help"]) == nil)
        #expect(try line(["busybox", "--help"]).request.command == ["--help"])
        #expect(GockerMain.run(["run", "--help"]) == 0 && GockerMain.run(["help", "create"]) == 0)
    }

    /// ArgumentParser's words for a bad line, which gocker printed before
    /// run had a table of its own.
    @Test(arguments: [
        ([], "Missing expected argument '<image>'"),
        (["--rm"], "Missing expected argument '<image>'"),
        (["--bogus", "busybox"], "Unknown option '--bogus'. Did you mean '--cpus'?"),
        (["--volumes", "busybox"], "Unknown option '--volumes'. Did you mean '--volume'?"),
        (["-x", "busybox"], "Unknown option '-x'"),
        (["-iX", "busybox"], "Unknown option '-X'"),
        (["--rm=yes", "busybox"], "The option '--rm' does not take any value, but 'yes' was specified."),
        (["--name"], "Missing value for '--name <name>'"),
        (["--name", "--rm", "busybox"], "Missing value for '--name <name>'"),
        (["-w", "-1", "busybox"], "Missing value for '-w <dir>'"),
        (["-im"], "Missing value for '-m <bytes>'"),
        (["--pids-limit", "many", "busybox"], "The value 'many' is invalid for '--pids-limit <n>'"),
        (["-c", "x", "busybox"], "The value 'x' is invalid for '-c <shares>'"),
        (["--network", "container:", "busybox"], "invalid network \"container:\": container:NAME needs a container"),
        (["--log-opt", "max-file=3", "busybox"], "invalid argument \"max-file=3\" for --log-opt: only max-size=SIZE is supported"),
    ])
    func badLines(args: [String], message: String) {
        let error = #expect(throws: GockerError.self) { try RunLine.parse(args) }
        #expect(error?.description == message)
    }

    /// Every option of the table, by every name and in both forms, lands
    /// somewhere in the line, and `--help` lists it with its help: a new
    /// option cannot be read and not listed, or listed and not read.
    @Test func everyOptionIsReadAndListed() throws {
        // Options whose value is judged as it is read need a good one.
        let samples = ["network": "host", "log-opt": "max-size=1m", "pull": "always"]
        let plain = try line(["busybox"])
        let help = RunLine.help(create: false).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        // Every spelling run took when ArgumentParser read it is still there.
        let before = ["--data-root", "--root", "--rm", "--name", "-e", "--env", "--env-file", "-w", "--workdir", "-i", "--interactive",
                      "-t", "--tty", "-u", "--user", "-h", "--hostname", "--entrypoint", "--network", "--net", "-d", "--detach",
                      "--restart", "--log-opt", "--group-add", "--cap-add", "--cap-drop", "--privileged", "--read-only",
                      "--security-opt", "--ulimit", "--init", "-m", "--memory", "--memory-reservation", "--memory-swap",
                      "--cpuset-cpus", "--cpuset", "--cpuset-mems", "-c", "--cpu-shares", "--cpushare", "--cpus", "--pids-limit",
                      "--device", "-v", "--volume", "--mount", "--tmpfs", "--volumes-from", "--cgroup-backend", "--cgroup-parent",
                      "--timings"]
        let spellings = Set(RunLine.options.options.flatMap(\.spellings))
        #expect(Set(before).subtracting(spellings) == [])
        for option in RunLine.options.options {
            let value = option.value == .integer ? "7" : samples[option.name] ?? "x1"
            for spelling in option.spellings {
                let forms = option.value == .none ? [[spelling]]
                    : spelling.hasPrefix("--") ? [[spelling, value], [spelling + "=" + value]] : [[spelling, value]]
                for form in forms {
                    let read = try line(form + ["busybox", "true"])
                    #expect(read != plain, "\(form) changed nothing")
                    #expect(read.request.image == "busybox" && read.request.command == ["true"], "\(form)")
                }
                #expect(help.contains(spelling + " ") || help.contains(spelling + ","), "help lacks \(spelling)")
            }
            #expect(help.contains(option.help), "help lacks \(option.name)'s text")
        }
        // Two options never share a name.
        let names = RunLine.options.options.flatMap(\.spellings)
        #expect(Set(names).count == names.count)
    }
}
