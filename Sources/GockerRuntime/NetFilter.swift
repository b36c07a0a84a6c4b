import CGockerCore
import Glibc
import GockerCore

/// gocker's nftables: outside access by masquerade, published ports by
/// DNAT, and the isolation of networks, all in one table of gocker's own
/// (`ip gocker`; a test passes a name of its own). The table holds no rule
/// that names a network: the rules are fixed and read sets and maps, so a
/// network or a published port is an element, never a rule.
///
///     set masq     ipv4_addr, interval  subnets of networks that are not --internal
///     set subnets  ipv4_addr, interval  every gocker subnet
///     set bridges  ifname               every gocker bridge
///     set same     ifname . ifname      "br" . "br" for every bridge
///     set internal ifname               bridges of --internal networks
///     map ports    inet_proto . inet_service : ipv4_addr . inet_service
///                  a port published on every address of the host
///     map ports_at ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
///                  a port published on one address of the host
///
/// Chains (`ruleset` below is the exact text):
/// - prerouting (nat, dstnat) and output (nat, -100): a packet for one of
///   the host's own addresses (`fib daddr type local`) is DNATed through
///   `ports_at`, then `ports`. In output too, so that the host reaches a
///   published port on 127.0.0.1 and on its own addresses.
/// - postrouting (nat, srcnat): a masq subnet leaving by anything but a
///   gocker bridge is masqueraded (outside access). DNATed traffic going
///   onto a bridge is masqueraded when it came from 127.0.0.0/8 (the host
///   through 127.0.0.1, which also needs route_localnet on the bridge) or
///   from a gocker subnet (hairpin: a container through the host's address;
///   without it the answer would go straight back, bypassing the NAT).
/// - forward (filter): a bridge to itself passes; an --internal bridge
///   reaches nothing else and nothing else reaches it; DNATed traffic (a
///   published port) passes; one bridge to another is dropped (docker's
///   isolation of networks).
///
/// With br_netfilter (bridge-nf-call-iptables = 1, as here) traffic bridged
/// between two containers of one network also passes these ip hooks, with
/// the bridge as both input and output interface: `same` lets it through
/// forward, and postrouting's `oifname != @bridges` leaves it unmasqueraded.
///
/// Networks are added and removed by one `nft -f -` transaction each (at
/// `network create`/`rm`, off the start path): it makes the table, chains,
/// sets and maps when absent (`add` is idempotent; each chain is flushed and
/// its rules laid again in the same transaction, so they are always exactly
/// these), then adds the network's elements. Removal adds each element then
/// deletes it in one transaction, so it works whether the element is there
/// or not. Callers serialize network changes (the network store's lock):
/// the table is deleted when no bridge is left, which is checked apart.
///
/// Published ports go over nf_tables netlink from gocker itself (csrc/
/// nftables.c): a container start runs no child process.
public struct NetFilter: Sendable {
    public let table: String

    public static let defaultTable = "gocker"

    public init(table: String = NetFilter.defaultTable) throws(GockerError) {
        guard !table.isEmpty, table.count <= 32,
              table.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
              table.first!.isLetter else {
            throw GockerError(.invalidArgument, "invalid nftables table name \"\(table)\": letters, digits and _ only, starting with a letter")
        }
        self.table = table
    }

    /// The table with its sets, maps and chains, as one transaction that
    /// makes what is missing and lays every chain's rules anew.
    public var ruleset: String {
        let t = "ip \(table)"
        return """
        add table \(t)
        add set \(t) masq { type ipv4_addr; flags interval; }
        add set \(t) subnets { type ipv4_addr; flags interval; }
        add set \(t) bridges { type ifname; }
        add set \(t) same { type ifname . ifname; }
        add set \(t) internal { type ifname; }
        add map \(t) ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
        add map \(t) ports_at { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
        add chain \(t) published
        add chain \(t) prerouting { type nat hook prerouting priority dstnat; policy accept; }
        add chain \(t) output { type nat hook output priority -100; policy accept; }
        add chain \(t) postrouting { type nat hook postrouting priority srcnat; policy accept; }
        add chain \(t) forward { type filter hook forward priority filter; policy accept; }
        flush chain \(t) published
        flush chain \(t) prerouting
        flush chain \(t) output
        flush chain \(t) postrouting
        flush chain \(t) forward
        add rule \(t) published dnat ip to ip daddr . meta l4proto . th dport map @ports_at
        add rule \(t) published dnat ip to meta l4proto . th dport map @ports
        add rule \(t) prerouting fib daddr type local jump published
        add rule \(t) output fib daddr type local jump published
        add rule \(t) postrouting ip saddr @masq oifname != @bridges masquerade
        add rule \(t) postrouting ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade
        add rule \(t) postrouting ct status dnat oifname @bridges ip saddr @subnets masquerade
        add rule \(t) forward iifname . oifname @same accept
        add rule \(t) forward iifname @internal drop
        add rule \(t) forward oifname @internal drop
        add rule \(t) forward ct status dnat accept
        add rule \(t) forward iifname @bridges oifname @bridges drop

        """
    }

