import CGockerCore
import Glibc
import GockerCore
import Synchronization

// The HTTP/1.1 client registries are spoken to with. TLS is OpenSSL's
// (csrc/tls.c); what is written here is HTTP/1.1's message framing, the
// small part of the protocol a registry client needs: a request, the status
// line and headers, a body sized by Content-Length, chunked or ended by the
// connection's close, and redirects. (The kept HTTP libraries do not fit
// the one static binary: Debian 12's libcurl names krb5 and OpenLDAP, which
// have no static archives, and AsyncHTTPClient would bring SwiftNIO and a
// second TLS library, BoringSSL, beside the libcrypto gocker already links.)

/// An http or https URL: what requests go to, and what redirects and
/// token realms name.
public struct HTTPURL: Equatable, Sendable, CustomStringConvertible {
    public var secure: Bool
    /// A name or an address (an IPv6 one without its brackets).
    public var host: String
    public var port: Int
    /// The path and query, from its "/".
    public var target: String

    public init(secure: Bool, host: String, port: Int? = nil, target: String = "/") {
        self.secure = secure
        self.host = host
        self.port = port ?? (secure ? 443 : 80)
        self.target = target.hasPrefix("/") ? target : "/" + target
    }

    public init(parsing text: String) throws(GockerError) {
        func invalid() -> GockerError { GockerError(.invalidArgument, "invalid URL \"\(text)\"") }
        let secure: Bool
        var rest: Substring
        if text.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else if text.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else {
            throw invalid()
        }
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<end]
        var target = String(rest[end...])
        if let hash = target.firstIndex(of: "#") { target = String(target[..<hash]) }
        if target.hasPrefix("?") { target = "/" + target }
        guard !authority.contains("@") else { throw invalid() }
        guard let (host, port) = Self.split(authority: authority) else { throw invalid() }
        self.init(secure: secure, host: host, port: port, target: target.isEmpty ? "/" : target)
    }

    /// "host", "host:port", "[v6]" or "[v6]:port".
    public static func split(authority: Substring) -> (String, Int?)? {
        var host = authority
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            host = authority[..<colon]
            port = p
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) else { return nil }
        return (String(host), port)
    }

    /// What a Host header (and a message) names: the port only when it is
    /// not the scheme's own.
    public var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? h : "\(h):\(port)"
    }

    public var description: String { (secure ? "https://" : "http://") + authority + target }

    /// A Location header's URL: absolute, scheme-relative, or a path on
    /// this one's host.
    public func resolving(_ location: String) throws(GockerError) -> HTTPURL {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return try HTTPURL(parsing: location) }
        if location.hasPrefix("//") { return try HTTPURL(parsing: (secure ? "https:" : "http:") + location) }
        var url = self
        if location.hasPrefix("/") {
            url.target = location
        } else {
            let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
            url.target = String(path[...(path.lastIndex(of: "/") ?? path.startIndex)]) + location
        }
        return url
    }

    /// A query's value, percent-encoded (RFC 3986's unreserved set kept).
    public static func escape(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}

/// A response's status line and headers.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var reason: String
    public var headers: [(name: String, value: String)]

    /// The first header of that name (names compare without case).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

}

/// A way to stop requests in flight from another thread: `stop()` shuts
/// down the socket of every connection made through it (a read blocked on
/// a registry that stalls returns at once), and refuses new ones.
public final class HTTPStop: Sendable {
    /// Whether stopped, the sockets in use, and the write end of a pipe
    /// that `stop` closes.
    private let state: Mutex<(stopped: Bool, sockets: Set<Int32>, wake: Int32)>
    /// The pipe's read end, readable (at its end) once stopped: what
    /// `wait` sleeps on.
    private let woken: Int32

    public init() {
        var fds: [Int32] = [-1, -1]
        if gk_pipe_cloexec(&fds) != 0 { fds = [-1, -1] }
        woken = fds[0]
        state = Mutex((false, [], fds[1]))
    }

    deinit {
        if woken >= 0 { Glibc.close(woken) }
        state.withLock { if $0.wake >= 0 { Glibc.close($0.wake) } }
    }

    public func stop() {
        state.withLock { s in
            s.stopped = true
            for fd in s.sockets { _ = shutdown(fd, Int32(SHUT_RDWR)) }
            if s.wake >= 0 { Glibc.close(s.wake) }
            s.wake = -1
        }
    }

