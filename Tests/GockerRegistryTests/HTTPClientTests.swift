import Foundation
import GockerCore
import GockerRegistry
import Synchronization
import Testing

/// A TCP socket listening on a free port of 127.0.0.1: it and the port.
func listenOnLoopback() throws -> (Int32, UInt16) {
    let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(server >= 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    try #require(withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, len) == 0 && getsockname(server, $0, &len) == 0 }
    })
    try #require(listen(server, 8) == 0)
    return (server, UInt16(bigEndian: addr.sin_port))
}

/// The HTTP/1.1 client against a server on loopback that sends its answer
/// in pieces, with pauses between them: lines and chunks split anywhere
/// must read the same as in one piece.
struct HTTPClientTests {
    /// Serves one connection: reads the request, sends `pieces` with a
    /// pause after each, closes (with `stall`, once the client has gone, or
    /// after 20 s). The port.
    func serve(_ pieces: [String], stall: Bool = false) throws -> UInt16 {
        let (server, port) = try listenOnLoopback()
        Thread {
            let c = accept(server, nil, nil)
            close(server)
            guard c >= 0 else { return }
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(c, &request, request.count)
            for piece in pieces {
                _ = piece.withCString { write(c, $0, strlen($0)) }
                usleep(20_000)
            }
            if stall {
                var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 20_000)
            }
            close(c)
        }.start()
        return port
    }

    func get(_ pieces: [String]) throws -> (HTTPResponse, String) {
        let port = try serve(pieces)
        let url = HTTPURL(secure: false, host: "127.0.0.1", port: Int(port), target: "/v2/")
        let (response, body, _) = try HTTPClient(timeout: 5).send("GET", url)
        return (response, String(decoding: try body.bytes(limit: 1 << 20), as: UTF8.self))
    }

    @Test func headersAndChunksSplitAnywhere() throws {
        let (r, body) = try get(["HTTP/1.1 200 OK\r\n", "Content-Type: x\r\nB: 2\r", "\n", "Transfer-Encoding: chunked\r\n\r\n",
                                 "5\r\nhel", "lo\r\n", "6;ext=1\r\n world\r", "\n0\r\n", "Trailer: t\r\n\r\n"])
        #expect(r.status == 200 && r.reason == "OK")
        #expect(r.header("content-type") == "x" && r.header("B") == "2")
        #expect(body == "hello world")
    }

    @Test func contentLengthAndClose() throws {
        let (r, body) = try get(["HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\n", "ab", "cd"])
        #expect(r.status == 404 && body == "abcd")
        let (_, rest) = try get(["HTTP/1.0 200 OK\r\n\r\n", "until ", "the end"])
        #expect(rest == "until the end")
    }

    @Test func brokenAnswersAreErrors() throws {
        for (pieces, said) in [(["hello\r\n\r\n"], "malformed HTTP response"),
                               (["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "short"], "before the body's end"),
                               (["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "zz\r\n"], "chunk size"),
                               (["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"], "malformed HTTP header")] {
            #expect(performing: { _ = try get(pieces) }, throws: { "\($0)".contains(said) })
        }
    }

    /// A read blocked on a server that stalls mid-body ends as soon as
    /// the request is stopped from another thread, long before the
    /// client's timeout; a request after that is refused.
    @Test func aStoppedRequestEndsAStalledRead() throws {
        let port = try serve(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome"], stall: true)
        // The server holds the connection longer than the client waits for
        // a read: without a working stop the read times out, with another
        // error than the one expected below.
        let stopper = HTTPStop()
        let client = HTTPClient(timeout: 10, stopper: stopper)
        let url = HTTPURL(secure: false, host: "127.0.0.1", port: Int(port), target: "/v2/")
        let (response, body, _) = try client.send("GET", url)
        #expect(response.status == 200)
        Thread {
            usleep(200_000)
            stopper.stop()
        }.start()
        #expect(performing: { _ = try body.bytes(limit: 1 << 20) }, throws: { "\($0)".contains("before the body's end") })
        #expect(stopper.isStopped)
        #expect(performing: { _ = try client.send("GET", url) }, throws: { "\($0)" == "stopped" })
    }

    /// A wait between tries (a Retry-After may ask for a minute) ends when
    /// the downloads are stopped: here a 20 s wait, stopped after 0.2 s,
    /// has ended well within 10 s.
    @Test func aStopEndsAWaitBetweenTries() throws {
        let stopper = HTTPStop()
        let result = Mutex<Bool?>(nil)
        Thread {
            let whole = stopper.wait(microseconds: 20_000_000)
            result.withLock { $0 = whole }
        }.start()
        usleep(200_000)
        stopper.stop()
        var waited = 0
        while result.withLock({ $0 == nil }) && waited < 100 {
            usleep(100_000)
            waited += 1
        }
        #expect(result.withLock { $0 } == false, "the wait did not end when stopped")
        // Not stopped, a short wait passes whole.
        #expect(HTTPStop().wait(microseconds: 10_000))
    }

    @Test func aSilentServerTimesOut() throws {
        let port = try serve(["", ""])
        let url = HTTPURL(secure: false, host: "127.0.0.1", port: Int(port), target: "/")
        #expect(performing: { _ = try HTTPClient(timeout: 1).send("GET", url) }, throws: { "\($0)".contains("timeout") || "\($0)".contains("closed") })
    }
}

struct DigestAndLoopbackTests {
    @Test func onlySha256HexDigests() {
        #expect(OCI.isDigest("sha256:" + String(repeating: "0a", count: 32)))
        for bad in ["sha256:" + String(repeating: "0A", count: 32), "sha512:" + String(repeating: "a", count: 64),
                    "sha256:/../../../../etc/cron.d/" + String(repeating: "a", count: 34), "sha256:" + String(repeating: "a", count: 63),
                    "latest", "sha256:" + String(repeating: "é", count: 32)] {
            #expect(!OCI.isDigest(bad), "\(bad)")
        }
    }

    @Test func loopbackIsAnAddressNotAName() {
        #expect(RegistryReference.isLoopback("127.0.0.2:5000"))
        #expect(!RegistryReference.isLoopback("127.example.com"))
        #expect(!RegistryReference.isLoopback("127.0.0.1.nip.io:5000"))
    }
}

/// A blob download that breaks halfway goes on from where it broke
/// (`Range`), or starts over when the registry sends it all again.
struct BlobResumeTests {
    /// Answers one connection after another from `script` (each a list
    /// of pieces; the connection closes after the last); the requests read.
    final class Script: @unchecked Sendable {
        let port: UInt16
        private let lock = NSLock()
        private var seen: [String] = []
        var requests: [String] { lock.withLock { seen } }

        init(_ script: [[String]]) throws {
            let (server, port) = try listenOnLoopback()
            self.port = port
            Thread { [self] in
                for pieces in script {
                    let c = accept(server, nil, nil)
                    guard c >= 0 else { break }
                    var request = [UInt8](repeating: 0, count: 4096)
                    let n = read(c, &request, request.count)
                    lock.withLock { seen.append(String(decoding: request[..<max(n, 0)], as: UTF8.self)) }
                    for piece in pieces { _ = piece.withCString { write(c, $0, strlen($0)) } }
                    close(c)
                }
                close(server)
            }.start()
        }
    }

    static let content = "0123456789abcdef"

    func descriptor() throws -> OCI.Descriptor {
        let digest = "sha256:" + SHA256.hash(Array(Self.content.utf8)).hex
        return try JSON.decode(OCI.Descriptor.self, from: Array(#"{"digest":"\#(digest)","size":16}"#.utf8), what: "descriptor")
    }

    func fetch(_ script: Script, restarts: inout Int, credentials: Credentials? = nil) throws -> String {
        let client = RegistryClient(registry: "127.0.0.1:\(script.port)", repository: "t/b", credentials: credentials, timeout: 5)
        var got: [UInt8] = []
        var count = 0
        try client.blob(try descriptor(), restart: { got = []; count += 1 }) { got += $0 }
        restarts = count
        return String(decoding: got, as: UTF8.self)
    }

    /// The first connection is https's try, which a plain server fails.
    static let ping = [[""], ["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]]

    @Test func aBrokenDownloadGoesOnFromWhereItBroke() throws {
        let script = try Script(Self.ping + [
            ["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", "01234567"],
            ["HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 8-15/16\r\nContent-Length: 8\r\n\r\n", "89abcdef"],
        ])
        var restarts = -1
        #expect(try fetch(script, restarts: &restarts) == Self.content)
        #expect(restarts == 0)
        #expect(script.requests.last?.contains("\r\nRange: bytes=8-\r\n") == true, "\(script.requests)")
    }

    /// A blob the registry sends to its storage's URL (as registries on
    /// S3 do): followed, the registry's credentials kept from the storage.
    @Test func aRedirectToBlobStorageIsFollowedWithoutTheCredentials() throws {
        let storage = try Script([["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", Self.content]])
        let script = try Script(Self.ping + [
            ["HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\n\r\n"],
            ["HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:\(storage.port)/store/b?sig=x%2By\r\nContent-Length: 0\r\n\r\n"],
        ])
        var restarts = -1
        let got = try fetch(script, restarts: &restarts, credentials: Credentials(username: "u", password: "p"))
        #expect(got == Self.content && restarts == 0)
        let basic = "\r\nAuthorization: Basic " + Data("u:p".utf8).base64EncodedString() + "\r\n"
        #expect(script.requests.last?.contains(basic) == true, "\(script.requests)")
        let sent = storage.requests.first ?? ""
        #expect(sent.hasPrefix("GET /store/b?sig=x%2By HTTP/1.1\r\n") && sent.contains("\r\nHost: 127.0.0.1:\(storage.port)\r\n"), "\(sent)")
        #expect(!sent.lowercased().contains("authorization"), "\(sent)")
    }

    @Test func aRegistryWithoutRangesSendsItAllAgain() throws {
        let script = try Script(Self.ping + [
            ["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", "0123"],
            ["HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"],
            ["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", Self.content],
        ])
        var restarts = -1
        #expect(try fetch(script, restarts: &restarts) == Self.content)
        #expect(restarts == 1)
    }

    /// Too Many Requests passes, as a 5xx does: tried again after a wait.
    @Test func tooManyRequestsIsTriedAgain() throws {
        let script = try Script(Self.ping + [
            ["HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"],
            ["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", Self.content],
        ])
        var restarts = -1
        #expect(try fetch(script, restarts: &restarts) == Self.content)
        #expect(script.requests.count == 4)
        // Four of them: the last one's words.
        let busy = try Script(Self.ping + Array(repeating: ["HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"], count: 4))
        #expect(performing: { _ = try fetch(busy, restarts: &restarts) }, throws: { "\($0)".contains("429 Too Many Requests") })
        #expect(busy.requests.count == 6)
    }

    /// A 429's Retry-After is waited for; one longer than a minute is not,
    /// and the pull says how long the registry asked for.
    @Test func retryAfterIsHonoured() throws {
        let script = try Script(Self.ping + [
            ["HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n"],
            ["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", Self.content],
        ])
        var restarts = -1
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        #expect(try fetch(script, restarts: &restarts) == Self.content)
        clock_gettime(CLOCK_MONOTONIC, &end)
        // Without the header the next try comes after 0.25 s.
        let waited = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        #expect(waited >= 1.9, "\(waited) s")
        #expect(script.requests.count == 4)

        let long = try Script(Self.ping + [["HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n"]])
        #expect(performing: { _ = try fetch(long, restarts: &restarts) },
                throws: { "\($0)".hasSuffix("429 Too Many Requests: the registry asks to try again in 3600 s") })
        #expect(long.requests.count == 3)
    }

    @Test func retryAfterReadsSecondsAndDates() {
        let now: time_t = 784_111_777  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter("120", now: now)?.seconds == 120)
        #expect(RetryAfter(" 0 ", now: now)?.seconds == 0)
        #expect(RetryAfter("99999999999", now: now)?.seconds == Int.max)
        #expect(RetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", now: now)?.seconds == 30)
        #expect(RetryAfter("Sun, 06 Nov 1994 08:40:00 GMT", now: now)?.seconds == 0)
        #expect(RetryAfter("Sun, 06 Nov 1994 08:50:07 GMT trailing", now: now) == nil)
        #expect(RetryAfter("-5", now: now) == nil)
        #expect(RetryAfter("soon", now: now) == nil)
    }

    @Test func aWrongBlobIsRefusedNotRetried() throws {
        let script = try Script(Self.ping + [["HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", "0123456789abcdeX"]])
        var restarts = 0
        #expect(performing: { _ = try fetch(script, restarts: &restarts) }, throws: { "\($0)".contains("digest mismatch") })
        #expect(script.requests.count == 3)
    }
}
