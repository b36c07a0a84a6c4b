import CGockerCore
import Glibc
import GockerCore

/// A bridge network, as gocker keeps it: `<data-root>/networks/<name>/network.json`,
/// its address book (ipam.json) beside it.
public struct NetworkRecord: JSONShape, Sendable, Equatable {
    public var name = ""
    public var id = ""
    public var created = ""
    public var driver = "bridge"
    public var subnet = ""
    public var gateway = ""
    /// `--ip-range`: where addresses are handed out from (nil: the whole subnet).
    public var ipRange: String?
    public var `internal` = false
    /// The host's bridge device.
    public var bridge = ""
    public var mtu = 1500
    public var labels: [String: String] = [:]
    public var options: [String: String] = [:]

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("name", &name)
        try v.field("id", &id)
        try v.field("created", &created)
        try v.field("driver", &driver)
        try v.field("subnet", &subnet)
        try v.field("gateway", &gateway)
        try v.field("ipRange", &ipRange)
        try v.field("internal", &`internal`)
        try v.field("bridge", &bridge)
        try v.field("mtu", &mtu)
        try v.field("labels", &labels)
        try v.field("options", &options)
    }

    /// The default network's name, and the two that are not bridges.
    public static let defaultName = "bridge"
    public static let predefined: Set<String> = ["bridge", "host", "none"]
    /// The option that names the bridge device, as docker names it.
    public static let bridgeNameOption = "com.docker.network.bridge.name"
    public static let mtuOption = "com.docker.network.driver.mtu"

    public var parsedSubnet: IPv4Subnet { (try? IPv4Subnet(subnet)) ?? IPv4Subnet(network: IPv4(0), prefix: 32) }
    public var parsedGateway: IPv4 { IPv4(gateway) ?? parsedSubnet.firstHost }
}

/// Where a container is on a network: what its start needs to connect it
/// (kept in its record's launch extras), and what inspect shows.
public struct NetworkAttachment: JSONShape, Sendable, Equatable {
    public var network = ""
    public var bridge = ""
    /// The host end of its veth pair.
    public var hostInterface = ""
    /// The container's end; nil: eth0 (records from before `network
    /// connect`).
    public var interface: String?
    public var address = ""
    public var prefix = 0
    public var gateway = ""
    public var mac = ""
    public var mtu = 1500
    /// `--network-alias`: more names the network's containers know it by.
    public var aliases: [String]?
    /// `-p`, settled: published while the container exists.
    public var ports: [PublishedPort]?

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("network", &network)
        try v.field("bridge", &bridge)
        try v.field("hostInterface", &hostInterface)
        try v.field("interface", &interface)
        try v.field("address", &address)
        try v.field("prefix", &prefix)
        try v.field("gateway", &gateway)
        try v.field("mac", &mac)
        try v.field("mtu", &mtu)
        try v.field("aliases", &aliases)
        try v.field("ports", &ports)
    }

    /// The container's end of its veth pair.
    public var device: String { interface ?? "eth0" }

    /// Its published ports as gocker's port maps hold them.
    var mappings: [PortMapping] {
        guard let ip = IPv4(address) else { return [] }
        return (ports ?? []).compactMap { p in
            guard let proto = PortProtocol(rawValue: p.proto) else { return nil }
            return PortMapping(proto: proto, hostIP: p.hostIP.flatMap { IPv4($0) }, hostPort: p.hostPort,
                               containerIP: ip, containerPort: p.containerPort)
        }
    }

    /// docker's MAC address for an address: 02:42 and the address's bytes.
    public static func mac(for ip: IPv4) -> String {
        let b = [0x02, 0x42, ip.value >> 24, ip.value >> 16 & 255, ip.value >> 8 & 255, ip.value & 255]
        return b.map { v in
            let s = String(v, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }

    /// "aa:bb:cc:dd:ee:ff" as six bytes, or nil.
    public static func macBytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard p.count == 2, let b = UInt8(p, radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }

    /// Connects the network namespace `netns` as this attachment says:
    /// a veth pair, its device inside with the address, MAC and MTU (and
    /// the default route through the gateway when `defaultRoute`), the
    /// host end on the bridge. 0 or -errno.
    func connect(netns: Int32, defaultRoute: Bool) -> Int32 {
        guard let ip = IPv4(address), let gw = IPv4(gateway), let mac = Self.macBytes(mac) else { return -EINVAL }
        return bridge.withCString { br in
            hostInterface.withCString { host in
                device.withCString { peer in
                    var v = gk_veth()
                    v.bridge = br
                    v.host_name = host
                    v.peer_name = peer
                    withUnsafeMutableBytes(of: &v.mac) { m in for i in 0..<6 { m[i] = mac[i] } }
                    v.mtu = UInt32(mtu)
                    v.addr = ip.value.bigEndian
                    v.prefix = UInt32(prefix)
                    v.gateway = defaultRoute ? gw.value.bigEndian : 0
                    return gk_veth_attach(netns, &v)
                }
            }
        }
    }
}

/// A published port of a container, as its record keeps it.
public struct PublishedPort: JSONShape, Sendable, Equatable {
    public var proto = "tcp"
    /// nil: every address of the host.
    public var hostIP: String?
    public var hostPort: UInt16 = 0
    public var containerPort: UInt16 = 0

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("proto", &proto)
        try v.field("hostIP", &hostIP)
        try v.field("hostPort", &hostPort)
        try v.field("containerPort", &containerPort)
    }

    /// docker's `port` line: `80/tcp -> 0.0.0.0:8080`.
    public var description: String { "\(containerPort)/\(proto) -> \(hostIP ?? "0.0.0.0"):\(hostPort)" }
}

