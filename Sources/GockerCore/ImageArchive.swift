import FoundationEssentials
import Glibc
import Synchronization

// `gocker save` and `gocker load`: images travel as OCI image-layout
// tarballs (index.json, oci-layout, blobs/sha256/...), with docker's
// manifest.json beside them, as `docker save` writes since docker 25:
// `ctr images import`, `podman load` and `docker load` all read it. `load`
// also reads the older `docker save` format (manifest.json, <id>.json,
// <dir>/layer.tar). Every blob's digest is checked, and every layer's
// uncompressed digest against the config's diff_ids.

/// The OCI (and docker) formats' JSON documents.
public enum OCI {
    public static let indexType = "application/vnd.oci.image.index.v1+json"
    public static let manifestType = "application/vnd.oci.image.manifest.v1+json"
    public static let configType = "application/vnd.oci.image.config.v1+json"
    public static let layerGzipType = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let dockerManifestType = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerListType = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let layerTypes: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar", layerGzipType,
        "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ]
    /// containerd's name annotation, and the OCI one.
    public static let imageNameAnnotation = "io.containerd.image.name"
    public static let refNameAnnotation = "org.opencontainers.image.ref.name"

    public struct Platform: Codable, Sendable {
        public var architecture: String
        public var os: String
        public var variant: String?
    }

    public struct Descriptor: Codable, Sendable {
        public var mediaType: String?
        public var digest: String
        public var size: Int64
        public var annotations: [String: String]?
        public var platform: Platform?

        public init(mediaType: String?, digest: String, size: Int64, annotations: [String: String]? = nil,
                    platform: Platform? = nil) {
            self.mediaType = mediaType
            self.digest = digest
            self.size = size
            self.annotations = annotations
            self.platform = platform
        }
    }

    public struct Index: Codable, Sendable {
        public var schemaVersion: Int
        public var mediaType: String?
        public var manifests: [Descriptor]

        public init(schemaVersion: Int = 2, mediaType: String? = nil, manifests: [Descriptor]) {
            self.schemaVersion = schemaVersion
            self.mediaType = mediaType
            self.manifests = manifests
        }
    }

    public struct Manifest: Codable, Sendable {
        public var schemaVersion: Int
        public var mediaType: String?
        public var config: Descriptor
        public var layers: [Descriptor]

        public init(schemaVersion: Int = 2, mediaType: String? = nil, config: Descriptor, layers: [Descriptor]) {
            self.schemaVersion = schemaVersion
            self.mediaType = mediaType
            self.config = config
            self.layers = layers
        }
    }

    public struct RootFS: Codable, Sendable {
        public var type: String
        public var diff_ids: [String]

        public init(type: String = "layers", diff_ids: [String]) {
            self.type = type
            self.diff_ids = diff_ids
        }
    }

    /// An image config (OCI's, which docker's extends; unknown fields are ignored).
    public struct ImageConfigFile: Codable, Sendable {
        public var created: String?
        public var author: String?
        public var architecture: String
        public var os: String
        public var variant: String?
        public var config: ImageConfig?
        public var rootfs: RootFS
        public var history: [ImageHistory]?
        /// docker's: `commit -m`.
        public var comment: String?
    }

    /// One image of docker's manifest.json.
    public struct DockerEntry: Codable, Sendable {
        public var Config: String
        public var RepoTags: [String]?
        public var Layers: [String]
    }

    /// The host's architecture in OCI's words.
    public static var hostArchitecture: String {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: u.machine) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        case "i386", "i686": return "386"
        case "armv7l": return "arm"
        default: return machine
        }
    }

    /// "docker.io/library/web:v2" for "web:v2", as containerd names images.
    public static func fullName(_ ref: ImageReference) -> String {
        let first = ref.name.split(separator: "/").first.map(String.init) ?? ref.name
        let hasHost = ref.name.contains("/") && (first.contains(".") || first.contains(":") || first == "localhost")
        if hasHost { return ref.description }
        return (ref.name.contains("/") ? "docker.io/" : "docker.io/library/") + ref.description
    }

    /// A name from an archive, as gocker shows it: docker.io's prefixes dropped.
    /// (ImageReference's parsing drops them.)
    public static func shortName(_ text: String) throws(GockerError) -> ImageReference {
        try ImageReference(parsing: text)
    }

    /// "sha256:" and 64 lowercase hex digits: the only digests gocker
    /// takes from archives and registries (they become file names).
    public static func isDigest(_ d: String) -> Bool {
        d.hasPrefix("sha256:") && Unpacked.isDigestHex(String(d.dropFirst(7)))
    }
}

