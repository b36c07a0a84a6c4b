/// config.json and state.json read and written without Codable:
/// FoundationEssentials' JSONDecoder takes about 0.6 ms of every `oci
/// create`, most of it on the first use of the Codable machinery in a new
/// process. The reader takes exactly the JSON the types' Codable definitions
/// accept, into the same values, and gives up (nil) on anything else (a
/// wrong type, a missing field, a duplicate key, an integer field whose
/// number is not a plain integer, a \u escape), so that JSONDecoder reads it
/// and reports what is wrong. The tests compare both readings, and read what
/// the writer wrote with JSONDecoder.
extension Spec {
    /// The config in the file at `path` (a bundle's config.json).
    public static func decodeFile(path: String) throws(GockerError) -> Spec {
        try JSON.decodeFile(Spec.self, path: path, reader: JSONReader.spec)
    }
}

enum JSONReader {
    typealias Process = Spec.Process
    typealias User = Spec.User
    typealias Capabilities = Spec.Capabilities
    typealias Rlimit = Spec.Rlimit
    typealias Root = Spec.Root
    typealias Mount = Spec.Mount
    typealias Linux = Spec.Linux
    typealias Namespace = Spec.Namespace
    typealias Device = Spec.Device
    typealias Resources = Spec.Resources

    indirect enum Value {
        case null
        case bool(Bool)
        case number(String)
        case string(String)
        case array([Value])
        case object([String: Value])
    }

    struct GiveUp: Error {}

    static func spec(_ bytes: [UInt8]) -> Spec? {
        guard let value = parse(bytes), case .object(let o) = value else { return nil }
        return try? readSpec(o)
    }

    // MARK: the JSON text

    static func parse(_ bytes: [UInt8]) -> Value? {
        bytes.withUnsafeBufferPointer { buf -> Value? in
            var p = Parser(b: buf)
            guard let v = try? p.value() else { return nil }
            p.space()
            return p.i == buf.count ? v : nil
        }
    }

    struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        /// Arrays and objects open: deeper than gocker's files go, the
        /// reader gives up (JSONDecoder refuses past 512 levels itself).
        var depth = 0
        static let maxDepth = 64

        mutating func space() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws(GiveUp) {
            space()
            guard i < b.count, b[i] == c else { throw GiveUp() }
            i += 1
        }

        mutating func literal(_ word: StaticString) throws(GiveUp) {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { throw GiveUp() }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { throw GiveUp() }
            i += n
        }

        mutating func value() throws(GiveUp) -> Value {
            space()
            guard i < b.count else { throw GiveUp() }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                depth += 1
                guard depth <= Self.maxDepth else { throw GiveUp() }
                defer { depth -= 1 }
                var o: [String: Value] = [:]
                space()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                while true {
                    space()
                    let key = try string()
                    try expect(UInt8(ascii: ":"))
                    guard o.updateValue(try value(), forKey: key) == nil else { throw GiveUp() }
                    space()
                    guard i < b.count else { throw GiveUp() }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                    throw GiveUp()
                }
            case UInt8(ascii: "["):
                i += 1
                depth += 1
                guard depth <= Self.maxDepth else { throw GiveUp() }
                defer { depth -= 1 }
                var a: [Value] = []
                space()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                while true {
                    a.append(try value())
                    space()
                    guard i < b.count else { throw GiveUp() }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                    throw GiveUp()
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        /// A JSON number, as its text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
        /// Where an integer is read, only a plain one converts.
        mutating func number() throws(GiveUp) -> String {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            let first = i
            digits()
            guard i > first, !(b[first] == UInt8(ascii: "0") && i - first > 1) else { throw GiveUp() }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                let f = i
                digits()
                guard i > f else { throw GiveUp() }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                let e = i
                digits()
                guard i > e else { throw GiveUp() }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
        }

        mutating func digits() {
            while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") { i += 1 }
        }

        mutating func string() throws(GiveUp) -> String {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw GiveUp() }
            i += 1
            let start = i
            var plain = true
            while i < b.count, b[i] != UInt8(ascii: "\"") {
                if b[i] < 0x20 { throw GiveUp() }
                if b[i] == UInt8(ascii: "\\") { plain = false; i += 1 }
                i += 1
            }
            guard i < b.count else { throw GiveUp() }
            let raw = UnsafeBufferPointer(rebasing: b[start..<i])
            i += 1
            if plain {
                guard let s = String(validating: raw, as: UTF8.self) else { throw GiveUp() }
                return s
            }
            var out: [UInt8] = []
            out.reserveCapacity(raw.count)
            var k = 0
            while k < raw.count {
                let c = raw[k]
                k += 1
                guard c == UInt8(ascii: "\\") else { out.append(c); continue }
                guard k < raw.count else { throw GiveUp() }
                switch raw[k] {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                default: throw GiveUp()  // \u, or not an escape at all
                }
                k += 1
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw GiveUp() }
            return s
        }
    }

