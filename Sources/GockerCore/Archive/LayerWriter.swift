import CGockerCore
import Glibc

/// Writes tar entries into a layer directory, never outside it.
///
/// Every entry is created relative to a descriptor of its parent directory,
/// reached from the layer's root one component at a time with
/// `O_NOFOLLOW | O_DIRECTORY`: a symlink anywhere on the way is refused, not
/// followed, so nothing an archive has made can redirect a later entry.
/// (openat2's RESOLVE_BENEATH would do the same walk in the kernel; Glibc
/// has no wrapper for it and Swift cannot call the variadic syscall(2).)
///
/// The rules, with the entry named in every refusal:
/// - names: a leading "./" and "." components are dropped; an absolute name
///   or one with a ".." component is refused.
/// - symlinks are kept as they are, whatever their target: an absolute
///   target means the container's path, and a relative one that climbs
///   above the root stops there when the container follows it (as docker,
///   containerd and podman keep them; real images carry such links). No
///   entry is ever written through one (above).
/// - hard links name another member of the archive: an absolute or ".."
///   target is refused, and the target is looked up beneath the layer
///   without following symlinks.
/// - character and block devices are made only when gocker runs as root, as
///   docker import does (and skipped otherwise, as rootless docker does);
///   fifos always.
/// - ownership (numeric ids; only as root), modes (setuid, setgid and sticky
///   included) and modification times are kept; directories get theirs
///   once everything inside them is written. Extended attributes
///   (SCHILY.xattr, e.g. file capabilities) are read but not yet written:
///   Glibc's Swift module does not offer <sys/xattr.h>.
/// - whiteouts (".wh.*"): skipped for an imported root filesystem (one
///   flat layer with nothing beneath it to hide); for a layer of a stack
///   (`load`, `commit`) turned into overlayfs's own form: ".wh.NAME" becomes
///   a character device 0/0 named NAME, and ".wh..wh..opq" marks its
///   directory opaque (the xattr trusted.overlay.opaque = "y").
public final class LayerWriter {
    /// What becomes of whiteout entries.
    public enum Whiteouts: Sendable {
        case skip, overlay
    }

    private let rootFD: Int32
    private let isRoot: Bool
    /// Device nodes can be made: as the host's root only (not in a user
    /// namespace, rootless).
    private let makesDevices: Bool
    private let whiteouts: Whiteouts
    /// Directories' final metadata, by path, applied by `finish()`.
    private var directories: [String: TarEntry] = [:]
    /// Bytes of regular-file content and symlink targets written (hard
    /// links not counted twice): what a walk of the layer adds up.
    public private(set) var size: Int64 = 0
    /// Whether `size` is what a walk would count: false once an entry
    /// replaced or a whiteout removed something this layer wrote.
    public private(set) var sizeIsExact = true
    /// The directory the last entry went into, kept open: an archive
    /// lists a directory's members together, and the walk from the root
    /// costs an fstatat and an openat per component. Dropped whenever
    /// anything is removed (a replaced member, a whiteout), so a kept
    /// descriptor never stands for a directory that is gone or replaced.
    private var lastParent: (path: [String], fd: Int32)?
    private var forgetParentAfterEntry = false

    /// Writes into `directory`, which must exist (and should be empty).
    public init(directory: String, asRoot: Bool = geteuid() == 0, whiteouts: Whiteouts = .skip) throws(GockerError) {
        self.whiteouts = whiteouts
        rootFD = try performing("import: open \(directory)") { () throws(SystemCallError) in
            try Sys.open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        }
        isRoot = asRoot
        makesDevices = asRoot && !Rootless.active
    }

    deinit {
        forgetParent()
        Sys.close(rootFD)
    }

    /// The descriptor of the directory at `path`, made where missing: the
    /// kept one when it is the same directory. Owned by the writer (not
    /// to be closed).
    private func parentDirectory(_ path: [String], entry: String) throws(GockerError) -> Int32 {
        if let last = lastParent, last.path == path { return last.fd }
        let fd = try openDirectory(path, entry: entry, create: true)
        forgetParent()
        lastParent = (path, fd)
        return fd
    }

    private func forgetParent() {
        if let last = lastParent { Sys.close(last.fd) }
        lastParent = nil
    }