    /// The elements of one network, as `add element` lines.
    func elements(subnet: IPv4Subnet, bridge: String, internal isInternal: Bool) -> [String] {
        let t = "ip \(table)"
        var lines = [
            "add element \(t) subnets { \(subnet) }",
            "add element \(t) bridges { \"\(bridge)\" }",
            "add element \(t) same { \"\(bridge)\" . \"\(bridge)\" }",
        ]
        lines.append(isInternal ? "add element \(t) internal { \"\(bridge)\" }" : "add element \(t) masq { \(subnet) }")
        return lines
    }

    static func checkBridge(_ bridge: String) throws(GockerError) {
        guard !bridge.isEmpty, bridge.utf8.count < 16, bridge != ".", bridge != "..",
              bridge.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
            throw GockerError(.invalidArgument, "invalid bridge name \"\(bridge)\": up to 15 letters, digits, '_', '.' or '-'")
        }
    }

    /// Makes the table when absent and adds a network: its subnet, its
    /// bridge (which must exist), masquerade unless `internal`. Then turns
    /// on net.ipv4.ip_forward and the bridge's route_localnet (127.0.0.1 of
    /// the host DNATed onto the bridge). On failure nothing is left added.
    public func addNetwork(subnet: IPv4Subnet, bridge: String, internal isInternal: Bool = false) throws(GockerError) {
        try Self.checkBridge(bridge)
        let what = "add network \(subnet) on \(bridge) to nftables table ip \(table)"
        guard Sys.isDirectory("/proc/sys/net/ipv4/conf/\(bridge)") else {
            throw GockerError(.notFound, "\(what): no interface \(bridge) (no /proc/sys/net/ipv4/conf/\(bridge)/route_localnet)")
        }
        try Self.nft(ruleset + elements(subnet: subnet, bridge: bridge, internal: isInternal).joined(separator: "\n") + "\n", what: what)
        do {
            try Self.sysctl("net/ipv4/ip_forward", "1")
            try Self.sysctl("net/ipv4/conf/\(bridge)/route_localnet", "1")
        } catch {
            try? removeNetwork(subnet: subnet, bridge: bridge)
            throw GockerError(.system, what, cause: error)
        }
    }

    /// Removes a network's elements, whether they are there or not; the
    /// whole table goes when no bridge is left.
    public func removeNetwork(subnet: IPv4Subnet, bridge: String) throws(GockerError) {
        try Self.checkBridge(bridge)
        let what = "remove network \(subnet) on \(bridge) from nftables table ip \(table)"
        guard try exists() else { return }
        var script = ruleset
        // Each element once (an interval set refuses a second add after a
        // delete in one transaction), added first so that the deletion
        // finds it: idempotent.
        let lines = elements(subnet: subnet, bridge: bridge, internal: false)
            + elements(subnet: subnet, bridge: bridge, internal: true).suffix(1)
        for line in lines {
            script += line + "\n" + line.replacing("add element", with: "delete element", maxReplacements: 1) + "\n"
        }
        try Self.nft(script, what: what)
        if try Self.nft("list set ip \(table) bridges\n", what: "list the bridges of nftables table ip \(table)", json: true)
            .contains("\"elem\"") == false {
            try Self.nft("delete table ip \(table)\n", what: "delete nftables table ip \(table)")
        }
    }

    /// Whether the table exists.
    public func exists() throws(GockerError) -> Bool {
        let r = try Self.run(["list", "table", "ip", table], input: nil)
        return r.status == 0
    }

    // MARK: published ports, over netlink

    /// Publishes `mappings` in one transaction: all or none.
    public func publish(_ mappings: [PortMapping]) throws(GockerError) {
        try portElements(mappings, add: true)
    }

    /// Withdraws `mappings` in one transaction; one that is not published
    /// (or a table that is gone) is not an error.
    public func unpublish(_ mappings: [PortMapping]) throws(GockerError) {
        try portElements(mappings, add: false)
    }

    func portElements(_ mappings: [PortMapping], add: Bool) throws(GockerError) {
        guard !mappings.isEmpty else { return }
        let elems = mappings.map { m in
            gk_nft_port(host_ip: m.hostIP?.value ?? 0, dest_ip: m.containerIP.value, host_port: m.hostPort,
                        dest_port: m.containerPort, proto: m.proto.number, pad: (0, 0, 0))
        }
        var failed = -1
        let r = elems.withUnsafeBufferPointer { gk_nft_port_elements(table, "ports", "ports_at", add ? 1 : 0, $0.baseAddress, $0.count, &failed) }
        guard r < 0 else { return }
        let verb = add ? "publish" : "unpublish"
        let e = -r
        guard failed >= 0, failed < mappings.count else {
            throw GockerError(.system, "\(verb) ports in nftables table ip \(table): netlink: \(errnoText(e))")
        }
        let m = mappings[failed]
        let port = "\(m.hostIP?.description ?? "0.0.0.0"):\(m.hostPort)/\(m.proto.rawValue)"
        switch (add, e) {
        case (true, EBUSY), (true, EEXIST):
            // docker's words: another container publishes it.
            throw GockerError(.alreadyExists, "Bind for \(m.hostIP?.description ?? "0.0.0.0"):\(m.hostPort) failed: port is already allocated")
        case (true, ENOENT):
            throw GockerError(.notFound, "publish \(port): nftables table ip \(table) or its port maps do not exist (no network made them)")
        default:
            throw GockerError(.system, "\(verb) \(port) -> \(m.containerIP):\(m.containerPort) in nftables table ip \(table): \(errnoText(e))")
        }
    }

    // MARK: nft and sysctl

    static func sysctl(_ key: String, _ value: String) throws(SystemCallError) {
        let path = "/proc/sys/" + key
        if let now = try? Sys.readText(path), now.trimmingSuffix("\n") == value { return }
        let fd = try Sys.open(path, O_WRONLY | O_CLOEXEC)
        defer { Sys.close(fd) }
        try Sys.writeAll(fd, Array(value.utf8), path: path)
    }

    static let nftPaths = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]

    /// The nft binary: one of the usual places, else on $PATH.
    static func nftBinary(_ places: [String] = nftPaths, path: String? = Sys.env("PATH")) throws(GockerError) -> String {
        let onPath = (path ?? "").split(separator: ":").map { String($0) + "/nft" }
        for p in places + onPath where access(p, X_OK) == 0 { return p }
        throw GockerError(.notFound, "nft not found (looked in \(places.joined(separator: ", ")) and $PATH): install nftables")
    }

    /// `nft -f -` with `script` on its standard input (`nft -j` with the
    /// words of `script` when `json`): its standard output, or an error
    /// saying `what` failed with nft's first line of complaint.
    @discardableResult
    static func nft(_ script: String, what: String, json: Bool = false) throws(GockerError) -> String {
        let r = json ? try run(["-j"] + script.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init), input: nil)
                     : try run(["-f", "-"], input: script)
        guard r.status == 0 else {
            let line = r.stderr.split(separator: "\n").first(where: { $0.hasPrefix("Error") || $0.contains("rror:") })
                ?? r.stderr.split(separator: "\n").first ?? "exit status \(r.status)"
            throw GockerError(.system, "\(what): nft: \(line)")
        }
        return r.stdout
    }

    struct Output { var status: Int32; var stdout: String; var stderr: String }

    /// Runs nft with `args`, `input` on its standard input; reads both
    /// outputs to the end (each through its own pipe, polled).
    static func run(_ args: [String], input: String?) throws(GockerError) -> Output {
        let binary = try nftBinary()
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard gk_nft_pipe(&inPipe) == 0 else { throw GockerError(.system, "run nft", cause: SystemCallError("pipe2", errno: errno)) }
        guard gk_nft_pipe(&outPipe) == 0 else {
            let e = errno; close(inPipe[0]); close(inPipe[1])
            throw GockerError(.system, "run nft", cause: SystemCallError("pipe2", errno: e))
        }
        guard gk_nft_pipe(&errPipe) == 0 else {
            let e = errno; for fd in inPipe + outPipe { close(fd) }
            throw GockerError(.system, "run nft", cause: SystemCallError("pipe2", errno: e))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv = [binary] + args
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var env: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), strdup("LC_ALL=C"), nil]
        defer { for p in env { free(p) } }
        // No signal blocked in nft, whatever this thread blocks.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let sr = posix_spawn(&pid, binary, &actions, &attr, &cargs, &env)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard sr == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw GockerError(.system, "run \(binary)", cause: SystemCallError("posix_spawn", path: binary, errno: sr))
        }
        // nft reads all of its input before it writes a word.
        if let input {
            var bytes = Array(input.utf8)[...]
            while !bytes.isEmpty {
                let w = bytes.withUnsafeBytes { write(inPipe[1], $0.baseAddress, $0.count) }
                if w < 0 { if errno == EINTR { continue }; break }
                bytes = bytes.dropFirst(w)
            }
        }
        close(inPipe[1])
        var out: [UInt8] = [], err: [UInt8] = []
        var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        var open = 2
        var chunk = [UInt8](repeating: 0, count: 65536)
        while open > 0 {
            if poll(&fds, 2, -1) < 0 { if errno == EINTR { continue }; break }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if i == 0 { out += chunk[..<n] } else { err += chunk[..<n] }
                } else if n == 0 || errno != EINTR {
                    close(fds[i].fd); fds[i].fd = -1; open -= 1
                }
            }
        }
        for f in fds where f.fd >= 0 { close(f.fd) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(status: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}

extension String {
    fileprivate func trimmingSuffix(_ s: String) -> Substring {
        hasSuffix(s) ? dropLast(s.count) : self[...]
    }
}
