import Glibc

/// An image's run configuration, with docker's field names.
public struct ImageConfig: Codable, Sendable, Equatable {
    public var Cmd: [String]?
    public var Entrypoint: [String]?
    public var Env: [String]?
    public var WorkingDir: String?
    public var User: String?

    public init(Cmd: [String]? = nil, Entrypoint: [String]? = nil, Env: [String]? = nil,
                WorkingDir: String? = nil, User: String? = nil) {
        self.Cmd = Cmd
        self.Entrypoint = Entrypoint
        self.Env = Env
        self.WorkingDir = WorkingDir
        self.User = User
    }
}

/// An image: an ordered stack of read-only layers (bottom first) and a config.
public struct ImageRecord: Codable, Sendable, Equatable {
    /// sha256 of the encoded config and layer list, 64 hex digits.
    public var id: String
    public var layers: [String]
    public var config: ImageConfig
    public var created: String

    public var shortID: String { String(id.prefix(12)) }

    public init(id: String, layers: [String], config: ImageConfig, created: String) {
        self.id = id
        self.layers = layers
        self.config = config
        self.created = created
    }
}

/// A `name[:tag]` image reference.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var tag: String

    public init(parsing text: String) throws(GockerError) {
        var name = text
        var tag = "latest"
        if let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") {
            name = String(text[..<colon])
            tag = String(text[text.index(after: colon)...])
        }
        // A registry host may carry a port ("localhost:5000/app").
        let path = name.contains("/") ? String(name.drop { $0 != "/" }) : name
        let host = name.contains("/") ? String(name.prefix { $0 != "/" }) : ""
        let hostOK = host.split(separator: ":", omittingEmptySubsequences: false).count <= 2
            && host.utf8.allSatisfy { c in
                (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".")
                    || c == UInt8(ascii: "-") || c == UInt8(ascii: ":")
            }
        let nameOK = hostOK && !name.isEmpty && name.utf8.count <= 255 && !name.hasPrefix("/") && !name.hasSuffix("/")
            && !name.contains("//") && path.utf8.allSatisfy { c in
                (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".")
                    || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: "/")
            }
        let tagOK = !tag.isEmpty && tag.utf8.count <= 128 && tag.utf8.first != UInt8(ascii: ".")
            && tag.utf8.first != UInt8(ascii: "-") && tag.utf8.allSatisfy { c in
                (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
            }
        guard nameOK && tagOK else {
            throw GockerError(.invalidArgument, "invalid reference format: \"\(text)\"")
        }
        self.name = name
        self.tag = tag
    }

    public var description: String { "\(name):\(tag)" }
}

/// Images under `<data-root>/image`: `layers/<id>/` (read-only trees),
/// `images/<id>.json`, and `repositories.json` (name:tag -> image id).
public struct ImageStore: Sendable {
    public let root: String

    public init(dataRoot: String) { self.root = dataRoot + "/image" }

    public func layerPath(_ id: String) -> String { "\(root)/layers/\(id)" }
    func imagePath(_ id: String) -> String { "\(root)/images/\(id).json" }
    var repositoriesPath: String { "\(root)/repositories.json" }

    /// The tags and the images they name.
    public func repositories() throws(GockerError) -> [String: String] {
        guard Sys.exists(repositoriesPath) else { return [:] }
        return try JSON.decodeFile([String: String].self, path: repositoriesPath)
    }

    public func image(id: String) throws(GockerError) -> ImageRecord {
        try JSON.decodeFile(ImageRecord.self, path: imagePath(id))
    }

    /// Finds an image by `name[:tag]` or by a unique prefix of its id; the
    /// built-in `busybox:latest` is made on first use.
    public func resolve(_ text: String) throws(GockerError) -> (ImageRecord, ImageReference?) {
        if let byID = try findByID(text) { return (byID, nil) }
        let ref = try ImageReference(parsing: text)
        if let id = try repositories()[ref.description] { return (try image(id: id), ref) }
        if ref == BuiltinBusybox.reference {
            return (try BuiltinBusybox.ensure(in: self), ref)
        }
        throw GockerError(.notFound, "unable to find image '\(ref)' locally")
    }

    private func findByID(_ text: String) throws(GockerError) -> ImageRecord? {
        var hex = text
        if hex.hasPrefix("sha256:") { hex.removeFirst(7) }
        guard hex.utf8.count >= 4, hex.utf8.count <= 64,
              hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        let ids = ((try? Sys.listDirectory(root + "/images")) ?? [])
            .filter { $0.hasSuffix(".json") && $0.hasPrefix(hex) }
            .map { String($0.dropLast(5)) }
        if ids.count > 1 { throw GockerError(.invalidArgument, "image id prefix \"\(text)\" is ambiguous") }
        return try ids.first.map { id throws(GockerError) in try image(id: id) }
    }

