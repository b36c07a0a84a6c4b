import ArgumentParser
import Glibc
import GockerCore
import GockerRuntime

/// The OCI runtime command line (runc's verbs and flags), for podman,
/// containerd and anyone with a bundle.
struct OCI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oci",
        abstract: "The OCI runtime interface (runc-compatible); also reached as `gocker-oci`.",
        subcommands: [OCICreate.self, OCIStart.self, OCIState.self, OCIKill.self, OCIDelete.self, OCIRun.self, OCIExec.self, OCIPause.self, OCIResume.self]
    )

    @OptionGroup var global: OCIGlobalOptions
}

/// A verb of the OCI front door: it fails with exit status 1, as runc does.
protocol OCICommand: ParsableCommand {}

/// The options runc takes before the verb.
struct OCIGlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Root directory for storage of container state (env GOCKER_STATE_ROOT).", valueName: "dir"))
    var root: String = StateStore.defaultRoot

    @Option(help: ArgumentHelp("Where to write errors (default stderr).", valueName: "file"))
    var log: String?

    @Option(name: .customLong("log-format"), help: ArgumentHelp("The log format: text or json.", valueName: "format"))
    var logFormat: String = "text"

    @Flag(help: "Log more.")
    var debug = false

    @Flag(name: .customLong("systemd-cgroup"), help: "Accepted for compatibility; gocker manages cgroupfs itself.")
    var systemdCgroup = false

    @Option(name: .customLong("cgroup-backend"), help: ArgumentHelp("libcgroup (default) or cgroupfs (env GOCKER_CGROUP_BACKEND).", valueName: "backend"))
    var cgroupBackend: String?

    var runtime: Runtime { Runtime(stateRoot: root, cgroupBackend: cgroupBackend) }
}

struct OCICreate: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a container from a bundle; `start` runs its process.")

    @OptionGroup var global: OCIGlobalOptions

    @Option(name: [.short, .customLong("bundle")], help: ArgumentHelp("The bundle directory (default: current).", valueName: "dir"))
    var bundle: String = "."

    @Option(name: .customLong("pid-file"), help: ArgumentHelp("Write the container's pid here.", valueName: "file"))
    var pidFile: String?

    @Option(name: .customLong("console-socket"), help: ArgumentHelp("Send the pty master to this unix socket (a config with process.terminal).", valueName: "path"))
    var consoleSocket: String?

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws {
        try OCIVerbs.create(global.runtime, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket, id: id)
    }
}

struct OCIStart: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Run the process of a created container.")

    @OptionGroup var global: OCIGlobalOptions

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws { try OCIVerbs.start(global.runtime, id: id) }
}

struct OCIState: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Print a container's state as JSON.")

    @OptionGroup var global: OCIGlobalOptions

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws { try OCIVerbs.state(global.runtime, id: id) }
}

struct OCIKill: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "kill", abstract: "Send a signal (default TERM) to a container's process.")

    @OptionGroup var global: OCIGlobalOptions

    @Flag(name: [.short, .customLong("all")], help: "Signal every process of the container.")
    var all = false

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    @Argument(help: ArgumentHelp("The signal: a name (TERM, SIGKILL) or a number.", valueName: "signal"))
    var signal: String = "TERM"

    func run() throws { try OCIVerbs.kill(global.runtime, id: id, signal: signal, all: all) }
}

struct OCIDelete: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a container's state and whatever it holds.")

    @OptionGroup var global: OCIGlobalOptions

    @Flag(name: [.short, .customLong("force")], help: "Kill a running container first; an unknown id is not an error.")
    var force = false

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws { try OCIVerbs.delete(global.runtime, id: id, force: force) }
}

struct OCIRun: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create and start a container from a bundle and wait for it.")

    @OptionGroup var global: OCIGlobalOptions

    @Option(name: [.short, .customLong("bundle")], help: ArgumentHelp("The bundle directory (default: current).", valueName: "dir"))
    var bundle: String = "."

    @Option(name: .customLong("pid-file"), help: ArgumentHelp("Write the container's pid here.", valueName: "file"))
    var pidFile: String?

    @Flag(name: [.short, .customLong("detach")], help: "Return once the container runs, without waiting.")
    var detach = false

    @Option(name: .customLong("console-socket"), help: ArgumentHelp("Send the pty master to this unix socket (a config with process.terminal).", valueName: "path"))
    var consoleSocket: String?

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws {
        try OCIVerbs.run(global.runtime, bundle: bundle, pidFile: pidFile, detach: detach, consoleSocket: consoleSocket, id: id)
    }
}

struct OCIPause: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Freeze every process of the container.")

    @OptionGroup var global: OCIGlobalOptions

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws { try global.runtime.pause(id: id) }
}

struct OCIResume: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Thaw the processes of a paused container.")

    @OptionGroup var global: OCIGlobalOptions

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws { try global.runtime.resume(id: id) }
}

