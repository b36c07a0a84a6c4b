import CGockerCore
import Glibc

/// Layer directories read back as archives: a container's upper layer as a
/// new layer (`commit`), the merged tree of a container (`export`), and the
/// upper layer's changes (`diff`).
///
/// Layers are overlayfs directories: a whiteout is a character device 0/0,
/// an opaque directory carries trusted.overlay.opaque = "y". In an archive
/// they become ".wh.NAME" and ".wh..wh..opq" (the OCI and docker form).
///
/// Every walk goes one directory descriptor at a time with O_NOFOLLOW: a
/// symlink a container made in its upper layer is archived as a symlink,
/// never followed, even while the container runs.
public enum LayerTree {
    /// Files the runtime creates in a container's root as mount points
    /// (/etc/hostname, /etc/hosts, /etc/resolv.conf): empty in the upper
    /// layer, not the container's own change.
    public static let mountPoints: Set<String> = ["etc/hostname", "etc/hosts", "etc/resolv.conf"]

    /// One change of `gocker diff`: "A" added, "C" changed, "D" deleted.
    public struct Change: Sendable, Equatable, CustomStringConvertible {
        public var kind: String
        public var path: String
        public var description: String { "\(kind) \(path)" }
    }

    // MARK: - commit

    /// Writes the upper layer `upper` as an archive layer: whiteouts and
    /// opaque directories in the archive form, runtime mount points left
    /// out, and directories that exist below unchanged and hold no change
    /// left out too. `lowers` are the layers below, top first.
    /// (`keepMountPoints`: a layer archived as it is, not a container's.)
    public static func writeChanges(upper: String, lowers: [String], to tar: TarWriter,
                                    keepMountPoints: Bool = false) throws(GockerError) {
        let root = try openRoot(upper)
        defer { Sys.close(root) }
        let scanned = try scan(root, rel: "")
        let nodes = keepMountPoints ? scanned : try prune(scanned, rel: "", lowers: lowers)
        var links: [[UInt64]: String] = [:]
        try emitChanges(nodes, in: root, rel: "", tar: tar, links: &links)
    }

    /// The changes `gocker diff` lists, sorted by path.
    public static func changes(upper: String, lowers: [String]) throws(GockerError) -> [Change] {
        let root = try openRoot(upper)
        defer { Sys.close(root) }
        let nodes = try prune(try scan(root, rel: ""), rel: "", lowers: lowers)
        var out: [Change] = []
        func walk(_ nodes: [Node], _ rel: String) {
            for n in nodes {
                let path = rel.isEmpty ? n.name : rel + "/" + n.name
                if n.whiteout {
                    out.append(Change(kind: "D", path: "/" + path))
                    continue
                }
                out.append(Change(kind: lowerStat(lowers, path) == nil ? "A" : "C", path: "/" + path))
                if n.opaque {
                    let kept = Set(n.children.map(\.name))
                    for name in lowerNames(lowers, path) where !kept.contains(name) {
                        out.append(Change(kind: "D", path: "/" + path + "/" + name))
                    }
                }
                walk(n.children, path)
            }
        }
        walk(nodes, "")
        return out.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    }

    // MARK: - export

    /// Writes the merged tree of `layers` (top first) as overlayfs shows it.
    public static func writeMerged(layers: [String], to tar: TarWriter) throws(GockerError) {
        var fds: [Int32] = []
        defer { fds.forEach(Sys.close) }
        for layer in layers { fds.append(try openRoot(layer)) }
        var links: [[UInt64]: String] = [:]
        try merge(fds, rel: "", tar: tar, links: &links)
    }

    private static func merge(_ fds: [Int32], rel: String, tar: TarWriter, links: inout [[UInt64]: String]) throws(GockerError) {
        // The topmost layer decides each name: a whiteout hides it below.
        var found: [String: (layer: Int, st: stat)] = [:]
        var hidden = Set<String>()
        for (i, fd) in fds.enumerated() {
            for name in try listNames(fd, rel: rel) where found[name] == nil && !hidden.contains(name) {
                var st = stat()
                guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                if isWhiteout(st) { hidden.insert(name) } else { found[name] = (i, st) }
            }
        }
        for name in found.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let (layer, st) = found[name]!
            let path = rel.isEmpty ? name : rel + "/" + name
            if st.st_mode & S_IFMT == S_IFDIR {
                // The directory's contents: this layer's and those below,
                // down to an opaque one or one where the name is not a directory.
                var children: [Int32] = []
                defer { children.forEach(Sys.close) }
                for j in layer..<fds.count {
                    var below = stat()
                    guard fstatat(fds[j], name, &below, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                    guard below.st_mode & S_IFMT == S_IFDIR else { break }
                    let fd = try openDirectory(fds[j], name, rel: path)
                    children.append(fd)
                    if isOpaque(fd) { break }
                }
                try tar.append(entry(path, st))
                try merge(children, rel: path, tar: tar, links: &links)
            } else {
                try emitNonDirectory(name, st, in: fds[layer], path: path, tar: tar, links: &links)
            }
        }
    }

