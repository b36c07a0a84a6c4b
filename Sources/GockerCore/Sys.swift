import CGockerCore
import FoundationEssentials
import Glibc

/// Thin wrappers over the system calls gocker makes from Swift: each retries
/// EINTR and throws a SystemCallError naming the call and the path.
public enum Sys {
    @discardableResult
    public static func check<T: BinaryInteger>(
        _ call: String, path: String? = nil, _ body: () -> T
    ) throws(SystemCallError) -> T {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = Glibc.errno
            if e != EINTR { throw SystemCallError(call, path: path, errno: e) }
        }
    }

    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws(SystemCallError) -> Int32 {
        try check("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// The NUL-terminated text a C call wrote into `buffer`.
    public static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads a whole file, into a buffer of the size the file says it has
    /// (proc and cgroup files say 0: a page first; at most 1 MB first),
    /// not zeroed first.
    public static func readFile(_ path: String) throws(SystemCallError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        return try readAll(fd, path: path)
    }

    /// The rest of open file `fd` (`path` names it in errors).
    public static func readAll(_ fd: Int32, path: String) throws(SystemCallError) -> [UInt8] {
        var st = stat()
        var size = fstat(fd, &st) == 0 && st.st_size > 0 ? min(Int(st.st_size) + 1, 1 << 20) : 4096
        var out: [UInt8] = []
        while true {
            var failure: Int32 = 0
            let chunk = [UInt8](unsafeUninitializedCapacity: size) { buf, count in
                count = 0
                while count < buf.count {
                    let n = Glibc.read(fd, buf.baseAddress! + count, buf.count - count)
                    if n > 0 {
                        count += n
                    } else if n == 0 {
                        return
                    } else if errno != EINTR {
                        failure = errno
                        return
                    }
                }
            }
            if failure != 0 { throw SystemCallError("read", path: path, errno: failure) }
            if out.isEmpty { out = chunk } else { out += chunk }
            if chunk.count < size { return out }  // its end
            size = max(size, 65536)
        }
    }

    public static func readText(_ path: String) throws(SystemCallError) -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }

    public static func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>, path: String) throws(SystemCallError) {
        let array = Array(bytes)
        var off = 0
        while off < array.count {
            let n = try check("write", path: path) {
                array.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            }
            off += n
        }
    }

    /// Writes a file whole: to a temporary name beside it, then rename(2), so
    /// that a reader sees the old content or the new, never a part.
    ///
    /// - exchange: an existing file is swapped with the new one
    ///   (renameat2's RENAME_EXCHANGE) and then unlinked, instead of renamed
    ///   over. ext4 writes a file renamed over another out at once
    ///   (auto_da_alloc), which makes the rename and a later unlink of the
    ///   file wait for the disk: this skips that, and with it the promise
    ///   that the new content survives a power loss. For files that do not
    ///   outlive the machine's uptime anyway (a container's state).
    public static func writeFileAtomic(_ path: String, _ bytes: some Collection<UInt8>, mode: mode_t = 0o644,
                                       exchange: Bool = false) throws(SystemCallError) {
        let tmp = "\(path).tmp-\(getpid())"
        var fd = try open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode)
        do {
            try writeAll(fd, bytes, path: tmp)
            close(fd)
            // Closed once only: another thread may have the number by now.
            fd = -1
            // (No file to swap with, or a file system that cannot: renamed.)
            if exchange && gk_rename_exchange(tmp, path) == 0 {
                _ = unlink(tmp)
                return
            }
            try check("rename", path: path) { Glibc.rename(tmp, path) }
        } catch {
            if fd >= 0 { close(fd) }
            _ = unlink(tmp)
            throw error
        }
    }

    /// Replaces the content of open file `fd` in place: its room reserved
    /// first (fallocate, its size kept), then one pwrite(2) of
    /// `bytes`, padded with spaces to the old length, then ftruncate(2) to
    /// the new one, so that a process killed between the two leaves the
    /// new document and blanks (which a JSON reader skips). For a file that
    /// its writers change under a lock: rename(2) over an existing file
    /// costs ext4 a flush of the new one's data (auto_da_alloc), half a
    /// millisecond on this kind of machine.
    public static func rewrite(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemCallError) {
        var st = stat()
        try check("fstat", path: path) { fstat(fd, &st) }
        var out = bytes
        if Int(st.st_size) > out.count { out += repeatElement(UInt8(ascii: " "), count: Int(st.st_size) - out.count) }
        // A full disk is found before anything is overwritten (a file
        // system without fallocate goes on).
        if out.count > Int(st.st_size) && gk_reserve(fd, Int64(out.count)) < 0 && errno != EOPNOTSUPP {
            throw SystemCallError("fallocate", path: path, errno: errno)
        }
        var off = 0
        while off < out.count {
            let n = try check("pwrite", path: path) {
                out.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress! + off, $0.count - off, off_t(off)) }
            }
            off += n
        }
        try check("ftruncate", path: path) { ftruncate(fd, off_t(bytes.count)) }
    }

    /// Creates a file that must not exist yet, with the given content.
    public static func writeFileExclusive(_ path: String, _ bytes: some Collection<UInt8>, mode: mode_t = 0o644) throws(SystemCallError) {
        let fd = try open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
    }

    /// The non-empty components of a "/"-separated path. By hand: split's
    /// Substrings joined or appended to a String go through generic code
    /// that, on its first use in a process, has the runtime scan every
    /// protocol conformance in the binary (on a start's path).
    public static func components(_ path: String) -> [String] {
        var components: [String] = []
        var part = ""
        for c in path {
            if c != "/" {
                part.append(c)
            } else if !part.isEmpty {
                components.append(part)
                part = ""
            }
        }
        if !part.isEmpty { components.append(part) }
        return components
    }

    /// mkdir -p.
    public static func mkdirAll(_ path: String, mode: mode_t = 0o755) throws(SystemCallError) {
        // Mostly only the last name is missing (a container's group or
        // state directory): one call, not one per component.
        if mkdir(path, mode) == 0 { return }
        var current = path.hasPrefix("/") ? "" : "."
        for part in components(path) {
            current += "/"
            current += part
            if mkdir(current, mode) < 0 {
                let e = Glibc.errno
                if e != EEXIST { throw SystemCallError("mkdir", path: current, errno: e) }
            }
        }
        var st = stat()
        if stat(path, &st) < 0 { throw SystemCallError("stat", path: path, errno: Glibc.errno) }
        if st.st_mode & S_IFMT != S_IFDIR { throw SystemCallError("mkdir", path: path, errno: ENOTDIR) }
    }

    /// rm -rf: removes `path` and everything below it, never following a
    /// symlink; what is already gone (a missing path, or entries another
    /// gocker removes at the same time) is not an error.
    public static func removeAll(_ path: String) throws(SystemCallError) {
        var call: UnsafePointer<CChar>?
        var failed = [CChar](repeating: 0, count: Int(PATH_MAX))
        let r = gk_remove_tree(path, &call, &failed, failed.count)
        if r < 0 {
            throw SystemCallError(call.map { String(cString: $0) } ?? "remove", path: Sys.string(failed), errno: -r)
        }
    }

    /// The names in a directory, without "." and "..".
    public static func listDirectory(_ path: String) throws(SystemCallError) -> [String] {
        guard let dir = opendir(path) else { throw SystemCallError("opendir", path: path, errno: Glibc.errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// The device and inode `path` leads to (following links), or nil: tells
    /// whether two /proc/PID/ns/ links name the same namespace.
    public static func fileID(_ path: String) -> [UInt64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    /// An exclusive flock(2) on `path` (created if missing), held until
    /// the returned descriptor is closed.
    public static func lock(_ path: String) throws(SystemCallError) -> Int32 {
        let fd = try open(path, O_RDWR | O_CREAT, 0o600)
        do {
            try check("flock", path: path) { flock(fd, LOCK_EX) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Random bytes from the kernel.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            // getrandom(2): /dev/urandom's bytes without opening it.
            let n = out.withUnsafeMutableBytes { gk_getrandom($0.baseAddress! + got, count - got) }
            if n > 0 { got += n } else if n < 0 && Glibc.errno != EINTR { preconditionFailure("getrandom") }
        }
        return out
    }

    /// The environment variable, or nil.
    public static func env(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}

extension Array where Element == UInt8 {
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var s = [UInt8]()
        s.reserveCapacity(count * 2)
        for b in self {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 15)])
        }
        return String(decoding: s, as: UTF8.self)
    }
}