    // MARK: the config's types, as their Codable definitions read them

    /// One JSON object's members; a missing member and null are both absent.
    struct Members {
        let o: [String: Value]

        func value(_ k: String) -> Value? {
            guard let v = o[k] else { return nil }
            if case .null = v { return nil }
            return v
        }
        func string(_ k: String) throws(GiveUp) -> String? {
            guard let v = value(k) else { return nil }
            guard case .string(let s) = v else { throw GiveUp() }
            return s
        }
        func bool(_ k: String) throws(GiveUp) -> Bool? {
            guard let v = value(k) else { return nil }
            guard case .bool(let x) = v else { throw GiveUp() }
            return x
        }
        func number<T: FixedWidthInteger>(_ k: String, _: T.Type) throws(GiveUp) -> T? {
            guard let v = value(k) else { return nil }
            guard case .number(let text) = v, let x = T(text) else { throw GiveUp() }
            return x
        }
        func strings(_ k: String) throws(GiveUp) -> [String]? {
            guard let v = value(k) else { return nil }
            guard case .array(let a) = v else { throw GiveUp() }
            var out: [String] = []
            out.reserveCapacity(a.count)
            for e in a {
                guard case .string(let s) = e else { throw GiveUp() }
                out.append(s)
            }
            return out
        }
        func object(_ k: String) throws(GiveUp) -> Members? {
            guard let v = value(k) else { return nil }
            guard case .object(let m) = v else { throw GiveUp() }
            return Members(o: m)
        }
        func objects(_ k: String) throws(GiveUp) -> [Members]? {
            guard let v = value(k) else { return nil }
            guard case .array(let a) = v else { throw GiveUp() }
            var out: [Members] = []
            for e in a {
                guard case .object(let m) = e else { throw GiveUp() }
                out.append(Members(o: m))
            }
            return out
        }
    }

    static func required<T>(_ x: T?) throws(GiveUp) -> T {
        guard let x else { throw GiveUp() }
        return x
    }

    /// A JSON object of strings (the image store's repositories.json).
    static func stringMap(_ bytes: [UInt8]) -> [String: String]? {
        guard let value = parse(bytes), case .object(let o) = value else { return nil }
        return try? strings(of: o)
    }

