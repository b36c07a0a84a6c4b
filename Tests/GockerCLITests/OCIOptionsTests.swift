import GockerCore
import Testing
@testable import GockerCLI

/// `gocker oci` lines are read by the verbs' option tables: runc's forms,
/// the global options before the verb or after it, ArgumentParser's wording
/// of a refusal.
struct OCIOptionsTests {
    func verb<V: OCIVerb>(_ args: [String], as type: V.Type) throws -> V {
        let line = try #require(try OCILine(args))
        return try #require(line.verb as? V)
    }

    @Test func runcLines() throws {
        var run = try verb(["--root", "/r", "run", "-b", "/b", "--pid-file", "/p", "-d", "c1"], as: OCIRun.self)
        #expect(run.global.root == "/r" && run.bundle == "/b" && run.pidFile == "/p" && run.detach && run.id == "c1")
        run = try verb(["--root=/r", "--log", "/l", "--log-format", "json", "run", "--detach", "--bundle=/b", "--console-socket", "/s", "c1"],
                       as: OCIRun.self)
        #expect(run.global.log == "/l" && run.global.logFormat == "json" && run.consoleSocket == "/s" && run.bundle == "/b")
        let create = try verb(["--cgroup-backend", "cgroupfs", "--systemd-cgroup", "create", "--bundle", "/b", "c2"], as: OCICreate.self)
        #expect(create.global.cgroupBackend == "cgroupfs" && create.global.systemdCgroup && create.bundle == "/b" && create.id == "c2")
        #expect(try verb(["create", "c3"], as: OCICreate.self).bundle == ".")
        // The global options after the verb too, and an id after "--".
        #expect(try verb(["start", "--root", "/r", "c1"], as: OCIStart.self).global.root == "/r")
        #expect(try verb(["run", "--", "-c1"], as: OCIRun.self).id == "-c1")
        #expect(try verb(["--debug", "delete", "-f", "c1"], as: OCIDelete.self).force)
        var kill = try verb(["kill", "--all", "c1", "9"], as: OCIKill.self)
        #expect(kill.all && kill.id == "c1" && kill.signal == "9")
        kill = try verb(["kill", "c1"], as: OCIKill.self)
        #expect(!kill.all && kill.signal == "TERM")
        let exec = try verb(["exec", "-t", "-e", "A=1", "--env=B=2", "-g", "10", "-g", "11", "--cwd", "/w", "c1", "sh", "-c", "ls -l"],
                            as: OCIExec.self)
        #expect(exec.tty && exec.env == ["A=1", "B=2"] && exec.additionalGids == [10, 11] && exec.cwd == "/w")
        #expect(exec.id == "c1" && exec.command == ["sh", "-c", "ls -l"])
        #expect(try verb(["pause", "c1"], as: OCIPause.self).id == "c1")
        #expect(try verb(["resume", "c1"], as: OCIResume.self).id == "c1")
        #expect(try OCILine(["run", "--help"]) == nil && (try OCILine([])) == nil)
        #expect(GockerMain.run(["oci", "--help"]) == 0 && GockerMain.run(["oci", "exec", "--help"]) == 0)
    }

    @Test(arguments: [
        (["run"], "Missing expected argument '<container-id>'"),
        (["run", "--bundle", "/b"], "Missing expected argument '<container-id>'"),
        (["run", "--bundle", "/b", "c1", "extra"], "Unexpected argument 'extra'"),
        (["run", "--bogus", "c1"], "Unknown option '--bogus'. Did you mean '--log'?"),
        (["run", "--bundl", "/b", "c1"], "Unknown option '--bundl'. Did you mean '--bundle'?"),
        (["run", "--bundle"], "Missing value for '--bundle <dir>'"),
        (["--root"], "Missing value for '--root <dir>'"),
        (["--root", "run", "c1"], "Unexpected argument 'c1'"),
        (["delete", "--force=yes", "c1"], "The option '--force' does not take any value, but 'yes' was specified."),
        (["kill", "c1", "KILL", "more"], "Unexpected argument 'more'"),
        (["exec", "-g", "x", "c1", "true"], "The value 'x' is invalid for '-g <gid>'"),
        (["bogus", "c1"], "Unexpected argument 'bogus'"),
    ])
    func badLines(args: [String], message: String) {
        let error = #expect(throws: GockerError.self) { try OCILine(args) }
        #expect(error?.description == message)
    }

    /// Every option of every verb, by every name and in both forms, is
    /// read and listed in the verb's --help.
    @Test func everyOptionIsReadAndListed() throws {
        func check<V: OCIVerb>(_ type: V.Type) throws {
            let help = OCILine.verbHelp(V.self).split(whereSeparator: \.isWhitespace).joined(separator: " ")
            // `list` takes no container.
            let id = V.arguments.isEmpty ? "" : "c1"
            let plain = try verb([V.name] + (id.isEmpty ? [] : [id]), as: V.self)
            let names = V.options.options.flatMap(\.spellings)
            #expect(Set(names).count == names.count, "\(V.name): a name twice")
            for option in V.options.options {
                let value = option.value == .unsigned || option.value == .integer ? "7" : "x1"
                for spelling in option.spellings {
                    let forms = option.value == .none ? [[spelling]]
                        : spelling.hasPrefix("--") ? [[spelling, value], [spelling + "=" + value]] : [[spelling, value]]
                    for form in forms {
                        let read = try verb([V.name] + form + (id.isEmpty ? [] : [id]), as: V.self)
                        #expect(read != plain && read.id == id, "\(V.name) \(form) changed nothing")
                    }
                    #expect(help.contains(spelling + " ") || help.contains(spelling + ","), "\(V.name) help lacks \(spelling)")
                }
                #expect(help.contains(option.help), "\(V.name) help lacks \(option.name)'s text")
            }
            // The globals are every verb's.
            #expect(Set(OCIGlobalOptions.options.flatMap(\.spellings)).isSubset(of: names))
        }
        for type in ociVerbs { try check(type) }
        #expect(ociVerbs.map { $0.name } == ["create", "start", "state", "kill", "delete", "run", "exec", "pause", "resume", "list", "ps",
                                            "update", "events", "features", "spec"])
        let update = try verb(["update", "--memory", "1g", "--cpu-quota", "-1", "c1"], as: OCIUpdate.self)
        let members = try update.resources().unmodeled
        #expect(members["memory"] == .object(["limit": .number("1073741824")]) && members["cpu"] == .object(["quota": .number("-1")]))
        let ps = try verb(["ps", "-f", "json", "c1", "-o", "pid"], as: OCIPs.self)
        #expect(ps.format == "json" && ps.id == "c1" && ps.psOptions == ["-o", "pid"])
        #expect(try verb(["list", "-q"], as: OCIList.self).quiet)
        let rootHelp = OCILine.help([])
        for type in ociVerbs { #expect(rootHelp.contains("  \(type.name) ")) }
    }
}
