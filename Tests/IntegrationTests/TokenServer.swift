import Foundation
import Testing

/// A token server of the test's own, for a PrivateRegistry that wants
/// bearer tokens (the distribution registry's `auth: token`, the protocol
/// of Docker Hub's auth.docker.io): on 127.0.0.1, it answers
/// `GET /token?service=...&scope=...` with a JWT signed RS256 by a key of
/// its own, whose self-signed certificate is the registry's
/// `rootcertbundle` and rides in the token's `x5c` header. Anonymous
/// requests get `pull` of what they ask; the right basic credentials
/// `pull` and `push`; wrong ones a 401. Every request is recorded. Stopped
/// on deinit, so also when a test fails.
final class TokenServer {
    let issuing: TokenIssuer
    let port: UInt16
    private let listener: Int32
    private let finished = DispatchSemaphore(value: 0)

    var credentials: (user: String, password: String) { issuing.credentials }
    var service: String { issuing.service }
    var issuer: String { issuing.issuer }
    var certificate: String { issuing.dir + "/token.pem" }
    var realm: String { "http://127.0.0.1:\(port)/token" }
    var requests: [TokenIssuer.Request] { issuing.requests }

    init(in box: Sandbox, user: String, password: String) throws {
        let dir = box.dir + "/token-server"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let made = try runTool(PrivateRegistry.opensslBinary,
                               ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/token.key",
                                "-out", dir + "/token.pem", "-days", "2", "-subj", "/CN=gocker test token signer"], scratch: dir)
        guard made.status == 0 else { throw PrivateRegistry.RegistryError("openssl req for the token signer: \(made.output)") }
        issuing = TokenIssuer(dir: dir, credentials: (user, password))

        (listener, port) = try listenOnLoopback()
        // The thread holds what it uses, not the server: the server's
        // deinit ends it (accept fails once the socket is shut down).
        let (fd, issuing, done) = (listener, issuing, finished)
        Thread {
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    // Shut down (EINVAL) ends it; a caller gone early does not.
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                issuing.serve(c)
                close(c)
            }
            done.signal()
        }.start()
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
        close(listener)
    }
}

/// What the token server answers, and what it was asked.
final class TokenIssuer: @unchecked Sendable {
    let dir: String
    let credentials: (user: String, password: String)
    let service = "gocker-test-registry"
    let issuer = "gocker-test-token-server"
    private let lock = NSLock()
    private var seen: [Request] = []

    init(dir: String, credentials: (user: String, password: String)) {
        self.dir = dir
        self.credentials = credentials
    }

    var requests: [Request] { lock.withLock { seen } }

    /// What a client asked for: its basic credentials' user ("" for none,
    /// "?" for wrong ones) and the scopes, as sent.
    struct Request: Equatable, CustomStringConvertible {
        var user: String
        var service: String?
        var scopes: [String]
        /// The actions asked for each repository (each scope
        /// `repository:NAME:ACTIONS` a parameter of its own; a scope
        /// that is not so is under "?").
        var actions: [String: Set<String>] {
            scopes.reduce(into: [:]) { all, scope in
                let parts = scope.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 3, parts[0] == "repository" else {
                    all["?", default: []].insert(scope)
                    return
                }
                all[String(parts[1]), default: []].formUnion(parts[2].split(separator: ",").map(String.init))
            }
        }
        var description: String { "\(user.isEmpty ? "anonymous" : user) \(service ?? "-") \(scopes)" }
    }

    /// One request on `c`: its head read (5 s at most), the answer written,
    /// the connection then closed.
    func serve(_ c: Int32) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
        while !head.ends(with: Array("\r\n\r\n".utf8)) && head.count < 65536 {
            let n = read(c, &buf, buf.count)
            if n <= 0 { return }
            head += buf[..<n]
        }
        let (status, body) = answer(String(decoding: head, as: UTF8.self))
        let reason = status == 200 ? "OK" : status == 401 ? "Unauthorized" : "Bad Request"
        let reply = Array(("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\n"
                           + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body).utf8)
        _ = reply.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
    }

    private func answer(_ head: String) -> (Int, String) {
        let lines = head.components(separatedBy: "\r\n")
        let target = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        guard let url = URLComponents(string: target), url.path == "/token" else {
            return (400, #"{"errors":[{"code":"UNSUPPORTED","message":"not a token request"}]}"#)
        }
        let items = url.queryItems ?? []
        var request = Request(user: "", service: items.first { $0.name == "service" }?.value,
                              scopes: items.filter { $0.name == "scope" }.compactMap(\.value))
        var mayPush = false
        let basic = lines.dropFirst().first { $0.lowercased().hasPrefix("authorization: basic ") }
        if let basic {
            let given = Data(base64Encoded: String(basic.dropFirst("authorization: basic ".count))).map { String(decoding: $0, as: UTF8.self) }
            mayPush = given == "\(credentials.user):\(credentials.password)"
            request.user = mayPush ? credentials.user : "?"
        }
        lock.withLock { seen.append(request) }
        if basic != nil && !mayPush {
            return (401, #"{"errors":[{"code":"UNAUTHORIZED","message":"wrong user name or password"}]}"#)
        }
        // Each repository granted what this caller may have of what it asked.
        let asked = request.actions
        if let odd = asked["?"] {
            return (400, #"{"errors":[{"code":"UNSUPPORTED","message":"not a repository scope: \#(odd.sorted())"}]}"#)
        }
        let access: [[String: Any]] = asked.sorted { $0.key < $1.key }.map { name, actions in
            ["type": "repository", "name": name, "actions": actions.filter { $0 == "pull" || ($0 == "push" && mayPush) }.sorted()]
        }
        guard let token = try? sign(["iss": issuer, "sub": request.user, "aud": service, "access": access]) else {
            return (400, #"{"errors":[{"code":"UNKNOWN","message":"could not sign"}]}"#)
        }
        return (200, #"{"token":"\#(token)","expires_in":300}"#)
    }

    /// A JWT of `claims` (with its times and an id), signed by the key.
    private func sign(_ claims: [String: Any]) throws -> String {
        func base64url(_ data: Data) -> String {
            data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let der = try String(contentsOfFile: dir + "/token.pem", encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("-----") }.joined()
        let now = Int(Date().timeIntervalSince1970)
        var all = claims
        all["iat"] = now - 10
        all["nbf"] = now - 10
        all["exp"] = now + 300
        all["jti"] = UUID().uuidString
        let header = try JSONSerialization.data(withJSONObject: ["alg": "RS256", "typ": "JWT", "x5c": [der]])
        let payload = try JSONSerialization.data(withJSONObject: all)
        let input = base64url(header) + "." + base64url(payload)
        let file = dir + "/input-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file); try? FileManager.default.removeItem(atPath: file + ".sig") }
        try input.write(toFile: file, atomically: false, encoding: .utf8)
        let signed = try runTool(PrivateRegistry.opensslBinary,
                                 ["dgst", "-sha256", "-sign", dir + "/token.key", "-binary", "-out", file + ".sig", file], scratch: dir)
        guard signed.status == 0 else { throw PrivateRegistry.RegistryError("openssl dgst -sign: \(signed.output)") }
        return input + "." + base64url(try Data(contentsOf: URL(fileURLWithPath: file + ".sig")))
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
