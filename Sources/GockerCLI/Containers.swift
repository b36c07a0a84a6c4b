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

    @Option(name: [.short, .customLong("env")], help: ArgumentHelp("Set an environment variable (NAME=VALUE, or NAME to pass gocker's own).", valueName: "list"))
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: ArgumentHelp("Read environment variables from a file.", valueName: "file"))
    var envFile: [String] = []

    @Option(name: [.short, .customLong("workdir")], help: ArgumentHelp("Working directory inside the container (absolute).", valueName: "dir"))
    var workdir: String?

    @Option(name: [.customShort("h"), .customLong("hostname")], help: ArgumentHelp("Container host name.", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("Overwrite the default ENTRYPOINT of the image.", valueName: "command"))
    var entrypoint: String?

    @Option(name: [.customLong("network"), .customLong("net")], help: ArgumentHelp("Connect the container to a network: none (only lo) or host.", valueName: "mode"))
    var network: String = "none"

    @Flag(name: [.short, .customLong("interactive")], help: "Keep STDIN open.")
    var interactive = false

    @Argument(help: ArgumentHelp("The image: name[:tag] or id.", valueName: "image"))
    var image: String

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments.", valueName: "command"))
    var command: [String] = []

    func request() throws(GockerError) -> RunRequest {
        var r = RunRequest(image: image)
        r.command = command
        r.name = name
        r.autoRemove = autoRemove
        r.env = env
        r.envFiles = envFile
        r.workdir = workdir
        r.hostname = hostname
        r.entrypoint = entrypoint
        r.network = try NetworkMode(parsing: network)
        r.interactive = interactive
        return r
    }

    func run() throws {
        let status = try global.engine.run(try request())
        if status != 0 { throw ContainerExit(status: status) }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove one or more containers.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("force")], help: "Kill and remove a running container.")
    var force = false

    @Argument(help: ArgumentHelp("Containers: names, ids or id prefixes.", valueName: "container"))
    var containers: [String]

    func run() throws {
        var failed: GockerError?
        for ref in containers {
            do {
                try global.engine.remove(ref, force: force)
                print(ref)
            } catch {
                GockerMain.report(error.description)
                failed = error
            }
        }
        if failed != nil { throw ExitCode(1) }
    }
}
