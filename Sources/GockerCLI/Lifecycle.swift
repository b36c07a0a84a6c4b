import ArgumentParser
import Glibc
import GockerCore
import GockerRuntime

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a new container without starting it (`run`'s options).",
        usage: "gocker create [OPTIONS] IMAGE [COMMAND] [ARG...]", helpNames: [])

    /// As for Run: the line is read by RunLine.options.
    @Argument(parsing: .allUnrecognized) var words: [String] = []

    func run() throws {
        guard let line = try RunLine.parse(words) else { return print(RunLine.help(create: true), terminator: "") }
        try PullArguments.pulling(line) { try Self.create(line) }
    }

    static func create(_ line: RunLine) throws {
        let record = try line.engine.create(line.request)
        print(record.id)
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start one or more stopped containers.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("attach")], help: "Follow the container's output and end with its exit status.")
    var attach = false

    @Argument(help: ArgumentHelp("Containers: names, ids or id prefixes.", valueName: "container"))
    var containers: [String]

    func run() throws {
        let engine = global.engine
        for ref in containers {
            var record = try engine.lookup(ref)
            if engine.state(of: record) != .running && engine.state(of: record) != .paused {
                let logStart = engine.logSize(record.id)
                try engine.startDetached(&record)
                if attach {
                    try engine.followLogs(record.id, from: logStart)
                    let code = try engine.wait(record.id)
                    if code != 0 { throw ContainerExit(status: code) }
                    return
                }
            }
            if !attach { print(ref) }
        }
    }
}

/// What `stop` and `restart` take.
struct StopArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("time")], parsing: .unconditional,
            help: ArgumentHelp("Seconds to wait before killing (negative: wait as long as it takes).", valueName: "seconds"))
    var time: Int = 10

    @Argument(help: ArgumentHelp("Containers.", valueName: "container"))
    var containers: [String]
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop running containers: SIGTERM, then SIGKILL after a grace period.")

    @OptionGroup var arguments: StopArguments

    func run() throws {
        let engine = arguments.global.engine
        try eachContainer(arguments.containers) { ref throws(GockerError) in
            try engine.stop(ref, timeout: arguments.time)
        }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Restart one or more containers.")

    @OptionGroup var arguments: StopArguments

    func run() throws {
        let engine = arguments.global.engine
        try eachContainer(arguments.containers) { ref throws(GockerError) in
            try engine.stop(ref, timeout: arguments.time)
            var record = try engine.lookup(ref)
            try engine.startDetached(&record)
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal (default KILL) to running containers.")

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("signal")], help: ArgumentHelp("The signal: a name or a number.", valueName: "signal"))
    var signal: String = "KILL"

    @Argument(help: ArgumentHelp("Containers.", valueName: "container"))
    var containers: [String]

    func run() throws {
        let sig = try Signals.parse(signal)
        try eachContainer(containers) { ref throws(GockerError) in try global.engine.kill(ref, signal: sig) }
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Block until containers stop, then print their exit codes.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("Containers.", valueName: "container"))
    var containers: [String]

    func run() throws {
        try eachContainer(containers, echo: false) { ref throws(GockerError) in print(try global.engine.wait(ref)) }
    }
}

/// Runs `body` for each container, printing its name like docker, going on
/// after a failure and exiting 1 if any failed.
func eachContainer(_ refs: [String], echo: Bool = true, _ body: (String) throws(GockerError) -> Void) throws {
    var failed = false
    for ref in refs {
        do {
            try body(ref)
            if echo { print(ref) }
        } catch {
            GockerMain.report(error.description)
            failed = true
        }
    }
    if failed { throw ExitCode(1) }
}

struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("all")], help: "Show all containers (default: only running ones).")
    var all = false

    @Flag(name: [.short, .customLong("quiet")], help: "Only show ids.")
    var quiet = false

    @Option(name: [.customShort("n"), .customLong("last")], help: ArgumentHelp("Show the n last created containers (all states).", valueName: "n"))
    var last: Int?

    @Flag(name: [.customShort("l"), .customLong("latest")], help: "Show the last created container (all states).")
    var latest = false

    @Flag(name: .customLong("no-trunc"), help: "Do not truncate ids and commands.")
    var noTrunc = false

    @Option(name: [.short, .customLong("filter")], help: ArgumentHelp("Filter: name=, status=, id=.", valueName: "filter"))
    var filter: [String] = []

    @Option(help: ArgumentHelp("json, or a template such as '{{.ID}} {{.Names}}'.", valueName: "format"))
    var format: String?

    func run() throws {
        let engine = global.engine
        engine.reapOrphans()
        var rows = try engine.listContainers(all: all || last != nil || latest, filters: filter)
        if latest { rows = Array(rows.suffix(1)) }
        if let last { rows = Array(rows.suffix(max(last, 0))) }
        rows.reverse()  // newest first, as docker
        if !noTrunc {
            for i in rows.indices {
                rows[i].ID = String(rows[i].ID.prefix(12))
                if rows[i].Command.count > 22 { rows[i].Command = String(rows[i].Command.prefix(19)) + "..." }
            }
        }
        if quiet {
            for r in rows { print(r.ID) }
        } else if format == "json" {
            for r in rows { print(String(decoding: JSON.encode(r), as: UTF8.self)) }
        } else if let format {
            for r in rows { print(r.render(template: format)) }
        } else {
            let header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
            print(TextTable.render([header] + rows.map {
                [$0.ID, $0.Image, "\"\($0.Command)\"", $0.RunningFor, $0.Status, $0.Ports, $0.Names]
            }), terminator: "")
        }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a container's output.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("follow")], help: "Keep following new output until the container stops.")
    var follow = false

    @Option(name: [.customShort("n"), .customLong("tail")], help: ArgumentHelp("Lines from the end (default: all).", valueName: "n"))
    var tail: String = "all"

    @Flag(name: [.short, .customLong("timestamps")], help: "Show timestamps.")
    var timestamps = false

    @Option(help: ArgumentHelp("Only output since this time (RFC 3339, or a duration such as 10m).", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("Only output before this time (RFC 3339, or a duration such as 10m).", valueName: "time"))
    var until: String?

    @Argument(help: ArgumentHelp("The container.", valueName: "container"))
    var container: String

    func run() throws {
        let engine = global.engine
        let record = try engine.lookup(container)
        var options = LogOptions()
        options.timestamps = timestamps
        if tail != "all" {
            guard let n = Int(tail), n >= 0 else {
                throw GockerError(.invalidArgument, "invalid argument \"\(tail)\" for --tail: a number or all")
            }
            options.tail = n
        }
        options.since = try since.map { s throws(GockerError) in try LogOptions.time(s, flag: "--since") }
        options.until = try until.map { s throws(GockerError) in try LogOptions.time(s, flag: "--until") }
        let end = try engine.printLogs(record.id, options)
        if follow { try engine.followLogs(record.id, from: end, options) }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show containers in detail, as JSON.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("Containers.", valueName: "container"))
    var containers: [String]

    func run() throws {
        let engine = global.engine
        try printEach(containers) { ref throws(GockerError) in try engine.inspect(ref) }
    }
}

struct ContainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "container", abstract: "Manage containers.",
        subcommands: [Prune.self])

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove all stopped containers.")

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("force")], help: "Do not prompt for confirmation.")
        var force = false

        func run() throws {
            let removed = global.engine.prune()
            if !removed.isEmpty { print("Deleted Containers:") }
            for id in removed { print(id) }
        }
    }
}

/// The monitor's two calls back into gocker (not for people).
struct MonitorStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__start", shouldDisplay: false)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("report-fd")) var reportFD: Int32 = -1
    @Option(name: .customLong("console-fd")) var consoleFD: Int32 = -1

    @Argument var id: String

    func run() throws {
        let code = global.engine.startUnderMonitor(id: id, reportFD: reportFD, consoleFD: consoleFD)
        if code != 0 { throw ExitCode(code) }
    }
}

struct MonitorExited: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__exited", shouldDisplay: false)

    @OptionGroup var global: GlobalOptions

    @Argument var id: String
    @Argument var status: Int32

    func run() throws {
        let code = global.engine.containerExited(id: id, waitStatus: status)
        if code != 0 { throw ExitCode(code) }
    }
}

/// `pause` and `unpause`: what both take and do.
struct PauseArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("Containers: names, ids or id prefixes.", valueName: "container"))
    var containers: [String]

    func apply(paused: Bool) throws {
        var failed = false
        for ref in containers {
            do {
                try global.engine.setPaused(ref, paused)
                print(ref)
            } catch {
                GockerMain.report(error.description)
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Freeze every process of one or more containers (their freezer cgroup).")

    @OptionGroup var arguments: PauseArguments

    func run() throws { try arguments.apply(paused: true) }
}

struct Unpause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Thaw the processes of one or more paused containers.")

    @OptionGroup var arguments: PauseArguments

    func run() throws { try arguments.apply(paused: false) }
}

/// `inspect`'s way: one JSON array of what each name gives; a name that
/// gives nothing is reported on stderr, and the exit status is then 1.
func printEach<T: JSONShape>(_ names: [String], _ look: (String) throws(GockerError) -> T) throws {
    var out: [T] = []
    var failed = false
    for name in names {
        do { out.append(try look(name)) } catch {
            GockerMain.report(error.description)
            failed = true
        }
    }
    var text = JSONText()
    text.array(out)
    print(String(decoding: JSONText.pretty(text.bytes), as: UTF8.self))
    if failed { throw ExitCode(1) }
}

