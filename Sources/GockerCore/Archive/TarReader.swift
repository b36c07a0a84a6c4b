/// A reader of tar archives (ustar, GNU and pax), gocker's own.
///
/// libarchive was passed over: its static library pulls a dozen more
/// libraries (acl, attr, bz2, lz4, zstd, xml2, crypto, ...) into the fully
/// static release binary, for a format this small. Compression is zlib's and
/// liblzma's (see Input.swift).
///
/// Supported: regular files, hard links, symlinks, character and block
/// devices, directories and fifos; pax extended headers (path, linkpath,
/// size, uid, gid, mtime, atime, SCHILY.xattr.*), global pax headers, GNU
/// long names and link names (types L and K) and base-256 numbers. Refused
/// with the entry named: sparse files, multi-volume archives, unknown types.

/// One member of a tar archive, its content left in the reader.
public struct TarEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case file, hardLink, symlink, characterDevice, blockDevice, directory, fifo
    }

    /// The member's name as the archive gives it (not yet checked or normalised).
    public var name: String
    public var kind: Kind
    /// The target of a symlink or a hard link.
    public var linkName: String = ""
    public var size: Int64 = 0
    /// Permission bits, setuid, setgid and sticky included.
    public var mode: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var mtime: Timespec = Timespec(seconds: 0, nanoseconds: 0)
    public var atime: Timespec?
    public var deviceMajor: UInt32 = 0
    public var deviceMinor: UInt32 = 0
    /// Extended attributes from pax SCHILY.xattr.* records.
    public var xattrs: [String: [UInt8]] = [:]

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    public struct Timespec: Sendable, Equatable {
        public var seconds: Int
        public var nanoseconds: Int
        public init(seconds: Int, nanoseconds: Int) {
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }
    }
}

public final class TarReader {
    private let source: any ByteSource
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var sourceEnded = false
    private var hasher = SHA256()
    /// Content bytes of the current entry not read yet, and its padding.
    private var remaining: Int64 = 0
    private var padding = 0
    private var globals: [String: [UInt8]] = [:]
    private var finished = false
    /// The current entry's name, for messages.
    private var current = ""

    /// The largest pax or GNU long-name header accepted.
    static let maxMetadataSize: Int64 = 1 << 20

    /// Large reads: a file's content goes from here to its write(2) in
    /// pieces this big at most, and the input is read (decompressed,
    /// hashed, kept) a megabyte at a time.
    static let bufferSize = 1 << 20

