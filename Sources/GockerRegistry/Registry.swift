import FoundationEssentials
import Glibc
import GockerCore

/// Where an image lives: docker's naming rules on top of ImageReference
/// (`alpine` is docker.io's `library/alpine:latest`), and an optional
/// `@sha256:` digest.
public struct RegistryReference: Sendable, CustomStringConvertible {
    /// The registry as the name gives it: "docker.io" or "host[:port]".
    public var registry: String
    /// The repository on it: "library/alpine", "test/busybox".
    public var repository: String
    public var tag: String?
    public var digest: String?
    /// Whether the text named its tag (docker says "Using default tag" when not).
    public var givenTag: Bool
    /// The name gocker keeps the image under (docker.io's prefixes dropped).
    public var local: ImageReference

    public init(parsing text: String) throws(GockerError) {
        var name = Substring(text)
        if let at = text.firstIndex(of: "@") {
            let d = String(text[text.index(after: at)...])
            guard OCI.isDigest(d) else {
                throw GockerError(.invalidArgument, "invalid reference format: \"\(text)\"")
            }
            digest = d
            name = text[..<at]
        }
        // A digest alone names the content: a tag beside it is ignored, as docker does.
        let parsed = try OCI.shortName(String(name))
        let lastPart = name.split(separator: "/").last ?? ""
        givenTag = lastPart.contains(":")
        tag = digest == nil || givenTag ? parsed.tag : nil
        local = parsed
        let first = parsed.name.split(separator: "/").first.map(String.init) ?? parsed.name
        if parsed.name.contains("/") && (first.contains(".") || first.contains(":") || first == "localhost"
                                         || first.hasPrefix("[") || first.contains(where: \.isUppercase)) {
            registry = first
            repository = String(parsed.name.dropFirst(first.count + 1))
        } else {
            registry = "docker.io"
            repository = parsed.name.contains("/") ? parsed.name : "library/" + parsed.name
        }
    }

    /// The reference a manifest is asked for by: the digest, else the tag.
    public var reference: String { digest ?? tag ?? "latest" }

    /// As docker says it: "127.0.0.1:5000/test/busybox:1",
    /// "docker.io/library/alpine:latest", "...@sha256:...".
    public var description: String {
        registry + "/" + repository + (digest.map { "@" + $0 } ?? ":" + (tag ?? "latest"))
    }

    /// Whether the registry is on this machine's loopback, where plain
    /// HTTP is allowed without being asked for (as docker allows it).
    public static func isLoopback(_ registry: String) -> Bool {
        let host = HTTPURL.split(authority: Substring(registry))?.0 ?? registry
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        return inet_pton(AF_INET6, host, &v6) == 1 && withUnsafeBytes(of: &v6) { $0.elementsEqual([UInt8](repeating: 0, count: 15) + [1]) }
    }

}

