import ArgumentParser
import GockerCgroups
import GockerControllers
import GockerCore
import GockerRuntime

/// What a `run` or `create` line asks for: the request, and gocker's own
/// settings around it (the roots, --timings).
struct RunLine: Equatable {
    var request = RunRequest(image: "")
    var dataRoot = Engine.defaultDataRoot
    var stateRoot = StateStore.defaultRoot
    var timings = false
    /// When the image is pulled: "missing" (docker's default), "always" or
    /// "never"; GOCKER_PULL sets it for every run (a machine that must
    /// never reach a registry says never).
    var pull = Sys.env("GOCKER_PULL") ?? "missing"
    static let pullPolicies = ["missing", "always", "never"]

    /// A policy not among them, named with where it came from.
    static func checkPull(_ value: String, from: String) throws(GockerError) {
        guard pullPolicies.contains(value) else {
            throw GockerError(.invalidArgument, "invalid \(from): '\(value)': must be one of \"always\", \"missing\" or \"never\"")
        }
    }

    var engine: Engine { Engine(dataRoot: dataRoot, stateRoot: stateRoot) }

    /// `run`'s and `create`'s options, once: the line is read by this
    /// table and `--help` lists it. The resource flags are the controllers'
    /// own entries, lifted into the request.
    static let options = makeOptions()

