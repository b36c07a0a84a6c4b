import Glibc
import GockerCore

/// A platform as `--platform` gives it: os/arch[/variant].
public struct PlatformChoice: Sendable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(parsing text: String?) throws(GockerError) {
        guard let text, !text.isEmpty else {
            os = "linux"
            architecture = OCI.hostArchitecture
            variant = architecture == "arm64" ? "v8" : nil
            return
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber } }) else {
            throw GockerError(.invalidArgument, "invalid platform \"\(text)\": os/arch[/variant] expected")
        }
        os = parts[0].lowercased()
        architecture = parts[1].lowercased()
        variant = parts.count == 3 ? parts[2].lowercased() : nil
        // docker's spellings of the same architectures.
        switch architecture {
        case "x86_64", "x86-64": architecture = "amd64"
        case "aarch64": architecture = "arm64"
        default: break
        }
    }

    public var description: String { "\(os)/\(architecture)" + (variant.map { "/" + $0 } ?? "") }

    /// Whether an index entry's platform is this one (an entry that names
    /// no variant fits any; arm64's default variant is v8).
    func matches(_ p: OCI.Platform) -> Bool {
        guard p.os == os, p.architecture == architecture else { return false }
        guard let want = variant, let have = p.variant else { return true }
        return want == have
    }
}

/// `gocker pull`: an image's manifest (through an index for the platform),
/// its config and the layers the store lacks, each blob checked against its
/// digest and size before anything of it is extracted; then stored as
/// `load` stores an image. Nothing of a failed pull is left.
public struct Puller {
    public let store: ImageStore
    public var platform: PlatformChoice
    /// Each line docker prints for a pull ("<tag>: Pulling from <repo>",
    /// "<layer>: Pull complete", "Digest: ...", "Status: ...").
    public var output: (String) -> Void
    /// Bytes of layers received, as they come (a progress line's).
    public var progress: (Int64, Int64) -> Void = { _, _ in }
    public var timeout: Int

    public init(store: ImageStore, platform: PlatformChoice, timeout: Int = 60, output: @escaping (String) -> Void) {
        self.store = store
        self.platform = platform
        self.timeout = timeout
        self.output = output
    }

    /// The image, with the digest its name resolved to.
    @discardableResult
    public func pull(_ ref: RegistryReference) throws(GockerError) -> (image: ImageRecord, digest: String) {
        let client = RegistryClient(ref, credentials: try Credentials.stored(for: ref.registry), timeout: timeout)
        if ref.digest == nil && ref.tag == "latest" && !ref.givenTag { output("Using default tag: latest") }
        var (bytes, type, digest) = try client.manifest(ref.reference, shown: ref.description)
        // What the name resolved to, as docker shows it (an index's digest
        // where there is one).
        let named = digest
        output("\(ref.digest ?? ref.tag ?? "latest"): Pulling from \(ref.repository)")
        var mediaType = type ?? Self.mediaType(of: bytes)
        if mediaType == OCI.indexType || mediaType == OCI.dockerListType {
            let index = try JSON.decode(OCI.Index.self, from: bytes, what: "the index of \(ref)")
            for d in index.manifests where !OCI.isDigest(d.digest) {
                throw GockerError(.invalidArgument, "\(ref): the index names an invalid digest \"\(d.digest.prefix(80))\"")
            }
            guard let chosen = index.manifests.first(where: { d in
                d.platform.map(platform.matches) ?? false
                    && [OCI.manifestType, OCI.dockerManifestType].contains(d.mediaType ?? OCI.manifestType)
            }) else {
                throw GockerError(.notFound, "no matching manifest for \(platform) in the manifest list entries")
            }
            (bytes, type, digest) = try client.manifest(chosen.digest, shown: ref.description)
            mediaType = type ?? Self.mediaType(of: bytes)
        }
        guard mediaType == OCI.manifestType || mediaType == OCI.dockerManifestType else {
            throw GockerError(.invalidArgument, "\(ref): unsupported manifest media type \"\(mediaType)\"")
        }
        let manifest = try JSON.decode(OCI.Manifest.self, from: bytes, what: "the manifest of \(ref)")
        for layer in manifest.layers where !OCI.layerTypes.contains(layer.mediaType ?? OCI.layerGzipType) {
            throw GockerError(.invalidArgument, "\(ref): layer \(layer.digest): unsupported media type \(layer.mediaType ?? "")")
        }
        // Digests become file names; sizes are summed.
        for d in [manifest.config] + manifest.layers {
            guard OCI.isDigest(d.digest), d.size >= 0, d.size <= 1 << 40 else {
                throw GockerError(.invalidArgument, "\(ref): invalid descriptor \"\(d.digest.prefix(80))\" of \(d.size) bytes")
            }
        }

        var configBytes: [UInt8] = []
        try client.blob(manifest.config, restart: { configBytes.removeAll() }) { (piece) throws(GockerError) in
            guard configBytes.count + piece.count <= 8 << 20 else {
                throw GockerError(.invalidArgument, "\(ref): the config is larger than 8 MiB")
            }
            configBytes += piece
        }
        let config = try JSON.decode(OCI.ImageConfigFile.self, from: configBytes, what: "the config of \(ref)")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw GockerError(.invalidArgument,
                "\(ref): the config lists \(config.rootfs.diff_ids.count) layers, the manifest \(manifest.layers.count)")
        }
        if config.os != platform.os || config.architecture != platform.architecture {
            throw GockerError(.invalidArgument,
                "\(ref): the image is for \(config.os)/\(config.architecture), not \(platform.os)/\(platform.architecture)")
        }