    /// Sleeps up to `microseconds`, less if `stop` comes: whether the
    /// whole wait passed without it.
    public func wait(microseconds: UInt32) -> Bool {
        guard woken >= 0 else {
            usleep(microseconds)
            return !isStopped
        }
        var p = pollfd(fd: woken, events: Int16(POLLIN), revents: 0)
        let ms = Int32((UInt64(microseconds) + 999) / 1000)
        while poll(&p, 1, ms) < 0 && errno == EINTR {}
        return !isStopped
    }

    /// Whether the socket may be used; false once stopped. A socket is
    /// forgotten (`forget`) before it is closed, so `stop` never shuts down
    /// a descriptor number reused by another file meanwhile.
    func track(_ fd: Int32) -> Bool {
        state.withLock { s in
            guard !s.stopped else { return false }
            s.sockets.insert(fd)
            return true
        }
    }

    func forget(_ fd: Int32) { _ = state.withLock { $0.sockets.remove(fd) } }

    public var isStopped: Bool { state.withLock { $0.stopped } }

    static let stoppedError = GockerError(.system, "stopped")
}

/// One connection: TCP, with TLS over it for https; reads buffered.
final class HTTPConnection {
    private let fd: Int32
    private let stopper: HTTPStop?
    private var tls: OpaquePointer?
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0
    let url: HTTPURL

    /// Connects within `timeout` seconds, which every later read and write
    /// keeps as its own limit.
    init(to url: HTTPURL, timeout: Int, caFile: String?, stopper: HTTPStop? = nil) throws(GockerError) {
        self.url = url
        if stopper?.isStopped == true { throw HTTPStop.stoppedError }
        fd = try Self.connect(url, timeout: timeout)
        self.stopper = stopper
        // From here on every member is set: a throw runs deinit, which
        // closes the socket (closing it here too would close it twice, and
        // perhaps another thread's file of the same number).
        if let stopper, !stopper.track(fd) { throw HTTPStop.stoppedError }
        if url.secure {
            var err = [CChar](repeating: 0, count: 512)
            var session: OpaquePointer?
            guard gk_tls_open(fd, url.host, caFile, &session, &err, err.count) == 0 else {
                let said = Sys.string(err)
                // A certificate that fails verification fails again: not a
                // failure to try again.
                throw GockerError(said.contains("failed to verify certificate") ? .invalidArgument : .system, "\(url): \(said)")
            }
            tls = session
        }
    }

    deinit {
        if let tls { gk_tls_close(tls) }
        stopper?.forget(fd)
        Glibc.close(fd)
    }

    private static func connect(_ url: HTTPURL, timeout: Int) throws(GockerError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let r = getaddrinfo(url.host, String(url.port), &hints, &list)
        guard r == 0, let list else {
            throw GockerError(.system, "\(url): lookup \(url.host): \(String(cString: gai_strerror(r)))")
        }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = ECONNREFUSED
        var next: UnsafeMutablePointer<addrinfo>? = list
        while let ai = next {
            next = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if fd < 0 { lastError = errno; continue }
            var tv = timeval(tv_sec: timeout, tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // Non-blocking for the connect alone: its wait is bounded too.
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var ok = Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0
            if !ok && errno == EINPROGRESS {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let n = poll(&p, 1, Int32(timeout * 1000))
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                if n == 1, getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len) == 0 {
                    ok = soError == 0
                    lastError = soError
                } else {
                    lastError = n == 0 ? ETIMEDOUT : errno
                }
            } else if !ok {
                lastError = errno
            }
            if ok {
                _ = fcntl(fd, F_SETFL, flags)
                return fd
            }
            Glibc.close(fd)
        }
        throw GockerError(.system, "\(url): connect to \(url.authority): \(errnoText(lastError))")
    }

    func write(_ bytes: [UInt8]) throws(GockerError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { p -> Int in
                let base = p.baseAddress! + done
                if let tls {
                    var err = [CChar](repeating: 0, count: 256)
                    let n = gk_tls_write(tls, base, p.count - done, &err, err.count)
                    if n < 0 { lastTLSError = Sys.string(err) }
                    return n
                }
                return send(fd, base, p.count - done, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if tls == nil && errno == EINTR { continue }
                throw failure("send the request")
            }
            done += n
        }
    }

    private var lastTLSError = ""

    private func failure(_ what: String) -> GockerError {
        if tls != nil { return GockerError(.system, "\(url): \(what): \(lastTLSError)") }
        let e = errno
        let why = e == EAGAIN || e == EWOULDBLOCK ? "timeout" : errnoText(e)
        return GockerError(.system, "\(url): \(what): \(why)")
    }

