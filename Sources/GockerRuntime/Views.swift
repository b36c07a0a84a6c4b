import Glibc
import GockerCore

/// One row of `ps`, with docker's field names (also its --format json).
public struct ContainerRow: Codable, Sendable, Equatable {
    public var ID: String
    public var Image: String
    public var Command: String
    public var CreatedAt: String
    public var RunningFor: String
    public var Status: String
    public var State: String
    public var Ports: String
    public var Names: String

    /// A `{{.Field}}` template, the subset of docker's Go templates that
    /// people use with ps: fields, text and \t.
    public func render(template: String) -> String {
        let fields: [String: String] = [
            "ID": ID, "Image": Image, "Command": "\"\(Command)\"", "CreatedAt": CreatedAt, "RunningFor": RunningFor,
            "Status": Status, "State": State, "Ports": Ports, "Names": Names,
        ]
        var text = Substring(template)
        if text.hasPrefix("table ") { text = text.dropFirst(6) }
        var out = ""
        while !text.isEmpty {
            if text.hasPrefix("\\t") {
                out += "\t"
                text = text.dropFirst(2)
            } else if text.hasPrefix("{{"), let close = text.firstRange(of: "}}") {
                let name = text[text.index(text.startIndex, offsetBy: 2)..<close.lowerBound].trimmed
                out += fields[String(name.drop { $0 == "." })] ?? ""
                text = text[close.upperBound...]
            } else {
                out.append(text.removeFirst())
            }
        }
        return out
    }
}

/// `inspect`: a container's config, state, mounts and cgroups.
public struct ContainerDetails: JSONShape, Sendable {
    public struct RunState: JSONShape, Sendable {
        public init() {}

        public var Status = ""
        public var Running = false
        public var Paused = false
        public var Pid: Int32 = 0
        public var ExitCode: Int32 = 0
        public var OOMKilled = false
        public var StartedAt = ""
        public var FinishedAt = ""
        public var RestartCount = 0

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("Status", &Status)
            try v.field("Running", &Running)
            try v.field("Paused", &Paused)
            try v.field("Pid", &Pid)
            try v.field("ExitCode", &ExitCode)
            try v.field("OOMKilled", &OOMKilled)
            try v.field("StartedAt", &StartedAt)
            try v.field("FinishedAt", &FinishedAt)
            try v.field("RestartCount", &RestartCount)
        }
    }
    public var Id = ""
    public var Name = ""
    public var Created = ""
    public var Path = ""
    public var Args: [String] = []
    public var Image = ""
    public var ImageName = ""
    public var State = RunState()
    public var HostConfig = HostConfigView()
    public var Config: Spec?
    public var Mounts: [MountPoint] = []
    public var Cgroups: CgroupRecord?
    public var LogPath = ""
    /// docker's: the address on the network, and each network by name.
    public var NetworkSettings: [String: JSONValue] = [:]

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("Id", &Id)
        try v.field("Name", &Name)
        try v.field("Created", &Created)
        try v.field("Path", &Path)
        try v.field("Args", &Args)
        try v.field("Image", &Image)
        try v.field("ImageName", &ImageName)
        try v.field("State", &State)
        try v.field("HostConfig", &HostConfig)
        try v.field("Config", &Config)
        try v.field("Mounts", &Mounts)
        try v.field("Cgroups", &Cgroups)
        try v.field("LogPath", &LogPath)
        try v.field("NetworkSettings", &NetworkSettings)
    }
}

/// `inspect`'s HostConfig: docker's members for what gocker keeps.
public struct HostConfigView: JSONShape, Sendable, Equatable {
    public var NetworkMode = ""
    public var RestartPolicy = ""
    public var AutoRemove = ""
    public var Seccomp = ""
    /// `--sysctl`, as docker leaves it out when none was given.
    public var Sysctls: [String: String]?
    public var OomScoreAdj = 0
    /// "private" or "host".
    public var CgroupnsMode = ""

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("NetworkMode", &NetworkMode)
        try v.field("RestartPolicy", &RestartPolicy)
        try v.field("AutoRemove", &AutoRemove)
        try v.field("Seccomp", &Seccomp)
        try v.field("Sysctls", &Sysctls)
        try v.field("OomScoreAdj", &OomScoreAdj)
        try v.field("CgroupnsMode", &CgroupnsMode)
    }
}

/// Which lines `logs` prints.
public struct LogOptions: Sendable {
    public var tail: Int?
    public var timestamps = false
    public var since: Double?
    public var until: Double?