        // One pull at a time downloads into a store: a second pull of the
        // same image waits, then finds its layers here (none twice).
        let lock = try performing("pull: lock \(store.root)/pull.lock") { () throws(SystemCallError) in
            try Sys.mkdirAll(store.root, mode: 0o700)
            return try Sys.lock(store.root + "/pull.lock")
        }
        defer { Sys.close(lock) }
        // What a pull that was killed left (under the lock, none runs).
        for name in (try? Sys.listDirectory(store.root)) ?? [] where name.hasPrefix(".tmp-pull-") {
            try? Sys.removeAll(store.root + "/" + name)
        }
        let staging = store.root + "/.tmp-pull-\(Sys.randomBytes(8).hex)"
        try performing("pull: create \(staging)") { () throws(SystemCallError) in
            try Sys.check("mkdir", path: staging) { mkdir(staging, 0o700) }
            try Sys.mkdirAll(staging + "/blobs/sha256", mode: 0o700)
        }
        defer { try? Sys.removeAll(staging) }

        let total = manifest.layers.reduce(Int64(0)) { $0 + $1.size }
        var received: Int64 = 0
        var fetched = 0
        var downloaded = Set<String>()
        for (i, layer) in manifest.layers.enumerated() {
            let short = String(layer.digest.dropFirst(7).prefix(12))
            // A layer the store has, or one this pull fetched already (a
            // manifest may list one twice).
            if store.hasLayer(diffID: config.rootfs.diff_ids[i]) || downloaded.contains(layer.digest) {
                output("\(short): Already exists")
                received += layer.size
                progress(received, total)
                continue
            }
            let path = staging + "/blobs/sha256/" + layer.digest.dropFirst(7)
            let fd = try performing("pull: create \(path)") { () throws(SystemCallError) in
                try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            }
            defer { Sys.close(fd) }
            var mine: Int64 = 0
            try client.blob(layer, restart: { () throws(GockerError) in
                // The registry sent it all again: the file starts over.
                try performing("pull: truncate \(path)") { () throws(SystemCallError) in
                    try Sys.check("ftruncate", path: path) { ftruncate(fd, 0) }
                    try Sys.check("lseek", path: path) { lseek(fd, 0, SEEK_SET) }
                }
                received -= mine
                mine = 0
            }) { (piece) throws(GockerError) in
                try performing("pull: write \(path)") { () throws(SystemCallError) in
                    try Sys.writeAll(fd, piece, path: path)
                }
                mine += Int64(piece.count)
                received += Int64(piece.count)
                progress(received, total)
            }
            fetched += 1
            downloaded.insert(layer.digest)
            output("\(short): Pull complete")
        }
        let names = ref.digest == nil ? [ref.local] : []
        let existed = (try? store.lookup(ref.local.description))?.0
        let had = (try? store.image(id: String(manifest.config.digest.dropFirst(7)))) != nil
        let image = try store.storePulled(config, bytes: configBytes, digest: manifest.config.digest, layers: manifest.layers,
                                          names: names, staging: staging)
        try store.addRepoDigest(ref.local.name + "@" + named, to: image.id)
        output("Digest: \(named)")
        // docker's familiar name: "alpine:latest", "host:5000/repo:tag", "repo@sha256:...".
        let shown = ref.digest.map { ref.local.name + "@" + $0 } ?? ref.local.description
        if had && fetched == 0 && (ref.digest != nil || existed?.id == image.id) {
            output("Status: Image is up to date for \(shown)")
        } else {
            output("Status: Downloaded newer image for \(shown)")
        }
        return (image, named)
    }

    /// A manifest's own mediaType, where the registry's Content-Type said none.
    static func mediaType(of bytes: [UInt8]) -> String {
        struct Typed: Decodable { var mediaType: String?; var manifests: [OCI.Descriptor]? }
        guard let t = try? JSON.decode(Typed.self, from: bytes, what: "manifest") else { return "" }
        return t.mediaType ?? (t.manifests != nil ? OCI.indexType : OCI.manifestType)
    }
}