/// A registry's credentials, from docker's config.json (`auths`), where
/// `gocker login` keeps them: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
public struct Credentials: Sendable, Equatable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    public static var configPath: String {
        if let dir = Sys.env("DOCKER_CONFIG"), !dir.isEmpty { return dir + "/config.json" }
        return (Sys.env("HOME") ?? "/root") + "/.docker/config.json"
    }

    /// The key docker files a registry's entry under.
    public static func key(_ registry: String) -> String {
        registry == "docker.io" ? "https://index.docker.io/v1/" : registry
    }

    /// The stored credentials for `registry`, if any.
    public static func stored(for registry: String) throws(GockerError) -> Credentials? {
        let file = try DockerConfigFile.read()
        let auths = file.auths ?? [:]
        let candidates = [key(registry), registry, "https://" + registry, "http://" + registry]
        guard let entry = candidates.lazy.compactMap({ auths[$0] }).first, let auth = entry.auth, !auth.isEmpty else {
            return nil
        }
        guard let data = Data(base64Encoded: auth), let text = String(data: data, encoding: .utf8),
              let colon = text.firstIndex(of: ":") else {
            throw GockerError(.invalidArgument, "\(configPath): the credentials of \(registry) are not base64 of user:password")
        }
        return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
    }

    /// Keeps these credentials for `registry` (the file 0600, written
    /// whole and renamed into place; its other members kept).
    public func store(for registry: String) throws(GockerError) {
        var file = try DockerConfigFile.read()
        var auths = file.auths ?? [:]
        var entry = auths[Self.key(registry)] ?? AuthEntry()
        entry.auth = Data((username + ":" + password).utf8).base64EncodedString()
        auths[Self.key(registry)] = entry
        file.auths = auths
        try file.write()
    }

    /// Forgets `registry`'s credentials; false when none were kept.
    public static func remove(for registry: String) throws(GockerError) -> Bool {
        var file = try DockerConfigFile.read()
        guard var auths = file.auths else { return false }
        let keys = [key(registry), registry, "https://" + registry, "http://" + registry]
        guard keys.contains(where: { auths[$0] != nil }) else { return false }
        for k in keys { auths.removeValue(forKey: k) }
        file.auths = auths
        try file.write()
        return true
    }

    var basic: String {
        "Basic " + Data((username + ":" + password).utf8).base64EncodedString()
    }
}

/// gocker's registry settings, `registries.json` in `$GOCKER_CONFIG`, else
/// in /etc/gocker (no file: none), in daemon.json's words where docker has
/// them:
///
///     {"registry-mirrors": ["https://mirror.example.com"],
///      "mirrors": {"registry.example.com:5000": ["http://127.0.0.1:5001"]},
///      "insecure-registries": ["registry.lan:5000"]}
///
/// `registry-mirrors` are docker.io's (as docker's); `mirrors` name any
/// registry's. A pull asks each mirror of the image's registry in turn, and
/// the registry itself after them: a mirror that fails or lacks the image is
/// passed over. A mirror is spoken to as its URL says (http or https).
/// `insecure-registries` may be spoken to over plain http, as
/// GOCKER_INSECURE_REGISTRIES's. A member not named here is an error.
public struct RegistryConfig: JSONShape {
    public var unmodeled: [String: JSONValue] = [:]
    var dockerMirrors: [String]?
    /// Each registry's list of URLs (checked by `load`).
    var mirrorsByRegistry: [String: JSONValue]?
    var insecure: [String]?

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("registry-mirrors", &dockerMirrors)
        try v.field("mirrors", &mirrorsByRegistry)
        try v.field("insecure-registries", &insecure)
    }

    public static var path: String { (Sys.env("GOCKER_CONFIG") ?? "/etc/gocker") + "/registries.json" }

    /// The file, read and checked (every mirror a URL without a path).
    public static func load(from path: String = Self.path) throws(GockerError) -> RegistryConfig {
        guard Sys.exists(path) else { return RegistryConfig() }
        let bytes = try performing("read \(path)") { () throws(SystemCallError) in try Sys.readFile(path) }
        let config: RegistryConfig
        do {
            config = try RegistryConfig(jsonBytes: bytes)
        } catch {
            throw GockerError(.invalidConfig, "\(path): \(error)")
        }
        if let unknown = config.unmodeled.keys.sorted().first {
            throw GockerError(.invalidConfig, "\(path): unsupported member \"\(unknown)\" (registry-mirrors, mirrors and insecure-registries are)")
        }
        for (registry, list) in config.mirrorsByRegistry ?? [:] {
            guard case .array(let items) = list, items.allSatisfy({ if case .string = $0 { true } else { false } }) else {
                throw GockerError(.invalidConfig, "\(path): the mirrors of \(registry) must be a list of URLs")
            }
        }
        for (registry, urls) in config.all {
            for url in urls {
                guard let parsed = try? HTTPURL(parsing: url), parsed.target == "/" else {
                    throw GockerError(.invalidConfig, "\(path): mirror of \(registry): \"\(url)\" is not an http(s)://HOST[:PORT] URL")
                }
            }
        }
        return config
    }

    /// Each registry's mirror URLs as written.
    var all: [(String, [String])] {
        let named = (mirrorsByRegistry ?? [:]).sorted { $0.key < $1.key }.map { (registry, list) -> (String, [String]) in
            guard case .array(let items) = list else { return (registry, []) }
            return (registry, items.compactMap { if case .string(let url) = $0 { url } else { nil } })
        }
        return (dockerMirrors.map { [("docker.io", $0)] } ?? []) + named
    }

    /// The mirrors of `registry`, in order (their API's /v2/ URLs).
    public func mirrors(for registry: String) -> [HTTPURL] {
        all.filter { $0.0 == registry }.flatMap(\.1).compactMap { try? HTTPURL(parsing: $0) }.map { url in
            var v2 = url
            v2.target = "/v2/"
            return v2
        }
    }

    public var insecureRegistries: [String] { insecure ?? [] }
}