    /// Reads more into the buffer; false at the end of the stream.
    private func fill() throws(GockerError) -> Bool {
        if start == end {
            start = 0
            end = 0
        } else if end == buffer.count {
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            } else {
                buffer += [UInt8](repeating: 0, count: buffer.count)
            }
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { p -> Int in
                let base = p.baseAddress! + end
                if let tls {
                    var err = [CChar](repeating: 0, count: 256)
                    let n = gk_tls_read(tls, base, p.count - end, &err, err.count)
                    if n < 0 { lastTLSError = Sys.string(err) }
                    return n
                }
                return Glibc.read(fd, base, p.count - end)
            }
            if n < 0 {
                if tls == nil && errno == EINTR { continue }
                throw failure("read the response")
            }
            end += n
            return n > 0
        }
    }

    /// One line, without its CRLF (or LF).
    func line(limit: Int = 64 * 1024) throws(GockerError) -> String {
        // How far the line has been searched, from `start`: fill() may
        // move what is buffered to the buffer's beginning.
        var searched = 0
        while true {
            if let nl = buffer[(start + searched)..<end].firstIndex(of: 0x0A) {
                var stop = nl
                if stop > start && buffer[stop - 1] == 0x0D { stop -= 1 }
                let text = String(decoding: buffer[start..<stop], as: UTF8.self)
                start = nl + 1
                return text
            }
            searched = end - start
            guard end - start < limit else { throw GockerError(.system, "\(url): malformed HTTP response: a line longer than \(limit) bytes") }
            guard try fill() else { throw GockerError(.system, "\(url): malformed HTTP response: the connection closed in a header") }
        }
    }

    /// Up to `max` bytes (at least one), handed to `body`; false at the end
    /// of the stream.
    func read(max: Int, _ body: (ArraySlice<UInt8>) throws(GockerError) -> Void) throws(GockerError) -> Bool {
        if start == end, try !fill() { return false }
        let n = min(max, end - start)
        try body(buffer[start..<(start + n)])
        start += n
        return true
    }
}

/// A response's body, read once, as its framing says.
public final class HTTPBody {
    enum Framing { case length(Int64), chunked, untilClose }
    private let connection: HTTPConnection
    private var framing: Framing
    private var done = false

    init(_ connection: HTTPConnection, framing: Framing) {
        self.connection = connection
        self.framing = framing
        if case .length(0) = framing { done = true }
    }

    /// Every byte of the body, in pieces, to `sink`.
    public func forEach(_ sink: (ArraySlice<UInt8>) throws(GockerError) -> Void) throws(GockerError) {
        guard !done else { return }
        defer { done = true }
        let url = connection.url
        switch framing {
        case .length(var left):
            while left > 0 {
                let more = try connection.read(max: Int(min(left, 1 << 20))) { (piece) throws(GockerError) in
                    try sink(piece)
                    left -= Int64(piece.count)
                }
                if !more { throw GockerError(.system, "\(url): the connection closed \(left) bytes before the body's end") }
            }
        case .untilClose:
            while try connection.read(max: 1 << 20, sink) {}
        case .chunked:
            while true {
                let sizeLine = try connection.line()
                let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map { $0.trimmed(" \t") } ?? ""
                guard let size = Int64(hex, radix: 16), size >= 0 else {
                    throw GockerError(.system, "\(url): malformed HTTP response: chunk size \"\(sizeLine.prefix(40))\"")
                }
                if size == 0 {
                    // Trailers, up to the empty line.
                    while try !connection.line().isEmpty {}
                    return
                }
                var left = size
                while left > 0 {
                    let more = try connection.read(max: Int(min(left, 1 << 20))) { (piece) throws(GockerError) in
                        try sink(piece)
                        left -= Int64(piece.count)
                    }
                    if !more { throw GockerError(.system, "\(url): the connection closed in a chunk") }
                }
                guard try connection.line().isEmpty else {
                    throw GockerError(.system, "\(url): malformed HTTP response: no CRLF after a chunk")
                }
            }
        }
    }

    /// The whole body, refused beyond `limit` bytes.
    public func bytes(limit: Int) throws(GockerError) -> [UInt8] {
        var out: [UInt8] = []
        let url = connection.url
        try forEach { (piece) throws(GockerError) in
            guard out.count + piece.count <= limit else {
                throw GockerError(.system, "\(url): the response is larger than \(limit) bytes")
            }
            out += piece
        }
        return out
    }
}

