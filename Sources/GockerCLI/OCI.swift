import ArgumentParser
import CGockerCore
import Glibc
import GockerCgroups
import GockerCore
import GockerRuntime

/// The OCI runtime command line (runc's verbs and flags), for podman,
/// containerd and anyone with a bundle. Listed by `gocker --help`; the line
/// itself is read by the verbs' option tables (OCILine), GockerMain sends
/// it there.
struct OCI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oci",
        abstract: "The OCI runtime interface (runc-compatible); also reached as `gocker-oci`.",
        helpNames: []
    )

    @Argument(parsing: .allUnrecognized) var words: [String] = []

    func run() throws {
        guard let line = try OCILine(words) else { return print(OCILine.help(words), terminator: "") }
        try line.verb.run()
    }
}

/// The options runc takes before the verb (and gocker after it too).
struct OCIGlobalOptions: Equatable {
    var root = StateStore.defaultRoot
    var log: String?
    var logFormat = "text"
    var debug = false
    var systemdCgroup = false
    var cgroupBackend: String?

    var runtime: Runtime { Runtime(stateRoot: root, cgroupBackend: cgroupBackend) }

    static let options: [CommandOption<OCIGlobalOptions>] = [
        .text("root", "dir", help: "Root directory for storage of container state (env GOCKER_STATE_ROOT).") { $0.root = $1 },
        .text("log", "file", help: "Where to write errors (default stderr).") { $0.log = $1 },
        .text("log-format", "format", help: "The log format: text or json.") { $0.logFormat = $1 },
        .flag("debug", help: "Log more.") { $0.debug = true },
        .flag("systemd-cgroup", help: "Accepted for compatibility; gocker manages cgroupfs itself.") { $0.systemdCgroup = true },
        .text("cgroup-backend", "backend", help: "libcgroup (default) or cgroupfs (env GOCKER_CGROUP_BACKEND).") { $0.cgroupBackend = $1 },
    ]
    static let table = OptionTable(options)
}

/// `--log FILE` (`--log-format text|json`): a failure is written there too,
/// as runc's logrus writes it, for the engine that reads the file (podman
/// with --log-format json reads the message from it).
enum OCILog {
    static func error(_ message: String, global: OCIGlobalOptions) {
        guard let path = global.log else { return }
        let time = Timestamp.now()
        var line: String
        if global.logFormat == "json" {
            line = String(decoding: JSON.strings(["level": "error", "msg": message, "time": time]), as: UTF8.self)
        } else {
            var quoted = ""
            for c in message {
                if c == "\\" || c == "\"" { quoted.append("\\") }
                quoted.append(c)
            }
            line = "time=\"\(time)\" level=error msg=\"\(quoted)\""
        }
        line += "\n"
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = line.withCString { write(fd, $0, strlen($0)) }
        Sys.close(fd)
    }
}

/// A verb of the OCI front door: its options (the global ones first, as
/// they are taken after the verb too), its arguments, what it does. It
/// fails with exit status 1, as runc does.
protocol OCIVerb: SendableMetatype, Equatable {
    static var name: String { get }
    static var abstract: String { get }
    static var options: OptionTable<Self> { get }
    /// Its arguments' names and help, for --help; all but the optional
    /// last are needed.
    static var arguments: [String] { get }
    static var argumentHelp: [String] { get }
    /// The count of arguments it needs (the rest are optional).
    static var required: Int { get }
    /// Whether everything after the first argument is a command, left alone.
    static var passthrough: Bool { get }
    init()
    var global: OCIGlobalOptions { get set }
    var id: String { get }
    mutating func take(_ arguments: [String], rest: [String])
    func run() throws
}

extension OCIVerb {
    static var arguments: [String] { ["container-id"] }
    static var argumentHelp: [String] { ["The container's id."] }
    static var required: Int { 1 }
    static var passthrough: Bool { false }
    /// The global options, lifted into a verb.
    static func globals() -> [CommandOption<Self>] {
        OCIGlobalOptions.options.map { $0.lifted { (v: inout Self, body) throws(GockerError) in try body(&v.global) } }
    }
}

/// The verbs `gocker oci` knows, in its help's order.
var ociVerbs: [any OCIVerb.Type] { [OCICreate.self, OCIStart.self, OCIState.self, OCIKill.self, OCIDelete.self, OCIRun.self,
                                    OCIExec.self, OCIPause.self, OCIResume.self, OCIList.self, OCIPs.self, OCIUpdate.self,
                                    OCIEvents.self, OCIFeatures.self, OCISpec.self] }

/// A read `gocker oci` line: its verb, with its options and arguments.
struct OCILine {
    var verb: any OCIVerb