    /// (A function of its own, not the global's initializer: the table's
    /// generic code is specialized here.)
    static func makeOptions() -> OptionTable<RunLine> { OptionTable<RunLine>([
        .text("data-root", "dir", help: "Where images, containers' layers and logs live (env GOCKER_DATA_ROOT).") { $0.dataRoot = $1 },
        .text("root", "dir", help: "Where the runtime state of live containers lives (env GOCKER_STATE_ROOT).") { $0.stateRoot = $1 },
        .flag("rm", help: "Remove the container when it exits.") { $0.request.autoRemove = true },
        .text("name", "name", help: "Assign a name to the container.") { $0.request.name = $1 },
        .list("env", short: "e", "list", help: "Set an environment variable (NAME=VALUE, or NAME to pass gocker's own).") {
            $0.request.env.append($1)
        },
        .list("env-file", "file", help: "Read environment variables from a file.") { $0.request.envFiles.append($1) },
        .text("workdir", short: "w", "dir", help: "Working directory inside the container (absolute).") { $0.request.workdir = $1 },
        .flag("interactive", short: "i", help: "Keep STDIN open.") { $0.request.interactive = true },
        .flag("tty", short: "t", help: "Allocate a terminal from the container's devpts.") { $0.request.tty = true },
        .text("user", short: "u", "user[:group]",
              help: "User (name or uid) and group (name or gid), from the container's /etc/passwd and /etc/group.") { $0.request.user = $1 },
        .text("hostname", short: "h", "name", help: "Container host name.") { $0.request.hostname = $1 },
        .text("entrypoint", "command", help: "Overwrite the default ENTRYPOINT of the image.") { $0.request.entrypoint = $1 },
        .text("network", aliases: ["net"], "network",
              help: "Connect the container to a network: bridge (the default), a network made by `network create`, none (only lo), host, or container:NAME (another container's).") { r, text throws(GockerError) in
            r.request.network = try NetworkMode(parsing: text)
        },
        .text("ip", "address", help: "IPv4 address on a user-made network (e.g. 172.30.100.104).") { $0.request.ip = $1 },
        .text("mac-address", "address", help: "Container MAC address (e.g. 92:d0:c6:0a:29:33).") { $0.request.macAddress = $1 },
        .list("network-alias", "alias", help: "Another name the network's containers know this one by.") { $0.request.networkAliases.append($1) },
        .list("dns", "ip", help: "Set a DNS server (replaces the host's).") { $0.request.dns.append($1) },
        .list("dns-search", "domain", help: "Set a DNS search domain (. for none).") { $0.request.dnsSearch.append($1) },
        .list("dns-option", aliases: ["dns-opt"], "option", help: "Set a DNS option (resolv.conf's options).") { $0.request.dnsOptions.append($1) },
        .list("publish", short: "p", "[ip:][hostPort:]containerPort[/proto]",
              help: "Publish a container's port on the host (ranges as 8000-8010:80-90; tcp or udp).") { $0.request.publish.append($1) },
        .flag("publish-all", short: "P", help: "Publish every port the image exposes (EXPOSE) on an ephemeral host port.") {
            $0.request.publishAll = true
        },
        .list("add-host", "host:ip", help: "Add a line to /etc/hosts (host:ip; host-gateway is the network's gateway).") { $0.request.addHosts.append($1) },
        .flag("detach", short: "d", help: "Run in the background under a monitor and print the container's id.") { $0.request.detach = true },
        .text("restart", "policy", help: "Restart policy: no, on-failure[:N], always, unless-stopped.") { $0.request.restart = $1 },
        .list("log-opt", "option", help: "Log option: max-size=SIZE (default 10m; 0: unbounded).") { r, opt throws(GockerError) in
            guard opt.hasPrefix("max-size=") else {
                throw GockerError(.invalidArgument, "invalid argument \"\(opt)\" for --log-opt: only max-size=SIZE is supported")
            }
            r.request.logMaxSize = UInt64(try ResourceFlags.parseSize(String(opt.dropFirst(9)), flag: "--log-opt max-size"))
        },
        .list("group-add", "group", help: "Add a supplementary group (name or gid).") { $0.request.groupAdd.append($1) },
        .list("cap-add", "cap", help: "Add a Linux capability (ALL for all).") { $0.request.capAdd.append($1) },
        .list("cap-drop", "cap", help: "Drop a Linux capability (ALL for all).") { $0.request.capDrop.append($1) },
        .flag("privileged", help: "Give the container every capability, no masked or read-only paths, a writable /sys.") {
            $0.request.privileged = true
        },
        .flag("read-only", help: "Mount the container's root filesystem read-only.") { $0.request.readOnly = true },
        .list("security-opt", "option",
              help: "Security options: no-new-privileges[:true|false], seccomp=unconfined|<profile.json>, apparmor=<profile>|unconfined, label=user:|role:|type:|level:<value> or label=disable.") { $0.request.securityOpts.append($1) },
        .list("sysctl", "key=value",
              help: "Set a namespaced kernel parameter (net.*, kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), e.g. net.ipv4.ip_forward=1.") {
            $0.request.sysctls.append($1)
        },
        .integer("oom-score-adj", "int", help: "Tune the container's OOM preferences (-1000 to 1000).") { $0.request.oomScoreAdj = $1 },
        .text("cgroupns", "mode",
              help: "Cgroup namespace: private (a namespace of its own; the default on cgroup v2) or host (the host's; the default on cgroup v1).") {
            $0.request.cgroupns = $1
        },
        .text("userns", "mode",
              help: "User namespace: host (the host's, the only mode, as docker's --userns; a user namespace with maps is an OCI config's: gocker oci).") {
            $0.request.userns = $1
        },
        .list("ulimit", "ulimit", help: "Set a resource limit: name=soft[:hard], e.g. nofile=1024:2048.") { $0.request.ulimits.append($1) },
        .flag("init", help: "Run a tiny init as PID 1 that forwards signals and reaps zombies.") { $0.request.initProcess = true },
    ] + BuiltinControllers.options.map { $0.lifted { (r: inout RunLine, body) throws(GockerError) in try body(&r.request.resources) } } + [
        .list("volume", short: "v", "[src:]dest[:mode]",
              help: "Bind a host directory (/abs/path:/dest), mount a named volume (name:/dest) or a new anonymous one (/dest); modes ro, rw, nocopy, rprivate, rshared, rslave...") {
            $0.request.volumes.append($1)
        },
        .list("mount", "mount",
              help: "Mount in docker's long form: type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=...][,bind-recursive=...][,volume-nocopy][,tmpfs-size=...][,tmpfs-mode=...].") {
            $0.request.mounts.append($1)
        },
        .list("tmpfs", "dest[:options]",
              help: "Mount a tmpfs (nosuid, nodev, noexec by default) with mount options, e.g. /run:size=16m,mode=1777.") {
            $0.request.tmpfs.append($1)
        },
        .list("volumes-from", "container[:ro|rw]", help: "Mount the volumes and binds of another container, as they are or read-only.") {
            $0.request.volumesFrom.append($1)
        },
        .text("cgroup-backend", "backend", help: "libcgroup (default) or cgroupfs (env GOCKER_CGROUP_BACKEND).") { $0.request.cgroupBackend = $1 },
        .text("cgroup-parent", "path", help: "Parent of the container's cgroups (env GOCKER_CGROUP_PARENT; default gocker).") {
            $0.request.cgroupParent = $1
        },
        .flag("timings", help: "Print how long each phase of the start took, on stderr after the run.") { $0.timings = true },
        .text("pull", "policy", help: "Pull the image from its registry: missing (default: when it is not here), always, or never (env GOCKER_PULL).") {
            (line: inout RunLine, value: String) throws(GockerError) in
            try RunLine.checkPull(value, from: "pull option")
            line.pull = value
        },
    ]) }

