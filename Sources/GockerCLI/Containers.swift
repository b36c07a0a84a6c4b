import ArgumentParser
import GockerCore
import GockerRuntime

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove one or more containers.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("force")], help: "Kill and remove a running container.")
    var force = false

    @Flag(name: [.short, .customLong("volumes")], help: "Remove the container's anonymous volumes too.")
    var volumes = false

    @Argument(help: ArgumentHelp("Containers: names, ids or id prefixes.", valueName: "container"))
    var containers: [String]

    func run() throws {
        var failed: GockerError?
        for ref in containers {
            do {
                try global.engine.remove(ref, force: force, volumes: volumes)
                print(ref)
            } catch {
                GockerMain.report(error.description)
                failed = error
            }
        }
        if failed != nil { throw ExitCode(1) }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show running containers' resource usage, from their cgroups.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customLong("no-stream"), help: "Print one sample and exit (the only mode so far).")
    var noStream = false

    @Option(help: ArgumentHelp("Output format: table (default) or json (one object per line).", valueName: "format"))
    var format: String = "table"

    func run() throws {
        guard format == "table" || format == "json" else {
            throw GockerError(.invalidArgument, "invalid argument \"\(format)\" for --format: expected table or json")
        }
        let rows = global.engine.stats()
        if format == "json" {
            for r in rows { print(String(decoding: JSON.encode(r), as: UTF8.self)) }
            return
        }
        let header = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "PIDS"]
        let table = [header] + rows.map { [$0.ID, $0.Name, $0.CPUPerc, $0.MemUsage, $0.MemPerc, $0.NetIO, $0.PIDs] }
        print(TextTable.render(table), terminator: "")
    }
}

/// The options `run` and `exec` share: the process's environment, working
/// directory, user and stdio.
struct ProcessOptions: ParsableArguments {
    @Option(name: [.short, .customLong("env")], help: ArgumentHelp("Set an environment variable (NAME=VALUE, or NAME to pass gocker's own).", valueName: "list"))
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: ArgumentHelp("Read environment variables from a file.", valueName: "file"))
    var envFile: [String] = []

    @Option(name: [.short, .customLong("workdir")], help: ArgumentHelp("Working directory inside the container (absolute).", valueName: "dir"))
    var workdir: String?

    @Flag(name: [.short, .customLong("interactive")], help: "Keep STDIN open.")
    var interactive = false

    @Flag(name: [.short, .customLong("tty")], help: "Allocate a terminal from the container's devpts.")
    var tty = false

    @Option(name: [.short, .customLong("user")], help: ArgumentHelp("User (name or uid) and group (name or gid), from the container's /etc/passwd and /etc/group.", valueName: "user[:group]"))
    var user: String?
}
