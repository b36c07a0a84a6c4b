import FoundationEssentials
import Glibc

/// An image's run configuration, with docker's field names.
public struct ImageConfig: Codable, JSONShape, Sendable, Equatable {
    public var Cmd: [String]?
    public var Entrypoint: [String]?
    public var Env: [String]?
    public var WorkingDir: String?
    public var User: String?
    /// docker's `EXPOSE`: "80/tcp" and the like, each an empty object.
    public var ExposedPorts: [String: EmptyObject]?

    /// `{}`: the value of each of ExposedPorts' members.
    public struct EmptyObject: Codable, JSONShape, Sendable, Equatable {
        public init() {}
        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {}
    }

    public init(Cmd: [String]? = nil, Entrypoint: [String]? = nil, Env: [String]? = nil,
                WorkingDir: String? = nil, User: String? = nil) {
        self.Cmd = Cmd
        self.Entrypoint = Entrypoint
        self.Env = Env
        self.WorkingDir = WorkingDir
        self.User = User
    }

    public init() {}

    /// The image record's members (the OCI image config's too, through Codable).
    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("Cmd", &Cmd)
        try v.field("Entrypoint", &Entrypoint)
        try v.field("Env", &Env)
        try v.field("WorkingDir", &WorkingDir)
        try v.field("User", &User)
        try v.field("ExposedPorts", &ExposedPorts)
    }
}

/// An image: an ordered stack of read-only layers (bottom first) and a config.
public struct ImageRecord: JSONShape, Sendable, Equatable {
    /// sha256 of the encoded config and layer list, 64 hex digits.
    public var id: String
    /// Layer ids, bottom first: an imported layer's id is the sha256 of its
    /// uncompressed tar stream (docker's diff id).
    public var layers: [String]
    public var config: ImageConfig
    public var created: String
    /// The bytes of its layers' files, counted when it was recorded.
    public var size: Int64?
    /// `gocker import -m`, `gocker commit -m`.
    public var comment: String?
    /// `gocker commit -a`.
    public var author: String?
    /// The image a commit was made from.
    public var parent: String?
    /// How each layer came to be, bottom first (the OCI config's history).
    public var history: [ImageHistory]?
    /// What its config says it runs on; nil: this host's (what gocker
    /// made itself).
    public var architecture: String?
    public var os: String?
    public var variant: String?
    /// Where it was pulled from, by digest: "host/repo@sha256:...".
    public var repoDigests: [String]?

    public var shortID: String { String(id.prefix(12)) }

    public init() { self.init(id: "", layers: [], config: ImageConfig(), created: "") }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("id", &id)
        try v.field("layers", &layers)
        try v.field("config", &config)
        try v.field("created", &created)
        try v.field("size", &size)
        try v.field("comment", &comment)
        try v.field("author", &author)
        try v.field("parent", &parent)
        try v.field("history", &history)
        try v.field("architecture", &architecture)
        try v.field("os", &os)
        try v.field("variant", &variant)
        try v.field("repoDigests", &repoDigests)
    }

    public init(id: String, layers: [String], config: ImageConfig, created: String,
                size: Int64? = nil, comment: String? = nil, author: String? = nil, parent: String? = nil,
                history: [ImageHistory]? = nil) {
        self.id = id
        self.layers = layers
        self.config = config
        self.created = created
        self.size = size
        self.comment = comment
        self.author = author
        self.parent = parent
        self.history = history
    }

    /// Whether `other` is built on this image: this image's layers are a
    /// proper prefix of its layers.
    public func isParent(of other: ImageRecord) -> Bool {
        other.layers.count > layers.count && other.layers.starts(with: layers)
    }
}

/// One step of an image's history, with the OCI config's field names.
public struct ImageHistory: Codable, JSONShape, Sendable, Equatable {
    public var created: String?
    public var created_by: String?
    public var author: String?
    public var comment: String?
    /// True for a step that made no layer.
    public var empty_layer: Bool?

    public init(created: String? = nil, created_by: String? = nil, author: String? = nil, comment: String? = nil,
                empty_layer: Bool? = nil) {
        self.created = created
        self.created_by = created_by
        self.author = author
        self.comment = comment
        self.empty_layer = empty_layer
    }

    public init() {}

    /// The image record's members (the OCI image config's too, through Codable).
    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("created", &created)
        try v.field("created_by", &created_by)
        try v.field("author", &author)
        try v.field("comment", &comment)
        try v.field("empty_layer", &empty_layer)
    }
}