    public init() {}

    /// RFC 3339, seconds since the epoch, or a duration back from now (10s, 5m, 2h).
    public static func time(_ text: String, flag: String) throws(GockerError) -> Double {
        if let t = Timestamp.parse(text) { return t }
        if let seconds = Double(text) { return seconds }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        if let u = text.last, let mult = units[u], let n = Double(text.dropLast()) {
            return Timestamp.nowSeconds() - n * mult
        }
        throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for \(flag): a time (RFC 3339) or a duration (10m)")
    }
}

extension Engine {
    // MARK: ps

    public func listContainers(all: Bool, filters: [String]) throws(GockerError) -> [ContainerRow] {
        var want: [(String, String)] = []
        for f in filters {
            let kv = f.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, ["name", "status", "id"].contains(kv[0]) else {
                throw GockerError(.invalidArgument, "invalid filter \"\(f)\": expected name=, status= or id=")
            }
            want.append((kv[0], kv[1]))
        }
        let now = Timestamp.nowSeconds()
        var rows: [ContainerRow] = []
        for r in records() {
            let state = state(of: r)
            if !all && state != .running && state != .paused && state != .restarting && want.allSatisfy({ $0.0 != "status" }) { continue }
            let ok = want.allSatisfy { key, value in
                switch key {
                case "name": return r.name.contains(value)
                case "id": return r.id.hasPrefix(value)
                default: return state.rawValue == value
                }
            }
            if !ok { continue }
            rows.append(ContainerRow(
                ID: r.id, Image: r.image, Command: r.command, CreatedAt: r.created,
                RunningFor: since(r.created, now: now), Status: statusText(r, state, now: now), State: state.rawValue,
                Ports: (r.launch?.network?.ports ?? r.launch?.slirp?.ports ?? []).map { "\($0.hostIP ?? "0.0.0.0"):\($0.hostPort)->\($0.containerPort)/\($0.proto)" }
                    .joined(separator: ", "),
                Names: r.name))
        }
        return rows
    }

    func since(_ time: String?, now: Double) -> String {
        guard let time, let t = Timestamp.parse(time) else { return "" }
        return HumanUnits.duration(seconds: now - t) + " ago"
    }

    func statusText(_ r: ContainerRecord, _ state: DockerState, now: Double) -> String {
        switch state {
        case .created: return "Created"
        case .running, .paused:
            let t = r.started.flatMap(Timestamp.parse) ?? now
            return "Up " + HumanUnits.duration(seconds: now - t) + (state == .paused ? " (Paused)" : "")
        case .restarting: return "Restarting (\(r.exitCode ?? 0)) " + since(r.finished, now: now)
        case .exited:
            guard let code = r.exitCode else { return "Exited (unknown)" }
            return "Exited (\(code)) " + since(r.finished, now: now)
        }
    }

    // MARK: inspect

    public func inspect(_ ref: String) throws(GockerError) -> ContainerDetails {
        let r = try lookup(ref)
        let state = state(of: r)
        let spec = try? Spec.decodeFile(path: containerDir(r.id) + "/config.json")
        let runtimeState = try? runtime.store.load(r.id)
        var d = ContainerDetails()
        d.Id = r.id
        d.Name = "/" + r.name
        d.Created = r.created
        d.Path = r.args.first ?? ""
        d.Args = Array(r.args.dropFirst())
        d.Image = "sha256:" + r.imageID
        d.ImageName = r.image
        d.State.Status = state.rawValue
        d.State.Running = state == .running || state == .paused
        d.State.Paused = state == .paused
        d.State.Pid = pid(of: r) ?? 0
        d.State.ExitCode = r.exitCode ?? 0
        d.State.OOMKilled = r.oomKilled ?? false
        d.State.StartedAt = r.started ?? "0001-01-01T00:00:00Z"
        d.State.FinishedAt = r.finished ?? "0001-01-01T00:00:00Z"
        d.State.RestartCount = r.restartCount ?? 0
        d.HostConfig.NetworkMode = r.network
        d.HostConfig.RestartPolicy = r.restartPolicy ?? "no"
        d.HostConfig.AutoRemove = r.autoRemove ? "true" : "false"
        d.HostConfig.Seccomp = r.seccompProfile ?? "unconfined"
        // The rest as the container's config has it.
        d.HostConfig.Sysctls = spec?.linux?.sysctl.flatMap { $0.isEmpty ? nil : $0 }
        d.HostConfig.OomScoreAdj = spec?.process?.oomScoreAdj ?? 0
        d.HostConfig.CgroupnsMode = spec?.linux?.namespaces?.contains { $0.type == "cgroup" } == true ? "private" : "host"
        d.Config = spec
        d.Mounts = r.mounts ?? []
        d.Cgroups = runtimeState?.cgroups
        d.LogPath = logPath(r.id)
        d.NetworkSettings = networkSettings(r)
        return d
    }

