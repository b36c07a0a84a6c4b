import Glibc
import GockerCore
import CGockerCore
import Testing
@testable import GockerRuntime

/// The compiled-program cache and what `create` keeps for `exec`, without
/// root: libseccomp compiles in the parent.
struct SeccompUnitTests {
    func tempDir() throws -> String {
        var template = Array("/tmp/gocker-seccomp-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw GockerError(.system, "mkdtemp") }
        return String(cString: p)
    }

    static let noMkdir = Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW",
                                      syscalls: [.init(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13)])

    @Test func theCacheServesWhatWasCompiledAndNotAFileCutShort() throws {
        let dir = try tempDir()
        defer { try? Sys.removeAll(dir) }
        let first = try SeccompProgram(Self.noMkdir, cacheDirectory: dir)
        let file = try #require(first.cacheFile)
        #expect(first.instructions.count > 3)
        let again = try SeccompProgram(Self.noMkdir, cacheDirectory: dir)
        #expect(again.instructions == first.instructions && again.cacheFile == file)
        // A file cut short is compiled again (and written whole).
        let bytes = try Sys.readFile(file)
        try Sys.writeFileAtomic(file, bytes.dropLast(8))
        #expect(SeccompProgram.decode(try Sys.readFile(file)) == nil)
        let rebuilt = try SeccompProgram(Self.noMkdir, cacheDirectory: dir)
        #expect(rebuilt.instructions == first.instructions)
        #expect(try Sys.readFile(file) == bytes)
    }

