import ArgumentParser
import Glibc
import GockerCore
import GockerRuntime

// `gocker images`, `rmi`, `tag`, `import` and `image ls|rm|tag|import|inspect`,
// with docker's names, flags and output. Each docker-style pair shares one
// set of arguments.

struct ListImagesArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("quiet")], help: "Only show image ids.")
    var quiet = false

    @Option(help: ArgumentHelp("Output format: table (the default) or json (one object per line).", valueName: "format"))
    var format: String = "table"

    @Argument(help: ArgumentHelp("Only images of this repository (and tag).", valueName: "repository[:tag]"))
    var repository: String?

    func validate() throws {
        guard format == "table" || format == "json" else {
            throw ValidationError("unsupported format \"\(format)\": table or json")
        }
    }

    func run() throws {
        let rows = try global.engine.images.rows(matching: repository)
        if quiet {
            for r in rows { print(r.image.shortID) }
        } else if format == "json" {
            print(ImageStore.jsonLines(rows), terminator: "")
        } else {
            print(ImageStore.table(rows), terminator: "")
        }
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images.")
    @OptionGroup var arguments: ListImagesArguments
    func run() throws { try arguments.run() }
}

struct ImageList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List images.", aliases: ["list"])
    @OptionGroup var arguments: ListImagesArguments
    func run() throws { try arguments.run() }
}

struct RemoveImagesArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("force")], help: "Remove an image a stopped container uses, or all tags of an image named by id.")
    var force = false

    @Argument(help: ArgumentHelp("Images: name[:tag], id or id prefix.", valueName: "image"))
    var images: [String]

    func run() throws {
        var failed = false
        global.engine.removeImages(images, force: force, output: { print($0) }, failed: { error in
            GockerMain.report(error.description)
            failed = true
        })
        if failed { throw ExitCode(1) }
    }
}

struct RemoveImages: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rmi", abstract: "Remove one or more images.",
        discussion: """
            A tag of an image that has other tags is only untagged. An image goes with its last \
            tag, with its layers once no image or container uses them. Refused: an image a \
            container uses (a stopped one: unless --force), an image another image is built on.
            """)
    @OptionGroup var arguments: RemoveImagesArguments
    func run() throws { try arguments.run() }
}

struct ImageRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove one or more images.", aliases: ["remove"])
    @OptionGroup var arguments: RemoveImagesArguments
    func run() throws { try arguments.run() }
}

struct TagArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The image: name[:tag], id or id prefix.", valueName: "source"))
    var source: String

    @Argument(help: ArgumentHelp("The new name[:tag].", valueName: "target"))
    var target: String

    func run() throws { try global.engine.images.tag(source, as: target) }
}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Create a tag TARGET that refers to SOURCE.")
    @OptionGroup var arguments: TagArguments
    func run() throws { try arguments.run() }
}

struct ImageTag: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Create a tag TARGET that refers to SOURCE.")
    @OptionGroup var arguments: TagArguments
    func run() throws { try arguments.run() }
}

struct ImportArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .customLong("change")], help: ArgumentHelp(
        "Apply a Dockerfile instruction to the image: CMD, ENTRYPOINT, ENV, WORKDIR or USER.", valueName: "instruction"))
    var changes: [String] = []

    @Option(name: [.short, .customLong("message")], help: ArgumentHelp("A commit message for the image.", valueName: "text"))
    var message: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Show no progress line on a terminal.")
    var quiet = false

    @Argument(help: ArgumentHelp("A root filesystem tarball (plain, gzip or xz), or - for standard input.", valueName: "file"))
    var file: String

    @Argument(help: ArgumentHelp("A name for the image.", valueName: "repository[:tag]"))
    var reference: String?

    func run() throws {
        // Everything that can be refused is refused before anything is read.
        if file.contains("://") {
            throw GockerError(.invalidArgument, "import: \(file): importing from a URL is not supported")
        }
        let tag = try reference.map { text throws(GockerError) in try ImageReference(parsing: text) }
        var config = ImageConfig()
        for change in changes { try config.apply(change: change) }
        let input = try FileSource(path: file)
        let progress = ProgressLine("Importing", total: input.size, quiet: quiet)
        input.onRead = { progress.update($0) }
        defer { progress.end() }
        let image = try global.engine.images.importArchive(from: input, tag: tag, config: config, comment: message)
        progress.end()
        print("sha256:" + image.id)
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a root filesystem tarball to create an image.",
        usage: "gocker import [OPTIONS] FILE|- [REPOSITORY[:TAG]]",
        discussion: """
            The tarball is a root filesystem as `docker export` writes it, plain, gzip or xz \
            (told by its first bytes). Members that would land outside the image (absolute or \
            ".." names, paths through symlinks, hard links to absolute or ".." targets, relative \
            symlinks that climb above the root) are refused. Device nodes are kept only when \
            gocker runs as root.
            """)
    @OptionGroup var arguments: ImportArguments
    func run() throws { try arguments.run() }
}

struct ImageImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import a root filesystem tarball to create an image.",
        usage: "gocker image import [OPTIONS] FILE|- [REPOSITORY[:TAG]]")
    @OptionGroup var arguments: ImportArguments
    func run() throws { try arguments.run() }
}

struct ImageInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Display detailed information on one or more images, as a JSON array.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("Images: name[:tag], id or id prefix.", valueName: "image"))
    var images: [String]

    func run() throws {
        let store = global.engine.images
        var found: [ImageStore.Inspection] = []
        var missing: [String] = []
        for text in images {
            if let (image, _) = try store.lookup(text) {
                found.append(try store.inspect(image))
            } else {
                missing.append(text)
            }
        }
        print(ImageStore.inspectJSON(found), terminator: "")
        if !missing.isEmpty {
            for m in missing { GockerMain.report("No such image: \(m)") }
            throw ExitCode(1)
        }
    }
}

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Manage images.",
        subcommands: [ImageList.self, ImageRemove.self, ImageTag.self, ImageImport.self, ImageInspect.self,
                      ImageSave.self, ImageLoad.self, ImageHistoryCommand.self, ImagePull.self, ImagePush.self])
}
