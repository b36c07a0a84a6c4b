import Glibc
import GockerCore
import GockerRuntime

/// `gocker bench --images`: gocker's image commands against pipelines of
/// standard tools doing the same work on the same tree, side by side in
/// one run. Each timed command is an external process, from spawn to reap;
/// each gocker run has a data root and state root of its own under the
/// scratch directory; each pair (gocker, then its pipeline) is repeated,
/// after warm-up pairs that put both sides' input in the page cache.
public struct ImagesBench: Sendable {
    public struct Options: Sendable {
        public var count = 3
        public var warmup = 1
        /// About how many bytes of file contents the tree holds.
        public var size: Int64 = 256 << 20
        public var seed: UInt64 = 22
        /// `--pull`: the image's layers, one tree each.
        public var layers = 4
        public var dataRoot: String
        public var gocker: String

        public init(dataRoot: String, gocker: String) {
            self.dataRoot = Paths.absolute(dataRoot)
            self.gocker = gocker
        }
    }

    public let options: Options

    public init(_ options: Options) { self.options = options }

    /// One operation: gocker's command and the pipeline it is measured
    /// against, as they are run (relative to the scratch directory).
    struct Operation {
        var name: String
        var gocker: [String]
        /// The data root's name under `roots/`.
        var root: String
        var pipeline: String
        /// Fresh roots for every run (import and load add the same image).
        var freshRoot = false
        /// After each gocker run, untimed (commit's image removed).
        var after: [String]? = nil
    }

    static func operations() -> [Operation] {
        let extract = "x"
        let tarGzip = "tar -c -C tree . | gzip -1 > out"
        return [
            Operation(name: "import tar", gocker: ["import", "tree.tar"], root: "import", pipeline:
                        "tee >(sha256sum >/dev/null) < tree.tar | tar -x -C \(extract)", freshRoot: true),
            Operation(name: "import tar.gz", gocker: ["import", "tree.tar.gz"], root: "import", pipeline:
                        "gzip -dc tree.tar.gz | tee >(sha256sum >/dev/null) | tar -x -C \(extract)", freshRoot: true),
            Operation(name: "load", gocker: ["load", "-i", "save.tar"], root: "load", pipeline:
                        "tee >(sha256sum >/dev/null) < save.tar | tar -x -C \(extract)", freshRoot: true),
            Operation(name: "save", gocker: ["save", "-o", "out", "bench-tree"], root: "store", pipeline: tarGzip),
            Operation(name: "commit", gocker: ["commit", "bench-src", "bench-commit"], root: "store", pipeline: tarGzip,
                      after: ["rmi", "bench-commit"]),
            Operation(name: "export", gocker: ["export", "-o", "out", "bench-src"], root: "store", pipeline: tarGzip),
        ]
    }