    static func strings(of o: [String: Value]) throws(GiveUp) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in o {
            guard case .string(let s) = v else { throw GiveUp() }
            out[k] = s
        }
        return out
    }

    static func imageRecord(_ bytes: [UInt8]) -> ImageRecord? {
        guard let value = parse(bytes), case .object(let o) = value else { return nil }
        let m = Members(o: o)
        return try? ImageRecord(
            id: required(m.string("id")), layers: required(m.strings("layers")),
            config: {
                let c = try required(m.object("config"))
                return ImageConfig(Cmd: try c.strings("Cmd"), Entrypoint: try c.strings("Entrypoint"), Env: try c.strings("Env"),
                                   WorkingDir: try c.string("WorkingDir"), User: try c.string("User"))
            }(),
            created: required(m.string("created")), size: m.number("size", Int64.self), comment: m.string("comment"),
            author: m.string("author"), parent: m.string("parent"),
            history: m.objects("history").map { a throws(GiveUp) in
                try a.map { h throws(GiveUp) in
                    ImageHistory(created: try h.string("created"), created_by: try h.string("created_by"),
                                 author: try h.string("author"), comment: try h.string("comment"),
                                 empty_layer: try h.bool("empty_layer"))
                }
            })
    }

    static func runtimeState(_ bytes: [UInt8]) -> RuntimeState? {
        guard let value = parse(bytes), case .object(let o) = value else { return nil }
        return try? readRuntimeState(Members(o: o))
    }

    static func readRuntimeState(_ m: Members) throws(GiveUp) -> RuntimeState {
        RuntimeState(
            id: try required(m.string("id")), pid: try required(m.number("pid", Int32.self)),
            pidStartTime: try required(m.number("pidStartTime", UInt64.self)),
            bundle: try required(m.string("bundle")), rootfs: try required(m.string("rootfs")),
            created: try required(m.string("created")), annotations: try readAnnotations(m),
            cgroups: try m.object("cgroups").map { c throws(GiveUp) in
                guard let version = CgroupVersion(rawValue: try required(c.string("version"))) else { throw GiveUp() }
                return CgroupRecord(backend: try required(c.string("backend")), version: version,
                                    path: try required(c.string("path")), controllers: try required(c.strings("controllers")))
            })
    }

    static func readAnnotations(_ m: Members) throws(GiveUp) -> [String: String]? {
        try m.object("annotations").map { a throws(GiveUp) in try strings(of: a.o) }
    }

    static func readSpec(_ o: [String: Value]) throws(GiveUp) -> Spec {
        let m = Members(o: o)
        return Spec(
            ociVersion: try required(m.string("ociVersion")),
            process: try m.object("process").map(readProcess),
            root: try m.object("root").map { r throws(GiveUp) in
                Root(path: try required(r.string("path")), readonly: try r.bool("readonly"))
            },
            hostname: try m.string("hostname"),
            mounts: try m.objects("mounts").map { a throws(GiveUp) in
                try a.map { x throws(GiveUp) in
                    Mount(destination: try required(x.string("destination")), type: try x.string("type"),
                          source: try x.string("source"), options: try x.strings("options"))
                }
            },
            annotations: try readAnnotations(m),
            linux: try m.object("linux").map(readLinux))
    }

    static func readProcess(_ m: Members) throws(GiveUp) -> Process {
        let u = try required(m.object("user"))
        var gids: [UInt32]?
        if let v = u.value("additionalGids") {
            guard case .array(let a) = v else { throw GiveUp() }
            gids = try a.map { e throws(GiveUp) in
                guard case .number(let text) = e, let g = UInt32(text) else { throw GiveUp() }
                return g
            }
        }
        let user = User(uid: try required(u.number("uid", UInt32.self)), gid: try required(u.number("gid", UInt32.self)),
                        umask: try u.number("umask", UInt32.self), additionalGids: gids)
        return Process(
            terminal: try m.bool("terminal"), user: user, args: try m.strings("args"), env: try m.strings("env"),
            cwd: try required(m.string("cwd")),
            capabilities: try m.object("capabilities").map { c throws(GiveUp) in
                Capabilities(bounding: try c.strings("bounding"), effective: try c.strings("effective"),
                             inheritable: try c.strings("inheritable"), permitted: try c.strings("permitted"),
                             ambient: try c.strings("ambient"))
            },
            rlimits: try m.objects("rlimits").map { a throws(GiveUp) in
                try a.map { r throws(GiveUp) in
                    Rlimit(type: try required(r.string("type")), hard: try required(r.number("hard", UInt64.self)),
                           soft: try required(r.number("soft", UInt64.self)))
                }
            },
            noNewPrivileges: try m.bool("noNewPrivileges"))
    }

    static func readLinux(_ m: Members) throws(GiveUp) -> Linux {
        Linux(
            namespaces: try m.objects("namespaces").map { a throws(GiveUp) in
                try a.map { n throws(GiveUp) in Namespace(type: try required(n.string("type")), path: try n.string("path")) }
            },
            devices: try m.objects("devices").map { a throws(GiveUp) in
                try a.map { d throws(GiveUp) in
                    Device(type: try required(d.string("type")), path: try required(d.string("path")),
                           major: try required(d.number("major", Int64.self)), minor: try required(d.number("minor", Int64.self)),
                           fileMode: try d.number("fileMode", UInt32.self), uid: try d.number("uid", UInt32.self),
                           gid: try d.number("gid", UInt32.self))
                }
            },
            resources: try m.object("resources").map(readResources),
            cgroupsPath: try m.string("cgroupsPath"),
            rootfsPropagation: try m.string("rootfsPropagation"),
            maskedPaths: try m.strings("maskedPaths"),
            readonlyPaths: try m.strings("readonlyPaths"),
            seccomp: try m.object("seccomp").map(readSeccomp))
    }

    static func readSeccomp(_ m: Members) throws(GiveUp) -> Spec.Seccomp {
        Spec.Seccomp(
            defaultAction: try required(m.string("defaultAction")),
            defaultErrnoRet: try m.number("defaultErrnoRet", UInt32.self),
            architectures: try m.strings("architectures"), flags: try m.strings("flags"),
            listenerPath: try m.string("listenerPath"), listenerMetadata: try m.string("listenerMetadata"),
            syscalls: try m.objects("syscalls").map { a throws(GiveUp) in
                try a.map { c throws(GiveUp) in
                    Spec.Seccomp.Syscall(
                        names: try required(c.strings("names")), action: try required(c.string("action")),
                        errnoRet: try c.number("errnoRet", UInt32.self),
                        args: try c.objects("args").map { a throws(GiveUp) in
                            try a.map { x throws(GiveUp) in
                                Spec.Seccomp.Arg(index: try required(x.number("index", UInt32.self)),
                                                 value: try required(x.number("value", UInt64.self)),
                                                 valueTwo: try x.number("valueTwo", UInt64.self), op: try required(x.string("op")))
                            }
                        })
                }
            })
    }

    static func readResources(_ m: Members) throws(GiveUp) -> Resources {
        Resources(
            memory: try m.object("memory").map { x throws(GiveUp) in
                Resources.Memory(limit: try x.number("limit", Int64.self), reservation: try x.number("reservation", Int64.self),
                                 swap: try x.number("swap", Int64.self))
            },
            cpu: try m.object("cpu").map { x throws(GiveUp) in
                Resources.CPU(shares: try x.number("shares", UInt64.self), quota: try x.number("quota", Int64.self),
                              period: try x.number("period", UInt64.self), cpus: try x.string("cpus"), mems: try x.string("mems"))
            },
            pids: try m.object("pids").map { x throws(GiveUp) in
                Resources.Pids(limit: try required(x.number("limit", Int64.self)))
            },
            devices: try m.objects("devices").map { a throws(GiveUp) in
                try a.map { d throws(GiveUp) in
                    Resources.DeviceRule(allow: try required(d.bool("allow")), type: try d.string("type"),
                                         major: try d.number("major", Int64.self), minor: try d.number("minor", Int64.self),
                                         access: try d.string("access"))
                }
            })
    }
}

