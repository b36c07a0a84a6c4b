import CGockerCore
import Glibc
import GockerCore

/// What a seccomp listener gets with the filter's descriptor
/// (runtime-spec "ContainerProcessState").
struct ContainerProcessState: JSONShape {
    var ociVersion = Spec.version
    var fds = ["seccompFd"]
    var pid = 0
    var metadata = ""
    var state = OCIState()

    init() {}

    init(metadata: String, pid: Int, state: OCIState) {
        self.metadata = metadata
        self.pid = pid
        self.state = state
    }

    mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("ociVersion", &ociVersion)
        try v.field("fds", &fds)
        try v.field("pid", &pid)
        try v.field("metadata", &metadata)
        try v.field("state", &state)
    }
}

/// A config's `linux.seccomp` compiled (libseccomp, in the parent) into the
/// BPF program the child loads last before execve (csrc/seccomp.c).
public struct SeccompProgram: Sendable {
    /// struct sock_filter, 8 bytes each.
    public var instructions: [UInt64]
    public var flags: UInt32
    /// Some rule notifies: the listener goes to `listenerPath`.
    public var notify: Bool
    public var listenerPath: String?
    /// The container process state sent with the listener, its pids left
    /// as spaces for the child to fill, and where they are.
    var state: [UInt8] = []
    var pidOffsets: [Int] = []
    /// The cache's file of this program, when it has one.
    var cacheFile: String?