    @Test func theCacheKeyTellsApartProfilesThatCouldReadAlike() {
        func key(_ p: Spec.Seccomp) -> [UInt8] { SeccompProgram.KeyBytes(p).bytes }
        let rule = Spec.Seccomp.Syscall.init(names:action:errnoRet:args:)
        let a = Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir", "rmdir"], "SCMP_ACT_ERRNO", nil, nil)])
        let variants = [
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdirrmdir"], "SCMP_ACT_ERRNO", nil, nil)]),
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir"], "SCMP_ACT_ERRNO", nil, nil),
                                                                   rule(["rmdir"], "SCMP_ACT_ERRNO", nil, nil)]),
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir", "rmdir"], "SCMP_ACT_ERRNO", 0, nil)]),
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir", "rmdir"], "SCMP_ACT_ERRNO", nil, [])]),
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", architectures: [], syscalls: [rule(["mkdir", "rmdir"], "SCMP_ACT_ERRNO", nil, nil)]),
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir", "rmdir"], "SCMP_ACT_ERRNO", nil,
                                                                        [.init(index: 0, value: 1, op: "SCMP_CMP_EQ")])]),
            Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: [rule(["mkdir", "rmdir"], "SCMP_ACT_ERRNO", nil,
                                                                        [.init(index: 0, value: 1, valueTwo: 0, op: "SCMP_CMP_EQ")])]),
        ]
        let keys = [key(a)] + variants.map(key)
        #expect(Set(keys).count == keys.count)
        // Where the listener is, and what it is told, make no other program.
        var heard = a
        heard.listenerPath = "/run/agent.sock"
        heard.listenerMetadata = "m"
        #expect(key(heard) == key(a))
    }

    /// A program of docker's profile is cached under its version, machine
    /// and the capabilities that change it: a change to the profile must
    /// raise the version (the digest below is of what version 1 makes, as
    /// JSON text with members sorted by name).
    @Test func theDefaultProfileIsWhatItsCacheNameSays() {
        var h = SHA256()
        for machine in ["x86_64", "aarch64", "s390x"] {
            for caps in [Capabilities.dockerDefault, Capabilities.all(), []] {
                let spec = Spec(linux: Spec.Linux(seccomp: DefaultSeccomp.profile(capabilities: caps, machine: machine)))
                var sorted = JSONText()
                (try? JSONValue.parse(spec.jsonBytes))?.write(to: &sorted)
                h.update(sorted.bytes)
            }
        }
        let digest = h.finalize().hex
        #expect(DefaultSeccomp.version == 1 && digest == "8f0b3bf6e9150375104f3dadded910297d06b5902bd76b403595875c91a8cdc6",
                "DefaultSeccomp's profile changed (\(digest)): raise DefaultSeccomp.version and pin the new digest here")
        let plain = DefaultSeccomp.cacheName(capabilities: Capabilities.dockerDefault, machine: "x86_64")
        #expect(plain == DefaultSeccomp.cacheName(capabilities: Capabilities.dockerDefault + ["CAP_NET_ADMIN"], machine: "x86_64"))
        #expect(plain != DefaultSeccomp.cacheName(capabilities: Capabilities.dockerDefault + ["CAP_SYS_ADMIN"], machine: "x86_64"))
        #expect(plain != DefaultSeccomp.cacheName(capabilities: Capabilities.dockerDefault.filter { $0 != "CAP_SYS_CHROOT" },
                                                  machine: "x86_64"))
        #expect(plain != DefaultSeccomp.cacheName(capabilities: Capabilities.dockerDefault, machine: "aarch64"))
    }

    /// `run` writes docker's profile into config.json as rendered once for
    /// the same cache name, and reads it back from there after.
    @Test func theDefaultProfileIsRenderedOnceAndReadBack() throws {
        let dir = try tempDir()
        defer { try? Sys.removeAll(dir) }
        let caps = Capabilities.dockerDefault
        let first = DefaultSeccomp.rendered(capabilities: caps, cacheDirectory: dir, machine: "x86_64")
        let config = dir + "/config.json"
        try Sys.writeFileAtomic(config, Spec(ociVersion: "1.0.2", linux: Spec.Linux()).json(seccomp: first))
        #expect(try Spec.decodeFile(path: config).linux?.seccomp == DefaultSeccomp.profile(capabilities: caps, machine: "x86_64"))
        let file = "\(dir)/\(DefaultSeccomp.cacheName(capabilities: caps, machine: "x86_64")).json"
        #expect(try Sys.readFile(file) == first)
        let planted = Array(#"{"defaultAction":"SCMP_ACT_LOG"}"#.utf8)
        try Sys.writeFileAtomic(file, planted)
        #expect(DefaultSeccomp.rendered(capabilities: caps, cacheDirectory: dir, machine: "x86_64") == planted)
        #expect(DefaultSeccomp.rendered(capabilities: caps + ["CAP_SYS_ADMIN"], cacheDirectory: dir, machine: "x86_64") != planted)
    }

    @Test func whatCreateKeepsIsWhatExecLoads() throws {
        let cache = try tempDir()
        let state = try tempDir()
        defer { try? Sys.removeAll(cache); try? Sys.removeAll(state) }
        #expect(try SeccompProgram.kept(in: state, id: "c", bundle: "/b", annotations: nil, cacheDirectory: cache) == nil)
        let program = try SeccompProgram(Self.noMkdir, cacheDirectory: cache)
        try program.keep(in: state, profile: Self.noMkdir)
        let kept = try #require(try SeccompProgram.kept(in: state, id: "c", bundle: "/b", annotations: nil, cacheDirectory: cache))
        #expect(kept.instructions == program.instructions && !kept.notify)

        // With a listener, the profile itself: exec sends its own listener.
        let state2 = try tempDir()
        defer { try? Sys.removeAll(state2) }
        var notifying = Self.noMkdir
        notifying.syscalls?.append(.init(names: ["getcwd"], action: "SCMP_ACT_NOTIFY"))
        notifying.listenerPath = "/run/agent.sock"
        notifying.listenerMetadata = "m"
        let n = try SeccompProgram(notifying, cacheDirectory: cache)
        try n.keep(in: state2, profile: notifying)
        let keptN = try #require(try SeccompProgram.kept(in: state2, id: "c", bundle: "/b", annotations: nil, cacheDirectory: cache))
        #expect(keptN.notify && keptN.listenerPath == "/run/agent.sock" && keptN.instructions == n.instructions)
    }
}

/// The search tree gocker loads (csrc/seccomp_tree.c) decides every call as
/// libseccomp's own program does: both run by an interpreter of classic BPF
/// of the test's own, on calls of every architecture, number and argument a
/// rule could tell apart; and the kernel takes the tree.
struct SeccompTreeTests {
    /// struct seccomp_data as 16 words: nr, arch, the instruction pointer's
    /// two halves, then each argument low half first.
    typealias Call = [UInt32]