    public init(_ source: any ByteSource) {
        self.source = source
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// The next entry, or nil at the end of the archive.
    public func next() throws(GockerError) -> TarEntry? {
        if finished { return nil }
        try skip(remaining + Int64(padding))
        remaining = 0
        padding = 0
        var pax: [String: [UInt8]] = [:]
        var longName: [UInt8]?
        var longLink: [UInt8]?
        while true {
            guard let header = try readBlock() else {
                // The end of the input on a block boundary ends the archive,
                // end-of-archive blocks or not (as Go's archive/tar reads it).
                if pax.isEmpty && longName == nil && longLink == nil { finished = true; return nil }
                throw failure(current, "unexpected end of archive")
            }
            if header.allSatisfy({ $0 == 0 }) {
                finished = true
                return nil
            }
            try Self.verifyChecksum(header)
            let ustar = header[257..<263].elementsEqual("ustar\0".utf8)
            var nameBytes = Self.field(header[0..<100])
            if ustar {
                let prefix = Self.field(header[345..<500])
                if !prefix.isEmpty { nameBytes = prefix + [UInt8(ascii: "/")] + nameBytes }
            }
            let name = try text(longName ?? pax["path"] ?? globals["path"] ?? nameBytes, what: "name")
            current = name
            let type = header[156]
            let size = try number(header[124..<136], field: "size")
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let text = try metadata(size)
                let records = try Self.parsePax(text, name: current)
                if type == UInt8(ascii: "g") {
                    globals.merge(records) { $1 }
                } else {
                    pax.merge(records) { $1 }
                }
                continue
            case UInt8(ascii: "L"):
                longName = Self.field(try metadata(size)[...])
                continue
            case UInt8(ascii: "K"):
                longLink = Self.field(try metadata(size)[...])
                continue
            default:
                break
            }
            let attributes = globals.merging(pax) { $1 }
            if attributes.keys.contains(where: { $0.hasPrefix("GNU.sparse.") }) || type == UInt8(ascii: "S") {
                throw failure(current, "sparse files are not supported")
            }
            let kind: TarEntry.Kind
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): kind = .file
            case UInt8(ascii: "1"): kind = .hardLink
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "3"): kind = .characterDevice
            case UInt8(ascii: "4"): kind = .blockDevice
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "6"): kind = .fifo
            default:
                let shown = type >= 0x20 && type < 0x7f ? String(UnicodeScalar(type)) : "\\(\(type))"
                throw failure(current, "unsupported entry type '\(shown)'")
            }
            // Old archives mark directories with a trailing slash only.
            var entry = TarEntry(name: name, kind: kind == .file && name.hasSuffix("/") ? .directory : kind)
            entry.linkName = try text(longLink ?? attributes["linkpath"] ?? Self.field(header[157..<257]), what: "link target")
            entry.size = size
            entry.mode = UInt32(truncatingIfNeeded: try number(header[100..<108], field: "mode")) & 0o7777
            entry.uid = UInt32(truncatingIfNeeded: try number(header[108..<116], field: "uid"))
            entry.gid = UInt32(truncatingIfNeeded: try number(header[116..<124], field: "gid"))
            entry.mtime = .init(seconds: Int(try number(header[136..<148], field: "mtime")), nanoseconds: 0)
            if ustar || header[257..<263].elementsEqual("ustar ".utf8) {
                entry.deviceMajor = UInt32(truncatingIfNeeded: try number(header[329..<337], field: "devmajor"))
                entry.deviceMinor = UInt32(truncatingIfNeeded: try number(header[337..<345], field: "devminor"))
            }
            try apply(attributes, to: &entry)
            if entry.name.isEmpty { throw failure(entry.name, "empty name") }
            // Only regular files carry content; anything else is skipped.
            remaining = entry.size
            padding = Int((512 - entry.size % 512) % 512)
            if entry.kind != .file {
                entry.size = 0
            }
            return entry
        }
    }

    /// Reads content of the current entry; 0 at its end.
    public func readContent(into out: UnsafeMutableRawBufferPointer) throws(GockerError) -> Int {
        guard out.count > 0 else { return 0 }
        let piece = try nextContent(max: out.count)
        if piece.count > 0 { out.baseAddress!.copyMemory(from: piece.baseAddress!, byteCount: piece.count) }
        return piece.count
    }

    /// The next piece of the current entry's content, in the reader's own
    /// buffer (valid until the reader is used again, not copied); empty at
    /// the entry's end.
    public func nextContent(max: Int = .max) throws(GockerError) -> UnsafeRawBufferPointer {
        guard remaining > 0, max > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        if start == end { try refill() }
        if start == end { throw failure(current, "unexpected end of archive") }
        let n = min(Int(min(remaining, Int64(max))), end - start)
        let piece = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)])
        start += n
        remaining -= Int64(n)
        return piece
    }

    /// Reads the rest of the input (the end-of-archive blocks and whatever
    /// padding follows) and returns the sha256 of the whole uncompressed stream.
    public func finish() throws(GockerError) -> [UInt8] {
        while !sourceEnded {
            start = end
            try refill()
        }
        return hasher.finalize()
    }

    // MARK: - Reading

    private func refill() throws(GockerError) {
        if start == end { start = 0; end = 0 }
        if end == buffer.count && start > 0 {
            buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: end - start)
            end -= start
            start = 0
        }
        guard !sourceEnded, end < buffer.count else { return }
        let free = UnsafeMutableRawBufferPointer(rebasing: buffer[end...])
        let n = try source.read(into: free)
        hasher.update(UnsafeRawBufferPointer(rebasing: free[0..<n]))
        if n == 0 { sourceEnded = true }
        end += n
    }

    /// The next 512-byte block, or nil at the end of the input.
    private func readBlock() throws(GockerError) -> [UInt8]? {
        while end - start < 512 && !sourceEnded { try refill() }
        if end == start { return nil }
        if end - start < 512 { throw failure(current, "unexpected end of archive") }
        let block = Array(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + 512)]))
        start += 512
        return block
    }

    private func skip(_ count: Int64) throws(GockerError) {
        var left = count
        while left > 0 {
            if start == end { try refill() }
            if start == end { throw failure(current, "unexpected end of archive") }
            let n = Int(min(left, Int64(end - start)))
            start += n
            left -= Int64(n)
        }
    }

    /// The content of a pax or GNU long-name header, and its padding.
    private func metadata(_ size: Int64) throws(GockerError) -> [UInt8] {
        guard size <= Self.maxMetadataSize else { throw failure(current, "extended header of \(size) bytes is too large") }
        var out: [UInt8] = []
        var left = Int(size)
        while left > 0 {
            if start == end { try refill() }
            if start == end { throw failure(current, "unexpected end of archive") }
            let n = min(left, end - start)
            out += UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)])
            start += n
            left -= n
        }
        try skip(Int64((512 - Int(size) % 512) % 512))
        return out
    }

    // MARK: - Fields

    private func failure(_ name: String, _ why: String) -> GockerError {
        name.isEmpty ? GockerError(.invalidArgument, "import: \(why)")
            : GockerError(.invalidArgument, "import: entry \"\(name)\": \(why)")
    }

    /// A NUL-terminated field.
    static func field(_ field: ArraySlice<UInt8>) -> [UInt8] {
        Array(field.prefix { $0 != 0 })
    }

    /// A name as text: gocker keeps file names as UTF-8 and refuses others
    /// rather than change them.
    private func text(_ bytes: [UInt8], what: String) throws(GockerError) -> String {
        guard let s = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
            throw failure(String(decoding: bytes, as: UTF8.self), "\(what) is not valid UTF-8")
        }
        return s
    }

    /// An octal number (spaces and NULs around it), or GNU base-256.
    private func number(_ field: ArraySlice<UInt8>, field what: String) throws(GockerError) -> Int64 {
        guard let v = Self.parseNumber(field) else { throw failure(current, "invalid \(what) field in header") }
        return v
    }

    static func parseNumber(_ field: ArraySlice<UInt8>) -> Int64? {
        guard let first = field.first else { return 0 }
        if first & 0x80 != 0 {
            // Base-256: big-endian, the top bit of the first byte the marker.
            guard first & 0x40 == 0 else { return nil }  // negative
            var v: Int64 = Int64(first & 0x3f)
            for b in field.dropFirst() {
                guard v <= (Int64.max >> 8) else { return nil }
                v = v << 8 | Int64(b)
            }
            return v
        }
        var v: Int64 = 0
        var digits = field.drop { $0 == 0x20 || $0 == 0 }
        digits = digits.prefix { $0 != 0x20 && $0 != 0 }
        for c in digits {
            guard c >= 0x30 && c <= 0x37, v <= (Int64.max >> 3) else { return nil }
            v = v << 3 | Int64(c - 0x30)
        }
        return v
    }

    static func verifyChecksum(_ header: [UInt8]) throws(GockerError) {
        guard let stored = parseNumber(header[148..<156]) else {
            throw GockerError(.invalidArgument, "import: not a tar archive (invalid header checksum)")
        }
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for (i, b) in header.enumerated() {
            let c = (148..<156).contains(i) ? 0x20 : b
            unsigned += Int64(c)
            signed += Int64(Int8(bitPattern: c))
        }
        guard stored == unsigned || stored == signed else {
            throw GockerError(.invalidArgument, "import: not a tar archive (invalid header checksum)")
        }
    }

    /// pax records: "<length> <key>=<value>\n", the length counting the whole record.
    /// The values stay bytes: SCHILY.xattr.* values are binary.
    static func parsePax(_ bytes: [UInt8], name: String) throws(GockerError) -> [String: [UInt8]] {
        func bad() -> GockerError {
            GockerError(.invalidArgument, "import: entry \"\(name)\": invalid pax header")
        }
        var out: [String: [UInt8]] = [:]
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0 { break }  // some writers pad with NULs
            guard let space = bytes[i...].firstIndex(of: 0x20),
                  let length = Int(String(decoding: bytes[i..<space], as: UTF8.self)),
                  length > space - i, i + length <= bytes.count, bytes[i + length - 1] == 0x0a,
                  let eq = bytes[(space + 1)..<(i + length)].firstIndex(of: UInt8(ascii: "=")) else { throw bad() }
            let key = String(decoding: bytes[(space + 1)..<eq], as: UTF8.self)
            out[key] = Array(bytes[(eq + 1)..<(i + length - 1)])
            i += length
        }
        return out
    }

    private func apply(_ attributes: [String: [UInt8]], to entry: inout TarEntry) throws(GockerError) {
        func number(_ key: String) throws(GockerError) -> Int64? {
            guard let bytes = attributes[key] else { return nil }
            let text = String(decoding: bytes, as: UTF8.self)
            guard let v = Int64(text), v >= 0 else { throw failure(entry.name, "invalid pax \(key) \"\(text)\"") }
            return v
        }
        func time(_ key: String) throws(GockerError) -> TarEntry.Timespec? {
            guard let bytes = attributes[key] else { return nil }
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard let s = Int(parts[0]) else { throw failure(entry.name, "invalid pax \(key) \"\(text)\"") }
            var ns = 0
            if parts.count == 2 {
                let digits = String(parts[1].prefix(9))
                guard let f = Int(digits), digits.allSatisfy(\.isASCII) else {
                    throw failure(entry.name, "invalid pax \(key) \"\(text)\"")
                }
                ns = f
                for _ in digits.count..<9 { ns *= 10 }
                if s < 0 { ns = -ns }
            }
            return .init(seconds: s, nanoseconds: ns)
        }
        if let size = try number("size") { entry.size = size }
        if let uid = try number("uid") { entry.uid = UInt32(truncatingIfNeeded: uid) }
        if let gid = try number("gid") { entry.gid = UInt32(truncatingIfNeeded: gid) }
        if let t = try time("mtime") { entry.mtime = t }
        if let t = try time("atime") { entry.atime = t }
        for (key, value) in attributes where key.hasPrefix("SCHILY.xattr.") {
            entry.xattrs[String(key.dropFirst("SCHILY.xattr.".count))] = value
        }
    }
}
