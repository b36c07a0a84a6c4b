import Glibc
import GockerCore

/// An OCI mount's `options` turned into what mount(2) takes.
public struct MountOptions: Equatable, Sendable {
    public var flags: UInt = 0
    public var propagation: UInt = 0
    public var isBind = false
    public var recursive = false
    /// Flags set on every mount of a recursive bind ("rro", "rnosuid"...,
    /// as runc takes them); `flags` apply to its top mount only.
    public var recursiveFlags: UInt = 0
    /// "copyup" (gocker's own): an empty bind source is first filled with
    /// what the image holds at the target, as docker seeds a new volume;
    /// "tmpcopyup" (runc's): the same for a new tmpfs.
    public var copyUp = false
    /// Options the kernel takes as data ("mode=755,size=65536k").
    public var data: [String] = []

    private static let setting: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV),
        "noexec": UInt(MS_NOEXEC), "sync": UInt(MS_SYNCHRONOUS), "dirsync": UInt(MS_DIRSYNC),
        "mand": UInt(MS_MANDLOCK), "noatime": UInt(MS_NOATIME), "nodiratime": UInt(MS_NODIRATIME),
        "relatime": UInt(MS_RELATIME), "strictatime": UInt(MS_STRICTATIME), "remount": UInt(MS_REMOUNT),
    ]
    private static let clearing: [String: UInt] = [
        "rw": UInt(MS_RDONLY), "suid": UInt(MS_NOSUID), "dev": UInt(MS_NODEV), "exec": UInt(MS_NOEXEC),
        "async": UInt(MS_SYNCHRONOUS), "nomand": UInt(MS_MANDLOCK), "atime": UInt(MS_NOATIME),
        "diratime": UInt(MS_NODIRATIME), "norelatime": UInt(MS_RELATIME), "nostrictatime": UInt(MS_STRICTATIME),
    ]
    private static let propagations: [String: UInt] = [
        "private": UInt(MS_PRIVATE), "rprivate": UInt(MS_PRIVATE | MS_REC),
        "shared": UInt(MS_SHARED), "rshared": UInt(MS_SHARED | MS_REC),
        "slave": UInt(MS_SLAVE), "rslave": UInt(MS_SLAVE | MS_REC),
        "unbindable": UInt(MS_UNBINDABLE), "runbindable": UInt(MS_UNBINDABLE | MS_REC),
    ]

    /// Every option name this type gives a meaning to (the rest reach
    /// mount(2) as data), as `oci features` lists them: the flags, their
    /// recursive forms ("rro", "rnosuid"; not "rremount"), propagations,
    /// bind and rbind, copyup and tmpcopyup.
    public static var names: [String] {
        let flags = Array(setting.keys) + Array(clearing.keys)
        let recursive = flags.filter { $0 != "remount" }.map { "r" + $0 }
        return Set(flags + recursive + Array(propagations.keys) + ["bind", "rbind", "copyup", "tmpcopyup"]).sorted()
    }

    public init(type: String?, options: [String]) {
        isBind = type == "bind"
        for option in options {
            if let f = Self.setting[option] {
                flags |= f
            } else if let f = Self.clearing[option] {
                flags &= ~f
            } else if let p = Self.propagations[option] {
                propagation = p
            } else if option.hasPrefix("r"), let f = Self.setting[String(option.dropFirst())], f != UInt(MS_REMOUNT) {
                recursiveFlags |= f
            } else if option.hasPrefix("r"), let f = Self.clearing[String(option.dropFirst())] {
                recursiveFlags &= ~f
            } else if option == "copyup" || (option == "tmpcopyup" && type == "tmpfs") {
                // tmpcopyup (runc's, which podman sends for --tmpfs and
                // --read-only): the new tmpfs seeded from the image.
                copyUp = true
            } else if option == "bind" {
                isBind = true
            } else if option == "rbind" {
                isBind = true
                recursive = true
            } else {
                data.append(option)
            }
        }
    }

    /// The propagation named by `linux.rootfsPropagation`.
    public static func propagation(named name: String) throws(GockerError) -> UInt {
        guard let p = propagations[name] else {
            throw GockerError(.invalidConfig, "unknown rootfsPropagation \"\(name)\"")
        }
        return p
    }
}