    /// An archive member name as path components beneath the layer's root
    /// (empty for the root itself), or a refusal.
    public static func components(of name: String, entry: String? = nil) throws(GockerError) -> [String] {
        let shown = entry ?? name
        if name.hasPrefix("/") { throw refusal(shown, "path escapes the layer (absolute name)") }
        var parts: [String] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw refusal(shown, "path escapes the layer") }
            parts.append(String(part))
        }
        return parts
    }

    static func refusal(_ name: String, _ why: String) -> GockerError {
        GockerError(.invalidArgument, "import: entry \"\(name)\": \(why)")
    }

    /// Writes one entry; a regular file's content comes from `reader`.
    public func write(_ entry: TarEntry, from reader: TarReader) throws(GockerError) {
        let path = try Self.components(of: entry.name)
        if isRoot, let why = Rootless.unmappedOwner(uid: entry.uid, gid: entry.gid) { throw Self.refusal(entry.name, why) }
        guard let last = path.last else {
            // "." or "./": the layer's root itself.
            guard entry.kind == .directory else { throw Self.refusal(entry.name, "the root must be a directory") }
            directories[""] = entry
            return
        }
        if last.hasPrefix(".wh.") {
            if whiteouts == .overlay { try whiteout(entry, path: path) }
            return
        }
        if entry.kind == .hardLink {
            // The target is another member's name, never a host path.
            guard !entry.linkName.hasPrefix("/"),
                  let target = try? Self.components(of: entry.linkName) else {
                throw Self.refusal(entry.name, "hard link target \"\(entry.linkName)\" is outside the layer")
            }
            if target.isEmpty { throw Self.refusal(entry.name, "hard link to the layer's root") }
            if target == path { return }  // a link to itself: nothing to do
        }
        if entry.kind == .symlink {
            if entry.linkName.isEmpty { throw Self.refusal(entry.name, "symlink with an empty target") }
        }
        if (entry.kind == .characterDevice || entry.kind == .blockDevice) && !makesDevices { return }

        let parent = try parentDirectory(Array(path.dropLast()), entry: entry.name)
        defer {
            if forgetParentAfterEntry { forgetParent() }
            forgetParentAfterEntry = false
        }
        try make(entry, named: last, in: parent, path: path, reader: reader)
    }

    /// Gives directories their modes, owners and times, deepest first, and
    /// the root 0755 unless the archive said otherwise.
    public func finish() throws(GockerError) {
        if directories[""] == nil {
            var root = TarEntry(name: ".", kind: .directory)
            root.mode = 0o755
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            root.mtime = .init(seconds: now.tv_sec, nanoseconds: now.tv_nsec)
            root.uid = geteuid()
            root.gid = getegid()
            directories[""] = root
        }
        let ordered = directories.sorted { a, b in
            let da = a.key.split(separator: "/").count, db = b.key.split(separator: "/").count
            return da != db ? da > db : a.key < b.key
        }
        for (key, entry) in ordered {
            let path = key.split(separator: "/").map(String.init)
            // A directory a later entry replaced is gone: nothing to apply.
            guard let fd = try? openDirectory(path, entry: entry.name, create: false) else { continue }
            defer { Sys.close(fd) }
            try system(entry.name, "set owner, mode and times") { () throws(SystemCallError) in
                if isRoot { try Sys.check("fchown", path: entry.name) { fchown(fd, entry.uid, entry.gid) } }
                try Sys.check("fchmod", path: entry.name) { fchmod(fd, mode_t(entry.mode)) }
                var times = Self.times(entry)
                try Sys.check("futimens", path: entry.name) { futimens(fd, &times) }
            }
        }
    }

    /// The overlay form of a whiteout entry.
    private func whiteout(_ entry: TarEntry, path: [String]) throws(GockerError) {
        let last = path.last!
        let parent = try openDirectory(Array(path.dropLast()), entry: entry.name, create: true)
        defer { Sys.close(parent) }
        if last == ".wh..wh..opq" {
            _ = try system(entry.name, "mark the directory opaque") { () throws(SystemCallError) in
                try Sys.check("setxattr", path: entry.name) { gk_fsetxattr(parent, Rootless.overlayAttributePrefix + "opaque", "y", 1, 0) }
            }
            return
        }
        // Other ".wh..wh." names are aufs's own bookkeeping (".wh..wh..plnk"), not whiteouts.
        if last.hasPrefix(".wh..wh.") { return }
        let hidden = String(last.dropFirst(4))
        if hidden.isEmpty || hidden == "." || hidden == ".." || hidden.hasPrefix(".wh.") {
            throw Self.refusal(entry.name, "invalid whiteout")
        }
        var st = stat()
        if fstatat(parent, hidden, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            forgetParent()
            sizeIsExact = false
            try system(entry.name, "replace") { () throws(SystemCallError) in
                try Self.removeTree(parent, hidden, isDirectory: st.st_mode & S_IFMT == S_IFDIR)
            }
            directories[(Array(path.dropLast()) + [hidden]).joined(separator: "/")] = nil
        }
        _ = try system(entry.name, "create whiteout") { () throws(SystemCallError) in
            try Sys.check("mknod", path: entry.name) { mknodat(parent, hidden, S_IFCHR, Self.makedev(0, 0)) }
        }
    }

    // MARK: - Walking

    /// A descriptor of the directory at `path` beneath the root, made (0755)
    /// where missing when `create`; a symlink or non-directory on the way is
    /// refused.
    private func openDirectory(_ path: [String], entry: String, create: Bool) throws(GockerError) -> Int32 {
        var fd = dup(rootFD)
        guard fd >= 0 else { throw GockerError(.system, "import: dup", cause: SystemCallError("dup", errno: errno)) }
        var walked: [String] = []
        for part in path {
            walked.append(part)
            var st = stat()
            if fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) < 0 {
                let e = errno
                guard e == ENOENT, create else {
                    Sys.close(fd)
                    throw Self.refusal(entry, "\(walked.joined(separator: "/")): \(errnoText(e))")
                }
                if mkdirat(fd, part, 0o755) < 0 && errno != EEXIST {
                    let e = errno
                    Sys.close(fd)
                    throw GockerError(.system, "import: entry \"\(entry)\"",
                                      cause: SystemCallError("mkdir", path: walked.joined(separator: "/"), errno: e))
                }
            } else if st.st_mode & S_IFMT == S_IFLNK {
                Sys.close(fd)
                throw Self.refusal(entry, "path goes through the symlink \"\(walked.joined(separator: "/"))\"")
            } else if st.st_mode & S_IFMT != S_IFDIR {
                Sys.close(fd)
                throw Self.refusal(entry, "\"\(walked.joined(separator: "/"))\" is not a directory")
            }
            // The check above gives the message; O_NOFOLLOW is the guarantee.
            let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            Sys.close(fd)
            guard next >= 0 else {
                throw Self.refusal(entry, "\(walked.joined(separator: "/")): \(e == ELOOP || e == ENOTDIR ? "not a directory" : errnoText(e))")
            }
            fd = next
        }
        return fd
    }

    // MARK: - Making entries

    private func make(_ entry: TarEntry, named name: String, in parent: Int32, path: [String],
                      reader: TarReader) throws(GockerError) {
        var st = stat()
        if fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            if st.st_mode & S_IFMT == S_IFDIR && entry.kind == .directory {
                directories[path.joined(separator: "/")] = entry
                return
            }
            // A later member replaces an earlier one, as tar does. (The kept
            // directory, `parent` itself, is let go once this entry is made.)
            forgetParentAfterEntry = true
            sizeIsExact = false
            try system(entry.name, "replace") { () throws(SystemCallError) in
                try Self.removeTree(parent, name, isDirectory: st.st_mode & S_IFMT == S_IFDIR)
            }
            directories[path.joined(separator: "/")] = nil
        }
        switch entry.kind {
        case .directory:
            try system(entry.name, "create directory") { () throws(SystemCallError) in
                // Writable by its maker until finish() gives it its mode.
                try Sys.check("mkdir", path: entry.name) { mkdirat(parent, name, 0o700) }
            }
            directories[path.joined(separator: "/")] = entry
        case .file:
            try writeFile(entry, named: name, in: parent, reader: reader)
        case .symlink:
            try system(entry.name, "create symlink") { () throws(SystemCallError) in
                try Sys.check("symlink", path: entry.name) { symlinkat(entry.linkName, parent, name) }
                try finishNode(entry, named: name, in: parent, chmod: false)
            }
            size += Int64(entry.linkName.utf8.count)
        case .hardLink:
            let target = try Self.components(of: entry.linkName, entry: entry.name)
            let targetParent = try openDirectory(Array(target.dropLast()), entry: entry.name, create: false)
            defer { Sys.close(targetParent) }
            var tst = stat()
            guard fstatat(targetParent, target.last!, &tst, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw Self.refusal(entry.name, "hard link target \"\(entry.linkName)\" is not in the archive before it")
            }
            if tst.st_mode & S_IFMT == S_IFDIR {
                throw Self.refusal(entry.name, "hard link target \"\(entry.linkName)\" is a directory")
            }
            // Flags 0: a symlink target is linked itself, never followed.
            try system(entry.name, "create hard link") { () throws(SystemCallError) in
                try Sys.check("link", path: entry.name) { linkat(targetParent, target.last!, parent, name, 0) }
            }
        case .characterDevice, .blockDevice, .fifo:
            let type = entry.kind == .fifo ? S_IFIFO : entry.kind == .characterDevice ? S_IFCHR : S_IFBLK
            try system(entry.name, "create node") { () throws(SystemCallError) in
                let dev = Self.makedev(entry.deviceMajor, entry.deviceMinor)
                try Sys.check("mknod", path: entry.name) { mknodat(parent, name, type | 0o600, dev) }
                try finishNode(entry, named: name, in: parent, chmod: true)
            }
        }
    }

    private func writeFile(_ entry: TarEntry, named name: String, in parent: Int32, reader: TarReader) throws(GockerError) {
        let fd = try system(entry.name, "create file") { () throws(SystemCallError) in
            try Sys.check("open", path: entry.name) {
                openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            }
        }
        defer { Sys.close(fd) }
        // Straight from the reader's buffer: one write(2) per piece of it.
        while true {
            let piece = try reader.nextContent()
            guard let base = piece.baseAddress, piece.count > 0 else { break }
            try system(entry.name, "write") { () throws(SystemCallError) in
                var off = 0
                while off < piece.count {
                    off += try Sys.check("write", path: entry.name) { Glibc.write(fd, base + off, piece.count - off) }
                }
            }
        }
        size += entry.size
        try system(entry.name, "set owner, mode and times") { () throws(SystemCallError) in
            // chown before chmod: chown clears setuid and setgid.
            if isRoot { try Sys.check("fchown", path: entry.name) { fchown(fd, entry.uid, entry.gid) } }
            try Sys.check("fchmod", path: entry.name) { fchmod(fd, mode_t(entry.mode)) }
            var times = Self.times(entry)
            try Sys.check("futimens", path: entry.name) { futimens(fd, &times) }
        }
    }

    /// Owner, mode and times of a node made by name (not opened): the name
    /// was just created by us and is not followed.
    private func finishNode(_ entry: TarEntry, named name: String, in parent: Int32, chmod: Bool) throws(SystemCallError) {
        if isRoot {
            try Sys.check("lchown", path: entry.name) { fchownat(parent, name, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) }
        }
        if chmod { try Sys.check("chmod", path: entry.name) { fchmodat(parent, name, mode_t(entry.mode), 0) } }
        var times = Self.times(entry)
        try Sys.check("utimensat", path: entry.name) { utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW) }
    }

    /// glibc's makedev(3), a macro that does not reach Swift.
    static func makedev(_ major: UInt32, _ minor: UInt32) -> dev_t {
        let ma = dev_t(major), mi = dev_t(minor)
        return (ma & 0xfff) << 8 | (ma & ~0xfff) << 32 | (mi & 0xff) | (mi & ~0xff) << 12
    }

    private static func times(_ entry: TarEntry) -> [timespec] {
        let m = timespec(tv_sec: entry.mtime.seconds, tv_nsec: entry.mtime.nanoseconds)
        let a = entry.atime.map { timespec(tv_sec: $0.seconds, tv_nsec: $0.nanoseconds) } ?? m
        return [a, m]
    }

    @discardableResult
    private func system<T>(_ name: String, _ what: String, _ body: () throws(SystemCallError) -> T) throws(GockerError) -> T {
        try performing("import: entry \"\(name)\": \(what)", body)
    }

    /// Removes `name` in `parent` and, for a directory, everything beneath
    /// it, never following a symlink.
    static func removeTree(_ parent: Int32, _ name: String, isDirectory: Bool) throws(SystemCallError) {
        if !isDirectory {
            try Sys.check("unlink", path: name) { unlinkat(parent, name, 0) }
            return
        }
        let fd = try Sys.check("open", path: name) { openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard let dir = fdopendir(fd) else {
            Sys.close(fd)
            throw SystemCallError("fdopendir", path: name, errno: errno)
        }
        defer { closedir(dir) }
        while let ent = readdir(dir) {
            let child = withUnsafeBytes(of: ent.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if child == "." || child == ".." { continue }
            var st = stat()
            try Sys.check("lstat", path: child) { fstatat(fd, child, &st, AT_SYMLINK_NOFOLLOW) }
            try removeTree(fd, child, isDirectory: st.st_mode & S_IFMT == S_IFDIR)
        }
        try Sys.check("rmdir", path: name) { unlinkat(parent, name, AT_REMOVEDIR) }
    }
}