/// How a container is networked: `none` is a network namespace of its own
/// holding only `lo`; `host` shares the host's; a bridge network (the
/// default one, `bridge`, or one made by `network create`) gives it an
/// interface on that network's bridge; `container:NAME` joins another
/// container's network namespace.
public enum NetworkMode: Sendable, Equatable {
    case none, host
    case bridge(String)
    case container(String)
    /// slirp4netns (see SlirpNetwork): the default of a rootless container.
    case slirp4netns(allowHostLoopback: Bool)

    public static let `default` = NetworkMode.bridge(NetworkRecord.defaultName)

    /// `--network`'s value. Which bridge networks exist is checked at create.
    public init(parsing text: String) throws(GockerError) {
        switch text {
        case "none": self = .none
        case "host": self = .host
        case "", "default": self = .default
        case "slirp4netns": self = .slirp4netns(allowHostLoopback: false)
        default:
            if text.hasPrefix("slirp4netns:") {
                // podman's form: slirp4netns:OPTION=VALUE[,...]
                var allow = false
                for option in text.dropFirst("slirp4netns:".count).split(separator: ",", omittingEmptySubsequences: false) {
                    switch option {
                    case "allow_host_loopback=true": allow = true
                    case "allow_host_loopback=false": allow = false
                    default:
                        throw GockerError(.invalidArgument, "invalid network \"\(text)\": unsupported slirp4netns option \"\(option)\" (only allow_host_loopback=true|false)")
                    }
                }
                self = .slirp4netns(allowHostLoopback: allow)
            } else if text.hasPrefix("container:") {
                let name = String(text.dropFirst("container:".count))
                guard !name.isEmpty else {
                    throw GockerError(.invalidArgument, "invalid network \"\(text)\": container:NAME needs a container")
                }
                self = .container(name)
            } else {
                self = .bridge(text)
            }
        }
    }

    /// As the record and inspect's HostConfig.NetworkMode show it.
    public var name: String {
        switch self {
        case .none: return "none"
        case .host: return "host"
        case .bridge(let n): return n
        case .container(let c): return "container:" + c
        case .slirp4netns(let allow): return allow ? "slirp4netns:allow_host_loopback=true" : "slirp4netns"
        }
    }

    /// The container has a network namespace of its own.
    public var ownNamespace: Bool {
        switch self {
        case .none, .bridge, .slirp4netns: return true
        case .host, .container: return false
        }
    }
}

extension Engine {
    var networksDir: String { dataRoot + "/networks" }
    func networkDir(_ name: String) -> String { "\(networksDir)/\(name)" }

