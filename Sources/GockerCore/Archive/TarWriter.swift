import Glibc

/// A writer of tar archives, the counterpart of `TarReader` with the same
/// `TarEntry`: ustar headers, and a pax header before an entry only when
/// ustar cannot hold it (a long name or link target, a large size or id,
/// a time before 1970, extended attributes). Times are whole seconds, names
/// of directories end in "/", and there are no user or group names: the
/// same tree gives the same bytes, as a layer's digest needs. (The digest
/// itself is taken where the stream is read back: see `storeLayer`.)
///
/// Headers, padding and small files gather in a buffer of 1 MiB written
/// to the sink in one piece; a large file's content goes to the sink
/// straight from its descriptor when the sink can take it so (a file or
/// pipe: `sendfile`), else through that buffer. What is buffered reaches
/// the sink at `flush` and `finish`.
public final class TarWriter {
    private let sink: any ByteSink
    /// The bytes of the archive so far.
    public private(set) var count: Int64 = 0
    private var finished = false
    private let buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0

    static let bufferSize = 1 << 20
    /// Content at least this large is copied by the sink when it can.
    static let directCopy: Int64 = 256 << 10

    public init(_ sink: any ByteSink) {
        self.sink = sink
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// An entry without content (a directory, a link, a node, an empty file).
    public func append(_ entry: TarEntry) throws(GockerError) {
        var e = entry
        if e.kind != .file { e.size = 0 }
        guard e.size == 0 else {
            throw GockerError(.invalidArgument, "archive: entry \"\(entry.name)\": content missing")
        }
        try header(e)
    }

    /// A regular file with the given content.
    public func append(_ entry: TarEntry, content: [UInt8]) throws(GockerError) {
        var e = entry
        e.size = Int64(content.count)
        try header(e)
        try emit(content)
        try pad(e.size)
    }

    /// A regular file whose `entry.size` bytes are read from `fd` (from
    /// its offset). A file that got shorter meanwhile is an error; one that
    /// grew is cut at the size.
    public func append(_ entry: TarEntry, from fd: Int32) throws(GockerError) {
        try header(entry)
        var left = entry.size
        if left >= Self.directCopy {
            try flush()
            let copied = try sink.copy(from: fd, count: left, name: entry.name)
            count += copied
            left -= copied
        }
        while left > 0 {
            if buffered == buffer.count { try flush() }
            let want = Int(min(left, Int64(buffer.count - buffered)))
            let n = try performing("archive: read \(entry.name)") { () throws(SystemCallError) in
                try Sys.check("read", path: entry.name) { Glibc.read(fd, buffer.baseAddress! + buffered, want) }
            }
            if n == 0 {
                throw GockerError(.system, "archive: \(entry.name) got shorter while it was read")
            }
            buffered += n
            count += Int64(n)
            left -= Int64(n)
        }
        try pad(entry.size)
    }

    /// The two zero blocks that end an archive, and what is buffered.
    public func finish() throws(GockerError) {
        if !finished {
            finished = true
            try zeros(1024)
            try flush()
        }
    }

    /// Writes what is buffered to the sink.
    public func flush() throws(GockerError) {
        guard buffered > 0 else { return }
        let n = buffered
        buffered = 0
        try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }

    // MARK: - Headers

    private func header(_ entry: TarEntry) throws(GockerError) {
        var name = entry.name
        if entry.kind == .directory && !name.hasSuffix("/") { name += "/" }
        var pax: [(String, [UInt8])] = []
        let nameBytes = Array(name.utf8)
        var nameField = nameBytes
        var prefixField: [UInt8] = []
        if nameBytes.count > 100 {
            // ustar's prefix: the name split at a "/" into at most 155 + 100 bytes.
            if let split = Self.ustarSplit(nameBytes) {
                prefixField = Array(nameBytes[..<split])
                nameField = Array(nameBytes[(split + 1)...])
            } else {
                pax.append(("path", nameBytes))
                nameField = Array(nameBytes.prefix(100))
            }
        }
        let link = Array(entry.linkName.utf8)
        if link.count > 100 { pax.append(("linkpath", link)) }
        if entry.size > 0o77777777777 { pax.append(("size", Array(String(entry.size).utf8))) }
        if entry.uid > 0o7777777 { pax.append(("uid", Array(String(entry.uid).utf8))) }
        if entry.gid > 0o7777777 { pax.append(("gid", Array(String(entry.gid).utf8))) }
        if entry.mtime.seconds < 0 || entry.mtime.seconds > 0o77777777777 {
            pax.append(("mtime", Array(String(entry.mtime.seconds).utf8)))
        }
        for (key, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) {
            pax.append(("SCHILY.xattr." + key, value))
        }
        if !pax.isEmpty {
            var records: [UInt8] = []
            for (key, value) in pax { records += Self.paxRecord(key, value) }
            let base = name.split(separator: "/").last.map(String.init) ?? "entry"
            var x = TarEntry(name: "PaxHeaders.0/" + String(decoding: base.utf8.prefix(80), as: UTF8.self), kind: .file)
            x.mode = 0o644
            x.size = Int64(records.count)
            try emit(Self.block(x, name: Array(x.name.utf8), prefix: [], type: UInt8(ascii: "x"), link: []))
            try emit(records)
            try pad(x.size)
        }
        let type: UInt8
        switch entry.kind {
        case .file: type = UInt8(ascii: "0")
        case .hardLink: type = UInt8(ascii: "1")
        case .symlink: type = UInt8(ascii: "2")
        case .characterDevice: type = UInt8(ascii: "3")
        case .blockDevice: type = UInt8(ascii: "4")
        case .directory: type = UInt8(ascii: "5")
        case .fifo: type = UInt8(ascii: "6")
        }
        try emit(Self.block(entry, name: nameField, prefix: prefixField, type: type, link: Array(link.prefix(100))))
    }

    /// Where to split a long name for ustar's prefix field, if it can be.
    static func ustarSplit(_ name: [UInt8]) -> Int? {
        guard name.count <= 256 else { return nil }
        var i = min(name.count - 1, 155)
        while i > 0 {
            if name[i] == UInt8(ascii: "/") && name.count - i - 1 <= 100 && name.count - i - 1 > 0 { return i }
            i -= 1
        }
        return nil
    }

    /// "<length> <key>=<value>\n", the length counting the whole record.
    static func paxRecord(_ key: String, _ value: [UInt8]) -> [UInt8] {
        let body = key.utf8.count + value.count + 3  // " ", "=", "\n"
        var length = body + String(body).utf8.count
        if String(length).utf8.count != String(body).utf8.count { length = body + String(length).utf8.count }
        return Array("\(length) \(key)=".utf8) + value + [0x0a]
    }

    static func block(_ e: TarEntry, name: [UInt8], prefix: [UInt8], type: UInt8, link: [UInt8]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int, max: Int) {
            for (i, c) in bytes.prefix(max).enumerated() { b[offset + i] = c }
        }
        /// An octal number of `width - 1` digits and a NUL; 0 where it does not fit
        /// (the pax header before it says the value).
        func octal(_ value: Int64, at offset: Int, width: Int) {
            var text = Array(String(value, radix: 8).utf8)
            if value < 0 || text.count > width - 1 { text = [UInt8(ascii: "0")] }
            put([UInt8](repeating: UInt8(ascii: "0"), count: width - 1 - text.count) + text, at: offset, max: width - 1)
        }
        put(name, at: 0, max: 100)
        octal(Int64(e.mode & 0o7777), at: 100, width: 8)
        octal(Int64(e.uid), at: 108, width: 8)
        octal(Int64(e.gid), at: 116, width: 8)
        octal(e.size, at: 124, width: 12)
        octal(Int64(e.mtime.seconds), at: 136, width: 12)
        b[156] = type
        put(link, at: 157, max: 100)
        put(Array("ustar\0".utf8), at: 257, max: 6)
        put(Array("00".utf8), at: 263, max: 2)
        if e.kind == .characterDevice || e.kind == .blockDevice {
            octal(Int64(e.deviceMajor), at: 329, width: 8)
            octal(Int64(e.deviceMinor), at: 337, width: 8)
        }
        put(prefix, at: 345, max: 155)
        // The checksum: the sum of the header's bytes with its own field as spaces.
        for i in 148..<156 { b[i] = 0x20 }
        let sum = b.reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        put([UInt8](repeating: UInt8(ascii: "0"), count: max(0, 6 - digits.count)) + digits + [0, 0x20], at: 148, max: 8)
        return b
    }

    // MARK: - Output

    private func emit(_ bytes: UnsafeRawBufferPointer) throws(GockerError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        count += Int64(bytes.count)
        if bytes.count > buffer.count - buffered {
            try flush()
            if bytes.count >= buffer.count {
                try sink.write(bytes)
                return
            }
        }
        (buffer.baseAddress! + buffered).copyMemory(from: base, byteCount: bytes.count)
        buffered += bytes.count
    }

    private func emit(_ bytes: [UInt8]) throws(GockerError) {
        var failure: GockerError?
        bytes.withUnsafeBytes { raw in
            do throws(GockerError) { try emit(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Zeros up to the next multiple of 512 after `size` bytes.
    private func pad(_ size: Int64) throws(GockerError) {
        try zeros(Int((512 - size % 512) % 512))
    }

    private func zeros(_ total: Int) throws(GockerError) {
        var n = total
        while n > 0 {
            if buffered == buffer.count { try flush() }
            let k = min(n, buffer.count - buffered)
            (buffer.baseAddress! + buffered).initializeMemory(as: UInt8.self, repeating: 0, count: k)
            buffered += k
            count += Int64(k)
            n -= k
        }
    }
}
