import CGockerCore
import Glibc
import GockerCore

// `network connect` and `network disconnect`: a container's networks
// after it was made, running or not.

extension Engine {
    /// `network connect [--ip IP] [--alias NAME] NETWORK CONTAINER`: an
    /// address on the network and, while the container runs, a veth pair
    /// into it at once (eth1, eth2, ...: the lowest free). A stopped one
    /// is connected at its next start. The first network's gateway stays
    /// the default route.
    public func connect(network ref: String, container cref: String, ip text: String?,
                        aliases: [String]) throws(GockerError) {
        if Rootless.active {
            throw Rootless.refusal("network connect", "a bridge network is the host root's")
        }
        var ip: IPv4?
        if let text {
            guard let v = IPv4(text) else { throw GockerError(.invalidArgument, "invalid --ip \"\(text)\": expected an IPv4 address") }
            ip = v
        }
        for a in aliases { try Self.validateHostname(a) }
        let found = try lookup(cref)
        if ref == "host" {
            throw GockerError(.invalidArgument, "container cannot be disconnected from host network or connected to host network")
        }
        if ref == "none" {
            throw GockerError(.invalidArgument, "container cannot be connected to network none: it is a mode given at run (--network none)")
        }
        let net: NetworkRecord
        do { net = try network(ref) } catch where error.code == .notFound {
            throw GockerError(.notFound, "network \(ref) not found")
        }
        try Self.checkEndpoint(ip: ip, aliases: aliases, on: net)
        let fd = try lockRecord(found.id)
        defer { Sys.close(fd) }
        var record = try load(found.id)
        try Self.checkConnectable(record)
        try refuseWhileStarting(record, doing: "connected")
        var list = record.launch?.attachments ?? []
        if list.contains(where: { $0.network == net.name }) {
            throw GockerError(.alreadyExists, "endpoint with name \(record.name) already exists in network \(net.name)")
        }
        let used = Set(list.map(\.device))
        guard let index = (0..<36).first(where: { !used.contains("eth\($0)") }) else {
            throw GockerError(.invalidState, "container \(record.name) is on too many networks")
        }
        try ensureBridge(net)
        var a = try attach(id: record.id, to: net, ip: ip, mac: nil, aliases: aliases)
        a.interface = "eth\(index)"
        a.hostInterface = Self.hostInterface(id: record.id, index: index)
        var plugged = false
        do throws(GockerError) {
            if let pid = pid(of: record) {
                try withNetworkNamespace(of: pid) { (ns) throws(GockerError) in
                    var r = a.connect(netns: ns, defaultRoute: list.isEmpty)
                    if r == -EEXIST {
                        // A host end of that name left by an earlier run.
                        _ = gk_link_delete(a.hostInterface)
                        r = a.connect(netns: ns, defaultRoute: list.isEmpty)
                    }
                    if r < 0 {
                        throw GockerError(.system, "connect container \(record.name) to network \(net.name)",
                                          cause: SystemCallError("netlink", errno: -r))
                    }
                }
                plugged = true
            }
            list.append(a)
            record.launch?.attachments = list
            try saveRecord(record)
        } catch {
            if plugged { _ = gk_link_delete(a.hostInterface) }
            detach(id: record.id, from: net.name)
            throw error
        }
        // A container made on the default network has no own part of
        // /etc/hosts yet (nothing was added to it): its file is that part.
        let own = containerDir(record.id) + "/hosts.own"
        if !Sys.exists(own), let hosts = try? Sys.readFile(containerDir(record.id) + "/hosts") {
            try? Sys.writeFileExclusive(own, hosts)
        }
        syncHosts(networks: [net.name], also: record)
    }

    /// `network disconnect NETWORK CONTAINER`: its address goes back and,
    /// while it runs, its veth on that network goes. Leaving the first
    /// network makes the next one first: its gateway becomes the default
    /// route and the published ports move to its address, as docker
    /// moves them to the endpoint that takes over the gateway.
    public func disconnect(network ref: String, container cref: String) throws(GockerError) {
        let found = try lookup(cref)
        if ref == "host" {
            throw GockerError(.invalidArgument, "container cannot be disconnected from host network or connected to host network")
        }
        // By name as the record has it; a network removed meanwhile is
        // still left.
        let name = (try? network(ref))?.name ?? ref
        let fd = try lockRecord(found.id)
        defer { Sys.close(fd) }
        var record = try load(found.id)
        try refuseWhileStarting(record, doing: "disconnected")
        var list = record.launch?.attachments ?? []
        guard let i = list.firstIndex(where: { $0.network == name }) else {
            if record.network == name {
                throw GockerError(.invalidArgument, "container \(record.name) is not connected to network \(name) (it uses that network mode)")
            }
            throw GockerError(.notFound, "container \(record.id) is not connected to network \(ref)")
        }
        let gone = list.remove(at: i)
        let pid = pid(of: record)
        if i == 0, let ports = gone.ports, !ports.isEmpty {
            try? NetFilter().unpublish(gone.mappings)
            if !list.isEmpty {
                list[0].ports = ports
                if (try? NetFilter().publish(list[0].mappings)) == nil { list[0].ports = nil }
            }
        }
        record.launch?.attachments = list
        try saveRecord(record)
        if let pid {
            // The peer inside goes with it.
            _ = gk_link_delete(gone.hostInterface)
            if i == 0, let first = list.first, let gw = IPv4(first.gateway) {
                try? withNetworkNamespace(of: pid) { (ns) throws(GockerError) in
                    _ = gk_default_route(ns, first.device, gw.value.bigEndian)
                }
            }
        }
        detach(id: record.id, gone)
        syncHosts(networks: [gone.network], also: record)
    }

    /// A container its gocker is starting (its owner lives, its process is
    /// not there yet) has read its networks already: a change now would
    /// miss its interfaces, or give back an address it is about to use.
    func refuseWhileStarting(_ r: ContainerRecord, doing what: String) throws(GockerError) {
        let s = state(of: r)
        if pid(of: r) == nil && (s == .running || s == .restarting) {
            throw GockerError(.invalidState, "container \(r.name) is starting: it can be \(what) once it runs")
        }
    }

    /// Only a container with a network namespace of its own and bridge
    /// networks can be connected, as in docker.
    static func checkConnectable(_ r: ContainerRecord) throws(GockerError) {
        if r.network == "host" {
            throw GockerError(.invalidArgument, "container cannot be disconnected from host network or connected to host network")
        }
        if r.network == "none" || r.network.hasPrefix("container:") {
            throw GockerError(.invalidArgument, "container \(r.name) uses --network \(r.network): a container sharing a network namespace, or with none, cannot be connected to another network")
        }
        if r.launch == nil {
            throw GockerError(.invalidArgument, "container \(r.name) was made by an older gocker: it cannot be connected to another network")
        }
    }

    /// The host end of a container's veth on its `index`th device:
    /// `gk` and the id's first 12 characters, then the index in base 36
    /// after the first (at most 15 characters, the kernel's limit).
    static func hostInterface(id: String, index: Int) -> String {
        "gk" + String(id.prefix(12)) + (index == 0 ? "" : String(index, radix: 36))
    }

    /// Runs `body` with a descriptor of the network namespace of process
    /// `pid`.
    func withNetworkNamespace(of pid: Int32, _ body: (Int32) throws(GockerError) -> Void) throws(GockerError) {
        let path = "/proc/\(pid)/ns/net"
        let ns = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard ns >= 0 else {
            throw GockerError(.system, "open the container's network namespace", cause: SystemCallError("open", path: path, errno: errno))
        }
        defer { Sys.close(ns) }
        try body(ns)
    }
}
