import Foundation
import Testing

/// Bridge networks: containers get an address on a bridge of the test's
/// own, reach each other (by name on a user's network), the host reaches
/// them through the bridge, and whatever a network or a container made
/// goes with it. Traffic only between the test's containers and the host's
/// side of the test's bridges.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct NetworkTests {
    /// A network name and a /24 of 10.213.0.0/16 no other test here uses.
    static func network(_ n: Int) -> (name: String, subnet: String, prefix: String) {
        ("gkt-net\(n)-\(getpid())", "10.213.\(n).0/24", "10.213.\(n).")
    }

    func inspect(_ box: Sandbox, _ ref: String) throws -> [String: Any] {
        let r = try box.gocker(["network", "inspect", ref])
        let array = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
        return try #require(array?.first, "\(r.stderr)")
    }

    func bridge(_ box: Sandbox, _ ref: String) throws -> String {
        let options = try inspect(box, ref)["Options"] as? [String: String]
        return try #require(options?["com.docker.network.bridge.name"])
    }

    func linkExists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: "/sys/class/net/\(name)") }

    func expectRefused(_ r: Sandbox.Result, saying text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 125, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func containersOnAUserNetworkReachEachOtherByNameAndAlias() throws {
        let box = try Sandbox()
        let net = Self.network(1)
        let made = try box.gocker(["network", "create", "--subnet", net.subnet, net.name])
        #expect(made.status == 0, "\(made.stderr)")
        let br = try bridge(box, net.name)
        #expect(linkExists(br) && FileManager.default.fileExists(atPath: "/sys/class/net/\(br)/bridge"))
        #expect(try shell("ip -o -4 addr show dev \(br)").output.contains("inet \(net.prefix)1/24"))

        let web = try box.gocker(["run", "-d", "--name", "web", "--network", net.name, "--network-alias", "www",
                                  "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"])
        #expect(web.status == 0, "\(web.stderr)")
        let id = web.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let veth = "gk" + id.prefix(12)
        #expect(linkExists(veth))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/class/net/\(veth)/master"))?.hasSuffix("/" + br) == true)
        let containers = try #require(try inspect(box, net.name)["Containers"] as? [String: [String: String]])
        #expect(containers[id]?["IPv4Address"] == "\(net.prefix)2/24" && containers[id]?["Name"] == "web")

        // By name, by alias, by ping; eth0 as docker sets it up.
        let client = try box.gocker(["run", "--rm", "--network", net.name, "busybox", "sh", "-c",
                                     "wget -qO- http://web/hostname && wget -qO- http://www/hostname && ping -c1 -W2 web >/dev/null && ip -o -4 addr show eth0 && ip route"])
        #expect(client.status == 0, "\(client.stderr)")
        let lines = client.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count >= 4 && lines[0] == String(id.prefix(12)) && lines[1] == String(id.prefix(12)), "\(client.stdout)")
        #expect(client.stdout.contains("inet \(net.prefix)3/24") && client.stdout.contains("default via \(net.prefix)1 dev eth0"),
                "\(client.stdout)")
        // The host, through the bridge.
        let fromHost = try shell("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 \(net.prefix)2 80")
        #expect(fromHost.status == 0 && fromHost.output.split(whereSeparator: \.isNewline).last == id.prefix(12), "\(fromHost.output)")

        // A network with a container on it stays; its container's veth and
        // address go with the container.
        expectRefused(try box.gocker(["network", "rm", net.name]), saying: "has active endpoints")
        #expect(try box.gocker(["rm", "-f", "web"]).status == 0)
        // With its network namespace, which the kernel takes down.
        #expect(box.waitFor { !linkExists(veth) })
        #expect(try inspect(box, net.name)["Containers"] as? [String: Any] == nil
                || (try inspect(box, net.name)["Containers"] as? [String: Any])?.isEmpty == true)
        let again = try box.gocker(["run", "--rm", "--network", net.name, "busybox", "ip", "-o", "-4", "addr", "show", "eth0"])
        #expect(again.stdout.contains("inet \(net.prefix)2/24"), "the address came back: \(again.stdout)")
        let rm = try box.gocker(["network", "rm", net.name])
        #expect(rm.status == 0 && rm.stdout == net.name + "\n", "\(rm.stderr)")
        #expect(!linkExists(br))
        #expect(box.list(box.dataRoot + "/networks").filter { !$0.hasPrefix("bridge") }.isEmpty)
    }

    @Test func theDefaultNetworkGivesAnAddressButNoNames() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "-d", "--name", "srv", "busybox", "sleep", "60"]).status == 0)
        let r = try box.gocker(["run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; cat /etc/hosts; ping -c1 -W1 srv"])
        #expect(r.status != 0, "no names on the default network, as in docker: \(r.stdout)")
        let inet = try #require(r.stdout.split(separator: "\n").first { $0.contains("inet ") })
        let address = String(try #require(inet.split(separator: " ").first { $0.contains("/") }).split(separator: "/")[0])
        #expect(r.stdout.contains("\(address)\t"), "its own address in /etc/hosts: \(r.stdout)")
        let ls = try box.gocker(["network", "ls"])
        #expect(ls.stdout.hasPrefix("NETWORK ID     NAME      DRIVER    SCOPE\n"), "\(ls.stdout)")
        for row in ["bridge    bridge    local", "host      host      local", "none      null      local"] {
            #expect(ls.stdout.contains(row), "\(ls.stdout)")
        }
        let subnet = try #require(((try inspect(box, "bridge")["IPAM"] as? [String: Any])?["Config"] as? [[String: String]])?.first?["Subnet"])
        #expect(subnet.hasSuffix("/16") || subnet.hasSuffix("/20"), "one of docker's pools: \(subnet)")
        expectRefused(try box.gocker(["network", "rm", "bridge"]), saying: "bridge is a pre-defined network and cannot be removed")
        expectRefused(try box.gocker(["network", "rm", "host"]), saying: "host is a pre-defined network and cannot be removed")
        expectRefused(try box.gocker(["network", "rm", "none"]), saying: "none is a pre-defined network and cannot be removed")
        // --network container:NAME: the other's interface and address.
        let joined = try box.gocker(["run", "--rm", "--network", "container:srv", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"])
        #expect(joined.status == 0 && joined.stdout.contains("inet "), "\(joined.stderr)")
        let own = try box.gocker(["exec", "srv", "ip", "-o", "-4", "addr", "show", "eth0"])
        #expect(joined.stdout == own.stdout)
        // Its interface's counters, in stats' NET I/O (three pings of the
        // network's gateway: the host's side of the sandbox's bridge).
        let gateway = try #require(((try inspect(box, "bridge")["IPAM"] as? [String: Any])?["Config"] as? [[String: String]])?.first?["Gateway"])
        #expect(try box.gocker(["exec", "srv", "ping", "-c3", "-W2", gateway]).status == 0)
        let stats = try box.gocker(["stats", "--no-stream", "--format", "json"])
        let row = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: String])
        let io = try #require(row["NetIO"]).components(separatedBy: " / ")
        #expect(io.count == 2 && io.allSatisfy { $0 != "0B" && $0.hasSuffix("B") }, "\(row)")
        let header = try box.gocker(["stats", "--no-stream"]).stdout.split(separator: "\n").first ?? ""
        #expect(header.contains("MEM %") && header.contains("NET I/O") && header.hasSuffix("PIDS"), "\(header)")
        #expect(try box.gocker(["rm", "-f", "srv"]).status == 0)
        let br = try bridge(box, "bridge")
        // After a reboot the bridge is gone and the record stays: the next
        // container makes it again.
        #expect(try shell("ip link del \(br)").status == 0)
        let again = try box.gocker(["run", "--rm", "busybox", "ping", "-c1", "-W2", gateway])
        #expect(again.status == 0 && linkExists(br), "\(again.stderr)")
        #expect(try box.gocker(["network", "prune", "-f"]).stdout.contains("bridge"))
        #expect(!linkExists(br), "an unused default network's bridge goes with prune")
    }

    @Test func parallelRunsGetDistinctAddresses() throws {
        let box = try Sandbox()
        let net = Self.network(2)
        #expect(try box.gocker(["network", "create", "--subnet", net.subnet, net.name]).status == 0)
        // Twenty gockers at once, each keeping its container (and address).
        let starts = try (0..<20).map { _ in try box.start(["run", "-d", "--network", net.name, "busybox", "sleep", "60"]) }
        for (p, _) in starts { box.finish(p, within: 60) }
        #expect(starts.allSatisfy { $0.0.terminationStatus == 0 }, "\(starts.map { box.contents($0.outFile + ".err") })")
        let containers = try #require(try inspect(box, net.name)["Containers"] as? [String: [String: String]])
        let ips = containers.values.compactMap { $0["IPv4Address"] }
        #expect(ips.count == 20 && Set(ips).count == 20, "\(ips)")
        #expect(ips.allSatisfy { $0.hasPrefix(net.prefix) })
        let ids = starts.map { box.contents($0.outFile).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(try box.gocker(["rm", "-f"] + ids).status == 0)
        #expect(try box.gocker(["network", "rm", net.name]).status == 0)
    }

    @Test func addressesComeBackAfterAKilledGocker() throws {
        let box = try Sandbox()
        let net = Self.network(3)
        #expect(try box.gocker(["network", "create", "--subnet", net.subnet, "--ip-range", "10.213.3.128/25", net.name]).status == 0)
        // An address taken for a container that never came to be (its gocker
        // was killed before the record was written) is free again.
        let book = box.dataRoot + "/networks/\(net.name)/ipam.json"
        let r0 = try box.gocker(["run", "--rm", "--network", net.name, "busybox", "ip", "-o", "-4", "addr", "show", "eth0"])
        #expect(r0.stdout.contains("inet \(net.prefix)128/24"), "from --ip-range: \(r0.stdout)")
        var text = box.contents(book)
        text = text.replacingOccurrences(of: "\"addresses\":{}", with: "\"addresses\":{\"\(net.prefix)130\":\"\(String(repeating: "ab", count: 32))\"}")
        try text.write(toFile: book, atomically: true, encoding: .utf8)
        #expect(box.contents(book).contains("\(net.prefix)130"))
        let taken = try box.gocker(["run", "--rm", "--network", net.name, "--ip", "\(net.prefix)130", "busybox", "true"])
        #expect(taken.status == 0, "\(taken.stderr)")

        // A gocker killed while its container runs: rm -f gives the address back.
        let (p, _) = try box.start(["run", "--name", "held", "--network", net.name, "--ip", "\(net.prefix)140", "busybox", "sleep", "60"])
        #expect(box.waitFor { box.contents(book).contains("\(net.prefix)140") && box.runningState() != nil })
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        expectRefused(try box.gocker(["run", "--rm", "--network", net.name, "--ip", "\(net.prefix)140", "busybox", "true"]),
                      saying: "address \(net.prefix)140 is already in use")
        #expect(try box.gocker(["rm", "-f", "held"]).status == 0)
        #expect(!box.contents(book).contains("\(net.prefix)140"))
        #expect(try box.gocker(["run", "--rm", "--network", net.name, "--ip", "\(net.prefix)140", "busybox", "true"]).status == 0)
        #expect(try box.gocker(["network", "rm", net.name]).status == 0)
    }

    /// A book that no longer reads (power lost mid-write) is made again
    /// from the containers' records: the network goes on, no address twice.
    @Test func anAddressBookThatNoLongerReadsIsMadeAgain() throws {
        let box = try Sandbox()
        let net = Self.network(33)
        #expect(try box.gocker(["network", "create", "--subnet", net.subnet, net.name]).status == 0)
        #expect(try box.gocker(["run", "-d", "--name", "holder", "--network", net.name, "busybox", "sleep", "60"]).status == 0)
        let book = box.dataRoot + "/networks/\(net.name)/ipam.json"
        try #"{"subnet": "10.213.33.0/24", "addr"#.write(toFile: book, atomically: false, encoding: .utf8)
        let next = try box.gocker(["run", "--rm", "--network", net.name, "busybox", "ip", "-o", "-4", "addr", "show", "eth0"])
        #expect(next.status == 0 && next.stdout.contains("inet \(net.prefix)3/24"), "\(next.stdout) \(next.stderr)")
        let read = try JSONSerialization.jsonObject(with: Data(box.contents(book).utf8)) as? [String: Any]
        #expect((read?["addresses"] as? [String: String])?.keys.sorted() == ["\(net.prefix)2"], "\(box.contents(book))")
        #expect(try box.gocker(["rm", "-f", "holder"]).status == 0)
        #expect(try box.gocker(["network", "rm", net.name]).status == 0)
    }

    @Test func badNetworkInputIsRefusedAndLeavesNothing() throws {
        let box = try Sandbox()
        let net = Self.network(4)
        #expect(try box.gocker(["network", "create", "--subnet", net.subnet, net.name]).status == 0)
        let br = try bridge(box, net.name)
        expectRefused(try box.gocker(["network", "create", "--subnet", "10.213.4.0/25", net.name + "b"]), saying: "overlaps with network \(net.name)")
        expectRefused(try box.gocker(["network", "create", "--subnet", "10.213.5.1/24", net.name + "c"]),
                      saying: "it is not a network address (did you mean 10.213.5.0/24?)")
        expectRefused(try box.gocker(["network", "create", "--subnet", "10.213.6.0/24", net.name]),
                      saying: "network with name \(net.name) already exists")
        expectRefused(try box.gocker(["network", "create", "--driver", "overlay", net.name + "d"]), saying: "plugin \"overlay\" not found")
        expectRefused(try box.gocker(["network", "create", "--subnet", "10.213.7.0/24", "--gateway", "10.213.8.1", net.name + "e"]),
                      saying: "not a host address of 10.213.7.0/24")
        expectRefused(try box.gocker(["network", "create", "bridge"]), saying: "network with name bridge already exists")
        expectRefused(try box.gocker(["network", "create", "-o", "com.docker.network.bridge.name=br%d", net.name + "f"]),
                      saying: "invalid bridge name \"br%d\"")
        let bridgeID = try #require(try inspect(box, "bridge")["Id"] as? String)
        expectRefused(try box.gocker(["network", "rm", String(bridgeID.prefix(12))]), saying: "bridge is a pre-defined network and cannot be removed")
        for args in [["--network", "nosuchnet"], ["--network", net.name, "--ip", "10.213.9.5"],
                     ["--network", net.name, "--ip", "\(net.prefix)1"], ["--ip", "172.17.0.9"],
                     ["--network", net.name, "--mac-address", "zz:00"], ["--add-host", "nocolon"],
                     ["--dns", "not-an-ip"], ["--network", "host", "--ip", "\(net.prefix)9"],
                     ["--dns", "::1\nnameserver 10.6.6.6"], ["--dns-search", "a.test\nnameserver 10.6.6.6"],
                     ["--add-host", "x:1::\n10.6.6.6 y"]] {
            let r = try box.gocker(["run", "--rm"] + args + ["busybox", "true"])
            #expect(r.status == 125 && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        expectRefused(try box.gocker(["run", "--rm", "--network", "nosuchnet", "busybox", "true"]), saying: "network nosuchnet not found")
        // Taken: one container holds it.
        #expect(try box.gocker(["run", "-d", "--name", "aa", "--network", net.name, "--ip", "\(net.prefix)7", "busybox", "sleep", "60"]).status == 0)
        expectRefused(try box.gocker(["run", "--rm", "--network", net.name, "--ip", "\(net.prefix)7", "busybox", "true"]),
                      saying: "address \(net.prefix)7 is already in use")
        #expect(try box.gocker(["ps", "-aq"]).stdout.split(separator: "\n").count == 1, "only aa is left")
        #expect(try box.gocker(["rm", "-f", "aa"]).status == 0)
        #expect(box.waitFor { box.list("/sys/class/net/\(br)/brif").isEmpty }, "no veth left on the bridge")
        #expect(Set(box.list(box.dataRoot + "/networks")).isSubset(of: [net.name, "bridge"]))
        #expect(try box.gocker(["network", "rm", net.name]).status == 0)
    }

    @Test func networkConnectAndDisconnectARunningAndAStoppedContainer() throws {
        let box = try Sandbox()
        let a = Self.network(30), b = Self.network(31)
        for n in [a, b] { #expect(try box.gocker(["network", "create", "--subnet", n.subnet, n.name]).status == 0) }
        let one = try box.gocker(["run", "-d", "--name", "one", "--network", a.name, "-p", "80", "busybox",
                                  "httpd", "-f", "-p", "80", "-h", "/etc"])
        #expect(one.status == 0, "\(one.stderr)")
        let id = String(one.stdout.prefix(12))
        let two = try box.gocker(["run", "-d", "--name", "two", "--network", b.name, "--network-alias", "db", "busybox",
                                  "httpd", "-f", "-p", "80", "-h", "/etc"])
        #expect(two.status == 0, "\(two.stderr)")
        let twoID = String(two.stdout.prefix(12))
        // Two networks are kept apart.
        #expect(try box.gocker(["exec", "one", "ping", "-c1", "-W1", "\(b.prefix)2"]).status != 0)

        // Running: eth1 at once, the first network keeps the default route,
        // and names are known both ways.
        #expect(try box.gocker(["network", "connect", "--alias", "extra", b.name, "one"]).status == 0)
        let eth1 = try box.gocker(["exec", "one", "sh", "-c", "ip -o -4 addr show eth1; ip route"])
        #expect(eth1.stdout.contains("inet \(b.prefix)3/24") && eth1.stdout.contains("default via \(a.prefix)1 dev eth0"),
                "\(eth1.stdout)")
        let veth = "gk\(id)1"
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/class/net/\(veth)/master"))?
            .hasSuffix("/" + (try bridge(box, b.name))) == true)
        let byName = try box.gocker(["exec", "one", "sh", "-c", "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 5 db 80 | tail -n 1"])
        #expect(byName.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == twoID, "\(byName.stdout) \(byName.stderr)")
        #expect(try box.gocker(["exec", "two", "ping", "-c1", "-W2", "extra"]).status == 0)
        let members = try #require(try inspect(box, b.name)["Containers"] as? [String: [String: String]])
        #expect(members.values.contains { $0["Name"] == "one" && $0["IPv4Address"] == "\(b.prefix)3/24" }, "\(members)")
        expectRefused(try box.gocker(["network", "connect", b.name, "one"]), saying: "endpoint with name one already exists in network \(b.name)")

        // Leaving the first network: the second takes the default route
        // and the published port, and the first gets its address back.
        let port = try #require(Int(try box.gocker(["port", "one", "80"]).stdout.split(separator: "\n")[0].split(separator: ":")[1]))
        #expect(try box.gocker(["network", "disconnect", a.name, "one"]).status == 0)
        let after = try box.gocker(["exec", "one", "sh", "-c", "ip -o link; ip route"])
        #expect(!after.stdout.contains("eth0") && after.stdout.contains("default via \(b.prefix)1 dev eth1"), "\(after.stdout)")
        #expect((try inspect(box, a.name)["Containers"] as? [String: Any] ?? [:]).isEmpty)
        let viaHost = try shell("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | timeout -s KILL 5 busybox nc 127.0.0.1 \(port) | tail -n 1")
        #expect(viaHost.output.trimmingCharacters(in: .whitespacesAndNewlines) == id, "\(viaHost.output)")
        #expect(try box.gocker(["exec", "two", "ping", "-c1", "-W2", "one"]).status == 0, "still by name on the second")

        // Stopped: connected at its next start, both networks at once.
        #expect(try box.gocker(["stop", "-t", "0", "one"]).status == 0)
        #expect(try box.gocker(["network", "connect", a.name, "one"]).status == 0)
        #expect(try box.gocker(["start", "one"]).status == 0)
        let both = try box.gocker(["exec", "one", "sh", "-c", "ip -o -4 addr; ip route"])
        #expect(both.stdout.contains("eth0    inet \(a.prefix)2/24") && both.stdout.contains("eth1    inet \(b.prefix)3/24")
                && both.stdout.contains("default via \(b.prefix)1 dev eth1"), "\(both.stdout)")

        // Made on the default network, then connected: it learns the
        // network's names too.
        #expect(try box.gocker(["run", "-d", "--name", "late", "busybox", "sleep", "60"]).status == 0)
        #expect(try box.gocker(["network", "connect", b.name, "late"]).status == 0)
        #expect(try box.gocker(["exec", "late", "ping", "-c1", "-W2", "db"]).status == 0)
        #expect(try box.gocker(["exec", "two", "ping", "-c1", "-W2", "late"]).status == 0)
        #expect(try box.gocker(["rm", "-f", "late"]).status == 0)

        // Bad input: one line, nothing changed.
        #expect(try box.gocker(["run", "-d", "--name", "solo", "--network", "none", "busybox", "sleep", "60"]).status == 0)
        expectRefused(try box.gocker(["network", "connect", a.name, "solo"]), saying: "cannot be connected to another network")
        expectRefused(try box.gocker(["network", "connect", "nosuchnet", "one"]), saying: "network nosuchnet not found")
        expectRefused(try box.gocker(["network", "connect", "--ip", "10.213.99.9", a.name, "two"]), saying: "not a free host address")
        expectRefused(try box.gocker(["network", "connect", "--ip", "\(a.prefix)2", a.name, "two"]), saying: "already in use")
        expectRefused(try box.gocker(["network", "disconnect", a.name, "two"]), saying: "is not connected to network \(a.name)")
        expectRefused(try box.gocker(["network", "connect", "host", "two"]), saying: "connected to host network")
        #expect(try box.gocker(["exec", "two", "ip", "-o", "link"]).stdout.split(separator: "\n").count == 2, "lo and eth0 only")
        #expect((try inspect(box, a.name)["Containers"] as? [String: Any] ?? [:]).count == 1)

        for c in ["one", "two", "solo"] { #expect(try box.gocker(["rm", "-f", c]).status == 0) }
        for n in [a, b] {
            let br = try bridge(box, n.name)
            #expect(box.waitFor { box.list("/sys/class/net/\(br)/brif").isEmpty }, "no veth left on \(br)")
            #expect(try box.gocker(["network", "rm", n.name]).status == 0)
        }
    }

    @Test func resolvConfAndHostsAsDockerWritesThem() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--dns", "10.213.0.53", "--dns-search", "example.test", "--dns-option", "ndots:2",
                                "--add-host", "db.local:10.213.0.9", "busybox", "cat", "/etc/resolv.conf", "/etc/hosts"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("search example.test\nnameserver 10.213.0.53\noptions ndots:2\n"), "\(r.stdout)")
        #expect(r.stdout.contains("10.213.0.9\tdb.local\n"), "\(r.stdout)")
        let host = try box.gocker(["run", "--rm", "--network", "host", "busybox", "cat", "/etc/resolv.conf"])
        #expect(host.stdout == box.contents("/etc/resolv.conf"), "the host's network: the host's file")
    }
}

