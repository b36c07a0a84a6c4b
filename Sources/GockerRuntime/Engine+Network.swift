import CGockerCore
import Glibc
import GockerCore

/// What `create` works out from `--network` before anything is made.
struct PlannedNetwork {
    /// The bridge network the container gets an address on.
    var record: NetworkRecord?
    /// `container:NAME`: the network namespace to join.
    var joinPath: String?
    /// The hostname it gets unless `--hostname` says (host: the host's).
    var hostname: String?
    /// `container:NAME`: that container's /etc/hosts and /etc/resolv.conf.
    var sharedFiles: (hosts: [UInt8], resolv: [UInt8])?
    /// `-p`, read.
    var ports: [PortRequest] = []
    /// slirp4netns: whether the host's loopback is reachable.
    var slirp: Bool?
}

extension Engine {
    /// The network a container gets: rootless, the default is
    /// slirp4netns, and a bridge network (made on the host, with its
    /// veths and rules) is refused.
    static func effectiveNetwork(_ mode: NetworkMode) throws(GockerError) -> NetworkMode {
        guard Rootless.active, case .bridge(let name) = mode else { return mode }
        if name == NetworkRecord.defaultName { return .slirp4netns(allowHostLoopback: false) }
        throw Rootless.refusal("network \(name)", "a bridge network is the host root's; use slirp4netns (the default), none or host")
    }

