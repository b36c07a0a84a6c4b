import ArgumentParser
import GockerCore
import Testing
@testable import GockerCLI

/// The hand-read OCI command lines mean exactly what ArgumentParser reads
/// in them; whatever the fast path does not take, ArgumentParser gets.
struct OCIFastPathTests {
    /// What a command line asks for, as plain values.
    func meaning(_ fast: OCIFastPath) -> [String: String] {
        var m = ["verb": fast.verb, "root": fast.root, "backend": fast.cgroupBackend ?? "-", "id": fast.arguments[0]]
        switch fast.verb {
        case "run", "create":
            m["bundle"] = fast.options["bundle"] ?? "."
            m["pid-file"] = fast.options["pid-file"] ?? "-"
            m["console-socket"] = fast.options["console-socket"] ?? "-"
            if fast.verb == "run" { m["detach"] = "\(fast.options["detach"] != nil)" }
        case "delete": m["force"] = "\(fast.options["force"] != nil)"
        case "kill":
            m["all"] = "\(fast.options["all"] != nil)"
            m["signal"] = fast.arguments.count > 1 ? fast.arguments[1] : "TERM"
        default: break
        }
        return m
    }

    func meaning(_ command: any ParsableCommand) -> [String: String]? {
        func base(_ verb: String, _ g: OCIGlobalOptions, _ id: String) -> [String: String] {
            ["verb": verb, "root": g.root, "backend": g.cgroupBackend ?? "-", "id": id]
        }
        switch command {
        case let c as OCIRun:
            return base("run", c.global, c.id).merging(["bundle": c.bundle, "pid-file": c.pidFile ?? "-",
                "console-socket": c.consoleSocket ?? "-", "detach": "\(c.detach)"]) { a, _ in a }
        case let c as OCICreate:
            return base("create", c.global, c.id).merging(["bundle": c.bundle, "pid-file": c.pidFile ?? "-",
                "console-socket": c.consoleSocket ?? "-"]) { a, _ in a }
        case let c as OCIStart: return base("start", c.global, c.id)
        case let c as GockerCLI.OCIState: return base("state", c.global, c.id)
        case let c as OCIDelete: return base("delete", c.global, c.id).merging(["force": "\(c.force)"]) { a, _ in a }
        case let c as OCIKill: return base("kill", c.global, c.id).merging(["all": "\(c.all)", "signal": c.signal]) { a, _ in a }
        default: return nil
        }
    }

    @Test(arguments: [
        ["run", "--bundle", "/b", "c1"],
        ["--root", "/r", "run", "-b", "/b", "--pid-file", "/p", "-d", "c1"],
        ["--root=/r", "--log", "/l", "--log-format", "json", "run", "--detach", "--bundle=/b", "--console-socket", "/s", "c1"],
        ["--cgroup-backend", "cgroupfs", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/p", "c2"],
        ["create", "c3"],
        ["--root", "/r", "start", "c1"],
        ["state", "c1"],
        ["--debug", "delete", "--force", "c1"],
        ["delete", "-f", "c1"],
        ["kill", "c1", "KILL"],
        ["kill", "--all", "c1", "9"],
        ["kill", "c1"],
    ])
    func readsWhatArgumentParserReads(args: [String]) throws {
        let fast = try #require(OCIFastPath(args))
        let parsed = try #require(meaning(try OCI.parseAsRoot(args)))
        #expect(meaning(fast) == parsed)
    }

    @Test(arguments: [
        ["run", "--help"], ["run", "--bundle", "/b"], ["run", "--bundle", "/b", "c1", "extra"], ["run", "--bogus", "c1"],
        ["run", "--bundle", "/a", "--bundle", "/b", "c1"], ["exec", "c1", "true"], ["pause", "c1"], ["run", "-db", "/b", "c1"],
        ["run", "--bundle"], ["--root", "run", "c1"], ["delete", "--force=yes", "c1"], ["kill", "c1", "KILL", "more"],
        ["run", "--", "c1"], [], ["--root", "/r"],
    ])
    func leavesTheRestToArgumentParser(args: [String]) {
        #expect(OCIFastPath(args) == nil)
    }
}
