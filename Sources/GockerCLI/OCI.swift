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
        try global.runtime.create(id: id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket)
    }
}

struct OCIStart: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Run the process of a created container.")

    @OptionGroup var global: OCIGlobalOptions

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws {
        try global.runtime.start(id: id)
    }
}

struct OCIState: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "Print a container's state as JSON.")

    @OptionGroup var global: OCIGlobalOptions

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws {
        let state = try global.runtime.state(id: id)
        print(String(decoding: JSON.encode(state, pretty: true), as: UTF8.self))
    }
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

    func run() throws {
        try global.runtime.kill(id: id, signal: try Signals.parse(signal), all: all)
    }
}

struct OCIDelete: OCICommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a container's state and whatever it holds.")

    @OptionGroup var global: OCIGlobalOptions

    @Flag(name: [.short, .customLong("force")], help: "Kill a running container first; an unknown id is not an error.")
    var force = false

    @Argument(help: ArgumentHelp("The container's id.", valueName: "container-id"))
    var id: String

    func run() throws {
        try global.runtime.delete(id: id, force: force)
    }
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
        let runtime = global.runtime
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
        let exit = try runtime.runForeground(id: id, bundle: bundle, pidFile: pidFile, terminal: io)
        if exit.status != 0 { throw ContainerExit(status: exit.status) }
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