extension ImageStore {
    // MARK: - save

    /// `gocker save`: the images (name[:tag] or id) as one OCI image-layout
    /// tarball written to `sink`. An image named by a tag carries that name
    /// (`io.containerd.image.name` and `org.opencontainers.image.ref.name`
    /// in index.json, RepoTags in manifest.json); one named by id, none.
    public func save(_ refs: [String], to sink: any ByteSink) throws(GockerError) {
        var chosen: [(ImageRecord, ImageReference?)] = []
        for text in refs {
            let (image, ref) = try resolve(text)
            chosen.append((image, ref))
        }
        let tar = TarWriter(sink)
        var written = Set<String>()
        func dir(_ name: String) throws(GockerError) {
            var e = TarEntry(name: name, kind: .directory)
            e.mode = 0o755
            try tar.append(e)
        }
        func file(_ name: String, _ bytes: [UInt8]) throws(GockerError) {
            var e = TarEntry(name: name, kind: .file)
            e.mode = 0o644
            try tar.append(e, content: bytes)
        }
        /// A JSON blob, once, and its descriptor.
        func blob(_ bytes: [UInt8], type: String) throws(GockerError) -> OCI.Descriptor {
            let hex = SHA256.hash(bytes).hex
            if written.insert(hex).inserted { try file("blobs/sha256/" + hex, bytes) }
            return OCI.Descriptor(mediaType: type, digest: "sha256:" + hex, size: Int64(bytes.count))
        }
        try dir("blobs")
        try dir("blobs/sha256")
        var index: [OCI.Descriptor] = []
        var docker: [String: OCI.DockerEntry] = [:]
        var dockerOrder: [String] = []
        // Layers made before layers kept their archive are archived now,
        // once each.
        var made: [String: LayerBlob] = [:]
        defer { for m in made.values { try? Sys.removeAll(m.path) } }
        for (image, ref) in chosen {
            var layers: [OCI.Descriptor] = []
            var diffIDs: [String] = []
            for layer in image.layers {
                var blob: LayerBlob
                if let kept = made[layer] {
                    blob = kept
                } else {
                    blob = try layerBlob(layer)
                    if blob.temporary { made[layer] = blob }
                }
                diffIDs.append(blob.diffID)
                let hex = String(blob.archive.digest.dropFirst(7))
                if written.insert(hex).inserted {
                    let fd = try performing("save: open \(blob.path)") { () throws(SystemCallError) in
                        try Sys.open(blob.path, O_RDONLY)
                    }
                    defer { Sys.close(fd) }
                    var e = TarEntry(name: "blobs/sha256/" + hex, kind: .file)
                    e.mode = 0o644
                    e.size = blob.archive.size
                    try tar.append(e, from: fd)
                }
                layers.append(OCI.Descriptor(mediaType: blob.archive.layerMediaType, digest: blob.archive.digest,
                                             size: blob.archive.size))
            }
            let config = try blob(configBlob(image, diffIDs: diffIDs.map { "sha256:" + $0 }), type: OCI.configType)
            let manifest = try blob(JSON.encode(OCI.Manifest(schemaVersion: 2, mediaType: OCI.manifestType,
                                                              config: config, layers: layers)), type: OCI.manifestType)
            var descriptor = manifest
            if let ref {
                descriptor.annotations = [OCI.imageNameAnnotation: OCI.fullName(ref), OCI.refNameAnnotation: ref.tag]
            }
            index.append(descriptor)
            if docker[image.id] == nil {
                dockerOrder.append(image.id)
                docker[image.id] = OCI.DockerEntry(Config: "blobs/sha256/" + config.digest.dropFirst(7), RepoTags: [],
                                                   Layers: layers.map { "blobs/sha256/" + $0.digest.dropFirst(7) })
            }
            if let ref, !(docker[image.id]!.RepoTags ?? []).contains(ref.description) {
                docker[image.id]!.RepoTags!.append(ref.description)
            }
        }
        try file("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        try file("index.json", JSON.encode(OCI.Index(schemaVersion: 2, mediaType: OCI.indexType, manifests: index)))
        try file("manifest.json", JSON.encode(dockerOrder.map { docker[$0]! }))
        try tar.finish()
    }

    /// What `push` sends for an image: each layer's blob (a file, and its
    /// descriptor), the config and the manifest, as `save` writes them.
    /// `finish()` removes the blobs made for it (layers that kept no archive).
    public struct PushPlan {
        public var image: ImageRecord
        public var layers: [(path: String, descriptor: OCI.Descriptor)]
        public var config: [UInt8]
        public var configDescriptor: OCI.Descriptor
        public var manifest: [UInt8]
        var temporary: [String]

        public func finish() { for path in temporary { try? Sys.removeAll(path) } }
    }

    public func pushPlan(_ text: String) throws(GockerError) -> PushPlan {
        let (image, _) = try resolve(text)
        var layers: [(path: String, descriptor: OCI.Descriptor)] = []
        var diffIDs: [String] = []
        var temporary: [String] = []
        do throws(GockerError) {
            for layer in image.layers {
                let blob = try layerBlob(layer)
                if blob.temporary { temporary.append(blob.path) }
                diffIDs.append("sha256:" + blob.diffID)
                layers.append((blob.path, OCI.Descriptor(mediaType: blob.archive.layerMediaType, digest: blob.archive.digest,
                                                         size: blob.archive.size)))
            }
        } catch {
            for path in temporary { try? Sys.removeAll(path) }
            throw error
        }
        let config = configBlob(image, diffIDs: diffIDs)
        let configDescriptor = OCI.Descriptor(mediaType: OCI.configType, digest: "sha256:" + SHA256.hash(config).hex,
                                              size: Int64(config.count))
        let manifest = JSON.encode(OCI.Manifest(schemaVersion: 2, mediaType: OCI.manifestType, config: configDescriptor,
                                                layers: layers.map(\.descriptor)))
        return PushPlan(image: image, layers: layers, config: config, configDescriptor: configDescriptor, manifest: manifest,
                        temporary: temporary)
    }

    /// A layer's blob for `save`: the file, its digest and size, the diff
    /// id it carries, and whether it was made for this save (and goes
    /// after it).
    struct LayerBlob {
        var path: String
        var archive: LayerArchive
        var diffID: String
        var temporary: Bool
    }

    /// The layer's kept archive as it is, plain or gzip (its stream is the
    /// layer: the diff id is the layer's); a layer without one archived
    /// from its directory, gzip-compressed.
    func layerBlob(_ layer: String) throws(GockerError) -> LayerBlob {
        if let kept = try layerArchive(layer) {
            return LayerBlob(path: archivePath(layer, gzip: kept.isGzip), archive: kept, diffID: layer, temporary: false)
        }
        let r = try renderArchive(layer)
        return LayerBlob(path: r.path, archive: r.archive, diffID: r.diffID, temporary: true)
    }

    /// A layer without an archive (made before layers kept one) archived
    /// from its directory: a new stream, so a new diff id, and the image
    /// that carries it loads under a new id.
    func renderArchive(_ layer: String) throws(GockerError) -> (path: String, archive: LayerArchive, diffID: String) {
        var diffID = ""
        let r = try compressArchive { sink throws(GockerError) in
            let plain = HashingSink(sink)
            let tar = TarWriter(plain)
            try LayerTree.writeChanges(upper: layerPath(layer), lowers: [], to: tar, keepMountPoints: true)
            try tar.finish()
            diffID = plain.digest().hex
        }
        return (r.path, r.archive, diffID)
    }

    /// What `body` writes, gzip-compressed (gzip -1, on every core) into
    /// a new file under archives/, with its digest and size; on a failure
    /// nothing is left.
    func compressArchive(_ body: (any ByteSink) throws(GockerError) -> Void) throws(GockerError) -> (path: String, archive: LayerArchive) {
        try performing("save: create \(root)/archives") { () throws(SystemCallError) in
            try Sys.mkdirAll(root + "/archives", mode: 0o700)
        }
        let path = root + "/archives/.tmp-save-\(Sys.randomBytes(8).hex).tar.gz"
        do throws(GockerError) {
            let file = try FileSink(creating: path, hashing: true)
            let gzip = try GzipSink(file)
            try body(gzip)
            try gzip.finish()
            return (path, LayerArchive(digest: "sha256:" + file.digest().hex, size: file.count))
        } catch {
            try? Sys.removeAll(path)
            throw error
        }
    }

    /// The OCI config of an image: what it runs, its diff ids, its history.
    public func configFile(_ image: ImageRecord) -> OCI.ImageConfigFile {
        OCI.ImageConfigFile(
            created: image.created, author: image.author, architecture: image.architecture ?? OCI.hostArchitecture,
            os: image.os ?? "linux", variant: image.variant, config: image.config, rootfs: OCI.RootFS(type: "layers", diff_ids: image.layers.map { "sha256:" + $0 }),
            history: image.history, comment: image.comment)
    }

    // MARK: - load

    /// A new staging directory for a load, `.tmp-load-RANDOM`, held locked
    /// (flock on its descriptor, returned) until the load ends; those a
    /// killed load left (no one holds them) go first. Both under
    /// `load.lock`, so that no directory is ever seen between its mkdir
    /// and its lock.
    func loadStaging() throws(GockerError) -> (path: String, held: Int32) {
        let guardLock = try performing("load: lock \(root)/load.lock") { () throws(SystemCallError) in
            try Sys.mkdirAll(root, mode: 0o700)
            return try Sys.lock(root + "/load.lock")
        }
        defer { Sys.close(guardLock) }
        for name in (try? Sys.listDirectory(root)) ?? [] where name.hasPrefix(".tmp-load-") {
            let fd = Glibc.open(root + "/" + name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? Sys.removeAll(root + "/" + name) }
            Sys.close(fd)
        }
        let staging = root + "/.tmp-load-\(Sys.randomBytes(8).hex)"
        let held = try performing("load: create \(staging)") { () throws(SystemCallError) in
            try Sys.check("mkdir", path: staging) { mkdir(staging, 0o700) }
            let fd = try Sys.open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard flock(fd, LOCK_EX) == 0 else {
                let e = errno
                Sys.close(fd)
                rmdir(staging)
                throw SystemCallError("flock", path: staging, errno: e)
            }
            return fd
        }
        return (staging, held)
    }

    /// `gocker load`: every image of an OCI image layout or a `docker save`
    /// tarball (plain, gzip or xz). The tarball is unpacked with the same
    /// safe extraction as `import` into a directory of its own, which goes
    /// afterwards; then each blob's digest is checked before any layer is
    /// extracted, and each layer's diff id after. `output` gets docker's
    /// lines ("Loaded image: NAME", "Loaded image ID: sha256:..."). On a
    /// failure no layer or image of the failed image is left.
    @discardableResult
    public func load(from input: FileSource, output: (String) -> Void) throws(GockerError) -> [ImageRecord] {
        let (staging, held) = try loadStaging()
        defer {
            try? Sys.removeAll(staging)
            Sys.close(held)
            InflatedSource.drainPool()
        }
        do throws(GockerError) {
            let reader = TarReader(try input.decompressed())
            let writer = try LayerWriter(directory: staging)
            while let entry = try reader.next() { try writer.write(entry, from: reader) }
            try writer.finish()
        } catch {
            throw Self.asLoad(error)
        }
        let unpacked = Unpacked(root: staging)
        var loaded: [ImageRecord] = []
        if unpacked.exists("index.json") {
            let index = try JSON.decode(OCI.Index.self, from: try unpacked.read("index.json"), what: "index.json")
            for (descriptor, names) in try manifests(of: index, names: [], in: unpacked) {
                let manifest = try JSON.decode(OCI.Manifest.self, from: try unpacked.blob(descriptor), what: "manifest \(descriptor.digest)")
                let configBytes = try unpacked.blob(manifest.config)
                let config = try JSON.decode(OCI.ImageConfigFile.self, from: configBytes, what: "config \(manifest.config.digest)")
                for layer in manifest.layers where !OCI.layerTypes.contains(layer.mediaType ?? OCI.layerGzipType) {
                    throw GockerError(.invalidArgument, "load: layer \(layer.digest): unsupported media type \(layer.mediaType ?? "")")
                }
                // Every layer blob's digest first, before anything is extracted.
                for layer in manifest.layers { try unpacked.verify(layer) }
                let files = try manifest.layers.map { d throws(GockerError) in try unpacked.blobPath(d.digest) }
                let kept = manifest.layers.map { d in ImageStore.LayerArchive(digest: d.digest, size: d.size, mediaType: nil) }
                loaded.append(try store(config, layerFiles: files, checked: kept, names: names, in: unpacked,
                                        configBytes: configBytes, output: output))
            }
        } else if unpacked.exists("manifest.json") {
            let entries = try JSON.decode([OCI.DockerEntry].self, from: try unpacked.read("manifest.json"), what: "manifest.json")
            for entry in entries {
                let configBytes = try unpacked.read(entry.Config)
                // The config's name is its digest: "<hex>.json" or "blobs/sha256/<hex>".
                let base = String(entry.Config.split(separator: "/").last ?? "")
                let named = base.hasSuffix(".json") ? String(base.dropLast(5)) : base
                if Unpacked.isDigestHex(named), SHA256.hash(configBytes).hex != named {
                    throw GockerError(.invalidArgument, "load: config \(entry.Config): digest mismatch: its content is sha256:\(SHA256.hash(configBytes).hex)")
                }
                let config = try JSON.decode(OCI.ImageConfigFile.self, from: configBytes, what: "config \(entry.Config)")
                let names = try (entry.RepoTags ?? []).map { t throws(GockerError) in try OCI.shortName(t) }
                loaded.append(try store(config, layerFiles: entry.Layers, checked: nil, names: names, in: unpacked,
                                        configBytes: configBytes, output: output))
            }
        } else {
            throw GockerError(.invalidArgument, "load: neither index.json nor manifest.json found: not an image archive")
        }
        return loaded
    }

    /// `pull`'s end: an image whose blobs `staging` holds as an OCI
    /// layout's (blobs/sha256/HEX, each checked against its descriptor
    /// already), stored as `load` stores one, its id its config's digest
    /// (as docker's is). A layer the store has already (`hasLayer`) needs no
    /// blob. Messages begin "pull:".
    /// `feed`: how a layer's blob comes while others are extracted.
    public func storePulled(_ config: OCI.ImageConfigFile, bytes: [UInt8], layers: [OCI.Descriptor],
                            names: [ImageReference], staging: String, feed: LayerFeed? = nil) throws(GockerError) -> ImageRecord {
        let files = layers.map { "blobs/sha256/" + $0.digest.dropFirst(7) }
        let kept = layers.map { LayerArchive(digest: $0.digest, size: $0.size, mediaType: nil) }
        return try store(config, layerFiles: files, checked: kept, names: names, in: Unpacked(root: staging),
                         verb: "pull", configBytes: bytes, feed: feed) { _ in }
    }

    /// The config an image travels with (`save`, `push`): the one it was
    /// pulled with, byte for byte, where its layers travel as they came;
    /// else one made from its record.
    func configBlob(_ image: ImageRecord, diffIDs: [String]) -> [UInt8] {
        if diffIDs == image.layers.map({ "sha256:" + $0 }), let kept = try? Sys.readFile(configPath(image.id)),
           SHA256.hash(kept).hex == image.id {
            return kept
        }
        var document = configFile(image)
        document.rootfs.diff_ids = diffIDs
        return JSON.encode(document)
    }

    /// Whether the store holds the layer of this diff id ("sha256:HEX")
    /// with its archive, as `load` and `pull` reuse one.
    public func hasLayer(diffID: String) -> Bool {
        let id = String(diffID.dropFirst(7))
        guard OCI.isDigest(diffID), Sys.isDirectory(layerPath(id)) else { return false }
        return (try? layerArchive(id)) != nil
    }

    /// "import: ..." messages of the shared extraction, said as load's.
    public static func asLoad(_ error: GockerError) -> GockerError {
        var e = error
        if e.message.hasPrefix("import: ") { e.message = "load: " + e.message.dropFirst(8) }
        return e
    }

    /// The image manifests an index names (nested indexes followed, for
    /// this host's platform), each with the names its annotations give.
    private func manifests(of index: OCI.Index, names: [ImageReference], in unpacked: Unpacked,
                           depth: Int = 0) throws(GockerError) -> [(OCI.Descriptor, [ImageReference])] {
        guard depth < 4 else { throw GockerError(.invalidArgument, "load: indexes nested too deep") }
        var out: [(OCI.Descriptor, [ImageReference])] = []
        for d in index.manifests {
            var own = names
            if let full = d.annotations?[OCI.imageNameAnnotation] {
                own = [try OCI.shortName(full)]
            } else if let ref = d.annotations?[OCI.refNameAnnotation], ref.contains(":") || ref.contains("/") {
                own = [try OCI.shortName(ref)]
            }
            switch d.mediaType ?? OCI.manifestType {
            case OCI.indexType, OCI.dockerListType:
                let nested = try JSON.decode(OCI.Index.self, from: try unpacked.blob(d), what: "index \(d.digest)")
                let here = nested.manifests.filter { m in
                    m.platform.map { $0.os == "linux" && $0.architecture == OCI.hostArchitecture } ?? true
                }
                guard !here.isEmpty else {
                    throw GockerError(.invalidArgument, "load: index \(d.digest) has no image for linux/\(OCI.hostArchitecture)")
                }
                out += try manifests(of: OCI.Index(schemaVersion: 2, manifests: here), names: own, in: unpacked, depth: depth + 1)
            case OCI.manifestType, OCI.dockerManifestType:
                out.append((d, own))
            default:
                throw GockerError(.invalidArgument, "load: \(d.digest): unsupported media type \(d.mediaType ?? "")")
            }
        }
        return out
    }

    /// Stores an image's layers (each checked against its diff id) and
    /// records it with its names. A layer that was not here before and a
    /// failure removes again.
    /// `checked`: the layer files' digests, verified already (OCI blobs).
    /// `configBytes`: the config as it came, which names the image (its
    /// digest the id, as docker's) and is kept to be pushed and saved again.
    private func store(_ config: OCI.ImageConfigFile, layerFiles: [String], checked: [LayerArchive]?, names: [ImageReference],
                       in unpacked: Unpacked, verb: String = "load", configBytes: [UInt8], feed: LayerFeed? = nil,
                       output: (String) -> Void) throws(GockerError) -> ImageRecord {
        // The memory layers were inflated into goes with the work.
        defer { InflatedSource.drainPool() }
        func said(_ error: GockerError) -> GockerError {
            var e = Self.asLoad(error)
            if verb != "load", e.message.hasPrefix("load: ") { e.message = verb + ": " + e.message.dropFirst(6) }
            return e
        }
        guard config.rootfs.diff_ids.count == layerFiles.count else {
            throw GockerError(.invalidArgument,
                "\(verb): the config lists \(config.rootfs.diff_ids.count) layers, the manifest \(layerFiles.count)")
        }
        var layers: [String] = []
        for id in config.rootfs.diff_ids {
            guard OCI.isDigest(id) else {
                throw GockerError(.invalidArgument, "\(verb): invalid diff id \"\(id)\"")
            }
            layers.append(String(id.dropFirst(7)))
        }
        var made: [String] = []
        func undo() {
            _ = try? locked { () throws(GockerError) in
                let used = Set(try images().flatMap(\.layers))
                for id in made where !used.contains(id) {
                    try? Sys.removeAll(layerPath(id))
                    removeArchive(id)
                }
            }
        }
        /// One layer extracted from its file; whether it is new here.
        func one(_ i: Int) throws(GockerError) -> Bool {
            let file = layerFiles[i]
            let want = layers[i]
            if Sys.isDirectory(layerPath(want)), try layerArchive(want) != nil { return false }
            try feed?.ready(i)
            let input = try unpacked.open(file)
            let layerInput: LayerInput
            do throws(GockerError) {
                // The blob becomes the layer's archive as it is: a plain
                // one (its digest is the diff id, checked below), or a
                // gzip one whose digest was checked. Any other is kept
                // as `import` keeps it.
                let path = unpacked.root + "/" + file
                switch try Compression.detect(try input.peek(6)) {
                case .none:
                    layerInput = .checked(input, path: path, archive: LayerArchive(
                        digest: "sha256:" + want, size: Int64(input.size ?? 0), mediaType: LayerArchive.plainType))
                case .gzip where checked != nil:
                    var archive = checked![i]
                    archive.mediaType = OCI.layerGzipType
                    layerInput = .checked(try input.decompressed(), path: path, archive: archive)
                default:
                    layerInput = .raw(input)
                }
            } catch {
                throw said(error)
            }
            let isNew = !Sys.exists(layerPath(want))
            do throws(GockerError) {
                try storeLayer(layerInput, whiteouts: .overlay) { id throws(GockerError) in
                    guard id == want else {
                        throw GockerError(.invalidArgument,
                            "\(verb): layer \(file): digest mismatch: the config says sha256:\(want), its content is sha256:\(id)")
                    }
                }
            } catch {
                throw said(error)
            }
            return isNew
        }
        do throws(GockerError) {
            // The layers are extracted on as many threads as there are
            // CPUs (at most 4), each taking the next layer left: a layer is
            // a single stream (inflate, hash, files), and an image's layers
            // are independent. A layer listed twice is extracted once.
            var seen = Set<String>()
            let unique = layers.indices.filter { seen.insert(layers[$0]).inserted }
            let state = Mutex<(next: Int, made: [String], error: GockerError?)>((0, [], nil))
            let work = { () -> Void in
                while true {
                    let i: Int? = state.withLock { s in
                        guard s.error == nil, s.next < unique.count else { return nil }
                        s.next += 1
                        return unique[s.next - 1]
                    }
                    guard let i else { return }
                    do throws(GockerError) {
                        let isNew = try one(i)
                        if isNew { state.withLock { $0.made.append(layers[i]) } }
                        feed?.extracted(i)
                    } catch {
                        state.withLock { if $0.error == nil { $0.error = error } }
                    }
                }
            }
            let cpus = max(1, min(Sys.onlineCPUs, 4, unique.count))
            let helpers = (1..<cpus).map { _ in Background(work) }
            work()
            for h in helpers { h.value() }
            let (done, failure) = state.withLock { ($0.made, $0.error) }
            made = done
            if let failure { throw failure }
            let image = try locked { () throws(GockerError) -> ImageRecord in
                // What gocker made itself says this host's platform by saying none.
                let own = config.os == "linux" && config.architecture == OCI.hostArchitecture && config.variant == nil
                let image = try add(layers: layers, config: config.config ?? ImageConfig(), tag: names.first,
                                    comment: config.comment, created: config.created, author: config.author,
                                    history: config.history, document: configBytes,
                                    platform: own ? nil : OCI.Platform(architecture: config.architecture, os: config.os,
                                                                       variant: config.variant))
                for name in names.dropFirst() { try setTag(name, to: image.id) }
                return image
            }
            if names.isEmpty { output("Loaded image ID: sha256:\(image.id)") }
            for name in names { output("Loaded image: \(name)") }
            return image
        } catch {
            undo()
            throw error
        }
    }
}

/// How a pull's layers come to `storePulled` while it extracts others:
/// `ready(i)` returns once layer i's blob is in the staging directory (or
/// throws why it will not be), `extracted(i)` says a layer is stored.
public struct LayerFeed {
    public var ready: (Int) throws(GockerError) -> Void
    public var extracted: (Int) -> Void