    /// Checks `--network` and the options that go with it.
    func planNetwork(_ request: RunRequest) throws(GockerError) -> PlannedNetwork {
        for d in request.dns where !Self.isIPAddress(d) {
            throw GockerError(.invalidArgument, "invalid --dns \"\(d)\": expected an IP address")
        }
        for (flag, values) in [("--dns-search", request.dnsSearch), ("--dns-option", request.dnsOptions)] {
            for v in values where v.isEmpty || v.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) {
                throw GockerError(.invalidArgument, "invalid \(flag) \"\(v)\": no spaces or control characters")
            }
        }
        for h in request.addHosts {
            let parts = h.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, (try? Self.validateHostname(parts[0])) != nil,
                  parts[1] == "host-gateway" || Self.isIPAddress(parts[1]) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(h)\" for \"--add-host\" flag: expected host:ip")
            }
        }
        if let mac = request.macAddress, NetworkAttachment.macBytes(mac) == nil {
            throw GockerError(.invalidArgument, "invalid --mac-address \"\(mac)\": expected six hex bytes such as 02:42:ac:11:00:02")
        }
        var ip: IPv4?
        if let text = request.ip {
            guard let v = IPv4(text) else { throw GockerError(.invalidArgument, "invalid --ip \"\(text)\": expected an IPv4 address") }
            ip = v
        }
        for a in request.networkAliases { try Self.validateHostname(a) }
        var plan = PlannedNetwork()
        for p in request.publish { plan.ports += try PortSpec.parse(p) }
        if !plan.ports.isEmpty {
            switch request.network {
            case .bridge: break
            case .slirp4netns: try SlirpNetwork.checkPorts(plan.ports)
            default:
                throw GockerError(.invalidArgument, "conflicting options: -p needs a bridge network, not --network \(request.network.name)")
            }
        }
        switch request.network {
        case .host:
            plan.hostname = Self.hostHostname()
            if ip != nil || request.macAddress != nil || !request.networkAliases.isEmpty {
                throw GockerError(.invalidArgument, "conflicting options: --ip, --mac-address and --network-alias need a bridge network, not host")
            }
        case .none:
            if ip != nil || request.macAddress != nil || !request.networkAliases.isEmpty {
                throw GockerError(.invalidArgument, "conflicting options: --ip, --mac-address and --network-alias need a bridge network, not none")
            }
        case .container(let ref):
            if ip != nil || request.macAddress != nil || !request.networkAliases.isEmpty || !request.dns.isEmpty
                || !request.addHosts.isEmpty || request.hostname != nil {
                throw GockerError(.invalidArgument, "conflicting options: --network container:\(ref) takes the other container's network settings (no --ip, --mac-address, --network-alias, --dns, --add-host or --hostname)")
            }
            let other = try lookup(ref)
            guard let pid = pid(of: other) else {
                throw GockerError(.invalidState, "cannot join network of a non running container: \(other.name)")
            }
            plan.joinPath = "/proc/\(pid)/ns/net"
            plan.hostname = other.hostname
            let dir = containerDir(other.id)
            plan.sharedFiles = ((try? Sys.readFile(dir + "/hosts")) ?? [], (try? Sys.readFile(dir + "/resolv.conf")) ?? [])
        case .slirp4netns(let allow):
            if ip != nil || request.macAddress != nil || !request.networkAliases.isEmpty {
                throw GockerError(.invalidArgument, "conflicting options: --ip, --mac-address and --network-alias need a bridge network, not slirp4netns")
            }
            plan.slirp = allow
        case .bridge(let name):
            let r: NetworkRecord
            do { r = try network(name) } catch where error.code == .notFound {
                throw GockerError(.notFound, "network \(name) not found")
            }
            try Self.checkEndpoint(ip: ip, aliases: request.networkAliases, on: r)
            try ensureBridge(r)
            plan.record = r
        }
        return plan
    }

    /// `--ip` and `--network-alias` (`--alias`) for network `r`: only on
    /// a user's network, and the address a host address of its subnet.
    static func checkEndpoint(ip: IPv4?, aliases: [String], on r: NetworkRecord) throws(GockerError) {
        if ip != nil && r.name == NetworkRecord.defaultName {
            throw GockerError(.invalidArgument, "user specified IP address is supported on user defined networks only")
        }
        if !aliases.isEmpty && r.name == NetworkRecord.defaultName {
            throw GockerError(.invalidArgument, "network-scoped alias is supported only for containers in user defined networks")
        }
        if let ip {
            let s = r.parsedSubnet
            guard s.contains(ip), ip != s.address, ip != s.broadcast, ip != r.parsedGateway else {
                throw GockerError(.invalidArgument, "invalid --ip \(ip): not a free host address of network \(r.name)'s subnet \(s)")
            }
        }
    }

    /// A network's bridge and its place in the nftables table are the
    /// host's and go with a reboot, while its record stays: they are made
    /// again, under the host's lock, by the first container to be made or
    /// started on it after that, and the ports its containers publish are
    /// published again. (Otherwise one stat of sysfs.)
    func ensureBridge(_ r: NetworkRecord) throws(GockerError) {
        // sysfs first: one system call, where a netlink query takes a
        // socket and a round trip.
        guard !Self.bridgeExists(r.bridge), gk_link_index(r.bridge) < 0 else { return }
        try withHostNetworkLock { () throws(GockerError) in
            guard gk_link_index(r.bridge) < 0 else { return }
            let index = gk_bridge_up(r.bridge, r.parsedGateway.value.bigEndian, UInt32(r.parsedSubnet.prefix), UInt32(r.mtu))
            guard index >= 0 else {
                throw GockerError(.system, "create bridge \(r.bridge)", cause: SystemCallError("netlink", errno: -index))
            }
            let filter: NetFilter
            do throws(GockerError) {
                filter = try NetFilter()
                try filter.addNetwork(subnet: r.parsedSubnet, bridge: r.bridge, internal: r.internal)
            } catch {
                // Without its rules the bridge would pass for a whole
                // network to the next look: it goes, and is made again.
                _ = gk_link_delete(r.bridge)
                throw error
            }
            // Each container's all or none; one whose port something else
            // took meanwhile keeps the others'.
            for c in containers(on: r.name) where !c.attachment.mappings.isEmpty {
                do throws(GockerError) { try filter.publish(c.attachment.mappings) } catch {
                    Runtime.warn("container \(c.record.name): its ports were not published again: \(error.description)")
                }
            }
        }
    }

    static func bridgeExists(_ name: String) -> Bool { Sys.exists("/sys/class/net/\(name)/bridge") }

    /// Before a container's start: the bridges of its networks, made again
    /// where a reboot took them (see ensureBridge).
    func ensureBridges(of record: ContainerRecord) throws(GockerError) {
        for a in record.launch?.attachments ?? [] where !Self.bridgeExists(a.bridge) {
            let r: NetworkRecord
            do { r = try network(a.network) } catch where error.code == .notFound {
                throw GockerError(.notFound, "network \(a.network) not found: container \(record.name) cannot start on it (network disconnect it)")
            }
            try ensureBridge(r)
        }
    }

    /// An IPv4 or IPv6 address, as inet_pton reads it.
    static func isIPAddress(_ text: String) -> Bool {
        var buf = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, text, &buf) == 1 || inet_pton(AF_INET6, text, &buf) == 1
    }

    /// An address on `network` for container `id` and what its start needs
    /// to connect it. Addresses of containers that are gone are given back
    /// first.
    func attach(id: String, to network: NetworkRecord, ip requested: IPv4?, mac: String?,
                aliases: [String]) throws(GockerError) -> NetworkAttachment {
        // Never made here: a network removed meanwhile stays removed.
        var ipam: IPAM
        do {
            ipam = try addressBook(network.name, subnet: network.parsedSubnet, gateway: network.parsedGateway)
        } catch where error.code == .notFound {
            throw GockerError(.notFound, "network \(network.name) not found")
        }
        ipam.range = network.ipRange.flatMap { try? IPv4Subnet($0) }
        let ip: IPv4
        do {
            ip = try ipam.allocate(for: id, requested: requested, owner: IPAM.thisProcess,
                                   isGone: { holder in holder != id && !containerExists(holder) })
        } catch where error.code == .notFound {
            throw GockerError(.notFound, "network \(network.name) not found")
        }
        var a = NetworkAttachment()
        a.network = network.name
        a.bridge = network.bridge
        a.hostInterface = "gk" + String(id.prefix(12))
        a.address = ip.description
        a.prefix = network.parsedSubnet.prefix
        a.gateway = network.gateway
        a.mac = mac?.lowercased() ?? NetworkAttachment.mac(for: ip)
        a.mtu = network.mtu
        a.aliases = aliases.isEmpty ? nil : aliases
        return a
    }

    /// The host ports of `requests`, settled: each asked for is free on
    /// the host, ephemeral ones are picked. Two requests for one host port
    /// are refused.
    func settlePorts(_ requests: [PortRequest]) throws(GockerError) -> [PublishedPort] {
        var out: [PublishedPort] = []
        var seen: Set<String> = []
        for r in requests {
            var p = PublishedPort()
            p.proto = r.proto.rawValue
            p.hostIP = r.hostIP?.description
            p.hostPort = try PortSpec.hostPort(for: r)
            p.containerPort = r.containerPort
            guard seen.insert("\(p.proto)/\(p.hostIP ?? "")/\(p.hostPort)").inserted else {
                throw GockerError(.alreadyExists, "Bind for \(p.hostIP ?? "0.0.0.0"):\(p.hostPort) failed: port is already allocated")
            }
            out.append(p)
        }
        return out
    }

    /// The address book of network `name` (never made here: a network
    /// removed meanwhile stays removed), made again from the containers'
    /// records should it no longer read.
    func addressBook(_ name: String, subnet: IPv4Subnet, gateway: IPv4) throws(GockerError) -> IPAM {
        var ipam = try IPAM(directory: networkDir(name), subnet: subnet, gateway: gateway, create: false)
        let engine = self
        ipam.rebuild = {
            var held: [String: String] = [:]
            for r in engine.records() {
                for a in r.launch?.attachments ?? [] where a.network == name { held[a.address] = r.id }
            }
            return held
        }
        return ipam
    }

    /// Gives back, on every network, the addresses of containers that
    /// never came to be or are gone (their gocker killed): `container
    /// prune` leaves none behind, without waiting for a network's next use.
    func reconcileAddresses() {
        for r in storedNetworks() {
            guard let ipam = try? addressBook(r.name, subnet: r.parsedSubnet, gateway: r.parsedGateway) else { continue }
            _ = try? ipam.reconcile { holder in !containerExists(holder) }
        }
    }

    /// Gives back the address of container `id` on `network`.
    func detach(id: String, from network: String) {
        guard let r = try? JSON.readFile(NetworkRecord.self, path: networkDir(network) + "/network.json") else { return }
        detach(id: id, from: network, subnet: r.parsedSubnet, gateway: r.parsedGateway)
    }

    /// Gives back the address attachment `a` holds (the network's subnet
    /// and gateway as the attachment has them: its record is not read).
    func detach(id: String, _ a: NetworkAttachment) {
        guard let ip = IPv4(a.address), let gateway = IPv4(a.gateway), (0...32).contains(a.prefix) else {
            return detach(id: id, from: a.network)
        }
        let mask: UInt32 = a.prefix == 0 ? 0 : ~0 << (32 - a.prefix)
        detach(id: id, from: a.network, subnet: IPv4Subnet(network: IPv4(ip.value & mask), prefix: a.prefix), gateway: gateway)
    }

    private func detach(id: String, from network: String, subnet: IPv4Subnet, gateway: IPv4) {
        guard let ipam = try? addressBook(network, subnet: subnet, gateway: gateway) else { return }
        try? ipam.release(id)
    }

    /// What a container's removal does to its networks: its published
    /// ports are withdrawn, its addresses go back, and the networks' other
    /// containers forget its name. Its veths go with its network
    /// namespace, which the kernel takes down once the container's last
    /// process is gone: deleting them here would wait for the kernel's
    /// grace periods (20 to 30 ms on this machine) on every `run --rm`.
    func disconnect(id: String, _ list: [NetworkAttachment]) {
        for a in list {
            if !a.mappings.isEmpty { try? NetFilter().unpublish(a.mappings) }
            detach(id: id, a)
        }
        let names = list.map(\.network)
        syncHosts(networks: names, leaving: (id, names))
    }

    /// The /etc/hosts of a new container: localhost, `--add-host`'s, and
    /// its own address under its hostname (the host's file on the host's
    /// network).
    static func hostsFile(request: RunRequest, hostname: String, attachment: NetworkAttachment?,
                          address: String? = nil) -> [UInt8] {
        var text: String
        if request.network == .host, let h = try? Sys.readText("/etc/hosts") {
            text = h
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        } else {
            text = """
                127.0.0.1\tlocalhost
                ::1\tlocalhost ip6-localhost ip6-loopback
                fe00::0\tip6-localnet
                ff00::0\tip6-mcastprefix
                ff02::1\tip6-allnodes
                ff02::2\tip6-allrouters

                """
        }
        for h in request.addHosts {
            let parts = h.split(separator: ":", maxSplits: 1).map(String.init)
            let ip = parts[1] == "host-gateway" ? (attachment?.gateway ?? (address != nil ? SlirpNetwork.gateway : "127.0.0.1")) : parts[1]
            text += "\(ip)\t\(parts[0])\n"
        }
        if let a = attachment { text += "\(a.address)\t\(hostname)\n" } else if let address { text += "\(address)\t\(hostname)\n" }
        return Array(text.utf8)
    }

    /// /etc/resolv.conf for a container, from the host's as docker makes
    /// it: nameservers on loopback (a local resolver the container cannot
    /// reach) are left out, and where none is left, docker's defaults
    /// (8.8.8.8, 8.8.4.4) take their place. `--dns`, `--dns-search` and
    /// `--dns-option` replace the host's lines of their kind. On the
    /// host's network, the host's file as it is (unless those are given).
    static func resolvConf(host: [UInt8], request: RunRequest) -> [UInt8] {
        let given = !request.dns.isEmpty || !request.dnsSearch.isEmpty || !request.dnsOptions.isEmpty
        if request.network == .host && !given { return host }
        var servers: [String] = [], search: [String] = [], options: [String] = []
        for line in String(decoding: host, as: UTF8.self).split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard f.count >= 2 else { continue }
            switch f[0] {
            case "nameserver":
                let s = f[1]
                if request.network != .host && (s.hasPrefix("127.") || s == "::1") { continue }
                servers.append(s)
            case "search", "domain": search = Array(f.dropFirst())
            case "options": options += f.dropFirst()
            default: continue
            }
        }
        // slirp4netns forwards DNS at its own address, to the host's resolver.
        if case .slirp4netns = request.network { servers = [SlirpNetwork.nameserver] }
        if !request.dns.isEmpty { servers = request.dns }
        if !request.dnsSearch.isEmpty { search = request.dnsSearch == ["."] ? [] : request.dnsSearch }
        if !request.dnsOptions.isEmpty { options = request.dnsOptions }
        if servers.isEmpty { servers = ["8.8.8.8", "8.8.4.4"] }
        var text = ""
        if !search.isEmpty { text += "search " + search.joined(separator: " ") + "\n" }
        for s in servers { text += "nameserver \(s)\n" }
        if !options.isEmpty { text += "options " + options.joined(separator: " ") + "\n" }
        return Array(text.utf8)
    }

    /// Name resolution on a user's network: every container's /etc/hosts
    /// is its own part (hosts.own) followed by the containers it shares a
    /// user's network with, by name, alias and hostname (their address on
    /// that network). gocker has no daemon to answer DNS, so the files are
    /// kept in step by whatever gocker adds a container to a network or
    /// removes one, under one lock for all of them (a container on two
    /// networks has one file); each is rewritten in place, as the container
    /// has it bind-mounted. The default network resolves no names, as in
    /// docker. `leaving`: a container being removed or disconnected,
    /// whose record still says it is there.
    func syncHosts(networks changed: [String], leaving: (id: String, networks: [String])? = nil,
                   also: ContainerRecord? = nil) {
        let changed = Set(changed).subtracting([NetworkRecord.defaultName])
        // The lock: an flock on the networks' directory itself (no file
        // left behind).
        guard !changed.isEmpty else { return }
        let lock = Glibc.open(networksDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0, flock(lock, LOCK_EX) == 0 else {
            if lock >= 0 { Sys.close(lock) }
            return
        }
        defer { Sys.close(lock) }
        var members: [String: [(record: ContainerRecord, attachment: NetworkAttachment)]] = [:]
        for r in records() {
            for a in r.launch?.attachments ?? [] where a.network != NetworkRecord.defaultName {
                if let leaving, leaving.id == r.id, leaving.networks.contains(a.network) { continue }
                members[a.network, default: []].append((r, a))
            }
        }
        var targets = changed.sorted().flatMap { members[$0] ?? [] }.map(\.record)
        if let also { targets.append(also) }
        var done: Set<String> = []
        for m in targets where done.insert(m.id).inserted {
            let cdir = containerDir(m.id)
            guard var text = try? Sys.readText(cdir + "/hosts.own") else { continue }
            var lines: Set<String> = []
            for a in m.launch?.attachments ?? [] {
                for o in members[a.network] ?? [] where o.record.id != m.id {
                    var names = [o.record.name] + (o.attachment.aliases ?? [])
                    if !names.contains(o.record.hostname) { names.append(o.record.hostname) }
                    let line = "\(o.attachment.address)\t\(names.joined(separator: " "))\n"
                    if lines.insert(line).inserted { text += line }
                }
            }
            // Over what is there, then cut to length: a reader never finds
            // it empty (its own part, first, is the same each time).
            let fd = Glibc.open(cdir + "/hosts", O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            if written == bytes.count { _ = ftruncate(fd, off_t(bytes.count)) }
            Sys.close(fd)
        }
    }

    /// inspect's NetworkSettings: docker's top-level address members (of
    /// the default network) and one entry per network.
    func networkSettings(_ r: ContainerRecord) -> [String: JSONValue] {
        var out: [String: JSONValue] = ["IPAddress": .string(""), "IPPrefixLen": .number("0"), "Gateway": .string(""),
                                        "MacAddress": .string(""), "Networks": .object([:])]
        let list = r.launch?.attachments ?? []
        guard !list.isEmpty else {
            if r.network == "host" || r.network == "none" {
                out["Networks"] = .object([r.network: .object(["IPAddress": .string(""), "Gateway": .string("")])])
            }
            return out
        }
        var networks: [String: JSONValue] = [:]
        for a in list {
            let id = (try? JSON.readFile(NetworkRecord.self, path: networkDir(a.network) + "/network.json"))?.id ?? ""
            networks[a.network] = .object([
                "NetworkID": .string(id), "EndpointID": .string(a.hostInterface), "Gateway": .string(a.gateway),
                "IPAddress": .string(a.address), "IPPrefixLen": .number(String(a.prefix)), "MacAddress": .string(a.mac),
                "Aliases": a.aliases.map { .array($0.map(JSONValue.string)) } ?? .null,
            ])
            if a.network == NetworkRecord.defaultName {
                out["IPAddress"] = .string(a.address)
                out["IPPrefixLen"] = .number(String(a.prefix))
                out["Gateway"] = .string(a.gateway)
                out["MacAddress"] = .string(a.mac)
            }
        }
        out["Networks"] = .object(networks)
        return out
    }

    /// `port CONTAINER [PORT[/PROTO]]`: its published ports, as docker
    /// lists them.
    public func ports(_ ref: String, only: String? = nil) throws(GockerError) -> [PublishedPort] {
        let r = try lookup(ref)
        var ports = r.launch?.network?.ports ?? r.launch?.slirp?.ports ?? []
        if let only {
            let parts = only.split(separator: "/", maxSplits: 1).map(String.init)
            guard let port = UInt16(parts[0]), port > 0, parts.count == 1 || PortProtocol(rawValue: parts[1].lowercased()) != nil else {
                throw GockerError(.invalidArgument, "invalid port \"\(only)\": expected PORT[/tcp|udp]")
            }
            let proto = parts.count == 2 ? parts[1].lowercased() : "tcp"
            ports = ports.filter { $0.containerPort == port && $0.proto == proto }
            if ports.isEmpty {
                throw GockerError(.notFound, "No public port '\(port)/\(proto)' published for \(r.name)")
            }
        }
        return ports
    }

    /// `--network container:NAME`, at each start after the first: the
    /// config names the other container's network namespace by its
    /// process, which is looked up afresh (it may have restarted), and
    /// the start is refused when it does not run.
    func joinNetworkOfContainer(_ record: ContainerRecord) throws(GockerError) {
        guard record.network.hasPrefix("container:") else { return }
        let ref = String(record.network.dropFirst("container:".count))
        let other = try lookup(ref)
        guard let pid = pid(of: other) else {
            throw GockerError(.invalidState, "cannot join network of a non running container: \(other.name)")
        }
        let path = containerDir(record.id) + "/config.json"
        var spec = try Spec.decodeFile(path: path)
        guard let i = spec.linux?.namespaces?.firstIndex(where: { $0.type == "network" }) else { return }
        let want = "/proc/\(pid)/ns/net"
        guard spec.linux?.namespaces?[i].path != want else { return }
        spec.linux?.namespaces?[i].path = want
        try performing("update container \(record.id)") { () throws(SystemCallError) in
            try Sys.writeFileAtomic(path, spec.jsonBytes)
        }
    }
}