    /// Runs it; a signal (INT, TERM, HUP) ends it after the command in
    /// flight, with what was measured until then. The scratch directory
    /// (tree, archives, data roots) and the container it made go in any case.
    public func run(progress: (String) -> Void = { _ in }) throws(GockerError) -> ImagesResult {
        let oldMask = BenchProcess.blockStopSignals()
        defer { BenchProcess.restoreSignals(oldMask) }
        let scratch = try Bench.makeScratch(under: options.dataRoot, prefix: "bench-images")
        let baseEnv = BenchProcess.environment().filter { e in
            !["GOCKER_DATA_ROOT=", "GOCKER_STATE_ROOT=", Timings.fileVariable + "="].contains { e.hasPrefix($0) }
        }
        func env(_ root: String) -> [String] {
            baseEnv + ["GOCKER_DATA_ROOT=\(scratch)/roots/\(root)/data", "GOCKER_STATE_ROOT=\(scratch)/roots/\(root)/state"]
        }
        var madeContainer = false
        defer {
            if madeContainer {
                BenchProcess.runQuietly(path: options.gocker, argv: [options.gocker, "rm", "-f", "bench-src"], env: env("store"))
            }
            try? Sys.removeAll(scratch)
            _ = rmdir(options.dataRoot + "/tmp")  // only when empty
            ImagesBench.writeOutRemoval()
        }
        var result = ImagesResult(machine: BenchResult.machineNow(), gocker: options.gocker, size: options.size,
                                  seed: options.seed, tree: BenchTree.Stats(), tarBytes: 0, gzipBytes: 0,
                                  count: options.count, warmup: options.warmup, interruptedBy: nil, operations: [])
        func stopped() -> Bool {
            if result.interruptedBy == nil, let s = BenchProcess.pendingStopSignal() { result.interruptedBy = s }
            return result.interruptedBy != nil
        }

        // The tree, its tar and its gzip tar; the image and the container
        // that save, commit and export read; the archive load reads.
        progress("gocker bench --images: writing a tree of \(Self.megabytes(options.size)) MB (seed \(options.seed))")
        result.tree = try BenchTree(size: options.size, seed: options.seed).write(to: scratch + "/tree", stop: stopped)
        let shell = "/bin/bash"
        let setup: [(String, [String], String?)] = [
            ("archive the tree", [shell, "-c", "cd \(Self.quote(scratch)) && tar -c -f tree.tar -C tree . && gzip -c tree.tar > tree.tar.gz"], nil),
            ("import it", [options.gocker, "import", scratch + "/tree.tar", "bench-tree"], "store"),
            ("save it", [options.gocker, "save", "-o", scratch + "/save.tar", "bench-tree"], "store"),
            ("make a container that holds it in its own layer",
             [options.gocker, "run", "--network", "none", "--name", "bench-src", "-v", scratch + "/tree:/src:ro",
              "busybox", "cp", "-a", "/src", "/tree"], "store"),
        ]
        for (what, argv, root) in setup where !stopped() {
            progress("gocker bench --images: \(what)")
            if argv.count > 2 && argv[1] == "run" { madeContainer = true }
            let t = BenchProcess.runTimed(path: argv[0], argv: argv, env: root.map(env) ?? baseEnv,
                                          stderrPath: scratch + "/stderr")
            if stopped() { break }
            guard t.ok else {
                throw GockerError(.system, "bench --images: \(what): \(Self.failure(t, stderr: scratch + "/stderr"))")
            }
        }
        result.tarBytes = Self.fileSize(scratch + "/tree.tar")
        result.gzipBytes = Self.fileSize(scratch + "/tree.tar.gz")

        let total = options.warmup + options.count
        for op in Self.operations() where !stopped() {
            var summary = ImagesOperation(name: op.name, gocker: ["gocker"] + op.gocker, pipeline: op.pipeline)
            defer { result.operations.append(summary) }
            let argv = [options.gocker] + op.gocker.map { ["tree.tar", "tree.tar.gz", "save.tar", "out"].contains($0) ? scratch + "/" + $0 : $0 }
            let pipeline = [shell, "-c", "cd \(Self.quote(scratch)) && " + op.pipeline]
            for i in 0..<total {
                progress("gocker bench --images: \(op.name) \(i < options.warmup ? "warm-up" : "\(i - options.warmup + 1)/\(options.count)")")
                let g = BenchProcess.runTimed(path: options.gocker, argv: argv, env: env(op.root), stderrPath: scratch + "/stderr")
                if stopped() { break }
                guard g.ok else {
                    summary.error = "gocker: " + Self.failure(g, stderr: scratch + "/stderr")
                    break
                }
                if let after = op.after {
                    let a = BenchProcess.runTimed(path: options.gocker, argv: [options.gocker] + after, env: env(op.root),
                                                  stderrPath: scratch + "/stderr")
                    if !a.ok {
                        summary.error = "gocker \(after.joined(separator: " ")): " + Self.failure(a, stderr: scratch + "/stderr")
                        break
                    }
                }
                _ = unlink(scratch + "/out")
                if op.freshRoot { try? Sys.removeAll("\(scratch)/roots/\(op.root)") }
                try performing("create \(scratch)/x") { () throws(SystemCallError) in try Sys.mkdirAll(scratch + "/x") }
                let p = BenchProcess.runTimed(path: shell, argv: pipeline, env: baseEnv, stderrPath: scratch + "/stderr")
                try? Sys.removeAll(scratch + "/x")
                _ = unlink(scratch + "/out")
                if stopped() { break }
                guard p.ok else {
                    summary.error = "pipeline: " + Self.failure(p, stderr: scratch + "/stderr")
                    break
                }
                if i >= options.warmup { summary.add(gocker: g, pipeline: p) }
            }
            summary.summarize()
        }
        return result
    }

    /// After the scratch directory's removal: writes it out. ext4 without a
    /// journal passes over inodes freed in the last 60 seconds when it
    /// allocates new ones, and in the last 360 while the freed inodes'
    /// table block is not yet written, each new file scanning past them: a
    /// bench's gigabytes removed and left unwritten would slow every file
    /// creation on that filesystem (the next bench's, a container's state)
    /// for six minutes.
    static func writeOutRemoval() {
        sync()
    }

    /// Why a command failed: its stderr's first line, or how it ended.
    static func failure(_ t: BenchProcess.Timed, stderr: String) -> String {
        if t.spawnErrno != 0 { return "exec: \(errnoText(t.spawnErrno))" }
        if let line = BenchProcess.firstLine(of: stderr) { return line }
        return t.status & 0x7f != 0 ? "killed by signal \(t.status & 0x7f)" : "exit status \(Runtime.exitCode(t.status))"
    }

    static func fileSize(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : 0
    }

    static func megabytes(_ bytes: Int64) -> String { Timings.fixed(Double(bytes) / Double(1 << 20), 1) }

