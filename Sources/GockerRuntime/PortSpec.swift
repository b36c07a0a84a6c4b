import Glibc
import GockerCore

/// The transport of a published port. docker also knows sctp; gocker's
/// port maps hold tcp and udp only, and says so when asked for sctp.
public enum PortProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp, udp

    /// The IPPROTO_ number nftables matches (`meta l4proto`).
    public var number: UInt8 { self == .tcp ? UInt8(IPPROTO_TCP) : UInt8(IPPROTO_UDP) }
    var socketType: Int32 { self == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue) }
}

/// One port asked for with `-p`: the host side is still to be settled
/// (`hostPorts` nil: an ephemeral port; a range of more than one port with a
/// single container port: any free port of it, as docker does).
public struct PortRequest: Hashable, Sendable, CustomStringConvertible {
    public var proto: PortProtocol
    /// nil: every address of the host (docker's 0.0.0.0).
    public var hostIP: IPv4?
    public var hostPorts: ClosedRange<UInt16>?
    public var containerPort: UInt16

    public init(proto: PortProtocol = .tcp, hostIP: IPv4? = nil, hostPorts: ClosedRange<UInt16>? = nil, containerPort: UInt16) {
        self.proto = proto
        self.hostIP = hostIP
        self.hostPorts = hostPorts
        self.containerPort = containerPort
    }

    public var description: String {
        var host = hostIP.map { "\($0):" } ?? ""
        if let r = hostPorts { host += r.count == 1 ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)" }
        return "\(host):\(containerPort)/\(proto.rawValue)"
    }
}

/// A published port, settled: the element of gocker's port maps.
public struct PortMapping: Hashable, Sendable, CustomStringConvertible {
    public var proto: PortProtocol
    /// nil: published on every address of the host (map `ports`); else on
    /// that address only (map `ports_at`).
    public var hostIP: IPv4?
    public var hostPort: UInt16
    public var containerIP: IPv4
    public var containerPort: UInt16

    public init(proto: PortProtocol = .tcp, hostIP: IPv4? = nil, hostPort: UInt16, containerIP: IPv4, containerPort: UInt16) {
        self.proto = proto
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerIP = containerIP
        self.containerPort = containerPort
    }

    /// docker's `port` line: `80/tcp -> 0.0.0.0:8080`.
    public var description: String {
        "\(containerPort)/\(proto.rawValue) -> \(hostIP?.description ?? "0.0.0.0"):\(hostPort)"
    }
}

/// `-p/--publish` as docker reads it:
/// `[hostIP:][hostPort[-end]:]containerPort[-end][/tcp|udp]`, with docker's
/// rules and error wording (docker/go-connections nat.ParsePortSpec):
/// a range on both sides must be of one length; a host range with a single
/// container port is a range to pick a free port from; an empty host port
/// (`-p :80`, `-p 127.0.0.1::80`) or 0 is an ephemeral one; the protocol is
/// matched case-insensitively. Host address 0.0.0.0 means every address.
public enum PortSpec {
    public static func parse(_ raw: String) throws(GockerError) -> [PortRequest] {
        func bad(_ message: String) -> GockerError { GockerError(.invalidArgument, message) }

        // The protocol: after the first '/', tcp when absent or empty.
        let slash = raw.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let spec = slash.first, !spec.isEmpty else { throw bad("no port specified: \(raw)<empty>") }
        let protoText = slash.count > 1 && !slash[1].isEmpty ? slash[1].lowercased() : "tcp"
        let proto: PortProtocol
        switch protoText {
        case "tcp": proto = .tcp
        case "udp": proto = .udp
        case "sctp": throw bad("sctp ports are not supported by gocker (tcp and udp are): \(raw)")
        default: throw bad("invalid proto: \(slash[1])")
        }

        // hostIP:hostPort:containerPort; an IPv6 address has colons of its own.
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let containerText = parts[parts.count - 1]
        let hostPortText = parts.count >= 2 ? parts[parts.count - 2] : ""
        var ipText = parts.count >= 3 ? parts[0..<(parts.count - 2)].joined(separator: ":") : ""
        if ipText.hasPrefix("["), ipText.hasSuffix("]") { ipText = String(ipText.dropFirst().dropLast()) }

        var hostIP: IPv4?
        if !ipText.isEmpty {
            if let ip = IPv4(ipText) {
                hostIP = ip.value == 0 ? nil : ip
            } else if isIPv6(ipText) {
                throw bad("IPv6 host address \(ipText) is not supported by gocker (IPv4 only): \(raw)")
            } else {
                throw bad("invalid IP address: \(ipText)")
            }
        }
        guard !containerText.isEmpty else { throw bad("no port specified: \(raw)<empty>") }
        guard let container = portRange(containerText), container.lowerBound != 0 else {
            throw bad("invalid containerPort: \(containerText)")
        }
        var host: ClosedRange<UInt16>?
        if !hostPortText.isEmpty {
            guard let h = portRange(hostPortText) else { throw bad("invalid hostPort: \(hostPortText)") }
            if h.lowerBound == 0 {
                // 0 alone is docker's "any port"; a range from 0 is nonsense.
                guard h.upperBound == 0 else { throw bad("invalid hostPort: \(hostPortText)") }
            } else {
                host = h
            }
        }
        if let h = host, h.count != container.count, container.count != 1 {
            throw bad("invalid ranges specified for container and host Ports: \(containerText) and \(hostPortText)")
        }

        return container.enumerated().map { i, port in
            var hp: ClosedRange<UInt16>? = host
            if let h = host, h.count == container.count {
                let p = h.lowerBound + UInt16(i)
                hp = p...p
            }
            return PortRequest(proto: proto, hostIP: hostIP, hostPorts: hp, containerPort: port)
        }
    }