    /// Compiles `profile`; `id`, `bundle`, `annotations` and `status` make
    /// the container process state a listener gets.
    /// `cacheName`: the profile is one gocker made, cached under that name
    /// (see LaunchExtras.seccompDefault) rather than under a digest of it.
    public init(_ profile: Spec.Seccomp, id: String = "", bundle: String = "", annotations: [String: String]? = nil,
                status: ContainerStatus = .creating, cacheDirectory: String? = nil, cacheName: String? = nil) throws(GockerError) {
        (instructions, flags, notify, cacheFile) = try Self.compiled({ profile }, cacheDirectory: cacheDirectory, name: cacheName)
        guard notify else { return }
        guard let path = profile.listenerPath, !path.isEmpty else {
            throw GockerError(.invalidConfig, "seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
        }
        listenerPath = path
        // The runtime-spec's container process state.
        let marker = Int(Self.pidMarker)
        state = ContainerProcessState(
            metadata: profile.listenerMetadata ?? "", pid: marker,
            state: OCIState(id: id, status: status, pid: Self.pidMarker, bundle: bundle, owner: nil,
                            annotations: annotations)).jsonBytes
        pidOffsets = Self.blankPids(&state)
        precondition(pidOffsets.count == 2)
    }

    /// The pid written where the C core writes the real one: ten digits
    /// (GK_SECCOMP_PID_WIDTH), and an Int32 as OCIState.pid.
    static let pidMarker: Int32 = 2_000_000_000

    /// Blanks each `"pid":<pidMarker>` member of the JSON `bytes` to spaces
    /// (for the C core to write the pid there) and returns their offsets.
    /// `"pid":` after , or { is never inside a string (its quotes would be
    /// escaped there).
    static func blankPids(_ bytes: inout [UInt8]) -> [Int] {
        let key = Array(#""pid":\#(pidMarker)"#.utf8)
        var offsets: [Int] = []
        var i = 1
        while i + key.count <= bytes.count {
            if (bytes[i - 1] == UInt8(ascii: ",") || bytes[i - 1] == UInt8(ascii: "{")) && Array(bytes[i..<i + key.count]) == key {
                let at = i + key.count - Int(GK_SECCOMP_PID_WIDTH)
                for k in at..<i + key.count { bytes[k] = UInt8(ascii: " ") }
                offsets.append(at)
                i += key.count
            } else {
                i += 1
            }
        }
        return offsets
    }

    /// The program of docker's default profile for `capabilities`, cached
    /// as `name` (DefaultSeccomp.cacheName): the profile is made only when
    /// it is not there.
    init(defaultNamed name: String, capabilities: [String], cacheDirectory: String?) throws(GockerError) {
        guard name == DefaultSeccomp.cacheName(capabilities: capabilities) else {
            throw GockerError(.invalidConfig, "seccomp: \(name) is not this gocker's default profile for the container's capabilities")
        }
        (instructions, flags, notify, cacheFile) = try Self.compiled({ DefaultSeccomp.profile(capabilities: capabilities) },
                                                                     cacheDirectory: cacheDirectory, name: name)
    }

    /// A program without a listener, as `file` (a cache file) holds it.
    init?(file: [UInt8]) {
        guard let (instructions, flags, notify) = Self.decode(file), !notify else { return nil }
        self.instructions = instructions
        self.flags = flags
        self.notify = false
    }

    /// Changes with the way gocker turns a profile into rules: a program
    /// an older gocker compiled is not taken.
    static let cacheFormat = "gocker-seccomp-3"

    /// A cache file: 16 bytes of header (flags and notify; the number of
    /// instructions), then the program. Anything else (a file cut short) is
    /// not taken.
    static func encode(_ program: [UInt64], flags: UInt32, notify: Bool) -> [UInt8] {
        ([UInt64(flags) | (notify ? 1 << 32 : 0), UInt64(program.count)] + program).withUnsafeBytes { Array($0) }
    }

    static func decode(_ bytes: [UInt8]) -> ([UInt64], UInt32, Bool)? {
        guard bytes.count >= 16, bytes.count % 8 == 0 else { return nil }
        let words = bytes.withUnsafeBytes { raw in Array(raw.bindMemory(to: UInt64.self)) }
        guard words[1] == UInt64(words.count - 2) else { return nil }
        return (Array(words.dropFirst(2)), UInt32(truncatingIfNeeded: words[0]), words[0] >> 32 != 0)
    }

    /// The program, from the cache when one was made for the same profile,
    /// architecture, libseccomp and cache format; and the cache's file.
    static func compiled(_ profile: () -> Spec.Seccomp, cacheDirectory: String?,
                         name: String? = nil) throws(GockerError) -> ([UInt64], UInt32, Bool, String?) {
        var key: String?
        if let cacheDirectory {
            if let name, (try? Identifier.validateName(name)) != nil {
                key = "\(cacheDirectory)/\(name)-\(cacheFormat)-\(String(cString: gk_seccomp_version())).bpf"
            } else {
                var h = SHA256()
                h.update(KeyBytes(profile()).bytes)
                key = "\(cacheDirectory)/\(h.finalize().hex).bpf"
            }
        }
        if let key, let bytes = try? Sys.readFile(key), let (program, flags, notify) = decode(bytes) {
            return (program, flags, notify, key)
        }
        let (program, flags, notify) = try compile(profile())
        var cached: String?
        if let key {
            let bytes = encode(program, flags: flags, notify: notify)
            // A cache that cannot be written is only slower.
            if (try? Sys.writeFileAtomic(key, bytes, mode: 0o600)) != nil {
                cached = key
            } else if let dir = cacheDirectory, (try? Sys.mkdirAll(dir, mode: 0o700)) != nil,
                      (try? Sys.writeFileAtomic(key, bytes, mode: 0o600)) != nil {
                cached = key
            }
        }
        return (program, flags, notify, cached)
    }

    /// What a program is made from: the cache format, libseccomp, the
    /// machine and every field of the profile but where its listener is and
    /// what that is told; each string and list with its length first and
    /// each optional marked, so that no two profiles give the same bytes.
    struct KeyBytes {
        var bytes: [UInt8] = []

        init(_ p: Spec.Seccomp) {
            bytes.reserveCapacity(8192)
            string(cacheFormat)
            string(String(cString: gk_seccomp_version()))
            string(machine)
            string(p.defaultAction)
            number(p.defaultErrnoRet.map(UInt64.init))
            strings(p.architectures)
            strings(p.flags)
            number((p.syscalls?.count).map(UInt64.init))
            for rule in p.syscalls ?? [] {
                strings(rule.names)
                string(rule.action)
                number(rule.errnoRet.map(UInt64.init))
                number((rule.args?.count).map(UInt64.init))
                for a in rule.args ?? [] {
                    number(UInt64(a.index))
                    number(a.value)
                    number(a.valueTwo)
                    string(a.op)
                }
            }
        }

        mutating func word(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

        mutating func number(_ v: UInt64?) {
            word(v == nil ? 0 : 1)
            if let v { word(v) }
        }

        mutating func string(_ s: String) {
            word(UInt64(s.utf8.count))
            bytes.append(contentsOf: s.utf8)
        }

        mutating func strings(_ list: [String]?) {
            number((list?.count).map(UInt64.init))
            for s in list ?? [] { string(s) }
        }
    }

    /// `profile` compiled by libseccomp, as a search tree unless `plain`
    /// (see gk_seccomp_tree).
    static func compile(_ profile: Spec.Seccomp, plain: Bool = false) throws(GockerError) -> ([UInt64], UInt32, Bool) {
        let arena = CArena()
        let rules: [gk_seccomp_rule] = (profile.syscalls ?? []).map { s in
            let args: [gk_seccomp_arg] = (s.args ?? []).map { a in
                gk_seccomp_arg(index: a.index, op: arena.string(a.op), value: a.value, value_two: a.valueTwo ?? 0)
            }
            return gk_seccomp_rule(names: arena.stringArray(s.names), nnames: s.names.count, action: arena.string(s.action),
                                   errno_ret: s.errnoRet.map(Int64.init) ?? -1, args: arena.array(args), nargs: args.count)
        }
        var p = gk_seccomp_profile()
        p.default_action = arena.string(profile.defaultAction)
        p.default_errno_ret = profile.defaultErrnoRet.map(Int64.init) ?? -1
        p.arches = arena.stringArray(profile.architectures ?? [])
        p.narches = profile.architectures?.count ?? 0
        p.flags = arena.stringArray(profile.flags ?? [])
        p.nflags = profile.flags?.count ?? 0
        p.rules = arena.array(rules)
        p.nrules = rules.count
        p.plain = plain ? 1 : 0
        var out = gk_seccomp_filter()
        var what = [CChar](repeating: 0, count: 256)
        let r = gk_seccomp_compile(&p, &out, &what, what.count)
        withExtendedLifetime(arena) {}
        if r < 0 {
            let text = String(decoding: what.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw GockerError(.invalidConfig, "seccomp: \(text)", cause: SystemCallError("seccomp", errno: -r))
        }
        defer { gk_seccomp_free(&out) }
        let program = Array(UnsafeBufferPointer(start: out.program!.assumingMemoryBound(to: UInt64.self), count: out.len))
        return (program, out.flags, out.notify != 0)
    }

    /// The names under a container's state directory of what `exec` loads:
    /// the program (no listener), or the profile (with one).
    static let programFile = StateStore.seccompProgramFile
    static let profileFile = StateStore.seccompProfileFile

    /// Keeps the container's filter in its state directory `dir` for
    /// `exec`, which must not take a later edit of the bundle's config: a
    /// hard link to the cache's file where there is one (no data written),
    /// else the program; with a listener, the profile itself (exec sends
    /// its own listener there).
    func keep(in dir: String, profile: Spec.Seccomp?) throws(GockerError) {
        try performing("keep the seccomp filter") { () throws(SystemCallError) in
            if notify, let profile {
                try Sys.writeFileAtomic("\(dir)/\(Self.profileFile)", Spec(linux: Spec.Linux(seccomp: profile)).jsonBytes, mode: 0o600)
                return
            }
            let path = "\(dir)/\(Self.programFile)"
            if let cacheFile, link(cacheFile, path) == 0 { return }
            try Sys.writeFileAtomic(path, Self.encode(instructions, flags: flags, notify: false), mode: 0o600)
        }
    }

    /// The filter `keep` left in `dir`, nil when the container has none.
    static func kept(in dir: String, id: String, bundle: String, annotations: [String: String]?,
                     cacheDirectory: String?) throws(GockerError) -> SeccompProgram? {
        if let bytes = try? Sys.readFile("\(dir)/\(programFile)") {
            guard let program = SeccompProgram(file: bytes) else {
                throw GockerError(.system, "read the seccomp filter of \(id): \(dir)/\(programFile) is damaged")
            }
            return program
        }
        guard Sys.exists("\(dir)/\(profileFile)") else { return nil }
        guard let profile = try Spec.decodeFile(path: "\(dir)/\(profileFile)").linux?.seccomp else { return nil }
        return try SeccompProgram(profile, id: id, bundle: bundle, annotations: annotations, status: .running,
                                  cacheDirectory: cacheDirectory)
    }

    public static let machine: String = {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }()

    /// Puts the program into `spec`; with a listener, connects to it and
    /// returns the socket, which the caller closes once the child has it.
    func attach(to spec: inout gk_spawn, arena: CArena) throws(GockerError) -> Int32? {
        let program = arena.array(instructions)
        spec.seccomp_program = UnsafeRawPointer(program)
        spec.seccomp_len = instructions.count
        spec.seccomp_early = gk_seccomp_early(program, instructions.count)
        spec.seccomp_flags = flags
        guard notify, let listenerPath else { return nil }
        let fd = gk_connect_unix(listenerPath)
        if fd < 0 {
            throw GockerError(.system, "send the seccomp listener", cause: SystemCallError("connect", path: listenerPath, errno: -fd))
        }
        let text = arena.array(of: CChar.self, count: state.count + 1)
        for (i, b) in state.enumerated() { text[i] = CChar(bitPattern: b) }
        spec.seccomp_listener = fd
        spec.seccomp_state = UnsafePointer(text)
        spec.seccomp_state_len = state.count
        spec.seccomp_pid_at = (pidOffsets[0], pidOffsets[1])
        return fd
    }
}