/// A `name[:tag]` image reference, in docker's grammar (its
/// distribution/reference): an optional registry host (`[host[:port]/]`,
/// a host being dot-separated components of letters, digits and inner
/// dashes, or "localhost", or a bracketed IPv6 address), then path
/// components of lowercase letters and digits joined by one `.`, one or two
/// `_` or any number of `-`, separated by `/`; the whole name at most 255
/// bytes; a tag of `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Every name that
/// comes in (run, create, tag, load, import, commit, rmi, save, pull) is
/// parsed here: what is refused can never become a path or a tag.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var tag: String

    public init(parsing text: String) throws(GockerError) {
        // One pass over the bytes (every accepted one is ASCII): the
        // generic String searches and splits cost more on a start's path
        // than the whole check.
        var b = Array(text.utf8)
        // docker.io's own prefixes name what gocker keeps without them:
        // "docker.io/library/alpine" is "alpine", "docker.io/me/app" is "me/app".
        for host in ["docker.io/", "index.docker.io/"] where b.starts(with: host.utf8) {
            b.removeFirst(host.utf8.count)
            let rest = b.dropFirst(8).prefix(while: { $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: "@") })
            if b.starts(with: "library/".utf8) && !rest.contains(UInt8(ascii: "/")) {
                b.removeFirst(8)
            }
            break
        }
        let slash = UInt8(ascii: "/"), colon = UInt8(ascii: ":"), at = UInt8(ascii: "@")
        func invalid() -> GockerError { GockerError(.invalidArgument, "invalid reference format: \"\(text)\"") }
        // name[:tag][@digest]
        var end = b.count
        if let a = b.firstIndex(of: at) {
            guard Self.isDigest(b[(a + 1)...]) else { throw invalid() }
            end = a
        }
        // The tag: after the last colon with no "/" after it.
        var nameEnd = end
        if let c = b[..<end].lastIndex(of: colon), !b[c..<end].contains(slash) { nameEnd = c }
        guard nameEnd > 0, nameEnd <= 255 else { throw invalid() }
        if nameEnd < end {
            guard Self.isTag(b[(nameEnd + 1)..<end]) else { throw invalid() }
        }
        // The registry host: a first component (of several) with a dot or
        // a colon, "localhost", or with capitals (docker reads it as one).
        var pathStart = 0
        if let firstSlash = b[..<nameEnd].firstIndex(of: slash) {
            let first = b[..<firstSlash]
            if first.contains(UInt8(ascii: ".")) || first.contains(colon) || first.elementsEqual("localhost".utf8)
                || first.contains(where: { $0 >= 0x41 && $0 <= 0x5a }) || first.first == UInt8(ascii: "[") {
                guard Self.isHost(first) else { throw invalid() }
                pathStart = firstSlash + 1
            }
        }
        guard Self.isPath(b[pathStart..<nameEnd]) else { throw invalid() }
        if end < b.count {
            throw GockerError(.invalidArgument, "references by digest are not supported: \"\(text)\"")
        }
        self.name = String(decoding: b[..<nameEnd], as: UTF8.self)
        self.tag = nameEnd < end ? String(decoding: b[(nameEnd + 1)..<end], as: UTF8.self) : "latest"
    }

    static func isLowerOrDigit(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) }
    static func isAlnum(_ c: UInt8) -> Bool { isLowerOrDigit(c) || (c >= 0x41 && c <= 0x5a) }

    /// Path components separated by single "/": each `[a-z0-9]+` runs
    /// joined by ".", "_", "__" or "-"+.
    static func isPath(_ p: ArraySlice<UInt8>) -> Bool {
        var i = p.startIndex
        while true {
            // One component.
            guard i < p.endIndex, isLowerOrDigit(p[i]) else { return false }
            while i < p.endIndex, isLowerOrDigit(p[i]) { i += 1 }
            while i < p.endIndex, p[i] != UInt8(ascii: "/") {
                let sep = i
                switch p[i] {
                case UInt8(ascii: "."): i += 1
                case UInt8(ascii: "_"):
                    i += 1
                    if i < p.endIndex, p[i] == UInt8(ascii: "_") { i += 1 }
                case UInt8(ascii: "-"):
                    while i < p.endIndex, p[i] == UInt8(ascii: "-") { i += 1 }
                default: return false
                }
                guard i > sep, i < p.endIndex, isLowerOrDigit(p[i]) else { return false }
                while i < p.endIndex, isLowerOrDigit(p[i]) { i += 1 }
            }
            if i == p.endIndex { return true }
            i += 1  // the "/"
        }
    }

    /// `host[:port]`: dot-separated components of letters and digits with
    /// inner dashes, or `[IPv6]`; a port of digits.
    static func isHost(_ h: ArraySlice<UInt8>) -> Bool {
        var i = h.startIndex
        if i < h.endIndex, h[i] == UInt8(ascii: "[") {
            guard let close = h.firstIndex(of: UInt8(ascii: "]")), close > i + 1,
                  h[(i + 1)..<close].allSatisfy({ c in
                      (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) || c == UInt8(ascii: ":")
                  }) else { return false }
            i = close + 1
        } else {
            while true {
                guard i < h.endIndex, isAlnum(h[i]) else { return false }
                while i < h.endIndex, isAlnum(h[i]) || h[i] == UInt8(ascii: "-") { i += 1 }
                guard h[i - 1] != UInt8(ascii: "-") else { return false }
                guard i < h.endIndex, h[i] == UInt8(ascii: ".") else { break }
                i += 1
            }
        }
        if i == h.endIndex { return true }
        guard h[i] == UInt8(ascii: ":"), i + 1 < h.endIndex else { return false }
        return h[(i + 1)...].allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    static func isTag(_ t: ArraySlice<UInt8>) -> Bool {
        guard let first = t.first, t.count <= 128, isAlnum(first) || first == UInt8(ascii: "_") else { return false }
        return t.allSatisfy { c in
            isAlnum(c) || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
        }
    }

    /// `algorithm:hex`: components `[A-Za-z][A-Za-z0-9]*` joined by
    /// `+ . _ -`, then at least 32 hex digits.
    static func isDigest(_ d: ArraySlice<UInt8>) -> Bool {
        guard let colon = d.firstIndex(of: UInt8(ascii: ":")) else { return false }
        var atStart = true
        for c in d[..<colon] {
            if atStart {
                guard (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) else { return false }
                atStart = false
            } else if c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") {
                atStart = true
            } else if !isAlnum(c) {
                return false
            }
        }
        let hex = d[(colon + 1)...]
        return !atStart && hex.count >= 32 && hex.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
        }
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
    /// A pulled image's config as the registry served it (its id is its
    /// digest): what `save` and `push` send again, byte for byte.
    func configPath(_ id: String) -> String { "\(root)/images/\(id).config" }
    var repositoriesPath: String { "\(root)/repositories.json" }

    /// The tags and the images they name.
    public func repositories() throws(GockerError) -> [String: String] {
        guard Sys.exists(repositoriesPath) else { return [:] }
        return try JSON.readStrings(from: JSON.readFile(repositoriesPath), what: repositoriesPath)
    }

    public func image(id: String) throws(GockerError) -> ImageRecord {
        try JSON.readFile(ImageRecord.self, path: imagePath(id))
    }

    /// Finds an image by `name[:tag]` or by a unique prefix of its id (a
    /// tag wins over an id prefix, as in docker); the built-in
    /// `busybox:latest` is made on first use.
    public func resolve(_ text: String) throws(GockerError) -> (ImageRecord, ImageReference?) {
        if let found = try lookup(text) { return found }
        if text.contains("@sha256:") { throw GockerError(.imageNotFound, "unable to find image '\(text)' locally") }
        let ref = try ImageReference(parsing: text)
        if ref == BuiltinBusybox.reference {
            return (try BuiltinBusybox.ensure(in: self), ref)
        }
        throw GockerError(.imageNotFound, "unable to find image '\(ref)' locally")
    }

    /// An image by tag (returned with it) or by id prefix, or nil.
    public func lookup(_ text: String) throws(GockerError) -> (ImageRecord, ImageReference?)? {
        if let ref = try? ImageReference(parsing: text), let id = try repositories()[ref.description] {
            return (try image(id: id), ref)
        }
        // name@sha256:...: the image pulled by (or with) that digest.
        if let at = text.firstIndex(of: "@"), text[text.index(after: at)...].hasPrefix("sha256:") {
            let name = (try? ImageReference(parsing: String(text[..<at])))?.name ?? String(text[..<at])
            let wanted = name + text[at...]
            return try images().first { ($0.repoDigests ?? []).contains(wanted) }.map { ($0, nil) }
        }
        return try findByID(text).map { ($0, nil) }
    }

    /// Every image, newest first.
    public func images() throws(GockerError) -> [ImageRecord] {
        var out: [ImageRecord] = []
        for name in (try? Sys.listDirectory(root + "/images")) ?? [] where name.hasSuffix(".json") {
            out.append(try image(id: String(name.dropLast(5))))
        }
        return out.sorted { $0.created != $1.created ? $0.created > $1.created : $0.id < $1.id }
    }

    /// The tags of each image id, sorted.
    public func tagsByImage() throws(GockerError) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (tag, id) in try repositories() { out[id, default: []].append(tag) }
        return out.mapValues { $0.sorted() }
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

    /// Records an image and tags it; the caller holds the lock. Its id is
    /// its config's digest, as docker names images: of `document`, the
    /// config as it came with the image (pulled, loaded), else of the OCI
    /// config made here from the record. The config is kept beside the
    /// record, to be pushed and saved byte for byte.
    @discardableResult
    public func add(layers: [String], config: ImageConfig, tag: ImageReference?, comment: String? = nil,
                    created: String? = nil, author: String? = nil, parent: String? = nil,
                    history: [ImageHistory]? = nil, document: [UInt8]? = nil,
                    platform: OCI.Platform? = nil) throws(GockerError) -> ImageRecord {
        // Under the store's lock, as `rmi`'s removal of unused layers: a
        // layer stored earlier by this command may have gone meanwhile.
        for layer in layers where !Sys.isDirectory(layerPath(layer)) {
            throw GockerError(.notFound, "layer \(layer.prefix(12)) was removed while the image was made (an rmi at the same time?): try again")
        }
        var record = ImageRecord(id: "", layers: layers, config: config, created: created ?? Timestamp.now(),
                                 size: 0, comment: comment, author: author, parent: parent, history: history)
        if let platform {
            record.architecture = platform.architecture
            record.os = platform.os
            record.variant = platform.variant
        }
        let kept = document ?? JSON.encode(configFile(record))
        let id = SHA256.hash(kept).hex
        record.id = id
        if Sys.exists(imagePath(id)) {
            let existing = try image(id: id)
            if let tag { try setTag(tag, to: id) }
            return existing
        }
        record.size = layers.reduce(Int64(0)) { $0 + layerSize($1) }
        try performing("record image \(tag?.description ?? String(id.prefix(12)))") { () throws(SystemCallError) in
            try Sys.writeFileAtomic(configPath(id), kept, mode: 0o600)
            do throws(SystemCallError) {
                try Sys.writeFileAtomic(imagePath(id), record.jsonBytes)
            } catch {
                _ = unlink(configPath(id))
                throw error
            }
        }
        if let tag { try setTag(tag, to: id) }
        return record
    }

    /// Points `tag` at an image (moving it from another); the caller holds the lock.
    public func setTag(_ tag: ImageReference, to id: String) throws(GockerError) {
        var repos = try repositories()
        repos[tag.description] = id
        try saveRepositories(repos)
    }

    func saveRepositories(_ repos: [String: String]) throws(GockerError) {
        try performing("write \(repositoriesPath)") { () throws(SystemCallError) in
            try Sys.writeFileAtomic(repositoriesPath, JSON.strings(repos))
        }
    }

    /// `gocker tag SOURCE TARGET`.
    public func tag(_ source: String, as target: String) throws(GockerError) {
        let ref = try ImageReference(parsing: target)
        let (image, _) = try resolve(source)
        try locked { () throws(GockerError) in try setTag(ref, to: image.id) }
    }

    /// What containers hold: the images they were made from (with whether
    /// they run) and the layers their root filesystems are stacked from.
    public struct ContainerUsage: Sendable {
        public struct User: Sendable {
            public var id: String
            public var imageID: String
            public var running: Bool
            public init(id: String, imageID: String, running: Bool) {
                self.id = id
                self.imageID = imageID
                self.running = running
            }
        }
        public var containers: [User]
        public var layers: Set<String>
        public init(containers: [User] = [], layers: Set<String> = []) {
            self.containers = containers
            self.layers = layers
        }
    }

    /// `gocker rmi` of one image, as docker does it: a tag of an image with
    /// other tags is only untagged; otherwise the image goes with all its
    /// tags. Refused: an image with several tags named by id (unless
    /// `force`), an image a stopped container uses (unless `force`), one a
    /// running container uses, one another image is built on. Returns
    /// docker's lines ("Untagged: ...", "Deleted: sha256:..."). Layers are
    /// left for `removeUnusedLayers`.
    public func remove(_ text: String, force: Bool, usage: ContainerUsage) throws(GockerError) -> [String] {
        try locked { () throws(GockerError) -> [String] in
            guard let (image, ref) = try lookup(text) else {
                // Neither a tag nor an id: a name docker's grammar refuses
                // is said to be one.
                let shown = try ImageReference(parsing: text).description
                throw GockerError(.notFound, "No such image: \(shown)")
            }
            var repos = try repositories()
            let tags = repos.filter { $0.value == image.id }.keys.sorted()
            if let ref, tags.count > 1 {
                repos[ref.description] = nil
                try saveRepositories(repos)
                return ["Untagged: \(ref)"]
            }
            if ref == nil && tags.count > 1 && !force {
                throw GockerError(.invalidState,
                    "conflict: unable to delete \(image.shortID) (must be forced) - image is referenced in multiple repositories")
            }
            if try images().contains(where: image.isParent(of:)) {
                throw GockerError(.invalidState,
                    "conflict: unable to delete \(image.shortID) (cannot be forced) - image has dependent child images")
            }
            let users = usage.containers.filter { $0.imageID == image.id }
            if let running = users.first(where: \.running) {
                throw GockerError(.invalidState,
                    "conflict: unable to delete \(image.shortID) (cannot be forced) - image is being used by running container \(running.id.prefix(12))")
            }
            if let user = users.first, !force {
                if ref != nil {
                    throw GockerError(.invalidState,
                        "conflict: unable to remove repository reference \"\(text)\" (must force) - container \(user.id.prefix(12)) is using its referenced image \(image.shortID)")
                }
                throw GockerError(.invalidState,
                    "conflict: unable to delete \(image.shortID) (must be forced) - image is being used by stopped container \(user.id.prefix(12))")
            }
            for tag in tags { repos[tag] = nil }
            try saveRepositories(repos)
            try performing("remove image \(image.shortID)") { () throws(SystemCallError) in
                try Sys.removeAll(imagePath(image.id))
                try Sys.removeAll(configPath(image.id))
            }
            return tags.map { "Untagged: \($0)" } + ["Deleted: sha256:\(image.id)"]
        }
    }

    /// Deletes every layer no image and no container uses any more (an
    /// import still in progress, `.tmp-*`, is left alone). Returns their ids.
    @discardableResult
    public func removeUnusedLayers(heldByContainers: Set<String>) throws(GockerError) -> [String] {
        try locked { () throws(GockerError) -> [String] in
            var used = heldByContainers
            for image in try images() { used.formUnion(image.layers) }
            var removed: [String] = []
            for name in (try? Sys.listDirectory(root + "/layers")) ?? [] where !name.hasPrefix(".") && !used.contains(name) {
                try performing("remove layer \(name)") { () throws(SystemCallError) in
                    try Sys.removeAll(layerPath(name))
                }
                removed.append(name)
            }
            // An init layer whose making died half-way (see initLayer; one
            // being made right now then fails, and its container does
            // without).
            for name in (try? Sys.listDirectory(root)) ?? [] where name.hasPrefix(".init-") {
                try? Sys.removeAll(root + "/" + name)
            }
            // A layer's archive goes with it.
            for name in (try? Sys.listDirectory(root + "/archives")) ?? [] where !name.hasPrefix(".") {
                let id = String(name.prefix { $0 != "." })
                if !Sys.exists(layerPath(id)) {
                    try performing("remove the archive of layer \(id)") { () throws(SystemCallError) in
                        try Sys.removeAll(root + "/archives/" + name)
                    }
                }
            }
            return removed.sorted()
        }
    }

    /// The bytes of a layer's files and symlinks: as counted when it was
    /// extracted, else by a walk of it.
    func layerSize(_ id: String) -> Int64 {
        if let archive = try? layerArchive(id), let counted = archive.contentSize { return counted }
        return Self.treeSize(layerPath(id))
    }

    /// The bytes of the files under `path` (each hard-linked file once),
    /// symlinks counted by their length, as docker sizes a layer.
    public static func treeSize(_ path: String) -> Int64 {
        var seen = Set<[UInt64]>()
        func walk(_ path: String) -> Int64 {
            var st = stat()
            guard lstat(path, &st) == 0 else { return 0 }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                return ((try? Sys.listDirectory(path)) ?? []).reduce(0) { $0 + walk(path + "/" + $1) }
            case S_IFREG, S_IFLNK:
                if st.st_nlink > 1 && !seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted { return 0 }
                return Int64(st.st_size)
            default:
                return 0
            }
        }
        return walk(path)
    }
}