/// docker's config.json, as far as gocker reads it: `auths`, each a
/// base64 "user:password"; every other member is kept as it was.
struct DockerConfigFile: JSONShape {
    var unmodeled: [String: JSONValue] = [:]
    var auths: [String: AuthEntry]?

    init() {}

    mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("auths", &auths)
    }

    static func read() throws(GockerError) -> DockerConfigFile {
        let path = Credentials.configPath
        guard Sys.exists(path) else { return DockerConfigFile() }
        let bytes = try performing("read \(path)") { () throws(SystemCallError) in try Sys.readFile(path) }
        do {
            return try DockerConfigFile(jsonBytes: bytes)
        } catch {
            throw GockerError(.invalidConfig, "\(path): \(error)")
        }
    }

    func write() throws(GockerError) {
        let path = Credentials.configPath
        try performing("write \(path)") { () throws(SystemCallError) in
            try Sys.mkdirAll(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]), mode: 0o700)
            try Sys.writeFileAtomic(path, jsonBytes, mode: 0o600)
        }
    }
}

struct AuthEntry: JSONShape {
    var unmodeled: [String: JSONValue] = [:]
    var auth: String?

    init() {}

    mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("auth", &auth)
    }
}

/// A `WWW-Authenticate` challenge: its scheme and parameters.
public struct Challenge: Sendable, Equatable {
    public var scheme: String
    public var parameters: [String: String]

    /// The first challenge of a header: `Bearer realm="...",service="..."`.
    public init?(_ header: String) {
        let trimmed = header.trimmed(" \t")
        guard let space = trimmed.firstIndex(of: " ") else {
            guard !trimmed.isEmpty else { return nil }
            scheme = trimmed.lowercased()
            parameters = [:]
            return
        }
        scheme = trimmed[..<space].lowercased()
        parameters = [:]
        var rest = Substring(trimmed[space...])
        while true {
            rest = rest.drop { $0 == " " || $0 == "," || $0 == "\t" }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmed(" \t").lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped { value.append(c); escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { break } else { value.append(c) }
                }
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end].trimmed(" \t")
                rest = rest[end...]
            }
            parameters[key] = value
        }
    }
}

/// The distribution API of one registry, for one repository: the scheme
/// found once (https; plain http only on loopback or where the user allowed
/// it), and authorisation answered as challenged (bearer tokens, anonymous or
/// with the stored credentials, or basic).
public final class RegistryClient {
    public let registry: String
    public let repository: String
    var http: HTTPClient
    let credentials: Credentials?
    private var base: HTTPURL?
    private var authorization: String?
    /// What a token is asked for: pulling, or pushing too.
    public var actions = "pull"
    /// Other repositories a token must let this one read (a push's
    /// cross-repository mounts).
    public var readable: [String] = []

    /// Registries that may be spoken to over plain HTTP (docker's
    /// --insecure-registry): GOCKER_INSECURE_REGISTRIES, comma-separated,
    /// and registries.json's `insecure-registries`.
    public static var insecureRegistries: Set<String> {
        Set((Sys.env("GOCKER_INSECURE_REGISTRIES") ?? "").split(separator: ",").map { String($0.trimmed(" ")) })
            .union((try? RegistryConfig.load())?.insecureRegistries ?? [])
    }

