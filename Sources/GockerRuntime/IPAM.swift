import CGockerCore
import Glibc
import GockerCore

/// An IPv4 address, as a number in host order.
public struct IPv4: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Dotted quad, each part 0-255 written without leading zeros.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  p == "0" || p.first != "0", let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)"
    }

    public static func < (a: IPv4, b: IPv4) -> Bool { a.value < b.value }
}

/// An IPv4 network: `address/prefix`, the address being the network's
/// own (its host bits zero).
public struct IPv4Subnet: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv4
    public let prefix: Int

    /// `text`, refused (naming `what`, as docker names the flag) unless it
    /// is a network address with a prefix of 8 to 30 bits.
    public init(_ text: String, what: String = "subnet") throws(GockerError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4(String(parts[0])), let prefix = Int(parts[1]),
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw GockerError(.invalidArgument, "invalid \(what) \"\(text)\": expected an IPv4 network such as 192.168.10.0/24")
        }
        guard (8...30).contains(prefix) else {
            throw GockerError(.invalidArgument, "invalid \(what) \"\(text)\": the prefix must be 8 to 30 bits")
        }
        let network = IPv4(address.value & Self.mask(prefix))
        guard network == address else {
            throw GockerError(.invalidArgument, "invalid \(what) \"\(text)\": it is not a network address (did you mean \(network)/\(prefix)?)")
        }
        self.address = address
        self.prefix = prefix
    }

    init(network: IPv4, prefix: Int) {
        address = network
        self.prefix = prefix
    }

    static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix) }

    public var mask: UInt32 { Self.mask(prefix) }
    public var broadcast: IPv4 { IPv4(address.value | ~mask) }
    public var description: String { "\(address)/\(prefix)" }

    public func contains(_ ip: IPv4) -> Bool { ip.value & mask == address.value }

    public func overlaps(_ other: IPv4Subnet) -> Bool {
        contains(other.address) || other.contains(address)
    }

    /// The first address for a host (the gateway by default).
    public var firstHost: IPv4 { IPv4(address.value + 1) }

    /// docker's default address pools for bridge networks: 172.17.0.0/16
    /// to 172.31.0.0/16, then 192.168.0.0/20 to 192.168.240.0/20.
    public static let dockerPools: [IPv4Subnet] =
        (17...31).map { IPv4Subnet(network: IPv4(0xAC00_0000 | UInt32($0) << 16), prefix: 16) }
        + (0..<16).map { IPv4Subnet(network: IPv4(0xC0A8_0000 | UInt32($0) << 12), prefix: 20) }

    /// The first of `pools` that overlaps none of `taken` (the host's
    /// routes, other networks), or nil.
    public static func firstFree(_ pools: [IPv4Subnet] = dockerPools, avoiding taken: [IPv4Subnet]) -> IPv4Subnet? {
        pools.first { pool in !taken.contains { $0.overlaps(pool) } }
    }

    /// The destinations of the host's IPv4 routes (/proc/net/route),
    /// default routes left out.
    public static func hostRoutes(_ text: String) -> [IPv4Subnet] {
        var out: [IPv4Subnet] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard f.count > 7, let dest = UInt32(f[1], radix: 16), let mask = UInt32(f[7], radix: 16), mask != 0 else { continue }
            // The file holds them in the machine's byte order (little-endian here).
            let d = UInt32(littleEndian: dest).byteSwapped, m = UInt32(littleEndian: mask).byteSwapped
            out.append(IPv4Subnet(network: IPv4(d & m), prefix: m.nonzeroBitCount))
        }
        return out
    }
}

