import CGockerCore
import Glibc
import GockerCore

/// What `gocker exec` asks for, as its flags say it.
public struct ExecRequest: Sendable {
    public var command: [String]
    public var env: [String] = []
    public var envFiles: [String] = []
    public var workdir: String?
    /// "user[:group]", resolved in the container's own files; nil: the container's user.
    public var user: String?
    public var privileged = false
    public var interactive = false
    public var tty = false
    public var detach = false

    public init(command: [String]) { self.command = command }
}

extension Engine {
    /// `gocker exec`: runs a command in a running container. In the
    /// foreground returns the command's exit status (128+N for signal N);
    /// with `detach` returns 0 once it runs.
    public func exec(_ ref: String, _ request: ExecRequest) throws(GockerError) -> Int32 {
        guard let first = request.command.first, !first.isEmpty else {
            throw GockerError(.invalidArgument, "no command specified")
        }
        if request.detach && request.tty {
            throw GockerError(.invalidArgument, "exec -d with -t is not supported: nothing would hold the terminal open")
        }
        try ContainerSpec.validateWorkdir(request.workdir)
        let extraEnv = try ContainerSpec.userEnvironment(env: request.env, envFiles: request.envFiles)

        let record = try lookup(ref)
        let runtime = runtime(for: record)
        var process: Spec.Process
        do { process = try runtime.containerProcess(id: record.id) } catch where error.code == .notFound {
            throw GockerError(.invalidState, "container \(record.id) is not running")
        }
        // The container's user and groups, from its record, unless -u.
        let launch = launchExtras(of: record)
        var userName = launch?.user
        var groupAdd = launch?.groupAdd ?? []
        process.args = request.command
        process.env = ContainerSpec.merge(process.env ?? [], extraEnv)
        process.terminal = request.tty
        if let w = request.workdir { process.cwd = w }
        if let u = request.user {
            process.user = Spec.User()
            userName = u
            groupAdd = []
        }
        if request.privileged {
            let all = Capabilities.all()
            process.capabilities = Spec.Capabilities(bounding: all, effective: all, inheritable: all, permitted: all, ambient: all)
        }
        let plan = try ProcessPlan(process: process, userName: userName, groupAdd: groupAdd)

        // Without -i the command reads /dev/null; detached, it writes there
        // too. With -t the terminal is its stdio (input relayed with -i).
        var stdio: [Int32] = [-1, -1, -1]
        var opened: [Int32] = []
        defer { for fd in opened { Sys.close(fd) } }
        func devNull(_ flags: Int32) throws(GockerError) -> Int32 {
            let fd = try performing("open /dev/null") { () throws(SystemCallError) in try Sys.open("/dev/null", flags) }
            opened.append(fd)
            return fd
        }
        if request.detach && !request.tty {
            stdio = [try devNull(O_RDONLY), try devNull(O_WRONLY), -1]
            stdio[2] = stdio[1]
        } else if !request.interactive && !request.tty {
            stdio[0] = try devNull(O_RDONLY)
        }
        if !request.detach { _ = gk_forward_block() }
        let (pid, terminal) = try runtime.exec(id: record.id, process: plan, stdio: stdio)
        defer { if let terminal { Sys.close(terminal) } }
        if request.detach { return 0 }
        let io = request.tty ? Runtime.TerminalIO.standard(interactive: request.interactive) : nil
        let status = Runtime.waitAttached(pid: pid, terminal: terminal, io: io)
        if status < 0 {
            throw GockerError(.system, "wait for exec in \(record.id)", cause: SystemCallError("waitpid", errno: -status))
        }
        return Runtime.exitCode(status)
    }
}
