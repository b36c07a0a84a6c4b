import ArgumentParser
import Glibc
import GockerCore
import GockerRuntime

// `commit`, `export`, `diff`, `save`, `load` and `history`, with docker's
// names, flags and output.

struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Create a new image from a container's changes.",
        usage: "gocker commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        discussion: """
            The container's changes become one new layer on top of its image's layers, which \
            are shared, not copied; deleted files and replaced directories are kept as \
            whiteouts. The new image runs what the container ran, with its environment, \
            working directory and user, unless --change says otherwise. A running container \
            is frozen while its changes are read (--pause=false to leave it running).
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("author")], help: ArgumentHelp("Author (e.g. \"Jane Doe <jane@example.com>\").", valueName: "text"))
    var author: String?

    @Option(name: [.short, .customLong("change")], help: ArgumentHelp(
        "Apply a Dockerfile instruction to the image: CMD, ENTRYPOINT, ENV, WORKDIR or USER.", valueName: "instruction"))
    var changes: [String] = []

    @Option(name: [.short, .customLong("message")], help: ArgumentHelp("Commit message.", valueName: "text"))
    var message: String?

    @Option(name: [.short, .customLong("pause")], help: ArgumentHelp(
        "Freeze a running container while its changes are read (true or false).", valueName: "bool"))
    var pause: Bool = true

    @Flag(name: [.short, .customLong("quiet")], help: "Show no progress line on a terminal.")
    var quiet = false

    @Argument(help: ArgumentHelp("The container: name, id or id prefix.", valueName: "container"))
    var container: String

    @Argument(help: ArgumentHelp("A name for the image.", valueName: "repository[:tag]"))
    var reference: String?

    func run() throws {
        let progress = ProgressLine("Committing", quiet: quiet)
        defer { progress.end() }
        let image = try global.engine.commit(.init(
            container: container, reference: reference, message: message, author: author, changes: changes, pause: pause),
            progress: progress)
        progress.end()
        print("sha256:" + image.id)
    }
}

/// Where `save` and `export` write: a file given with -o (written beside
/// it and renamed once complete, so that a failure leaves nothing), or
/// standard output, which must not be a terminal.
/// A progress line counts what is written ("Saving", "Exporting").
struct ArchiveOutput {
    let path: String?
    let command: String
    let progress: ProgressLine

    func write(_ body: (any ByteSink) throws(GockerError) -> Void) throws(GockerError) {
        defer { progress.end() }
        guard let path else {
            if isatty(1) == 1 {
                throw GockerError(.invalidArgument,
                    "cowardly refusing to write an archive to a terminal: use the -o flag or redirect")
            }
            try body(ProgressSink(FileSink(fd: 1, name: "standard output"), progress: progress))
            return
        }
        let tmp = "\(path).tmp-\(getpid())"
        do throws(GockerError) {
            let sink = try FileSink(creating: tmp, mode: 0o644)
            try body(ProgressSink(sink, progress: progress))
            try performing("\(command): rename \(tmp) to \(path)") { () throws(SystemCallError) in
                try Sys.check("rename", path: path) { rename(tmp, path) }
            }
        } catch {
            _ = unlink(tmp)
            throw error
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a container's root filesystem as a tar archive.",
        discussion: "The container's layers as it sees them, merged. `gocker import` reads it back.")

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write to a file instead of standard output.", valueName: "file"))
    var output: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Show no progress line on a terminal.")
    var quiet = false

    @Argument(help: ArgumentHelp("The container: name, id or id prefix.", valueName: "container"))
    var container: String

    func run() throws {
        let engine = global.engine
        let progress = ProgressLine("Exporting", quiet: quiet)
        try ArchiveOutput(path: output, command: "export", progress: progress).write { sink throws(GockerError) in
            try engine.export(container, to: sink)
        }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "List the files a container added (A), changed (C) and deleted (D).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The container: name, id or id prefix.", valueName: "container"))
    var container: String

    func run() throws {
        for change in try global.engine.diff(container) { print(change) }
    }
}

struct SaveArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write to a file instead of standard output.", valueName: "file"))
    var output: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Show no progress line on a terminal.")
    var quiet = false

    @Argument(help: ArgumentHelp("Images: name[:tag], id or id prefix.", valueName: "image"))
    var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("save needs at least one image") }
    }

    func run() throws {
        let store = global.engine.images
        let progress = ProgressLine("Saving", quiet: quiet)
        try ArchiveOutput(path: output, command: "save", progress: progress).write { sink throws(GockerError) in
            try store.save(images, to: sink)
        }
    }
}

struct Save: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Save images to a tar archive (OCI image layout).",
        discussion: """
            The archive is an OCI image layout (index.json, blobs/sha256, gzip layers) with \
            docker's manifest.json beside it: `gocker load`, `docker load`, `podman load` and \
            `ctr images import` read it.
            """)
    @OptionGroup var arguments: SaveArguments
    func run() throws { try arguments.run() }
}

struct ImageSave: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "save", abstract: "Save images to a tar archive (OCI image layout).")
    @OptionGroup var arguments: SaveArguments
    func run() throws { try arguments.run() }
}

struct LoadArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("input")], help: ArgumentHelp("Read from a file instead of standard input.", valueName: "file"))
    var input: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Print nothing, and show no progress line on a terminal.")
    var quiet = false

    func run() throws {
        if input == nil && isatty(0) == 1 {
            throw GockerError(.invalidArgument, "requested load from standard input, but it is a terminal: use -i or redirect")
        }
        let source = try Self.open(input ?? "-")
        let progress = ProgressLine("Loading", total: source.size, quiet: quiet)
        source.onRead = { progress.update($0) }
        defer { progress.end() }
        try global.engine.images.load(from: source) { line in
            progress.end()
            if !quiet { print(line) }
        }
    }

    static func open(_ path: String) throws(GockerError) -> FileSource {
        do throws(GockerError) {
            return try FileSource(path: path)
        } catch {
            throw ImageStore.asLoad(error)
        }
    }
}

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load images from a tar archive (OCI image layout or docker save).",
        discussion: """
            Reads what `gocker save` and `docker save` write (plain, gzip or xz). Every blob's \
            digest and every layer's diff id is checked; a mismatch is an error and loads nothing.
            """)
    @OptionGroup var arguments: LoadArguments
    func run() throws { try arguments.run() }
}

struct ImageLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "Load images from a tar archive.")
    @OptionGroup var arguments: LoadArguments
    func run() throws { try arguments.run() }
}

struct HistoryArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Flag(name: .customLong("no-trunc"), help: "Do not truncate ids and commands.")
    var noTrunc = false

    @Flag(name: [.short, .customLong("quiet")], help: "Only show image ids.")
    var quiet = false

    @Argument(help: ArgumentHelp("The image: name[:tag], id or id prefix.", valueName: "image"))
    var image: String

    func run() throws {
        let store = global.engine.images
        let (found, _) = try store.resolve(image)
        let rows = try store.historyRows(found)
        if quiet {
            for r in rows { print(noTrunc || r.image == "<missing>" ? r.image : String(r.image.dropFirst(7).prefix(12))) }
        } else {
            print(ImageStore.historyTable(rows, noTrunc: noTrunc), terminator: "")
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the history of an image.")
    @OptionGroup var arguments: HistoryArguments
    func run() throws { try arguments.run() }
}

struct ImageHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show the history of an image.")
    @OptionGroup var arguments: HistoryArguments
    func run() throws { try arguments.run() }
}