    /// Where gocker's own per-registry TLS files are:
    /// `$GOCKER_CONFIG/certs.d/HOST[:PORT]/ca.crt` (docker's layout), else
    /// /etc/docker/certs.d.
    public static func caFile(for registry: String) -> String? {
        let dirs = [Sys.env("GOCKER_CONFIG").map { $0 + "/certs.d" }, "/etc/docker/certs.d"].compactMap { $0 }
        for dir in dirs where Sys.exists("\(dir)/\(registry)/ca.crt") { return "\(dir)/\(registry)/ca.crt" }
        return nil
    }

    public convenience init(_ ref: RegistryReference, credentials: Credentials?, timeout: Int = 60) {
        self.init(registry: ref.registry, repository: ref.repository, credentials: credentials, timeout: timeout)
    }

    /// `repository` "": the registry alone (login). `endpoint`: the API's
    /// /v2/ URL where it is known (a mirror's), else https, then http where
    /// that is allowed.
    public init(registry: String, repository: String, credentials: Credentials?, timeout: Int = 60,
                endpoint: HTTPURL? = nil) {
        self.registry = registry
        self.repository = repository
        self.credentials = credentials
        base = endpoint
        http = HTTPClient(timeout: timeout) { url in
            url.authority == registry || url.host == registry ? RegistryClient.caFile(for: registry) : nil
        }
        // A peer that resets the connection is an error to report, not a
        // signal that ends gocker (a container's process gets its signals
        // back to their defaults before it runs).
        signal(SIGPIPE, SIG_IGN)
    }

    /// Another client of the same repository, with the endpoint and the
    /// authorisation this one found: a connection of its own for a
    /// download beside this one's, which `stopper` can stop.
    public func sibling(stopper: HTTPStop? = nil) -> RegistryClient {
        let other = RegistryClient(registry: registry, repository: repository, credentials: credentials, timeout: http.timeout)
        other.http.stopper = stopper
        other.base = base
        other.authorization = authorization
        other.actions = actions
        other.readable = readable
        return other
    }

    /// The API's host: docker.io's is registry-1.docker.io.
    var apiHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

    /// `GET /v2/` over https, or over http where that is allowed and https
    /// failed to connect or to shake hands.
    private func endpoint() throws(GockerError) -> HTTPURL {
        if let base { return base }
        guard let (host, port) = HTTPURL.split(authority: Substring(apiHost)) else {
            throw GockerError(.invalidArgument, "invalid registry \"\(registry)\"")
        }
        let secure = HTTPURL(secure: true, host: host, port: port, target: "/v2/")
        do {
            let (_, body, _) = try http.send("GET", secure)
            try body.forEach { _ in }
            base = secure
        } catch {
            guard RegistryReference.isLoopback(registry) || Self.insecureRegistries.contains(registry) else { throw error }
            // Plain http, where it answers as a registry does (200 or 401).
            // Else a certificate that failed verification is what is said,
            // and any other failure http's own (a server that speaks no TLS).
            let plain = HTTPURL(secure: false, host: host, port: port ?? 80, target: "/v2/")
            do throws(GockerError) {
                let (response, body, _) = try http.send("GET", plain)
                try body.forEach { _ in }
                guard response.status == 200 || response.status == 401 else {
                    throw GockerError(.system, "\(plain): \(response.status) \(response.reason)")
                }
            } catch let plainError {
                throw error.message.contains("failed to verify certificate") ? error : plainError
            }
            base = plain
        }
        return base!
    }

