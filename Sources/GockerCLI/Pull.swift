import ArgumentParser
import Glibc
import GockerCore
import GockerRegistry

struct PullArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The platform of an image with several: os/arch[/variant] (default: this host's).",
                               valueName: "platform"))
    var platform: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Print only the image's name, and no progress on a terminal.")
    var quiet = false

    @Argument(help: ArgumentHelp("The image: [registry[:port]/]name[:tag] or name@sha256:digest.", valueName: "name"))
    var name: String

    func run() throws {
        let ref = try RegistryReference(parsing: name)
        let platform = try PlatformChoice(parsing: platform)
        let progress = ProgressLine("Downloading", quiet: quiet)
        defer { progress.end() }
        var puller = Puller(store: global.engine.images, platform: platform, timeout: Self.timeout) { line in
            progress.end()
            if !quiet { print(line) }
        }
        puller.progress = { done, _ in progress.update(UInt64(done)) }
        try puller.pull(ref)
        progress.end()
        print(ref.description)
    }

    /// Seconds a connect, and then each read or write, may wait
    /// (GOCKER_REGISTRY_TIMEOUT, else 60).
    static var timeout: Int {
        Sys.env("GOCKER_REGISTRY_TIMEOUT").flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil } ?? 60
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download an image from a registry.",
        discussion: """
            A name without a registry is docker.io's ("alpine" is docker.io/library/alpine:latest). \
            https is used; plain http only for a registry on loopback, or one named in \
            GOCKER_INSECURE_REGISTRIES (comma-separated host[:port]). Credentials come from docker's \
            config.json ($DOCKER_CONFIG, else ~/.docker); a registry's own CA from \
            $GOCKER_CONFIG/certs.d/HOST[:PORT]/ca.crt or /etc/docker/certs.d. Every blob's digest and size \
            is checked before anything of it is stored; layers the store has are not downloaded.
            """)
    @OptionGroup var arguments: PullArguments
    func run() throws { try arguments.run() }
}

struct ImagePull: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Download an image from a registry.")
    @OptionGroup var arguments: PullArguments
    func run() throws { try arguments.run() }
}
