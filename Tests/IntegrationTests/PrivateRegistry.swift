import Foundation
import Testing

/// A distribution registry of the test's own (Debian's docker-registry):
/// listening on a free port of 127.0.0.1 only, its configuration, storage
/// and log in the sandbox; with TLS (a certificate for 127.0.0.1 from a
/// private CA), basic authentication (htpasswd) or bearer tokens from a
/// TokenServer when asked. Stopped on deinit, so also when a test fails;
/// the sandbox removes its files.
final class PrivateRegistry {
    let box: Sandbox
    let dir: String
    /// Where it listens, as an image reference names it: "127.0.0.1:PORT".
    private(set) var host = ""
    private(set) var port: UInt16 = 0
    /// The private CA's certificate (PEM), with `tls`.
    let caFile: String?
    let credentials: (user: String, password: String)?
    private var process: Process?

    static let binary = "/usr/bin/docker-registry"
    static let skopeoBinary = "/usr/bin/skopeo"
    static let opensslBinary = "/usr/bin/openssl"

    static var installed: Bool {
        [binary, skopeoBinary, opensslBinary].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// What a manifest request accepts: OCI and Docker v2 manifests and
    /// their indexes.
    static let manifestTypes = [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]

    struct RegistryError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The registry's process id while it runs.
    var pid: pid_t { process?.processIdentifier ?? 0 }

    init(in box: Sandbox, tls: Bool = false, htpasswd: (user: String, password: String)? = nil,
         token: TokenServer? = nil) throws {
        let dir = box.dir + "/registry"
        self.box = box
        self.dir = dir
        credentials = htpasswd ?? token?.credentials
        caFile = tls ? dir + "/ca.pem" : nil
        for sub in ["", "/storage", "/tmp", "/registries.d", "/certs", "/docker", "/config"] {
            try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: true)
        }
        // skopeo's own settings, so that nothing of the host's applies: any
        // image accepted, no registry mirrors or aliases, no stored or
        // helper-held credentials.
        try #"{"default": [{"type": "insecureAcceptAnything"}]}"#.write(toFile: dir + "/policy.json", atomically: true, encoding: .utf8)
        try "".write(toFile: dir + "/registries.conf", atomically: true, encoding: .utf8)
        try #"{"auths": {}}"#.write(toFile: dir + "/auth.json", atomically: true, encoding: .utf8)

        var settings: [String] = []
        if let caFile {
            try makeCertificates(ca: caFile)
            settings += ["  tls:", "    certificate: \"\(dir)/server.pem\"", "    key: \"\(dir)/server.key\""]
        }
        if let htpasswd {
            let hash = try Self.bcrypt(htpasswd.password, scratch: dir)
            try "\(htpasswd.user):\(hash)\n".write(toFile: dir + "/htpasswd", atomically: true, encoding: .utf8)
            settings += ["auth:", "  htpasswd:", "    realm: gocker-test", "    path: \"\(dir)/htpasswd\""]
        }
        if let token {
            settings += ["auth:", "  token:", "    realm: \(token.realm)", "    service: \(token.service)",
                         "    issuer: \(token.issuer)", "    rootcertbundle: \"\(token.certificate)\""]
        }

        // A port free a moment ago may be taken before the registry binds
        // it: then another one.
        for _ in 0..<5 {
            port = try Self.freePort()
            host = "127.0.0.1:\(port)"
            try ([
                "version: 0.1",
                "log:",
                "  level: warn",
                "  accesslog:",
                "    disabled: true",
                "storage:",
                "  filesystem:",
                "    rootdirectory: \"\(dir)/storage\"",
                "  delete:",
                "    enabled: true",
                "  maintenance:",
                "    uploadpurging:",
                "      enabled: false",
                "http:",
                "  addr: \(host)",
                "  secret: \(UUID().uuidString)",
            ] + settings).joined(separator: "\n").appending("\n")
                .write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.binary)
            p.arguments = ["serve", dir + "/config.yml"]
            // REGISTRY_* variables would override the configuration.
            p.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("REGISTRY_") }
            _ = FileManager.default.createFile(atPath: dir + "/log", contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: dir + "/log")
            p.standardError = FileHandle(forWritingAtPath: dir + "/log")
            p.standardInput = FileHandle.nullDevice
            try p.run()
            process = p
            if try answers(p) { return }
        }
        throw RegistryError("docker-registry found no free port: \(box.contents(dir + "/log"))")
    }

    deinit { stop() }

    private func stop() {
        guard let p = process else { return }
        if p.isRunning {
            p.terminate()
            if !Sandbox.wait(5, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        process = nil
    }

    /// Waits up to 10 s for the registry to listen on its port and answer
    /// GET /v2/ (200, or 401 with authentication); false if it could not
    /// bind the port.
    private func answers(_ p: Process) throws -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !p.isRunning {
                p.waitUntilExit()
                process = nil
                let log = box.contents(dir + "/log")
                if log.contains("address already in use") { return false }
                throw RegistryError("docker-registry exited with status \(p.terminationStatus): \(log)")
            }
            if holdsPort(p.processIdentifier), let r = try? get("/v2/", authenticate: false), r.status == 200 || r.status == 401 {
                return true
            }
            usleep(50_000)
        }
        stop()
        throw RegistryError("docker-registry did not answer on \(host) within 10 s: \(box.contents(dir + "/log"))")
    }

    /// Whether `pid` listens on 127.0.0.1:port itself: another process
    /// that took the port first would answer too.
    private func holdsPort(_ pid: pid_t) -> Bool {
        let local = String(format: "0100007F:%04X", port)
        let sockets = box.contents("/proc/\(pid)/net/tcp").split(separator: "\n").dropFirst().compactMap { line -> String? in
            let f = line.split(separator: " ")
            return f.count > 9 && f[1] == local && f[3] == "0A" ? "socket:[\(f[9])]" : nil
        }
        return box.list("/proc/\(pid)/fd").contains { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")).map(sockets.contains) ?? false
        }
    }

    /// A port of 127.0.0.1 that nothing holds now.
    private static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let r = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, len) == 0 ? getsockname(fd, p, &len) : -1
            }
        }
        guard r == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return UInt16(bigEndian: sa.sin_port)
    }

    /// A private CA and its certificate for the registry: 127.0.0.1 and
    /// localhost as subject alternative names (Go reads no common name),
    /// for server authentication only. The CA's certificate is also
    /// skopeo's cert dir's ca.crt.
    private func makeCertificates(ca: String) throws {
        func openssl(_ args: [String]) throws {
            let r = try runTool(Self.opensslBinary, args, scratch: dir)
            guard r.status == 0 else { throw RegistryError("openssl \(args.joined(separator: " ")): \(r.output)") }
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + key + ["-keyout", dir + "/ca.key", "-out", ca, "-days", "2",
                     "-subj", "/CN=gocker test registry CA",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try openssl(["req", "-new"] + key + ["-keyout", dir + "/server.key", "-out", dir + "/server.csr", "-subj", "/CN=127.0.0.1"])
        try """
            subjectAltName=IP:127.0.0.1,DNS:localhost
            basicConstraints=critical,CA:FALSE
            keyUsage=critical,digitalSignature
            extendedKeyUsage=serverAuth

            """.write(toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", dir + "/server.csr", "-CA", ca, "-CAkey", dir + "/ca.key",
                     "-set_serial", "0x" + String(UInt64.random(in: 1...(UInt64.max >> 1)), radix: 16),
                     "-days", "2", "-extfile", dir + "/server.ext", "-out", dir + "/server.pem"])
        try FileManager.default.copyItem(atPath: ca, toPath: dir + "/certs/ca.crt")
    }

    /// The bcrypt hash the registry's htpasswd wants (it takes no other),
    /// from the C library's crypt (libxcrypt does bcrypt) through perl.
    /// Cost 4, the least bcrypt allows: the registry checks the password
    /// on every request.
    private static func bcrypt(_ password: String, scratch: String) throws -> String {
        let alphabet = Array("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        // 22 characters carry 132 bits, of which bcrypt uses 128: the last
        // one is among those whose low 4 bits are 0.
        let salt = String((0..<21).map { _ in alphabet.randomElement()! }) + String(".Oeu".randomElement()!)
        let r = try runTool("/usr/bin/perl", ["-e", "print crypt($ARGV[0], $ARGV[1])", password, "$2b$04$" + salt], scratch: scratch)
        guard r.status == 0, r.output.hasPrefix("$2b$04$"), r.output.count == 60 else {
            throw RegistryError("no bcrypt from crypt(3) through perl: \(r.status) \(r.output)")
        }
        return r.output
    }

    /// skopeo's flags to reach this registry, for `prefix` "src-" or
    /// "dest-" (copy) or "" (inspect, delete): TLS verified against the
    /// private CA, or plain HTTP; its credentials if it has any.
    func access(_ prefix: String = "") -> [String] {
        var flags = caFile == nil ? ["--\(prefix)tls-verify=false"] : ["--\(prefix)tls-verify=true", "--\(prefix)cert-dir", dir + "/certs"]
        if let credentials { flags += ["--\(prefix)creds", "\(credentials.user):\(credentials.password)"] }
        return flags
    }

    /// skopeo with this registry's policy, registries.conf and auth file
    /// (none of the host's), its big temporary files in the sandbox.
    @discardableResult
    func skopeo(_ args: [String]) throws -> (status: Int32, output: String) {
        var env = ProcessInfo.processInfo.environment
        env["REGISTRY_AUTH_FILE"] = dir + "/auth.json"
        env["CONTAINERS_REGISTRIES_CONF"] = dir + "/registries.conf"
        env["DOCKER_CONFIG"] = dir + "/docker"
        env["XDG_CONFIG_HOME"] = dir + "/config"
        return try runTool(Self.skopeoBinary, ["--policy", dir + "/policy.json", "--registries.d", dir + "/registries.d",
                                               "--tmpdir", dir + "/tmp", "--command-timeout", "60s"] + args,
                           environment: env, scratch: dir)
    }

    /// Pushes an OCI archive (`gocker save`'s) as `reference` ("repo:tag").
    func push(ociArchive: String, as reference: String) throws {
        let r = try skopeo(["copy"] + access("dest-") + ["oci-archive:" + ociArchive, "docker://\(host)/\(reference)"])
        guard r.status == 0 else { throw RegistryError("skopeo copy to \(host)/\(reference): \(r.output)") }
    }

    /// GET /v2/REPO/manifests/REFERENCE, accepting OCI and Docker v2
    /// manifests and indexes: its status and body.
    func manifest(_ repo: String, _ reference: String) throws -> (status: Int, body: String) {
        let r = try get("/v2/\(repo)/manifests/\(reference)", headers: ["Accept": Self.manifestTypes.joined(separator: ", ")])
        return (r.status, r.body)
    }

    /// GET `path` from the registry (over TLS verified against the private
    /// CA with `tls`), with the credentials unless `authenticate` is false:
    /// the status, the headers (lowercased names) and the body.
    func get(_ path: String, headers: [String: String] = [:], authenticate: Bool = true) throws
        -> (status: Int, headers: [String: String], body: String)
    {
        // HTTP/1.0: the answer is never chunked and ends when the registry
        // closes the connection.
        var request = "GET \(path) HTTP/1.0\r\nHost: \(host)\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
        if authenticate, let credentials {
            request += "Authorization: Basic \(Data("\(credentials.user):\(credentials.password)".utf8).base64EncodedString())\r\n"
        }
        request += "\r\n"
        let answer = try caFile.map { try exchangeOverTLS(request, ca: $0) } ?? exchange(request)
        guard let end = answer.range(of: "\r\n\r\n") else { throw RegistryError("no HTTP answer from \(host): \(answer)") }
        let head = answer[..<end.lowerBound].split(separator: "\r\n")
        let statusLine = head.first?.split(separator: " ") ?? []
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw RegistryError("no HTTP status from \(host): \(answer)") }
        var fields: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, fields, String(answer[end.upperBound...]))
    }

    /// Sends `request` to 127.0.0.1:port over plain TCP: everything the
    /// registry answers until it closes (5 s at most per read).
    private func exchange(_ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let bytes = Array(request.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            if n == 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Sends `request` over TLS with openssl s_client, the registry's
    /// certificate verified against the CA alone (not the host's store),
    /// for the address 127.0.0.1: everything the registry answers until it
    /// closes. openssl is there: it made the certificates.
    private func exchangeOverTLS(_ request: String, ca: String) throws -> String {
        let base = dir + "/tls-\(UUID().uuidString)"
        defer { for ext in [".in", ".out", ".err"] { try? FileManager.default.removeItem(atPath: base + ext) } }
        _ = FileManager.default.createFile(atPath: base + ".in", contents: Data(request.utf8))
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.opensslBinary)
        // -quiet: no session details on stdout, and no hang-up at the end
        // of the request: the answer is read until the registry closes.
        p.arguments = ["s_client", "-quiet", "-connect", host, "-CAfile", ca, "-no-CApath", "-no-CAstore",
                       "-verify_return_error", "-verify_ip", "127.0.0.1"]
        p.standardInput = FileHandle(forReadingAtPath: base + ".in")
        p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        p.standardError = FileHandle(forWritingAtPath: base + ".err")
        try p.run()
        if !Sandbox.wait(10, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        guard p.terminationReason == .exit && p.terminationStatus == 0 else {
            throw RegistryError("openssl s_client to \(host): \(p.terminationStatus) \(box.contents(base + ".err"))")
        }
        return box.contents(base + ".out")
    }

    /// An OCI archive of the sandbox's busybox image (`gocker save`),
    /// made once per sandbox; the image itself made by a first run when
    /// the sandbox has none yet.
    static func busyboxArchive(_ box: Sandbox) throws -> String {
        let archive = box.dir + "/busybox.oci.tar"
        if FileManager.default.fileExists(atPath: archive) { return archive }
        if try box.gocker(["image", "inspect", "busybox"]).status != 0 {
            let run = try box.gocker(["run", "--rm", "--network", "none", "busybox", "true"])
            guard run.status == 0 else { throw RegistryError("gocker run busybox: \(run.stderr)") }
        }
        let save = try box.gocker(["save", "-o", archive, "busybox"])
        guard save.status == 0 else { throw RegistryError("gocker save busybox: \(save.stderr)") }
        return archive
    }
}

/// The private registry the pull tests use: a pushed image is served, an
/// unknown tag is not, htpasswd wants credentials, TLS is verified against
/// the private CA, and the registry is gone with the object.
@Suite(.enabled(if: canRunContainers && (PrivateRegistry.installed || ProcessInfo.processInfo.environment["CI"] == "true"),
                "needs root and Debian's docker-registry, skopeo and openssl"))
struct PrivateRegistryTests {
    /// The config digest in a `gocker save` archive's manifest.json.
    func configDigest(_ archive: String, _ box: Sandbox) throws -> String {
        let r = try runTool("/bin/tar", ["-xOf", archive, "manifest.json"], scratch: box.dir)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [[String: Any]], "\(r.output)")
        let config = try #require(entries.first?["Config"] as? String)
        return "sha256:" + (config as NSString).lastPathComponent
    }

    @Test func aPushedImageIsServedAnUnknownTagIsNotAndTheRegistryGoesWithTheObject() throws {
        let box = try Sandbox()
        let archive = try PrivateRegistry.busyboxArchive(box)
        var pid: pid_t = 0
        do {
            let registry = try PrivateRegistry(in: box)
            pid = registry.pid
            #expect(registry.host == "127.0.0.1:\(registry.port)" && registry.caFile == nil)
            try registry.push(ociArchive: archive, as: "test/busybox:1")
            let m = try registry.manifest("test/busybox", "1")
            #expect(m.status == 200, "\(m.body)")
            let manifest = try #require(try JSONSerialization.jsonObject(with: Data(m.body.utf8)) as? [String: Any], "\(m.body)")
            let layers = manifest["layers"] as? [[String: Any]] ?? []
            #expect(!layers.isEmpty && layers.allSatisfy { ($0["digest"] as? String)?.hasPrefix("sha256:") == true }, "\(m.body)")
            // The very image gocker saved: its config went up as it is.
            let config = manifest["config"] as? [String: Any]
            #expect(config?["digest"] as? String == (try configDigest(archive, box)), "\(m.body)")
            let nope = try registry.manifest("test/busybox", "nope")
            #expect(nope.status == 404 && nope.body.contains("MANIFEST_UNKNOWN"), "\(nope.status) \(nope.body)")
        }
        let gone = kill(pid, 0) == -1 && errno == ESRCH
        #expect(pid > 0 && gone, "docker-registry \(pid) left running")
        box.expectNothingLeft()
    }

    @Test func withHtpasswdItWantsBasicCredentials() throws {
        let box = try Sandbox()
        let archive = try PrivateRegistry.busyboxArchive(box)
        let registry = try PrivateRegistry(in: box, htpasswd: (user: "alice", password: "open sesame"))
        let anonymous = try registry.get("/v2/", authenticate: false)
        #expect(anonymous.status == 401 && anonymous.headers["www-authenticate"] == #"Basic realm="gocker-test""#, "\(anonymous)")
        #expect(try registry.get("/v2/").status == 200)
        let wrong = try registry.skopeo(["copy", "--dest-tls-verify=false", "--dest-creds", "alice:sesame",
                                         "oci-archive:" + archive, "docker://\(registry.host)/test/busybox:1"])
        #expect(wrong.status != 0 && wrong.output.contains("unauthorized"), "\(wrong.output)")
        try registry.push(ociArchive: archive, as: "test/busybox:1")
        let m = try registry.manifest("test/busybox", "1")
        #expect(m.status == 200, "\(m.body)")
        #expect(try registry.get("/v2/test/busybox/manifests/1", authenticate: false).status == 401)
    }

    @Test func withTLSItIsReachedThroughItsPrivateCA() throws {
        let box = try Sandbox()
        let archive = try PrivateRegistry.busyboxArchive(box)
        let registry = try PrivateRegistry(in: box, tls: true)
        let ca = try #require(registry.caFile)
        let san = try runTool(PrivateRegistry.opensslBinary, ["x509", "-in", registry.dir + "/server.pem", "-noout", "-ext", "subjectAltName"],
                              scratch: box.dir)
        #expect(san.output.contains("IP Address:127.0.0.1") && san.output.contains("DNS:localhost"), "\(san.output)")
        let verify = try runTool(PrivateRegistry.opensslBinary, ["verify", "-CAfile", ca, registry.dir + "/server.pem"], scratch: box.dir)
        #expect(verify.status == 0, "\(verify.output)")

        // skopeo verifies the registry with the CA in its cert dir, and
        // without it refuses the registry.
        try registry.push(ociArchive: archive, as: "test/busybox:1")
        let inspect = try registry.skopeo(["inspect"] + registry.access() + ["docker://\(registry.host)/test/busybox:1"])
        #expect(inspect.status == 0 && inspect.output.contains(#""RepoTags""#), "\(inspect.output)")
        let unverified = try registry.skopeo(["inspect", "--tls-verify=true", "docker://\(registry.host)/test/busybox:1"])
        #expect(unverified.status != 0 && unverified.output.contains("certificate signed by unknown authority"), "\(unverified.output)")

        // A GET over https, verified against the CA.
        let m = try registry.manifest("test/busybox", "1")
        #expect(m.status == 200 && m.body.contains(#""layers""#), "\(m.status) \(m.body)")
    }
}
