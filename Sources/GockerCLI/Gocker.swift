import ArgumentParser
import CGockerCore
import Glibc
import GockerCore
import GockerRuntime

/// The entry point of the gocker binary. Invoked through a link named
/// `gocker-oci`, it behaves as `gocker oci` (the name podman and containerd
/// are given as a runc-compatible runtime).
public enum GockerMain {
    public static func main() -> Never {
        Timings.begin()
        var args = Array(CommandLine.arguments.dropFirst())
        gk_rootless_export()
        let invokedAs = CommandLine.arguments.first.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? ""
        if invokedAs == "gocker-oci" { args.insert("oci", at: 0) }
        let status = run(args)
        Timings.finish()
        exit(status)
    }

    /// Parses and runs one command line; returns the exit status.
    public static func run(_ args: [String]) -> Int32 {
        // The OCI verbs are read by their option tables, whatever the line.
        if args.first == "oci" || (args.first == "help" && args.dropFirst().first == "oci") {
            let words = Array(args.dropFirst(args.first == "help" ? 2 : 1))
            // runc's --version (podman asks it of every runtime it knows).
            if words == ["--version"] || words == ["-v"] {
                print(OCILine.version)
                return 0
            }
            let line: OCILine?
            do {
                line = args.first == "help" ? nil : try OCILine(words)
            } catch {
                report(error.description)
                return 125
            }
            Timings.commandParsed()
            guard let line else {
                print(OCILine.help(words), terminator: "")
                return 0
            }
            // The OCI front door fails like runc: exit 1, also for a
            // command the container cannot run (engines read the words);
            // exec as runc's: 255 and "exec failed: ..." once its line was
            // read (containerd and podman take 255 for a process that never ran).
            let exec = line.verb is OCIExec
            return execute(ownFailure: exec ? 255 : 1, everyFailure: true) {
                let format = line.verb.global.logFormat
                guard format == "text" || format == "json" else {
                    throw GockerError(.invalidArgument, "invalid log format \"\(format)\": expected text or json")
                }
                do { try line.verb.run() } catch var e as GockerError {
                    if exec { e.message = "exec failed: " + e.message }
                    OCILog.error(e.description, global: line.verb.global)
                    throw e
                }
            }
        }
        // run and create are read by their option table, whatever the line.
        if args.first == "run" || args.first == "create" || (args.count == 2 && args.first == "help" && (args[1] == "run" || args[1] == "create")) {
            let create = args.first == "create" || args.last == "create"
            let line: RunLine?
            do {
                line = args.first == "help" ? nil : try RunLine.parse(Array(args.dropFirst()))
            } catch {
                report(error.description)
                return 125
            }
            Timings.commandParsed()
            guard let line else {
                print(RunLine.help(create: create), terminator: "")
                return 0
            }
            if line.timings && !create { Timings.printOnExit() }
            return execute(ownFailure: 125) {
                try PullArguments.pulling(line) {
                    if create { return try Create.create(line) }
                    try Run.start(line.request, engine: line.engine)
                }
            }
        }
        var command: any ParsableCommand
        do {
            command = try parse(args)
            Timings.commandParsed()
        } catch {
            let code = Gocker.exitCode(for: error)
            if code == .success {
                print(Gocker.fullMessage(for: error))
                return 0
            }
            report(Gocker.message(for: error))
            return 125
        }
        // The docker-like front door fails like docker (125).
        return execute(ownFailure: 125) { try command.run() }
    }

    /// Runs a parsed command: its exit status, its error on stderr.
    /// `everyFailure`: every error exits `ownFailure` (126 and 127 too).
    static func execute(ownFailure: Int32, everyFailure: Bool = false, _ body: () throws -> Void) -> Int32 {
        do {
            try body()
            return 0
        } catch let e as ContainerExit {
            return e.status
        } catch let e as GockerError {
            report(e.description)
            return e.exitStatus == 125 || everyFailure ? ownFailure : e.exitStatus
        } catch let e as ExitCode {
            return e.rawValue
        } catch {
            if Gocker.exitCode(for: error) == .success {
                print(Gocker.fullMessage(for: error))
                return 0
            }
            report(Gocker.message(for: error))
            return ownFailure
        }
    }

    /// The container-starting commands are parsed by their own type: the
    /// root's parser first builds the whole command tree, which costs
    /// milliseconds on every start.
    static func parse(_ args: [String]) throws -> any ParsableCommand {
        if let first = args.first, args.count > 1, !args.dropFirst().contains(where: { $0 == "--help" || $0 == "--version" }) {
            let rest = Array(args.dropFirst())
            switch first {
            case "exec": return try Exec.parse(rest)
            default: break
            }
        }
        return try Gocker.parseAsRoot(args)
    }

    /// One line on stderr.
    static func report(_ message: String) {
        var line = message.split(separator: "\n").first.map(String.init) ?? message
        if line.hasPrefix("Error: ") { line.removeFirst(7) }
        let text = "gocker: error: \(line)\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}

/// Ends gocker with a container's own exit status.
struct ContainerExit: Error {
    let status: Int32
}

struct Gocker: ParsableCommand {
    static let gockerVersion = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "gocker",
        abstract: "A daemonless Linux container runtime.",
        discussion: """
            Containers run from images with namespaces, cgroups and an overlay root \
            filesystem, without a daemon. `gocker oci` speaks the OCI runtime command \
            line, for podman and containerd.
            """,
        version: gockerVersion,
        subcommands: [MonitorStart.self, MonitorExited.self],
        groupedSubcommands: [
            CommandGroup(name: "Containers", subcommands: [
                Run.self, Create.self, Start.self, Stop.self, Restart.self, Kill.self, Wait.self, Remove.self,
                Exec.self, Top.self, Port.self, Pause.self, Unpause.self, PS.self, Logs.self, Inspect.self, Stats.self, ContainerCommand.self,
                Commit.self, Export.self, Diff.self, Bench.self,
            ]),
            CommandGroup(name: "Images", subcommands: [Images.self, Pull.self, Push.self, Login.self, Logout.self, RemoveImages.self, Tag.self, Import.self, ImageCommand.self,
                                                        Save.self, Load.self, History.self]),
            CommandGroup(name: "Volumes and networks", subcommands: [VolumeCommand.self, NetworkCommand.self]),
            CommandGroup(name: "OCI runtime", subcommands: [OCI.self]),
        ]
    )
}

/// The two roots, as in docker and runc.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("data-root"), help: ArgumentHelp(
        "Where images, containers' layers and logs live (env GOCKER_DATA_ROOT).", valueName: "dir"))
    var dataRoot: String = Engine.defaultDataRoot

    @Option(name: .customLong("root"), help: ArgumentHelp(
        "Where the runtime state of live containers lives (env GOCKER_STATE_ROOT).", valueName: "dir"))
    var stateRoot: String = StateStore.defaultRoot

    var engine: Engine { Engine(dataRoot: dataRoot, stateRoot: stateRoot) }
}
