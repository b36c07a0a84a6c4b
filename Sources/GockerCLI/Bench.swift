import ArgumentParser
import Glibc
import GockerBench
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
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customShort("n"), help: ArgumentHelp("Timed starts per row.", valueName: "n"))
    var count = 100

    @Option(help: ArgumentHelp("Untimed starts per row first.", valueName: "n"))
    var warmup = 1

    @Option(help: ArgumentHelp("A runc-compatible runtime to time too, by name (in $PATH) or path; repeatable.", valueName: "runtime"))
    var runtime: [String] = []

    @Flag(help: "More rows: the cgroupfs backend, memory/CPU/pids limits, the host network.")
    var matrix = false

    @Option(help: ArgumentHelp("Starts at a time, per row: latency per start and starts per second.", valueName: "k"))
    var parallel = 1

    @Option(help: ArgumentHelp("Write every sample and the summary as JSON to this file.", valueName: "file"))
    var json: String?

    @Option(help: ArgumentHelp("Write a chart of the latency distributions (SVG) to this file.", valueName: "file"))
    var svg: String?

    func validate() throws {
        guard count >= 1 else { throw ValidationError("-n must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 64") }
        for r in runtime where r.isEmpty { throw ValidationError("--runtime needs a name or a path") }
    }

    func run() throws {
        var options = GockerBench.Bench.Options(dataRoot: global.dataRoot, stateRoot: global.stateRoot,
                                                gocker: GockerBench.Bench.selfPath())
        options.count = count
        options.warmup = warmup
        options.parallel = parallel
        options.runtimes = runtime
        options.matrix = matrix
        let result = try GockerBench.Bench(options).run { line in
            let text = line + "\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
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
}