/// docker's human-readable sizes and durations (github.com/docker/go-units).
/// Columns as docker prints them (its tabwriter: each cell padded by 3, a
/// column at least 10 wide; the last column as it is).
public enum TextTable {
    public static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (i, c) in row.enumerated() { widths[i] = max(widths[i], max(10, c.count + 3)) }
        }
        return rows.map { row in
            row.enumerated().map { i, c in
                i == row.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }
}

public enum HumanUnits {
    /// "4.3MB": decimal units, three significant digits (HumanSizeWithPrecision(size, 3)).
    public static func size(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
        var value = Double(bytes)
        var i = 0
        while value >= 1000 && i < units.count - 1 {
            value /= 1000
            i += 1
        }
        return format3g(value) + units[i]
    }

    /// C's "%.3g".
    static func format3g(_ value: Double) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buf, buf.count, "%.3g", $0) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// "2 minutes", "About an hour", "3 days" (HumanDuration).
    public static func duration(seconds: Double) -> String {
        let s = Int(seconds)
        if s < 1 { return "Less than a second" }
        if s == 1 { return "1 second" }
        if s < 60 { return "\(s) seconds" }
        let minutes = s / 60
        if minutes == 1 { return "About a minute" }
        if minutes < 60 { return "\(minutes) minutes" }
        let hours = Int((seconds / 3600).rounded())
        if hours == 1 { return "About an hour" }
        if hours < 48 { return "\(hours) hours" }
        if hours < 24 * 7 * 2 { return "\(hours / 24) days" }
        if hours < 24 * 30 * 2 { return "\(hours / 24 / 7) weeks" }
        if hours < 24 * 365 * 2 { return "\(hours / 24 / 30) months" }
        return "\(Int(seconds / 3600) / 24 / 365) years"
    }
}