extension String {
    func trimmed(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    func trimmed(_ set: String) -> String { String(self).trimmed(set) }
}

/// Requests, one connection each, with redirects followed.
public struct HTTPClient: Sendable {
    /// Seconds a connect, and then each read or write, may take.
    public var timeout: Int
    /// The CA file a host's TLS certificate may also chain to (docker's
    /// certs.d/HOST/ca.crt), by the URL's authority.
    public var caFile: @Sendable (HTTPURL) -> String?
    /// What stops this client's requests from another thread, if anything.
    public var stopper: HTTPStop?

    public init(timeout: Int = 60, caFile: @escaping @Sendable (HTTPURL) -> String? = { _ in nil }, stopper: HTTPStop? = nil) {
        self.timeout = timeout
        self.caFile = caFile
        self.stopper = stopper
    }

    /// Sends a request and reads the status line and headers; the body is
    /// the caller's to read. A 301, 302, 303, 307 or 308 to a GET or HEAD is
    /// followed (at most 10); Authorization goes only to the first host.
    public func send(_ method: String, _ url: HTTPURL, headers: [(String, String)] = [], body: [UInt8]? = nil,
                     file: (path: String, size: Int64)? = nil) throws(GockerError) -> (HTTPResponse, HTTPBody, HTTPURL) {
        var url = url
        var headers = headers
        for _ in 0...10 {
            let (response, reader) = try once(method, url, headers: headers, body: body, file: file)
            guard [301, 302, 303, 307, 308].contains(response.status), method == "GET" || method == "HEAD",
                  let location = response.header("Location") else {
                return (response, reader, url)
            }
            let next = try url.resolving(location)
            if next.authority != url.authority || next.secure != url.secure {
                headers.removeAll { $0.0.lowercased() == "authorization" }
            }
            url = next
        }
        throw GockerError(.system, "\(url): too many redirects")
    }

    private func once(_ method: String, _ url: HTTPURL, headers: [(String, String)], body: [UInt8]?,
                      file: (path: String, size: Int64)?) throws(GockerError) -> (HTTPResponse, HTTPBody) {
        let connection = try HTTPConnection(to: url, timeout: timeout, caFile: caFile(url), stopper: stopper)
        // Nothing a registry sent (a redirect's target, a token) may break
        // the request's lines.
        guard !url.target.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }),
              !headers.contains(where: { $0.1.utf8.contains { $0 < 0x20 || $0 == 0x7F } }) else {
            throw GockerError(.invalidArgument, "\(url.authority): a control character or space in a request to send")
        }
        var head = "\(method) \(url.target) HTTP/1.1\r\nHost: \(url.authority)\r\nUser-Agent: gocker\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let file {
            head += "Content-Length: \(file.size)\r\n"
        } else if let body {
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        try connection.write(Array(head.utf8) + (file == nil ? body ?? [] : []))
        if let file { try Self.stream(file, to: connection) }

        let statusLine = try connection.line()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw GockerError(.system, "\(url): malformed HTTP response: \"\(statusLine.prefix(60))\"")
        }
        var response = HTTPResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: [])
        while true {
            let line = try connection.line()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw GockerError(.system, "\(url): malformed HTTP header \"\(line.prefix(60))\"")
            }
            response.headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmed(" \t")))
            guard response.headers.count <= 200 else { throw GockerError(.system, "\(url): too many HTTP headers") }
        }
        if (100...199).contains(status) {
            throw GockerError(.system, "\(url): unexpected interim response \(status)")
        }
        let framing: HTTPBody.Framing
        if method == "HEAD" || status == 204 || status == 304 {
            framing = .length(0)
        } else if response.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            framing = .chunked
        } else if let length = response.header("Content-Length") {
            guard let n = Int64(length), n >= 0 else {
                throw GockerError(.system, "\(url): malformed Content-Length \"\(length.prefix(30))\"")
            }
            framing = .length(n)
        } else {
            framing = .untilClose
        }
        return (response, HTTPBody(connection, framing: framing))
    }

    /// A file's first `size` bytes as a request's body, a MiB at a time.
    private static func stream(_ file: (path: String, size: Int64), to connection: HTTPConnection) throws(GockerError) {
        let fd = try performing("open \(file.path)") { () throws(SystemCallError) in try Sys.open(file.path, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        var left = file.size
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while left > 0 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, Int(min(Int64($0.count), left))) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw GockerError(.system, "read \(file.path): \(n < 0 ? errnoText(errno) : "shorter than \(file.size) bytes")")
            }
            try connection.write(Array(chunk[..<n]))
            left -= Int64(n)
        }
    }
}