/// Published ports and outside access. "Outside" is a network namespace
/// the test makes and routes to over a veth pair of its own (10.214.N.0/30):
/// nothing leaves the machine.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct PublishedPortTests {
    /// An outside namespace with `busybox httpd` answering
    /// /cgi-bin/ip with the address a request came from.
    final class Outside {
        let ns: String, hostEnd: String, dir: String
        let hostAddress: String, address: String

        init(_ n: Int) throws {
            ns = "gkt-out\(n)-\(getpid())"
            hostEnd = "gkto\(n)\(getpid() % 100000)"
            hostAddress = "10.214.\(n).1"
            address = "10.214.\(n).2"
            dir = "/tmp/gkt-out\(n)-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir + "/cgi-bin", withIntermediateDirectories: true)
            try "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n"
                .write(toFile: dir + "/cgi-bin/ip", atomically: true, encoding: .utf8)
            chmod(dir + "/cgi-bin/ip", 0o755)
            let setup = """
                ip netns add \(ns) && ip link add \(hostEnd) type veth peer name eth0 netns \(ns) \
                && ip addr add \(hostAddress)/30 dev \(hostEnd) && ip link set \(hostEnd) up \
                && ip netns exec \(ns) ip addr add \(address)/30 dev eth0 && ip netns exec \(ns) ip link set eth0 up \
                && ip netns exec \(ns) ip link set lo up
                """
            let r = try shell(setup)
            guard r.status == 0 else {
                cleanUp()
                throw POSIXError(.EIO)
            }
            // In the foreground, a child of this test (killed at the end),
            // holding no pipe of the test's.
            server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            server.arguments = ["netns", "exec", ns, "busybox", "httpd", "-f", "-p", address + ":8000", "-h", dir]
            server.standardInput = FileHandle.nullDevice
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try server.run()
            usleep(200_000)
        }
        let server = Process()

        func cleanUp() {
            if server.isRunning { kill(server.processIdentifier, SIGKILL) }
            _ = try? shell("ip link del \(hostEnd); ip netns del \(ns); rm -rf \(dir)")
        }

        deinit { cleanUp() }
    }

    func get(_ address: String, _ port: Int, path: String = "/hostname") throws -> String {
        let r = try shell("printf 'GET \(path) HTTP/1.0\\r\\n\\r\\n' | timeout -s KILL 5 busybox nc \(address) \(port)")
        return String(r.output.split(whereSeparator: \.isNewline).last ?? "")
    }

    @Test func aPublishedPortAnswersOnTheHostsAddressesAndByHairpin() throws {
        let box = try Sandbox()
        let outside = try Outside(1)
        let web = try box.gocker(["run", "-d", "--name", "web", "-p", "80", "-p", "127.0.0.1::80/tcp", "busybox",
                                  "httpd", "-f", "-p", "80", "-h", "/etc"])
        #expect(web.status == 0, "\(web.stderr)")
        let id = String(web.stdout.prefix(12))
        let lines = try box.gocker(["port", "web"]).stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2 && lines[0].hasPrefix("80/tcp -> 0.0.0.0:") && lines[1].hasPrefix("80/tcp -> 127.0.0.1:"), "\(lines)")
        let port = try #require(Int(try box.gocker(["port", "web", "80"]).stdout.split(separator: "\n")[0].split(separator: ":")[1]))
        let local = try #require(Int(lines[1].split(separator: ":").last ?? ""))
        #expect(try box.gocker(["ps"]).stdout.contains("0.0.0.0:\(port)->80/tcp, 127.0.0.1:\(local)->80/tcp"))
        // The host, on 127.0.0.1 and on an address of its own.
        #expect(try get("127.0.0.1", port) == id)
        #expect(try get(outside.hostAddress, port) == id)
        #expect(try get("127.0.0.1", local) == id)
        // Another container, through the host's address (hairpin).
        let hairpin = try box.gocker(["run", "--rm", "busybox", "sh", "-c",
                                      "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 5 \(outside.hostAddress) \(port) | tail -n 1"])
        #expect(hairpin.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == id, "\(hairpin.stdout) \(hairpin.stderr)")

        // Taken: by another container, and on the host.
        let taken = try box.gocker(["run", "--rm", "-p", "\(port):80", "busybox", "true"])
        #expect(taken.status == 125 && taken.stderr == "gocker: error: Bind for 0.0.0.0:\(port) failed: port is already allocated\n",
                "\(taken.stderr)")
        for (args, text) in [(["-p", "8000-8010:80-85"], "invalid ranges specified for container and host Ports"),
                             (["-p", "80/sctpx"], "invalid proto: sctpx"), (["--network", "host", "-p", "80"], "-p needs a bridge network")] {
            let r = try box.gocker(["run", "--rm"] + args + ["busybox", "true"])
            #expect(r.status == 125 && r.stderr.contains(text) && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        #expect(try box.gocker(["ps", "-aq"]).stdout.split(separator: "\n").count == 1, "only web")

        // Gone with the container, also when prune removes it.
        #expect(try box.gocker(["run", "--name", "once", "-p", "80", "busybox", "true"]).status == 0)
        let once = try #require(Int(try box.gocker(["port", "once", "80"]).stdout.split(separator: ":").last?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        #expect(try shell("nft list map ip gocker ports").output.contains(". \(once) :"))
        #expect(try box.gocker(["container", "prune", "-f"]).status == 0)
        #expect(!(try shell("nft list map ip gocker ports").output.contains(". \(once) :")))
        #expect(try box.gocker(["rm", "-f", "web"]).status == 0)
        let map = try shell("nft list map ip gocker ports").output
        #expect(!map.contains(". \(port) :"), "\(map)")
        #expect(try get("127.0.0.1", port) != id)
        box.expectNothingLeft()
    }

    @Test func publishAllPublishesWhatTheImageExposes() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--name", "base", "busybox", "true"]).status == 0)
        let commit = try box.gocker(["commit", "-c", "EXPOSE 80 53/udp", "base", "exposed:1"])
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(try box.gocker(["rm", "base"]).status == 0)
        let run = try box.gocker(["run", "-d", "--name", "pub", "-P", "exposed:1", "httpd", "-f", "-p", "80", "-h", "/etc"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = try box.gocker(["port", "pub"]).stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2 && lines[0].hasPrefix("53/udp -> 0.0.0.0:") && lines[1].hasPrefix("80/tcp -> 0.0.0.0:"), "\(lines)")
        let port = try #require(Int(lines[1].split(separator: ":").last ?? ""))
        #expect(try get("127.0.0.1", port) == String(run.stdout.prefix(12)))
        let refused = try box.gocker(["run", "--rm", "-P", "--network", "none", "exposed:1", "true"])
        #expect(refused.status == 125 && refused.stderr.contains("-P needs a bridge network"), "\(refused.stderr)")
        let bad = try box.gocker(["commit", "-c", "EXPOSE 80/sctp", "pub", "exposed:2"])
        #expect(bad.status == 125 && bad.stderr.contains("is not PORT[/tcp|udp]"), "\(bad.stderr)")
        #expect(try box.gocker(["rm", "-f", "pub"]).status == 0)
        box.expectNothingLeft()
    }

    /// A reboot takes a network's bridge and its containers' port map
    /// elements, while their records stay: the next start makes both again.
    @Test func afterARebootAContainerStartsAgainWithItsPorts() throws {
        let box = try Sandbox()
        let net = "gkt-rb-\(getpid())"
        #expect(try box.gocker(["network", "create", "--subnet", "10.213.32.0/24", net]).status == 0)
        let web = try box.gocker(["run", "-d", "--name", "web", "--network", net, "-p", "80", "busybox",
                                  "httpd", "-f", "-p", "80", "-h", "/etc"])
        #expect(web.status == 0, "\(web.stderr)")
        let id = String(web.stdout.prefix(12))
        let port = try #require(Int(try box.gocker(["port", "web", "80"]).stdout.split(separator: "\n")[0].split(separator: ":")[1]))
        #expect(try get("127.0.0.1", port) == id)
        #expect(try box.gocker(["stop", "-t", "0", "web"]).status == 0)
        let inspect = try box.gocker(["network", "inspect", net])
        let object = (try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]])?.first
        let br = try #require((object?["Options"] as? [String: String])?["com.docker.network.bridge.name"])
        let reboot = try shell("ip link del \(br) && nft delete element ip gocker ports '{ tcp . \(port) }'")
        #expect(reboot.status == 0, "\(reboot.output)")
        let start = try box.gocker(["start", "web"])
        #expect(start.status == 0, "\(start.stderr)")
        #expect(FileManager.default.fileExists(atPath: "/sys/class/net/\(br)/bridge"))
        // httpd listens a moment after `start` returns (on a loaded machine).
        _ = box.waitFor(5) { (try? get("127.0.0.1", port)) == id }
        #expect(try get("127.0.0.1", port) == id)
        #expect(try box.gocker(["rm", "-f", "web"]).status == 0)
        #expect(try box.gocker(["network", "rm", net]).status == 0)
        box.expectNothingLeft()
    }

    @Test func outsideAccessIsMasqueradedAndInternalNetworksHaveNone() throws {
        let box = try Sandbox()
        let outside = try Outside(2)
        let seen = try box.gocker(["run", "--rm", "busybox", "timeout", "5", "wget", "-qO-", "http://\(outside.address):8000/cgi-bin/ip"])
        #expect(seen.status == 0 && seen.stdout == outside.hostAddress + "\n", "the host's address: \(seen.stdout) \(seen.stderr)")

        let net = "gkt-int-\(getpid())"
        #expect(try box.gocker(["network", "create", "--internal", "--subnet", "10.213.20.0/24", net]).status == 0)
        #expect(try box.gocker(["run", "-d", "--name", "peer", "--network", net, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]).status == 0)
        let inside = try box.gocker(["run", "--rm", "--network", net, "busybox", "sh", "-c",
                                     "timeout 3 wget -qO- http://peer/hostname && ! timeout 3 wget -qO- http://\(outside.address):8000/cgi-bin/ip"])
        #expect(inside.status == 0, "reaches its peer, not the outside: \(inside.stdout) \(inside.stderr)")
        let inspect = try box.gocker(["network", "inspect", net]).stdout
        #expect(inspect.contains("\"Internal\": true"))
        #expect(try box.gocker(["rm", "-f", "peer"]).status == 0)
        #expect(try box.gocker(["network", "rm", net]).status == 0)
        box.expectNothingLeft()
    }
}