/// A network's addresses: which container holds which, kept in a file under
/// the network's directory and changed only under an flock of it, so that
/// parallel gocker processes never hand out the same address. The network
/// and broadcast addresses and the gateway are never handed out.
public struct IPAM: Sendable {
    /// ipam.json: the subnet, the gateway, and each address given out.
    public struct Book: JSONShape, Sendable, Equatable {
        public var subnet = ""
        public var gateway = ""
        /// Address to the id of the container that holds it.
        public var addresses: [String: String] = [:]
        /// Container id to the gocker process that took its address ("pid
        /// start-time"): until the container's record exists, that process
        /// alive means the address is still being taken, not left.
        public var owners: [String: String]?

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("subnet", &subnet)
            try v.field("gateway", &gateway)
            try v.field("addresses", &addresses)
            try v.field("owners", &owners)
        }
    }

    public let directory: String
    public let subnet: IPv4Subnet
    public let gateway: IPv4
    /// Where addresses are handed out from (`--ip-range`); nil: the subnet.
    public var range: IPv4Subnet?
    /// Who holds what (address to container id) as the containers' own
    /// records say: a book that no longer reads (a machine that lost power
    /// mid-write) is made again from it rather than stopping the network.
    public var rebuild: (@Sendable () -> [String: String])?

    var file: String { directory + "/ipam.json" }

    /// The book of `subnet` in `directory` (made if missing, unless
    /// `create` is false: then a missing directory is a network gone); the
    /// gateway must be a host address of the subnet.
    public init(directory: String, subnet: IPv4Subnet, gateway: IPv4? = nil, create: Bool = true) throws(GockerError) {
        let gateway = gateway ?? subnet.firstHost
        guard subnet.contains(gateway), gateway != subnet.address, gateway != subnet.broadcast else {
            throw GockerError(.invalidArgument, "invalid gateway \(gateway): not a host address of \(subnet)")
        }
        self.directory = directory
        self.subnet = subnet
        self.gateway = gateway
        guard create else {
            guard Sys.isDirectory(directory) else { throw GockerError(.notFound, "network of \(subnet) not found") }
            return
        }
        try performing("make the address book in \(directory)") { () throws(SystemCallError) in
            try Sys.mkdirAll(directory, mode: 0o700)
        }
    }

    /// This process, as an owner: its pid and start time.
    public static var thisProcess: String { "\(getpid()) \(gk_process_start_time(getpid()))" }

    /// Whether the process an owner string names still runs.
    public static func ownerAlive(_ owner: String?) -> Bool {
        guard let parts = owner?.split(separator: " "), parts.count == 2, let pid = Int32(parts[0]),
              let start = UInt64(parts[1]), pid > 0 else { return false }
        return UInt64(gk_process_start_time(pid)) == start
    }

    /// `body` on the book, under its lock (an flock on ipam.json itself);
    /// what it leaves is saved, in place (see Sys.rewrite): every reader
    /// and writer holds the lock.
    func change<T>(_ body: (inout Book) throws(GockerError) -> T) throws(GockerError) -> T {
        let fd: Int32
        do throws(SystemCallError) {
            fd = try Sys.open(file, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600)
            do { try Sys.check("flock", path: file) { flock(fd, LOCK_EX) } } catch {
                Sys.close(fd)
                throw error
            }
        } catch {
            // Its directory gone: the network was removed.
            if error.errno == ENOENT { throw GockerError(.notFound, "network of \(subnet) not found: it was removed") }
            throw GockerError(.system, "lock the address book of \(subnet)", cause: error)
        }
        defer { Sys.close(fd) }
        // A book `network rm` removed while this one waited for its lock:
        // the network is gone (its lock was on the file removed).
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_nlink == 0 {
            throw GockerError(.notFound, "network of \(subnet) not found: it was removed")
        }
        let text: [UInt8]
        do { text = try Sys.readAll(fd, path: file) } catch {
            throw GockerError(.system, "read the address book of \(subnet)", cause: error)
        }
        var book: Book
        var rebuilt = false
        if text.allSatisfy({ $0 == 0x20 || $0 == 0x0a }) {
            // Just made.
            book = Book()
            book.subnet = subnet.description
            book.gateway = gateway.description
        } else {
            do { book = try JSON.read(Book.self, from: text, what: file) } catch {
                guard let rebuild else { throw error }
                book = Book()
                book.subnet = subnet.description
                book.gateway = gateway.description
                book.addresses = rebuild()
                rebuilt = true
            }
        }
        let before = book
        let result = try body(&book)
        if book != before || text.isEmpty || rebuilt {
            try performing("save the address book of \(subnet)") { () throws(SystemCallError) in
                try Sys.rewrite(fd, book.jsonBytes, path: file)
            }
        }
        return result
    }

    /// An address for `container`: `requested` when given (refused outside
    /// the subnet, or taken), else the lowest free one. A container asking
    /// again gets the address it holds.
    /// With `isGone`, the addresses of containers that are gone are given
    /// back first, in the same turn of the lock (see `reconcile`).
    public func allocate(for container: String, requested: IPv4? = nil, owner: String? = nil,
                         isGone: ((String) -> Bool)? = nil) throws(GockerError) -> IPv4 {
        try change { (book: inout Book) throws(GockerError) -> IPv4 in
            if let isGone { Self.giveBack(&book, isGone: isGone) }
            if let owner { book.owners = (book.owners ?? [:]).merging([container: owner]) { _, new in new } }
            if let held = book.addresses.first(where: { $0.value == container }), let ip = IPv4(held.key),
               requested == nil || requested == ip {
                return ip
            }
            if let ip = requested {
                guard subnet.contains(ip), ip != subnet.address, ip != subnet.broadcast, ip != gateway else {
                    throw GockerError(.invalidArgument, "invalid --ip \(ip): not a free host address of \(subnet)")
                }
                guard book.addresses[ip.description] == nil else {
                    throw GockerError(.alreadyExists, "address \(ip) is already in use on \(subnet)")
                }
                book.addresses[ip.description] = container
                return ip
            }
            let pool = range ?? subnet
            var candidate = UInt64(pool.address.value)
            while candidate <= UInt64(pool.broadcast.value) {
                let ip = IPv4(UInt32(candidate))
                if ip != gateway && ip != subnet.address && ip != subnet.broadcast && book.addresses[ip.description] == nil {
                    book.addresses[ip.description] = container
                    return ip
                }
                candidate += 1
            }
            throw GockerError(.invalidState, "no free address left on \(subnet)")
        }
    }

    /// Gives back every address `container` holds.
    public func release(_ container: String) throws(GockerError) {
        try change { (book: inout Book) throws(GockerError) in
            book.addresses = book.addresses.filter { $0.value != container }
            book.owners?[container] = nil
            if book.owners?.isEmpty == true { book.owners = nil }
        }
    }

    /// Gives back the addresses of containers `isGone` says no longer
    /// exist (after a gocker that was killed before it released them).
    /// Returns the addresses given back.
    @discardableResult
    public func reconcile(isGone: (String) -> Bool) throws(GockerError) -> [IPv4] {
        try change { (book: inout Book) throws(GockerError) -> [IPv4] in
            Self.giveBack(&book, isGone: isGone)
        }
    }

    /// Takes out of `book` the addresses of containers `isGone` says are
    /// gone; a gocker that is still making its container holds its
    /// address. Returns them.
    @discardableResult
    static func giveBack(_ book: inout Book, isGone: (String) -> Bool) -> [IPv4] {
        let gone = book.addresses.filter { isGone($0.value) && !ownerAlive(book.owners?[$0.value]) }
        for (k, id) in gone {
            book.addresses[k] = nil
            book.owners?[id] = nil
        }
        if book.owners?.isEmpty == true { book.owners = nil }
        return gone.keys.compactMap { IPv4($0) }.sorted()
    }

    /// Who holds what, by address.
    public func holders() throws(GockerError) -> [IPv4: String] {
        try change { (book: inout Book) throws(GockerError) -> [IPv4: String] in
            var out: [IPv4: String] = [:]
            for (k, v) in book.addresses { if let ip = IPv4(k) { out[ip] = v } }
            return out
        }
    }
}
