import ArgumentParser
import GockerCore
import GockerRuntime

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and run a new container from an image.",
        usage: "gocker run [OPTIONS] IMAGE [COMMAND] [ARG...]",
        discussion: """
            The exit status is the container's own; 128+N when it was killed by signal N; \
            125 when gocker itself failed; 126 when the command cannot be invoked; 127 when \
            it was not found. Signals sent to gocker are passed on to the container's first process.
            """,
        helpNames: [.long]  // -h is --hostname, as in docker
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customLong("rm"), help: "Remove the container when it exits.")
    var autoRemove = false

    @Option(help: ArgumentHelp("Assign a name to the container.", valueName: "name"))
    var name: String?

    @OptionGroup var process: ProcessOptions

    @Option(name: [.customShort("h"), .customLong("hostname")], help: ArgumentHelp("Container host name.", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("Overwrite the default ENTRYPOINT of the image.", valueName: "command"))
    var entrypoint: String?

    @Option(name: [.customLong("network"), .customLong("net")], help: ArgumentHelp("Connect the container to a network: none (only lo) or host.", valueName: "mode"))
    var network: String = "none"

    @Flag(name: [.short, .customLong("detach")], help: "Run in the background under a monitor and print the container's id.")
    var detach = false

    @Option(help: ArgumentHelp("Restart policy: no, on-failure[:N], always, unless-stopped.", valueName: "policy"))
    var restart: String = "no"

    @Option(name: .customLong("log-opt"), help: ArgumentHelp("Log option: max-size=SIZE (default 10m; 0: unbounded).", valueName: "option"))
    var logOpt: [String] = []

    @Option(name: .customLong("group-add"), help: ArgumentHelp("Add a supplementary group (name or gid).", valueName: "group"))
    var groupAdd: [String] = []

    @Option(name: .customLong("cap-add"), help: ArgumentHelp("Add a Linux capability (ALL for all).", valueName: "cap"))
    var capAdd: [String] = []

    @Option(name: .customLong("cap-drop"), help: ArgumentHelp("Drop a Linux capability (ALL for all).", valueName: "cap"))
    var capDrop: [String] = []

    @Flag(help: "Give the container every capability, no masked or read-only paths, a writable /sys.")
    var privileged = false

    @Flag(name: .customLong("read-only"), help: "Mount the container's root filesystem read-only.")
    var readOnly = false

    @Option(name: .customLong("security-opt"), help: ArgumentHelp("Security options: no-new-privileges[:true|false], seccomp=unconfined|<profile.json>.", valueName: "option"))
    var securityOpt: [String] = []

    @Option(help: ArgumentHelp("Set a resource limit: name=soft[:hard], e.g. nofile=1024:2048.", valueName: "ulimit"))
    var ulimit: [String] = []

    @Flag(name: .customLong("init"), help: "Run a tiny init as PID 1 that forwards signals and reaps zombies.")
    var initProcess = false

    // The numeric options take the next word even when it starts with a
    // dash, as docker's do: "-1" is a value (unlimited, or a bad one that
    // is refused with its reason), not an option.
    @Option(name: [.short, .customLong("memory")], parsing: .unconditional, help: ArgumentHelp("Memory limit (b, k, m, g; at least 6m).", valueName: "bytes"))
    var memory: String?

    @Option(name: .customLong("memory-reservation"), parsing: .unconditional, help: ArgumentHelp("Memory soft limit.", valueName: "bytes"))
    var memoryReservation: String?

    @Option(name: .customLong("memory-swap"), parsing: .unconditional, help: ArgumentHelp("Memory plus swap limit (-1: unlimited swap; default: twice --memory).", valueName: "bytes"))
    var memorySwap: String?

    @Option(name: [.customLong("cpuset-cpus"), .customLong("cpuset")], help: ArgumentHelp("CPUs the container may run on (0-3, 0,1).", valueName: "list"))
    var cpusetCpus: String?

    @Option(name: .customLong("cpuset-mems"), help: ArgumentHelp("Memory nodes the container may use (0-3, 0,1).", valueName: "list"))
    var cpusetMems: String?

    @Option(name: [.customShort("c"), .customLong("cpu-shares"), .customLong("cpushare")], parsing: .unconditional, help: ArgumentHelp("Relative CPU weight, 2 to 262144 (0: unset).", valueName: "shares"))
    var cpuShares: Int64?

    @Option(parsing: .unconditional, help: ArgumentHelp("Number of CPUs (decimal, e.g. 0.5).", valueName: "number"))
    var cpus: String?

    @Option(name: .customLong("pids-limit"), parsing: .unconditional, help: ArgumentHelp("Most processes at once (-1: unlimited).", valueName: "n"))
    var pidsLimit: Int64?

    @Option(help: ArgumentHelp("Add a host device: /dev/HOST[:/dev/CONTAINER[:rwm]].", valueName: "device"))
    var device: [String] = []

    @Option(name: [.short, .customLong("volume")], help: ArgumentHelp("Bind a host directory (/abs/path:/dest), mount a named volume (name:/dest) or a new anonymous one (/dest); modes ro, rw, nocopy, rprivate, rshared, rslave...", valueName: "[src:]dest[:mode]"))
    var volume: [String] = []

    @Option(help: ArgumentHelp("Mount in docker's long form: type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=...][,bind-recursive=...][,volume-nocopy][,tmpfs-size=...][,tmpfs-mode=...].", valueName: "mount"))
    var mount: [String] = []

    @Option(help: ArgumentHelp("Mount a tmpfs (nosuid, nodev, noexec by default) with mount options, e.g. /run:size=16m,mode=1777.", valueName: "dest[:options]"))
    var tmpfs: [String] = []

    @Option(name: .customLong("volumes-from"), help: ArgumentHelp("Mount the volumes and binds of another container, as they are or read-only.", valueName: "container[:ro|rw]"))
    var volumesFrom: [String] = []

    @Option(name: .customLong("cgroup-backend"), help: ArgumentHelp("libcgroup (default) or cgroupfs (env GOCKER_CGROUP_BACKEND).", valueName: "backend"))
    var cgroupBackend: String?

    @Option(name: .customLong("cgroup-parent"), help: ArgumentHelp("Parent of the container's cgroups (env GOCKER_CGROUP_PARENT; default gocker).", valueName: "path"))
    var cgroupParent: String?

    @Flag(help: "Print how long each phase of the start took, on stderr after the run.")
    var timings = false

    @Argument(help: ArgumentHelp("The image: name[:tag] or id.", valueName: "image"))
    var image: String

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments.", valueName: "command"))
    var command: [String] = []

    func request() throws(GockerError) -> RunRequest {
        var r = RunRequest(image: image)
        r.command = command
        r.name = name
        r.autoRemove = autoRemove
        r.env = process.env
        r.envFiles = process.envFile
        r.workdir = process.workdir
        r.hostname = hostname
        r.entrypoint = entrypoint
        r.network = try NetworkMode(parsing: network)
        r.interactive = process.interactive
        r.tty = process.tty
        r.user = process.user
        r.groupAdd = groupAdd
        r.capAdd = capAdd
        r.capDrop = capDrop
        r.privileged = privileged
        r.readOnly = readOnly
        r.securityOpts = securityOpt
        r.ulimits = ulimit
        r.initProcess = initProcess
        r.resources.memory = memory
        r.resources.memoryReservation = memoryReservation
        r.resources.memorySwap = memorySwap
        r.resources.cpusetCpus = cpusetCpus
        r.resources.cpusetMems = cpusetMems
        r.resources.cpuShares = cpuShares
        r.resources.cpus = cpus
        r.resources.pidsLimit = pidsLimit
        r.resources.devices = device
        r.volumes = volume
        r.mounts = mount
        r.tmpfs = tmpfs
        r.volumesFrom = volumesFrom
        r.cgroupBackend = cgroupBackend
        r.cgroupParent = cgroupParent
        r.detach = detach
        r.restart = restart
        for opt in logOpt {
            guard opt.hasPrefix("max-size=") else {
                throw GockerError(.invalidArgument, "invalid argument \"\(opt)\" for --log-opt: only max-size=SIZE is supported")
            }
            r.logMaxSize = UInt64(try ResourceFlags.parseSize(String(opt.dropFirst(9)), flag: "--log-opt max-size"))
        }
        return r
    }

    func run() throws {
        if timings { Timings.printOnExit() }
        try Self.start(try request(), engine: global.engine)
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
        let header = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]
        let table = [header] + rows.map { [$0.ID, $0.Name, $0.CPUPerc, $0.MemUsage, $0.MemPerc, $0.PIDs] }
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
