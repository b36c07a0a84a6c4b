import Glibc
import GockerCgroups
import GockerCore

/// `commit`, `export` and `diff`: a container's layers read back. None of
/// this touches the start path: a container's layers are found through the
/// overlay annotation of its bundle's config.json.
extension Engine {
    /// What `gocker commit` was asked.
    public struct CommitRequest: Sendable {
        public var container: String
        public var reference: String?
        public var message: String?
        public var author: String?
        public var changes: [String]
        public var pause: Bool

        public init(container: String, reference: String? = nil, message: String? = nil, author: String? = nil,
                    changes: [String] = [], pause: Bool = true) {
            self.container = container
            self.reference = reference
            self.message = message
            self.author = author
            self.changes = changes
            self.pause = pause
        }
    }

    /// A container's overlay: its upper layer, and the layers below it
    /// (top first) with their ids. The init layer, when the container has
    /// it, is apart: it holds only mount points, always covered, so it is
    /// neither the container's change nor its image's.
    struct LayerStack {
        var upper: String
        var initLayer: String?
        var lowers: [String]
        var lowerIDs: [String]
    }

    func layerStack(of record: ContainerRecord) throws(GockerError) -> (LayerStack, Spec) {
        let spec = try Spec.decodeFile(path: containerDir(record.id) + "/config.json")
        guard let overlay = launchExtras(of: record)?.overlay,
              let lower = overlay.split(separator: ",").first(where: { $0.hasPrefix("lowerdir=") }) else {
            throw GockerError(.invalidState, "container \(record.name) has no layered root filesystem")
        }
        let layersDir = images.layerPath("")
        var lowers = lower.dropFirst("lowerdir=".count).split(separator: ":").map(String.init)
        let initLayer = lowers.first == images.initLayerPath ? lowers.removeFirst() : nil
        let ids = lowers.map { $0.hasPrefix(layersDir) ? String($0.dropFirst(layersDir.count)) : $0 }
        return (LayerStack(upper: containerDir(record.id) + "/upper", initLayer: initLayer, lowers: lowers, lowerIDs: ids), spec)
    }

    /// `gocker commit`: the container's upper layer becomes a new layer on
    /// top of its image's layers (which are shared, not copied); the new
    /// image's config is the container's (its command, environment, working
    /// directory and user) with `changes` applied. A running container is
    /// frozen while its layer is read, unless `pause` is false.
    ///
    /// `progress` counts the bytes of the changes as they are read, then
    /// as they are stored.
    public func commit(_ request: CommitRequest, progress: ProgressLine? = nil) throws(GockerError) -> ImageRecord {
        // Everything that can be refused is refused before anything is made.
        let tag = try request.reference.map { text throws(GockerError) in try ImageReference(parsing: text) }
        let record = try lookup(request.container)
        let (stack, spec) = try layerStack(of: record)
        let base = try? images.image(id: record.imageID)
        var config = Self.containerConfig(spec: spec, user: launchExtras(of: record)?.user,
                                          image: base?.config ?? ImageConfig())
        for change in request.changes { try config.apply(change: change, command: "commit") }
        for id in stack.lowerIDs where !Sys.isDirectory(images.layerPath(id)) {
            throw GockerError(.notFound, "commit: layer \(id.prefix(12)) of container \(record.name) is gone")
        }

        try performing("commit: create \(images.root)/layers") { () throws(SystemCallError) in
            try Sys.mkdirAll(images.root + "/layers", mode: 0o700)
        }
        let tarPath = images.root + "/layers/.tmp-commit-\(Sys.randomBytes(8).hex).tar"
        defer { try? Sys.removeAll(tarPath) }
        do {
            // (One already paused stays so: only what was paused here is resumed.)
            let rt = runtime(for: record)
            var paused = false
            if request.pause, let state = try? rt.store.load(record.id), rt.status(of: state) == .running,
               state.cgroups?.controllers.contains("freezer") == true {
                try rt.pause(id: record.id)
                paused = true
            }
            defer { if paused { try? rt.resume(id: record.id) } }
            let file = try FileSink(creating: tarPath)
            let tar = TarWriter(progress.map { ProgressSink(file, progress: $0) } ?? file)
            try LayerTree.writeChanges(upper: stack.upper, lowers: stack.lowers, to: tar)
            try tar.finish()
        }
        let baseLayers = Array(stack.lowerIDs.reversed())
        var history = base?.history ?? baseLayers.map { _ in ImageHistory(created: base?.created) }
        history.append(ImageHistory(created: Timestamp.now(), created_by: spec.process?.args?.joined(separator: " "),
                                    author: request.author, comment: request.message))
        let input = try FileSource(path: tarPath)
        if let progress {
            progress.restart(progress.verb, total: input.size)
            input.onRead = { progress.update($0) }
        }
        // The tar is kept as the layer's archive, linked, not written again.
        return try images.storeLayer(.plainFile(input, path: tarPath), whiteouts: .overlay) { layer throws(GockerError) in
            try images.add(layers: baseLayers + [layer], config: config, tag: tag, comment: request.message,
                           author: request.author, parent: base?.id, history: history)
        }
    }

    /// The config a container runs with, as an image config: its command
    /// (after the image's entrypoint, when it kept it), its environment
    /// without HOSTNAME, its working directory and user.
    static func containerConfig(spec: Spec, user: String?, image: ImageConfig) -> ImageConfig {
        var config = image
        let args = spec.process?.args ?? []
        if let entrypoint = image.Entrypoint, !entrypoint.isEmpty, args.starts(with: entrypoint) {
            config.Cmd = Array(args.dropFirst(entrypoint.count))
        } else {
            config.Entrypoint = nil
            config.Cmd = args
        }
        if let env = spec.process?.env { config.Env = env.filter { !$0.hasPrefix("HOSTNAME=") } }
        if let cwd = spec.process?.cwd, cwd != "/" || image.WorkingDir != nil { config.WorkingDir = cwd }
        if let user, user != "0" || image.User != nil { config.User = user }
        return config
    }

    /// `gocker export`: the container's root filesystem as it sees it
    /// (its layers merged), as a tar stream.
    public func export(_ ref: String, to sink: any ByteSink) throws(GockerError) {
        let record = try lookup(ref)
        let (stack, _) = try layerStack(of: record)
        let tar = TarWriter(sink)
        // As the container sees it: its mount points included.
        try LayerTree.writeMerged(layers: [stack.upper] + (stack.initLayer.map { [$0] } ?? []) + stack.lowers, to: tar)
        try tar.finish()
    }

    /// `gocker diff`: what the container changed in its root filesystem.
    public func diff(_ ref: String) throws(GockerError) -> [LayerTree.Change] {
        let record = try lookup(ref)
        let (stack, _) = try layerStack(of: record)
        return try LayerTree.changes(upper: stack.upper, lowers: stack.lowers)
    }
}
