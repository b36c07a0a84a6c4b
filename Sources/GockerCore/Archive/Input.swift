import CGockerCore
import CDeflate
import CLzma
import CZlib
import Glibc
import Synchronization

/// A stream of bytes: a file, or the decompressed content of one.
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 means the end of the input.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int
}

/// How an image tarball is compressed, told by its first bytes (never by
/// its file name).
public enum Compression: String, Sendable {
    case none, gzip, xz

    /// The compression of an input that starts with `magic` (its first bytes,
    /// at least six when the input is that long).
    public static func detect(_ magic: [UInt8]) throws(GockerError) -> Compression {
        func starts(_ p: [UInt8]) -> Bool { magic.count >= p.count && Array(magic.prefix(p.count)) == p }
        if starts([0x1f, 0x8b]) { return .gzip }
        if starts([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return .xz }
        if starts([0x42, 0x5a, 0x68]) {
            throw GockerError(.invalidArgument, "import: bzip2-compressed archives are not supported (use gzip, xz or none)")
        }
        if starts([0x28, 0xb5, 0x2f, 0xfd]) {
            throw GockerError(.invalidArgument, "import: zstd-compressed archives are not supported (use gzip, xz or none)")
        }
        return .none
    }
}

/// A file descriptor read from the start (a file, or standard input), with
/// its first bytes available to look at before they are consumed.
public final class FileSource: ByteSource {
    let fd: Int32
    let name: String
    let owned: Bool
    private var peeked: [UInt8] = []
    /// Bytes handed out so far.
    public private(set) var consumed: UInt64 = 0
    /// Called after each read with the bytes consumed so far.
    public var onRead: ((UInt64) -> Void)?

    /// Opens `path` for reading; "-" means standard input.
    public init(path: String) throws(GockerError) {
        if path == "-" {
            fd = 0
            name = "standard input"
            owned = false
        } else {
            fd = try performing("import: open \(path)", code: .invalidArgument) { () throws(SystemCallError) in
                try Sys.open(path, O_RDONLY)
            }
            name = path
            owned = true
            var st = stat()
            if fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR {
                Glibc.close(fd)
                throw GockerError(.invalidArgument, "import: \(path) is a directory, not an archive")
            }
        }
    }

    /// Reads an open descriptor, which it then owns.
    public init(descriptor: Int32, name: String) {
        fd = descriptor
        self.name = name
        owned = true
    }

    deinit { if owned { Sys.close(fd) } }

    /// The size of a regular file, or nil (a pipe, a terminal).
    public var size: UInt64? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        return UInt64(st.st_size)
    }

    /// The first `count` bytes (fewer if the input is shorter), left unread.
    public func peek(_ count: Int) throws(GockerError) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: count)
        while peeked.count < count {
            let n = try rawRead(&chunk, max: count - peeked.count)
            if n == 0 { break }
            peeked += chunk[0..<n]
        }
        return peeked
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        guard buffer.count > 0 else { return 0 }
        var n: Int
        if !peeked.isEmpty {
            n = min(buffer.count, peeked.count)
            peeked.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            peeked.removeFirst(n)
        } else {
            n = try performing("import: read \(name)", code: .invalidArgument) { () throws(SystemCallError) in
                try Sys.check("read", path: name) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
            }
        }
        consumed += UInt64(n)
        onRead?(consumed)
        return n
    }

    private func rawRead(_ buffer: inout [UInt8], max: Int) throws(GockerError) -> Int {
        try performing("import: read \(name)", code: .invalidArgument) { () throws(SystemCallError) in
            try Sys.check("read", path: name) { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, max) } }
        }
    }

    /// This input, decompressed as its first bytes say.
    public func decompressed() throws(GockerError) -> any ByteSource {
        switch try Compression.detect(try peek(6)) {
        case .none: return self
        case .gzip:
            if let whole = InflatedSource(self) { return whole }
            return try GzipSource(self)
        case .xz: return try XZSource(self)
        }
    }
}

/// A gzip file inflated in one call by libdeflate, about three times as
/// fast as zlib's stream: the file is mapped, inflated into memory of the
/// size its trailer gives, and handed out from there. Only for a regular
/// file of one gzip member whose content fits what is left of `budget`
/// (memory inflated into, all such sources at a time); for any other (a
/// pipe, several members, a larger content, data libdeflate refuses) the
/// initializer says nil and zlib's stream reads the file, with zlib's own
/// error where it is invalid. The memory goes back to a pool for the next
/// layer of the same process (a pull's): memory written once already is
/// written again much faster than new memory, which the system must
/// clear first.
final class InflatedSource: ByteSource {
    private let memory: Mapping
    private let count: Int
    private var offset = 0
    /// The file's progress callback, told as the content is handed out.
    private let onRead: ((UInt64) -> Void)?
    private let fileSize: Int