    /// A request under /v2/ answered with its body to read; a 401 is met
    /// once with the authorisation its challenge asks for.
    public func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                        file: (path: String, size: Int64)? = nil) throws(GockerError) -> (HTTPResponse, HTTPBody, HTTPURL) {
        var url = try endpoint()
        url.target = "/v2/" + path
        return try request(method, url, headers: headers, body: body, file: file)
    }

    /// The same at a URL the registry gave (an upload's Location): the
    /// credentials go only to the registry's own host.
    public func request(_ method: String, _ url: HTTPURL, headers: [(String, String)] = [], body: [UInt8]? = nil,
                        file: (path: String, size: Int64)? = nil) throws(GockerError) -> (HTTPResponse, HTTPBody, HTTPURL) {
        let own = try endpoint()
        let ours = url.authority == own.authority && url.secure == own.secure
        var sent = headers
        if ours, let authorization { sent.append(("Authorization", authorization)) }
        let first = try http.send(method, url, headers: sent, body: body, file: file)
        guard first.0.status == 401, ours else { return first }
        guard let header = first.0.header("WWW-Authenticate"), let challenge = Challenge(header) else {
            throw GockerError(.system, "\(url): unauthorized, and no WWW-Authenticate challenge")
        }
        authorization = try answer(challenge, scope: "repository:\(repository):\(actions)")
        return try http.send(method, url, headers: headers + [("Authorization", authorization!)], body: body, file: file)
    }

    /// Whether the repository has the blob already (HEAD).
    public func hasBlob(_ digest: String) throws(GockerError) -> Bool {
        let (response, body, _) = try request("HEAD", "\(repository)/blobs/\(digest)")
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw Self.failure("\(registry)/\(repository): blob \(digest)", response, body)
        }
    }

    /// Uploads a blob in one PUT (the distribution API's monolithic
    /// upload): from a file, or bytes. With `mount`, the registry is first
    /// asked to take it from that repository of its own; the repository
    /// it came from, when it did.
    @discardableResult
    public func upload(_ d: OCI.Descriptor, file: String? = nil, bytes: [UInt8]? = nil,
                       mount: String? = nil) throws(GockerError) -> String? {
        let what = "\(registry)/\(repository): upload \(d.digest)"
        var start = "\(repository)/blobs/uploads/"
        if let mount { start += "?mount=\(HTTPURL.escape(d.digest))&from=\(HTTPURL.escape(mount))" }
        let (started, startBody, at) = try request("POST", start, body: [])
        if mount != nil && started.status == 201 { return mount }
        guard started.status == 202, let location = started.header("Location") else { throw Self.failure(what, started, startBody) }
        var url = try at.resolving(location)
        url.target += (url.target.contains("?") ? "&" : "?") + "digest=" + HTTPURL.escape(d.digest)
        let (done, doneBody, _) = try request("PUT", url, headers: [("Content-Type", "application/octet-stream")],
                                              body: bytes ?? [], file: file.map { ($0, d.size) })
        guard done.status == 201 else { throw Self.failure(what, done, doneBody) }
        return nil
    }

    /// Puts a manifest under a tag; the registry's digest of it.
    public func putManifest(_ bytes: [UInt8], mediaType: String, tag: String) throws(GockerError) -> String {
        let (response, body, _) = try request("PUT", "\(repository)/manifests/\(tag)", headers: [("Content-Type", mediaType)],
                                              body: bytes)
        guard response.status == 201 else { throw Self.failure("\(registry)/\(repository): manifest \(tag)", response, body) }
        return response.header("Docker-Content-Digest") ?? "sha256:" + SHA256.hash(bytes).hex
    }

    /// The Authorization header a challenge asks for.
    private func answer(_ challenge: Challenge, scope: String?) throws(GockerError) -> String {
        switch challenge.scheme {
        case "basic":
            guard let credentials else {
                throw GockerError(.invalidArgument, "\(registry): no basic auth credentials (see gocker login)")
            }
            return credentials.basic
        case "bearer":
            guard let realmText = challenge.parameters["realm"] else {
                throw GockerError(.system, "\(registry): a bearer challenge without a realm")
            }
            var realm = try HTTPURL(parsing: realmText)
            if !realm.secure && base?.secure != false {
                throw GockerError(.invalidArgument, "\(registry): refusing the plain-http token realm \(realm.authority) of an https registry")
            }
            var query: [String] = []
            if let service = challenge.parameters["service"] { query.append("service=" + HTTPURL.escape(service)) }
            // The challenge's scope is a space-separated list (a push that
            // mounts asks for two repositories): each one a parameter of its
            // own, as docker sends them.
            let challenged = (challenge.parameters["scope"] ?? "").split(separator: " ").map(String.init)
            var scopes = challenged.isEmpty ? scope.map { [$0] } ?? [] : challenged
            if scope != nil { scopes += readable.map { "repository:\($0):pull" } }
            var asked = Set<String>()
            for one in scopes where asked.insert(one).inserted { query.append("scope=" + HTTPURL.escape(one)) }
            if !query.isEmpty { realm.target += (realm.target.contains("?") ? "&" : "?") + query.joined(separator: "&") }
            let headers = credentials.map { [("Authorization", $0.basic)] } ?? []
            let (response, body, _) = try http.send("GET", realm, headers: headers)
            let bytes = try body.bytes(limit: 1 << 20)
            guard response.status == 200 else {
                throw GockerError(.invalidArgument, "\(registry): the token request was answered \(response.status)\(Self.errors(bytes).map { ": " + $0 } ?? "")")
            }
            struct Token: Decodable { var token: String?; var access_token: String? }
            let token = try JSON.decode(Token.self, from: bytes, what: "the token of \(realm.authority)")
            guard let value = token.token ?? token.access_token, !value.isEmpty else {
                throw GockerError(.system, "\(registry): the token server answered no token")
            }
            return "Bearer " + value
        default:
            throw GockerError(.invalidArgument, "\(registry): unsupported authentication scheme \"\(challenge.scheme)\"")
        }
    }

    /// `gocker login`'s check: `GET /v2/` answered 200 with these
    /// credentials (through the token server where the registry sends one).
    public func login() throws(GockerError) {
        var url = try endpoint()
        url.target = "/v2/"
        let (response, body, _) = try http.send("GET", url)
        try body.forEach { _ in }
        guard response.status == 401 else {
            guard response.status == 200 else { throw Self.failure("login attempt to \(url)", response, body) }
            return
        }
        guard let header = response.header("WWW-Authenticate"), let challenge = Challenge(header) else {
            throw GockerError(.system, "\(url): unauthorized, and no WWW-Authenticate challenge")
        }
        let authorization = try answer(challenge, scope: nil)
        let (again, rest, _) = try http.send("GET", url, headers: [("Authorization", authorization)])
        try rest.forEach { _ in }
        guard again.status == 200 else {
            throw GockerError(.invalidArgument, "login attempt to \(url) failed with status: \(again.status) \(again.reason)")
        }
    }

    /// The distribution API's error document, said: "manifest unknown".
    static func errors(_ body: [UInt8]) -> String? {
        struct Item: Decodable { var code: String?; var message: String? }
        struct Doc: Decodable { var errors: [Item]? }
        guard let doc = try? JSON.decode(Doc.self, from: body, what: "error"), let items = doc.errors, !items.isEmpty else {
            return nil
        }
        return items.map { $0.message ?? $0.code?.lowercased().replacing("_", with: " ") ?? "error" }
            .joined(separator: "; ")
    }

    /// What a failed answer says: the registry's own words where it gave any.
    static func failure(_ what: String, _ response: HTTPResponse, _ body: HTTPBody) -> GockerError {
        let bytes = (try? body.bytes(limit: 64 * 1024)) ?? []
        let said = errors(bytes) ?? "\(response.status) \(response.reason)"
        // A 5xx or a 429 may pass (.system: tried again); another 4xx will not.
        let code: GockerError.Code = response.status == 404 ? .notFound
            : isTransient(response.status) ? .system : .invalidArgument
        if code == .system, let asked = response.header("Retry-After"), let wait = RetryAfter(asked, now: time(nil)) {
            return GockerError(wait.seconds > RetryAfter.longest ? .invalidArgument : .system, "\(what): \(said)", cause: wait)
        }
        return GockerError(code, "\(what): \(said)")
    }

    /// How long to wait before the next try: what the registry asked for
    /// (`Retry-After`), else 0.25 s doubled at each try.
    static func pause(before attempt: Int, after error: GockerError) -> UInt32 {
        let backoff = UInt32(250_000) << UInt32(attempt - 1)
        guard let asked = error.cause as? RetryAfter else { return backoff }
        return max(backoff, UInt32(min(asked.seconds, RetryAfter.longest)) * 1_000_000)
    }

    /// Whether an answer may be different a moment later: a 5xx, or 429
    /// Too Many Requests.
    static func isTransient(_ status: Int) -> Bool { status >= 500 || status == 429 }

    /// `body`, tried again on a broken connection, a 5xx or a 429 answer (four
    /// times in all, waiting longer each time, or as long as the registry
    /// asked).
    static func retrying<T>(_ body: () throws(GockerError) -> T) throws(GockerError) -> T {
        var attempt = 0
        while true {
            do throws(GockerError) {
                return try body()
            } catch {
                attempt += 1
                guard error.code == .system, attempt < 4 else { throw error }
                usleep(pause(before: attempt, after: error))
            }
        }
    }

    public static let manifestTypes = [OCI.indexType, OCI.dockerListType, OCI.manifestType, OCI.dockerManifestType]

    /// A manifest or index, by tag or digest: its bytes (at most 4 MiB, as
    /// docker limits them), media type and digest. Asked for by digest, its
    /// bytes must hash to it.
    public func manifest(_ reference: String, shown: String) throws(GockerError) -> (bytes: [UInt8], mediaType: String?, digest: String) {
        guard OCI.isDigest(reference) || (!reference.contains(":") && (try? ImageReference(parsing: "x:" + reference)) != nil) else {
            throw GockerError(.invalidArgument, "\(shown): invalid manifest reference \"\(reference)\"")
        }
        let (response, body, _) = try Self.retrying { () throws(GockerError) in
            let answer = try request("GET", "\(repository)/manifests/\(reference)",
                                     headers: [("Accept", Self.manifestTypes.joined(separator: ", "))])
            if Self.isTransient(answer.0.status) { throw Self.failure("\(shown): manifest", answer.0, answer.1) }
            return answer
        }
        guard response.status == 200 else {
            if response.status == 404 {
                let bytes = (try? body.bytes(limit: 64 * 1024)) ?? []
                let said = Self.errors(bytes) ?? "manifest unknown"
                throw GockerError(.notFound, "manifest for \(shown) not found: \(said)")
            }
            throw Self.failure("\(shown): manifest", response, body)
        }
        let bytes = try body.bytes(limit: 4 << 20)
        let digest = "sha256:" + SHA256.hash(bytes).hex
        if reference.hasPrefix("sha256:"), digest != reference {
            throw GockerError(.invalidArgument, "\(shown): manifest digest mismatch: its content is \(digest)")
        }
        let type = response.header("Content-Type").map { String($0.split(separator: ";").first ?? "").trimmed(" ") }
        return (bytes, type, digest)
    }

    /// A blob, streamed to `sink`; its size and digest are checked before
    /// this returns (the caller keeps nothing of a blob that throws). A
    /// broken connection, a 5xx or a 429 answer is tried again (four times in
    /// all, waiting longer each time), from where it broke (`Range`) when
    /// the registry allows it, else from the start after `restart`.
    public func blob(_ d: OCI.Descriptor, restart: () throws(GockerError) -> Void = {},
                     sink: (ArraySlice<UInt8>) throws(GockerError) -> Void) throws(GockerError) {
        var hash = SHA256()
        var size: Int64 = 0
        var attempt = 0
        while true {
            var sinkFailed = false
            do throws(GockerError) {
                let (response, body, _) = try request("GET", "\(repository)/blobs/\(d.digest)",
                                                      headers: size > 0 ? [("Range", "bytes=\(size)-")] : [])
                if size > 0 && response.status == 206 {
                    guard response.header("Content-Range")?.hasPrefix("bytes \(size)-") == true else {
                        throw GockerError(.invalidArgument, "blob \(d.digest): a range answered from elsewhere than byte \(size)")
                    }
                } else if response.status == 200 {
                    if size > 0 {
                        do throws(GockerError) { try restart() } catch { sinkFailed = true; throw error }
                        hash = SHA256()
                        size = 0
                    }
                } else {
                    throw Self.failure("\(registry)/\(repository): blob \(d.digest)", response, body)
                }
                try body.forEach { (piece) throws(GockerError) in
                    guard size + Int64(piece.count) <= d.size else {
                        throw GockerError(.invalidArgument, "blob \(d.digest): larger than the \(d.size) bytes its descriptor says")
                    }
                    do throws(GockerError) { try sink(piece) } catch { sinkFailed = true; throw error }
                    size += Int64(piece.count)
                    piece.withUnsafeBytes { hash.update($0) }
                }
                break
            } catch {
                attempt += 1
                guard !sinkFailed, error.code == .system, attempt < 4, http.stopper?.isStopped != true else { throw error }
                if let stopper = http.stopper {
                    // A wait that `stop` cuts short: a registry's Retry-After
                    // may ask for a minute.
                    guard stopper.wait(microseconds: Self.pause(before: attempt, after: error)) else { throw error }
                } else {
                    usleep(Self.pause(before: attempt, after: error))
                }
            }
        }
        let digest = "sha256:" + hash.finalize().hex
        guard size == d.size, digest == d.digest else {
            throw GockerError(.invalidArgument, "blob \(d.digest): digest mismatch: \(size) bytes whose digest is \(digest)")
        }
    }
}