    /// Runs `body` under the store's lock, so that concurrent gocker
    /// processes do not build or tag the same image at once.
    public func locked<T>(_ body: () throws(GockerError) -> T) throws(GockerError) -> T {
        let fd = try performing("lock image store") { () throws(SystemCallError) in
            try Sys.mkdirAll(root + "/layers", mode: 0o700)
            try Sys.mkdirAll(root + "/images", mode: 0o700)
            return try Sys.lock(root + "/lock")
        }
        defer { Sys.close(fd) }
        return try body()
    }

    /// Records an image and tags it; the caller holds the lock.
    public func add(layers: [String], config: ImageConfig, tag: ImageReference) throws(GockerError) -> ImageRecord {
        struct Identity: Encodable { let layers: [String]; let config: ImageConfig }
        let id = SHA256.hash(JSON.encode(Identity(layers: layers, config: config))).hex
        let record = ImageRecord(id: id, layers: layers, config: config, created: Timestamp.now())
        var repos = try repositories()
        try performing("record image \(tag)") { () throws(SystemCallError) in
            if !Sys.exists(imagePath(id)) {
                try Sys.writeFileAtomic(imagePath(id), JSON.encode(record))
            }
            repos[tag.description] = id
            try Sys.writeFileAtomic(repositoriesPath, JSON.encode(repos))
        }
        return record
    }
}

/// The image `busybox:latest`, made without any network from the host's
/// static busybox (Debian's busybox-static): one layer with the binary,
/// its applet links, /tmp, and /etc/passwd and /etc/group with root and nobody.
public enum BuiltinBusybox {
    public static let reference = try! ImageReference(parsing: "busybox:latest")
    public static var hostBinary: String { Sys.env("GOCKER_BUSYBOX") ?? "/bin/busybox" }

    static func ensure(in store: ImageStore) throws(GockerError) -> ImageRecord {
        try store.locked { () throws(GockerError) in
            // Another gocker may have made it while we waited for the lock.
            if let id = try store.repositories()[reference.description] { return try store.image(id: id) }
            let layer = try buildLayer(in: store)
            return try store.add(
                layers: [layer],
                config: ImageConfig(Cmd: ["sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
                tag: reference)
        }
    }

    static func buildLayer(in store: ImageStore) throws(GockerError) -> String {
        let binary = hostBinary
        guard Sys.exists(binary) else {
            throw GockerError(.notFound, "the built-in busybox image needs \(binary): install Debian's busybox-static")
        }
        let bytes = try performing("read \(binary)") { () throws(SystemCallError) in try Sys.readFile(binary) }
        let id = SHA256.hash(bytes).hex
        let final = store.layerPath(id)
        if Sys.isDirectory(final) { return id }
        let applets = String(decoding: try Sys.output(of: [binary, "--list-full"]), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        let tmp = store.root + "/layers/.tmp-\(Sys.randomBytes(8).hex)"
        do throws(SystemCallError) {
            for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "proc", "sys", "dev"] {
                try Sys.mkdirAll("\(tmp)/\(dir)", mode: dir == "root" ? 0o700 : 0o755)
            }
            try Sys.mkdirAll("\(tmp)/tmp")
            try Sys.check("chmod", path: "\(tmp)/tmp") { chmod("\(tmp)/tmp", 0o1777) }
            try Sys.writeFileExclusive("\(tmp)/bin/busybox", bytes, mode: 0o755)
            try Sys.check("chmod", path: "\(tmp)/bin/busybox") { chmod("\(tmp)/bin/busybox", 0o755) }
            for applet in applets where !applet.isEmpty && !applet.contains("..") && applet != "bin/busybox" {
                let path = "\(tmp)/\(applet)"
                if let slash = path.lastIndex(of: "/") { try Sys.mkdirAll(String(path[..<slash])) }
                try Sys.check("symlink", path: path) { symlink("/bin/busybox", path) }
            }
            try Sys.writeFileExclusive("\(tmp)/etc/passwd", Array("""
                root:x:0:0:root:/root:/bin/sh
                nobody:x:65534:65534:nobody:/nonexistent:/bin/false

                """.utf8))
            try Sys.writeFileExclusive("\(tmp)/etc/group", Array("""
                root:x:0:
                tty:x:5:
                nobody:x:65534:

                """.utf8))
            try Sys.check("rename", path: final) { rename(tmp, final) }
        } catch {
            try? Sys.removeAll(tmp)
            throw GockerError(.system, "build the busybox image", cause: error)
        }
        return id
    }
}
