import ArgumentParser
import GockerCore
import GockerRuntime

// `gocker network create|ls|inspect|rm|prune`, with docker's flags and output.

struct NetworkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Manage networks.",
        discussion: """
            A network is a Linux bridge on the host with a subnet of its own: each container on it \
            gets a veth pair (eth0 inside, with an address, the network's gateway as its default \
            route), outside access through masquerade, and published ports (-p) through DNAT, in \
            gocker's own nftables table. `bridge` is the default network, made on first use from \
            the first of docker's address pools the host does not route; containers on a network \
            made by `network create` find each other by name and --network-alias (gocker keeps \
            their /etc/hosts in step). `host` and `none` are always there.
            """,
        subcommands: [Create.self, List.self, Inspect.self, Remove.self, Prune.self, Connect.self, Disconnect.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a bridge network.")

        @OptionGroup var global: GlobalOptions

        @Option(name: [.short, .customLong("driver")], help: ArgumentHelp("Network driver (only bridge).", valueName: "driver"))
        var driver: String = "bridge"

        @Option(help: ArgumentHelp("Subnet in CIDR form, a network address (default: the first free of docker's pools).", valueName: "subnet"))
        var subnet: String?

        @Option(help: ArgumentHelp("Gateway: the bridge's address (default: the subnet's first).", valueName: "ip"))
        var gateway: String?

        @Option(name: .customLong("ip-range"), help: ArgumentHelp("Hand out container addresses from this part of the subnet.", valueName: "range"))
        var ipRange: String?

        @Flag(help: "No access to or from outside the network (no masquerade, no forwarding).")
        var `internal` = false

        @Option(help: ArgumentHelp("Set a label: key=value.", valueName: "label"))
        var label: [String] = []

        @Option(name: [.short, .customLong("opt")],
                help: ArgumentHelp("Driver option: com.docker.network.bridge.name=NAME, com.docker.network.driver.mtu=N.", valueName: "option"))
        var opt: [String] = []

        @Argument(help: ArgumentHelp("The network's name: [a-zA-Z0-9][a-zA-Z0-9_.-]*.", valueName: "name"))
        var name: String

        func run() throws {
            let labels = try keyValues(label, what: "label")
            let options = try keyValues(opt, what: "option")
            let r = try global.engine.createNetwork(name: name, driver: driver, subnet: subnet, gateway: gateway,
                                                    ipRange: ipRange, isInternal: `internal`, labels: labels, options: options)
            print(r.id)
        }

        func keyValues(_ list: [String], what: String) throws(GockerError) -> [String: String] {
            var out: [String: String] = [:]
            for l in list {
                let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard !kv[0].isEmpty else { throw GockerError(.invalidArgument, "invalid \(what) \"\(l)\": expected key=value") }
                out[kv[0]] = kv.count == 2 ? kv[1] : ""
            }
            return out
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List networks.", aliases: ["list"])

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("quiet")], help: "Only show network ids.")
        var quiet = false

        @Flag(name: .customLong("no-trunc"), help: "Do not truncate the ids.")
        var noTrunc = false

        @Option(help: ArgumentHelp("Output format: table (the default) or json (one object per line).", valueName: "format"))
        var format: String = "table"

        @Option(name: [.short, .customLong("filter")], help: ArgumentHelp("Filter: name=TEXT, driver=DRIVER, id=PREFIX, label=KEY[=VALUE].", valueName: "filter"))
        var filter: [String] = []

        func run() throws {
            guard format == "table" || format == "json" else {
                throw GockerError(.invalidArgument, "invalid argument \"\(format)\" for --format: expected table or json")
            }
            var rows = try global.engine.networkViews()
            for f in filter {
                let kv = f.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { throw GockerError(.invalidArgument, "bad format of filter (expected name=value): \(f)") }
                switch kv[0] {
                case "name": rows = rows.filter { $0.Name.contains(kv[1]) }
                case "driver": rows = rows.filter { $0.Driver == kv[1] }
                case "id": rows = rows.filter { $0.Id.hasPrefix(kv[1]) }
                case "label":
                    let lv = kv[1].split(separator: "=", maxSplits: 1).map(String.init)
                    rows = rows.filter { v in v.Labels[lv[0]].map { lv.count == 1 || $0 == lv[1] } ?? false }
                default: throw GockerError(.invalidArgument, "invalid filter '\(kv[0])'")
                }
            }
            let id = { (v: NetworkView) in noTrunc ? v.Id : String(v.Id.prefix(12)) }
            if quiet {
                for v in rows { print(id(v)) }
            } else if format == "json" {
                for v in rows { print(String(decoding: NetworkRow(v).jsonBytes, as: UTF8.self)) }
            } else {
                print(TextTable.render([["NETWORK ID", "NAME", "DRIVER", "SCOPE"]] + rows.map { [id($0), $0.Name, $0.Driver, $0.Scope] }),
                      terminator: "")
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Display detailed information on one or more networks, as a JSON array.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("Network names or ids.", valueName: "network"))
        var networks: [String]

        func run() throws {
            try printEach(networks) { name throws(GockerError) in try global.engine.networkView(name) }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove one or more networks; one with containers on it is kept.", aliases: ["remove"])

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("force")], help: "No error for a network that does not exist.")
        var force = false

        @Argument(help: ArgumentHelp("Network names or ids.", valueName: "network"))
        var networks: [String]

        func run() throws {
            var failed = false
            for name in networks {
                do {
                    try global.engine.removeNetwork(name)
                    print(name)
                } catch where force && error.code == .notFound {
                } catch {
                    GockerMain.report(error.description)
                    failed = true
                }
            }
            if failed { throw ExitCode(125) }
        }
    }

    struct Connect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connect",
            abstract: "Connect a container to a network.",
            discussion: """
                A running container gets the network's interface at once (eth1, eth2, ...: the lowest \
                free name), with an address on it; a stopped one gets it at its next start. Its first \
                network keeps the default route. Containers with --network none, host or \
                container:NAME cannot be connected.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("IPv4 address on the network (default: the next free one).", valueName: "ip"))
        var ip: String?

        @Option(help: ArgumentHelp("A name the network's other containers know it by as well (repeatable).", valueName: "name"))
        var alias: [String] = []

        @Argument(help: ArgumentHelp("Network name or id.", valueName: "network"))
        var network: String

        @Argument(help: ArgumentHelp("Container name or id.", valueName: "container"))
        var container: String

        func run() throws {
            try global.engine.connect(network: network, container: container, ip: ip, aliases: alias)
        }
    }

    struct Disconnect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "disconnect",
            abstract: "Disconnect a container from a network.",
            discussion: """
                Its address goes back and, while it runs, its interface on the network goes. Leaving \
                its first network makes the next one first: that network's gateway becomes the default \
                route and the published ports move to its address.
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("force")],
              help: "Disconnect also from a network whose record is gone (gocker always does; accepted for docker's scripts).")
        var force = false

        @Argument(help: ArgumentHelp("Network name or id.", valueName: "network"))
        var network: String

        @Argument(help: ArgumentHelp("Container name or id.", valueName: "container"))
        var container: String

        func run() throws {
            try global.engine.disconnect(network: network, container: container)
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove the networks no container is on (the default one too: it is made again on next use).")

        @OptionGroup var global: GlobalOptions

        @Flag(name: [.short, .customLong("force")], help: "Do not prompt for confirmation.")
        var force = false

        func run() throws {
            let removed = try global.engine.pruneNetworks()
            if !removed.isEmpty {
                print("Deleted Networks:")
                for name in removed { print(name) }
            }
        }
    }
}

struct Port: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port",
        abstract: "List a container's published ports, or the host address of one of them.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The container: name, id or id prefix.", valueName: "container"))
    var container: String

    @Argument(help: ArgumentHelp("A container port, PORT[/tcp|udp].", valueName: "port"))
    var port: String?

    func run() throws {
        let ports = try global.engine.ports(container, only: port)
        for p in ports {
            print(port == nil ? p.description : "\(p.hostIP ?? "0.0.0.0"):\(p.hostPort)")
        }
    }
}