    public init(ready: @escaping (Int) throws(GockerError) -> Void, extracted: @escaping (Int) -> Void) {
        self.ready = ready
        self.extracted = extracted
    }
}

/// An unpacked archive: files read beneath its directory without
/// following a symlink, blobs checked against their digests.
struct Unpacked {
    let root: String

    static func isDigestHex(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    func exists(_ name: String) -> Bool { Sys.exists(root + "/" + name) }

    /// The path of a blob, from its digest (sha256 only).
    func blobPath(_ digest: String) throws(GockerError) -> String {
        guard OCI.isDigest(digest) else {
            throw GockerError(.invalidArgument, "load: unsupported or invalid digest \"\(digest)\"")
        }
        return "blobs/sha256/" + digest.dropFirst(7)
    }

    /// Opens a regular file of the archive; `name` is as the archive's
    /// documents give it (no absolute or ".." paths, no symlinks on the way).
    func open(_ name: String) throws(GockerError) -> FileSource {
        let parts: [String]
        do throws(GockerError) { parts = try LayerWriter.components(of: name) } catch {
            throw GockerError(.invalidArgument, "load: \"\(name)\" is outside the archive")
        }
        guard !parts.isEmpty else { throw GockerError(.invalidArgument, "load: \"\(name)\" is not a file") }
        var fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        for (i, part) in parts.enumerated() where fd >= 0 {
            let last = i == parts.count - 1
            let next = openat(fd, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY))
            Sys.close(fd)
            fd = next
        }
        var st = stat()
        guard fd >= 0, fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            if fd >= 0 { Sys.close(fd) }
            throw GockerError(.invalidArgument, "load: \(name) is missing from the archive (or not a file)")
        }
        return FileSource(descriptor: fd, name: name)
    }

