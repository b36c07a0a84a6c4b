import Glibc
import GockerCore
import Synchronization

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
    /// Each layer's state as it changes (its short id, the state), one
    /// call at a time: the lines docker draws per layer.
    public var layer: (String, LayerState) -> Void = { _, _ in }

    /// A layer's state, in docker's words.
    public enum LayerState: Sendable, Equatable {
        case waiting
        /// Bytes received of the blob's.
        case downloading(Int64, Int64)
        case downloaded, extracting, complete, exists

        public var words: String {
            switch self {
            case .waiting: return "Pulling fs layer"
            case .downloading: return "Downloading"
            case .downloaded: return "Download complete"
            case .extracting: return "Extracting"
            case .complete: return "Pull complete"
            case .exists: return "Already exists"
            }
        }
    }
    public var timeout: Int

    public init(store: ImageStore, platform: PlatformChoice, timeout: Int = 60, output: @escaping (String) -> Void) {
        self.store = store
        self.platform = platform
        self.timeout = timeout
        self.output = output
    }

    /// The image, with the digest its name resolved to. The registry's
    /// mirrors (registries.json) are tried first, in order: a pull from one
    /// that fails, or lacks the image, goes on with the next, then with the
    /// registry itself (as docker's registry-mirrors do).
    @discardableResult
    public func pull(_ ref: RegistryReference) throws(GockerError) -> (image: ImageRecord, digest: String) {
        if ref.digest == nil && ref.tag == "latest" && !ref.givenTag { output("Using default tag: latest") }
        for mirror in try RegistryConfig.load().mirrors(for: ref.registry) {
            let credentials: Credentials?
            do { credentials = try Credentials.stored(for: mirror.authority) } catch { continue }
            let client = RegistryClient(registry: mirror.authority, repository: ref.repository, credentials: credentials,
                                        timeout: timeout, endpoint: mirror)
            if let pulled = try? pull(ref, from: client) { return pulled }
        }
        return try pull(ref, from: RegistryClient(ref, credentials: try Credentials.stored(for: ref.registry), timeout: timeout))
    }

    private func pull(_ ref: RegistryReference, from client: RegistryClient) throws(GockerError) -> (image: ImageRecord, digest: String) {
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

        let said = Mutex(())
        func tell(_ id: String, _ state: LayerState) { said.withLock { _ in layer(id, state) } }
        /// One blob into the staging directory, checked; `check` is asked
        /// before each piece is written (another download failed).
        func fetchBlob(_ blob: OCI.Descriptor, short: String, client: RegistryClient,
                       check: () throws(GockerError) -> Void) throws(GockerError) {
            let path = staging + "/blobs/sha256/" + blob.digest.dropFirst(7)
            let fd = try performing("pull: create \(path)") { () throws(SystemCallError) in
                try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            }
            defer { Sys.close(fd) }
            var received: Int64 = 0
            try client.blob(blob, restart: { () throws(GockerError) in
                // The registry sent it all again: the file starts over.
                try performing("pull: truncate \(path)") { () throws(SystemCallError) in
                    try Sys.check("ftruncate", path: path) { ftruncate(fd, 0) }
                    try Sys.check("lseek", path: path) { lseek(fd, 0, SEEK_SET) }
                }
                received = 0
            }) { (piece) throws(GockerError) in
                try check()
                try performing("pull: write \(path)") { () throws(SystemCallError) in
                    try Sys.writeAll(fd, piece, path: path)
                }
                received += Int64(piece.count)
                tell(short, .downloading(received, blob.size))
            }
        }

        // What this pull downloads: each blob the store lacks, once (a
        // manifest may list one twice); each has a gate its extraction
        // waits at.
        let short = manifest.layers.map { String($0.digest.dropFirst(7).prefix(12)) }
        var pending: [String: Gate] = [:]
        var wanted: [(index: Int, layer: OCI.Descriptor)] = []
        var listed = Set<String>()
        for (i, layer) in manifest.layers.enumerated() where listed.insert(layer.digest).inserted {
            if store.hasLayer(diffID: config.rootfs.diff_ids[i]) {
                tell(short[i], .exists)
            } else {
                pending[layer.digest] = Gate()
                wanted.append((i, layer))
                tell(short[i], .waiting)
            }
        }
        let gates = pending
        let fetch = wanted
        let shared = Mutex<(next: Int, failure: GockerError?)>((0, nil))
        // Stops every download at once: the first failure stops the others
        // (a read stalled on the registry included), so that the pull ends
        // with it instead of waiting for a layer that will never come.
        let stopper = HTTPStop()
        /// Each download's thread: the next blob left, until none is or
        /// one failed (then every gate left opens with that failure).
        func download(_ client: RegistryClient) {
            while true {
                let (k, failure): (Int?, GockerError?) = shared.withLock { s in
                    guard s.next < fetch.count else { return (nil, nil) }
                    s.next += 1
                    return (s.next - 1, s.failure)
                }
                guard let k else { return }
                let (i, layer) = fetch[k]
                if let failure {
                    gates[layer.digest]!.open(failure)
                    continue
                }
                do throws(GockerError) {
                    try fetchBlob(layer, short: short[i], client: client) { () throws(GockerError) in
                        if let failure = shared.withLock({ $0.failure }) { throw failure }
                    }
                    tell(short[i], .downloaded)
                    gates[layer.digest]!.open()
                } catch {
                    // A download cut off by another's failure reports that
                    // failure, the pull's cause, not its own broken read.
                    let (cause, first) = shared.withLock { s -> (GockerError, Bool) in
                        if let earlier = s.failure { return (earlier, false) }
                        s.failure = error
                        return (error, true)
                    }
                    if first { stopper.stop() }
                    gates[layer.digest]!.open(cause)
                }
            }
        }
        // Up to three blobs at a time (docker's default), each on a
        // connection of its own, while the layers already here are
        // extracted.
        let helpers = (0..<min(3, fetch.count)).map { _ in
            let own = client.sibling(stopper: stopper)
            return Background { download(own) }
        }
        /// Downloads still going stop (a failure elsewhere, or blobs no
        /// layer waited for: a layer stored meanwhile by another command),
        /// and their threads end: nothing of them is said after. One
        /// waiting on a registry that stalls is cut off at once.
        var joined = false
        func stopDownloads() {
            guard !joined else { return }
            joined = true
            shared.withLock { if $0.failure == nil { $0.failure = GockerError(.system, "pull: stopped") } }
            stopper.stop()
            for h in helpers { h.value() }
        }
        defer { stopDownloads() }
        let feed = LayerFeed(ready: { (i) throws(GockerError) in
            if let gate = gates[manifest.layers[i].digest] {
                try gate.wait()
                tell(short[i], .extracting)
            }
        }, extracted: { i in
            if gates[manifest.layers[i].digest] != nil { tell(short[i], .complete) }
        })
        let names = ref.digest == nil ? [ref.local] : []
        let existed = (try? store.lookup(ref.local.description))?.0
        let had = (try? store.image(id: String(manifest.config.digest.dropFirst(7)))) != nil
        // The config's digest was checked as it came (client.blob).
        let image = try store.storePulled(config, bytes: configBytes, layers: manifest.layers,
                                          names: names, staging: staging, feed: feed)
        stopDownloads()
        try store.addRepoDigest(ref.local.name + "@" + named, to: image.id)
        output("Digest: \(named)")
        // docker's familiar name: "alpine:latest", "host:5000/repo:tag", "repo@sha256:...".
        let shown = ref.digest.map { ref.local.name + "@" + $0 } ?? ref.local.description
        if had && fetch.isEmpty && (ref.digest != nil || existed?.id == image.id) {
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