extension Timestamp {
    /// Seconds since the epoch of an RFC 3339 UTC timestamp as `now()` writes it.
    public static func parse(_ text: String) -> Double? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ r: Range<Int>) -> Int32? { Int32(String(decoding: b[r], as: UTF8.self)) }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10),
              let h = num(11..<13), let mi = num(14..<16), let s = num(17..<19) else { return nil }
        var t = tm()
        t.tm_year = y - 1900
        t.tm_mon = mo - 1
        t.tm_mday = d
        t.tm_hour = h
        t.tm_min = mi
        t.tm_sec = s
        var seconds = Double(timegm(&t))
        if b[19] == UInt8(ascii: "."), let end = b[20...].firstIndex(where: { $0 < 0x30 || $0 > 0x39 }),
           let frac = Double("0." + String(decoding: b[20..<end], as: UTF8.self)) {
            seconds += frac
        }
        return seconds
    }

    /// Now, in seconds since the epoch.
    public static func nowSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// The image `busybox:latest`, made without any network from the host's
/// static busybox (Debian's busybox-static): one layer with the binary,
/// its applet links, /tmp, and /etc/passwd and /etc/group with root and nobody.
public enum BuiltinBusybox {
    public static let reference = try! ImageReference(parsing: "busybox:latest")
    public static var hostBinary: String { Sys.env("GOCKER_BUSYBOX") ?? "/bin/busybox" }

