import Glibc
import GockerCore
import GockerRuntime

/// `gocker oci features`: the runtime-spec's features document.
struct OCIFeatures: OCIVerb {
    static let name = "features"
    static let abstract = "Print what this gocker accepts as the runtime-spec's features JSON (versions, mount options, namespaces, capabilities, seccomp)."
    static let options = OptionTable<Self>(globals())
    static let arguments: [String] = []
    static let argumentHelp: [String] = []
    static let required = 0
    var global = OCIGlobalOptions()
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) {}

    func run() throws {
        print(String(decoding: JSONText.pretty(RuntimeFeatures.current().jsonBytes), as: UTF8.self))
    }
}

/// `gocker oci spec`: runc's starting config.json in a bundle.
struct OCISpec: OCIVerb {
    static let name = "spec"
    static let abstract = "Write a starting config.json into a bundle (runc's: sh on a terminal in ./rootfs); never over one that exists."
    static let options = OptionTable(globals() + [
        .text("bundle", short: "b", "dir", help: "The bundle directory to write config.json in (default: current).") { $0.bundle = $1 },
        .flag("rootless", help: "A config for a user without privileges: a user namespace mapping root to the caller, no network namespace.") {
            $0.rootless = true
        },
    ])
    static let arguments: [String] = []
    static let argumentHelp: [String] = []
    static let required = 0
    var global = OCIGlobalOptions()
    var bundle = "."
    var rootless = false
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) {}

    func run() throws {
        guard Sys.isDirectory(bundle) else {
            throw GockerError(.invalidArgument, "bundle \"\(bundle)\": not a directory")
        }
        let path = bundle + "/config.json"
        // A rootless gocker's user and group are the host's (not its
        // namespace's root), as runc writes them.
        let spec = DefaultSpec.make(rootless: rootless, uid: Rootless.user?.uid ?? geteuid(), gid: Rootless.user?.gid ?? getegid())
        let bytes = JSONText.pretty(spec.jsonBytes) + [UInt8(ascii: "\n")]
        // O_EXCL: an existing file (or one another gocker writes meanwhile)
        // is never replaced.
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            if errno == EEXIST { throw GockerError(.invalidArgument, "File config.json exists. Remove it first") }
            throw GockerError(.system, "write the config", cause: SystemCallError("open", path: path, errno: errno))
        }
        defer { Sys.close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written != bytes.count {
            let e = errno
            unlink(path)
            throw GockerError(.system, "write the config", cause: SystemCallError("write", path: path, errno: written < 0 ? e : EIO))
        }
    }
}

/// `gocker oci events`: runc's stats and OOM records of a container.
struct OCIEvents: OCIVerb {
    static let name = "events"
    static let abstract = "Print a container's usage as JSON lines, every interval, and an \"oom\" line when its memory limit kills; ends with the container."
    static let options = OptionTable(globals() + [
        .flag("stats", help: "Print one stats record and exit.") { $0.statsOnly = true },
        .text("interval", "duration", help: "Time between stats records, as 5s, 500ms or 1m30s (default 5s).") { $0.interval = $1 },
    ])
    var global = OCIGlobalOptions()
    var statsOnly = false
    /// Read when run, so that a bad one fails as runc's does (exit 1).
    var interval = "5s"
    var id = ""

    mutating func take(_ arguments: [String], rest: [String]) { id = arguments[0] }

    /// A Go duration ("1.5s", "100ms", "1m30s", "-1s"), in seconds.
    static func duration(_ text: String) throws(GockerError) -> Double {
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        var rest = Substring(text)
        var sign = 1.0
        if rest.first == "-" || rest.first == "+" {
            if rest.first == "-" { sign = -1 }
            rest = rest.dropFirst()
        }
        let invalid = GockerError(.invalidArgument, "invalid value \"\(text)\" for flag -interval: parse error")
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { throw invalid }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { throw invalid }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isNumber || $0 == ".") }
            guard let scale = units.first(where: { $0.0 == unit })?.1 else { throw invalid }
            rest = rest.dropFirst(unit.count)
            total += value * scale
        }
        return sign * total
    }

    func run() throws {
        try global.runtime.events(id: id, interval: try Self.duration(interval), statsOnly: statsOnly) { line in
            // Each line as it comes (not held in stdout's buffer for a pipe).
            let text = line + "\n"
            _ = text.withCString { write(1, $0, strlen($0)) }
        }
    }
}
