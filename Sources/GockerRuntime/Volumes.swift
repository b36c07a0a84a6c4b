import Glibc
import GockerCore

/// A local volume, as `volume inspect` shows it: its data lives in
/// `<data-root>/volumes/<name>/_data`, this record beside it in volume.json.
public struct VolumeRecord: JSONShape, Sendable, Equatable {
    public var CreatedAt: String
    public var Driver: String
    public var Labels: [String: String]
    public var Mountpoint: String
    public var Name: String
    public var Options: [String: String]
    public var Scope: String

    /// The label that marks a volume made for a container's `-v DESTINATION`.
    public static let anonymousLabel = "io.gocker.volume.anonymous"
    public var isAnonymous: Bool { Labels[Self.anonymousLabel] != nil }

    /// volume.json's members, and `volume inspect`'s.
    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("CreatedAt", &CreatedAt)
        try v.field("Driver", &Driver)
        try v.field("Labels", &Labels)
        try v.field("Mountpoint", &Mountpoint)
        try v.field("Name", &Name)
        try v.field("Options", &Options)
        try v.field("Scope", &Scope)
    }
}

extension VolumeRecord {
    public init() { self.init(CreatedAt: "", Driver: "", Labels: [:], Mountpoint: "", Name: "", Options: [:], Scope: "") }
}

/// A user's mount of a container, as `inspect` shows it (docker's Mounts).
public struct MountPoint: JSONShape, Sendable, Equatable {
    public var type: String
    public var Name: String?
    public var Source: String
    public var Destination: String
    public var Driver: String?
    public var Mode: String
    public var RW: Bool
    public var Propagation: String

    /// container.json's members, and `inspect`'s.
    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("Type", &type)
        try v.field("Name", &Name)
        try v.field("Source", &Source)
        try v.field("Destination", &Destination)
        try v.field("Driver", &Driver)
        try v.field("Mode", &Mode)
        try v.field("RW", &RW)
        try v.field("Propagation", &Propagation)
    }
}

extension MountPoint {
    public init() { self.init(type: "", Name: nil, Source: "", Destination: "", Driver: nil, Mode: "", RW: false, Propagation: "") }
}

/// A container's mount worked out from its request: what the record shows,
/// the OCI mount, and what has to exist before it starts.
struct PlannedUserMount {
    var point: MountPoint
    var oci: Spec.Mount
    /// A host directory `-v` makes when missing.
    var createSource: String?
    /// A volume to make when missing (anonymous ones are always new).
    var volume: (name: String, anonymous: Bool)?
}

extension Engine {
    var volumesDir: String { dataRoot + "/volumes" }
    func volumeDir(_ name: String) -> String { "\(volumesDir)/\(name)" }
    public func volumeDataPath(_ name: String) -> String { volumeDir(name) + "/_data" }

    /// Holds the volumes' lock around `body`: volume removal and the
    /// containers that start using a volume never interleave.
    func withVolumeLock<T>(_ body: () throws(GockerError) -> T) throws(GockerError) -> T {
        let fd = try performing("lock \(volumesDir)") { () throws(SystemCallError) in
            try Sys.mkdirAll(volumesDir, mode: 0o700)
            return try Sys.lock(volumesDir + "/.lock")
        }
        defer { Sys.close(fd) }
        return try body()
    }

    // MARK: volume create, ls, inspect, rm, prune

    /// `volume create [NAME]`: a name already in use is that volume, as in
    /// docker; no name makes a random one.
    public func createVolume(name: String?, labels: [String: String] = [:]) throws(GockerError) -> VolumeRecord {
        if let name { try MountFlags.validateVolumeName(name) }
        return try withVolumeLock { () throws(GockerError) in
            try ensureVolume(name ?? Identifier.newContainerID(), labels: labels)
        }
    }

    /// Makes the volume unless it exists; the volumes' lock is held.
    @discardableResult
    func ensureVolume(_ name: String, labels: [String: String]) throws(GockerError) -> VolumeRecord {
        if let existing = try? volume(name) { return existing }
        let record = VolumeRecord(
            CreatedAt: Timestamp.now(), Driver: "local", Labels: labels, Mountpoint: volumeDataPath(name),
            Name: name, Options: [:], Scope: "local")
        try performing("create volume \(name)") { () throws(SystemCallError) in
            try Sys.mkdirAll(volumeDir(name), mode: 0o701)
            if mkdir(volumeDataPath(name), 0o755) < 0 && errno != EEXIST {
                throw SystemCallError("mkdir", path: volumeDataPath(name), errno: errno)
            }
            try Sys.writeFileAtomic(volumeDir(name) + "/volume.json", JSONText.pretty(record.jsonBytes))
        }
        return record
    }

