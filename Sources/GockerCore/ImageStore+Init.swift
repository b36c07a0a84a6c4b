import Glibc
import CGockerCore

/// The init layer: one small read-only layer, shared by every docker-like
/// container, that holds the mount points gocker binds the container's
/// own files onto (`etc/hostname`, `etc/hosts`, `etc/resolv.conf`, empty,
/// 0644, root's; `etc` 0755, root's). Laid over the image's layers, it
/// spares each container the copy-up of /etc and three new files in its
/// upper layer at every start, and their removal at the end. Its files are
/// always covered by the binds, so a container sees what it saw without
/// it. `commit` and `diff` leave it out (it is no change of the
/// container's); `export` has its empty files, as it had them from the
/// upper layer before.
extension ImageStore {
    public var initLayerPath: String { root + "/init" }

    static let initFiles = ["hostname", "hosts", "resolv.conf"]

    /// The init layer for a container of the image made of `layers`
    /// (bottom first), made on first use; nil when that image's /etc would
    /// look different under it (not a directory of root's with mode 0755
    /// and no extended attributes, or one of the three names not a regular
    /// file), or when it cannot be made: then the mount points are made in
    /// the container's own upper layer, as they always could be.
    public func initLayer(for layers: [String]) -> String? {
        guard Self.imageTakesInitLayer(topFirst: layers.reversed().map(layerPath)) else { return nil }
        let path = initLayerPath
        if Sys.isDirectory(path) { return path }
        // Made aside and renamed into place: a concurrent gocker sees all
        // of it or none, and the loser of two renames drops its copy.
        let tmp = root + "/.init-\(Sys.randomBytes(8).hex)"
        do throws(SystemCallError) {
            try Sys.mkdirAll(root, mode: 0o700)
            try Self.makeDirectory(tmp)
            try Self.makeDirectory(tmp + "/etc")
            for name in Self.initFiles {
                let fd = try Sys.open(tmp + "/etc/" + name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
                defer { close(fd) }
                try Sys.check("fchmod", path: name) { fchmod(fd, 0o644) }
            }
            if Glibc.rename(tmp, path) < 0 {
                let e = errno
                try? Sys.removeAll(tmp)
                guard (e == EEXIST || e == ENOTEMPTY) && Sys.isDirectory(path) else { return nil }
            }
            return path
        } catch {
            try? Sys.removeAll(tmp)
            return nil
        }
    }

    /// mkdir with mode 0755 whatever the umask.
    private static func makeDirectory(_ path: String) throws(SystemCallError) {
        try Sys.check("mkdir", path: path) { mkdir(path, 0o755) }
        try Sys.check("chmod", path: path) { chmod(path, 0o755) }
    }

    /// Whether `path` has extended attributes a container would see (an
    /// ACL, a security label): overlayfs shows the topmost directory's,
    /// which would be the init layer's. Its own (trusted.overlay.*) it
    /// never shows.
    static func hasOwnAttributes(_ path: String) -> Bool {
        var names = [CChar](repeating: 0, count: 1024)
        let n = gk_llistxattr(path, &names, names.count)
        if n < 0 { return errno != ENOTSUP }
        var start = 0
        for i in 0..<n where names[i] == 0 {
            let name = names[start..<i].withUnsafeBufferPointer { String(decoding: UnsafeRawBufferPointer($0), as: UTF8.self) }
            if !name.hasPrefix(Rootless.overlayAttributePrefix) { return true }
            start = i + 1
        }
        return false
    }

    /// Whether the image's merged /etc (its layers top first, as overlayfs
    /// merges them: whiteouts and opaque directories hide what lies below)
    /// is absent or a directory of root's with mode 0755 and no extended
    /// attributes of its own, and each of the three names in it absent or
    /// a regular file.
    static func imageTakesInitLayer(topFirst layers: [String]) -> Bool {
        var etcFound = false
        var pending = Set(initFiles)
        for (index, layer) in layers.enumerated() {
            var st = stat()
            if !etcFound {
                guard lstat(layer + "/etc", &st) == 0 else {
                    if errno == ENOENT { continue }
                    return false
                }
                if LayerTree.isWhiteout(st) { return true }
                guard st.st_mode & S_IFMT == S_IFDIR, st.st_mode & 0o7777 == 0o755, st.st_uid == 0, st.st_gid == 0,
                      !hasOwnAttributes(layer + "/etc") else {
                    return false
                }
                etcFound = true
            } else {
                // Below the /etc that shows: a non-directory (or a whiteout)
                // here is hidden by it, and so is all beneath.
                guard lstat(layer + "/etc", &st) == 0 else {
                    if errno == ENOENT { continue }
                    return false
                }
                if st.st_mode & S_IFMT != S_IFDIR { return true }
            }
            for name in pending {
                guard lstat(layer + "/etc/" + name, &st) == 0 else {
                    if errno == ENOENT { continue }
                    return false
                }
                if !LayerTree.isWhiteout(st) && st.st_mode & S_IFMT != S_IFREG { return false }
                pending.remove(name)
            }
            if pending.isEmpty || index == layers.count - 1 { return true }
            let fd = open(layer + "/etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return false }
            let opaque = LayerTree.isOpaque(fd)
            close(fd)
            if opaque { return true }
        }
        return true
    }
}
