import FoundationEssentials
import Glibc

extension ImageStore {
    /// `gocker import`: a root filesystem tarball (plain, gzip or xz, as
    /// `docker export` writes it) becomes a one-layer image (see `storeLayer`).
    /// A gzip input is kept as it is as the layer's archive; any other, as
    /// its plain tar stream. On any failure nothing is left: no layer,
    /// temporary directory, image or tag.
    public func importArchive(from input: FileSource, tag: ImageReference?, config: ImageConfig = ImageConfig(),
                              comment: String? = nil) throws(GockerError) -> ImageRecord {
        let shown = input.name == "standard input" ? "-" : input.name
        return try storeLayer(.raw(input), whiteouts: .skip) { layerID throws(GockerError) in
            try add(layers: [layerID], config: config, tag: tag, comment: comment,
                    history: [ImageHistory(created: Timestamp.now(), created_by: "", comment: "Imported from \(shown)")])
        }
    }

    /// A layer's archive, kept beside it: the tar stream it was made from
    /// (whose uncompressed sha256 is the layer's id), either plain or
    /// gzip-compressed as `mediaType` says. `save` hands it on as it is.
    public struct LayerArchive: Codable, Sendable, Equatable {
        /// "sha256:<hex>" of the file as it is (compressed, for gzip).
        public var digest: String
        public var size: Int64
        /// The OCI layer media type of the file: `plainType` or
        /// `OCI.layerGzipType`. Absent in the records of layers kept
        /// before plain archives were (all gzip).
        public var mediaType: String?
        /// The bytes of the layer's files and symlinks as they were
        /// extracted (what an image's size adds up, as a walk of the layer
        /// would count them), counted while extracting. Absent where it was
        /// not: a layer whose archive replaced or removed members of its
        /// own, or one kept before sizes were.
        public var contentSize: Int64?

        public init(digest: String, size: Int64, mediaType: String? = nil, contentSize: Int64? = nil) {
            self.digest = digest
            self.size = size
            self.mediaType = mediaType
            self.contentSize = contentSize
        }

        /// An uncompressed layer tar.
        public static let plainType = "application/vnd.oci.image.layer.v1.tar"

        /// The media type of the file (a record without one is gzip).
        public var layerMediaType: String { mediaType ?? OCI.layerGzipType }
        public var isGzip: Bool { layerMediaType == OCI.layerGzipType }
    }

    /// The file of a layer's kept archive (the one `layerArchive`
    /// describes): `archives/<id>.tar.gz` for a gzip one, `archives/<id>.tar`
    /// for a plain one; whichever exists, the plain name when neither does.
    public func archivePath(_ layer: String) -> String {
        let gzip = archivePath(layer, gzip: true)
        return Sys.exists(gzip) ? gzip : archivePath(layer, gzip: false)
    }

    func archivePath(_ layer: String, gzip: Bool) -> String { "\(root)/archives/\(layer).tar\(gzip ? ".gz" : "")" }
    func archiveInfoPath(_ layer: String) -> String { "\(root)/archives/\(layer).json" }

    /// Removes a layer's archive and its record, whatever its kind.
    func removeArchive(_ layer: String) {
        try? Sys.removeAll(archivePath(layer, gzip: false))
        try? Sys.removeAll(archivePath(layer, gzip: true))
        try? Sys.removeAll(archiveInfoPath(layer))
    }

    /// The archive kept for a layer as it is (plain, as import and load
    /// keep an uncompressed stream, or gzip, as they keep a gzip input),
    /// or nil for a layer made before layers kept one. `save` hands it on
    /// as it is, with its media type, as docker's save hands on plain
    /// layer tars.
    public func layerArchive(_ layer: String) throws(GockerError) -> LayerArchive? {
        guard Sys.exists(archiveInfoPath(layer)) else { return nil }
        let archive = try JSON.decodeFile(LayerArchive.self, path: archiveInfoPath(layer))
        guard Sys.exists(archivePath(layer, gzip: archive.isGzip)) else { return nil }
        return archive
    }

    /// Where a new layer's content comes from, and so what is kept as its archive.
    public enum LayerInput {
        /// An uncompressed tar stream: kept as it is read (a plain archive).
        case stream(any ByteSource)
        /// The content of `path`, a file already checked against `archive`
        /// (a layer blob `load` unpacked): linked as the archive as it is.
        case checked(any ByteSource, path: String, archive: LayerArchive)
        /// A tarball as given (plain, gzip or xz): a gzip one is kept as it
        /// is, compressed bytes hashed on the way; any other as its plain stream.
        case raw(FileSource)
        /// A plain tar file this process wrote (`commit`'s changes): linked
        /// as the archive as it is, not copied; its digest is the stream's.
        case plainFile(FileSource, path: String)
    }

