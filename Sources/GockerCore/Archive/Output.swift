import CZlib
import Glibc

extension Sys {
    /// The CPUs online. (Here: this file's imports reach sysconf's names.)
    public static var onlineCPUs: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// Where written bytes go: a file, or a compressor in front of one.
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError)
    /// Writes up to `count` bytes read from `fd` (from its offset) without
    /// passing them through this process, and says how many; 0 when this
    /// sink cannot (the caller then reads and writes them). `name` is the
    /// file's, for errors.
    func copy(from fd: Int32, count: Int64, name: String) throws(GockerError) -> Int64
}

extension ByteSink {
    public func copy(from fd: Int32, count: Int64, name: String) throws(GockerError) -> Int64 { 0 }

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
    private var cannotSend = false
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

    /// `sendfile`, from a file to this one's descriptor (a file or a pipe:
    /// any since Linux 2.6.33), unless the bytes must be hashed. A file
    /// that ends early is an error.
    public func copy(from source: Int32, count total: Int64, name sourceName: String) throws(GockerError) -> Int64 {
        guard hasher == nil, !cannotSend else { return 0 }
        var done: Int64 = 0
        while done < total {
            let n = sendfile(fd, source, nil, Int(min(total - done, 1 << 30)))
            if n > 0 {
                done += Int64(n)
                count += Int64(n)
                continue
            }
            if n == 0 { throw GockerError(.system, "archive: \(sourceName) got shorter while it was read") }
            let e = errno
            if e == EINTR || e == EAGAIN { continue }
            if done == 0 && (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) {
                cannotSend = true
                return 0
            }
            throw GockerError(.system, "write \(name): sendfile from \(sourceName): \(errnoText(e))")
        }
        return done
    }

    /// The sha256 of everything written (call once, at the end; a sink
    /// made with `hashing` only).
    public func digest() -> [UInt8] { hasher!.finalize() }
}

/// gzip through zlib, in front of another sink, compressed on every core
/// as pigz does: the input is cut into 128 KiB chunks, each deflated on a
/// worker thread with the 32 KiB before it as its dictionary and ended
/// with a sync flush (a byte-aligned empty stored block), so the chunks
/// laid end to end are one deflate stream; the crc32 of the whole is
/// combined from the chunks' (crc32_combine). The output is one gzip
/// member, which every reader takes (zlib's inflate with a gzip header
/// stops after the first member, so several members would not do). Chunks
/// do not depend on the thread count: the same input gives the same bytes
/// on any machine. The header carries no name and no time.
public final class GzipSink: ByteSink {
    static let chunkSize = 128 << 10
    static let dictionarySize = 32 << 10

    private let inner: any ByteSink
    private let level: Int32
    private var pool: GzipPool?
    /// The chunk being filled.
    private var current: GzipChunk
    /// Chunks handed to the workers, in stream order.
    private var inFlight: [GzipChunk] = []
    private var spare: [GzipChunk] = []
    private let maxInFlight: Int
    /// The previous chunk's last 32 KiB, the next one's dictionary.
    private let window: UnsafeMutableRawBufferPointer
    private var windowCount = 0
    private var crc: uLong = 0
    private var length: UInt64 = 0
    private var started = false
    private var ended = false

    /// `level`: zlib's 1 (fastest, gzip -1) to 9 (smallest). `threads`:
    /// the workers (default: one per online core; 1 compresses in the
    /// writer's thread).
    public init(_ inner: any ByteSink, level: Int32 = 1, threads: Int? = nil) throws(GockerError) {
        guard (1...9).contains(level) else { throw GockerError(.invalidArgument, "gzip: level \(level): 1 to 9") }
        self.inner = inner
        self.level = level
        let workers = max(1, min(threads ?? Sys.onlineCPUs, 32))
        maxInFlight = workers == 1 ? 1 : workers * 3
        if workers > 1 { pool = try GzipPool(threads: workers, level: level) }
        current = GzipChunk()
        window = .allocate(byteCount: Self.dictionarySize, alignment: 16)
    }

    deinit {
        pool?.stop()
        if let inline {
            deflateEnd(inline)
            inline.deallocate()
        }
        window.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(!ended, "GzipSink written after finish")
        if !started { try header() }
        var off = 0
        while off < bytes.count {
            let n = min(bytes.count - off, Self.chunkSize - current.count)
            (current.input.baseAddress! + current.count).copyMemory(from: base + off, byteCount: n)
            current.count += n
            off += n
            if current.count == Self.chunkSize { try submit(last: false) }
        }
    }

