import CGockerCore
import Glibc
import GockerCore
import Testing
@testable import GockerRuntime

/// csrc/netlink.c against the real kernel (as root): bridges, veth pairs
/// into a container's network namespace, and what is left after a failure.
/// Every link a test makes has a name of its own ("gkt" and the pid) and a
/// subnet of its own, and is deleted on the way out, also on failure.
@Suite(.serialized)
struct NetlinkTests {
    /// A name unique to this process: "gkt<pid><suffix>" (< 16 bytes).
    static func name(_ suffix: String) -> String { "gkt\(getpid() % 100_000)\(suffix)" }

    /// 10.x.y.0/24 picked from the pid; `host` the last byte.
    static func address(_ host: UInt32) -> IPv4 {
        let pid = UInt32(getpid())
        return IPv4(10 << 24 | (200 + pid % 50) << 16 | (pid / 50 % 250) << 8 | host)
    }

    /// The command's exit status and what it wrote on stdout.
    @discardableResult
    static func sh(_ command: String) -> (status: Int32, out: String) {
        guard let pipe = popen(command + " 2>/dev/null", "r") else { return (-1, "") }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, pipe)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        let status = pclose(pipe)
        return (status == -1 ? -1 : (status >> 8) & 0xff, String(decoding: out, as: UTF8.self))
    }

    static func read(_ path: String) -> String? {
        (try? Sys.readText(path))?.trimmingWhitespace
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// This thread's network namespace, as /proc names it ("net:[...]").
    static func threadNamespace() -> String {
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { readlink("/proc/thread-self/ns/net", $0.baseAddress!, 63) }
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
    }

    /// A new network namespace, made on a thread of its own that ends
    /// right after (as StartAhead does): only the descriptor holds it.
    static func newNamespace() throws -> Int32 {
        let fd = Background { gk_new_netns() }.value()
        try #require(fd >= 0, "gk_new_netns: \(fd)")
        return fd
    }

    /// `command` run inside the namespace of this process's descriptor `ns`.
    static func inside(_ ns: Int32, _ command: String) -> (status: Int32, out: String) {
        sh("nsenter --net=/proc/\(getpid())/fd/\(ns) \(command)")
    }

    static func bridgeUp(_ name: String, _ addr: IPv4?, _ prefix: UInt32 = 24, mtu: UInt32 = 0) -> Int32 {
        gk_bridge_up(name, addr?.value.bigEndian ?? 0, prefix, mtu)
    }

    static func attach(_ ns: Int32, bridge: String, host: String, peer: String = "eth0",
                       mac: [UInt8] = [0x02, 0x42, 0x0a, 0x01, 0x02, 0x03], mtu: UInt32 = 0,
                       addr: IPv4, prefix: UInt32 = 24, gateway: IPv4?) -> Int32 {
        bridge.withCString { b in
            host.withCString { h in
                peer.withCString { p in
                    var v = gk_veth()
                    v.bridge = b
                    v.host_name = h
                    v.peer_name = p
                    v.mac = (mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
                    v.mtu = mtu
                    v.addr = addr.value.bigEndian
                    v.prefix = prefix
                    v.gateway = gateway?.value.bigEndian ?? 0
                    return gk_veth_attach(ns, &v)
                }
            }
        }
    }

    /// Waits up to `seconds` for `done`.
    static func eventually(_ seconds: Double, _ done: () -> Bool) -> Bool {
        for _ in 0..<Int(seconds * 50) {
            if done() { return true }
            usleep(20_000)
        }
        return done()
    }

    @Test func aBridgeIsMadeOnceAndALinkOfItsNameThatIsNotABridgeIsRefused() throws {
        let br = Self.name("b"), other = Self.name("o")
        defer {
            _ = gk_link_delete(br)
            Self.sh("ip link del \(other)")
        }
        let gateway = Self.address(1)
        let index = Self.bridgeUp(br, gateway, mtu: 1400)
        try #require(index > 0, "gk_bridge_up: \(index)")
        #expect(Self.exists("/sys/class/net/\(br)/bridge"))
        #expect(Self.read("/sys/class/net/\(br)/ifindex") == "\(index)")
        #expect(Self.read("/sys/class/net/\(br)/mtu") == "1400")
        let flags = UInt32(Self.read("/sys/class/net/\(br)/flags")?.dropFirst(2) ?? "", radix: 16) ?? 0
        #expect(flags & 1 != 0, "up")
        let inet = "inet \(gateway)/24 brd \(Self.address(255))"
        #expect(Self.sh("ip -o -4 addr show dev \(br)").out.contains(inet))

        // Again: the same bridge, the address once.
        #expect(Self.bridgeUp(br, gateway, mtu: 1400) == index)
        #expect(Self.bridgeUp(br, nil) == index)
        let lines = Self.sh("ip -o -4 addr show dev \(br)").out.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.contains(inet) == true, "\(lines)")
        #expect(gk_link_index(br) == index)

        // A new MTU on the bridge that is there.
        #expect(Self.bridgeUp(br, gateway, mtu: 1300) == index)
        #expect(Self.read("/sys/class/net/\(br)/mtu") == "1300")

        try #require(Self.sh("ip link add \(other) type veth peer name \(other)p").status == 0)
        #expect(Self.bridgeUp(other, nil) == -EEXIST)
        #expect(!Self.exists("/sys/class/net/\(other)/bridge"))

        #expect(gk_link_delete(br) == 0)
        #expect(!Self.exists("/sys/class/net/\(br)"))
        #expect(gk_link_delete(br) == -ENODEV)
        #expect(gk_link_index(br) == -ENODEV)
        #expect(gk_link_index(String(repeating: "x", count: 16)) == -EINVAL)
    }

    @Test func aVethPairJoinsTheBridgeAndTheContainerReachesIt() throws {
        let br = Self.name("b"), host = Self.name("v")
        defer {
            _ = gk_link_delete(host)
            _ = gk_link_delete(br)
        }
        let gateway = Self.address(1), addr = Self.address(2)
        try #require(Self.bridgeUp(br, gateway, mtu: 1400) > 0)
        var ns = try Self.newNamespace()
        defer { if ns >= 0 { close(ns) } }

        let before = Self.threadNamespace()
        let mac: [UInt8] = [0x02, 0x42, 0x0a, 0xc8, 0x00, 0x02]
        try #require(Self.attach(ns, bridge: br, host: host, mac: mac, addr: addr, gateway: gateway) == 0)
        #expect(Self.threadNamespace() == before)

        // The host end: on the bridge, hairpin, up, the bridge's MTU.
        #expect(Self.sh("readlink /sys/class/net/\(host)/master").out.hasSuffix("/\(br)\n"))
        #expect(Self.read("/sys/class/net/\(host)/brport/hairpin_mode") == "1")
        #expect(Self.read("/sys/class/net/\(host)/mtu") == "1400")
        #expect(Self.sh("ip -o link show dev \(host)").out.contains(",UP"))

        // The container's end.
        let link = Self.inside(ns, "ip -o link show dev eth0").out
        #expect(link.contains("mtu 1400") && link.contains("link/ether 02:42:0a:c8:00:02") && link.contains(",UP"), "\(link)")
        #expect(Self.inside(ns, "ip -o -4 addr show dev eth0").out.contains("inet \(addr)/24 brd \(Self.address(255))"))
        #expect(Self.inside(ns, "ip route show default").out.contains("default via \(gateway) dev eth0"))
        #expect(Self.inside(ns, "ip -o link show dev lo").out.contains(",UP"))

        // Traffic from the host over the bridge.
        #expect(Self.sh("busybox ping -c1 -W2 \(addr)").status == 0)

        // A default route put back (as `network disconnect` of a first
        // network does for the next one).
        #expect(Self.inside(ns, "ip route del default").status == 0)
        #expect(gk_default_route(ns, "eth0", gateway.value.bigEndian) == 0)
        #expect(Self.inside(ns, "ip route show default").out.contains("default via \(gateway) dev eth0"))
        #expect(gk_default_route(ns, "eth0", gateway.value.bigEndian) == -EEXIST)
        #expect(gk_default_route(ns, "eth9", gateway.value.bigEndian) == -ENODEV)
        #expect(Self.threadNamespace() == before)

        // Nothing holds the namespace once its descriptor is closed: the
        // pair goes with it.
        close(ns)
        ns = -1
        #expect(Self.eventually(10) { !Self.exists("/sys/class/net/\(host)") }, "host end still there")
    }

    /// Made aside, for a thread that goes on with other work: the thread
    /// is back in its own namespace, and the one returned is new, with lo
    /// up.
    @Test func aNamespaceMadeAsideLeavesTheThreadWhereItWas() throws {
        let (fd, before, after) = Background { () -> (Int32, String, String) in
            let before = Self.threadNamespace()
            let fd = gk_new_netns_aside()
            return (fd, before, Self.threadNamespace())
        }.value()
        try #require(fd >= 0, "gk_new_netns_aside: \(fd)")
        defer { close(fd) }
        #expect(after == before)
        var made = stat(), mine = stat()
        #expect(fstat(fd, &made) == 0 && stat("/proc/thread-self/ns/net", &mine) == 0)
        #expect(made.st_ino != mine.st_ino, "a namespace of its own")
        #expect(Self.inside(fd, "ip -o link show lo").out.contains(",UP"))
    }

    @Test func attachWorksFromAThreadInAnotherNamespace() throws {
        let br = Self.name("b"), host = Self.name("w")
        defer {
            _ = gk_link_delete(host)
            _ = gk_link_delete(br)
        }
        try #require(Self.bridgeUp(br, Self.address(1)) > 0)
        // The thread unshares, attaches into its own namespace, and is in it
        // still afterwards; the host end is in the main thread's.
        let (r, same, links) = Background { () -> (Int32, Bool, String) in
            let ns = gk_new_netns()
            guard ns >= 0 else { return (ns, false, "") }
            defer { close(ns) }
            let before = Self.threadNamespace()
            let r = Self.attach(ns, bridge: br, host: host, addr: Self.address(3), gateway: Self.address(1))
            let links = (try? Sys.readText("/proc/thread-self/net/dev")) ?? ""
            return (r, Self.threadNamespace() == before, links)
        }.value()
        #expect(r == 0)
        #expect(same, "the thread's namespace changed")
        #expect(links.contains("eth0:") && !links.contains("\(host):"), "\(links)")
        #expect(Self.exists("/sys/class/net/\(host)/brport"))
    }

    @Test func aFailedAttachLeavesNoVethBehind() throws {
        let br = Self.name("b"), host = Self.name("f"), taken = Self.name("t")
        defer {
            _ = gk_link_delete(host)
            Self.sh("ip link del \(taken)")
            _ = gk_link_delete(br)
        }
        let ns = try Self.newNamespace()
        defer { close(ns) }
        let gateway = Self.address(1)

        // No such bridge.
        #expect(Self.attach(ns, bridge: br, host: host, addr: Self.address(4), gateway: gateway) == -ENODEV)
        #expect(!Self.exists("/sys/class/net/\(host)"))
        try #require(Self.bridgeUp(br, gateway) > 0)

        // The host end's name is taken: that link stays as it was.
        try #require(Self.sh("ip link add \(taken) type veth peer name \(taken)p").status == 0)
        #expect(Self.attach(ns, bridge: br, host: taken, addr: Self.address(4), gateway: gateway) == -EEXIST)
        #expect(Self.exists("/sys/class/net/\(taken)") && !Self.exists("/sys/class/net/\(taken)/master"))

        // Made, then the route fails (a gateway outside the subnet): the pair
        // is deleted.
        let outside = IPv4(gateway.value ^ 0x8000)
        #expect(Self.attach(ns, bridge: br, host: host, addr: Self.address(4), gateway: outside) == -ENETUNREACH)
        #expect(!Self.exists("/sys/class/net/\(host)"))
        #expect(Self.inside(ns, "ip link show dev eth0").status != 0, "no eth0 left")

        // The peer's name taken in the container (a second eth0).
        try #require(Self.attach(ns, bridge: br, host: host, addr: Self.address(4), gateway: gateway) == 0)
        let second = Self.name("g")
        defer { _ = gk_link_delete(second) }
        #expect(Self.attach(ns, bridge: br, host: second, addr: Self.address(5), gateway: gateway) == -EEXIST)
        #expect(!Self.exists("/sys/class/net/\(second)"))
        #expect(Self.exists("/sys/class/net/\(host)"))
        // Bad names are refused before anything is made.
        #expect(Self.attach(ns, bridge: br, host: "", addr: Self.address(6), gateway: gateway) == -EINVAL)
        #expect(Self.attach(ns, bridge: br, host: String(repeating: "v", count: 16), addr: Self.address(6), gateway: gateway) == -EINVAL)
    }

    /// Not an assertion on time: prints the median of gk_veth_attach, each
    /// into a fresh namespace (made beforehand, as StartAhead does).
    @Test func attachTimes() throws {
        let br = Self.name("b")
        let runs = 50
        var names: [String] = []
        var namespaces: [Int32] = []
        defer {
            for name in names { _ = gk_link_delete(name) }
            for ns in namespaces { close(ns) }
            _ = gk_link_delete(br)
        }
        try #require(Self.bridgeUp(br, Self.address(1)) > 0)
        for _ in 0..<runs { namespaces.append(try Self.newNamespace()) }
        var times: [Double] = []
        for i in 0..<runs {
            let host = Self.name("m\(i)")
            var t0 = timespec(), t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            let r = Self.attach(namespaces[i], bridge: br, host: host, addr: Self.address(UInt32(10 + i)), gateway: Self.address(1))
            clock_gettime(CLOCK_MONOTONIC, &t1)
            try #require(r == 0, "attach \(i): \(r)")
            names.append(host)
            times.append(Double(t1.tv_sec - t0.tv_sec) * 1e3 + Double(t1.tv_nsec - t0.tv_nsec) / 1e6)
        }
        times.sort()
        print("gk_veth_attach over \(runs) runs: median \(times[runs / 2]) ms, min \(times[0]), max \(times[runs - 1])")
    }
}

private extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.last, c == "\n" || c == " " { s = s.dropLast() }
        return String(s)
    }
}