    /// Extracts an uncompressed tar stream into a new layer and keeps its
    /// archive (see `LayerInput`). `keeping` names a file, already checked
    /// against its digest, that `source` is the content of.
    public func storeLayer<T>(from source: any ByteSource, whiteouts: LayerWriter.Whiteouts,
                              keeping given: (path: String, archive: LayerArchive)? = nil,
                              then body: (String) throws(GockerError) -> T) throws(GockerError) -> T {
        let input: LayerInput = given.map { .checked(source, path: $0.path, archive: $0.archive) } ?? .stream(source)
        return try storeLayer(input, whiteouts: whiteouts, then: body)
    }

    /// Extracts a layer: into `layers/.tmp-<random>`, renamed to the layer's
    /// id (the sha256 of the uncompressed stream, docker's diff id) once
    /// complete; a layer already there with that id is shared instead. Its
    /// archive is written (or linked) at the same time. `then` runs under
    /// the store's lock with the layer's id (to record an image that uses
    /// it); if it fails, a layer this call made goes again. On any failure
    /// nothing is left behind.
    public func storeLayer<T>(_ input: LayerInput, whiteouts: LayerWriter.Whiteouts,
                              then body: (String) throws(GockerError) -> T) throws(GockerError) -> T {
        try performing("create \(root)/layers") { () throws(SystemCallError) in
            try Sys.mkdirAll(root + "/layers", mode: 0o700)
            try Sys.mkdirAll(root + "/images", mode: 0o700)
            try Sys.mkdirAll(root + "/archives", mode: 0o700)
        }
        let random = Sys.randomBytes(8).hex
        let tmp = root + "/layers/.tmp-\(random)"
        let archiveTmp = root + "/archives/.tmp-\(random)"
        _ = try performing("create \(tmp)") { () throws(SystemCallError) in
            try Sys.check("mkdir", path: tmp) { mkdir(tmp, 0o700) }
        }
        func cleanUp() {
            try? Sys.removeAll(tmp)
            try? Sys.removeAll(archiveTmp)
        }
        let layerID: String
        var archive: LayerArchive
        /// The content's size as the writer counted it, where it could.
        let counted: Int64?
        do throws(GockerError) {
            // The tar stream to extract, and how the archive's record is made
            // once the stream's digest is known.
            let stream: any ByteSource
            let record: (String) -> LayerArchive
            func plain(_ source: any ByteSource) throws(GockerError) -> (any ByteSource, (String) -> LayerArchive) {
                let file = try FileSink(creating: archiveTmp)
                return (TeeSource(source, into: file),
                        { id in LayerArchive(digest: "sha256:" + id, size: file.count, mediaType: LayerArchive.plainType) })
            }
            switch input {
            case .stream(let source):
                (stream, record) = try plain(source)
            case .checked(let source, let path, let given):
                try performing("keep \(path)") { () throws(SystemCallError) in
                    try Sys.check("link", path: archiveTmp) { link(path, archiveTmp) }
                }
                var st = stat()
                guard lstat(archiveTmp, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size == given.size else {
                    throw GockerError(.invalidArgument, "\(path) is not the file that was checked")
                }
                stream = source
                record = { _ in given }
            case .plainFile(let file, let path):
                try performing("keep \(path)") { () throws(SystemCallError) in
                    try Sys.check("link", path: archiveTmp) { link(path, archiveTmp) }
                }
                var st = stat()
                guard lstat(archiveTmp, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                    throw GockerError(.invalidArgument, "\(path) is not a regular file")
                }
                stream = file
                record = { [size = Int64(st.st_size)] id in
                    LayerArchive(digest: "sha256:" + id, size: size, mediaType: LayerArchive.plainType)
                }
            case .raw(let file):
                let compression = try Compression.detect(try file.peek(6))
                if compression == .gzip {
                    let kept = try FileSink(creating: archiveTmp, hashing: true)
                    stream = try GzipSource(TeeSource(file, into: kept))
                    record = { _ in LayerArchive(digest: "sha256:" + kept.digest().hex, size: kept.count,
                                                 mediaType: OCI.layerGzipType) }
                } else {
                    (stream, record) = try plain(try file.decompressed())
                }
            }
            let reader = TarReader(stream)
            let writer = try LayerWriter(directory: tmp, whiteouts: whiteouts)
            while let entry = try reader.next() {
                try writer.write(entry, from: reader)
            }
            try writer.finish()
            layerID = try reader.finish().hex
            archive = record(layerID)
            counted = writer.sizeIsExact ? writer.size : nil
        } catch {
            cleanUp()
            throw error
        }
        return try locked { () throws(GockerError) -> T in
            let final = layerPath(layerID)
            let isNew = !Sys.exists(final)
            // A layer kept before, with an archive of either kind, keeps it.
            let archiveIsNew = (try? layerArchive(layerID)) == nil
            // What this extraction counted describes only a layer it made.
            archive.contentSize = isNew ? counted : nil
            do throws(GockerError) {
                try performing("store layer \(layerID)") { () throws(SystemCallError) in
                    if isNew {
                        try Sys.check("rename", path: final) { rename(tmp, final) }
                    } else {
                        try Sys.removeAll(tmp)
                    }
                    if archiveIsNew {
                        removeArchive(layerID)
                        let path = archivePath(layerID, gzip: archive.isGzip)
                        try Sys.check("rename", path: path) { rename(archiveTmp, path) }
                        try Sys.writeFileAtomic(archiveInfoPath(layerID), JSON.encode(archive))
                    } else {
                        try Sys.removeAll(archiveTmp)
                    }
                }
                return try body(layerID)
            } catch {
                cleanUp()
                if isNew { try? Sys.removeAll(final) }
                if archiveIsNew { removeArchive(layerID) }
                throw error
            }
        }
    }
}

extension ImageConfig {
    /// Applies one `gocker import --change` instruction, in Dockerfile
    /// syntax: CMD, ENTRYPOINT (JSON array or shell form), ENV (KEY=VALUE...
    /// or KEY VALUE), WORKDIR, USER, EXPOSE (PORT[/tcp|udp]...).
    public mutating func apply(change: String, command: String = "import") throws(GockerError) {
        let text = change.drop { $0 == " " || $0 == "\t" }
        let instruction = String(text.prefix { $0 != " " && $0 != "\t" })
        let rest = String(text.dropFirst(instruction.count).drop { $0 == " " || $0 == "\t" })
        func bad(_ why: String) -> GockerError {
            GockerError(.invalidArgument, "\(command): change \"\(change)\": \(why)")
        }
        switch instruction.uppercased() {
        case "CMD": Cmd = try Self.command(rest, bad)
        case "ENTRYPOINT": Entrypoint = try Self.command(rest, bad)
        case "ENV":
            let words = try Self.words(rest, bad)
            guard let first = words.first else { throw bad("ENV needs a name and a value") }
            var pairs: [(String, String)] = []
            if first.contains("=") {
                for w in words {
                    guard let eq = w.firstIndex(of: "="), eq != w.startIndex else { throw bad("\"\(w)\" is not NAME=VALUE") }
                    pairs.append((String(w[..<eq]), String(w[w.index(after: eq)...])))
                }
            } else {
                guard words.count >= 2 else { throw bad("ENV needs a name and a value") }
                pairs.append((first, words.dropFirst().joined(separator: " ")))
            }
            var env = Env ?? []
            for (name, value) in pairs {
                env.removeAll { $0.hasPrefix(name + "=") }
                env.append("\(name)=\(value)")
            }
            Env = env
        case "WORKDIR":
            guard !rest.isEmpty else { throw bad("WORKDIR needs a path") }
            // A relative WORKDIR continues the previous one, as in a Dockerfile.
            let base = WorkingDir ?? "/"
            WorkingDir = rest.hasPrefix("/") ? rest : base + (base.hasSuffix("/") ? "" : "/") + rest
        case "USER":
            guard !rest.isEmpty else { throw bad("USER needs a user") }
            User = rest
        case "EXPOSE":
            let words = try Self.words(rest, bad)
            guard !words.isEmpty else { throw bad("EXPOSE needs a port") }
            var ports = ExposedPorts ?? [:]
            for w in words {
                let parts = w.lowercased().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard let port = UInt16(parts[0]), port > 0, parts.count == 1 || parts[1] == "tcp" || parts[1] == "udp" else {
                    throw bad("\"\(w)\" is not PORT[/tcp|udp]")
                }
                ports["\(port)/\(parts.count == 2 ? parts[1] : "tcp")"] = EmptyObject()
            }
            ExposedPorts = ports
        default:
            throw bad("only CMD, ENTRYPOINT, ENV, WORKDIR, USER and EXPOSE can be changed")
        }
    }

    /// A JSON array (exec form) or a shell command line (run by /bin/sh -c).
    static func command(_ text: String, _ bad: (String) -> GockerError) throws(GockerError) -> [String] {
        if text.hasPrefix("[") {
            guard let args = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                throw bad("not a JSON array of strings")
            }
            return args
        }
        guard !text.isEmpty else { throw bad("no command") }
        return ["/bin/sh", "-c", text]
    }

    /// Words split at blanks, with "double" and 'single' quotes and backslash escapes.
    static func words(_ text: String, _ bad: (String) -> GockerError) throws(GockerError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for c in text {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" && quote != "'" { escaped = true; inWord = true; continue }
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
                continue
            }
            if c == "\"" || c == "'" { quote = c; inWord = true; continue }
            if c == " " || c == "\t" {
                if inWord { words.append(current); current = ""; inWord = false }
                continue
            }
            current.append(c)
            inWord = true
        }
        if quote != nil || escaped { throw bad("unterminated quote or escape") }
        if inWord { words.append(current) }
        return words
    }
}