    /// A word for /bin/sh, in single quotes.
    static func quote(_ s: String) -> String {
        "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}

/// One operation's figures, in seconds (wall time, spawn to reap).
public struct ImagesOperation: Codable, Sendable, Equatable {
    public var name: String
    public var gocker: [String]
    public var pipeline: String
    public var gockerSeconds: [Double] = []
    public var pipelineSeconds: [Double] = []
    /// gocker's peak resident size of each measured run, in kB.
    public var gockerMaxRSSKB: [Int] = []
    public var gockerMedian: Double?
    public var pipelineMedian: Double?
    /// gocker's median over the pipeline's.
    public var ratio: Double?
    /// The largest of `gockerMaxRSSKB`.
    public var peakRSSKB: Int?
    public var error: String?

    public init(name: String, gocker: [String], pipeline: String) {
        self.name = name
        self.gocker = gocker
        self.pipeline = pipeline
    }

    /// One measured pair's figures.
    mutating func add(gocker g: BenchProcess.Timed, pipeline p: BenchProcess.Timed) {
        gockerSeconds.append(g.seconds)
        pipelineSeconds.append(p.seconds)
        gockerMaxRSSKB.append(g.maxRSSKB)
    }

    mutating func summarize() {
        gockerMedian = gockerSeconds.isEmpty ? nil : BenchStats.percentile(gockerSeconds.sorted(), 50)
        pipelineMedian = pipelineSeconds.isEmpty ? nil : BenchStats.percentile(pipelineSeconds.sorted(), 50)
        if let g = gockerMedian, let p = pipelineMedian, p > 0 { ratio = g / p }
        peakRSSKB = gockerMaxRSSKB.max()
    }

    enum CodingKeys: String, CodingKey {
        case name, gocker, pipeline, gockerSeconds, pipelineSeconds, gockerMaxRSSKB, gockerMedian, pipelineMedian
        case ratio, peakRSSKB, error
    }

    /// Every key, null included.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(gocker, forKey: .gocker)
        try c.encode(pipeline, forKey: .pipeline)
        try c.encode(gockerSeconds, forKey: .gockerSeconds)
        try c.encode(pipelineSeconds, forKey: .pipelineSeconds)
        try c.encode(gockerMaxRSSKB, forKey: .gockerMaxRSSKB)
        try c.encode(gockerMedian, forKey: .gockerMedian)
        try c.encode(pipelineMedian, forKey: .pipelineMedian)
        try c.encode(ratio, forKey: .ratio)
        try c.encode(peakRSSKB, forKey: .peakRSSKB)
        try c.encode(error, forKey: .error)
    }
}

/// What `gocker bench --images --json` writes.
public struct ImagesResult: Codable, Sendable, Equatable {
    public var machine: BenchResult.Machine
    public var gocker: String
    public var size: Int64
    public var seed: UInt64
    var tree: BenchTree.Stats
    public var tarBytes: Int64
    public var gzipBytes: Int64
    public var count: Int
    public var warmup: Int
    public var interruptedBy: Int32?
    public var operations: [ImagesOperation]
    /// `--pull`: the image's layers, one tree each (the tree's figures
    /// are their sums; the tar and gzip sizes too).
    public var layers: Int?

    /// What `gocker bench --images` prints on stdout.
    public func table() -> String {
        let fixed = Timings.fixed
        let mb = ImagesBench.megabytes
        var out = layers.map { "gocker bench --pull: an image of \($0) layers holding " } ?? "gocker bench --images: a tree of "
        out += "\(mb(tree.bytes)) MB in \(tree.files) files, \(tree.directories) directories "
        out += "and \(tree.symlinks) symlinks (seed \(seed)); its tar \(mb(tarBytes)) MB, gzip \(mb(gzipBytes)) MB\n"
        out += "each side run \(count) time\(count == 1 ? "" : "s")"
        out += warmup > 0 ? " after \(warmup) warm-up" : ""
        out += layers == nil ? ", gocker then its pipeline, in turn" : ", gocker then skopeo, in turn, from a docker-registry on 127.0.0.1"
        out += "; Linux \(machine.kernel), \(machine.cpus) CPUs, \(machine.date.prefix(19))Z\n"
        out += "median wall time in s, from spawn to reap; ratio: gocker over the pipeline; RSS: gocker's peak (wait4)\n\n"
        var rows = [["operation", "n", "gocker s", "pipeline s", "ratio", "gocker RSS MB"]]
        for op in operations {
            if let g = op.gockerMedian, let p = op.pipelineMedian {
                rows.append([op.name, "\(op.gockerSeconds.count)", fixed(g, 3), fixed(p, 3),
                             op.ratio.map { fixed($0, 2) + "x" } ?? "-",
                             op.peakRSSKB.map { fixed(Double($0) / 1024, 1) } ?? "-"])
            } else {
                rows.append([op.name, "0", "failed: " + (op.error ?? "not run")])
            }
        }
        out += BenchResult.render(rows)
        if let interruptedBy {
            out += "\ninterrupted by signal \(interruptedBy): the figures above cover the runs made until then\n"
        }
        out += "\nwhat each side runs (in the scratch directory; gocker with a data root of its own):\n"
        for op in operations {
            out += "  \(op.name): \(op.gocker.joined(separator: " "))  vs  \(op.pipeline)\n"
            if op.gockerMedian != nil, let e = op.error { out += "    failed later: \(e)\n" }
        }
        return out
    }
}
