import Glibc
import GockerCore
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