    static func ensure(in store: ImageStore) throws(GockerError) -> ImageRecord {
        if let id = try store.locked({ () throws(GockerError) in try store.repositories()[reference.description] }) {
            return try store.image(id: id)
        }
        return try buildLayer(in: store) { layer throws(GockerError) in
            // Another gocker may have made it meanwhile.
            if let id = try store.repositories()[reference.description] { return try store.image(id: id) }
            return try store.add(
                layers: [layer],
                config: ImageConfig(Cmd: ["sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
                tag: reference,
                history: [ImageHistory(created: Timestamp.now(), created_by: "gocker: the built-in busybox, from \(hostBinary)")])
        }
    }

    /// The layer is written as a tar stream first and stored as any
    /// imported layer is, so that its id is a real diff id and `save` can
    /// hand its archive on. Times are the binary's, so the same busybox
    /// gives the same layer.
    static func buildLayer<T>(in store: ImageStore, then body: (String) throws(GockerError) -> T) throws(GockerError) -> T {
        let binary = hostBinary
        guard Sys.exists(binary) else {
            throw GockerError(.notFound, "the built-in busybox image needs \(binary): install Debian's busybox-static")
        }
        let bytes = try performing("read \(binary)") { () throws(SystemCallError) in try Sys.readFile(binary) }
        var st = stat()
        let mtime = stat(binary, &st) == 0 ? st.st_mtim.tv_sec : 0
        let applets = String(decoding: try Sys.output(of: [binary, "--list-full"]), as: UTF8.self)
            .split(separator: "\n").map(String.init)
            .filter { !$0.isEmpty && !$0.contains("..") && !$0.hasPrefix("/") && $0 != "bin/busybox" }
        try performing("create \(store.root)/layers") { () throws(SystemCallError) in
            try Sys.mkdirAll(store.root + "/layers", mode: 0o700)
        }
        let tarPath = store.root + "/layers/.tmp-\(Sys.randomBytes(8).hex).tar"
        defer { try? Sys.removeAll(tarPath) }
        do {
            let sink = try FileSink(creating: tarPath)
            let tar = TarWriter(sink)
            func item(_ name: String, _ kind: TarEntry.Kind, _ mode: UInt32) -> TarEntry {
                var e = TarEntry(name: name, kind: kind)
                e.mode = mode
                e.mtime = .init(seconds: mtime, nanoseconds: 0)
                return e
            }
            var dirs = Set(["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "proc", "sys", "dev", "tmp"])
            for applet in applets {
                var parts = applet.split(separator: "/").dropLast()
                while !parts.isEmpty {
                    dirs.insert(parts.joined(separator: "/"))
                    parts = parts.dropLast()
                }
            }
            for dir in dirs.sorted() {
                try tar.append(item(dir, .directory, dir == "root" ? 0o700 : dir == "tmp" ? 0o1777 : 0o755))
            }
            try tar.append(item("bin/busybox", .file, 0o755), content: bytes)
            for applet in applets.sorted() {
                var link = item(applet, .symlink, 0o777)
                link.linkName = "/bin/busybox"
                try tar.append(link)
            }
            try tar.append(item("etc/passwd", .file, 0o644), content: Array("""
                root:x:0:0:root:/root:/bin/sh
                nobody:x:65534:65534:nobody:/nonexistent:/bin/false

                """.utf8))
            try tar.append(item("etc/group", .file, 0o644), content: Array("""
                root:x:0:
                tty:x:5:
                nobody:x:65534:

                """.utf8))
            try tar.finish()
        } catch {
            throw GockerError(.system, "build the busybox image", cause: error)
        }
        let input = try FileSource(path: tarPath)
        return try store.storeLayer(from: input, whiteouts: .skip, then: body)
    }
}

// MARK: - Listing and inspecting, in docker's formats

extension ImageStore {
    /// One row of `gocker images`: one per tag, `<none>` for an untagged image.
    public struct Row: Sendable {
        public var repository: String
        public var tag: String
        public var image: ImageRecord
    }

    /// The rows of `gocker images [REPOSITORY[:TAG]]`, newest image first.
    public func rows(matching filter: String? = nil) throws(GockerError) -> [Row] {
        var wanted: (name: String, tag: String?)?
        if let filter {
            let ref = try ImageReference(parsing: filter)
            wanted = (ref.name, filter.hasSuffix(":" + ref.tag) ? ref.tag : nil)
        }
        let tags = try tagsByImage()
        var rows: [Row] = []
        for image in try images() {
            let names = tags[image.id] ?? []
            if names.isEmpty {
                if wanted == nil { rows.append(Row(repository: "<none>", tag: "<none>", image: image)) }
                continue
            }
            for name in names {
                guard let ref = try? ImageReference(parsing: name) else { continue }
                if let wanted, wanted.name != ref.name || (wanted.tag != nil && wanted.tag != ref.tag) { continue }
                rows.append(Row(repository: ref.name, tag: ref.tag, image: image))
            }
        }
        return rows
    }

    /// The table docker prints (its tabwriter: cells padded by 3, at least 10 wide).
    public static func table(_ rows: [Row], now: Double = Timestamp.nowSeconds()) -> String {
        var cells = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
        for r in rows {
            cells.append([r.repository, r.tag, r.image.shortID, createdSince(r.image, now: now),
                          HumanUnits.size(r.image.size ?? 0)])
        }
        return TextTable.render(cells)
    }

    static func createdSince(_ image: ImageRecord, now: Double) -> String {
        guard let t = Timestamp.parse(image.created) else { return "N/A" }
        return HumanUnits.duration(seconds: now - t) + " ago"
    }

    /// `gocker images --format json`: one object per row, docker's fields.
    public static func jsonLines(_ rows: [Row], now: Double = Timestamp.nowSeconds()) -> String {
        struct Line: Encodable {
            let Containers = "N/A"
            let CreatedAt: String
            let CreatedSince: String
            let Digest = "<none>"
            let ID: String
            let Repository: String
            let SharedSize = "N/A"
            let Size: String
            let Tag: String
            let UniqueSize = "N/A"
            let VirtualSize: String
        }
        return rows.map { r in
            let size = HumanUnits.size(r.image.size ?? 0)
            let created = Timestamp.parse(r.image.created).map { t -> String in
                let s = Timestamp.format(seconds: Int(t), nanoseconds: 0)  // 2006-01-02T15:04:05.000000000Z
                return s.prefix(10) + " " + s.dropFirst(11).prefix(8) + " +0000 UTC"
            } ?? r.image.created
            let line = Line(CreatedAt: created, CreatedSince: createdSince(r.image, now: now), ID: r.image.shortID,
                            Repository: r.repository, Size: size, Tag: r.tag, VirtualSize: size)
            return String(decoding: JSON.encode(line), as: UTF8.self) + "\n"
        }.joined()
    }

    /// `gocker image inspect`: docker's fields, in docker's order.
    public struct Inspection: Encodable, Sendable {
        public var Id: String
        public var RepoTags: [String]
        public var RepoDigests: [String] = []
        public var Parent = ""
        public var Comment: String
        public var Created: String
        public var Author = ""
        public var Config: InspectedConfig
        public var Architecture: String
        public var Os: String
        public var Size: Int64
        public var RootFS: RootFS

        public struct RootFS: Encodable, Sendable {
            public var `Type` = "layers"
            public var Layers: [String]
        }

        /// The config with docker's nulls for what is not set.
        public struct InspectedConfig: Encodable, Sendable {
            let config: ImageConfig
            enum Keys: String, CodingKey { case Cmd, Entrypoint, Env, WorkingDir, User }
            public func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: Keys.self)
                try c.encode(config.User ?? "", forKey: .User)
                try c.encode(config.Env, forKey: .Env)
                try c.encode(config.Cmd, forKey: .Cmd)
                try c.encode(config.WorkingDir ?? "", forKey: .WorkingDir)
                try c.encode(config.Entrypoint, forKey: .Entrypoint)
            }
        }
    }

    public func inspect(_ image: ImageRecord) throws(GockerError) -> Inspection {
        Inspection(
            Id: "sha256:" + image.id, RepoTags: try tagsByImage()[image.id] ?? [], RepoDigests: image.repoDigests ?? [],
            Parent: image.parent.map { "sha256:" + $0 } ?? "", Comment: image.comment ?? "",
            Created: image.created, Author: image.author ?? "", Config: .init(config: image.config),
            Architecture: image.architecture ?? OCI.hostArchitecture, Os: image.os ?? "linux", Size: image.size ?? 0,
            RootFS: .init(Layers: image.layers.map { "sha256:" + $0 }))
    }

    /// Notes where an image was pulled from ("host/repo@sha256:..."), under
    /// the store's lock.
    public func addRepoDigest(_ repoDigest: String, to id: String) throws(GockerError) {
        let path = imagePath(id)
        try locked { () throws(GockerError) -> Void in
            var record = try image(id: id)
            let digests = record.repoDigests ?? []
            if digests.contains(repoDigest) { return }
            record.repoDigests = digests + [repoDigest]
            let bytes = record.jsonBytes
            try performing("record image \(id.prefix(12))") { () throws(SystemCallError) in
                try Sys.writeFileAtomic(path, bytes)
            }
        }
    }

    /// A JSON array, indented as docker prints it (4 spaces, `"key": value`,
    /// `[]` when empty); keys sorted.
    public static func inspectJSON(_ items: [Inspection]) -> String {
        indent(JSON.encode(items)) + "\n"
    }

    /// Re-indents compact JSON.
    static func indent(_ compact: [UInt8]) -> String {
        var out: [UInt8] = []
        var depth = 0
        var inString = false
        var escaped = false
        func newline() {
            out.append(0x0a)
            out += [UInt8](repeating: 0x20, count: 4 * depth)
        }
        for (i, c) in compact.enumerated() {
            if inString {
                out.append(c)
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case UInt8(ascii: "\""):
                inString = true
                out.append(c)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                out.append(c)
                let closer = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                if i + 1 < compact.count && compact[i + 1] == closer { continue }
                depth += 1
                newline()
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let opener = c == UInt8(ascii: "}") ? UInt8(ascii: "{") : UInt8(ascii: "[")
                if i > 0 && compact[i - 1] == opener { out.append(c); continue }
                depth -= 1
                newline()
                out.append(c)
            case UInt8(ascii: ","):
                out.append(c)
                newline()
            case UInt8(ascii: ":"):
                out += [c, 0x20]
            default:
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