    /// Reads a line (the words after `run` or `create`); nil when it asks
    /// for help.
    static func parse(_ args: [String]) throws(GockerError) -> RunLine? {
        var line = RunLine()
        let reading = try options.parse(args, into: &line, stopAfter: 1)
        if reading.help { return nil }
        guard let image = reading.arguments.first else {
            throw GockerError(.invalidArgument, "Missing expected argument '<image>'")
        }
        line.request.image = image
        line.request.command = reading.rest
        return line
    }

    /// `gocker run --help` and `gocker create --help`.
    static func help(create: Bool) -> String {
        let about = create ? Create.configuration : Run.configuration
        var out = "OVERVIEW: \(about.abstract)\n\n"
        if !about.discussion.isEmpty { out += wrap(about.discussion) + "\n\n" }
        out += "USAGE: \(about.usage ?? "")\n\nARGUMENTS:\n"
        OptionTable<RunLine>.appendEntry(&out, "<image>", "The image: name[:tag] or id.")
        OptionTable<RunLine>.appendEntry(&out, "<command>", "The command and its arguments.")
        return out + "\nOPTIONS:\n" + options.helpLines()
    }

    static func wrap(_ text: String, width: Int = 80) -> String {
        var out = "", at = 0
        for word in text.split(separator: " ") {
            if at > 0 && at + 1 + word.count > width {
                out += "\n"
                at = 0
            } else if at > 0 {
                out += " "
                at += 1
            }
            out += word
            at += word.count
        }
        return out
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Create and run a new container from an image.",
        usage: "gocker run [OPTIONS] IMAGE [COMMAND] [ARG...]",
        discussion: """
            The exit status is the container's own; 128+N when it was killed by signal N; \
            125 when gocker itself failed; 126 when the command cannot be invoked; 127 when \
            it was not found. Signals sent to gocker are passed on to the container's first process.
            """,
        helpNames: []  // RunLine.options reads the line, --help included
    )

    /// The listing of `gocker --help` names this command; its line is read
    /// by RunLine.options (GockerMain sends it there).
    @Argument(parsing: .allUnrecognized) var words: [String] = []

    func run() throws {
        guard let line = try RunLine.parse(words) else { return print(RunLine.help(create: false), terminator: "") }
        if line.timings { Timings.printOnExit() }
        try PullArguments.pulling(line) { try Self.start(line.request, engine: line.engine) }
    }

    /// Runs the request: in the foreground, or detached under a monitor.
    static func start(_ request: RunRequest, engine: Engine) throws {
        if request.detach {
            var record = try engine.create(request, starting: true)
            do { try engine.startDetached(&record) } catch {
                try? engine.remove(record.id, force: true, volumes: true)
                throw error
            }
            print(record.id)
            return
        }
        let status = try engine.run(request)
        if status != 0 { throw ContainerExit(status: status) }
    }
}
