import ArgumentParser
import GockerCore
import GockerRuntime
import Testing
@testable import GockerCLI

struct RunArgumentTests {
    @Test func dockerFlagsAndTheCommandAfterTheImage() throws {
        let r = try #require(try RunLine.parse(["--rm", "-e", "A=1", "--env", "B=2", "-w", "/tmp", "-h", "box", "--name", "web",
                                                "--network", "host", "-i", "busybox", "sh", "-c", "echo -e $A", "--rm"])).request
        #expect(r.autoRemove)
        #expect(r.env == ["A=1", "B=2"])
        #expect(r.workdir == "/tmp")
        #expect(r.hostname == "box")
        #expect(r.name == "web")
        #expect(r.network == .host)
        #expect(r.interactive)
        #expect(r.image == "busybox")
        // Everything after the image belongs to the command, flags included.
        #expect(r.command == ["sh", "-c", "echo -e $A", "--rm"])
    }

    @Test func defaults() throws {
        let r = try #require(try RunLine.parse(["busybox"])).request
        #expect(!r.autoRemove && r.command == [] && r.network == .bridge("bridge") && r.entrypoint == nil)
    }

    @Test func badInput() {
        #expect(throws: (any Error).self) { try RunLine.parse([]) }
        #expect(throws: (any Error).self) { try RunLine.parse(["--no-such-flag", "busybox"]) }
        #expect(throws: (any Error).self) { try RunLine.parse(["--network", "container:", "busybox"]) }
    }

    @Test func exitStatusesOfTheFrontDoors() {
        // Bad flags: 125 for the docker-like CLI, 1 for the OCI one (runc's).
        #expect(GockerMain.run(["run", "--no-such-flag", "busybox"]) == 125)
        #expect(GockerMain.run(["oci", "kill", "--root", "/nonexistent-gocker-root", "c", "NOSIG"]) == 1)
        #expect(GockerMain.run(["--help"]) == 0)
    }
}

struct OCIArgumentTests {
    @Test func globalOptionsBeforeTheVerb() throws {
        let parsed = try #require(try OCILine(["--root", "/r", "create", "--bundle", "/b", "--pid-file", "/p", "id1"]))
        let create = try #require(parsed.verb as? OCICreate)
        #expect(create.global.root == "/r")
        #expect(create.bundle == "/b" && create.pidFile == "/p" && create.id == "id1")
    }

    @Test func killTakesIDThenSignal() throws {
        let line = try #require(try OCILine(["kill", "--all", "c1", "KILL"]))
        let kill = try #require(line.verb as? OCIKill)
        #expect(kill.all && kill.id == "c1" && kill.signal == "KILL")
    }
}

struct VolumeArgumentTests {
    @Test func runMountFlags() throws {
        let r = try #require(try RunLine.parse(["-v", "cache:/cache:ro", "--volume", "/srv:/srv", "--mount", "type=tmpfs,dst=/t",
                                                "--tmpfs", "/run:size=1m", "--volumes-from", "web:ro", "busybox", "-v"])).request
        #expect(r.volumes == ["cache:/cache:ro", "/srv:/srv"])
        #expect(r.mounts == ["type=tmpfs,dst=/t"])
        #expect(r.tmpfs == ["/run:size=1m"])
        #expect(r.volumesFrom == ["web:ro"])
        #expect(r.command == ["-v"])
    }

    @Test func volumeCommandsAndRmV() throws {
        #expect(try Remove.parse(["-v", "-f", "c1"]).volumes)
        #expect(try Remove.parse(["c1"]).volumes == false)
        let command = try Gocker.parseAsRoot(["volume", "prune", "-a", "-f"])
        let prune = try #require(command as? VolumeCommand.Prune)
        #expect(prune.all && prune.force)
        #expect(try Gocker.parseAsRoot(["volume", "list", "-q"]) is VolumeCommand.List)
        #expect(try Gocker.parseAsRoot(["volume", "remove", "a", "b"]) is VolumeCommand.Remove)
        #expect(throws: (any Error).self) { try Gocker.parseAsRoot(["volume", "rm"]) }
    }
}

/// A negative number as a word of its own is the option's value, as in
/// docker (ArgumentParser would otherwise take "-1" for an option).
struct NegativeNumberTests {
    @Test func theyAreValues() throws {
        let r = try #require(try RunLine.parse(["--pids-limit", "-1", "-m", "64m", "--memory-swap", "-1", "busybox"])).request
        #expect(r.resources["pids-limit"] == "-1" && r.resources["memory-swap"] == "-1" && r.image == "busybox")
        let resources = try r.resources.resources(privileged: false)
        #expect(resources.pids?.limit == -1 && resources.memory?.swap == -1)
        for (flag, reason) in [("-m", "for --memory: invalid size"), ("--memory-reservation", "for --memory-reservation: invalid size"),
                               ("--cpus", "for --cpus"), ("-c", "for --cpu-shares")] {
            let request = try #require(try RunLine.parse([flag, "-1", "busybox"])).request
            let error = try #require(throws: GockerError.self) { try request.resources.resources(privileged: false) }
            #expect(error.description.contains("invalid argument \"-1\" \(reason)"), "\(error)")
        }
        let stop = try #require(try Gocker.parseAsRoot(["stop", "-t", "-1", "c1"]) as? Stop)
        #expect(stop.arguments.time == -1 && stop.arguments.containers == ["c1"])
        let restart = try #require(try Gocker.parseAsRoot(["restart", "--time", "-5", "c1"]) as? Restart)
        #expect(restart.arguments.time == -5)
    }
}

struct CommandNameTests {
    /// ArgumentParser names a command that does not name itself after its
    /// type (`String(describing:)`), and the first such use for each type
    /// searches every protocol conformance in the binary: all of them took
    /// `gocker version` from under 3 ms to over 7. Every command in the
    /// tree names itself, at every level.
    @Test func everyCommandNamesItself() {
        var unnamed: [String] = []
        var walked: [String] = []
        func walk(_ command: any ParsableCommand.Type, _ path: String) {
            let c = command.configuration
            let here = path + (path.isEmpty ? "" : " ") + (c.commandName ?? "<\(command)>")
            walked.append(here)
            if c.commandName == nil { unnamed.append(here) }
            // (`subcommands` holds the grouped ones too.)
            for sub in c.subcommands { walk(sub, here) }
        }
        walk(Gocker.self, "")
        #expect(unnamed.isEmpty, "commands without a commandName: \(unnamed)")
        // Each command once, and the groups' own verbs reached (`oci`'s
        // verbs are read by its option table, not by this tree).
        #expect(Set(walked).count == walked.count, "walked twice: \(walked)")
        for path in ["gocker ps", "gocker network create", "gocker volume prune", "gocker image ls"] {
            #expect(walked.contains(path), "\(path) not reached")
        }
    }
}