    /// Classic BPF as seccomp runs it.
    static func run(_ program: [UInt64], _ data: Call) throws -> UInt32 {
        var a: UInt32 = 0
        var x: UInt32 = 0
        var m = [UInt32](repeating: 0, count: 16)
        var pc = 0
        while pc < program.count {
            let i = program[pc]
            let code = UInt16(truncatingIfNeeded: i)
            let jt = Int(UInt8(truncatingIfNeeded: i >> 16)), jf = Int(UInt8(truncatingIfNeeded: i >> 24))
            let k = UInt32(truncatingIfNeeded: i >> 32)
            pc += 1
            switch code & 0x07 {
            case 0x00 where code == 0x20: a = data[Int(k / 4)]  // ld [k]
            case 0x00 where code == 0x00: a = k                 // ld #k
            case 0x00 where code == 0x60: a = m[Int(k)]         // ld M[k]
            case 0x01 where code == 0x01: x = k                 // ldx #k
            case 0x01 where code == 0x61: x = m[Int(k)]         // ldx M[k]
            case 0x02: m[Int(k)] = a                            // st
            case 0x03: m[Int(k)] = x                            // stx
            case 0x04:                                          // alu
                let v = code & 0x08 != 0 ? x : k
                switch code & 0xf0 {
                case 0x00: a = a &+ v
                case 0x10: a = a &- v
                case 0x20: a = a &* v
                case 0x30: a = v == 0 ? 0 : a / v
                case 0x40: a |= v
                case 0x50: a &= v
                case 0x60: a = v >= 32 ? 0 : a << v
                case 0x70: a = v >= 32 ? 0 : a >> v
                case 0x80: a = 0 &- a
                case 0x90: a = v == 0 ? 0 : a % v
                case 0xa0: a ^= v
                default: throw GockerError(.system, "alu op \(code)")
                }
            case 0x05:                                          // jmp
                let v = code & 0x08 != 0 ? x : k
                let taken: Bool
                switch code & 0xf0 {
                case 0x00: pc += Int(k); continue
                case 0x10: taken = a == v
                case 0x20: taken = a > v
                case 0x30: taken = a >= v
                case 0x40: taken = a & v != 0
                default: throw GockerError(.system, "jmp op \(code)")
                }
                pc += taken ? jt : jf
            case 0x06: return code & 0x18 == 0x10 ? a : k       // ret
            case 0x07: if code & 0x80 != 0 { a = x } else { x = a }  // txa, tax
            default: throw GockerError(.system, "op \(code)")
            }
        }
        throw GockerError(.system, "ran off the end of the program")
    }