/// JSON text for gocker's own files, keys in the order given (each type
/// below gives them sorted, as JSON.encode sorts them), absent optionals
/// left out.
public struct JSONWriter {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    public init() {}

    private mutating func key(_ k: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        Self.string(k, into: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    private static func string(_ s: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escape: copied whole.
        let plain = s.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if plain == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(c)
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += Array("\\u00".utf8) + [hex[Int(c >> 4)], hex[Int(c & 15)]]
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func field(_ k: String, _ v: String?) {
        guard let v else { return }
        key(k)
        Self.string(v, into: &bytes)
    }

    public mutating func field<T: BinaryInteger>(_ k: String, _ v: T?) {
        guard let v else { return }
        key(k)
        bytes += Array("\(v)".utf8)
    }

    public mutating func field(_ k: String, _ v: Bool?) {
        guard let v else { return }
        key(k)
        bytes += Array((v ? "true" : "false").utf8)
    }

    public mutating func field(_ k: String, _ v: [String]?) {
        guard let v else { return }
        key(k)
        bytes.append(UInt8(ascii: "["))
        for (i, s) in v.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.string(s, into: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    public mutating func field<T: BinaryInteger>(_ k: String, _ v: [T]?) {
        guard let v else { return }
        key(k)
        bytes += Array("[\(v.map { "\($0)" }.joined(separator: ","))]".utf8)
    }

    public mutating func field(_ k: String, _ v: [String: String]?) {
        guard let v else { return }
        field(k, object: v.keys.sorted().reduce(into: JSONWriter()) { w, name in w.field(name, v[name]) })
    }

    /// A value's JSON text as it is.
    public mutating func field(_ k: String, raw: [UInt8]) {
        key(k)
        bytes += raw
    }

    public mutating func field(_ k: String, object: JSONWriter?) {
        guard let object else { return }
        key(k)
        bytes += object.finished
    }

    public mutating func field(_ k: String, objects: [JSONWriter]?) {
        guard let objects else { return }
        key(k)
        bytes.append(UInt8(ascii: "["))
        for (i, o) in objects.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += o.finished
        }
        bytes.append(UInt8(ascii: "]"))
    }

    public var finished: [UInt8] { bytes + [UInt8(ascii: "}")] }

    /// A writer filled by `body`.
    public static func object(_ body: (inout JSONWriter) -> Void) -> JSONWriter {
        var w = JSONWriter()
        body(&w)
        return w
    }
}

extension Spec.Seccomp {
    /// `linux.seccomp`'s text in config.json.
    public var json: JSONWriter {
        JSONWriter.object { w in
            w.field("architectures", architectures)
            w.field("defaultAction", defaultAction)
            w.field("defaultErrnoRet", defaultErrnoRet)
            w.field("flags", flags)
            w.field("listenerMetadata", listenerMetadata)
            w.field("listenerPath", listenerPath)
            w.field("syscalls", objects: syscalls?.map { x in
                JSONWriter.object { w in
                    w.field("action", x.action)
                    w.field("args", objects: x.args?.map { a in
                        JSONWriter.object { w in
                            w.field("index", a.index)
                            w.field("op", a.op)
                            w.field("value", a.value)
                            w.field("valueTwo", a.valueTwo)
                        }
                    })
                    w.field("errnoRet", x.errnoRet)
                    w.field("names", x.names)
                }
            })
        }
    }
}

extension Spec {
    /// config.json's text (what JSONDecoder reads back as this value).
    public var json: [UInt8] { json(seccomp: nil) }

    /// config.json's text with `seccomp`, a `linux.seccomp` object's text
    /// written before (see DefaultSeccomp.rendered), in place of this
    /// value's own.
    public func json(seccomp: [UInt8]?) -> [UInt8] {
        JSONWriter.object { w in
            w.field("annotations", annotations)
            w.field("hostname", hostname)
            w.field("linux", object: linux.map { l in
                JSONWriter.object { w in
                    w.field("cgroupsPath", l.cgroupsPath)
                    w.field("devices", objects: l.devices?.map { d in
                        JSONWriter.object { w in
                            w.field("fileMode", d.fileMode)
                            w.field("gid", d.gid)
                            w.field("major", d.major)
                            w.field("minor", d.minor)
                            w.field("path", d.path)
                            w.field("type", d.type)
                            w.field("uid", d.uid)
                        }
                    })
                    w.field("maskedPaths", l.maskedPaths)
                    w.field("namespaces", objects: l.namespaces?.map { n in
                        JSONWriter.object { w in
                            w.field("path", n.path)
                            w.field("type", n.type)
                        }
                    })
                    w.field("readonlyPaths", l.readonlyPaths)
                    w.field("resources", object: l.resources.map { r in
                        JSONWriter.object { w in
                            w.field("cpu", object: r.cpu.map { c in
                                JSONWriter.object { w in
                                    w.field("cpus", c.cpus)
                                    w.field("mems", c.mems)
                                    w.field("period", c.period)
                                    w.field("quota", c.quota)
                                    w.field("shares", c.shares)
                                }
                            })
                            w.field("devices", objects: r.devices?.map { d in
                                JSONWriter.object { w in
                                    w.field("access", d.access)
                                    w.field("allow", d.allow)
                                    w.field("major", d.major)
                                    w.field("minor", d.minor)
                                    w.field("type", d.type)
                                }
                            })
                            w.field("memory", object: r.memory.map { m in
                                JSONWriter.object { w in
                                    w.field("limit", m.limit)
                                    w.field("reservation", m.reservation)
                                    w.field("swap", m.swap)
                                }
                            })
                            w.field("pids", object: r.pids.map { p in JSONWriter.object { w in w.field("limit", p.limit) } })
                        }
                    })
                    w.field("rootfsPropagation", l.rootfsPropagation)
                    if let seccomp {
                        w.field("seccomp", raw: seccomp)
                    } else {
                        w.field("seccomp", object: l.seccomp?.json)
                    }
                }
            })
            w.field("mounts", objects: mounts?.map { m in
                JSONWriter.object { w in
                    w.field("destination", m.destination)
                    w.field("options", m.options)
                    w.field("source", m.source)
                    w.field("type", m.type)
                }
            })
            w.field("ociVersion", ociVersion)
            w.field("process", object: process.map { p in
                JSONWriter.object { w in
                    w.field("args", p.args)
                    w.field("capabilities", object: p.capabilities.map { c in
                        JSONWriter.object { w in
                            w.field("ambient", c.ambient)
                            w.field("bounding", c.bounding)
                            w.field("effective", c.effective)
                            w.field("inheritable", c.inheritable)
                            w.field("permitted", c.permitted)
                        }
                    })
                    w.field("cwd", p.cwd)
                    w.field("env", p.env)
                    w.field("noNewPrivileges", p.noNewPrivileges)
                    w.field("rlimits", objects: p.rlimits?.map { r in
                        JSONWriter.object { w in
                            w.field("hard", r.hard)
                            w.field("soft", r.soft)
                            w.field("type", r.type)
                        }
                    })
                    w.field("terminal", p.terminal)
                    w.field("user", object: JSONWriter.object { w in
                        w.field("additionalGids", p.user.additionalGids)
                        w.field("gid", p.user.gid)
                        w.field("uid", p.user.uid)
                        w.field("umask", p.user.umask)
                    })
                }
            })
            w.field("root", object: root.map { r in
                JSONWriter.object { w in
                    w.field("path", r.path)
                    w.field("readonly", r.readonly)
                }
            })
        }.finished
    }
}

extension RuntimeState {
    /// state.json's text (what JSONDecoder reads back as this value).
    public var json: [UInt8] {
        JSONWriter.object { w in
            w.field("annotations", annotations)
            w.field("bundle", bundle)
            w.field("cgroups", object: cgroups.map { c in
                JSONWriter.object { r in
                    r.field("backend", c.backend)
                    r.field("controllers", c.controllers)
                    r.field("path", c.path)
                    r.field("version", c.version.rawValue)
                }
            })
            w.field("created", created)
            w.field("id", id)
            w.field("pid", pid)
            w.field("pidStartTime", pidStartTime)
            w.field("rootfs", rootfs)
        }.finished
    }
}
