import CGockerCore
import Foundation
import Glibc
import Testing
@testable import GockerCore

/// Runs a tool and returns its standard output (fails the test on a non-zero exit).
private func tool(_ argv: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    try #require(p.terminationStatus == 0, "\(argv)", sourceLocation: sourceLocation)
    return String(decoding: out, as: UTF8.self)
}

private func entry(_ name: String, _ kind: TarEntry.Kind, mode: UInt32 = 0o644, uid: UInt32 = 0,
                   link: String = "", mtime: Int = 1_500_000_000) -> TarEntry {
    var e = TarEntry(name: name, kind: kind)
    e.mode = mode
    e.uid = uid
    e.linkName = link
    e.mtime = .init(seconds: mtime, nanoseconds: 0)
    return e
}

struct TarWriterTests {
    static let prefixName = String(repeating: "p", count: 120) + "/" + String(repeating: "n", count: 90)
    static let paxName = String(repeating: "q", count: 300)
    static let longTarget = "/" + String(repeating: "t", count: 150)

    /// Writes every kind of entry, long names and large ids included.
    func writeSample(_ path: String) throws -> (digest: [UInt8], count: Int64) {
        let sink = try FileSink(creating: path)
        let tar = TarWriter(sink)
        try tar.append(entry("dir", .directory, mode: 0o750, uid: 1234))
        try tar.append(entry("dir/file", .file, mode: 0o4755), content: Array("hello\n".utf8))
        try tar.append(entry(Self.prefixName, .file), content: [UInt8](repeating: 0x78, count: 1000))
        try tar.append(entry(Self.paxName, .file, uid: 0o7777777 + 5), content: Array("pax".utf8))
        try tar.append(entry("link", .symlink, mode: 0o777, link: Self.longTarget))
        try tar.append(entry("hard", .hardLink, link: "dir/file"))
        try tar.append(entry("fifo", .fifo, mode: 0o600))
        var dev = entry("null", .characterDevice, mode: 0o666)
        dev.deviceMajor = 1
        dev.deviceMinor = 3
        try tar.append(dev)
        try tar.append(entry("old", .file, mtime: -5))
        try tar.finish()
        return (SHA256.hash(try Sys.readFile(path)), tar.count)
    }

    @Test func whatItWritesReadsBackTheSame() throws {
        let tmp = try TempDir()
        let path = tmp.path + "/w.tar"
        let (digest, count) = try writeSample(path)
        let bytes = try Sys.readFile(path)
        #expect(Int64(bytes.count) == count && bytes.count % 512 == 0)
        _ = digest

        let got = try readAll(path)
        #expect(got.map(\.0.name) == ["dir/", "dir/file", Self.prefixName, Self.paxName, "link", "hard", "fifo", "null", "old"])
        #expect(got.map(\.0.kind) == [.directory, .file, .file, .file, .symlink, .hardLink, .fifo, .characterDevice, .file])
        #expect(got[0].0.mode == 0o750 && got[0].0.uid == 1234 && got[0].0.mtime.seconds == 1_500_000_000)
        #expect(got[1].0.mode == 0o4755 && got[1].1 == "hello\n")
        #expect(got[2].1 == String(repeating: "x", count: 1000))
        #expect(got[3].0.uid == 0o7777777 + 5 && got[3].1 == "pax")
        #expect(got[4].0.linkName == Self.longTarget)
        #expect(got[5].0.linkName == "dir/file")
        #expect(got[7].0.deviceMajor == 1 && got[7].0.deviceMinor == 3)
        #expect(got[8].0.mtime.seconds == -5)

        // GNU tar, an independent reader, sees the same names.
        let listed = try tool(["/usr/bin/tar", "-tf", path]).split(separator: "\n").map(String.init)
        #expect(listed == got.map(\.0.name))
    }

    @Test func theSameEntriesGiveTheSameBytes() throws {
        let tmp = try TempDir()
        let a = try writeSample(tmp.path + "/a.tar"), b = try writeSample(tmp.path + "/b.tar")
        #expect(a.digest == b.digest)
    }

