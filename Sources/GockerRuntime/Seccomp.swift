import CGockerCore
import Glibc
import GockerCore

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

    /// Compiles `profile`; `id`, `bundle`, `annotations` and `status` make
    /// the container process state a listener gets.
    public init(_ profile: Spec.Seccomp, id: String = "", bundle: String = "", annotations: [String: String]? = nil,
                status: ContainerStatus = .creating, cacheDirectory: String? = nil) throws(GockerError) {
        (instructions, flags, notify) = try Self.compiled(profile, cacheDirectory: cacheDirectory)
        guard notify else { return }
        guard let path = profile.listenerPath, !path.isEmpty else {
            throw GockerError(.invalidConfig, "seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
        }
        listenerPath = path
        // The runtime-spec's container process state.
        let marker = 9_999_999_999
        let inner = JSONWriter.object { w in
            w.field("annotations", annotations)
            w.field("bundle", bundle)
            w.field("id", id)
            w.field("ociVersion", Spec.version)
            w.field("pid", marker)
            w.field("status", status.rawValue)
        }
        state = JSONWriter.object { w in
            w.field("fds", ["seccompFd"])
            w.field("metadata", profile.listenerMetadata ?? "")
            w.field("ociVersion", Spec.version)
            w.field("pid", marker)
            w.field("state", object: inner)
        }.finished
        // `"pid":` after , or { is never inside a string (its quotes would
        // be escaped there).
        let key = Array(#""pid":\#(marker)"#.utf8)
        var i = 1
        while i + key.count <= state.count {
            if (state[i - 1] == UInt8(ascii: ",") || state[i - 1] == UInt8(ascii: "{")) && Array(state[i..<i + key.count]) == key {
                let at = i + key.count - Int(GK_SECCOMP_PID_WIDTH)
                for k in at..<i + key.count { state[k] = UInt8(ascii: " ") }
                pidOffsets.append(at)
                i += key.count
            } else {
                i += 1
            }
        }
        precondition(pidOffsets.count == 2)
    }

    /// The program, from the cache when one was made for the same profile,
    /// architecture and libseccomp.
    static func compiled(_ profile: Spec.Seccomp, cacheDirectory: String?) throws(GockerError) -> ([UInt64], UInt32, Bool) {
        var key: String?
        if let cacheDirectory {
            var h = SHA256()
            h.update(Array("\(String(cString: gk_seccomp_version()))\0\(Self.machine)\0".utf8))
            h.update(Spec(linux: Spec.Linux(seccomp: profile)).json)
            key = "\(cacheDirectory)/\(h.finalize().hex).bpf"
        }
        if let key, let bytes = try? Sys.readFile(key), bytes.count >= 8, bytes.count % 8 == 0 {
            // 8 bytes of header (flags, notify), then the program.
            let words = bytes.withUnsafeBytes { raw in Array(raw.bindMemory(to: UInt64.self)) }
            return (Array(words.dropFirst()), UInt32(truncatingIfNeeded: words[0]), words[0] >> 32 != 0)
        }
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
        if let key {
            let file = [UInt64(out.flags) | (out.notify != 0 ? 1 << 32 : 0)] + program
            let bytes = file.withUnsafeBytes { Array($0) }
            // A cache that cannot be written is only slower.
            if (try? Sys.writeFileAtomic(key, bytes, mode: 0o600)) == nil, let dir = cacheDirectory {
                if (try? Sys.mkdirAll(dir, mode: 0o700)) != nil { _ = try? Sys.writeFileAtomic(key, bytes, mode: 0o600) }
            }
        }
        return (program, out.flags, out.notify != 0)
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
        spec.seccomp_flags = flags
        guard notify, let listenerPath else { return nil }
        let fd = gk_seccomp_connect(listenerPath)
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
