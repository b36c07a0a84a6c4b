import ArgumentParser
import CGockerCore
import Glibc
import GockerCore
import GockerRuntime

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command in a running container.",
        usage: "gocker exec [OPTIONS] CONTAINER COMMAND [ARG...]",
        discussion: """
            The command joins every namespace and cgroup of the container and gets its \
            capabilities, rlimits and no-new-privileges; its working directory must exist. \
            The exit status is the command's; \
            126 when it cannot be invoked, 127 when it is not found, 125 when gocker itself \
            failed (an unknown, stopped or paused container). Signals sent to gocker are \
            passed on to the command.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("detach")], help: "Run the command in the background.")
    var detach = false

    @OptionGroup var process: ProcessOptions

    @Flag(help: "Give the command every capability.")
    var privileged = false

    @Argument(help: ArgumentHelp("The container: name, id or id prefix.", valueName: "container"))
    var container: String

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments.", valueName: "command"))
    var command: [String] = []

    func run() throws {
        var r = ExecRequest(command: command)
        r.env = process.env
        r.envFiles = process.envFile
        r.interactive = process.interactive
        r.tty = process.tty
        r.user = process.user
        r.workdir = process.workdir
        r.privileged = privileged
        r.detach = detach
        let status = try global.engine.exec(container, r)
        if status != 0 { throw ContainerExit(status: status) }
    }
}

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Show the processes of a running container.",
        usage: "gocker top CONTAINER [ps OPTIONS]",
        discussion: """
            The processes are those in the container's cgroups, exec'd ones included, \
            shown as `ps -ef` shows them on the host. With ps options, the host's ps \
            prints them in its own format.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The container: name, id or id prefix.", valueName: "container"))
    var container: String

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("Options for ps.", valueName: "ps options"))
    var psOptions: [String] = []

    func run() throws {
        let table = try global.engine.top(container, psOptions: psOptions)
        print(TextTable.render(table), terminator: "")
    }
}

struct OCIExec: OCIVerb {
    static let name = "exec"
    static let abstract = "Run a process in a running container."
    // runc's usage: gocker oci exec [OPTIONS] CONTAINER-ID [COMMAND [ARG...]]. The process is described by
    // --process (an OCI process JSON), or by the command and flags on top of the container's own process settings.
    static let arguments = ["container-id", "command"]
    static let argumentHelp = ["The container's id.", "The command and its arguments (without --process)."]
    static let passthrough = true
    static let options = OptionTable(globals() + [
        .text("process", short: "p", "file", help: "The process to run, as OCI process JSON.") { $0.process = $1 },
        .text("console-socket", "path", help: "Send the pty master to this unix socket (with --tty).") { $0.consoleSocket = $1 },
        .text("cwd", "dir", help: "Working directory inside the container.") { $0.cwd = $1 },
        .list("env", short: "e", "env", help: "Add an environment variable (NAME=VALUE).") { $0.env.append($1) },
        .flag("tty", short: "t", help: "Allocate a pseudo-TTY.") { $0.tty = true },
        .text("user", short: "u", "uid[:gid]", help: "User id and group id.") { $0.user = $1 },
        CommandOption(name: "additional-gids", short: "g", value: .unsigned, valueName: "gid", repeatable: true,
                      help: "Additional group id.") { $0.additionalGids.append(UInt32($1) ?? 0) },
        .list("cap", short: "c", "cap", help: "Add a capability.") { $0.cap.append($1) },
        .flag("no-new-privs", help: "Set no_new_privs for the process.") { $0.noNewPrivs = true },
        .flag("detach", short: "d", help: "Return once the process runs.") { $0.detach = true },
        .text("pid-file", "file", help: "Write the process's pid here.") { $0.pidFile = $1 },
    ])

    var global = OCIGlobalOptions()
    var process: String?
    var consoleSocket: String?
    var cwd: String?
    var env: [String] = []
    var tty = false
    var user: String?
    var additionalGids: [UInt32] = []
    var cap: [String] = []
    var noNewPrivs = false
    var detach = false
    var pidFile: String?
    var id = ""
    var command: [String] = []

