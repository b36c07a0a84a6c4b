import GockerCgroups
import GockerCore

/// One mount a user asked for with `-v`, `--mount` or `--tmpfs`, parsed and
/// checked, before anything exists on disk.
public struct MountRequest: Sendable, Equatable {
    public enum Kind: String, Sendable { case bind, volume, tmpfs }

    /// docker's `bind-recursive`: whether a bind takes the mounts below its
    /// source, and whether read-only reaches them.
    public enum Recursion: String, Sendable, CaseIterable {
        /// Submounts too; read-only on every one of them.
        case enabled
        /// The source's own mount only.
        case disabled
        /// Submounts too; read-only on the top mount only.
        case writable
        /// Submounts too, read-only on every one, even without `readonly`.
        case readonly
    }

    public var kind: Kind
    /// A host path (bind), a volume name ("" for an anonymous volume), or "".
    public var source: String
    /// An absolute, clean path inside the container.
    public var destination: String
    public var readOnly = false
    /// Binds: rprivate (the default), private, rshared, shared, rslave, slave.
    public var propagation: String?
    /// `-v` creates a missing host directory; `--mount type=bind` refuses it.
    public var createSource = false
    public var recursion: Recursion = .enabled
    /// Volumes: do not seed a new volume with the image's content.
    public var noCopy = false
    /// tmpfs: mount options (size in bytes, mode, exec, ...).
    public var tmpfsOptions: [String] = []

    public init(kind: Kind, source: String, destination: String) {
        self.kind = kind
        self.source = source
        self.destination = destination
    }

    /// The OCI mount of this request, with `hostSource` for binds and volumes.
    public func ociMount(hostSource: String) -> Spec.Mount {
        switch kind {
        case .tmpfs:
            return Spec.Mount(destination: destination, type: "tmpfs", source: "tmpfs",
                              options: ["nosuid", "nodev", "noexec"] + tmpfsOptions)
        case .bind, .volume:
            var options = [recursion == .disabled ? "bind" : "rbind", propagation ?? "rprivate"]
            if readOnly || recursion == .readonly { options.append("ro") }
            if (readOnly && recursion == .enabled) || recursion == .readonly { options.append("rro") }
            if kind == .volume && !noCopy { options.append("copyup") }
            return Spec.Mount(destination: destination, type: "bind", source: hostSource, options: options)
        }
    }
}

/// Parsers of docker's `-v/--volume`, `--mount` and `--tmpfs` values.
public enum MountFlags {
    static let propagations: Set<String> = ["private", "rprivate", "shared", "rshared", "slave", "rslave"]

    /// `-v [SOURCE:]DESTINATION[:MODE]`: SOURCE is an absolute host path
    /// (a bind, made if missing) or a volume name (made on first use); none
    /// for an anonymous volume. MODE: ro, rw, nocopy, a propagation, z/Z
    /// (SELinux labels: accepted, nothing to do), comma-separated.
    public static func parseVolume(_ spec: String) throws(GockerError) -> MountRequest {
        func invalid(_ why: String) -> GockerError {
            GockerError(.invalidArgument, "invalid volume specification: '\(spec)': \(why)")
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var source = "", destination: String, mode = ""
        switch parts.count {
        case 1: destination = parts[0]
        case 2:
            if !parts[1].hasPrefix("/") && (try? parseMode(parts[1])) != nil {
                (destination, mode) = (parts[0], parts[1])
            } else {
                (source, destination) = (parts[0], parts[1])
            }
        case 3: (source, destination, mode) = (parts[0], parts[1], parts[2])
        default: throw invalid("too many colons")
        }
        if parts.contains(where: \.isEmpty) { throw invalid("empty section between colons") }
        let kind: MountRequest.Kind = source.hasPrefix("/") ? .bind : .volume
        var m = MountRequest(kind: kind, source: source, destination: try cleanDestination(destination, spec: spec))
        if kind == .bind {
            m.source = try hostPath(source)
            m.createSource = true
        } else if !source.isEmpty {
            try validateVolumeName(source)
        }
        let modes = try parseMode(mode)
        m.readOnly = modes.readOnly
        if let p = modes.propagation {
            if kind != .bind { throw invalid("propagation \(p) applies to bind mounts only") }
            m.propagation = p
        }
        if modes.noCopy {
            if kind != .volume { throw invalid("nocopy applies to volumes only") }
            m.noCopy = true
        }
        return m
    }

    struct Mode: Equatable {
        var readOnly = false
        var propagation: String?
        var noCopy = false
    }

    static func parseMode(_ text: String) throws(GockerError) -> Mode {
        var mode = Mode()
        var rw = 0, labels = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) where !text.isEmpty {
            switch item {
            case "ro", "rw":
                rw += 1
                mode.readOnly = item == "ro"
            case "z", "Z": labels += 1
            case "nocopy": mode.noCopy = true
            case _ where propagations.contains(item):
                if mode.propagation != nil { throw GockerError(.invalidArgument, "invalid mode: \(text)") }
                mode.propagation = item
            default: throw GockerError(.invalidArgument, "invalid mode: \(text)")
            }
        }
        if rw > 1 || labels > 1 { throw GockerError(.invalidArgument, "invalid mode: \(text)") }
        return mode
    }

