import Glibc
import GockerCore

/// The tree `gocker bench --images` times gocker on: ordinary files of
/// about a given size, the same for the same seed. Mostly small files,
/// some medium, a few large (as in a system's /usr/lib), in nested
/// directories, with relative symlinks to files beside them; half of the
/// files text (lines of words), half binary-like (runs of random bytes,
/// near-copies of recent blocks, small integers), so that they compress
/// about as real ones do: neither all zeros nor all random.
struct BenchTree {
    struct Stats: Codable, Sendable, Equatable {
        var files = 0
        var directories = 0
        var symlinks = 0
        /// The files' contents.
        var bytes: Int64 = 0
    }

    typealias Random = SplitMix64

    let size: Int64
    let seed: UInt64

    /// Writes the tree into `root` (which must not exist). `stop` is asked
    /// between files; when it says so, the tree is left as it is.
    func write(to root: String, stop: () -> Bool) throws(GockerError) -> Stats {
        var rng = Random(seed: seed)
        let words = Self.vocabulary(&rng)
        var stats = Stats()
        var buffer: [UInt8] = []
        try performing("create \(root)") { () throws(SystemCallError) in
            _ = try Sys.check("mkdir", path: root) { mkdir(root, 0o755) }
        }
        var dirs: [(path: String, depth: Int)] = [("", 0)]
        var current = ""
        var inCurrent: [String] = []
        var dirQuota = 0
        // No single file larger than a sixteenth of the tree (a small tree
        // still gets its mix).
        let largest = Swift.max(1 << 16, Swift.min(8 << 20, Int(size / 16)))
        var index = 0
        while stats.bytes < size {
            if stop() { break }
            index += 1
            if inCurrent.count >= dirQuota {
                let parent = dirs[rng.below(dirs.count)]
                let under = parent.depth < 4 ? parent : dirs[0]
                let path = (under.path.isEmpty ? "" : under.path + "/") + "d\(index)"
                try performing("create \(root)/\(path)") { () throws(SystemCallError) in
                    _ = try Sys.check("mkdir", path: path) { mkdir(root + "/" + path, 0o755) }
                }
                dirs.append((path, under.depth + 1))
                stats.directories += 1
                current = path
                inCurrent = []
                dirQuota = 6 + rng.below(40)
            }
            if let target = inCurrent.last, rng.below(100) < 5 {
                let link = "\(root)/\(current)/l\(index)"
                try performing("symlink \(link)") { () throws(SystemCallError) in
                    _ = try Sys.check("symlink", path: link) { symlink(target, link) }
                }
                stats.symlinks += 1
                continue
            }
            let kind = rng.below(100)
            var length = kind < 72 ? rng.logUniform(64, 8 << 10)
                : kind < 97 ? rng.logUniform(8 << 10, 256 << 10)
                : rng.logUniform(Swift.min(256 << 10, largest), largest)
            length = Int(Swift.min(Int64(length), size - stats.bytes))
            let text = rng.below(2) == 0
            buffer.removeAll(keepingCapacity: true)
            if text {
                Self.fillText(&buffer, length, words: words, &rng)
            } else {
                Self.fillBinary(&buffer, length, &rng)
            }
            let name = text ? "f\(index).txt" : "f\(index).so"
            let path = "\(root)/\(current)/\(name)"
            let mode: mode_t = !text && rng.below(3) == 0 ? 0o755 : 0o644
            try performing("write \(path)") { () throws(SystemCallError) in
                let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
                defer { Sys.close(fd) }
                try Sys.writeAll(fd, buffer, path: path)
                _ = try Sys.check("fchmod", path: path) { fchmod(fd, mode) }
            }
            inCurrent.append(name)
            stats.files += 1
            stats.bytes += Int64(length)
        }
        return stats
    }

    /// Made-up words, short ones more often, from the seed.
    static func vocabulary(_ rng: inout Random) -> [[UInt8]] {
        let letters = Array("etaoinshrdlcumwfgypbvkjxqz_".utf8)
        return (0..<600).map { _ in
            let n = 2 + rng.below(4) + rng.below(6)
            return (0..<n).map { _ in letters[Swift.min(rng.below(12), rng.below(letters.count))] }
        }
    }

    /// Lines of words, some indented, some with numbers.
    static func fillText(_ out: inout [UInt8], _ length: Int, words: [[UInt8]], _ rng: inout Random) {
        out.reserveCapacity(length)
        while out.count < length {
            if rng.below(4) == 0 { out.append(contentsOf: [0x20, 0x20, 0x20, 0x20]) }
            for w in 0..<(2 + rng.below(10)) {
                if w > 0 { out.append(0x20) }
                if rng.below(12) == 0 {
                    out.append(contentsOf: Array(String(rng.below(100_000)).utf8))
                } else {
                    // Zipf-like: a few words most of the time.
                    out.append(contentsOf: words[Swift.min(rng.below(words.count), rng.below(words.count))])
                }
            }
            out.append(0x0A)
        }
        out.removeLast(out.count - length)
    }

    /// Blocks of 64 bytes: random (a fifth), a near-copy of a block of the
    /// last 16 kB (code and tables repeat), or small little-endian integers.
    static func fillBinary(_ out: inout [UInt8], _ length: Int, _ rng: inout Random) {
        out.reserveCapacity(length + 64)
        while out.count < length {
            let k = rng.below(100)
            if k < 20 || out.count < 256 {
                for _ in 0..<8 {
                    var v = rng.next()
                    for _ in 0..<8 { out.append(UInt8(truncatingIfNeeded: v)); v >>= 8 }
                }
            } else if k < 65 {
                let back = 64 * (1 + rng.below(Swift.min(256, out.count / 64)))
                let from = out.count - back
                for i in 0..<64 { out.append(out[from + i]) }
                for _ in 0..<4 { out[out.count - 1 - rng.below(64)] = UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                for _ in 0..<16 {
                    let v = UInt32(rng.below(rng.below(2) == 0 ? 256 : 65536))
                    out.append(contentsOf: [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8), 0, 0])
                }
            }
        }
        out.removeLast(out.count - length)
    }
}

extension SplitMix64 {
    /// lo...hi, spread evenly over the logarithm (sizes).
    mutating func logUniform(_ lo: Int, _ hi: Int) -> Int {
        let u = Double(next() >> 11) / Double(1 << 53)
        return Swift.min(hi, Int(Double(lo) * exp(u * log(Double(hi) / Double(lo)))))
    }
}