    /// `N` or `N-M` (M >= N), each 0-65535 in decimal; nil when not.
    static func portRange(_ text: String) -> ClosedRange<UInt16>? {
        let ends = text.split(separator: "-", omittingEmptySubsequences: false)
        guard ends.count <= 2 else { return nil }
        var values: [UInt16] = []
        for e in ends {
            guard !e.isEmpty, e.count <= 5, e.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt16(e) else { return nil }
            values.append(v)
        }
        guard let first = values.first, let last = values.last, last >= first else { return nil }
        return first...last
    }

    static func isIPv6(_ text: String) -> Bool {
        var a = in6_addr()
        return inet_pton(AF_INET6, text, &a) == 1
    }

    // MARK: host ports

    /// Refuses a host port something on the host holds already, as docker
    /// words it: "Bind for 0.0.0.0:8080 failed: port is already allocated".
    /// A bind() of a socket of that protocol on that address (every address
    /// when nil), closed again at once.
    public static func checkFree(_ proto: PortProtocol, hostIP: IPv4?, port: UInt16) throws(GockerError) {
        let r = bindProbe(proto, hostIP: hostIP, port: port)
        guard case .failure(let err) = r else { return }
        let e = err.value
        let at = "\(hostIP?.description ?? "0.0.0.0"):\(port)"
        if e == EADDRINUSE { throw GockerError(.alreadyExists, "Bind for \(at) failed: port is already allocated") }
        throw GockerError(.system, "Bind for \(at) failed: \(errnoText(e))")
    }

    /// An ephemeral port free on the host for `proto` (the kernel's pick
    /// from net.ipv4.ip_local_port_range, as docker's allocator uses).
    public static func ephemeralPort(_ proto: PortProtocol, hostIP: IPv4? = nil) throws(GockerError) -> UInt16 {
        switch bindProbe(proto, hostIP: hostIP, port: 0) {
        case .success(let p): return p
        case .failure(let e):
            throw GockerError(.system, "pick a free \(proto.rawValue) port on \(hostIP?.description ?? "0.0.0.0"): \(errnoText(e.value))")
        }
    }

    /// The request's host port: the one asked for, checked free; the first
    /// free port of a range; or an ephemeral one.
    public static func hostPort(for request: PortRequest) throws(GockerError) -> UInt16 {
        guard let range = request.hostPorts else { return try ephemeralPort(request.proto, hostIP: request.hostIP) }
        if range.count == 1 {
            try checkFree(request.proto, hostIP: request.hostIP, port: range.lowerBound)
            return range.lowerBound
        }
        for p in range {
            if case .success = bindProbe(request.proto, hostIP: request.hostIP, port: p) { return p }
        }
        throw GockerError(.alreadyExists, "Bind for \(request.hostIP?.description ?? "0.0.0.0"):\(range.lowerBound)-\(range.upperBound) failed: every port of the range is already allocated")
    }

    /// A failed bind's errno.
    struct Errno: Error { var value: Int32 }

    /// bind() on `port` (0: the kernel picks), then the port bound.
    static func bindProbe(_ proto: PortProtocol, hostIP: IPv4?, port: UInt16) -> Result<UInt16, Errno> {
        let fd = socket(AF_INET, proto.socketType | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Errno(value: errno)) }
        defer { close(fd) }
        if proto == .tcp {
            // Not refused for connections in TIME_WAIT, only for a socket
            // that holds the port.
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = (hostIP?.value ?? 0).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let r = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, len) == 0 ? getsockname(fd, p, &len) : -1
            }
        }
        guard r == 0 else { return .failure(Errno(value: errno)) }
        return .success(UInt16(bigEndian: sa.sin_port))
    }
}