    @Test func aFileThatShrankIsAnError() throws {
        let tmp = try TempDir()
        try Sys.writeFileExclusive(tmp.path + "/short", Array("abc".utf8))
        let fd = try Sys.open(tmp.path + "/short", O_RDONLY)
        defer { Sys.close(fd) }
        var e = entry("short", .file)
        e.size = 10
        let tar = TarWriter(try FileSink(creating: tmp.path + "/s.tar"))
        #expect(throws: GockerError.self) { try tar.append(e, from: fd) }
    }

    @Test func gzipRoundTripsAndGzipAgrees() throws {
        let tmp = try TempDir()
        let path = tmp.path + "/w.tar.gz"
        let file = try FileSink(creating: path, hashing: true)
        let gzip = try GzipSink(file)
        var content = [UInt8]()
        for i in 0..<300_000 { content.append(UInt8(0x41 + (i * 7 + i / 13) % 26)) }
        let tar = TarWriter(gzip)
        try tar.append(entry("big", .file), content: content)
        try tar.finish()
        try gzip.finish()
        let compressed = try Sys.readFile(path)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        #expect(file.digest() == SHA256.hash(compressed) && file.count == Int64(compressed.count))
        // Decompressed by zlib's reader and by gzip(1): the same stream.
        let got = try readAll(path)
        #expect(got.count == 1 && Array(got[0].1.utf8) == content)
        let sum = try tool(["/bin/sh", "-c", "gzip -dc '\(path)' | wc -c"])
        #expect(sum.trimmingCharacters(in: .whitespacesAndNewlines) == String(tar.count))
    }
}

/// Whiteouts and opaque directories, from the archive form to overlayfs's
/// and back (character devices and trusted xattrs need root).
@Suite(.enabled(if: getuid() == 0 || ProcessInfo.processInfo.environment["CI"] == "true", "makes whiteout devices: needs root"))
struct WhiteoutTests {
    @Test func archiveWhiteoutsBecomeOverlayOnesAndBack() throws {
        let tmp = try TempDir()
        let layer = tmp.path + "/layer"
        try Sys.mkdirAll(layer)
        let tarPath = try TarMaker.make([
            .init(name: "kept", data: "k"),
            .init(name: ".wh.gone"),
            .init(name: "dir", type: "dir", mode: 0o755),
            .init(name: "dir/.wh..wh..opq"),
            .init(name: "dir/new", data: "n"),
            .init(name: "sub/.wh.x"),
        ], in: tmp.path)
        let reader = TarReader(try FileSource(path: tarPath))
        let writer = try LayerWriter(directory: layer, whiteouts: .overlay)
        while let e = try reader.next() { try writer.write(e, from: reader) }
        try writer.finish()

        var st = stat()
        #expect(lstat(layer + "/gone", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0)
        #expect(lstat(layer + "/sub/x", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR)
        #expect(!Sys.exists(layer + "/.wh.gone") && !Sys.exists(layer + "/dir/.wh..wh..opq"))
        let dir = try Sys.open(layer + "/dir", O_RDONLY | O_DIRECTORY)
        var value = [UInt8](repeating: 0, count: 8)
        #expect(gk_fgetxattr(dir, "trusted.overlay.opaque", &value, value.count) == 1 && value[0] == UInt8(ascii: "y"))
        Sys.close(dir)

        // And back: the upper layer read as an archive layer.
        let out = tmp.path + "/back.tar"
        let tar = TarWriter(try FileSink(creating: out))
        try LayerTree.writeChanges(upper: layer, lowers: [], to: tar)
        try tar.finish()
        let names = try readAll(out).map(\.0.name)
        #expect(names == ["dir/", "dir/.wh..wh..opq", "dir/new", ".wh.gone", "kept", "sub/", "sub/.wh.x"])

        // A whiteout that would climb out is refused.
        let evil = try TarMaker.make([.init(name: "a/.wh..."), ], in: tmp.path, name: "evil.tar")
        let r2 = TarReader(try FileSource(path: evil))
        let w2 = try LayerWriter(directory: layer, whiteouts: .overlay)
        #expect(throws: GockerError.self) { while let e = try r2.next() { try w2.write(e, from: r2) } }
    }
}
