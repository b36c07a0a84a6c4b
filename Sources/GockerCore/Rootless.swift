import CGockerCore
import Glibc

/// gocker started by an ordinary user (see csrc/rootless.c): it runs as
/// root of a user namespace of that user's own, and keeps its images,
/// containers and state in the user's directories.
public enum Rootless {
    /// The host user and group gocker runs for, and the user's runtime
    /// directory; nil when gocker runs as the host's root.
    public struct User: Sendable {
        public let uid: UInt32
        public let gid: UInt32
        /// $XDG_RUNTIME_DIR/gocker, or /tmp/gocker-UID.
        public let runtimeDirectory: String
    }

    public static let user: User? = {
        var uid: UInt32 = 0, gid: UInt32 = 0
        var dir: UnsafePointer<CChar>?
        if gk_rootless_state(&uid, &gid, &dir) != 0, let dir {
            return User(uid: uid, gid: gid, runtimeDirectory: String(cString: dir))
        }
        // A gocker started by one that joined (the monitor, hooks).
        guard let uid = Sys.env("GOCKER_ROOTLESS_UID").flatMap({ UInt32($0) }),
              let gid = Sys.env("GOCKER_ROOTLESS_GID").flatMap({ UInt32($0) }),
              let dir = Sys.env("GOCKER_ROOTLESS_DIR"), dir.hasPrefix("/") else { return nil }
        return User(uid: uid, gid: gid, runtimeDirectory: dir)
    }()

    public static var active: Bool { user != nil }

    /// Images, containers' layers, logs and volumes: /var/lib/gocker for
    /// root; `$XDG_DATA_HOME/gocker` (default `~/.local/share/gocker`) for a
    /// user.
    public static var defaultDataRoot: String {
        guard let user else { return "/var/lib/gocker" }
        if let xdg = Sys.env("XDG_DATA_HOME"), xdg.hasPrefix("/") { return xdg + "/gocker" }
        if let home = Sys.env("HOME"), home.hasPrefix("/"), home != "/" { return home + "/.local/share/gocker" }
        return user.runtimeDirectory + "/data"
    }

    /// Live containers' state: /run/gocker for root, the runtime directory
    /// for a user.
    public static var defaultStateRoot: String { user?.runtimeDirectory ?? "/run/gocker" }

    /// Where overlayfs keeps its own attributes (opaque directories):
    /// trusted.overlay.* for root; user.overlay.* in a user namespace,
    /// where trusted.* is out of reach (mounted with "userxattr").
    public static var overlayAttributePrefix: String { active ? "user.overlay." : "trusted.overlay." }

    /// The user namespace's maps (/proc/self/uid_map and gid_map as
    /// seen inside): each line's first id inside, first id on the host,
    /// and count.
    public struct MapLine: Sendable {
        public let inside: UInt32, outside: UInt32, count: UInt32
    }