    /// Writes what is left, the end of the stream and the gzip trailer.
    public func finish() throws(GockerError) {
        guard !ended else { return }
        if !started { try header() }
        try submit(last: true)
        ended = true
        while !inFlight.isEmpty { try drain(wait: true) }
        var trailer = [UInt8](repeating: 0, count: 8)
        for i in 0..<4 {
            trailer[i] = UInt8(truncatingIfNeeded: UInt64(crc) >> (8 * UInt64(i)))
            trailer[4 + i] = UInt8(truncatingIfNeeded: length >> (8 * UInt64(i)))
        }
        try inner.write(trailer)
    }

    /// gzip's header as zlib writes it: no name, no time, the level's
    /// extra flag (4: fastest, 2: smallest), Unix.
    private func header() throws(GockerError) {
        started = true
        let xfl: UInt8 = level == 9 ? 2 : level == 1 ? 4 : 0
        try inner.write([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])
    }

    private func submit(last: Bool) throws(GockerError) {
        let chunk = current
        chunk.last = last
        chunk.dictionaryCount = windowCount
        if windowCount > 0 {
            chunk.dictionary.baseAddress!.copyMemory(from: window.baseAddress!, byteCount: windowCount)
        }
        // The next chunk's dictionary: this one's tail (every chunk but
        // the last is full).
        if !last {
            window.baseAddress!.copyMemory(from: chunk.input.baseAddress! + chunk.count - Self.dictionarySize,
                                           byteCount: Self.dictionarySize)
            windowCount = Self.dictionarySize
        }
        if let pool {
            inFlight.append(chunk)
            pool.enqueue(chunk)
            // Whatever is done goes out; a full queue waits for its oldest.
            while let first = inFlight.first, pool.isDone(first) { try drain(wait: false) }
            if inFlight.count >= maxInFlight { try drain(wait: true) }
        } else {
            GzipPool.compress(chunk, stream: try inlineStream(), level: level)
            inFlight.append(chunk)
            try drain(wait: false)
        }
        current = last ? current : (spare.popLast() ?? GzipChunk())
        if !last { current.reset() }
    }

    private var inline: UnsafeMutablePointer<z_stream>?
    private func inlineStream() throws(GockerError) -> UnsafeMutablePointer<z_stream> {
        if let inline { return inline }
        let s = try GzipPool.makeStream(level: level)
        inline = s
        return s
    }

    /// Writes the oldest chunk in flight, once done.
    private func drain(wait: Bool) throws(GockerError) {
        let chunk = inFlight.removeFirst()
        if wait, let pool { pool.wait(for: chunk) }
        if chunk.failure != Z_OK {
            throw GockerError(.system, "gzip: compression failed (zlib error \(chunk.failure))")
        }
        try inner.write(UnsafeRawBufferPointer(rebasing: chunk.output[0..<chunk.produced]))
        crc = length == 0 ? chunk.crc : crc32_combine(crc, chunk.crc, off_t(chunk.count))
        length &+= UInt64(chunk.count)
        if !chunk.last {
            chunk.reset()
            spare.append(chunk)
        }
    }
}

/// One chunk of a `GzipSink`'s input and, once a worker is done, its
/// deflated bytes and crc32. Shared with a worker under the pool's lock.
final class GzipChunk: @unchecked Sendable {
    /// More than deflate's worst case for a chunk (stored blocks: 5 bytes
    /// per 16 KiB and more) with the sync flush's marker.
    static let outputSize = GzipSink.chunkSize + GzipSink.chunkSize / 256 + 1024
    let input: UnsafeMutableRawBufferPointer
    let dictionary: UnsafeMutableRawBufferPointer
    var output: UnsafeMutableRawBufferPointer
    var count = 0
    var dictionaryCount = 0
    var last = false
    var produced = 0
    var crc: uLong = 0
    var failure = Z_OK
    /// Set by the worker under the pool's lock.
    var done = false

    init() {
        input = .allocate(byteCount: GzipSink.chunkSize, alignment: 16)
        dictionary = .allocate(byteCount: GzipSink.dictionarySize, alignment: 16)
        // deflateBound's worst case for a chunk at level 1..9, and the sync flush's marker.
        output = .allocate(byteCount: GzipChunk.outputSize, alignment: 16)
    }

    func reset() {
        count = 0
        dictionaryCount = 0
        last = false
        produced = 0
        crc = 0
        failure = Z_OK
        done = false
    }