    /// The most memory inflated into at a time: 512 MiB, or a quarter of
    /// the memory available when gocker started, if less.
    static let capacity: Int = {
        var available = Int.max
        if let text = try? Sys.readFile("/proc/meminfo") {
            for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                if let kb = Int(line.split(separator: " ").dropFirst().first ?? "") { available = kb * 1024 }
            }
        }
        return min(512 << 20, available / 4)
    }()
    /// What is left of `capacity`: all sources together and the pool's.
    static let budget = Atomic<Int>(capacity)
    /// Memory mapped for a source: its start and size.
    struct Mapping: @unchecked Sendable {
        let baseAddress: UnsafeMutableRawPointer?
        let count: Int
        init(start: UnsafeMutableRawPointer, count: Int) {
            baseAddress = start
            self.count = count
        }
    }
    /// Mappings free for the next source.
    private static let pool = Mutex<[Mapping]>([])

    init?(_ file: FileSource) {
        // A file gocker opened (read from its start), not standard input.
        guard file.owned, let size = file.size.map(Int.init), size >= 18 else { return nil }
        var trailer = [UInt8](repeating: 0, count: 4)
        guard pread(file.fd, &trailer, 4, off_t(size - 4)) == 4 else { return nil }
        // ISIZE: the content's length modulo 2^32 (a larger one does not fit
        // and goes to zlib).
        let length = Int(trailer[0]) | Int(trailer[1]) << 8 | Int(trailer[2]) << 16 | Int(trailer[3]) << 24
        guard let memory = Self.take(length) else { return nil }
        var ok = false
        defer { if !ok { Self.give(memory) } }
        // The file is mapped whole at once (its pages are mostly in the
        // page cache, just written): far fewer faults than page by page.
        guard let input = mmap(nil, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, file.fd, 0), input != MAP_FAILED else { return nil }
        defer { munmap(input, size) }
        guard let inflater = libdeflate_alloc_decompressor() else { return nil }
        defer { libdeflate_free_decompressor(inflater) }
        var usedIn = 0
        var usedOut = 0
        let result = libdeflate_gzip_decompress_ex(inflater, input, size, memory.baseAddress, length, &usedIn, &usedOut)
        guard result == LIBDEFLATE_SUCCESS, usedIn == size, usedOut == length else { return nil }
        self.memory = memory
        count = length
        onRead = file.onRead
        fileSize = size
        ok = true
    }

    deinit { Self.give(memory) }

    /// Unmaps what the pool holds: at the end of the work that inflated
    /// (a pull or load), so that the process keeps none of it after.
    static func drainPool() {
        let freed = pool.withLock { free in
            defer { free.removeAll() }
            return free.reduce(0) { n, m in munmap(m.baseAddress, m.count); return n + m.count }
        }
        if freed > 0 { budget.add(freed, ordering: .relaxed) }
    }

    /// Memory for `length` bytes: a pooled mapping large enough, else the
    /// largest pooled one grown (its pages written once stay: only the
    /// rest is new), else a new one (in huge pages where the system gives
    /// them); within the budget, else nil.
    private static func take(_ length: Int) -> Mapping? {
        let mapped = max(2 << 20, (length + (2 << 20) - 1) / (2 << 20) * (2 << 20))
        let pooled = pool.withLock { free -> Mapping? in
            if let i = free.indices.filter({ free[$0].count >= length }).min(by: { free[$0].count < free[$1].count }) {
                return free.remove(at: i)
            }
            guard let i = free.indices.max(by: { free[$0].count < free[$1].count }) else { return nil }
            return free.remove(at: i)
        }
        if let pooled, pooled.count >= length { return pooled }
        guard mapped <= capacity else {
            if let pooled { give(pooled) }
            return nil
        }
        // What is new: all of it, or what the pooled mapping grows by.
        let needed = mapped - (pooled?.count ?? 0)
        guard reserve(needed) else {
            if let pooled { give(pooled) }
            return nil
        }
        if let pooled {
            guard let base = gk_grow_mapping(pooled.baseAddress, pooled.count, mapped) else {
                budget.add(needed, ordering: .relaxed)
                give(pooled)
                return nil
            }
            madvise(base, mapped, MADV_HUGEPAGE)
            return Mapping(start: base, count: mapped)
        }
        guard let base = mmap(nil, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              base != MAP_FAILED else {
            budget.add(mapped, ordering: .relaxed)
            return nil
        }
        madvise(base, mapped, MADV_HUGEPAGE)
        return Mapping(start: base, count: mapped)
    }

    /// Takes `bytes` of the budget, unmapping what the pool holds for room
    /// where that is needed; false if there is not that much.
    private static func reserve(_ bytes: Int) -> Bool {
        var left = budget.load(ordering: .relaxed)
        while true {
            if left < bytes {
                // What the pool holds goes, for room.
                let empty = pool.withLock { $0.isEmpty }
                guard !empty else { return false }
                drainPool()
                left = budget.load(ordering: .relaxed)
                continue
            }
            let (taken, now) = budget.compareExchange(expected: left, desired: left - bytes, ordering: .relaxed)
            if taken { return true }
            left = now
        }
    }

    private static func give(_ memory: Mapping) {
        pool.withLock { $0.append(memory) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        let n = min(buffer.count, count - offset)
        guard n > 0 else { return 0 }
        buffer.baseAddress!.copyMemory(from: memory.baseAddress! + offset, byteCount: n)
        offset += n
        // The file's share of what was handed out, for a progress line.
        onRead?(UInt64(Double(fileSize) * Double(offset) / Double(count)))
        return n
    }
}

/// gzip through zlib, one member after another (as gzip -d does).
final class GzipSource: ByteSource {
    private var stream = z_stream()
    private let inner: any ByteSource
    private let input: UnsafeMutableRawBufferPointer
    private var innerEnded = false
    private var memberEnded = false

    init(_ inner: any ByteSource) throws(GockerError) {
        self.inner = inner
        input = .allocate(byteCount: 1 << 18, alignment: 64)
        // 15 + 32: the largest window, and a gzip header expected.
        // (Every member is set: a throw runs deinit, which frees `input`.)
        guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw GockerError(.system, "import: initialise zlib")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        guard let out = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let want = uInt(min(buffer.count, 1 << 30))
        stream.next_out = out.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = want
        while stream.avail_out == want {
            if stream.avail_in == 0 {
                if innerEnded {
                    if memberEnded { return 0 }
                    throw GockerError(.invalidArgument, "import: gzip: unexpected end of data")
                }
                let n = try inner.read(into: input)
                if n == 0 { innerEnded = true; continue }
                stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(n)
            }
            if memberEnded {
                inflateReset(&stream)
                memberEnded = false
            }
            switch inflate(&stream, Z_NO_FLUSH) {
            case Z_OK, Z_BUF_ERROR: break
            case Z_STREAM_END: memberEnded = true
            default:
                let why = stream.msg.map { String(cString: $0) } ?? "invalid data"
                throw GockerError(.invalidArgument, "import: gzip: \(why)")
            }
        }
        return Int(want - stream.avail_out)
    }
}

/// xz through liblzma, concatenated streams included (as xz -d does).
final class XZSource: ByteSource {
    private var stream = lzma_stream()
    private let inner: any ByteSource
    private let input: UnsafeMutableRawBufferPointer
    private var innerEnded = false
    private var ended = false

    init(_ inner: any ByteSource) throws(GockerError) {
        self.inner = inner
        input = .allocate(byteCount: 1 << 18, alignment: 64)
        // LZMA_CONCATENATED (0x08; its UINT32_C() definition does not reach Swift).
        let concatenated: UInt32 = 0x08
        // (Every member is set: a throw runs deinit, which frees `input`.)
        guard lzma_stream_decoder(&stream, UInt64.max, concatenated) == LZMA_OK else {
            throw GockerError(.system, "import: initialise liblzma")
        }
    }

    deinit {
        lzma_end(&stream)
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        guard let out = buffer.baseAddress, buffer.count > 0, !ended else { return 0 }
        stream.next_out = out.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = buffer.count
        while stream.avail_out == buffer.count {
            if stream.avail_in == 0 && !innerEnded {
                let n = try inner.read(into: input)
                if n == 0 {
                    innerEnded = true
                } else {
                    stream.next_in = UnsafePointer(input.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    stream.avail_in = n
                }
            }
            let r = lzma_code(&stream, innerEnded ? LZMA_FINISH : LZMA_RUN)
            if r == LZMA_STREAM_END { ended = true; break }
            if r == LZMA_OK { continue }
            let why: String
            switch r {
            case LZMA_BUF_ERROR: why = "unexpected end of data"
            case LZMA_FORMAT_ERROR: why = "not an xz stream"
            case LZMA_DATA_ERROR: why = "corrupt data"
            case LZMA_MEM_ERROR: why = "out of memory"
            case LZMA_OPTIONS_ERROR: why = "unsupported options"
            default: why = "error \(r.rawValue)"
            }
            throw GockerError(.invalidArgument, "import: xz: \(why)")
        }
        return buffer.count - stream.avail_out
    }
}