    public static let maps: (uids: [MapLine], gids: [MapLine]) = {
        func read(_ file: String) -> [MapLine] {
            guard let bytes = try? Sys.readFile(file) else { return [] }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count == 3, let a = UInt32(f[0]), let b = UInt32(f[1]), let n = UInt32(f[2]) else { return nil }
                return MapLine(inside: a, outside: b, count: n)
            }
        }
        return (read("/proc/self/uid_map"), read("/proc/self/gid_map"))
    }()

    /// An OCI config's id maps, whose hostIDs are the host's (as runc's
    /// rootless configs name the user's own id), as ids of gocker's
    /// namespace, which is the host a container's namespace is made in
    /// here. A range the user cannot map is refused.
    public static func inside(_ mappings: [Spec.IDMapping], gids: Bool) throws(GockerError) -> [Spec.IDMapping] {
        guard active else { return mappings }
        let lines = gids ? maps.gids : maps.uids
        return try mappings.map { m throws(GockerError) in
            let first = UInt64(m.hostID), end = UInt64(m.hostID) + UInt64(m.size)
            guard let l = lines.first(where: { UInt64($0.outside) <= first && end <= UInt64($0.outside) + UInt64($0.count) }) else {
                let have = lines.map { "\($0.outside)-\(UInt64($0.outside) + UInt64($0.count) - 1)" }.joined(separator: ", ")
                throw GockerError(.invalidConfig, "linux.\(gids ? "gidMappings" : "uidMappings"): host ids \(m.hostID)-\(end - 1) are not this user's to map (its ids: \(have); see /etc/subuid and /etc/subgid)")
            }
            var out = m
            out.hostID = l.inside + (m.hostID - l.outside)
            return out
        }
    }

    /// Whether `lines` map the inside id `id`.
    static func covers(_ lines: [MapLine], _ id: UInt32) -> Bool {
        lines.contains { id >= $0.inside && UInt64(id) < UInt64($0.inside) + UInt64($0.count) }
    }

    /// A filesystem's "uid=N" and "gid=N" options whose ids the namespace
    /// does not map left out (devpts's gid=5 for a user without a range),
    /// as runc's rootless config leaves them: the kernel refuses them.
    public static func mappedOptions(_ options: [String]) -> [String] {
        guard active else { return options }
        return options.filter { o in
            for (key, lines) in [("uid=", maps.uids), ("gid=", maps.gids)] where o.hasPrefix(key) {
                if let id = UInt32(o.dropFirst(key.count)) { return covers(lines, id) }
            }
            return true
        }
    }

    /// Why a file owned by `uid`:`gid` cannot be stored here, or nil when it
    /// can (always as the host's root).
    public static func unmappedOwner(uid: UInt32, gid: UInt32) -> String? {
        guard active else { return nil }
        guard !covers(maps.uids, uid) || !covers(maps.gids, gid) else { return nil }
        let total = maps.uids.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        let mapped = total <= 1 ? "only id 0, the user itself" : "ids 0 to \(total - 1)"
        return "owned by \(uid):\(gid), which this user's namespace cannot hold (it maps \(mapped)): "
            + "give the user a range in /etc/subuid and /etc/subgid (usermod --add-subuids, --add-subgids)"
    }

    /// overlayfs mounts in a user namespace from kernel 5.11 on: before
    /// that, a rootless container cannot have its image as its root
    /// (fuse-overlayfs is not used).
    public static func checkOverlay() throws(GockerError) {
        guard active else { return }
        var u = utsname()
        guard uname(&u) == 0 else { return }
        let release = withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let parts = release.split(separator: ".").prefix(2).map { Int($0.prefix { $0.isNumber }) ?? 0 }
        guard parts.count == 2, parts[0] < 5 || (parts[0] == 5 && parts[1] < 11) else { return }
        throw refusal("an image's root filesystem", "overlayfs mounts in a user namespace from Linux 5.11 on, and this kernel is \(release)")
    }

    /// setgroups(2) is denied in the namespace (a user with no range in
    /// /etc/subgid: its gid_map was written without newgidmap).
    public static let setgroupsDenied: Bool = {
        guard active, let bytes = try? Sys.readFile("/proc/self/setgroups") else { return false }
        return String(decoding: bytes, as: UTF8.self).hasPrefix("deny")
    }()

    /// The cgroup2 subtree delegated to the user, as a path from the
    /// hierarchy's root ("/user/1000"), or nil: on a pure cgroup2 host,
    /// the highest ancestor of gocker's own group whose cgroup.procs and
    /// cgroup.subtree_control the user may write, above the group gocker
    /// runs in (a group with processes of its own cannot hand controllers
    /// down).
    public static let delegatedCgroup: String? = {
        guard active, let bytes = try? Sys.readFile("/proc/self/cgroup") else { return nil }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        guard lines.count == 1, lines[0].hasPrefix("0::/") else { return nil }  // v1 or hybrid
        let own = String(lines[0].dropFirst(3))
        var parts = own.split(separator: "/").map(String.init)
        guard !parts.isEmpty else { return nil }
        parts.removeLast()
        var found: String?
        while !parts.isEmpty {
            let path = "/" + parts.joined(separator: "/")
            let dir = Paths.cgroupRoot + path
            guard access(dir + "/cgroup.procs", W_OK) == 0, access(dir + "/cgroup.subtree_control", W_OK) == 0 else { break }
            found = path
            parts.removeLast()
        }
        return found
    }()

    /// The refusal of something only the host's root may do.
    public static func refusal(_ what: String, _ why: String) -> GockerError {
        GockerError(.invalidArgument, "\(what) is not available to a rootless container: \(why)")
    }
}