    mutating func take(_ arguments: [String], rest: [String]) {
        id = arguments[0]
        command = rest
    }

    func processPlan(_ runtime: Runtime) throws(GockerError) -> ProcessPlan {
        if let process {
            guard command.isEmpty else {
                throw GockerError(.invalidArgument, "a command cannot be given with --process")
            }
            var p = try JSON.readFile(Spec.Process.self, path: process)
            // What the file leaves out is the container's, as in runc: an
            // exec never runs with more than the container allows by default.
            let base = try runtime.containerProcess(id: id)
            if p.capabilities == nil { p.capabilities = base.capabilities }
            if p.rlimits == nil { p.rlimits = base.rlimits }
            if p.noNewPrivileges == nil { p.noNewPrivileges = base.noNewPrivileges }
            return try ProcessPlan(process: p)
        }
        guard !command.isEmpty else { throw GockerError(.invalidArgument, "exec needs a command or --process") }
        var p = try runtime.containerProcess(id: id)
        p.args = command
        p.env = (p.env ?? []) + env
        if let cwd { p.cwd = cwd }
        p.terminal = tty
        if let user {
            let parts = user.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let uid = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
                throw GockerError(.invalidArgument, "invalid --user \"\(user)\": expected uid[:gid]")
            }
            p.user = Spec.User(uid: uid, gid: parts.count == 2 ? UInt32(parts[1])! : 0)
        }
        if !additionalGids.isEmpty { p.user.additionalGids = (p.user.additionalGids ?? []) + additionalGids }
        if !cap.isEmpty {
            let added = try cap.map { c throws(GockerError) in try Capabilities.canonical(c) }
            var c = p.capabilities ?? Spec.Capabilities()
            c.bounding = (c.bounding ?? []) + added
            c.effective = (c.effective ?? []) + added
            c.permitted = (c.permitted ?? []) + added
            c.inheritable = (c.inheritable ?? []) + added
            c.ambient = (c.ambient ?? []) + added
            p.capabilities = c
        }
        if noNewPrivs { p.noNewPrivileges = true }
        return try ProcessPlan(process: p)
    }

    func run() throws {
        let runtime = global.runtime
        let plan = try processPlan(runtime)
        if plan.terminal && detach && consoleSocket == nil {
            throw GockerError(.invalidArgument, "cannot allocate a tty when detached without --console-socket")
        }
        if consoleSocket != nil && !plan.terminal {
            throw GockerError(.invalidArgument, "--console-socket needs --tty or process.terminal")
        }
        if !detach { _ = gk_forward_block() }
        let (pid, terminal) = try runtime.exec(id: id, process: plan)
        var master = terminal
        defer { if let master { Sys.close(master) } }
        // A process whose caller cannot be told about it does not stay.
        func abandon(_ error: GockerError) -> GockerError {
            _ = Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            return error
        }
        if let consoleSocket, let t = master {
            let r = gk_send_console(consoleSocket, t)
            Sys.close(t)
            master = nil
            if r < 0 {
                throw abandon(GockerError(.system, "send the terminal", cause: SystemCallError("connect", path: consoleSocket, errno: -r)))
            }
        }
        if let pidFile {
            do {
                try Sys.writeFileAtomic(pidFile, Array("\(pid)".utf8))
            } catch {
                throw abandon(GockerError(.system, "write pid file", cause: error))
            }
        }
        if detach { return }
        let io = master != nil ? Runtime.TerminalIO.standard(interactive: true) : nil
        let status = Runtime.waitAttached(pid: pid, terminal: master, io: io)
        if status < 0 {
            throw GockerError(.system, "wait for the process", cause: SystemCallError("waitpid", errno: -status))
        }
        let code = Runtime.exitCode(status)
        if code != 0 { throw ContainerExit(status: code) }
    }
}