    /// A whole small file (a JSON document: at most 16 MiB).
    func read(_ name: String) throws(GockerError) -> [UInt8] {
        let source = try open(name)
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try source.read(into: chunk)
            if n == 0 { return out }
            out += UnsafeRawBufferPointer(rebasing: chunk[0..<n])
            if out.count > 16 << 20 { throw GockerError(.invalidArgument, "load: \(name) is too large") }
        }
    }

    /// A JSON blob, its digest and size checked.
    func blob(_ d: OCI.Descriptor) throws(GockerError) -> [UInt8] {
        let bytes = try read(try blobPath(d.digest))
        try Self.check(d, digest: "sha256:" + SHA256.hash(bytes).hex, size: Int64(bytes.count))
        return bytes
    }

    /// A (large) blob's digest and size checked by reading it through.
    func verify(_ d: OCI.Descriptor) throws(GockerError) {
        let source = HashingSource(try open(try blobPath(d.digest)))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { chunk.deallocate() }
        while try source.read(into: chunk) > 0 {}
        try Self.check(d, digest: "sha256:" + source.digest().hex, size: source.count)
    }

    /// A blob against its descriptor: what differs is what is said (the
    /// size, the digest, or both).
    static func check(_ d: OCI.Descriptor, digest actual: String, size: Int64) throws(GockerError) {
        var wrong: [String] = []
        if actual != d.digest { wrong.append("digest mismatch: its content is \(actual)") }
        if size != d.size { wrong.append("size mismatch: expected \(d.size) bytes, got \(size)") }
        guard wrong.isEmpty else {
            throw GockerError(.invalidArgument, "load: blob \(d.digest): \(wrong.joined(by: "; "))")
        }
    }
}

extension OCI.ImageConfigFile {
    /// A config of these layers alone (the memberwise one stays for this module).
    public init(architecture: String, os: String, config: ImageConfig?, rootfs: OCI.RootFS) {
        self.init(created: nil, author: nil, architecture: architecture, os: os, variant: nil, config: config,
                  rootfs: rootfs, history: nil, comment: nil)
    }
}
