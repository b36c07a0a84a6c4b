import GockerCore

/// The config.json `oci spec` writes: runc's starting point (a shell on a
/// terminal, in a read-only `rootfs`, with runc's few capabilities, its
/// mounts and namespaces), or its rootless form.
public enum DefaultSpec {
    /// runc's capabilities for a new bundle.
    public static let capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

    /// `rootless`: runc's form for a user without privileges: a user
    /// namespace mapping root to `uid` and `gid` (the caller's), no network
    /// namespace, the host's /sys bound read-only, no cgroup mount, no
    /// resources, no gid= or uid= in mount options.
    public static func make(rootless: Bool = false, uid: UInt32 = 0, gid: UInt32 = 0) -> Spec {
        let caps = Spec.Capabilities(bounding: capabilities, effective: capabilities, permitted: capabilities, ambient: capabilities)
        let process = Spec.Process(terminal: true, user: Spec.User(uid: 0, gid: 0), args: ["sh"],
                                   env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
                                   cwd: "/", capabilities: caps,
                                   rlimits: [Spec.Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)], noNewPrivileges: true)
        var mounts = [
            Spec.Mount(destination: "/proc", type: "proc", source: "proc"),
            Spec.Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Spec.Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
                       options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] + (rootless ? [] : ["gid=5"])),
            Spec.Mount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            Spec.Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
        ]
        if rootless {
            mounts.append(Spec.Mount(destination: "/sys", type: "none", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"]))
        } else {
            mounts.append(Spec.Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]))
            mounts.append(Spec.Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                                     options: ["nosuid", "noexec", "nodev", "relatime", "ro"]))
        }
        let types = rootless ? ["pid", "ipc", "uts", "mount", "cgroup", "user"] : ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        var linux = Spec.Linux(namespaces: types.map { Spec.Namespace(type: $0) })
        linux.maskedPaths = DefaultPaths.masked
        linux.readonlyPaths = DefaultPaths.readonly
        if rootless {
            linux.uidMappings = [Spec.IDMapping(containerID: 0, hostID: uid, size: 1)]
            linux.gidMappings = [Spec.IDMapping(containerID: 0, hostID: gid, size: 1)]
        } else {
            var resources = Spec.Resources()
            resources.unmodeled["devices"] = .array([.object(["allow": .bool(false), "access": .string("rwm")])])
            linux.resources = resources
        }
        return Spec(process: process, root: Spec.Root(path: "rootfs", readonly: true), hostname: "gocker", mounts: mounts, linux: linux)
    }
}
