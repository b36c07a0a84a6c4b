import ArgumentParser
import GockerCore
import GockerRuntime

// `gocker volume create|ls|inspect|rm|prune`, with docker's flags and output.

struct VolumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume", abstract: "Manage volumes.",
        discussion: """
            A volume is a directory gocker keeps under <data-root>/volumes/NAME/_data. \
            `run -v NAME:/dest` makes it on first use and, while it is empty, fills it with \
            what the image holds at /dest; `run -v /dest` makes an anonymous one, which \
            `rm -v` and `run --rm` remove with the container.
            """,
        subcommands: [Create.self, List.self, Inspect.self, Remove.self, Prune.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume (a random name when none is given).")

        @OptionGroup var global: GlobalOptions

        @Option(name: [.short, .customLong("driver")], help: ArgumentHelp("Volume driver (only local).", valueName: "driver"))
        var driver: String = "local"

        @Option(help: ArgumentHelp("Set a label: key=value.", valueName: "label"))
        var label: [String] = []

        @Option(name: [.short, .customLong("opt")], help: ArgumentHelp("Driver options (none are supported).", valueName: "option"))
        var opt: [String] = []

        @Argument(help: ArgumentHelp("The volume's name: [a-zA-Z0-9][a-zA-Z0-9_.-]+.", valueName: "name"))
        var name: String?

        func run() throws {
            guard driver == "local" else {
                throw GockerError(.notFound, "create \(name ?? ""): volume driver \"\(driver)\" not found (only local)")
            }
            if let o = opt.first {
                throw GockerError(.invalidArgument, "create \(name ?? ""): driver option \"\(o)\" is not supported")
            }
            var labels: [String: String] = [:]
            for l in label {
                let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard !kv[0].isEmpty else { throw GockerError(.invalidArgument, "invalid label \"\(l)\": expected key=value") }
                labels[kv[0]] = kv.count == 2 ? kv[1] : ""
            }
            print(try global.engine.createVolume(name: name, labels: labels).Name)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List volumes.", aliases: ["list"])

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("quiet")], help: "Only show volume names.")
        var quiet = false

        @Option(help: ArgumentHelp("Output format: table (the default) or json (one object per line).", valueName: "format"))
        var format: String = "table"

        @Option(name: [.short, .customLong("filter")], help: ArgumentHelp("Filter: dangling=true|false, name=TEXT, label=KEY[=VALUE].", valueName: "filter"))
        var filter: [String] = []

        func run() throws {
            guard format == "table" || format == "json" else {
                throw GockerError(.invalidArgument, "invalid argument \"\(format)\" for --format: expected table or json")
            }
            let engine = global.engine
            var rows = engine.volumes()
            for f in filter {
                let kv = f.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { throw GockerError(.invalidArgument, "bad format of filter (expected name=value): \(f)") }
                switch kv[0] {
                case "dangling":
                    guard kv[1] == "true" || kv[1] == "false" || kv[1] == "1" || kv[1] == "0" else {
                        throw GockerError(.invalidArgument, "invalid filter 'dangling=\(kv[1])'")
                    }
                    let dangling = kv[1] == "true" || kv[1] == "1"
                    rows = rows.filter { engine.containersUsing(volume: $0.Name).isEmpty == dangling }
                case "name": rows = rows.filter { $0.Name.contains(kv[1]) }
                case "label":
                    let lv = kv[1].split(separator: "=", maxSplits: 1).map(String.init)
                    rows = rows.filter { v in v.Labels[lv[0]].map { lv.count == 1 || $0 == lv[1] } ?? false }
                default: throw GockerError(.invalidArgument, "invalid filter '\(kv[0])'")
                }
            }
            if quiet {
                for v in rows { print(v.Name) }
            } else if format == "json" {
                for v in rows { print(String(decoding: v.jsonBytes, as: UTF8.self)) }
            } else {
                print(TextTable.render([["DRIVER", "VOLUME NAME"]] + rows.map { [$0.Driver, $0.Name] }), terminator: "")
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Display detailed information on one or more volumes, as a JSON array.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("Volume names.", valueName: "volume"))
        var volumes: [String]

        func run() throws {
            try printEach(volumes) { name throws(GockerError) in try global.engine.volume(name) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove one or more volumes; a volume a container uses is kept.", aliases: ["remove"])

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("force")], help: "No error for a volume that does not exist.")
        var force = false

        @Argument(help: ArgumentHelp("Volume names.", valueName: "volume"))
        var volumes: [String]

        func run() throws {
            var failed = false
            for name in volumes {
                do {
                    try global.engine.removeVolume(name, force: force)
                    print(name)
                } catch {
                    GockerMain.report(error.description)
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove the anonymous volumes no container uses (all unused ones with --all).")

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("all")], help: "Remove named volumes no container uses too.")
        var all = false

        @Flag(name: [.short, .customLong("force")], help: "Do not prompt for confirmation.")
        var force = false

        func run() throws {
            let (removed, bytes) = try global.engine.pruneVolumes(all: all)
            if !removed.isEmpty {
                print("Deleted Volumes:")
                for name in removed { print(name) }
                print("")
            }
            print("Total reclaimed space: \(HumanUnits.size(bytes))")
        }
    }
}