    public func volume(_ name: String) throws(GockerError) -> VolumeRecord {
        guard (try? MountFlags.validateVolumeName(name)) != nil, Sys.exists(volumeDir(name) + "/volume.json") else {
            throw GockerError(.notFound, "get \(name): no such volume")
        }
        return try JSON.readFile(VolumeRecord.self, path: volumeDir(name) + "/volume.json")
    }

    /// Every volume, by name.
    public func volumes() -> [VolumeRecord] {
        ((try? Sys.listDirectory(volumesDir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            .compactMap { try? volume($0) }
    }

    /// The containers (ids) whose mounts name the volume, running or not.
    public func containersUsing(volume name: String) -> [String] {
        records().filter { r in r.mounts?.contains { $0.type == "volume" && $0.Name == name } == true }.map(\.id)
    }

    /// `volume rm`: refused while any container uses the volume.
    public func removeVolume(_ name: String, force: Bool = false) throws(GockerError) {
        try withVolumeLock { () throws(GockerError) in
            do throws(GockerError) { _ = try volume(name) } catch where force && error.code == .notFound { return }
            let users = containersUsing(volume: name)
            guard users.isEmpty else {
                throw GockerError(.invalidState, "remove \(name): volume is in use - [\(users.joined(separator: ", "))]")
            }
            try deleteVolume(name)
        }
    }

    func deleteVolume(_ name: String) throws(GockerError) {
        try performing("remove volume \(name)") { () throws(SystemCallError) in
            // The record first: a half-removed volume is no volume.
            if unlink(volumeDir(name) + "/volume.json") < 0 && errno != ENOENT {
                throw SystemCallError("unlink", path: volumeDir(name) + "/volume.json", errno: errno)
            }
            try Sys.removeAll(volumeDir(name))
        }
    }

    /// `volume prune`: removes the volumes no container uses, the anonymous
    /// ones only unless `all`; their names and the bytes they held.
    public func pruneVolumes(all: Bool) throws(GockerError) -> (removed: [String], bytes: Int64) {
        try withVolumeLock { () throws(GockerError) in
            let used = Set(records().flatMap { $0.mounts ?? [] }.compactMap { $0.type == "volume" ? $0.Name : nil })
            var removed: [String] = []
            var bytes: Int64 = 0
            for v in volumes() where !used.contains(v.Name) && (all || v.isAnonymous) {
                let size = ImageStore.treeSize(volumeDataPath(v.Name))
                try deleteVolume(v.Name)
                removed.append(v.Name)
                bytes += size
            }
            return (removed, bytes)
        }
    }

    /// Removes the anonymous volumes of a container that is gone (`rm -v`,
    /// `--rm`), except those another container still uses (--volumes-from).
    func removeAnonymousVolumes(_ points: [MountPoint]?) {
        let names = (points ?? []).compactMap { $0.type == "volume" ? $0.Name : nil }
        guard !names.isEmpty else { return }
        try? withVolumeLock { () throws(GockerError) in
            for name in names {
                guard let v = try? volume(name), v.isAnonymous, containersUsing(volume: name).isEmpty else { continue }
                try? deleteVolume(name)
            }
        }
    }

    // MARK: a container's mounts

    /// The mounts a run request asks for (`-v`, `--mount`, `--tmpfs`,
    /// `--volumes-from`), checked, sorted so that a parent is mounted before
    /// what lies below it; nothing is made yet.
    func planMounts(_ request: RunRequest) throws(GockerError) -> [PlannedUserMount] {
        var requests: [MountRequest] = []
        for v in request.volumes { requests.append(try MountFlags.parseVolume(v)) }
        for m in request.mounts { requests.append(try MountFlags.parseMount(m)) }
        for t in request.tmpfs { requests.append(try MountFlags.parseTmpfs(t)) }
        var planned: [PlannedUserMount] = []
        var seen = Set<String>()
        for r in requests {
            guard seen.insert(r.destination).inserted else {
                throw GockerError(.invalidArgument, "Duplicate mount point: \(r.destination)")
            }
            if let why = LaunchPlan.refusal(destination: r.destination, type: r.kind == .tmpfs ? "tmpfs" : "bind",
                                            isBind: r.kind != .tmpfs, source: r.kind == .bind ? r.source : "") {
                throw GockerError(.invalidArgument, "mount \(r.destination): \(why)")
            }
            planned.append(try plan(r))
        }
        for spec in request.volumesFrom {
            let (ref, readOnly) = try MountFlags.parseVolumesFrom(spec)
            let other = try lookup(ref)
            let config = try? Spec.decodeFile(path: containerDir(other.id) + "/config.json")
            for var point in other.mounts ?? [] where point.type != "tmpfs" && !seen.contains(point.Destination) {
                guard var oci = config?.mounts?.last(where: { $0.destination == point.Destination }) else { continue }
                if let readOnly {
                    let rec = (oci.options ?? []).contains("rbind")
                    oci.options = (oci.options ?? []).filter { $0 != "ro" && $0 != "rro" && $0 != "rw" }
                        + (readOnly ? (rec ? ["ro", "rro"] : ["ro"]) : [])
                    point.RW = !readOnly
                    point.Mode = readOnly ? "ro" : "rw"
                }
                // A shared volume is never seeded again.
                oci.options = oci.options?.filter { $0 != "copyup" }
                seen.insert(point.Destination)
                planned.append(PlannedUserMount(point: point, oci: oci, createSource: nil, volume: nil))
            }
        }
        return planned.enumerated().sorted { a, b in
            let (da, db) = (a.element.point.Destination.split(separator: "/").count,
                            b.element.point.Destination.split(separator: "/").count)
            return da != db ? da < db : a.offset < b.offset
        }.map(\.element)
    }

    func plan(_ r: MountRequest) throws(GockerError) -> PlannedUserMount {
        switch r.kind {
        case .bind:
            var st = stat()
            let exists = stat(r.source, &st) == 0  // through symlinks: what will be bound
            if !r.createSource && !exists {
                throw GockerError(.invalidArgument,
                    "invalid mount config for type \"bind\": bind source path does not exist: \(r.source)")
            }
            // Rootless, the container reaches the host's files as the user
            // does: a source the user cannot read is refused now, not left
            // for the container to find unreadable.
            if Rootless.active && exists
                && access(r.source, R_OK | (st.st_mode & S_IFMT == S_IFDIR ? X_OK : 0)) != 0 {
                throw GockerError(.invalidArgument,
                    "bind source \(r.source): \(errnoText(errno)): a rootless container reaches the host's files as its user does")
            }
            let point = MountPoint(type: "bind", Name: nil, Source: r.source, Destination: r.destination, Driver: nil,
                                   Mode: r.readOnly ? "ro" : "", RW: !r.readOnly, Propagation: r.propagation ?? "rprivate")
            return PlannedUserMount(point: point, oci: r.ociMount(hostSource: r.source),
                                    createSource: r.createSource && !exists ? r.source : nil, volume: nil)
        case .volume:
            let anonymous = r.source.isEmpty
            let name = anonymous ? Identifier.newContainerID() : r.source
            let path = volumeDataPath(name)
            let point = MountPoint(type: "volume", Name: name, Source: path, Destination: r.destination, Driver: "local",
                                   Mode: r.readOnly ? "ro" : "", RW: !r.readOnly, Propagation: "")
            return PlannedUserMount(point: point, oci: r.ociMount(hostSource: path), createSource: nil,
                                    volume: (name, anonymous))
        case .tmpfs:
            let point = MountPoint(type: "tmpfs", Name: nil, Source: "", Destination: r.destination, Driver: nil,
                                   Mode: "", RW: !r.readOnly, Propagation: "")
            return PlannedUserMount(point: point, oci: r.ociMount(hostSource: ""), createSource: nil, volume: nil)
        }
    }

    /// Makes what the mounts need (volumes, `-v` host directories); the
    /// volumes' lock is held.
    func prepareMounts(_ mounts: [PlannedUserMount]) throws(GockerError) {
        for m in mounts {
            if let v = m.volume {
                try ensureVolume(v.name, labels: v.anonymous ? [VolumeRecord.anonymousLabel: ""] : [:])
            }
            if m.point.type == "volume", m.volume == nil, let name = m.point.Name, (try? volume(name)) == nil {
                throw GockerError(.notFound, "volume \(name) of \(m.point.Destination) is gone: no such volume")
            }
            if let dir = m.createSource {
                try performing("create bind source \(dir)") { () throws(SystemCallError) in
                    try Sys.mkdirAll(dir)
                }
            }
        }
    }
}