    // MARK: - The upper layer as a tree

    struct Node {
        var name: String
        var st: stat
        var whiteout = false
        var opaque = false
        var children: [Node] = []
    }

    private static func scan(_ fd: Int32, rel: String) throws(GockerError) -> [Node] {
        var out: [Node] = []
        for name in try listNames(fd, rel: rel).sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let path = rel.isEmpty ? name : rel + "/" + name
            var node = Node(name: name, st: st)
            if isWhiteout(st) {
                node.whiteout = true
            } else if st.st_mode & S_IFMT == S_IFDIR {
                let dir = try openDirectory(fd, name, rel: path)
                defer { Sys.close(dir) }
                node.opaque = isOpaque(dir)
                node.children = try scan(dir, rel: path)
            }
            out.append(node)
        }
        return out
    }

    /// Leaves out the runtime's mount points, and directories that are in
    /// the upper layer only because something beneath them changed... and
    /// then nothing was left of that change.
    private static func prune(_ nodes: [Node], rel: String, lowers: [String]) throws(GockerError) -> [Node] {
        var out: [Node] = []
        for var n in nodes {
            let path = rel.isEmpty ? n.name : rel + "/" + n.name
            if mountPoints.contains(path) && n.st.st_mode & S_IFMT == S_IFREG && n.st.st_size == 0 { continue }
            if !n.whiteout && n.st.st_mode & S_IFMT == S_IFDIR {
                n.children = try prune(n.children, rel: path, lowers: lowers)
                if n.children.isEmpty && !n.opaque, let below = lowerStat(lowers, path),
                   below.st_mode == n.st.st_mode, below.st_uid == n.st.st_uid, below.st_gid == n.st.st_gid {
                    continue
                }
            }
            out.append(n)
        }
        return out
    }

    private static func emitChanges(_ nodes: [Node], in fd: Int32, rel: String, tar: TarWriter,
                                    links: inout [[UInt64]: String]) throws(GockerError) {
        for n in nodes {
            let path = rel.isEmpty ? n.name : rel + "/" + n.name
            if n.whiteout {
                var e = TarEntry(name: (rel.isEmpty ? "" : rel + "/") + ".wh." + n.name, kind: .file)
                e.mtime = .init(seconds: n.st.st_mtim.tv_sec, nanoseconds: 0)
                try tar.append(e)
            } else if n.st.st_mode & S_IFMT == S_IFDIR {
                try tar.append(entry(path, n.st))
                if n.opaque {
                    var e = TarEntry(name: path + "/.wh..wh..opq", kind: .file)
                    e.mtime = .init(seconds: n.st.st_mtim.tv_sec, nanoseconds: 0)
                    try tar.append(e)
                }
                let dir = try openDirectory(fd, n.name, rel: path)
                defer { Sys.close(dir) }
                try emitChanges(n.children, in: dir, rel: path, tar: tar, links: &links)
            } else {
                try emitNonDirectory(n.name, n.st, in: fd, path: path, tar: tar, links: &links)
            }
        }
    }

    // MARK: - Entries

    private static func emitNonDirectory(_ name: String, _ st: stat, in fd: Int32, path: String, tar: TarWriter,
                                         links: inout [[UInt64]: String]) throws(GockerError) {
        let kind = st.st_mode & S_IFMT
        if kind == S_IFSOCK { return }  // a socket has no archive form
        if kind != S_IFDIR && st.st_nlink > 1 {
            let key = [UInt64(st.st_dev), UInt64(st.st_ino)]
            if let first = links[key] {
                var e = entry(path, st)
                e.kind = .hardLink
                e.linkName = first
                e.size = 0
                try tar.append(e)
                return
            }
            links[key] = path
        }
        switch kind {
        case S_IFREG:
            let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard file >= 0 else {
                throw GockerError(.system, "archive \(path)", cause: SystemCallError("open", path: path, errno: errno))
            }
            defer { Sys.close(file) }
            var now = stat()
            guard fstat(file, &now) == 0, now.st_mode & S_IFMT == S_IFREG else {
                throw GockerError(.system, "archive \(path): it changed while being archived")
            }
            try tar.append(entry(path, now), from: file)
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(fd, name, &buf, buf.count - 1)
            guard n >= 0 else {
                throw GockerError(.system, "archive \(path)", cause: SystemCallError("readlink", path: path, errno: errno))
            }
            var e = entry(path, st)
            e.linkName = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            try tar.append(e)
        default:
            try tar.append(entry(path, st))
        }
    }

    /// The archive entry for a file with this status (content not included).
    static func entry(_ path: String, _ st: stat) -> TarEntry {
        let kind: TarEntry.Kind
        switch st.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFCHR: kind = .characterDevice
        case S_IFBLK: kind = .blockDevice
        case S_IFIFO: kind = .fifo
        default: kind = .file
        }
        var e = TarEntry(name: path, kind: kind)
        e.mode = UInt32(st.st_mode & 0o7777)
        e.uid = st.st_uid
        e.gid = st.st_gid
        e.mtime = .init(seconds: st.st_mtim.tv_sec, nanoseconds: 0)
        if kind == .file { e.size = Int64(st.st_size) }
        if kind == .characterDevice || kind == .blockDevice {
            let dev = UInt64(st.st_rdev)
            e.deviceMajor = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff)))
            e.deviceMinor = UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff)))
        }
        return e
    }

    // MARK: - Helpers

    static func isWhiteout(_ st: stat) -> Bool {
        st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0
    }

    static func isOpaque(_ dirFD: Int32) -> Bool {
        var value = [UInt8](repeating: 0, count: 4)
        let n = gk_fgetxattr(dirFD, Rootless.overlayAttributePrefix + "opaque", &value, value.count)
        return n == 1 && value[0] == UInt8(ascii: "y")
    }

    private static func openRoot(_ path: String) throws(GockerError) -> Int32 {
        try performing("open layer \(path)") { () throws(SystemCallError) in
            try Sys.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        }
    }

    private static func openDirectory(_ parent: Int32, _ name: String, rel: String) throws(GockerError) -> Int32 {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw GockerError(.system, "archive \(rel)", cause: SystemCallError("open", path: rel, errno: errno))
        }
        return fd
    }

    private static func listNames(_ fd: Int32, rel: String) throws(GockerError) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { Sys.close(copy) }
            throw GockerError(.system, "archive \(rel.isEmpty ? "/" : rel)", cause: SystemCallError("opendir", path: rel, errno: errno))
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The descriptor of `path` beneath `root`, each directory on the way
    /// opened without following a symlink; nil if any part is missing.
    private static func openBeneath(_ root: String, _ parts: [Substring]) -> Int32? {
        var fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        for part in parts {
            let next = openat(fd, String(part), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            Sys.close(fd)
            guard next >= 0 else { return nil }
            fd = next
        }
        return fd
    }

    /// What the layers below show at `path` (top first; a whiteout hides
    /// it), or nil.
    static func lowerStat(_ lowers: [String], _ path: String) -> stat? {
        let parts = path.split(separator: "/")
        guard let last = parts.last else { return nil }
        for layer in lowers {
            guard let dir = openBeneath(layer, Array(parts.dropLast())) else { continue }
            defer { Sys.close(dir) }
            var st = stat()
            guard fstatat(dir, String(last), &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            return isWhiteout(st) ? nil : st
        }
        return nil
    }

    /// The names the layers below show in the directory `path`.
    static func lowerNames(_ lowers: [String], _ path: String) -> [String] {
        var decided: [String: Bool] = [:]
        for layer in lowers {
            guard let dir = openBeneath(layer, path.split(separator: "/")) else { continue }
            defer { Sys.close(dir) }
            for name in (try? listNames(dir, rel: path)) ?? [] where decided[name] == nil {
                var st = stat()
                guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                decided[name] = !isWhiteout(st)
            }
            if isOpaque(dir) { break }
        }
        return decided.filter(\.value).keys.sorted()
    }
}