    /// docker's rule for network names.
    static func validateNetworkName(_ name: String) throws(GockerError) {
        let ok = !name.isEmpty && name.utf8.count <= 128 && name.utf8.first.map { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
        } == true && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
        }
        guard ok else {
            throw GockerError(.invalidArgument, "invalid network name \"\(name)\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
    }

    /// An flock shared by every gocker on the host (whatever its data
    /// root) while it chooses a subnet or a bridge name and makes or
    /// removes a bridge: bridges and routes are the host's.
    func withHostNetworkLock<T>(_ body: () throws(GockerError) -> T) throws(GockerError) -> T {
        let fd: Int32
        do {
            try Sys.mkdirAll("/run/gocker", mode: 0o700)
            fd = try Sys.lock("/run/gocker/networks.lock")
        } catch {
            throw GockerError(.system, "lock the host's networks", cause: error)
        }
        defer { close(fd) }
        return try body()
    }

    /// The bridge device of the default network: `gocker0` for the
    /// default data root, else one named after the data root, so that two
    /// data roots never share a bridge.
    var defaultBridgeName: String {
        if dataRoot == "/var/lib/gocker" { return "gocker0" }
        var h: UInt32 = 2_166_136_261
        for b in dataRoot.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let hex = String(h, radix: 16)
        return "gocker-" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The record of the network `ref` (a name, an id or an id's prefix).
    /// The default network is made on first use.
    public func network(_ ref: String) throws(GockerError) -> NetworkRecord {
        if ref == NetworkRecord.defaultName { return try defaultNetwork() }
        if !ref.contains("/"), ref.first != ".", let r = try? JSON.readFile(NetworkRecord.self, path: networkDir(ref) + "/network.json") {
            return r
        }
        let byID = storedNetworks().filter { $0.id.hasPrefix(ref) }
        if ref.count >= 1, byID.count == 1 { return byID[0] }
        throw GockerError(.notFound, "network \(ref) not found")
    }

    /// The networks made so far, by name.
    func storedNetworks() -> [NetworkRecord] {
        guard let names = try? Sys.listDirectory(networksDir) else { return [] }
        return names.filter { $0.first != "." }.sorted().compactMap { name in
            try? JSON.readFile(NetworkRecord.self, path: networkDir(name) + "/network.json")
        }
    }

    /// The default network, made when it does not exist yet: the first of
    /// docker's pools that no route of the host's and no other network
    /// uses.
    func defaultNetwork() throws(GockerError) -> NetworkRecord {
        let path = networkDir(NetworkRecord.defaultName) + "/network.json"
        if let r = try? JSON.readFile(NetworkRecord.self, path: path) { return r }
        return try withHostNetworkLock { () throws(GockerError) -> NetworkRecord in
            if let r = try? JSON.readFile(NetworkRecord.self, path: path) { return r }
            reapNetworkLeftovers()
            let taken = IPv4Subnet.hostRoutes((try? Sys.readText("/proc/net/route")) ?? "")
                + storedNetworks().map(\.parsedSubnet)
            guard let subnet = IPv4Subnet.firstFree(avoiding: taken) else {
                throw GockerError(.invalidState, "no free subnet for the default network: all of docker's pools are in use on this host")
            }
            return try makeNetwork(name: NetworkRecord.defaultName, subnet: subnet, gateway: subnet.firstHost, ipRange: nil,
                                   isInternal: false, bridge: defaultBridgeName, mtu: 1500, labels: [:], options: [:])
        }
    }

    /// `network create`: everything is checked before anything is made.
    public func createNetwork(name: String, driver: String = "bridge", subnet: String?, gateway: String?, ipRange: String?,
                              isInternal: Bool, labels: [String: String], options: [String: String]) throws(GockerError) -> NetworkRecord {
        try Self.validateNetworkName(name)
        if Rootless.active {
            throw Rootless.refusal("network create", "a bridge network is the host root's; rootless containers use slirp4netns (the default), none or host")
        }
        guard driver == "bridge" else {
            throw GockerError(.notFound, "plugin \"\(driver)\" not found: gocker has only the bridge driver")
        }
        guard !NetworkRecord.predefined.contains(name) else {
            throw GockerError(.alreadyExists, "network with name \(name) already exists")
        }
        var mtu = 1500
        for (k, v) in options {
            switch k {
            case NetworkRecord.bridgeNameOption:
                try NetFilter.checkBridge(v)
            case NetworkRecord.mtuOption:
                guard let m = Int(v), (68...65535).contains(m) else {
                    throw GockerError(.invalidArgument, "invalid MTU \"\(v)\": expected 68 to 65535")
                }
                mtu = m
            default:
                throw GockerError(.invalidArgument, "network option \"\(k)\" is not supported")
            }
        }
        let given = try subnet.map { s throws(GockerError) in try IPv4Subnet(s) }
        var gw: IPv4?
        if let gateway {
            guard given != nil else { throw GockerError(.invalidArgument, "--gateway needs --subnet") }
            guard let g = IPv4(gateway) else { throw GockerError(.invalidArgument, "invalid gateway \"\(gateway)\": expected an IPv4 address") }
            gw = g
        }
        var range: IPv4Subnet?
        if let ipRange {
            guard let s = given else { throw GockerError(.invalidArgument, "--ip-range needs --subnet") }
            let r = try IPv4Subnet(ipRange, what: "ip-range")
            guard s.contains(r.address), r.prefix >= s.prefix else {
                throw GockerError(.invalidArgument, "invalid ip-range \(r): not inside the subnet \(s)")
            }
            range = r
        }
        if Sys.exists(networkDir(name)) { throw GockerError(.alreadyExists, "network with name \(name) already exists") }
        return try withHostNetworkLock { () throws(GockerError) -> NetworkRecord in
            reapNetworkLeftovers()
            let others = storedNetworks()
            if others.contains(where: { $0.name == name }) {
                throw GockerError(.alreadyExists, "network with name \(name) already exists")
            }
            let routes = IPv4Subnet.hostRoutes((try? Sys.readText("/proc/net/route")) ?? "")
            let bridge = options[NetworkRecord.bridgeNameOption]
            let chosen: IPv4Subnet
            if let s = given {
                if let o = others.first(where: { $0.parsedSubnet.overlaps(s) }) {
                    throw GockerError(.invalidArgument, "invalid pool request: pool \(s) overlaps with network \(o.name)'s \(o.subnet)")
                }
                if let r = routes.first(where: { $0.overlaps(s) }) {
                    throw GockerError(.invalidArgument, "invalid pool request: pool \(s) overlaps with the host's route to \(r)")
                }
                chosen = s
            } else {
                guard let s = IPv4Subnet.firstFree(avoiding: routes + others.map(\.parsedSubnet)) else {
                    throw GockerError(.invalidState, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
                }
                chosen = s
            }
            if let b = bridge, gk_link_index(b) >= 0 {
                throw GockerError(.alreadyExists, "bridge \(b) already exists on the host")
            }
            return try makeNetwork(name: name, subnet: chosen, gateway: gw ?? chosen.firstHost, ipRange: range,
                                   isInternal: isInternal, bridge: bridge, mtu: mtu, labels: labels, options: options)
        }
    }

    /// Makes a network under the host's lock: its bridge, its place in
    /// gocker's nftables table, then its record (in one rename). On
    /// failure nothing is left.
    private func makeNetwork(name: String, subnet: IPv4Subnet, gateway: IPv4, ipRange: IPv4Subnet?, isInternal: Bool,
                             bridge: String?, mtu: Int, labels: [String: String],
                             options: [String: String]) throws(GockerError) -> NetworkRecord {
        var r = NetworkRecord()
        r.name = name
        r.id = Identifier.newContainerID()
        r.created = Timestamp.now()
        r.subnet = subnet.description
        r.gateway = gateway.description
        r.ipRange = ipRange?.description
        r.internal = isInternal
        r.bridge = bridge ?? "br-" + String(r.id.prefix(12))
        r.mtu = mtu
        r.labels = labels
        r.options = options
        // The book checks the gateway.
        let new = "\(networksDir)/.new-\(r.id)"
        _ = try IPAM(directory: new, subnet: subnet, gateway: gateway)
        do throws(GockerError) {
            try performing("create network \(name)") { () throws(SystemCallError) in
                try Sys.writeFileExclusive(new + "/network.json", r.jsonBytes)
            }
            let index = gk_bridge_up(r.bridge, gateway.value.bigEndian, UInt32(subnet.prefix), UInt32(mtu))
            guard index >= 0 else {
                throw GockerError(.system, "create bridge \(r.bridge)", cause: SystemCallError("netlink", errno: -index))
            }
            do throws(GockerError) {
                try NetFilter().addNetwork(subnet: subnet, bridge: r.bridge, internal: isInternal)
                try performing("create network \(name)") { () throws(SystemCallError) in
                    try Sys.check("rename", path: networkDir(name)) { rename(new, networkDir(name)) }
                }
            } catch {
                try? NetFilter().removeNetwork(subnet: subnet, bridge: r.bridge)
                _ = gk_link_delete(r.bridge)
                throw error
            }
        } catch {
            try? Sys.removeAll(new)
            throw error
        }
        return r
    }

    /// The containers on network `name` (by record), with their attachment.
    func containers(on name: String) -> [(record: ContainerRecord, attachment: NetworkAttachment)] {
        records().compactMap { r in
            guard let a = r.launch?.attachments.first(where: { $0.network == name }) else { return nil }
            return (r, a)
        }
    }

    /// `network rm`: refused while a container is on it, and for the
    /// predefined networks (by name or id).
    public func removeNetwork(_ ref: String) throws(GockerError) {
        if NetworkRecord.predefined.contains(ref) {
            throw GockerError(.invalidArgument, "\(ref) is a pre-defined network and cannot be removed")
        }
        let r = try network(ref)
        if NetworkRecord.predefined.contains(r.name) {
            throw GockerError(.invalidArgument, "\(r.name) is a pre-defined network and cannot be removed")
        }
        try drop(r)
    }

    /// Removes network `r` unless a container is on it or is taking an
    /// address on it (judged under its address book's lock, which every
    /// create takes): its nftables elements and its bridge go first, its
    /// record last, so that a failure or a gocker killed halfway leaves a
    /// network that `network rm` removes again.
    func drop(_ r: NetworkRecord) throws(GockerError) {
        if let c = containers(on: r.name).first {
            throw GockerError(.invalidState, "error while removing network: network \(r.name) id \(r.id) has active endpoints (container \(c.record.name))")
        }
        try withHostNetworkLock { () throws(GockerError) in
            reapNetworkLeftovers()
            let ipam = try addressBook(r.name, subnet: r.parsedSubnet, gateway: r.parsedGateway)
            try ipam.change { (book: inout IPAM.Book) throws(GockerError) in
                let held = book.addresses.values.filter { id in
                    containerExists(id) || IPAM.ownerAlive(book.owners?[id])
                }
                if let id = held.first {
                    let name = (try? load(id))?.name ?? String(id.prefix(12))
                    throw GockerError(.invalidState, "error while removing network: network \(r.name) id \(r.id) has active endpoints (container \(name))")
                }
                try removeNetworkParts(r)
                let tomb = "\(networksDir)/.removing-\(r.id)"
                try performing("remove network \(r.name)") { () throws(SystemCallError) in
                    try Sys.check("rename", path: networkDir(r.name)) { rename(networkDir(r.name), tomb) }
                }
                try? Sys.removeAll(tomb)
            }
        }
    }

    /// A network's elements in the nftables table and its bridge (each
    /// gone already is no error).
    func removeNetworkParts(_ r: NetworkRecord) throws(GockerError) {
        try NetFilter().removeNetwork(subnet: r.parsedSubnet, bridge: r.bridge)
        let e = gk_link_delete(r.bridge)
        if e < 0 && e != -ENODEV {
            throw GockerError(.system, "remove bridge \(r.bridge)", cause: SystemCallError("netlink", errno: -e))
        }
    }

    /// What a gocker killed while it made or removed a network left
    /// (`.new-ID`, `.removing-ID`): its bridge and elements, then the
    /// directory. Under the host's network lock, which every making and
    /// removing holds: nothing found here is still being worked on.
    func reapNetworkLeftovers() {
        for name in (try? Sys.listDirectory(networksDir)) ?? [] where name.hasPrefix(".new-") || name.hasPrefix(".removing-") {
            let dir = "\(networksDir)/\(name)"
            if let r = try? JSON.readFile(NetworkRecord.self, path: dir + "/network.json") {
                guard (try? removeNetworkParts(r)) != nil else { continue }
            }
            try? Sys.removeAll(dir)
        }
    }

    /// `network prune`: the networks no container is on, the default one
    /// too (it is made again, as it was, on its next use). Returns their
    /// names.
    /// Whether the default network has been made (its bridge, its subnet).
    public var hasDefaultNetwork: Bool { Sys.exists(networkDir(NetworkRecord.defaultName) + "/network.json") }

    /// Removes the default network unless a container is on it: for one
    /// who made it only to measure (`gocker bench`), not to keep.
    public func removeDefaultNetworkIfUnused() {
        guard let r = try? JSON.readFile(NetworkRecord.self, path: networkDir(NetworkRecord.defaultName) + "/network.json"),
              containers(on: r.name).isEmpty else { return }
        try? drop(r)
    }

    public func pruneNetworks() throws(GockerError) -> [String] {
        var removed: [String] = []
        for r in storedNetworks() where containers(on: r.name).isEmpty {
            try drop(r)
            removed.append(r.name)
        }
        return removed
    }
}