/// What the OCI verbs do, whichever parser read their command line.
enum OCIVerbs {
    static func create(_ runtime: Runtime, bundle: String, pidFile: String?, consoleSocket: String?, id: String) throws {
        try runtime.create(id: id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket)
    }

    static func start(_ runtime: Runtime, id: String) throws { try runtime.start(id: id) }

    static func state(_ runtime: Runtime, id: String) throws {
        let state = try runtime.state(id: id)
        print(String(decoding: JSON.encode(state, pretty: true), as: UTF8.self))
    }

    static func kill(_ runtime: Runtime, id: String, signal: String, all: Bool) throws {
        try runtime.kill(id: id, signal: try Signals.parse(signal), all: all)
    }

    static func delete(_ runtime: Runtime, id: String, force: Bool) throws { try runtime.delete(id: id, force: force) }

    static func run(_ runtime: Runtime, bundle: String, pidFile: String?, detach: Bool, consoleSocket: String?, id: String) throws {
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

/// runc's command lines for the verbs that start and end containers, read
/// by hand: ArgumentParser first builds its command tree, about a
/// millisecond of every container start. Only the plain forms containerd,
/// podman and the bench use are taken here; anything else (help, an
/// unknown or repeated flag, a missing id) goes to ArgumentParser, which
/// also words the errors.
struct OCIFastPath {
    var root = StateStore.defaultRoot
    var cgroupBackend: String?
    var verb = ""
    var options: [String: String] = [:]
    var arguments: [String] = []

    /// The global options, each verb's options (long names; nil: a flag)
    /// and how many arguments it takes.
    static let globals: [String: Bool] = ["root": true, "log": true, "log-format": true, "debug": false,
                                          "systemd-cgroup": false, "cgroup-backend": true]
    /// A switch, not a table: a dictionary of tuples is a generic type the
    /// runtime builds from its mangled name on first use (0.1 ms of a start).
    static func verb(_ name: String) -> (options: [String: Bool], arguments: ClosedRange<Int>)? {
        switch name {
        case "run": return (["bundle": true, "pid-file": true, "detach": false, "console-socket": true], 1...1)
        case "create": return (["bundle": true, "pid-file": true, "console-socket": true], 1...1)
        case "start", "state": return ([:], 1...1)
        case "delete": return (["force": false], 1...1)
        case "kill": return (["all": false], 1...2)
        default: return nil
        }
    }
    static let shortNames = ["b": "bundle", "d": "detach", "f": "force", "a": "all"]

    init?(_ args: [String]) {
        var i = 0
        var verbOptions: [String: Bool]?
        var range: ClosedRange<Int> = 0...0
        while i < args.count {
            let a = args[i]
            i += 1
            if verbOptions == nil && !a.hasPrefix("-") {
                guard let v = Self.verb(a) else { return nil }
                verb = a
                verbOptions = v.options
                range = v.arguments
                continue
            }
            if a == "--" { return nil }
            guard a.hasPrefix("-"), a != "-" else {
                arguments.append(a)
                continue
            }
            var name = a.hasPrefix("--") ? String(a.dropFirst(2)) : String(a.dropFirst())
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if !a.hasPrefix("--") {
                guard let long = Self.shortNames[name] else { return nil }
                name = long
            }
            guard let takesValue = (verbOptions ?? Self.globals)[name], options[name] == nil else { return nil }
            if takesValue {
                if value == nil {
                    guard i < args.count, !args[i].hasPrefix("-") else { return nil }
                    value = args[i]
                    i += 1
                }
            } else if value != nil {
                return nil
            }
            if verbOptions == nil {
                if name == "root" { root = value! }
                if name == "cgroup-backend" { cgroupBackend = value! }
            } else {
                options[name] = value ?? ""
            }
        }
        guard verbOptions != nil, range.contains(arguments.count) else { return nil }
    }

    func run() throws {
        let runtime = Runtime(stateRoot: root, cgroupBackend: cgroupBackend)
        let id = arguments[0]
        switch verb {
        case "run":
            try OCIVerbs.run(runtime, bundle: options["bundle"] ?? ".", pidFile: options["pid-file"],
                             detach: options["detach"] != nil, consoleSocket: options["console-socket"], id: id)
        case "create":
            try OCIVerbs.create(runtime, bundle: options["bundle"] ?? ".", pidFile: options["pid-file"],
                                consoleSocket: options["console-socket"], id: id)
        case "start": try OCIVerbs.start(runtime, id: id)
        case "state": try OCIVerbs.state(runtime, id: id)
        case "delete": try OCIVerbs.delete(runtime, id: id, force: options["force"] != nil)
        default: try OCIVerbs.kill(runtime, id: id, signal: arguments.count > 1 ? arguments[1] : "TERM", all: options["all"] != nil)
        }
    }
}
