import FoundationEssentials
import Glibc

extension ImageStore {
    /// `gocker import`: a root filesystem tarball (plain, gzip or xz, as
    /// `docker export` writes it) becomes a one-layer image (see `storeLayer`).
    /// On any failure nothing is left: no layer, temporary directory, image or tag.
    public func importArchive(from input: FileSource, tag: ImageReference?, config: ImageConfig = ImageConfig(),
                              comment: String? = nil) throws(GockerError) -> ImageRecord {
        let source = try input.decompressed()
        let shown = input.name == "standard input" ? "-" : input.name
        return try storeLayer(from: source, whiteouts: .skip) { layerID throws(GockerError) in
            try add(layers: [layerID], config: config, tag: tag, comment: comment,
                    history: [ImageHistory(created: Timestamp.now(), created_by: "", comment: "Imported from \(shown)")])
        }
    }

    /// A layer's archive, kept beside it: the gzip-compressed tar stream it
    /// was made from, whose uncompressed sha256 is the layer's id. `save`
    /// hands it on as it is.
    public struct LayerArchive: Codable, Sendable, Equatable {
        /// "sha256:<hex>" of the compressed file.
        public var digest: String
        public var size: Int64
    }

    public func archivePath(_ layer: String) -> String { "\(root)/archives/\(layer).tar.gz" }
    func archiveInfoPath(_ layer: String) -> String { "\(root)/archives/\(layer).json" }

    /// The archive of a layer, or nil for a layer made before layers kept one.
    public func layerArchive(_ layer: String) throws(GockerError) -> LayerArchive? {
        guard Sys.exists(archiveInfoPath(layer)), Sys.exists(archivePath(layer)) else { return nil }
        return try JSON.decodeFile(LayerArchive.self, path: archiveInfoPath(layer))
    }

    /// Extracts an uncompressed tar stream into a new layer and keeps its
    /// archive: into `layers/.tmp-<random>`, renamed to the layer's id (the
    /// sha256 of the stream, docker's diff id) once complete; a layer
    /// already there with that id is shared instead. `then` runs under the
    /// store's lock with the layer's id (to record an image that uses it);
    /// if it fails, a layer this call made goes again. On any failure
    /// nothing is left behind.
    ///
    /// `keeping` names a gzip file, already checked against its digest,
    /// that `source` is the content of (a layer blob `load` unpacked): it
    /// becomes the layer's archive as it is, instead of a new compression.
    public func storeLayer<T>(from source: any ByteSource, whiteouts: LayerWriter.Whiteouts,
                              keeping given: (path: String, archive: LayerArchive)? = nil,
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
        let archive: LayerArchive
        do throws(GockerError) {
            var file: FileSink?
            var gzip: GzipSink?
            if let given {
                try performing("keep \(given.path)") { () throws(SystemCallError) in
                    try Sys.check("link", path: archiveTmp) { link(given.path, archiveTmp) }
                }
                var st = stat()
                guard lstat(archiveTmp, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size == given.archive.size else {
                    throw GockerError(.invalidArgument, "\(given.path) is not the file that was checked")
                }
            } else {
                file = try FileSink(creating: archiveTmp, hashing: true)
                gzip = try GzipSink(file!)
            }
            let reader = TarReader(gzip.map { TeeSource(source, into: $0) } ?? source)
            let writer = try LayerWriter(directory: tmp, whiteouts: whiteouts)
            while let entry = try reader.next() {
                try writer.write(entry, from: reader)
            }
            try writer.finish()
            layerID = try reader.finish().hex
            try gzip?.finish()
            archive = given?.archive ?? LayerArchive(digest: "sha256:" + file!.digest().hex, size: file!.count)
        } catch {
            cleanUp()
            throw error
        }
        return try locked { () throws(GockerError) -> T in
            let final = layerPath(layerID)
            let isNew = !Sys.exists(final)
            var archiveIsNew = false
            do throws(GockerError) {
                try performing("store layer \(layerID)") { () throws(SystemCallError) in
                    if isNew {
                        try Sys.check("rename", path: final) { rename(tmp, final) }
                    } else {
                        try Sys.removeAll(tmp)
                    }
                    if !Sys.exists(archivePath(layerID)) {
                        archiveIsNew = true
                        try Sys.writeFileAtomic(archiveInfoPath(layerID), JSON.encode(archive))
                        try Sys.check("rename", path: archivePath(layerID)) { rename(archiveTmp, archivePath(layerID)) }
                    } else {
                        try Sys.removeAll(archiveTmp)
                    }
                }
                return try body(layerID)
            } catch {
                cleanUp()
                if isNew { try? Sys.removeAll(final) }
                if archiveIsNew {
                    try? Sys.removeAll(archivePath(layerID))
                    try? Sys.removeAll(archiveInfoPath(layerID))
                }
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
