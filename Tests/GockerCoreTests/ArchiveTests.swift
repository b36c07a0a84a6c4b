import Foundation
import Glibc
import Testing
@testable import GockerCore

/// Builds tarballs with python3's tarfile from a list of entries, so that
/// the archives under test come from an independent writer.
enum TarMaker {
    struct Entry: Encodable {
        var name: String
        var type = "file"  // file, dir, symlink, link, fifo, char
        var data = ""
        var linkname = ""
        var mode = 0o644
        var uid = 0
        var gid = 0
        var mtime = 1_000_000_000
    }

    static let script = #"""
    import io, json, sys, tarfile
    spec = json.load(open(sys.argv[1]))
    mode = {"none": "w", "gz": "w:gz", "xz": "w:xz"}[spec["compression"]]
    fmt = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}[spec["format"]]
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "link": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE}
    with tarfile.open(sys.argv[2], mode, format=fmt) as t:
        for e in spec["entries"]:
            ti = tarfile.TarInfo(e["name"])
            ti.type = types[e["type"]]
            ti.mode, ti.uid, ti.gid, ti.mtime = e["mode"], e["uid"], e["gid"], e["mtime"]
            ti.linkname = e["linkname"]
            data = e["data"].encode()
            ti.size = len(data) if e["type"] == "file" else 0
            t.addfile(ti, io.BytesIO(data) if e["type"] == "file" else None)
    """#

    /// Writes the tarball and returns its path.
    static func make(_ entries: [Entry], in dir: String, name: String = "t.tar", format: String = "pax",
                     compression: String = "none") throws -> String {
        struct Spec: Encodable { let entries: [Entry]; let format: String; let compression: String }
        let specPath = dir + "/\(name).json", scriptPath = dir + "/maketar.py", out = dir + "/" + name
        try JSONEncoder().encode(Spec(entries: entries, format: format, compression: compression))
            .write(to: URL(fileURLWithPath: specPath))
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [scriptPath, specPath, out]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw POSIXError(.EIO) }
        return out
    }
}

/// A temporary directory removed at the end of the test.
final class TempDir {
    let path: String
    init() throws {
        var template = Array("/tmp/gocker-unit-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw POSIXError(.EIO) }
        path = String(cString: p)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func readAll(_ path: String) throws -> [(TarEntry, String)] {
    let reader = TarReader(try FileSource(path: path).decompressed())
    var out: [(TarEntry, String)] = []
    var buf = [UInt8](repeating: 0, count: 7)  // small, to cross chunk boundaries
    while let e = try reader.next() {
        var content: [UInt8] = []
        while true {
            let n = try buf.withUnsafeMutableBytes { try reader.readContent(into: $0) }
            if n == 0 { break }
            content += buf[0..<n]
        }
        out.append((e, String(decoding: content, as: UTF8.self)))
    }
    return out
}

struct TarReaderTests {
    static let longName = "deep/" + String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 90)
    static let longTarget = "/" + String(repeating: "t", count: 150)

    static let entries: [TarMaker.Entry] = [
        .init(name: "dir", type: "dir", mode: 0o750, uid: 1234, gid: 5678, mtime: 1_234_567_890),
        .init(name: "dir/file", data: "hello\n", mode: 0o4755, uid: 1000, gid: 100),
        .init(name: longName, data: String(repeating: "x", count: 1000)),
        .init(name: "link", type: "symlink", linkname: longTarget, mode: 0o777),
        .init(name: "hard", type: "link", linkname: "dir/file"),
        .init(name: "fifo", type: "fifo", mode: 0o600),
    ]

    @Test(arguments: ["pax", "gnu"])
    func longNamesAndFields(format: String) throws {
        let tmp = try TempDir()
        let got = try readAll(try TarMaker.make(Self.entries, in: tmp.path, format: format))
        // python's tarfile writes directories with a trailing slash.
        #expect(got.map(\.0.name) == ["dir/"] + Self.entries.dropFirst().map(\.name))
        #expect(got.map(\.0.kind) == [.directory, .file, .file, .symlink, .hardLink, .fifo])
        #expect(got[0].0.mode == 0o750 && got[0].0.uid == 1234 && got[0].0.gid == 5678)
        #expect(got[0].0.mtime.seconds == 1_234_567_890)
        #expect(got[1].0.mode == 0o4755 && got[1].0.size == 6 && got[1].1 == "hello\n")
        #expect(got[2].1 == String(repeating: "x", count: 1000))
        #expect(got[3].0.linkName == Self.longTarget)
        #expect(got[4].0.linkName == "dir/file")
    }

    @Test func paxOverridesSizeUidAndFractionalMtime() throws {
        let tmp = try TempDir()
        // A large uid does not fit the octal field: python writes it in pax.
        let path = try TarMaker.make([.init(name: "f", data: "abc", uid: 0o77777777 + 1, mtime: 1_700_000_000)],
                                     in: tmp.path, format: "pax")
        let got = try readAll(path)
        #expect(got.count == 1 && got[0].0.uid == 0o77777777 + 1 && got[0].1 == "abc")
    }

    @Test func compressionIsToldByMagicBytesNotByName() throws {
        #expect(try Compression.detect([0x1f, 0x8b, 8, 0, 0, 0]) == .gzip)
        #expect(try Compression.detect([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) == .xz)
        #expect(try Compression.detect(Array("ustar".utf8)) == .none)
        #expect(try Compression.detect([]) == .none)
        #expect(throws: GockerError.self) { try Compression.detect(Array("BZh91AY".utf8)) }
        #expect(throws: GockerError.self) { try Compression.detect([0x28, 0xb5, 0x2f, 0xfd, 0, 0]) }

        let tmp = try TempDir()
        let plain = try TarMaker.make(Self.entries, in: tmp.path, name: "a.tar")
        // Misleading names: the content decides.
        let gz = try TarMaker.make(Self.entries, in: tmp.path, name: "b.tar", compression: "gz")
        let xz = try TarMaker.make(Self.entries, in: tmp.path, name: "c.tgz", compression: "xz")
        // A gzip file is inflated whole (libdeflate); the same bytes from a
        // pipe stream through zlib.
        #expect(try FileSource(path: gz).decompressed() is InflatedSource)
        let piped = FileSource(descriptor: try Self.pipe(from: gz), name: "pipe")
        #expect(try piped.decompressed() is GzipSource)
        #expect(try FileSource(path: xz).decompressed() is XZSource)
        let expected = try readAll(plain).map { "\($0.0.name) \($0.1)" }
        #expect(try readAll(gz).map { "\($0.0.name) \($0.1)" } == expected)
        #expect(try readAll(xz).map { "\($0.0.name) \($0.1)" } == expected)
    }

    /// A pipe whose other end a thread fills with `path`'s bytes.
    static func pipe(from path: String) throws -> Int32 {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw GockerError(.system, "pipe") }
        let bytes = try Sys.readFile(path)
        let writer = fds[1]
        Thread.detachNewThread {
            _ = bytes.withUnsafeBytes { Glibc.write(writer, $0.baseAddress, $0.count) }
            Glibc.close(writer)
        }
        return fds[0]
    }

    @Test func wholeGzipFilesInflateAsZlibsStreamDoes() throws {
        let tmp = try TempDir()
        let gz = try TarMaker.make(Self.entries, in: tmp.path, name: "one.tar", compression: "gz")
        let plain = try TarMaker.make(Self.entries, in: tmp.path, name: "plain.tar")
        let content = try Sys.readFile(plain)
        /// All of a source, read in pieces of `piece` bytes.
        func drain(_ source: any ByteSource, piece: Int = 1 << 16) throws -> [UInt8] {
            var out: [UInt8] = []
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: 8)
            defer { chunk.deallocate() }
            while case let n = try source.read(into: chunk), n > 0 { out += chunk[0..<n] }
            return out
        }
        do {
            // Released at the end of the block: its memory goes back to the pool.
            let whole = try FileSource(path: gz).decompressed()
            #expect(whole is InflatedSource)
            #expect(try drain(whole, piece: 1000) == content)
        }

        // A larger one after it: the memory the first was inflated into is
        // grown for it (unless a test beside this one took it first), and the
        // content is whole.
        let large = try TarMaker.make(Self.entries + [.init(name: "more", data: String(repeating: "m", count: 3 << 20))],
                                      in: tmp.path, name: "large.tar", compression: "gz")
        let largePlain = try TarMaker.make(Self.entries + [.init(name: "more", data: String(repeating: "m", count: 3 << 20))],
                                           in: tmp.path, name: "largePlain.tar")
        do {
            let grown = try FileSource(path: large).decompressed()
            #expect(grown is InflatedSource)
            #expect(try drain(grown) == (try Sys.readFile(largePlain)))
        }

        // Two members (gzip a; gzip b; cat): zlib's stream reads both.
        let twice = tmp.path + "/two.gz"
        try Sys.writeFileAtomic(twice, try Sys.readFile(gz) + Sys.readFile(gz))
        let two = try FileSource(path: twice).decompressed()
        #expect(two is GzipSource)
        #expect(try drain(two) == content + content)

        // A damaged one: zlib's stream, and its error.
        var bad = try Sys.readFile(gz)
        bad[bad.count / 2] ^= 0xff
        let broken = tmp.path + "/bad.gz"
        try Sys.writeFileAtomic(broken, bad)
        let damaged = try FileSource(path: broken).decompressed()
        #expect(damaged is GzipSource)
        #expect(throws: GockerError.self) { _ = try drain(damaged) }
    }

    @Test func digestIsTheSHA256OfTheUncompressedStream() throws {
        let tmp = try TempDir()
        let plain = try TarMaker.make(Self.entries, in: tmp.path, name: "a.tar")
        let xz = try TarMaker.make(Self.entries, in: tmp.path, name: "a.tar.xz", compression: "xz")
        let expected = SHA256.hash(try Sys.readFile(plain)).hex
        for path in [plain, xz] {
            let reader = TarReader(try FileSource(path: path).decompressed())
            while try reader.next() != nil {}
            #expect(try reader.finish().hex == expected)
        }
    }

    @Test func badArchivesAreRefused() throws {
        let tmp = try TempDir()
        let text = tmp.path + "/text"
        try String(repeating: "not a tar archive\n", count: 40).write(toFile: text, atomically: true, encoding: .utf8)
        #expect { try readAll(text) } throws: { "\($0)".contains("not a tar archive") }
        let good = try Sys.readFile(try TarMaker.make(Self.entries, in: tmp.path))
        let truncated = tmp.path + "/truncated"
        try Data(good.prefix(1024 + 100)).write(to: URL(fileURLWithPath: truncated))
        #expect { try readAll(truncated) } throws: { "\($0)".contains("unexpected end of archive") }
        let badGzip = tmp.path + "/bad.gz"
        try Data([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).write(to: URL(fileURLWithPath: badGzip))
        #expect { try readAll(badGzip) } throws: { "\($0)".contains("gzip") }
    }
}

struct LayerWriterTests {
    @Test func namesAreNormalisedOrRefused() throws {
        #expect(try LayerWriter.components(of: "./a/./b/") == ["a", "b"])
        #expect(try LayerWriter.components(of: "./") == [])
        #expect(try LayerWriter.components(of: "a//b") == ["a", "b"])
        for bad in ["../escape", "a/../../b", "a/..", "/abs/file", "/"] {
            #expect { try LayerWriter.components(of: bad) } throws: { "\($0)".contains("escapes the layer") }
        }
    }

    typealias E = TarMaker.Entry

    /// Each tarball must be refused naming the entry, leaving nothing in the
    /// store and writing nothing outside it.
    static let malicious: [(String, [E], String)] = [
        ("dotdot", [E(name: "ok", data: "x"), E(name: "../escape-gocker-test", data: "x")], "\"../escape-gocker-test\": path escapes the layer"),
        ("absolute", [E(name: "/tmp/gocker-test-abs/file", data: "x")], "\"/tmp/gocker-test-abs/file\": path escapes the layer"),
        ("through-symlink", [E(name: "etc", type: "symlink", linkname: "/tmp/gocker-test-x"),
                             E(name: "etc/file", data: "x")], "\"etc/file\": path goes through the symlink \"etc\""),
        ("through-relative-symlink", [E(name: "d", type: "dir", mode: 0o755), E(name: "d/up", type: "symlink", linkname: ".."),
                                      E(name: "d/up/x", data: "x")], "\"d/up/x\": path goes through the symlink \"d/up\""),
        ("hardlink-absolute", [E(name: "shadow", type: "link", linkname: "/etc/shadow")], "\"shadow\": hard link target \"/etc/shadow\" is outside the layer"),
        ("hardlink-dotdot", [E(name: "shadow", type: "link", linkname: "../../../../etc/shadow")], "\"shadow\": hard link target"),
        ("hardlink-through-symlink", [E(name: "e", type: "symlink", linkname: "/etc"), E(name: "shadow", type: "link", linkname: "e/shadow")],
         "\"shadow\": path goes through the symlink \"e\""),
        ("through-climbing-symlink", [E(name: "a", type: "dir", mode: 0o755), E(name: "a/l", type: "symlink", linkname: "../../../tmp"),
                                      E(name: "a/l/gocker-test-climb", data: "x")], "\"a/l/gocker-test-climb\": path goes through the symlink \"a/l\""),
    ]

    @Test(arguments: malicious.indices)
    func escapesAreRefusedAndNothingIsLeft(_ i: Int) throws {
        let (name, entries, message) = Self.malicious[i]
        let tmp = try TempDir()
        let tar = try TarMaker.make(entries, in: tmp.path, name: name + ".tar")
        let store = ImageStore(dataRoot: tmp.path + "/data")
        #expect(throws: GockerError.self) {
            _ = try store.importArchive(from: try FileSource(path: tar), tag: try ImageReference(parsing: "evil:1"))
        }
        do {
            _ = try store.importArchive(from: try FileSource(path: tar), tag: nil)
        } catch {
            #expect(error.description.hasPrefix("import: entry "), "\(error)")
            #expect(error.description.contains(message), "\(error)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/layers") == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/images") == [])
        #expect(try store.repositories() == [:])
        for outside in [tmp.path + "/data/escape-gocker-test", tmp.path + "/data/image/escape-gocker-test",
                        store.root + "/layers/escape-gocker-test", "/tmp/gocker-test-abs", "/tmp/gocker-test-x"] {
            #expect(!FileManager.default.fileExists(atPath: outside), "\(outside)")
        }
    }

    /// Relative links that climb above the root, as real images carry
    /// them: kept as written, never followed while extracting.
    @Test func climbingSymlinksAreKeptAsWritten() throws {
        let tmp = try TempDir()
        let tar = try TarMaker.make([
            E(name: "var", type: "dir", mode: 0o755), E(name: "var/lib", type: "dir", mode: 0o755),
            E(name: "var/lib/data2", type: "symlink", linkname: "../../../../../../tmp"),
            E(name: "up", type: "symlink", linkname: ".."),
        ], in: tmp.path)
        let store = ImageStore(dataRoot: tmp.path + "/data")
        let image = try store.importArchive(from: try FileSource(path: tar), tag: nil)
        let layer = store.layerPath(image.layers[0])
        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: layer + "/var/lib/data2") == "../../../../../../tmp")
        #expect(try fm.destinationOfSymbolicLink(atPath: layer + "/up") == "..")
    }

    @Test func whiteoutsAreSkippedAndLaterEntriesReplaceEarlierOnes() throws {
        let tmp = try TempDir()
        let tar = try TarMaker.make([
            E(name: "a/.wh.gone", data: ""), E(name: ".wh..wh..opq", data: ""),
            E(name: "x", type: "dir", mode: 0o755), E(name: "x/inner", data: "1"),
            E(name: "x", data: "now a file"), E(name: "f", data: "old"), E(name: "f", data: "new"),
            E(name: "ro", type: "dir", mode: 0o500), E(name: "ro/file", data: "inside a read-only directory"),
        ], in: tmp.path)
        let store = ImageStore(dataRoot: tmp.path + "/data")
        let image = try store.importArchive(from: try FileSource(path: tar), tag: nil)
        let layer = store.layerPath(image.layers[0])
        #expect(try FileManager.default.contentsOfDirectory(atPath: layer).sorted() == ["f", "ro", "x"])
        #expect(try String(contentsOfFile: layer + "/x", encoding: .utf8) == "now a file")
        #expect(try String(contentsOfFile: layer + "/f", encoding: .utf8) == "new")
        var st = stat()
        #expect(stat(layer + "/ro", &st) == 0 && st.st_mode & 0o7777 == 0o500)
        #expect(stat(layer, &st) == 0 && st.st_mode & 0o7777 == 0o755)
        // The same content again is the same layer, in an image of its own
        // (named by its config, which says when it was made, as docker's).
        let again = try store.importArchive(from: try FileSource(path: tar), tag: try ImageReference(parsing: "again"))
        #expect(again.layers == image.layers && again.id != image.id)
        #expect(SHA256.hash(try Sys.readFile(store.root + "/images/\(again.id).config")).hex == again.id)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/layers") == [image.layers[0]])
        _ = chmod(layer + "/ro", 0o700)  // so that a non-root run can clean up
    }
}

struct ImageStoreTests {
    func store(_ tmp: TempDir, layers: [String]) throws -> ImageStore {
        let store = ImageStore(dataRoot: tmp.path + "/data")
        for l in layers { try Sys.mkdirAll(store.layerPath(l)) }
        return store
    }

    @Test func rmiUntagsThenDeletesAndCollectsLayers() throws {
        let tmp = try TempDir()
        let s = try store(tmp, layers: ["l1", "l2"])
        let a = try s.locked { () throws(GockerError) in
            try s.add(layers: ["l1"], config: ImageConfig(Cmd: ["sh"]), tag: try ImageReference(parsing: "a"))
        }
        try s.tag("a", as: "a:two")
        try s.locked { () throws(GockerError) in
            _ = try s.add(layers: ["l2"], config: ImageConfig(), tag: try ImageReference(parsing: "b"))
        }
        #expect(try s.rows().map { "\($0.repository):\($0.tag)" }.sorted() == ["a:latest", "a:two", "b:latest"])
        // By id with two tags: refused unless forced.
        #expect { try s.remove(String(a.id.prefix(8)), force: false, usage: .init()) } throws: {
            "\($0)".contains("referenced in multiple repositories")
        }
        #expect(try s.remove("a", force: false, usage: .init()) == ["Untagged: a:latest"])
        // The last tag takes the image; its layer goes when nothing uses it.
        let users = ImageStore.ContainerUsage(containers: [.init(id: String(repeating: "c", count: 64), imageID: a.id, running: false)])
        #expect { try s.remove("a:two", force: false, usage: users) } throws: { "\($0)".contains("must force") }
        let running = ImageStore.ContainerUsage(containers: [.init(id: "r", imageID: a.id, running: true)])
        #expect { try s.remove("a:two", force: true, usage: running) } throws: { "\($0)".contains("cannot be forced") }
        #expect(try s.remove("a:two", force: true, usage: users) == ["Untagged: a:two", "Deleted: sha256:\(a.id)"])
        #expect(try s.removeUnusedLayers(heldByContainers: ["l1"]) == [])
        #expect(try s.removeUnusedLayers(heldByContainers: []) == ["l1"])
        #expect(!FileManager.default.fileExists(atPath: s.layerPath("l1")))
        #expect(FileManager.default.fileExists(atPath: s.layerPath("l2")))
        #expect { try s.remove("nope", force: false, usage: .init()) } throws: { "\($0)" == "No such image: nope:latest" }
    }

    @Test func anImageOthersAreBuiltOnIsNotRemovedEvenForced() throws {
        let tmp = try TempDir()
        let s = try store(tmp, layers: ["base", "top"])
        try s.locked { () throws(GockerError) in
            try s.add(layers: ["base"], config: ImageConfig(), tag: try ImageReference(parsing: "base"))
            try s.add(layers: ["base", "top"], config: ImageConfig(), tag: try ImageReference(parsing: "child"))
        }
        for force in [false, true] {
            #expect { try s.remove("base", force: force, usage: .init()) } throws: { "\($0)".contains("dependent child images") }
        }
        _ = try s.remove("child", force: false, usage: .init())
        _ = try s.remove("base", force: false, usage: .init())
        #expect(try s.removeUnusedLayers(heldByContainers: []) == ["base", "top"])
    }

    @Test func changesInDockerfileSyntax() throws {
        var c = ImageConfig()
        try c.apply(change: #"CMD ["sh", "-c", "echo hi"]"#)
        try c.apply(change: "ENTRYPOINT /bin/app --flag")
        try c.apply(change: #"ENV A=1 B="two words""#)
        try c.apply(change: "env C three four")
        try c.apply(change: "ENV A=replaced")
        try c.apply(change: "WORKDIR /srv")
        try c.apply(change: "WORKDIR app")
        try c.apply(change: "USER 1000:1000")
        #expect(c.Cmd == ["sh", "-c", "echo hi"])
        #expect(c.Entrypoint == ["/bin/sh", "-c", "/bin/app --flag"])
        #expect(c.Env == ["B=two words", "C=three four", "A=replaced"])
        #expect(c.WorkingDir == "/srv/app" && c.User == "1000:1000")
        for bad in ["RUN rm -rf /", "CMD [\"unterminated\"", "ENV", "ENV =x", "WORKDIR"] {
            #expect(throws: GockerError.self) { try c.apply(change: bad) }
        }
    }
}

struct HumanUnitsTests {
    @Test func sizesAsDockerPrintsThem() {
        #expect(HumanUnits.size(0) == "0B")
        #expect(HumanUnits.size(999) == "999B")
        #expect(HumanUnits.size(12_345) == "12.3kB")
        #expect(HumanUnits.size(4_300_000) == "4.3MB")
        #expect(HumanUnits.size(1_985_589) == "1.99MB")
        #expect(HumanUnits.size(2_000_000_000) == "2GB")
    }

    @Test func durationsAsDockerPrintsThem() {
        #expect(HumanUnits.duration(seconds: 0.5) == "Less than a second")
        #expect(HumanUnits.duration(seconds: 1) == "1 second")
        #expect(HumanUnits.duration(seconds: 59) == "59 seconds")
        #expect(HumanUnits.duration(seconds: 90) == "About a minute")
        #expect(HumanUnits.duration(seconds: 150) == "2 minutes")
        #expect(HumanUnits.duration(seconds: 3600) == "About an hour")
        #expect(HumanUnits.duration(seconds: 5 * 3600) == "5 hours")
        #expect(HumanUnits.duration(seconds: 3 * 86400) == "3 days")
        #expect(HumanUnits.duration(seconds: 20 * 86400) == "2 weeks")
    }

    @Test func timestampsRoundTrip() throws {
        let t = try #require(Timestamp.parse(Timestamp.format(seconds: 1_700_000_000, nanoseconds: 250_000_000)))
        #expect(abs(t - 1_700_000_000.25) < 1e-6)
    }
}

/// The output of a shell pipeline (the standard tools as the reference).
func shell(_ command: String) throws -> String {
    let r = try shellData(command)
    guard r.status == 0 else { throw POSIXError(.EIO) }
    return String(decoding: r.output, as: UTF8.self)
}

/// `sha256sum`'s hex digest of what `command` writes.
func sha256sum(of command: String) throws -> String {
    String(try shell("\(command) | sha256sum").prefix(64))
}

struct ImportTests {
    /// Larger than the reader's buffer, so that content crosses its refills.
    static let entries: [TarMaker.Entry] = [
        .init(name: "etc", type: "dir", mode: 0o755),
        .init(name: "etc/big", data: String(repeating: "0123456789abcdef", count: 200_000) + "tail"),
        .init(name: "etc/small", data: "hello\n"),
        .init(name: "lib/x/y/z", data: String(repeating: "z", count: 1_500_001)),
        .init(name: "etc/link", type: "symlink", linkname: "small"),
    ]

    @Test(arguments: [("none", "cat"), ("gz", "gzip -dc"), ("xz", "xz -dc")])
    func layerIDIsSha256sumOfTheUncompressedStream(compression: String, decompress: String) throws {
        let tmp = try TempDir()
        let tarball = try TarMaker.make(Self.entries, in: tmp.path, name: "in", compression: compression)
        let store = ImageStore(dataRoot: tmp.path + "/data")
        let image = try store.importArchive(from: try FileSource(path: tarball), tag: nil)
        let id = try #require(image.layers.first)
        #expect(id == (try sha256sum(of: "\(decompress) \(tarball)")))
        // The layer holds the files, content whole.
        #expect(try shell("cat \(store.layerPath(id))/etc/big") == String(repeating: "0123456789abcdef", count: 200_000) + "tail")
        #expect(try shell("wc -c < \(store.layerPath(id))/lib/x/y/z") == "1500001\n")
        #expect(try shell("readlink \(store.layerPath(id))/etc/link") == "small\n")

        // The kept archive: a gzip input as it is, any other as its plain stream.
        let archive = try #require(try store.layerArchive(id))
        let path = store.archivePath(id, gzip: archive.isGzip)
        let kept = try sha256sum(of: "cat \(path)")
        #expect(archive.digest == "sha256:" + kept)
        #expect(archive.size == Int64(try shell("wc -c < \(path)").dropLast())!)
        if compression == "gz" {
            #expect(archive.mediaType == OCI.layerGzipType && path.hasSuffix(".tar.gz"))
            #expect(kept == (try sha256sum(of: "cat \(tarball)")))
        } else {
            #expect(archive.mediaType == ImageStore.LayerArchive.plainType && path.hasSuffix(".tar"))
            #expect(kept == id)
        }
        // Nothing temporary left beside them.
        let root = String(store.layerPath(id).dropLast(id.count + "/layers/".count))
        #expect(try shell("ls -A \(root)/archives").split(separator: "\n").sorted() == [Substring(id + ".json"), Substring(path.split(separator: "/").last!)].sorted())
        #expect(try shell("ls -A \(root)/layers") == id + "\n")
    }

    @Test func theSameLayerImportedTwiceIsSharedWithItsArchive() throws {
        let tmp = try TempDir()
        let plain = try TarMaker.make(Self.entries, in: tmp.path, name: "a")
        let gz = try TarMaker.make(Self.entries, in: tmp.path, name: "b", compression: "gz")
        let store = ImageStore(dataRoot: tmp.path + "/data")
        let a = try store.importArchive(from: try FileSource(path: plain), tag: nil)
        let b = try store.importArchive(from: try FileSource(path: gz), tag: nil)
        #expect(a.layers == b.layers)
        // The first archive stays; the second is not left beside it.
        let id = a.layers[0]
        #expect(try store.layerArchive(id)?.mediaType == ImageStore.LayerArchive.plainType)
        let root = String(store.layerPath(id).dropLast(id.count + "/layers/".count))
        #expect(try shell("ls -A \(root)/archives").split(separator: "\n").sorted() == [Substring(id + ".json"), Substring(id + ".tar")])
        // Its stream is the layer: what save hands on as it is.
        let kept = try #require(try store.layerArchive(id))
        #expect(store.archivePath(id).hasSuffix("/\(id).tar"))
        let size = Int64(try shell("wc -c < \(store.archivePath(id))").dropLast())
        #expect(kept.digest == "sha256:" + id)
        #expect(kept.size == size)
    }

    /// An image's size is counted while its layer is extracted, as a walk
    /// of the layer counts it (files, symlinks by their length, a hard-linked
    /// file once); an archive that replaces or removes a member of its own
    /// is walked instead.
    @Test(arguments: [
        ([TarMaker.Entry](), true),
        ([.init(name: "etc/small", data: "replaced, longer\n")], false),
        ([.init(name: "etc/.wh.small", data: "")], false),
        ([.init(name: "etc/.wh.nothing-here", data: "")], true),
    ])
    func theSizeCountedWhileExtractingIsTheWalks(more: [TarMaker.Entry], counted: Bool) throws {
        let tmp = try TempDir()
        let entries = Self.entries + [.init(name: "etc/hard", type: "link", linkname: "etc/big"),
                                      .init(name: "lib/abs", type: "symlink", linkname: "/usr/lib/somewhere/else")] + more
        let tarball = try TarMaker.make(entries, in: tmp.path, name: "in")
        let store = ImageStore(dataRoot: tmp.path + "/data")
        var layer = ""
        try store.storeLayer(from: try FileSource(path: tarball), whiteouts: .overlay) { id throws(GockerError) in layer = id }
        let walked = ImageStore.treeSize(store.layerPath(layer))
        #expect(walked == Int64(try shell("find \(store.layerPath(layer)) \\( -type f -o -type l \\) -links 1 -printf '%s\\n' "
                                          + "| awk '{s+=$1} END {print s+3200004}'").dropLast()))
        #expect(try store.layerArchive(layer)?.contentSize == (counted ? walked : nil))
        let image = try store.locked { () throws(GockerError) in
            try store.add(layers: [layer], config: ImageConfig(), tag: nil)
        }
        #expect(image.size == walked)
    }
}