    /// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly]...`
    /// in docker's long form.
    public static func parseMount(_ spec: String) throws(GockerError) -> MountRequest {
        func invalid(_ why: String) -> GockerError {
            GockerError(.invalidArgument, "invalid argument \"\(spec)\" for \"--mount\" flag: \(why)")
        }
        func bool(_ key: String, _ value: String?) throws(GockerError) -> Bool {
            switch value {
            case nil, "1", "true": return true
            case "0", "false": return false
            default: throw invalid("invalid value for \(key): \(value!)")
            }
        }
        var type = "volume", source = "", target: String?
        var readOnly = false, propagation: String?, recursion: MountRequest.Recursion?, noCopy = false
        var size: String?, tmpfsMode: String?
        var bindKeys = false, volumeKeys = false, tmpfsKeys = false
        for field in spec.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let key = kv[0].lowercased(), value = kv.count == 2 ? kv[1] : nil
            let booleans: Set<String> = ["readonly", "ro", "volume-nocopy", "bind-nonrecursive"]
            if value == nil && !booleans.contains(key) { throw invalid("invalid field '\(field)' must be a key=value pair") }
            switch key {
            case "type": type = value!
            case "source", "src": source = value!
            case "target", "destination", "dst": target = value!
            case "readonly", "ro": readOnly = try bool(key, value)
            case "consistency": break
            case "bind-propagation":
                guard propagations.contains(value!) else { throw invalid("invalid propagation mode: \(value!)") }
                propagation = value!
                bindKeys = true
            case "bind-recursive":
                guard let r = MountRequest.Recursion(rawValue: value!) else {
                    throw invalid("invalid bind-recursive value \"\(value!)\": expected enabled, disabled, writable or readonly")
                }
                recursion = r
                bindKeys = true
            case "bind-nonrecursive":
                if try bool(key, value) { recursion = .disabled }
                bindKeys = true
            case "volume-nocopy":
                noCopy = try bool(key, value)
                volumeKeys = true
            case "volume-driver":
                guard value == "local" else { throw invalid("volume driver \"\(value!)\" not found (only local)") }
                volumeKeys = true
            case "volume-opt", "volume-label", "volume-subpath":
                throw invalid("\(key) is not supported")
            case "tmpfs-size":
                size = value!
                tmpfsKeys = true
            case "tmpfs-mode":
                tmpfsMode = value!
                tmpfsKeys = true
            default: throw invalid("unexpected key '\(key)' in '\(field)'")
            }
        }
        guard let kind = MountRequest.Kind(rawValue: type) else { throw invalid("invalid mount type \"\(type)\": expected bind, volume or tmpfs") }
        guard let target, !target.isEmpty else { throw invalid("target is required") }
        let config = "invalid mount config for type \"\(type)\""
        if bindKeys && kind != .bind { throw GockerError(.invalidArgument, "\(config): cannot use bind options with a \(type) mount") }
        if volumeKeys && kind != .volume { throw GockerError(.invalidArgument, "\(config): cannot use volume options with a \(type) mount") }
        if tmpfsKeys && kind != .tmpfs { throw GockerError(.invalidArgument, "\(config): cannot use tmpfs options with a \(type) mount") }
        var m = MountRequest(kind: kind, source: source, destination: try cleanDestination(target, spec: spec))
        m.readOnly = readOnly
        switch kind {
        case .bind:
            guard !source.isEmpty else { throw GockerError(.invalidArgument, "\(config): field Source must not be empty") }
            m.source = try hostPath(source)
            m.propagation = propagation
            m.recursion = recursion ?? .enabled
        case .volume:
            if !source.isEmpty { try validateVolumeName(source) }
            m.noCopy = noCopy
        case .tmpfs:
            guard source.isEmpty else { throw GockerError(.invalidArgument, "\(config): field Source must not be specified") }
            if let size { m.tmpfsOptions.append("size=\(try ResourceFlags.parseSize(size, flag: "tmpfs-size"))") }
            if let tmpfsMode { m.tmpfsOptions.append("mode=\(try octalMode(tmpfsMode))") }
        }
        return m
    }

    /// `--tmpfs DESTINATION[:OPTIONS]`: a tmpfs with docker's defaults
    /// (nosuid, nodev, noexec) and the mount options given (size=16m,
    /// mode=1777, uid=N, gid=N, exec, ro...).
    public static func parseTmpfs(_ spec: String) throws(GockerError) -> MountRequest {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        var m = MountRequest(kind: .tmpfs, source: "", destination: try cleanDestination(parts[0], spec: spec))
        guard parts.count == 2 else { return m }
        for option in parts[1].split(separator: ",").map(String.init) {
            let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
            switch kv[0] {
            case "size" where kv.count == 2:
                if kv[1].hasSuffix("%") {
                    m.tmpfsOptions.append(option)
                } else {
                    m.tmpfsOptions.append("size=\(try ResourceFlags.parseSize(kv[1], flag: "--tmpfs size"))")
                }
            case "mode" where kv.count == 2: m.tmpfsOptions.append("mode=\(try octalMode(kv[1]))")
            case "uid" where kv.count == 2, "gid" where kv.count == 2, "nr_inodes" where kv.count == 2:
                guard UInt32(kv[1]) != nil else {
                    throw GockerError(.invalidArgument, "invalid tmpfs option \"\(option)\" in \"\(spec)\"")
                }
                m.tmpfsOptions.append(option)
            case "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
                 "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "sync", "async":
                guard kv.count == 1 else { throw GockerError(.invalidArgument, "invalid tmpfs option \"\(option)\" in \"\(spec)\"") }
                m.tmpfsOptions.append(option)
            default:
                throw GockerError(.invalidArgument, "invalid tmpfs option \"\(option)\" in \"\(spec)\"")
            }
        }
        return m
    }

    /// `--volumes-from CONTAINER[:ro|:rw]`.
    public static func parseVolumesFrom(_ spec: String) throws(GockerError) -> (container: String, readOnly: Bool?) {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard !parts[0].isEmpty, parts.count <= 2 else {
            throw GockerError(.invalidArgument, "invalid --volumes-from \"\(spec)\": expected CONTAINER[:ro|:rw]")
        }
        guard parts.count == 2 else { return (parts[0], nil) }
        guard parts[1] == "ro" || parts[1] == "rw" else {
            throw GockerError(.invalidArgument, "invalid mode for --volumes-from \"\(spec)\": \(parts[1])")
        }
        return (parts[0], parts[1] == "ro")
    }

    /// A destination inside the container: absolute, "." and ".." and
    /// repeated slashes taken out lexically (the path is resolved inside
    /// the container's root in any case), and not "/".
    static func cleanDestination(_ path: String, spec: String) throws(GockerError) -> String {
        guard path.hasPrefix("/") else {
            throw GockerError(.invalidArgument, "invalid mount path '\(path)' in '\(spec)': mount path must be absolute")
        }
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        guard !parts.isEmpty else {
            throw GockerError(.invalidArgument, "invalid mount path '\(path)' in '\(spec)': destination can't be '/'")
        }
        return "/" + parts.joined(separator: "/")
    }

    /// A host path for a bind: absolute and without "..", so that what is
    /// bound is what the path says.
    static func hostPath(_ path: String) throws(GockerError) -> String {
        guard path.hasPrefix("/") else {
            throw GockerError(.invalidArgument, "invalid host path \"\(path)\": it must be absolute")
        }
        let parts = path.split(separator: "/").filter { $0 != "." }
        if parts.contains("..") {
            throw GockerError(.invalidArgument, "invalid host path \"\(path)\": it must not contain \"..\"")
        }
        return "/" + parts.joined(separator: "/")
    }

    /// docker's rule for local volume names.
    public static func validateVolumeName(_ name: String) throws(GockerError) {
        let bytes = Array(name.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) }
        let ok = bytes.count >= 2 && bytes.count <= 255 && alnum(bytes[0])
            && bytes.dropFirst().allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        if !ok {
            throw GockerError(.invalidArgument,
                "\"\(name)\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")
        }
    }

    static func octalMode(_ text: String) throws(GockerError) -> String {
        guard !text.isEmpty, text.count <= 5, let v = UInt32(text, radix: 8), v <= 0o7777 else {
            throw GockerError(.invalidArgument, "invalid tmpfs mode \"\(text)\": expected octal permissions, e.g. 1777")
        }
        return String(v, radix: 8)
    }
}
