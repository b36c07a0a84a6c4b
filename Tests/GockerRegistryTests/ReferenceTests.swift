import Foundation
import GockerCore
import GockerRegistry
import Testing

/// Docker's naming rules for what `pull` is given.
struct RegistryReferenceTests {
    @Test(arguments: [
        ("alpine", "docker.io", "library/alpine", "latest", "alpine:latest", "docker.io/library/alpine:latest"),
        ("docker.io/library/alpine:3", "docker.io", "library/alpine", "3", "alpine:3", "docker.io/library/alpine:3"),
        ("user/app:v1", "docker.io", "user/app", "v1", "user/app:v1", "docker.io/user/app:v1"),
        ("127.0.0.1:5000/test/busybox:1", "127.0.0.1:5000", "test/busybox", "1", "127.0.0.1:5000/test/busybox:1",
         "127.0.0.1:5000/test/busybox:1"),
        ("localhost/x", "localhost", "x", "latest", "localhost/x:latest", "localhost/x:latest"),
        ("quay.io/a/b/c:t", "quay.io", "a/b/c", "t", "quay.io/a/b/c:t", "quay.io/a/b/c:t"),
    ])
    func namesFollowDockersRules(_ text: String, _ registry: String, _ repository: String, _ tag: String,
                                 _ local: String, _ shown: String) throws {
        let r = try RegistryReference(parsing: text)
        #expect(r.registry == registry)
        #expect(r.repository == repository)
        #expect(r.reference == tag)
        #expect(r.local.description == local)
        #expect(r.description == shown)
    }

    @Test func aDigestNamesTheContent() throws {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let r = try RegistryReference(parsing: "127.0.0.1:5000/test/busybox@" + digest)
        #expect(r.digest == digest && r.tag == nil && r.reference == digest)
        #expect(r.description == "127.0.0.1:5000/test/busybox@" + digest)
        for bad in ["busybox@sha256:12", "busybox@md5:" + String(repeating: "a", count: 32), "Busybox", "a/../b", "x:y:z",
                    "busybox@sha256:" + String(repeating: "AB", count: 32)] {
            #expect(throws: GockerError.self, "\(bad)") { try RegistryReference(parsing: bad) }
        }
    }

    @Test func dockerIOsPrefixesAreDroppedFromLocalNames() throws {
        for (text, local) in [("docker.io/library/alpine:3", "alpine:3"), ("docker.io/me/app", "me/app:latest"),
                              ("index.docker.io/library/x", "x:latest"), ("docker.io/library/a/b", "library/a/b:latest"),
                              ("docker.io:5000/x", "docker.io:5000/x:latest"), ("mydocker.io/x", "mydocker.io/x:latest")] {
            #expect(try ImageReference(parsing: text).description == local, "\(text)")
        }
    }

    @Test func loopbackRegistries() {
        #expect(RegistryReference.isLoopback("127.0.0.1:5000"))
        #expect(RegistryReference.isLoopback("localhost"))
        #expect(RegistryReference.isLoopback("[::1]:5000"))
        #expect(!RegistryReference.isLoopback("docker.io"))
        #expect(!RegistryReference.isLoopback("10.0.0.1:5000"))
    }
}

/// URLs as registries, token realms and redirects give them.
struct HTTPURLTests {
    @Test func parsedAndResolved() throws {
        let u = try HTTPURL(parsing: "https://auth.example.com/token?service=x#frag")
        #expect(u.secure && u.host == "auth.example.com" && u.port == 443 && u.target == "/token?service=x")
        #expect(u.authority == "auth.example.com")
        let v6 = try HTTPURL(parsing: "http://[::1]:5000")
        #expect(v6.host == "::1" && v6.port == 5000 && v6.target == "/" && v6.authority == "[::1]:5000")
        let base = try HTTPURL(parsing: "http://127.0.0.1:5000/v2/a/blobs/sha256:1")
        #expect(try base.resolving("/other").description == "http://127.0.0.1:5000/other")
        #expect(try base.resolving("https://s3.example/x?y=1").description == "https://s3.example/x?y=1")
        #expect(try base.resolving("//cdn.example/p").description == "http://cdn.example/p")
        #expect(try base.resolving("rel").description == "http://127.0.0.1:5000/v2/a/blobs/rel")
        for bad in ["ftp://x", "http://", "http://a:99999/", "http://u@h/", "http://[::1/"] {
            #expect(throws: GockerError.self, "\(bad)") { try HTTPURL(parsing: bad) }
        }
        #expect(HTTPURL.escape("repository:a/b:pull") == "repository%3Aa%2Fb%3Apull")
    }
}

/// WWW-Authenticate challenges as registries send them.
struct ChallengeTests {
    @Test func bearerAndBasic() throws {
        let c = try #require(Challenge(#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#))
        #expect(c.scheme == "bearer")
        #expect(c.parameters == ["realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                 "scope": "repository:library/alpine:pull"])
        let b = try #require(Challenge(#"Basic realm="basic-realm""#))
        #expect(b.scheme == "basic" && b.parameters == ["realm": "basic-realm"])
        let q = try #require(Challenge(#"Bearer realm="a\"b", error=insufficient_scope"#))
        #expect(q.parameters == ["realm": "a\"b", "error": "insufficient_scope"])
        #expect(Challenge("   ") == nil)
    }
}

/// registries.json: docker's daemon.json keys, mirrors of any registry, and
/// an error for anything else.
struct RegistryConfigTests {
    func load(_ text: String) throws -> RegistryConfig {
        let dir = FileManager.default.temporaryDirectory.path + "/gocker-registries-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/registries.json", atomically: true, encoding: .utf8)
        return try RegistryConfig.load(from: dir + "/registries.json")
    }

    @Test func mirrorsAndInsecureRegistries() throws {
        let config = try load("""
            {"registry-mirrors": ["https://mirror.example.com", "http://10.0.0.5:5000/"],
             "mirrors": {"registry.example.com:5000": ["http://127.0.0.1:5001"]},
             "insecure-registries": ["registry.lan:5000"]}
            """)
        #expect(config.mirrors(for: "docker.io").map(\.description) == ["https://mirror.example.com/v2/", "http://10.0.0.5:5000/v2/"])
        #expect(config.mirrors(for: "registry.example.com:5000").map(\.description) == ["http://127.0.0.1:5001/v2/"])
        #expect(config.mirrors(for: "quay.io").isEmpty)
        #expect(config.insecureRegistries == ["registry.lan:5000"])
        #expect(try RegistryConfig.load(from: "/nonexistent/registries.json").mirrors(for: "docker.io").isEmpty)
    }

    @Test(arguments: [
        (#"{"debug": true}"#, "unsupported member \"debug\""),
        (#"{"registry-mirrors": ["ftp://mirror"]}"#, "mirror of docker.io: \"ftp://mirror\""),
        (#"{"registry-mirrors": ["https://mirror/path"]}"#, "is not an http(s)://HOST[:PORT] URL"),
        (#"{"mirrors": {"r.example": "http://m"}}"#, "the mirrors of r.example must be a list of URLs"),
        (#"{"registry-mirrors": "#, "registries.json"),
    ])
    func anythingElseIsAnError(_ text: String, _ message: String) throws {
        #expect(performing: { _ = try load(text) }, throws: { "\($0)".contains(message) })
    }
}