    /// A small, seeded generator: a failure names the seed that shows it.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
    }

    static let arches: [UInt32] = [0xc000_003e, 0x4000_0003, 0xc000_00b7, 0, 0xffff_ffff]

    /// Calls that tell the rules of `profile` apart: every number near a
    /// syscall's on each architecture, x32's too, any number, and arguments
    /// at, around and masked like the rules' values.
    static func calls(for profile: Spec.Seccomp, count: Int, _ r: inout Random) -> [Call] {
        var values: [UInt64] = [0, 1, UInt64.max, 1 << 32, 0x7fff_ffff]
        for a in (profile.syscalls ?? []).flatMap({ $0.args ?? [] }) {
            let two: UInt64 = a.valueTwo ?? 0
            values += [a.value, a.value &+ 1, a.value &- 1, two, two | a.value]
        }
        var out: [Call] = []
        for n in 0..<count {
            var d = [UInt32](repeating: 0, count: 16)
            let nr = UInt32(n % 640)
            switch r.below(8) {
            case 0: d[0] = UInt32(truncatingIfNeeded: r.next())
            case 1: d[0] = 0x4000_0000 | nr
            case 2: d[0] = 0xffff_ffff &- UInt32(r.below(3))
            default: d[0] = nr
            }
            d[1] = r.below(10) == 0 ? UInt32(truncatingIfNeeded: r.next()) : r.pick(arches)
            for arg in 0..<6 {
                let v = r.below(3) == 0 ? r.next() : r.pick(values)
                d[4 + 2 * arg] = UInt32(truncatingIfNeeded: v)
                d[5 + 2 * arg] = r.below(4) == 0 ? UInt32(truncatingIfNeeded: r.next()) : UInt32(truncatingIfNeeded: v >> 32)
            }
            out.append(d)
        }
        return out
    }

    static func expectSameFilter(_ profile: Spec.Seccomp, calls: Int, seed: UInt64) throws {
        let (plain, plainFlags, _) = try SeccompProgram.compile(profile, plain: true)
        let (tree, flags, _) = try SeccompProgram.compile(profile)
        #expect(flags == plainFlags)
        var r = Random(state: seed)
        var differ = 0
        for call in Self.calls(for: profile, count: calls, &r) {
            let want = try run(plain, call), got = try run(tree, call)
            if want != got {
                differ += 1
                if differ <= 3 { Issue.record("seed \(seed): call \(call.prefix(6)): libseccomp \(want), tree \(got)") }
            }
        }
        #expect(differ == 0, "seed \(seed)")
    }

    @Test func dockersProfileIsATreeOfAThirdTheLengthThatDecidesAsLibseccomp() throws {
        for caps in [Capabilities.dockerDefault, Capabilities.all()] {
            let profile = DefaultSeccomp.profile(capabilities: caps, machine: "x86_64")
            let (plain, _, _) = try SeccompProgram.compile(profile, plain: true)
            let (tree, _, _) = try SeccompProgram.compile(profile)
            #expect(tree.count * 2 < plain.count, "tree \(tree.count), libseccomp \(plain.count)")
            // The kernel takes it (and gocker used it: it is not libseccomp's).
            #expect(tree.withUnsafeBytes { gk_seccomp_try($0.baseAddress, tree.count) } == 0)
            try Self.expectSameFilter(profile, calls: 200_000, seed: 0x5eed)
        }
    }

    /// Loaded right after READY only when what the first process still
    /// makes before the exec FIFO (its exit on a failure too) gets through
    /// whatever the arguments.
    @Test func earlyOnlyWhenTheWaitGetsThrough() throws {
        func early(_ p: Spec.Seccomp) throws -> Bool {
            let (program, _, _) = try SeccompProgram.compile(p)
            return program.withUnsafeBytes { gk_seccomp_early($0.baseAddress, program.count) } == 1
        }
        #expect(try early(DefaultSeccomp.profile(capabilities: Capabilities.dockerDefault)))
        let allow = Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW")
        #expect(try early(allow))
        for name in ["exit_group", "openat", "recvfrom", "sendto", "prctl", "close"] {
            var p = allow
            p.syscalls = [.init(names: [name], action: "SCMP_ACT_ERRNO")]
            #expect(try !early(p), "\(name) refused")
        }
        var conditional = allow
        conditional.syscalls = [.init(names: ["prctl"], action: "SCMP_ACT_ERRNO", args: [.init(index: 0, value: 1, op: "SCMP_CMP_EQ")])]
        #expect(try !early(conditional))
    }

    @Test func randomProfilesDecideAsLibseccomp() throws {
        let names = DefaultSeccomp.allowed
        let actions = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG",
                       "SCMP_ACT_TRACE", "SCMP_ACT_KILL_THREAD"]
        let ops = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                   "SCMP_CMP_MASKED_EQ"]
        let archSets = [["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                        ["SCMP_ARCH_X86"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], []]
        var compiled = 0, trees = 0
        for seed in UInt64(1)...40 {
            var r = Random(state: seed &* 0x9e37_79b9_7f4a_7c15)
            func errno(_ action: String) -> UInt32? {
                action == "SCMP_ACT_ERRNO" || action == "SCMP_ACT_TRACE" ? UInt32(1 + r.below(200)) : nil
            }
            let def = r.pick(actions)
            var profile = Spec.Seccomp(defaultAction: def, defaultErrnoRet: errno(def), architectures: r.pick(archSets))
            var rules: [Spec.Seccomp.Syscall] = []
            for _ in 0..<(1 + r.below(60)) {
                let action = r.pick(actions.filter { $0 != def })
                var args: [Spec.Seccomp.Arg] = []
                var used = Set<UInt32>()
                for _ in 0..<(r.below(4) == 0 ? 1 + r.below(2) : 0) {
                    let index = UInt32(r.below(6))
                    guard used.insert(index).inserted else { continue }
                    let op = r.pick(ops)
                    let value = r.below(2) == 0 ? UInt64(r.below(64)) : r.next()
                    args.append(.init(index: index, value: value, valueTwo: op == "SCMP_CMP_MASKED_EQ" ? value | UInt64(r.below(256)) : nil, op: op))
                }
                let chosen = (0..<(1 + r.below(args.isEmpty ? 40 : 2))).map { _ in r.pick(names) }
                rules.append(.init(names: Array(Set(chosen)).sorted(), action: action, errnoRet: errno(action), args: args.isEmpty ? nil : args))
            }
            profile.syscalls = rules
            // libseccomp refuses some mixes (one call, two actions): those are
            // not what this test is about.
            guard (try? SeccompProgram.compile(profile, plain: true)) != nil else { continue }
            compiled += 1
            let (plain, _, _) = try SeccompProgram.compile(profile, plain: true)
            let (tree, _, _) = try SeccompProgram.compile(profile)
            if tree != plain { trees += 1 }
            #expect(tree.withUnsafeBytes { gk_seccomp_try($0.baseAddress, tree.count) } == 0, "seed \(seed)")
            try Self.expectSameFilter(profile, calls: 20_000, seed: seed)
        }
        #expect(compiled >= 20)
        #expect(trees * 4 >= compiled * 3, "\(trees) of \(compiled) as trees")
    }
}