    /// Reads the words after `oci`; nil when they ask for help (or name no verb).
    init?(_ args: [String]) throws(GockerError) {
        var global = OCIGlobalOptions()
        let reading = try OCIGlobalOptions.table.parse(args, into: &global, stopAfter: 1)
        guard !reading.help, let name = reading.arguments.first else { return nil }
        // Each verb by its own type, not through `any OCIVerb.Type`: the
        // reading is then specialized for it, not run through witness
        // tables on every start (ociVerbs lists the same verbs for help;
        // the tests read every verb through here).
        let rest = reading.rest
        let verb: (any OCIVerb)?
        switch name {
        case OCICreate.name: verb = try Self.read(OCICreate.self, rest, global: global)
        case OCIStart.name: verb = try Self.read(OCIStart.self, rest, global: global)
        case OCIState.name: verb = try Self.read(OCIState.self, rest, global: global)
        case OCIKill.name: verb = try Self.read(OCIKill.self, rest, global: global)
        case OCIDelete.name: verb = try Self.read(OCIDelete.self, rest, global: global)
        case OCIRun.name: verb = try Self.read(OCIRun.self, rest, global: global)
        case OCIExec.name: verb = try Self.read(OCIExec.self, rest, global: global)
        case OCIPause.name: verb = try Self.read(OCIPause.self, rest, global: global)
        case OCIResume.name: verb = try Self.read(OCIResume.self, rest, global: global)
        case OCIList.name: verb = try Self.read(OCIList.self, rest, global: global)
        case OCIPs.name: verb = try Self.read(OCIPs.self, rest, global: global)
        case OCIUpdate.name: verb = try Self.read(OCIUpdate.self, rest, global: global)
        case OCIEvents.name: verb = try Self.read(OCIEvents.self, rest, global: global)
        case OCIFeatures.name: verb = try Self.read(OCIFeatures.self, rest, global: global)
        case OCISpec.name: verb = try Self.read(OCISpec.self, rest, global: global)
        default: throw GockerError(.invalidArgument, "Unexpected argument '\(name)'")
        }
        guard let verb else { return nil }
        self.verb = verb
    }

    static func read<V: OCIVerb>(_ type: V.Type, _ args: [String], global: OCIGlobalOptions) throws(GockerError) -> V? {
        var verb = V()
        verb.global = global
        let reading = try V.options.parse(args, into: &verb, stopAfter: V.passthrough ? 1 : .max)
        if reading.help { return nil }
        if reading.arguments.count < V.required {
            throw GockerError(.invalidArgument, "Missing expected argument '<\(V.arguments[reading.arguments.count])>'")
        }
        if reading.arguments.count > V.arguments.count {
            throw GockerError(.invalidArgument, "Unexpected argument '\(reading.arguments[V.arguments.count])'")
        }
        verb.take(reading.arguments, rest: reading.rest)
        return verb
    }

    /// `--version`, in runc's lines.
    static var version: String {
        "gocker-oci version \(Gocker.gockerVersion)\nspec: \(Spec.version)\nlibseccomp: \(String(cString: gk_seccomp_version()))"
    }

    /// `gocker oci --help`, or a verb's when the line names one.
    static func help(_ args: [String]) -> String {
        var global = OCIGlobalOptions()
        let name = (try? OCIGlobalOptions.table.parse(args, into: &global, stopAfter: 1))?.arguments.first
        if let type = ociVerbs.first(where: { $0.name == name }) { return verbHelp(type) }
        var out = "OVERVIEW: \(OCI.configuration.abstract)\n\nUSAGE: gocker oci [OPTIONS] <subcommand>\n\nOPTIONS:\n"
        out += OCIGlobalOptions.table.helpLines() + "\nSUBCOMMANDS:\n"
        for verb in ociVerbs { OptionTable<OCIGlobalOptions>.appendEntry(&out, verb.name, verb.abstract) }
        return out
    }

    static func verbHelp<V: OCIVerb>(_ type: V.Type) -> String {
        let arguments = V.arguments.enumerated().map { $0.offset < V.required ? "<\($0.element)>" : "[<\($0.element)>]" + (V.passthrough ? " ..." : "") }
        var out = "OVERVIEW: \(V.abstract)\n\nUSAGE: gocker oci \(V.name) [OPTIONS] \(arguments.joined(separator: " "))\n\nARGUMENTS:\n"
        for (n, h) in zip(V.arguments, V.argumentHelp) { OptionTable<V>.appendEntry(&out, "<\(n)>", h) }
        return out + "\nOPTIONS:\n" + V.options.helpLines()
    }
}

