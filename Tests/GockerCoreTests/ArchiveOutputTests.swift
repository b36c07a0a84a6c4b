import Foundation
import Glibc
import Testing
@testable import GockerCore

/// Runs `sh -c script`; its status and standard output.
func shellData(_ script: String) throws -> (status: Int32, output: Data) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, out)
}

/// Bytes that compress some but not all the way: text-like runs mixed
/// with noise, as a tree of ordinary files is.
private func sample(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
    var x = seed
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        x = x &* 6364136223846793005 &+ 1442695040888963407
        if x >> 62 == 0 {
            for _ in 0..<64 where out.count < count { x = x &* 2862933555777941757 &+ 3037000493; out.append(UInt8(truncatingIfNeeded: x >> 33)) }
        } else {
            let word = Array("word\(x >> 58) ".utf8)
            for b in word where out.count < count { out.append(b) }
        }
    }
    return out
}

/// gzip written on several threads: one valid member, the input back, and
/// the same bytes whatever the thread count.
struct ParallelGzipTests {
    func compress(_ input: [UInt8], threads: Int, writes: Int = 97_001) throws -> (path: String, bytes: [UInt8], tmp: TempDir) {
        let tmp = try TempDir()
        let path = tmp.path + "/out.gz"
        let file = try FileSink(creating: path, hashing: true)
        let gzip = try GzipSink(file, threads: threads)
        // Writes of an odd size, so that chunks are filled across them.
        var off = 0
        while off < input.count {
            let n = min(writes, input.count - off)
            try input[off..<off + n].withUnsafeBytes { raw in try gzip.write(raw) }
            off += n
        }
        try gzip.finish()
        let bytes = try Sys.readFile(path)
        #expect(file.digest() == SHA256.hash(bytes) && file.count == Int64(bytes.count))
        return (path, bytes, tmp)
    }

    @Test func aParallelStreamIsOneGzipMemberThatGivesTheInputBack() throws {
        // Over 20 chunks of 128 KiB and a part of one.
        let input = sample(20 * GzipSink.chunkSize + 12_345)
        let (path, bytes, tmp) = try compress(input, threads: 4)
        _ = tmp
        #expect(bytes.prefix(3) == [0x1f, 0x8b, 8])
        // Chunks carry the 32 KiB before them: about as small as gzip -1 of the whole.
        let reference = try shellData("gzip -dc '\(path)' | gzip -1 -c | wc -c")
        let referenceSize = Int(String(decoding: reference.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(referenceSize > 0 && bytes.count < referenceSize * 21 / 20, "\(bytes.count) against gzip -1's \(referenceSize)")
        #expect(try shellData("gzip -t '\(path)'").status == 0)
        // gzip(1) and zlib's reader: the same bytes as went in.
        let viaGzip = try shellData("gzip -dc '\(path)'")
        #expect(viaGzip.status == 0 && [UInt8](viaGzip.output) == input)
        let source = try FileSource(path: path).decompressed()
        var back = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { break }
            back += buffer[0..<n]
        }
        #expect(back == input)
        // One member: what follows the deflate stream is its trailer, and the file ends there.
        let list = String(decoding: try shellData("gzip -lv '\(path)'").output, as: UTF8.self)
        #expect(list.contains(String(input.count)), "\(list)")
    }

    @Test func theBytesDoNotDependOnTheThreadCount() throws {
        let input = sample(5 * GzipSink.chunkSize + 999, seed: 11)
        let one = try compress(input, threads: 1)
        let two = try compress(input, threads: 2, writes: 4096)
        let eight = try compress(input, threads: 8, writes: 1 << 20)
        #expect(one.bytes == two.bytes && two.bytes == eight.bytes)
    }

    @Test func emptyAndExactChunkInputsAreValid() throws {
        for count in [0, 1, GzipSink.chunkSize, 2 * GzipSink.chunkSize] {
            let input = sample(count, seed: UInt64(count) + 1)
            let (path, _, tmp) = try compress(input, threads: 2)
            _ = tmp
            let back = try shellData("gzip -dc '\(path)'")
            #expect(back.status == 0 && [UInt8](back.output) == input, "\(count) bytes")
        }
    }
}

/// The tar writer's buffered output and its large files sent by the kernel.
/// A sink that takes `room` bytes, then fails as a full disk does.
private final class FullSink: ByteSink {
    var room: Int
    init(room: Int) { self.room = room }
    func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        guard bytes.count <= room else { throw GockerError(.system, "write: no space left on device") }
        room -= bytes.count
    }
    func copy(from fd: Int32, count: Int64, name: String) throws(GockerError) -> Int64 { 0 }
}

