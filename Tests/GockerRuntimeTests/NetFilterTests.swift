import Glibc
import CGockerCore
import GockerCore
import Testing
@testable import GockerRuntime

/// gocker's nftables table, each test with a table, links and namespaces of
/// its own (named after the test process), removed also when it fails:
/// the ruleset really is in the kernel, published ports really are map
/// elements (added and removed over netlink), and a published port really
/// answers through DNAT. Runs as root.
@Suite(.serialized) struct NetFilterTests {
    let pid = getpid()

    func sh(_ argv: [String]) throws -> String {
        String(decoding: try Sys.output(of: argv), as: UTF8.self)
    }

    func nft(_ args: String...) throws -> String {
        let r = try NetFilter.run(args, input: nil)
        if r.status != 0 { throw GockerError(.system, "nft \(args.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    func cleanUp(table: String, links: [String] = [], namespaces: [String] = []) {
        _ = try? NetFilter.run(["delete", "table", "ip", table], input: nil)
        for l in links { _ = try? Sys.output(of: ["/bin/sh", "-c", "ip link del \(l) 2>/dev/null; true"]) }
        for n in namespaces { _ = try? Sys.output(of: ["/bin/sh", "-c", "ip netns del \(n) 2>/dev/null; true"]) }
    }

    /// /30 subnets of 10.253-254.x.y that none of the host's routes touch.
    func freeSubnets(_ count: Int) throws -> [IPv4Subnet] {
        var taken = IPv4Subnet.hostRoutes(try Sys.readText("/proc/net/route"))
        var out: [IPv4Subnet] = []
        let base = UInt32(pid % 16384) * 4
        let pool = (0..<256).map { i in IPv4Subnet(network: IPv4(0x0AFD_0000 &+ ((base &+ UInt32(i) * 4) % 0x20000)), prefix: 30) }
        for _ in 0..<count {
            let s = try #require(IPv4Subnet.firstFree(pool, avoiding: taken))
            out.append(s)
            taken.append(s)
        }
        return out
    }

    @Test func theTableIsMadeWithItsChainsSetsAndMapsAndGoesWithTheLastNetwork() throws {
        let table = "gk_t\(pid)_a", br1 = "gkb\(pid)a", br2 = "gkb\(pid)b"
        defer { cleanUp(table: table, links: [br1, br2]) }
        let nets = try freeSubnets(2)
        for br in [br1, br2] { _ = try sh(["/bin/sh", "-c", "ip link add \(br) type bridge"]) }
        let nf = try NetFilter(table: table)
        #expect(try nf.exists() == false)

        try nf.addNetwork(subnet: nets[0], bridge: br1)
        try nf.addNetwork(subnet: nets[1], bridge: br2, internal: true)
        try nf.addNetwork(subnet: nets[0], bridge: br1) // again: nothing doubles

        let json = try nft("-j", "list", "table", "ip", table)
        for name in ["prerouting", "output", "postrouting", "forward", "published"] {
            #expect(json.contains("{\"chain\": {\"family\": \"ip\", \"table\": \"\(table)\", \"name\": \"\(name)\""), "chain \(name)")
        }
        for name in ["masq", "subnets", "bridges", "same", "internal"] {
            #expect(json.contains("{\"set\": {\"family\": \"ip\", \"name\": \"\(name)\", \"table\": \"\(table)\""), "set \(name)")
        }
        for name in ["ports", "ports_at"] {
            #expect(json.contains("{\"map\": {\"family\": \"ip\", \"name\": \"\(name)\", \"table\": \"\(table)\""), "map \(name)")
        }
        let text = try nft("list", "table", "ip", table)
        #expect(text.contains("type nat hook prerouting priority dstnat; policy accept;"))
        #expect(text.contains("type nat hook output priority -100; policy accept;"))
        #expect(text.contains("ip saddr @masq oifname != @bridges masquerade"))
        #expect(text.split(separator: "\n").filter { $0.contains("masquerade") }.count == 3, "\(text)")
        #expect(text.split(separator: "\n").filter { $0.contains("jump published") }.count == 2, "\(text)")

        // The elements: masquerade for the first network only.
        let masq = try nft("list", "set", "ip", table, "masq")
        #expect(masq.contains(nets[0].description) && !masq.contains(nets[1].address.description))
        let subnets = try nft("list", "set", "ip", table, "subnets")
        #expect(subnets.contains(nets[0].description) && subnets.contains(nets[1].description))
        let bridges = try nft("list", "set", "ip", table, "bridges")
        #expect(bridges.contains("\"\(br1)\"") && bridges.contains("\"\(br2)\""))
        let internalSet = try nft("list", "set", "ip", table, "internal")
        #expect(internalSet.contains("\"\(br2)\"") && !internalSet.contains("\"\(br1)\""))
        #expect(try nft("list", "set", "ip", table, "same").contains("\"\(br1)\" . \"\(br1)\""))
        #expect(try Sys.readText("/proc/sys/net/ipv4/ip_forward") == "1\n")
        #expect(try Sys.readText("/proc/sys/net/ipv4/conf/\(br1)/route_localnet") == "1\n")

        // Removal: idempotent; the table goes with the last bridge.
        try nf.removeNetwork(subnet: nets[0], bridge: br1)
        try nf.removeNetwork(subnet: nets[0], bridge: br1)
        #expect(try nf.exists())
        #expect(!(try nft("list", "set", "ip", table, "bridges")).contains("\"\(br1)\""))
        #expect(!(try nft("list", "set", "ip", table, "masq")).contains(nets[0].description))
        try nf.removeNetwork(subnet: nets[1], bridge: br2)
        #expect(try nf.exists() == false)
        try nf.removeNetwork(subnet: nets[1], bridge: br2) // no table: nothing to do
        #expect(try nf.exists() == false)
    }

    @Test func badNamesAndAMissingBridgeAreRefusedAndLeaveNothing() throws {
        let table = "gk_t\(pid)_b"
        defer { cleanUp(table: table) }
        #expect(throws: GockerError.self) { try NetFilter(table: "x; flush ruleset") }
        #expect(throws: GockerError.self) { try NetFilter(table: "") }
        let nf = try NetFilter(table: table)
        let net = try freeSubnets(1)[0]
        #expect(throws: GockerError.self) { try nf.addNetwork(subnet: net, bridge: "a\" }; flush ruleset; #") }
        #expect(throws: GockerError.self) { try nf.addNetwork(subnet: net, bridge: "waytoolongbridgename") }
        // A bridge that does not exist: its route_localnet cannot be set.
        let e = #expect(throws: GockerError.self) { try nf.addNetwork(subnet: net, bridge: "gkn\(pid)x") }
        #expect(e?.description.contains("route_localnet") == true, "\(String(describing: e))")
        #expect(try nf.exists() == false)
        // No nft anywhere: an error naming it.
        let none = #expect(throws: GockerError.self) { try NetFilter.nftBinary(["/nonexistent/nft"], path: "/nonexistent") }
        #expect(none?.message.hasPrefix("nft not found (looked in /nonexistent/nft and $PATH)") == true)
        #expect(try NetFilter.nftBinary().hasSuffix("/nft"))
    }

    @Test func publishedPortsAreMapElementsAddedAndRemovedOverNetlink() throws {
        let table = "gk_t\(pid)_c", br = "gkb\(pid)c"
        defer { cleanUp(table: table, links: [br]) }
        let net = try freeSubnets(1)[0]
        let c1 = IPv4(net.address.value + 2), c2 = IPv4(net.address.value + 3)
        let nf = try NetFilter(table: table)
        // No table yet: withdrawing is nothing to do, publishing says why it cannot.
        try nf.unpublish([PortMapping(hostPort: 8080, containerIP: c1, containerPort: 80)])
        let missing = #expect(throws: GockerError.self) { try nf.publish([PortMapping(hostPort: 8080, containerIP: c1, containerPort: 80)]) }
        #expect(missing?.code == .notFound)

        _ = try sh(["/bin/sh", "-c", "ip link add \(br) type bridge"])
        try nf.addNetwork(subnet: net, bridge: br)
        let maps = [
            PortMapping(proto: .tcp, hostPort: 8080, containerIP: c1, containerPort: 80),
            PortMapping(proto: .udp, hostPort: 5353, containerIP: c2, containerPort: 53),
            PortMapping(proto: .tcp, hostIP: IPv4("127.0.0.1"), hostPort: 9090, containerIP: c1, containerPort: 90),
        ]
        try nf.publish(maps)
        try nf.publish(maps) // the same again: no change, no error
        var ports = try nft("list", "map", "ip", table, "ports")
        #expect(ports.contains("tcp . 8080 : \(c1) . 80"), "\(ports)")
        #expect(ports.contains("udp . 5353 : \(c2) . 53"), "\(ports)")
        #expect(!ports.contains("9090"))
        var at = try nft("list", "map", "ip", table, "ports_at")
        #expect(at.contains("127.0.0.1 . tcp . 9090 : \(c1) . 90"), "\(at)")

        // A clash with a published port fails the whole batch.
        let clash = #expect(throws: GockerError.self) {
            try nf.publish([PortMapping(hostPort: 7070, containerIP: c2, containerPort: 70),
                            PortMapping(hostPort: 8080, containerIP: c2, containerPort: 80)])
        }
        #expect(clash?.message == "Bind for 0.0.0.0:8080 failed: port is already allocated", "\(String(describing: clash))")
        ports = try nft("list", "map", "ip", table, "ports")
        #expect(!ports.contains("7070") && ports.contains("tcp . 8080 : \(c1) . 80"))

        // Withdrawing: with one that was never there, and twice.
        let gone = [maps[0], maps[2], PortMapping(proto: .udp, hostPort: 1111, containerIP: c2, containerPort: 11)]
        try nf.unpublish(gone)
        try nf.unpublish(gone)
        ports = try nft("list", "map", "ip", table, "ports")
        at = try nft("list", "map", "ip", table, "ports_at")
        #expect(!ports.contains("8080") && ports.contains("udp . 5353 : \(c2) . 53"), "\(ports)")
        #expect(!at.contains("9090"))

        // Many in one batch (a range): all there, then all gone.
        let many = (0..<600).map { PortMapping(hostPort: 20000 + UInt16($0), containerIP: c1, containerPort: 10000 + UInt16($0)) }
        try nf.publish(many)
        ports = try nft("list", "map", "ip", table, "ports")
        #expect(ports.contains("tcp . 20000 : \(c1) . 10000") && ports.contains("tcp . 20599 : \(c1) . 10599"))
        try nf.unpublish(many + [maps[1]])
        ports = try nft("list", "map", "ip", table, "ports")
        #expect(!ports.contains("elements"), "\(ports)")
    }

    @Test func keysAndDataAreEncodedAsTheKernelHoldsConcatenations() {
        var p = gk_nft_port(host_ip: IPv4("127.0.0.1")!.value, dest_ip: IPv4("10.1.2.3")!.value,
                            host_port: 8080, dest_port: 80, proto: 6, pad: (0, 0, 0))
        var key = [UInt8](repeating: 0xff, count: Int(GK_NFT_KEY_MAX)), data = [UInt8](repeating: 0xff, count: Int(GK_NFT_DATA_LEN))
        #expect(gk_nft_port_key(&p, 0, &key) == 8)
        #expect(key[0..<8] == [6, 0, 0, 0, 0x1f, 0x90, 0, 0])
        #expect(gk_nft_port_key(&p, 1, &key) == 12)
        #expect(key == [127, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0])
        gk_nft_port_data(&p, &data)
        #expect(data == [10, 1, 2, 3, 0, 80, 0, 0])
    }

    /// A "container" without a container: a network namespace with one end
    /// of a veth pair, busybox httpd in it, the other end playing the bridge.
    @Test func aPublishedPortAnswersOnLoopbackOnTheHost_sAddressAndByHairpin() throws {
        let table = "gk_t\(pid)_d", ns = "gkns\(pid)", host = "gkv\(pid)h", peer = "gkv\(pid)c"
        let www = "/tmp/gk-nft-www-\(pid)"
        var httpd: pid_t = 0
        defer {
            if httpd > 0 { kill(httpd, SIGKILL); var s: Int32 = 0; waitpid(httpd, &s, 0) }
            cleanUp(table: table, links: [host], namespaces: [ns])
            _ = try? Sys.removeAll(www)
        }
        let net = try freeSubnets(1)[0]
        let gw = IPv4(net.address.value + 1), c = IPv4(net.address.value + 2)
        _ = try sh(["/bin/sh", "-c", """
            set -e
            ip netns add \(ns)
            ip link add \(host) type veth peer name \(peer)
            ip link set \(peer) netns \(ns)
            ip addr add \(gw)/\(net.prefix) dev \(host)
            ip link set \(host) up
            ip -n \(ns) addr add \(c)/\(net.prefix) dev \(peer)
            ip -n \(ns) link set \(peer) up
            ip -n \(ns) link set lo up
            ip -n \(ns) route add default via \(gw)
            mkdir -p \(www)
            echo gocker-nft-\(pid) > \(www)/index.html
            """])
        let argv: [String] = ["/usr/bin/env", "ip", "netns", "exec", ns, "/bin/busybox", "httpd", "-f", "-p", "80", "-h", www]
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        // With no signal blocked (the test's threads may block some).
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        try #require(posix_spawn(&httpd, "/usr/bin/env", nil, &attr, &cargs, environ) == 0)

        let nf = try NetFilter(table: table)
        try nf.addNetwork(subnet: net, bridge: host)
        let port = try PortSpec.ephemeralPort(.tcp)
        try nf.publish([PortMapping(hostPort: port, containerIP: c, containerPort: 80)])

        // From the host through 127.0.0.1 (output DNAT, route_localnet, masquerade).
        var answer = ""
        for _ in 0..<30 {
            answer = httpGet(IPv4("127.0.0.1")!, port)
            if answer.contains("gocker-nft") { break }
            usleep(100_000)
        }
        #expect(answer.contains("gocker-nft-\(pid)"), "\(answer)")
        // From the host through one of its own addresses.
        #expect(httpGet(gw, port).contains("gocker-nft-\(pid)"))
        // From the "container" through the host's address back to itself (hairpin).
        // (busybox nc: Debian 12's static busybox wget crashes.)
        let hairpin = try sh(["/bin/sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout -s KILL 5 ip netns exec \(ns) /bin/busybox nc -w 3 \(gw) \(port) 2>&1; true"])
        #expect(hairpin.contains("gocker-nft-\(pid)"), "\(hairpin)")

        // Withdrawn: the port no longer answers.
        try nf.unpublish([PortMapping(hostPort: port, containerIP: c, containerPort: 80)])
        #expect(!httpGet(IPv4("127.0.0.1")!, port).contains("gocker-nft"))
        try nf.removeNetwork(subnet: net, bridge: host)
        #expect(try nf.exists() == false)
    }

    /// `GET /` to ip:port with a 2 s timeout: the whole answer, or "".
    func httpGet(_ ip: IPv4, _ port: UInt16) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = ip.value.bigEndian
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { return "" }
        let req = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        guard write(fd, req, req.count) == req.count else { return "" }
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