struct OCICreate: OCIVerb {
    static let name = "create"
    static let abstract = "Create a container from a bundle; `start` runs its process."
    static let options = OptionTable(globals() + [
        .text("bundle", short: "b", "dir", help: "The bundle directory (default: current).") { $0.bundle = $1 },
        .text("pid-file", "file", help: "Write the container's pid here.") { $0.pidFile = $1 },
        .text("console-socket", "path", help: "Send the pty master to this unix socket (a config with process.terminal).") {
            $0.consoleSocket = $1
        },
    ])
    var global = OCIGlobalOptions()
    var bundle = "."
    var pidFile: String?
    var consoleSocket: String?
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }

    func run() throws {
        try OCIVerbs.create(global.runtime, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket, id: id)
    }
}

struct OCIStart: OCIVerb {
    static let name = "start"
    static let abstract = "Run the process of a created container."
    static let options = OptionTable<Self>(globals())
    var global = OCIGlobalOptions()
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }
    func run() throws { try OCIVerbs.start(global.runtime, id: id) }
}

struct OCIState: OCIVerb {
    static let name = "state"
    static let abstract = "Print a container's state as JSON."
    static let options = OptionTable<Self>(globals())
    var global = OCIGlobalOptions()
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }
    func run() throws { try OCIVerbs.state(global.runtime, id: id) }
}

struct OCIKill: OCIVerb {
    static let name = "kill"
    static let abstract = "Send a signal (default TERM) to a container's process."
    static let options = OptionTable(globals() + [
        .flag("all", short: "a", help: "Signal every process of the container.") { $0.all = true },
    ])
    static let arguments = ["container-id", "signal"]
    static let argumentHelp = ["The container's id.", "The signal: a name (TERM, SIGKILL) or a number."]
    var global = OCIGlobalOptions()
    var all = false
    var id = ""
    var signal = "TERM"

    mutating func take(_ arguments: [String], rest: [String]) {
        id = arguments[0]
        if arguments.count > 1 { signal = arguments[1] }
    }

    func run() throws { try OCIVerbs.kill(global.runtime, id: id, signal: signal, all: all) }
}

struct OCIDelete: OCIVerb {
    static let name = "delete"
    static let abstract = "Delete a container's state and whatever it holds."
    static let options = OptionTable(globals() + [
        .flag("force", short: "f", help: "Kill a running container first; an unknown id is not an error.") { $0.force = true },
    ])
    var global = OCIGlobalOptions()
    var force = false
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }
    func run() throws { try OCIVerbs.delete(global.runtime, id: id, force: force) }
}

struct OCIRun: OCIVerb {
    static let name = "run"
    static let abstract = "Create and start a container from a bundle and wait for it."
    static let options = OptionTable(globals() + [
        .text("bundle", short: "b", "dir", help: "The bundle directory (default: current).") { $0.bundle = $1 },
        .text("pid-file", "file", help: "Write the container's pid here.") { $0.pidFile = $1 },
        .flag("detach", short: "d", help: "Return once the container runs, without waiting.") { $0.detach = true },
        .text("console-socket", "path", help: "Send the pty master to this unix socket (a config with process.terminal).") {
            $0.consoleSocket = $1
        },
    ])
    var global = OCIGlobalOptions()
    var bundle = "."
    var pidFile: String?
    var detach = false
    var consoleSocket: String?
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }

    func run() throws {
        try OCIVerbs.run(global.runtime, bundle: bundle, pidFile: pidFile, detach: detach, consoleSocket: consoleSocket, id: id)
    }
}

struct OCIPause: OCIVerb {
    static let name = "pause"
    static let abstract = "Freeze every process of the container."
    static let options = OptionTable<Self>(globals())
    var global = OCIGlobalOptions()
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }
    func run() throws { try global.runtime.pause(id: id) }
}

struct OCIResume: OCIVerb {
    static let name = "resume"
    static let abstract = "Thaw the processes of a paused container."
    static let options = OptionTable<Self>(globals())
    var global = OCIGlobalOptions()
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }
    func run() throws { try global.runtime.resume(id: id) }
}

