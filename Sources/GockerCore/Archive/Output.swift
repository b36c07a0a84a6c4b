import CZlib
import Glibc

/// Where written bytes go: a file, or a compressor in front of one.
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError)
}

extension ByteSink {
    public func write(_ bytes: [UInt8]) throws(GockerError) {
        var failure: GockerError?
        bytes.withUnsafeBytes { raw in
            do throws(GockerError) { try write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// A file descriptor written in order, with the count of what went
/// through it and, when asked, its sha256 (a blob's digest and size, known
/// once it is written).
public final class FileSink: ByteSink {
    let fd: Int32
    let name: String
    private let owned: Bool
    private var hasher: SHA256?
    public private(set) var count: Int64 = 0

    /// Writes to an open descriptor (standard output, a pipe), left open.
    public init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
        owned = false
    }

    /// Creates `path`, which must not exist.
    public init(creating path: String, mode: mode_t = 0o600, hashing: Bool = false) throws(GockerError) {
        if hashing { hasher = SHA256() }
        fd = try performing("create \(path)") { () throws(SystemCallError) in
            try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
        }
        name = path
        owned = true
    }

    deinit { if owned { Sys.close(fd) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        hasher?.update(bytes)
        count += Int64(bytes.count)
        var off = 0
        while off < bytes.count {
            off += try performing("write \(name)") { () throws(SystemCallError) in
                try Sys.check("write", path: name) { Glibc.write(fd, base + off, bytes.count - off) }
            }
        }
    }

    /// The sha256 of everything written (call once, at the end; a sink
    /// made with `hashing` only).
    public func digest() -> [UInt8] { hasher!.finalize() }
}

/// gzip through zlib, in front of another sink. The header carries no
/// name and no time, so the same input gives the same bytes.
public final class GzipSink: ByteSink {
    private var stream = z_stream()
    private let inner: any ByteSink
    private let output: UnsafeMutableRawBufferPointer
    private var ended = false

    /// `level`: zlib's 1 (fastest) to 9 (smallest).
    public init(_ inner: any ByteSink, level: Int32 = 6) throws(GockerError) {
        self.inner = inner
        output = .allocate(byteCount: 1 << 16, alignment: 16)
        // 15 + 16: the largest window, with a gzip header and trailer.
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                            zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            output.deallocate()
            throw GockerError(.system, "initialise zlib's compressor")
        }
    }

    deinit {
        deflateEnd(&stream)
        output.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var off = 0
        while off < bytes.count {
            let n = min(bytes.count - off, 1 << 30)
            stream.next_in = UnsafeMutablePointer(mutating: (base + off).assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(n)
            try run(Z_NO_FLUSH)
            off += n
        }
    }

    /// Writes what zlib still holds and the gzip trailer.
    public func finish() throws(GockerError) {
        guard !ended else { return }
        ended = true
        stream.next_in = nil
        stream.avail_in = 0
        try run(Z_FINISH)
    }

    private func run(_ flush: Int32) throws(GockerError) {
        repeat {
            stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(output.count)
            let r = deflate(&stream, flush)
            guard r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR else {
                throw GockerError(.system, "gzip: compression failed (zlib error \(r))")
            }
            let produced = output.count - Int(stream.avail_out)
            if produced > 0 { try inner.write(UnsafeRawBufferPointer(rebasing: output[0..<produced])) }
            if flush == Z_FINISH && r == Z_STREAM_END { return }
        } while stream.avail_out == 0 || (flush == Z_FINISH)
    }
}

/// A source whose bytes are also written to a sink as they are read: an
/// imported layer is kept, compressed, while it is extracted.
public final class TeeSource: ByteSource {
    private let inner: any ByteSource
    private let sink: any ByteSink

    public init(_ inner: any ByteSource, into sink: any ByteSink) {
        self.inner = inner
        self.sink = sink
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        let n = try inner.read(into: buffer)
        if n > 0 { try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }
}

/// A source that hashes the bytes read through it.
public final class HashingSource: ByteSource {
    private let inner: any ByteSource
    private var hasher = SHA256()
    public private(set) var count: Int64 = 0

    public init(_ inner: any ByteSource) { self.inner = inner }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        let n = try inner.read(into: buffer)
        if n > 0 { hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        count += Int64(n)
        return n
    }

    public func digest() -> [UInt8] { hasher.finalize() }
}

/// A sink that hashes what goes through it to another sink: the
/// uncompressed digest of a stream on its way to a compressor.
public final class HashingSink: ByteSink {
    private let inner: any ByteSink
    private var hasher = SHA256()

    public init(_ inner: any ByteSink) { self.inner = inner }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        hasher.update(bytes)
        try inner.write(bytes)
    }

    public func digest() -> [UInt8] { hasher.finalize() }
}
