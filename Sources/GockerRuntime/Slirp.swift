import CGockerCore
import Glibc
import GockerCore

/// `--network slirp4netns`, the default network of a rootless container
/// (a bridge and veths need the host's root): Debian's slirp4netns gives
/// the container's network namespace a tap device, tap0, whose traffic it
/// carries through sockets of its own on the host, as podman's rootless
/// containers do. slirp4netns rather than pasta: Debian 12's passt
/// predates the options podman relies on, and slirp4netns's API socket
/// adds port forwards to a running process.
///
/// The container is 10.0.2.100/24 behind a gateway at 10.0.2.2, with a
/// DNS forwarder at 10.0.2.3. The host's loopback is out of its reach
/// unless `allow_host_loopback=true` (then at 10.0.2.2). `-p` forwards a
/// host port, on the host's addresses, to the container's.
///
/// slirp4netns runs for as long as the container's runtime state exists:
/// it is a companion of the state (StateStore.keepCompanion), stopped
/// when the state is removed, whoever removes it.
public struct SlirpNetwork: JSONShape, Sendable, Equatable {
    public var allowHostLoopback: Bool?
    /// The ports it forwards, host ports settled.
    public var ports: [PublishedPort]?

    public init() {}

    public init(allowHostLoopback: Bool, ports: [PublishedPort]) {
        self.allowHostLoopback = allowHostLoopback ? true : nil
        self.ports = ports.isEmpty ? nil : ports
    }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("allowHostLoopback", &allowHostLoopback)
        try v.field("ports", &ports)
    }

    public static let address = "10.0.2.100"
    public static let gateway = "10.0.2.2"
    public static let nameserver = "10.0.2.3"

    /// The slirp4netns binary on the usual paths.
    static func binary() throws(GockerError) -> String {
        for dir in ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"] where access(dir + "/slirp4netns", X_OK) == 0 {
            return dir + "/slirp4netns"
        }
        throw GockerError(.invalidArgument, "network slirp4netns: slirp4netns is not installed (Debian's slirp4netns package)")
    }

    /// The lowest port a user may listen on (net.ipv4.ip_unprivileged_port_start).
    static func unprivilegedPortStart() -> UInt16 {
        guard let bytes = try? Sys.readFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
              let n = UInt16(String(decoding: bytes, as: UTF8.self).trimmed) else { return 1024 }
        return n
    }

    /// A rootless user's `-p` with a host port below the unprivileged
    /// start is refused (slirp4netns could not listen there).
    static func checkPorts(_ requests: [PortRequest]) throws(GockerError) {
        guard Rootless.active else { return }
        let lowest = unprivilegedPortStart()
        for r in requests {
            if let range = r.hostPorts, range.lowerBound < lowest {
                throw GockerError(.invalidArgument,
                                  "port \(range.lowerBound) is below \(lowest), the first port an ordinary user may listen on (net.ipv4.ip_unprivileged_port_start): a rootless container publishes ports from \(lowest) up")
            }
        }
    }

    /// Starts slirp4netns for the network namespace `netns` (a descriptor
    /// of this process) and returns once tap0 is up in it, with the ports
    /// forwarded. Its API socket and its log are in `directory`; `keep` is
    /// given its pid at once, so that a failure on the way stops it too.
    func start(netns: Int32, directory: String, keep: (pid_t) throws(GockerError) -> Void) throws(GockerError) {
        let path = try Self.binary()
        // Opened by slirp4netns as the user: say so, rather than its words.
        if access("/dev/net/tun", R_OK | W_OK) != 0 {
            let e = errno
            var st = stat()
            let mode = stat("/dev/net/tun", &st) == 0 ? String(st.st_mode & 0o777, radix: 8) : "missing"
            throw GockerError(.invalidArgument, e == ENOENT
                ? "network slirp4netns: /dev/net/tun is missing (the tun module): use --network none or host"
                : "network slirp4netns: /dev/net/tun is not open to this user (mode \(mode); udev makes it 0666): `chmod 0666 /dev/net/tun` as root, or use --network none or host")
        }
        // The API socket in `directory`, named through a descriptor of it
        // (fd 5 in slirp4netns): a socket's path is at most 107 bytes, and
        // the state directory's own may be longer.
        let dirFD = try performing("open \(directory)") { () throws(SystemCallError) in
            try Sys.open(directory, GK_O_PATH | O_DIRECTORY)
        }
        defer { Sys.close(dirFD) }
        let logPath = directory + "/slirp4netns.log"
        var ready: [Int32] = [0, 0]
        let made = gk_pipe_cloexec(&ready)
        guard made == 0 else {
            throw GockerError(.system, "start slirp4netns", cause: SystemCallError("pipe", errno: -made))
        }
        defer { Sys.close(ready[0]) }
        var argv = [path, "--configure", "--mtu=65520", "--enable-sandbox", "--enable-seccomp",
                    "--ready-fd=3", "--api-socket", "/proc/self/fd/5/slirp4netns.sock", "--netns-type=path"]
        if allowHostLoopback != true { argv.append("--disable-host-loopback") }
        argv += ["/proc/self/fd/4", "tap0"]
        // Its descriptors 3, 4 and 5, and nothing else of this process's.
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let fds: [Int32] = [ready[1], netns, dirFD]
        let pid = gk_spawn_helper(path, &cargs, fds, Int32(fds.count), logPath)
        // Only slirp4netns holds the pipe's write end now: its end is how a
        // failure shows.
        Sys.close(ready[1])
        guard pid > 0 else {
            throw GockerError(.system, "start slirp4netns", cause: SystemCallError("fork", path: path, errno: -pid))
        }
        do { try keep(pid) } catch {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw error
        }
        // "1" once tap0 is configured; the end of the pipe if it failed.
        var byte: UInt8 = 0
        var n: Int
        repeat { n = read(ready[0], &byte, 1) } while n < 0 && errno == EINTR
        guard n == 1 else {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            let log = String(decoding: (try? Sys.readFile(logPath)) ?? [], as: UTF8.self)
            // Its own words, without its closing "child failed(1)".
            let lines = log.split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("child failed") }
            let why = lines.isEmpty ? "it exited with status \(status)" : lines.suffix(3).joined(separator: "; ")
            throw GockerError(.containerSetup, "network slirp4netns: \(why)")
        }
        for p in ports ?? [] { try Self.forward(p, socket: "/proc/self/fd/\(dirFD)/slirp4netns.sock") }
    }

    /// One port forward through the API socket.
    static func forward(_ p: PublishedPort, socket path: String) throws(GockerError) {
        let request = "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"\(p.proto)\",\"host_addr\":\"\(p.hostIP ?? "0.0.0.0")\","
            + "\"host_port\":\(p.hostPort),\"guest_port\":\(p.containerPort)}}"
        let answer: String
        do { answer = try ask(path, request) } catch {
            throw GockerError(.system, "publish port \(p.hostPort)", cause: error)
        }
        guard answer.contains("\"return\"") else {
            // {"error":{"desc":"..."}}
            var desc = answer.trimmed
            let key = Array("\"desc\":\"".utf8), bytes = Array(answer.utf8)
            if bytes.count >= key.count, let at = (0...(bytes.count - key.count)).first(where: { Array(bytes[$0..<($0 + key.count)]) == key }) {
                desc = String(decoding: bytes[(at + key.count)...].prefix { $0 != UInt8(ascii: "\"") }, as: UTF8.self)
            }
            throw GockerError(.invalidArgument, "publish port \(p.hostIP ?? "0.0.0.0"):\(p.hostPort): \(desc)")
        }
    }

    /// One request on the API socket and its whole answer.
    static func ask(_ path: String, _ request: String) throws(SystemCallError) -> String {
        let fd = gk_connect_unix(path)
        guard fd >= 0 else { throw SystemCallError("connect", path: path, errno: -fd) }
        let out = Array(request.utf8)
        var off = 0
        while off < out.count {
            off += try Sys.check("write", path: path) { out.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, out.count - off) } }
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try Sys.check("read", path: path) { buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            answer += buf[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