struct OCIList: OCIVerb {
    static let name = "list"
    static let abstract = "List the containers of the state root."
    static let options = OptionTable(globals() + [
        .text("format", short: "f", "format", help: "table (default) or json.") { $0.format = $1 },
        .flag("quiet", short: "q", help: "Only the ids.") { $0.quiet = true },
    ])
    static let arguments: [String] = []
    static let argumentHelp: [String] = []
    static let required = 0
    var global = OCIGlobalOptions()
    var format = "table"
    var quiet = false
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) {}

    /// runc's: ids sorted, a table with its columns (pid 0 once stopped,
    /// the owner's name or #uid), or its JSON (null for none).
    func run() throws {
        guard format == "table" || format == "json" else {
            throw GockerError(.invalidArgument, "invalid format option \"\(format)\": expected table or json")
        }
        let runtime = global.runtime
        let states = runtime.store.ids().sorted().compactMap { id -> GockerCore.OCIState? in
            guard var s = try? runtime.state(id: id) else { return nil }
            var st = stat()
            let uid = stat(runtime.store.directory(id), &st) == 0 ? st.st_uid : 0
            s.owner = uid == 0 ? "root" : "#\(uid)"
            return s
        }
        if quiet {
            for s in states { print(s.id) }
        } else if format == "json" {
            print(states.isEmpty ? "null" : "[" + states.map { String(decoding: $0.jsonBytes, as: UTF8.self) }.joined(separator: ",") + "]")
        } else {
            var rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
            for s in states {
                rows.append([s.id, String(s.pid), s.status.rawValue, s.bundle, s.created ?? "", s.owner ?? ""])
            }
            print(OCIVerbs.columns(rows), terminator: "")
        }
    }
}

struct OCIPs: OCIVerb {
    static let name = "ps"
    static let abstract = "List a container's processes: the host's ps output cut down to them, or their host pids as JSON."
    static let arguments = ["container-id", "ps-options"]
    static let argumentHelp = ["The container's id.", "Options for the host's ps (default -ef); not with --format json."]
    static let passthrough = true
    static let options = OptionTable(globals() + [
        .text("format", short: "f", "format", help: "table (default) or json.") { $0.format = $1 },
    ])
    var global = OCIGlobalOptions()
    var format = "table"
    var id = ""
    var psOptions: [String] = []

    mutating func take(_ arguments: [String], rest: [String]) {
        id = arguments[0]
        psOptions = rest
    }

    func run() throws {
        let runtime = global.runtime
        let s = try runtime.store.load(id)
        let pids = runtime.status(of: s) == .stopped ? [] : runtime.processes(of: s).sorted()
        switch format {
        case "json":
            guard psOptions.isEmpty else {
                throw GockerError(.invalidArgument, "ps options are not supported with --format json")
            }
            print("[" + pids.map { String($0) }.joined(separator: ",") + "]")
        case "table":
            let rows = try Engine.hostPS(psOptions.isEmpty ? ["-ef"] : psOptions, pids: Set(pids))
            print(OCIVerbs.columns(rows), terminator: "")
        default:
            throw GockerError(.invalidArgument, "invalid format option \"\(format)\": expected table or json")
        }
    }
}

struct OCIUpdate: OCIVerb {
    static let name = "update"
    static let abstract = "Change the resource limits of a container that has not stopped (device rules stay as they are)."
    /// runc's flags: each sets one member of linux.resources (memory
    /// sizes as runc reads them: 128m, 1g, or bytes; -1 unlimited).
    static let fields: [(flag: String, section: String, member: String, size: Bool, help: String)] = [
        ("memory", "memory", "limit", true, "Memory limit."),
        ("memory-reservation", "memory", "reservation", true, "Memory soft limit."),
        ("memory-swap", "memory", "swap", true, "Memory plus swap limit (-1: unlimited)."),
        ("kernel-memory", "memory", "kernel", true, "Kernel memory limit."),
        ("kernel-memory-tcp", "memory", "kernelTCP", true, "Kernel TCP buffer memory limit."),
        ("cpu-share", "cpu", "shares", false, "CPU shares (relative weight)."),
        ("cpu-quota", "cpu", "quota", false, "CPU CFS quota in microseconds per period."),
        ("cpu-period", "cpu", "period", false, "CPU CFS period in microseconds."),
        ("cpu-rt-runtime", "cpu", "realtimeRuntime", false, "CPU real-time runtime in microseconds."),
        ("cpu-rt-period", "cpu", "realtimePeriod", false, "CPU real-time period in microseconds."),
        ("cpuset-cpus", "cpu", "cpus", false, "CPUs to run on (0-3, 0,1)."),
        ("cpuset-mems", "cpu", "mems", false, "Memory nodes to use (0-3, 0,1)."),
        ("pids-limit", "pids", "limit", false, "Maximum number of processes (-1: unlimited)."),
        ("blkio-weight", "blockIO", "weight", false, "Block I/O weight (10 to 1000)."),
    ]
    static let options = OptionTable(globals() + [
        .text("resources", short: "r", "file", help: "linux.resources as JSON from this file (- for standard input); the flags below go over it.") {
            $0.resourcesFile = $1
        },
    ] + fields.map { f in
        CommandOption<Self>(name: f.flag, value: .signed, valueName: "value", help: f.help) { $0.flags.append((f.flag, $1)) }
    })
    var global = OCIGlobalOptions()
    var resourcesFile: String?
    var flags: [(String, String)] = []
    var id = ""