    /// A chunk's buffers go with it (whichever list held it last: the one
    /// being filled, those in flight or the spares).
    deinit {
        input.deallocate()
        dictionary.deallocate()
        output.deallocate()
    }
}
/// The worker threads of a `GzipSink`, each with its own deflate stream.
final class GzipPool: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [GzipChunk] = []
    private var stopping = false
    private var threads: [pthread_t] = []
    private let level: Int32

    init(threads count: Int, level: Int32) throws(GockerError) {
        self.level = level
        pthread_mutex_init(lock, nil)
        pthread_cond_init(work, nil)
        pthread_cond_init(finished, nil)
        // Workers start with every signal blocked (a thread takes its maker's mask).
        var all = sigset_t(), old = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let body: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { context in
            Unmanaged<GzipPool>.fromOpaque(context!).takeUnretainedValue().loop()
            return nil
        }
        for _ in 0..<count {
            var thread = pthread_t()
            // Each thread holds the pool until `stop` joins it.
            let context = Unmanaged.passRetained(self).toOpaque()
            if pthread_create(&thread, nil, body, context) != 0 {
                Unmanaged<GzipPool>.fromOpaque(context).release()
                break
            }
            threads.append(thread)
        }
        if threads.isEmpty {
            throw GockerError(.system, "gzip: start a compression thread")
        }
    }

    deinit {
        pthread_cond_destroy(work)
        pthread_cond_destroy(finished)
        pthread_mutex_destroy(lock)
        lock.deallocate()
        work.deallocate()
        finished.deallocate()
    }

    func enqueue(_ chunk: GzipChunk) {
        pthread_mutex_lock(lock)
        queue.append(chunk)
        pthread_cond_signal(work)
        pthread_mutex_unlock(lock)
    }

    func isDone(_ chunk: GzipChunk) -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return chunk.done
    }

    func wait(for chunk: GzipChunk) {
        pthread_mutex_lock(lock)
        while !chunk.done { pthread_cond_wait(finished, lock) }
        pthread_mutex_unlock(lock)
    }

    /// Drops what no worker took yet, lets the others finish, joins them.
    func stop() {
        pthread_mutex_lock(lock)
        stopping = true
        queue.removeAll()
        pthread_cond_broadcast(work)
        pthread_mutex_unlock(lock)
        for t in threads {
            pthread_join(t, nil)
            Unmanaged.passUnretained(self).release()
        }
        threads.removeAll()
    }

    private func loop() {
        guard let stream = try? Self.makeStream(level: level) else {
            pthread_mutex_lock(lock)
            // No stream: this worker fails whatever it takes.
            while true {
                while queue.isEmpty && !stopping { pthread_cond_wait(work, lock) }
                if queue.isEmpty { break }
                let chunk = queue.removeFirst()
                chunk.failure = Z_MEM_ERROR
                chunk.done = true
                pthread_cond_broadcast(finished)
            }
            pthread_mutex_unlock(lock)
            return
        }
        defer {
            deflateEnd(stream)
            stream.deallocate()
        }
        pthread_mutex_lock(lock)
        while true {
            while queue.isEmpty && !stopping { pthread_cond_wait(work, lock) }
            if queue.isEmpty { break }
            let chunk = queue.removeFirst()
            pthread_mutex_unlock(lock)
            Self.compress(chunk, stream: stream, level: level)
            pthread_mutex_lock(lock)
            chunk.done = true
            pthread_cond_broadcast(finished)
        }
        pthread_mutex_unlock(lock)
    }

    /// A raw deflate stream (no header: the sink writes gzip's own).
    static func makeStream(level: Int32) throws(GockerError) -> UnsafeMutablePointer<z_stream> {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard deflateInit2_(stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
                            zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            throw GockerError(.system, "initialise zlib's compressor")
        }
        return stream
    }

    /// Deflates one chunk after its dictionary, ended by a sync flush (or
    /// the stream's end for the last), and takes its crc32.
    static func compress(_ chunk: GzipChunk, stream: UnsafeMutablePointer<z_stream>, level: Int32) {
        let input = chunk.input.baseAddress!.assumingMemoryBound(to: Bytef.self)
        chunk.crc = crc32(0, input, uInt(chunk.count))
        var r = deflateReset(stream)
        if r == Z_OK && chunk.dictionaryCount > 0 {
            r = deflateSetDictionary(stream, chunk.dictionary.baseAddress!.assumingMemoryBound(to: Bytef.self),
                                     uInt(chunk.dictionaryCount))
        }
        guard r == Z_OK else { chunk.failure = r; return }
        stream.pointee.next_in = input
        stream.pointee.avail_in = uInt(chunk.count)
        stream.pointee.next_out = chunk.output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(chunk.output.count)
        r = deflate(stream, chunk.last ? Z_FINISH : Z_SYNC_FLUSH)
        let complete = chunk.last ? r == Z_STREAM_END : (r == Z_OK && stream.pointee.avail_out > 0)
        guard complete && stream.pointee.avail_in == 0 else {
            chunk.failure = r == Z_OK || r == Z_STREAM_END ? Z_BUF_ERROR : r
            return
        }
        chunk.produced = chunk.output.count - Int(stream.pointee.avail_out)
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
