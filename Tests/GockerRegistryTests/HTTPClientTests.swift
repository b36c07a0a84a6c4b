import Foundation
import GockerCore
import GockerRegistry
import Testing

/// The HTTP/1.1 client against a server on loopback that sends its answer
/// in pieces, with pauses between them: lines and chunks split anywhere
/// must read the same as in one piece.
struct HTTPClientTests {
    /// Serves one connection: reads the request, sends `pieces` with a
    /// pause after each, closes. The port.
    func serve(_ pieces: [String]) throws -> UInt16 {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(server >= 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, len) == 0 && getsockname(server, $0, &len) == 0 }
        })
        try #require(listen(server, 1) == 0)
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
            close(c)
        }.start()
        return UInt16(bigEndian: addr.sin_port)
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

    @Test func aSilentServerTimesOut() throws {
        let port = try serve(["", ""])
        let url = HTTPURL(secure: false, host: "127.0.0.1", port: Int(port), target: "/")
        #expect(performing: { _ = try HTTPClient(timeout: 1).send("GET", url) }, throws: { "\($0)".contains("timeout") || "\($0)".contains("closed") })
    }
}

struct DigestAndLoopbackTests {
    @Test func onlySha256HexDigests() {
        #expect(RegistryReference.isDigest("sha256:" + String(repeating: "0a", count: 32)))
        for bad in ["sha256:" + String(repeating: "0A", count: 32), "sha512:" + String(repeating: "a", count: 64),
                    "sha256:/../../../../etc/cron.d/" + String(repeating: "a", count: 34), "sha256:" + String(repeating: "a", count: 63),
                    "latest", "sha256:" + String(repeating: "é", count: 32)] {
            #expect(!RegistryReference.isDigest(bad), "\(bad)")
        }
    }

    @Test func loopbackIsAnAddressNotAName() {
        #expect(RegistryReference.isLoopback("127.0.0.2:5000"))
        #expect(!RegistryReference.isLoopback("127.example.com"))
        #expect(!RegistryReference.isLoopback("127.0.0.1.nip.io:5000"))
    }
}