    static func == (a: Self, b: Self) -> Bool {
        a.global == b.global && a.resourcesFile == b.resourcesFile && a.id == b.id
            && a.flags.map { $0.0 + "=" + $0.1 } == b.flags.map { $0.0 + "=" + $0.1 }
    }

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }

    /// linux.resources from the file and the flags.
    func resources() throws(GockerError) -> Spec.Resources {
        var resources = Spec.Resources()
        if let file = resourcesFile {
            let bytes: [UInt8]
            if file == "-" {
                do { bytes = try Sys.readAll(0, path: "standard input") } catch {
                    throw GockerError(.system, "read the resources", cause: error)
                }
            } else {
                bytes = try JSON.readFile(file)
            }
            resources = try JSON.read(Spec.Resources.self, from: bytes, what: file == "-" ? "standard input" : file)
        }
        for (flag, text) in flags {
            guard let f = Self.fields.first(where: { $0.flag == flag }) else { continue }
            let number: String
            if f.member == "cpus" || f.member == "mems" {
                resources.unmodeled[f.section] = Self.setting(resources.unmodeled[f.section], f.member, .string(text))
                continue
            } else if f.size && text != "-1" {
                number = String(try ResourceFlags.parseSize(text, flag: "--" + flag))
            } else {
                guard Int64(text) != nil else { throw GockerError(.invalidArgument, "invalid value \"\(text)\" for --\(flag)") }
                number = text
            }
            resources.unmodeled[f.section] = Self.setting(resources.unmodeled[f.section], f.member, .number(number))
        }
        return resources
    }

    static func setting(_ section: JSONValue?, _ member: String, _ value: JSONValue) -> JSONValue {
        guard case .object(var object)? = section else { return .object([member: value]) }
        object[member] = value
        return .object(object)
    }

    func run() throws {
        let resources = try resources()
        guard !resources.unmodeled.isEmpty else {
            throw GockerError(.invalidArgument, "nothing to update: give --resources or a limit flag")
        }
        try global.runtime.update(id: id, resources: resources)
    }
}

/// What the OCI verbs do, whichever parser read their command line.
enum OCIVerbs {
    static func create(_ runtime: Runtime, bundle: String, pidFile: String?, consoleSocket: String?, id: String) throws {
        try runtime.refuseRootlessChoices()
        try runtime.create(id: id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket)
    }

    static func start(_ runtime: Runtime, id: String) throws { try runtime.start(id: id) }

    static func state(_ runtime: Runtime, id: String) throws {
        let state = try runtime.state(id: id)
        print(String(decoding: JSONText.pretty(state.jsonBytes), as: UTF8.self))
    }

    static func kill(_ runtime: Runtime, id: String, signal: String, all: Bool) throws {
        try runtime.kill(id: id, signal: try Signals.parse(signal), all: all)
    }

    static func delete(_ runtime: Runtime, id: String, force: Bool) throws { try runtime.delete(id: id, force: force) }

    /// Rows as columns, each as wide as its widest cell and three spaces
    /// apart (at least 12 wide), as runc's tabwriter prints them.
    static func columns(_ rows: [[String]]) -> String {
        var widths: [Int] = []
        for r in rows {
            for (i, c) in r.enumerated() {
                if i == widths.count { widths.append(0) }
                widths[i] = max(widths[i], c.count)
            }
        }
        var out = ""
        for r in rows {
            for (i, c) in r.enumerated() {
                out += c
                if i < r.count - 1 { out += String(repeating: " ", count: max(widths[i] + 3, 12) - c.count) }
            }
            out += "\n"
        }
        return out
    }

    static func run(_ runtime: Runtime, bundle: String, pidFile: String?, detach: Bool, consoleSocket: String?, id: String) throws {
        try runtime.refuseRootlessChoices()
        if detach {
            try runtime.create(id: id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket)
            do { try runtime.start(id: id) } catch {
                try? runtime.delete(id: id, force: true)
                throw error
            }
            return
        }
        // A config with process.terminal gets gocker's own terminal, or the
        // console socket's.
        var io = Runtime.TerminalIO.standard(interactive: true)
        io.consoleSocket = consoleSocket
        let exit = try runtime.runForeground(id: id, bundle: bundle, pidFile: pidFile, terminal: io, checkOOM: false)
        if exit.status != 0 { throw ContainerExit(status: exit.status) }
    }
}
