import ArgumentParser
import Glibc
import GockerBench
import GockerCgroups
import GockerCore
import GockerRuntime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time container starts: gocker's, and other OCI runtimes' on the same bundle.",
        discussion: """
            Each start is an external process, timed from its spawn to its reap with the \
            container's removal included: `gocker run --rm busybox true`, `gocker oci run` \
            on a bundle made from the busybox image, and each --runtime \
            (`NAME --root DIR run --bundle B ID`) on the same bundle. Rows take turns \
            (A B C A B C). A runtime that fails is reported with the first line of its \
            stderr; the others still run. The bench installs nothing and changes nothing \
            on the host; it removes what it makes, also when interrupted.

            --bundle DIR (repeatable) adds rows for `gocker oci run` and each --runtime on \
            that OCI bundle, used exactly as it is (each start a container id of its own); \
            the rows carry its directory's name. --write-bundle DIR writes the bundle every \
            OCI user starts from (runc spec's config with process.args ["true"] and no \
            terminal, a busybox root) and exits.

            --images times gocker's image commands against pipelines of standard tools on \
            a generated tree of about --size bytes (many small files, some medium, a few \
            large, directories and symlinks, contents that compress like real ones; the \
            same for the same size): import of its tar against `tee >(sha256sum) | tar -x`, \
            import of its gzip tar against `gzip -dc | tee >(sha256sum) | tar -x`, load of \
            a saved image against the same on the archive, and save, commit and export \
            against `tar -c | gzip -1`. Each gocker run has data and state roots of its own; \
            each pair is timed -n times (default 3) after --warmup pairs that put both \
            sides' input in the page cache; the table shows medians, the ratio and \
            gocker's peak RSS.

            --pull times `gocker pull` against `skopeo copy` to an OCI directory of the \
            same image: one of --layers layers (default 4) holding a generated tree of \
            about --size bytes in all (default 512m), gzip-compressed, pushed by skopeo \
            to a docker-registry the bench starts on a free port of 127.0.0.1 (Debian's \
            docker-registry and skopeo packages). skopeo downloads and checks the blobs; \
            gocker also unpacks them into an empty data root. Pairs as with --images; before \
            each side, what the other wrote is synced and its pages leave the page cache (the \
            files stay until the end: ext4 is slow to make files just after it freed many).
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customShort("n"), help: ArgumentHelp(
        "Timed starts per row (default 100); with --images or --pull, timed runs of each side (default 3).", valueName: "n"))
    var count: Int?

    @Option(help: ArgumentHelp("Untimed starts per row first.", valueName: "n"))
    var warmup = 1

    @Option(help: ArgumentHelp("A runc-compatible runtime to time too, by name (in $PATH) or path; repeatable.", valueName: "runtime"))
    var runtime: [String] = []

    @Flag(help: "More rows: the cgroupfs backend, memory/CPU/pids limits, the host network.")
    var matrix = false

    @Option(help: ArgumentHelp("Starts at a time, per row: latency per start and starts per second.", valueName: "k"))
    var parallel = 1

    @Option(help: ArgumentHelp("An OCI bundle to time gocker oci run and each runtime on, as it is; repeatable.", valueName: "dir"))
    var bundle: [String] = []

    @Option(name: .customLong("write-bundle"), help: ArgumentHelp(
        "Write runc spec's bundle running `true` (no terminal, a busybox root) to this new directory, and exit.", valueName: "dir"))
    var writeBundle: String?

    @Flag(help: "Time import, load, save, commit and export against pipelines of standard tools on a generated tree.")
    var images = false

    @Option(help: ArgumentHelp("With --images or --pull: about how much the tree holds (k, m, g; default 256m, or 512m).",
                               valueName: "size"))
    var size: String?

    @Flag(help: "Time gocker pull against skopeo copy of a generated multi-layer image from a local registry.")
    var pull = false

    @Option(help: ArgumentHelp("With --pull: the image's layers (default 4).", valueName: "n"))
    var layers: Int?

    @Option(help: ArgumentHelp(
        "Also time rootless starts as this user (gocker, and podman with runc when installed); its own stores are used.",
        valueName: "user"))
    var rootless: String?

    @Option(help: ArgumentHelp("Write every sample and the summary as JSON to this file.", valueName: "file"))
    var json: String?

    @Option(help: ArgumentHelp("Write a chart of the latency distributions (SVG) to this file.", valueName: "file"))
    var svg: String?

    func validate() throws {
        guard (count ?? 1) >= 1 else { throw ValidationError("-n must be at least 1") }
        for b in bundle where b.isEmpty { throw ValidationError("--bundle needs a directory") }
        if writeBundle?.isEmpty == true { throw ValidationError("--write-bundle needs a directory") }
        if size != nil && !images && !pull { throw ValidationError("--size goes with --images or --pull") }
        if layers != nil && !pull { throw ValidationError("--layers goes with --pull") }
        if images && pull { throw ValidationError("--images and --pull are two benches: give one") }
        if let layers, !(1...64).contains(layers) { throw ValidationError("--layers must be between 1 and 64") }
        if images || pull {
            let mode = images ? "--images" : "--pull"
            for (given, name) in [(!runtime.isEmpty, "--runtime"), (matrix, "--matrix"), (!bundle.isEmpty, "--bundle"),
                                  (rootless != nil, "--rootless"),
                                  (parallel != 1, "--parallel"), (svg != nil, "--svg"), (writeBundle != nil, "--write-bundle")] where given {
                throw ValidationError("\(name) does not go with \(mode)")
            }
            if let size {
                guard let bytes = try? ResourceFlags.parseSize(size, flag: "--size"), bytes >= 1 << 10 else {
                    throw ValidationError("--size must be a size of at least 1k (a number with k, m or g), not \"\(size)\"")
                }
            }
        }

        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 64") }
        for r in runtime where r.isEmpty { throw ValidationError("--runtime needs a name or a path") }
        if rootless?.isEmpty == true { throw ValidationError("--rootless needs a user") }
    }

    func run() throws {
        if let writeBundle {
            try GockerBench.Bench.writeCanonicalBundle(to: writeBundle, dataRoot: global.dataRoot, stateRoot: global.stateRoot)
            return
        }
        if images || pull { return try runImages() }
        var options = GockerBench.Bench.Options(dataRoot: global.dataRoot, stateRoot: global.stateRoot,
                                                gocker: GockerBench.Bench.selfPath())
        options.count = count ?? 100
        options.bundles = bundle
        options.warmup = warmup
        options.parallel = parallel
        options.runtimes = runtime
        options.matrix = matrix
        options.rootlessUser = rootless
        let result = try GockerBench.Bench(options).run(progress: Self.progress)
        print(result.table(), terminator: "")
        if let json {
            try performing("write \(json)") { () throws(SystemCallError) in
                try Sys.writeFileAtomic(json, JSON.encode(result, pretty: true))
            }
        }
        if let svg {
            try performing("write \(svg)") { () throws(SystemCallError) in
                try Sys.writeFileAtomic(svg, Array(result.svg().utf8))
            }
        }
        if let s = result.interruptedBy { throw ContainerExit(status: 128 + s) }
    }

    static func progress(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }

    func runImages() throws {
        let result: ImagesResult
        if pull {
            var options = PullBench.Options(dataRoot: global.dataRoot, gocker: GockerBench.Bench.selfPath())
            options.count = count ?? 3
            options.warmup = warmup
            options.size = try size.map { s throws(GockerError) in try ResourceFlags.parseSize(s, flag: "--size") } ?? 512 << 20
            if let layers { options.layers = layers }
            result = try PullBench(options).run(progress: Self.progress)
        } else {
            var options = ImagesBench.Options(dataRoot: global.dataRoot, gocker: GockerBench.Bench.selfPath())
            options.count = count ?? 3
            options.warmup = warmup
            if let size { options.size = try ResourceFlags.parseSize(size, flag: "--size") }
            result = try ImagesBench(options).run(progress: Self.progress)
        }
        print(result.table(), terminator: "")
        if let json {
            try performing("write \(json)") { () throws(SystemCallError) in
                try Sys.writeFileAtomic(json, JSON.encode(result, pretty: true))
            }
        }
        if let s = result.interruptedBy { throw ContainerExit(status: 128 + s) }
    }
}