    // MARK: prune

    /// Removes every container that is not running; their ids.
    public func prune() -> [String] {
        reapOrphans()
        var removed: [String] = []
        for r in records() where state(of: r) == .exited || state(of: r) == .created {
            if removeIfStopped(r.id) { removed.append(r.id) }
        }
        reconcileAddresses()
        return removed
    }

    /// Removes the container if, judged under its record's lock, it is
    /// stopped or created and no gocker is starting it: a `start` or
    /// `run -d` names its owner under that lock before it starts anything,
    /// so either it sees the container gone, or this sees it starting.
    func removeIfStopped(_ id: String) -> Bool {
        guard let fd = try? lockRecord(id) else { return false }
        let tomb = "\(dataRoot)/containers/.removing-\(id)"
        let record: ContainerRecord
        do {
            defer { Sys.close(fd) }
            guard let r = try? load(id), state(of: r) == .exited || state(of: r) == .created,
                  (try? runtime.delete(id: id, force: true)) != nil else { return false }
            disconnect(id: id, r.launch?.attachments ?? [])
            guard rename(containerDir(id), tomb) == 0 else { return false }
            record = r
        }
        try? Sys.removeAll(tomb)
        dropName(record.name, of: id)
        return true
    }

    // MARK: logs

    public func logSize(_ id: String) -> Int {
        var st = stat()
        return stat(logPath(id), &st) == 0 ? Int(st.st_size) : 0
    }

    struct LogLine: Decodable {
        let log: String
        let stream: String
        let time: String
    }

    /// Prints the log (both files, oldest first) as `options` asks; returns
    /// the size of the current file, where following goes on.
    @discardableResult
    public func printLogs(_ id: String, _ options: LogOptions) throws(GockerError) -> Int {
        let path = logPath(id)
        let current = (try? Sys.readFile(path)) ?? []
        let text = ((try? Sys.readFile(path + ".1")) ?? []) + current
        var lines = text.split(separator: UInt8(ascii: "\n")).compactMap { line -> LogLine? in
            try? JSON.decode(LogLine.self, from: Array(line), what: "log line")
        }
        if options.since != nil || options.until != nil {
            lines = lines.filter { l in
                let t = Timestamp.parse(l.time) ?? 0
                return (options.since.map { t >= $0 } ?? true) && (options.until.map { t <= $0 } ?? true)
            }
        }
        if let n = options.tail { lines = Array(lines.suffix(n)) }
        for l in lines { emit(l, options) }
        return current.count
    }

    func emit(_ l: LogLine, _ options: LogOptions) {
        let text = (options.timestamps ? l.time + " " : "") + l.log
        _ = text.withCString { write(l.stream == "stderr" ? 2 : 1, $0, strlen($0)) }
    }

    /// Prints what the log gains from `offset` on, until the container has
    /// stopped and everything is printed.
    public func followLogs(_ id: String, from offset: Int, _ options: LogOptions = LogOptions()) throws(GockerError) {
        var offset = offset
        var pending: [UInt8] = []
        while true {
            let size = logSize(id)
            if size < offset { offset = 0 }  // rotated
            if size > offset, let fd = Optional(Glibc.open(logPath(id), O_RDONLY | O_CLOEXEC)), fd >= 0 {
                var buf = [UInt8](repeating: 0, count: size - offset)
                let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
                Sys.close(fd)
                if n > 0 {
                    offset += n
                    pending += buf[0..<n]
                    while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        if let l = try? JSON.decode(LogLine.self, from: Array(pending[..<nl]), what: "log line") {
                            if options.until.map({ (Timestamp.parse(l.time) ?? 0) <= $0 }) ?? true { emit(l, options) }
                        }
                        pending.removeFirst(nl + 1)
                    }
                    continue
                }
            }
            guard let r = try? load(id) else { return }
            let s = state(of: r)
            if s == .exited || s == .created { if logSize(id) == offset { return } else { continue } }
            var ts = timespec(tv_sec: 0, tv_nsec: 50_000_000)
            nanosleep(&ts, nil)
        }
    }
}