extension ParallelGzipTests {
    /// A write that fails midway (a full disk) is an error from write or
    /// finish, on one thread or several; the sink then goes cleanly (each
    /// chunk's buffers freed once, whichever list held it).
    @Test(arguments: [1, 2, 4]) func aFailingWriteIsAnErrorAndNothingIsFreedTwice(threads: Int) throws {
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        var x: UInt32 = 7
        for i in bytes.indices {
            x = x &* 1_103_515_245 &+ 12345
            bytes[i] = UInt8(truncatingIfNeeded: x >> 16) & 0x3f
        }
        for room in [0, 10, 200_000, 600_000] {
            var failed = false
            do {
                let gzip = try GzipSink(FullSink(room: room), threads: threads)
                try bytes.withUnsafeBytes { try gzip.write($0) }
                try gzip.finish()
            } catch {
                failed = true
            }
            #expect(failed, "room \(room), \(threads) threads")
        }
    }
}

struct TarWriterCopyTests {
    @Test func largeFilesGoThroughSendfileAndReadBackTheSame() throws {
        let tmp = try TempDir()
        let big = sample(3 * Int(TarWriter.directCopy) + 77, seed: 3)
        let small = sample(1000, seed: 4)
        try Sys.writeFileExclusive(tmp.path + "/big", big)
        try Sys.writeFileExclusive(tmp.path + "/small", small)
        for (out, pipe) in [(tmp.path + "/a.tar", false), (tmp.path + "/b.tar", true)] {
            // To a file, and to a pipe (as `export` to standard output).
            var fds: [Int32] = [0, 0]
            var reader: Process?
            let sink: FileSink
            if pipe {
                #expect(Glibc.pipe(&fds) == 0)
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = ["-c", "cat > '\(out)'"]
                p.standardInput = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
                try p.run()
                reader = p
                sink = FileSink(fd: fds[1], name: "pipe")
            } else {
                sink = try FileSink(creating: out)
            }
            let tar = TarWriter(sink)
            for (name, bytes) in [("big", big), ("small", small), ("big2", big)] {
                let fd = try Sys.open(tmp.path + "/" + (name == "big2" ? "big" : name), O_RDONLY)
                defer { Sys.close(fd) }
                var e = TarEntry(name: name, kind: .file)
                e.mode = 0o644
                e.size = Int64(bytes.count)
                try tar.append(e, from: fd)
            }
            try tar.finish()
            #expect(sink.count == tar.count && tar.count % 512 == 0)
            if let reader {
                close(fds[1])
                reader.waitUntilExit()
            }
            let dir = tmp.path + "/x-\(pipe)"
            try Sys.mkdirAll(dir)
            #expect(try shellData("tar -xf '\(out)' -C '\(dir)'").status == 0)
            #expect(try Sys.readFile(dir + "/big") == big)
            #expect(try Sys.readFile(dir + "/big2") == big)
            #expect(try Sys.readFile(dir + "/small") == small)
        }
    }

    @Test func aLargeFileThatGotShorterIsAnError() throws {
        let tmp = try TempDir()
        try Sys.writeFileExclusive(tmp.path + "/f", sample(Int(TarWriter.directCopy) * 2, seed: 5))
        let fd = try Sys.open(tmp.path + "/f", O_RDONLY)
        defer { Sys.close(fd) }
        var e = TarEntry(name: "f", kind: .file)
        e.size = TarWriter.directCopy * 3
        let tar = TarWriter(try FileSink(creating: tmp.path + "/s.tar"))
        #expect(throws: GockerError.self) { try tar.append(e, from: fd) }
    }
}