/// A 429's or 503's `Retry-After` (RFC 9110): delay-seconds, or an HTTP
/// date (IMF-fixdate). A wait longer than `longest` is not waited for: the
/// pull fails at once and says how long the registry asked to wait.
public struct RetryAfter: Error, CustomStringConvertible, Sendable {
    public static let longest = 60
    public var seconds: Int

    public init?(_ value: String, now: time_t) {
        let v = value.trimmed(" ")
        if !v.isEmpty, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            let digits = v.drop { $0 == "0" }
            seconds = digits.count > 9 ? Int.max : Int(digits) ?? 0
            return
        }
        guard let at = Self.imfFixdate(v) else { return nil }
        seconds = at > now ? Int(at - now) : 0
    }

    /// "Sun, 06 Nov 1994 08:49:37 GMT", the one date form RFC 9110 has
    /// senders write, as seconds since the epoch.
    static func imfFixdate(_ s: String) -> time_t? {
        let b = Array(s.utf8)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        func text(_ i: Int, _ n: Int) -> String { String(decoding: b[i..<i + n], as: UTF8.self) }
        func number(_ i: Int, _ n: Int) -> Int32? {
            let digits = b[i..<i + n]
            guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return digits.reduce(0) { $0 * 10 + Int32($1 - 0x30) }
        }
        guard b.count == 29, days.contains(text(0, 3)), text(3, 2) == ", ", b[7] == 0x20, b[11] == 0x20, b[16] == 0x20,
              b[19] == 0x3a, b[22] == 0x3a, text(25, 4) == " GMT",
              let day = number(5, 2), let month = months.firstIndex(of: text(8, 3)), let year = number(12, 4),
              let hour = number(17, 2), let minute = number(20, 2), let second = number(23, 2),
              (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var tm = Glibc.tm()
        tm.tm_year = year - 1900
        tm.tm_mon = Int32(month)
        tm.tm_mday = day
        tm.tm_hour = hour
        tm.tm_min = minute
        tm.tm_sec = second
        return timegm(&tm)
    }

    public var description: String {
        seconds > Self.longest ? "the registry asks to try again in \(seconds) s" : "the registry asked to wait \(seconds) s between tries"
    }
}
