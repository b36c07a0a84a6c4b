import GockerCore
import GockerRuntime

/// `gocker run`'s plain command lines, read by hand: ArgumentParser's
/// reading of run's four dozen options is about 1.5 ms of every start. Only
/// the options below are taken here, each at most once (`-e` and
/// `--security-opt` any number of times), with a value that does not start
/// with a dash; anything else (help, another option, `--`, a combined or attached short form other than the
/// flags -i, -t and -d) goes to ArgumentParser, which reads it or says what
/// is wrong with it. Tests check that both readings give the same request.
struct RunFastPath {
    var values: [String: String] = [:]
    var env: [String] = []
    var securityOpts: [String] = []
    var image = ""
    var command: [String] = []

    /// Long name to whether it takes a value. (Switches, not tables: a
    /// dictionary is built and hashed on first use, on every start.)
    static func option(_ name: String) -> Bool? {
        switch name {
        case "rm", "detach", "interactive", "tty", "timings": return false
        case "name", "network", "net", "env", "workdir", "user", "memory", "cpus", "pids-limit", "cgroup-backend",
             "cgroup-parent", "data-root", "root", "security-opt":
            return true
        default: return nil
        }
    }

    static func longName(_ short: Character) -> String? {
        switch short {
        case "d": return "detach"
        case "i": return "interactive"
        case "t": return "tty"
        case "m": return "memory"
        case "e": return "env"
        case "w": return "workdir"
        case "u": return "user"
        default: return nil
        }
    }

    init?(_ args: [String]) {
        var i = 0
        while i < args.count {
            let a = args[i]
            i += 1
            guard a.hasPrefix("-"), a != "-" else {
                image = a
                command = Array(args[i...])
                break
            }
            var names: [String] = []
            var value: String?
            if a.hasPrefix("--") {
                var name = String(a.dropFirst(2))
                if let eq = name.firstIndex(of: "=") {
                    value = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                names = [name]
            } else {
                // -x, or flags together (-it); an attached value is left alone.
                let letters = Array(a.dropFirst())
                guard letters.count == 1 || letters.allSatisfy({ "dit".contains($0) }) else { return nil }
                for c in letters {
                    guard let long = Self.longName(c) else { return nil }
                    names.append(long)
                }
            }
            for name in names {
                guard let takesValue = Self.option(name) else { return nil }
                let key = name == "net" ? "network" : name
                if takesValue {
                    if value == nil {
                        guard names.count == 1, i < args.count, !args[i].hasPrefix("-") else { return nil }
                        value = args[i]
                        i += 1
                    }
                    if key == "env" {
                        env.append(value!)
                        continue
                    }
                    if key == "security-opt" {
                        securityOpts.append(value!)
                        continue
                    }
                } else if value != nil {
                    return nil
                }
                guard values[key] == nil else { return nil }
                values[key] = value ?? ""
            }
        }
        guard !image.isEmpty else { return nil }
        if let p = values["pids-limit"], Int64(p) == nil { return nil }
    }

    /// What ArgumentParser's `Run` would make of the same line.
    func request() throws(GockerError) -> RunRequest {
        var r = RunRequest(image: image)
        r.command = command
        r.name = values["name"]
        r.autoRemove = values["rm"] != nil
        r.env = env
        r.securityOpts = securityOpts
        r.workdir = values["workdir"]
        r.network = try NetworkMode(parsing: values["network"] ?? "none")
        r.interactive = values["interactive"] != nil
        r.tty = values["tty"] != nil
        r.user = values["user"]
        r.resources.memory = values["memory"]
        r.resources.cpus = values["cpus"]
        r.resources.pidsLimit = values["pids-limit"].flatMap { Int64($0) }
        r.cgroupBackend = values["cgroup-backend"]
        r.cgroupParent = values["cgroup-parent"]
        r.detach = values["detach"] != nil
        return r
    }

    func run() throws {
        if values["timings"] != nil { Timings.printOnExit() }
        let engine = Engine(dataRoot: values["data-root"] ?? Engine.defaultDataRoot,
                            stateRoot: values["root"] ?? StateStore.defaultRoot)
        try Run.start(try request(), engine: engine)
    }
}
