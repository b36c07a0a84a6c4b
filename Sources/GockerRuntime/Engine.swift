import CGockerCore
import Glibc
import GockerCgroups
import GockerCore

/// What gocker keeps about a docker-like container under the data root:
/// `<data-root>/containers/<id>/container.json`, beside its bundle.
public struct ContainerRecord: JSONShape, Sendable, Equatable {
    public var id: String
    public var name: String
    public var image: String
    public var imageID: String
    public var args: [String]
    public var created: String
    public var hostname: String
    public var network: String
    public var autoRemove: Bool
    public var exitCode: Int32?
    public var finished: String?
    public var oomKilled: Bool?
    /// The gocker process that waits for the container (pid and start
    /// time): when it is gone, a later gocker cleans up after it.
    public var ownerPid: Int32?
    public var ownerStart: UInt64?
    /// When the container last started, and how often it was restarted.
    public var started: String?
    public var restartCount: Int?
    /// no, on-failure[:N], always, unless-stopped.
    public var restartPolicy: String?
    /// Set by stop and kill: no restart after this exit.
    public var stopRequested: Bool?
    public var cgroupBackend: String?
    public var cgroupParent: String?
    /// Bytes the log may grow to before it is rotated (0: no bound).
    public var logMaxSize: UInt64?
    /// Volumes, binds and tmpfs mounts the user asked for.
    public var mounts: [MountPoint]?
    /// The seccomp profile: "default", "unconfined" or the profile file.
    public var seccompProfile: String?
    /// What gocker adds to the bundle's config to start it (its overlay,
    /// `-u`, `--group-add`, `--init`): kept here, never in the bundle.
    public var launch: LaunchExtras? = nil
    public var command: String { args.joined(separator: " ") }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("id", &id)
        try v.field("name", &name)
        try v.field("image", &image)
        try v.field("imageID", &imageID)
        try v.field("args", &args)
        try v.field("created", &created)
        try v.field("hostname", &hostname)
        try v.field("network", &network)
        try v.field("autoRemove", &autoRemove)
        try v.field("exitCode", &exitCode)
        try v.field("finished", &finished)
        try v.field("oomKilled", &oomKilled)
        try v.field("ownerPid", &ownerPid)
        try v.field("ownerStart", &ownerStart)
        try v.field("started", &started)
        try v.field("restartCount", &restartCount)
        try v.field("restartPolicy", &restartPolicy)
        try v.field("stopRequested", &stopRequested)
        try v.field("cgroupBackend", &cgroupBackend)
        try v.field("cgroupParent", &cgroupParent)
        try v.field("logMaxSize", &logMaxSize)
        try v.field("mounts", &mounts)
        try v.field("seccompProfile", &seccompProfile)
        try v.field("launch", &launch)
    }
}

extension ContainerRecord {
    public init() {
        self.init(id: "", name: "", image: "", imageID: "", args: [], created: "", hostname: "", network: "", autoRemove: false)
    }
}

/// The docker-like front: containers made from images, with names, under
/// a data root, started through the OCI runtime.
public struct Engine: Sendable {
    public let dataRoot: String
    public let runtime: Runtime
    public let images: ImageStore

    /// Relative roots are taken from the working directory, once, here.
    public init(dataRoot: String, stateRoot: String) {
        self.dataRoot = Paths.absolute(dataRoot)
        self.runtime = Runtime(stateRoot: stateRoot, dataRoot: self.dataRoot)
        self.images = ImageStore(dataRoot: self.dataRoot)
        Self.restrict(self.dataRoot)
    }

    /// Image layers, containers' upper layers and volumes may hold setuid
    /// files that no other user of the host may reach and run: the
    /// directories that hold them are root's alone (0700), made so when an
    /// older gocker left them open. A data root gocker makes is 0700 too;
    /// one that exists keeps its mode (it may be a directory others use).
    static func restrict(_ dataRoot: String) {
        var st = stat()
        if lstat(dataRoot, &st) < 0 {
            _ = try? Sys.mkdirAll(dataRoot, mode: 0o700)
            return
        }
        for sub in ["image", "containers", "volumes"] {
            let dir = "\(dataRoot)/\(sub)"
            if lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_mode & 0o077 != 0 { _ = chmod(dir, 0o700) }
        }
    }

    public static var defaultDataRoot: String { Sys.env("GOCKER_DATA_ROOT") ?? Rootless.defaultDataRoot }

    public func containerDir(_ id: String) -> String { "\(dataRoot)/containers/\(id)" }
    func namePath(_ name: String) -> String { "\(dataRoot)/names/\(name)" }

    /// `gocker run` in the foreground: returns the container's exit status.
    /// (`run -d` is `create` and `startDetached`.)
    public func run(_ request: RunRequest) throws(GockerError) -> Int32 {
        // The container starts in this process: its cgroup driver (and its
        // network namespace) come up meanwhile.
        var ahead = Runtime.StartAhead(backend: request.cgroupBackend ?? runtime.cgroupBackend,
                                       networkNamespace: request.network.ownNamespace)
        // Its veth is made there too, as soon as its address is known.
        let (record, spec) = try createWithSpec(request, ownedHere: true) { a in ahead.connect([a]) }
        do throws(GockerError) {
            if !request.interactive { try Self.detachStdin() }
            let terminal = request.tty ? Runtime.TerminalIO.standard(interactive: request.interactive) : nil
            let exit = try runtime(for: record).runForeground(
                id: record.id, bundle: containerDir(record.id), terminal: terminal,
                log: (logPath(record.id), record.logMaxSize ?? 0), spec: spec, extras: record.launch,
                ahead: ahead)
            if exit.oomKilled {
                Runtime.warn("container \(record.name) was OOM-killed: it ran out of its memory limit")
            }
            if record.autoRemove {
                try remove(id: record.id, name: record.name, anonymousVolumes: record.mounts)
            } else {
                try updateRecord(record.id) { r in
                    r.exitCode = exit.status
                    r.oomKilled = exit.oomKilled
                    r.finished = Timestamp.now()
                    r.ownerPid = nil
                    r.ownerStart = nil
                }
            }
            return exit.status
        } catch {
            try? remove(id: record.id, name: record.name, anonymousVolumes: record.mounts)
            throw error
        }
    }

    /// The runtime a container's own settings ask for.
    func runtime(for record: ContainerRecord) -> Runtime {
        Runtime(stateRoot: runtime.store.root, cgroupBackend: record.cgroupBackend, cgroupParent: record.cgroupParent,
                dataRoot: dataRoot)
    }

    /// `gocker create` (and the first half of `run`): everything is checked,
    /// then the container's record and bundle are written; nothing runs yet.
    /// `starting` (`run -d`): the record names this process as its owner
    /// from the first write, so that the container counts as running, not
    /// as created (which prune and rmi -f may take), until its monitor does.
    public func create(_ request: RunRequest, starting: Bool = false) throws(GockerError) -> ContainerRecord {
        try createWithSpec(request, starting: starting).record
    }

    /// create, with the OCI config written to the bundle. `ownedHere`: the
    /// container starts now in this process, which the record names as its
    /// owner from the first write.
    /// `attached`: told of the container's network once it has its address.
    func createWithSpec(_ given: RunRequest, ownedHere: Bool = false, starting: Bool = false,
                        attached: (NetworkAttachment) -> Void = { _ in }) throws(GockerError) -> (record: ContainerRecord, spec: Spec) {
        var request = given
        request.network = try Self.effectiveNetwork(given.network)
        try Rootless.checkOverlay()
        // Everything that can be refused is refused before anything is made.
        try ContainerSpec.validateWorkdir(request.workdir)
        if let name = request.name { try Identifier.validateName(name) }
        if let h = request.hostname { try Self.validateHostname(h) }
        let userEnv = try ContainerSpec.userEnvironment(env: request.env, envFiles: request.envFiles)
        try Ulimits.checkAgainstHost(try request.ulimits.map { u throws(GockerError) in try Ulimits.parse(u) })
        if let backend = request.cgroupBackend { try Runtime.validateBackend(backend) }
        if let parent = request.cgroupParent { _ = try CgroupDriver.validatePath(parent) }
        if Rootless.active {
            try Runtime(stateRoot: runtime.store.root, cgroupBackend: request.cgroupBackend, cgroupParent: request.cgroupParent)
                .refuseRootlessChoices()
        }
        if let u = request.user, u.isEmpty || u.hasPrefix(":") || u.hasSuffix(":") || u.contains(",") {
            throw GockerError(.invalidArgument, "invalid user \"\(u)\": expected user[:group]")
        }
        let policy = try RestartPolicy(parsing: request.restart)
        if request.autoRemove && policy.kind != .no {
            throw GockerError(.invalidArgument, "conflicting options: --restart \(request.restart) and --rm")
        }
        let userMounts = try planMounts(request)
        var net = try planNetwork(request)
        // From the image's lookup until the container's record is in place:
        // `rmi` waits, and then sees the container.
        let dataRootLock = lockDataRoot(LOCK_SH)
        defer { if let dataRootLock { Sys.close(dataRootLock) } }
        let (image, _) = try images.resolve(request.image)
        gk_mark(GK_MARK_IMAGE)

        if request.publishAll {
            // -P: each port the image exposes, on an ephemeral host port.
            guard net.record != nil || net.slirp != nil else {
                throw GockerError(.invalidArgument, "conflicting options: -P needs a bridge network, not --network \(request.network.name)")
            }
            for key in (image.config.ExposedPorts ?? [:]).keys.sorted() {
                let parts = key.split(separator: "/").map(String.init)
                guard let port = UInt16(parts[0]) else { continue }
                let proto = PortProtocol(rawValue: parts.count == 2 ? parts[1] : "tcp") ?? .tcp
                if !net.ports.contains(where: { $0.containerPort == port && $0.proto == proto }) {
                    net.ports.append(PortRequest(proto: proto, containerPort: port))
                }
            }
        }
        let args = try ContainerSpec.commandLine(request: request, image: image.config)

        let id = Identifier.newContainerID()
        let hostname = request.hostname ?? (net.hostname ?? String(id.prefix(12)))
        let env = ContainerSpec.environment(image: image.config.Env ?? [], hostname: hostname, request: userEnv)
        let dir = containerDir(id)
        // Capabilities, security options and resources are checked here,
        // still before anything of the container's is made. The init layer
        // (when the image takes it), made once for the whole store, lies
        // over the image's.
        var layerPaths = image.layers.map(images.layerPath)
        if let initLayer = images.initLayer(for: image.layers) { layerPaths.append(initLayer) }
        var spec = try ContainerSpec.build(
            request: request, image: image, containerDir: dir, hostname: hostname, env: env, args: args,
            userMounts: userMounts.map(\.oci), defaultSeccomp: false)
        if let path = net.joinPath { spec.linux?.namespaces?.append(Spec.Namespace(type: "network", path: path)) }
        var launch = ContainerSpec.extras(request: request, image: image, layerPaths: layerPaths, containerDir: dir,
                                          volatileUpper: request.autoRemove && ownedHere)
        // docker's default profile: in config.json as written before for
        // the same capabilities, and to the runtime by its cache name.
        let seccompChoice = try ContainerSpec.securityOptions(request.securityOpts).seccomp
        var seccomp: [UInt8]?
        if !request.privileged, seccompChoice == .default {
            let caps = spec.process?.capabilities?.bounding ?? []
            launch.seccompDefault = DefaultSeccomp.cacheName(capabilities: caps)
            seccomp = DefaultSeccomp.rendered(capabilities: caps, cacheDirectory: runtime.seccompCache)
        }
        let points = userMounts.isEmpty ? nil : userMounts.map(\.point)
        var record = ContainerRecord(
            id: id, name: request.name ?? Identifier.randomName(), image: request.image, imageID: image.id, args: args,
            created: Timestamp.now(), hostname: hostname, network: request.network.name, autoRemove: request.autoRemove,
            restartPolicy: request.restart, cgroupBackend: request.cgroupBackend, cgroupParent: request.cgroupParent,
            logMaxSize: request.logMaxSize, mounts: points)
        record.seccompProfile = seccompChoice.shown(privileged: request.privileged)
        record.launch = launch
        if let allow = net.slirp {
            record.launch?.slirp = SlirpNetwork(allowHostLoopback: allow, ports: try settlePorts(net.ports))
        }
        if ownedHere || starting {
            record.ownerPid = getpid()
            record.ownerStart = UInt64(gk_process_start_time(getpid()))
            record.started = record.created
        }
        // An address is taken before the record exists: one a gocker killed
        // meanwhile took goes back on the network's next use (the container
        // does not exist).
        if let network = net.record {
            record.launch?.network = try attach(id: id, to: network, ip: request.ip.flatMap { IPv4($0) },
                                                mac: request.macAddress, aliases: request.networkAliases)
            if let a = record.launch?.network { attached(a) }
            if !net.ports.isEmpty {
                do throws(GockerError) {
                    record.launch?.network?.ports = try settlePorts(net.ports)
                } catch {
                    detach(id: id, from: network.name)
                    throw error
                }
            }
        }
        // Write-ahead: the record and the bundle appear in one rename, before
        // the name, the volumes, the groups or any process: whatever a
        // gocker killed from here on leaves, `ps -a` lists and `rm -f` removes.
        do throws(GockerError) {
            try writeBundle(dir: dir, spec: spec, seccomp: seccomp, record: record, hostname: hostname, request: request,
                            sharedFiles: net.sharedFiles)
        } catch {
            if let a = record.launch?.network { detach(id: id, from: a.network) }
            throw error
        }
        do throws(GockerError) {
            if let a = record.launch?.network { syncHosts(networks: [a.network]) }
            // Published for as long as the container exists (its address is
            // its own until then): no start spends anything on them. All or
            // none: a port another container publishes is refused here, and
            // then none of this one's is there for `remove` to withdraw.
            if let mappings = record.launch?.network?.mappings, !mappings.isEmpty {
                do throws(GockerError) { try NetFilter().publish(mappings) } catch {
                    record.launch?.network?.ports = nil
                    try? saveRecord(record)
                    throw error
                }
            }
            try claimName(&record, requested: request.name != nil)
            if !userMounts.isEmpty {
                // The record names the volumes: `volume rm` sees this
                // container from before they exist.
                try withVolumeLock { () throws(GockerError) in try prepareMounts(userMounts) }
            }
            gk_mark(GK_MARK_BUNDLE)
            return (record, spec)
        } catch {
            try? remove(id: id, name: record.name, anonymousVolumes: points)
            throw error
        }
    }

    /// The bundle of a docker-like container: config.json, an empty rootfs
    /// (the overlay's mount point), the overlay's upper and work
    /// directories, and the files bind-mounted over /etc/hostname,
    /// /etc/hosts and /etc/resolv.conf.
    /// It is written in `.new-<id>` beside, and renamed into place whole:
    /// a container directory always holds its record. A `.new-` directory
    /// left by a gocker that died is removed by `reapOrphans`.
    func writeBundle(dir: String, spec: Spec, seccomp: [UInt8]? = nil, record: ContainerRecord, hostname: String,
                     request: RunRequest, sharedFiles: (hosts: [UInt8], resolv: [UInt8])? = nil) throws(GockerError) {
        let new = "\(dataRoot)/containers/.new-\(record.id)"
        try performing("create container \(record.id)") { () throws(SystemCallError) in
            if mkdir(new, 0o711) < 0 {
                // No containers directory before the first container.
                guard errno == ENOENT else { throw SystemCallError("mkdir", path: new, errno: errno) }
                try Sys.mkdirAll(dataRoot + "/containers", mode: 0o700)
                try Sys.check("mkdir", path: new) { mkdir(new, 0o711) }
            }
            do throws(SystemCallError) {
                // In a directory just made, that nobody reads before the
                // rename: nothing to find there first, nothing to replace.
                try Sys.writeFileExclusive("\(new)/container.json", record.jsonBytes)
                for sub in ["rootfs", "upper", "work"] {
                    try Sys.check("mkdir", path: "\(new)/\(sub)") { mkdir("\(new)/\(sub)", 0o755) }
                }
                try Sys.writeFileExclusive("\(new)/hostname", Array("\(hostname)\n".utf8))
                let hosts = sharedFiles?.hosts
                    ?? Self.hostsFile(request: request, hostname: hostname, attachment: record.launch?.network,
                                      address: record.launch?.slirp != nil ? SlirpNetwork.address : nil)
                try Sys.writeFileExclusive("\(new)/hosts", hosts)
                if let a = record.launch?.network, a.network != NetworkRecord.defaultName {
                    // What `syncHosts` adds the network's other containers to.
                    try Sys.writeFileExclusive("\(new)/hosts.own", hosts)
                }
                let resolv = sharedFiles?.resolv ?? Self.resolvConf(
                    host: (try? Sys.readFile("/etc/resolv.conf")) ?? [], request: request)
                try Sys.writeFileExclusive("\(new)/resolv.conf", resolv)
                try Sys.writeFileExclusive("\(new)/config.json", spec.json(seccomp: seccomp))
                try Sys.check("rename", path: dir) { rename(new, dir) }
            } catch {
                try? Sys.removeAll(new)
                throw error
            }
        }
    }

    func saveRecord(_ record: ContainerRecord) throws(GockerError) {
        try performing("save container \(record.id)") { () throws(SystemCallError) in
            try Sys.writeFileAtomic(containerDir(record.id) + "/container.json", record.jsonBytes)
        }
    }

    /// Reads the record of `id` afresh, lets `change` modify it and saves
    /// it, under the record's flock: two gocker processes changing one
    /// record (a `stop` and the monitor's exit hook) never lose each
    /// other's fields.
    @discardableResult
    func updateRecord(_ id: String, _ change: (inout ContainerRecord) throws(GockerError) -> Void) throws(GockerError) -> ContainerRecord {
        let fd = try lockRecord(id)
        defer { Sys.close(fd) }
        var record = try load(id)
        try change(&record)
        try saveRecord(record)
        return record
    }

    /// Claims the record's name (a random one: another random one while it
    /// is taken, saved in the record) for its container, whose record must
    /// exist. The claim is a symlink whose target is the id, made in one
    /// call that fails when the name exists: two gocker processes cannot
    /// both win a name, and no claim is ever half-written. A name whose
    /// container does not exist (its gocker died before the record was
    /// gone, or an older gocker left its file empty) is free: it is removed
    /// under the names' lock, and claimed again.
    func claimName(_ record: inout ContainerRecord, requested: Bool) throws(GockerError) {
        for attempt in 0..<64 {
            if !requested && attempt > 0 {
                record.name = attempt < 32 ? Identifier.randomName() : "\(Identifier.randomName())_\(attempt)"
                try saveRecord(record)
            }
            guard let holder = try claimName(record.name, id: record.id) else { return }
            if requested {
                throw GockerError(.alreadyExists,
                    "Conflict. The container name \"/\(record.name)\" is already in use by container \"\(holder)\". You have to remove (or rename) that container to be able to reuse that name.")
            }
        }
        throw GockerError(.system, "could not find a free container name")
    }

    /// nil once `name` is claimed for `id`; else the id of the live
    /// container that holds it.
    func claimName(_ name: String, id: String) throws(GockerError) -> String? {
        let path = namePath(name)
        for _ in 0..<16 {
            var e: Int32 = 0
            if symlink(id, path) == 0 { return nil }
            e = errno
            if e == ENOENT {
                // No names directory before the first container.
                try performing("reserve name \(name)") { () throws(SystemCallError) in
                    try Sys.mkdirAll(dataRoot + "/names", mode: 0o700)
                }
                if symlink(id, path) == 0 { return nil }
                e = errno
            }
            guard e == EEXIST else {
                throw GockerError(.system, "reserve name \(name)", cause: SystemCallError("symlink", path: path, errno: e))
            }
            guard let holder = nameHolder(name) else { continue }  // gone meanwhile
            if containerExists(holder) { return holder }
            dropStaleName(name, holder: holder)
        }
        throw GockerError(.system, "reserve name \(name): it changed hands too often")
    }

    /// The id `name` is claimed for: nil when no such name; "" for an
    /// empty or unreadable file. (Older gockers wrote the id into a file.)
    func nameHolder(_ name: String) -> String? {
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink(namePath(name), &buf, buf.count - 1)
        if n >= 0 { return Sys.string(buf) }
        if errno == ENOENT { return nil }
        guard let text = try? Sys.readText(namePath(name)) else { return Sys.exists(namePath(name)) ? "" : nil }
        return text.trimmed
    }

    /// Whether `id` names a container that has its record.
    func containerExists(_ id: String) -> Bool {
        !id.isEmpty && id.first != "." && !id.contains("/") && Sys.exists(containerDir(id) + "/container.json")
    }

    /// Removes `name` if it is still claimed for `holder` and that container
    /// does not exist, under the names' lock (a fresh claim that replaced it
    /// meanwhile stays).
    func dropStaleName(_ name: String, holder: String) {
        withNamesLock {
            if nameHolder(name) == holder && !containerExists(holder) { _ = unlink(namePath(name)) }
        }
    }

    /// Removes `name` if it is still claimed for `id`, under the names' lock.
    func dropName(_ name: String, of id: String) {
        withNamesLock {
            if nameHolder(name) == id { _ = unlink(namePath(name)) }
        }
    }

    /// An flock on the names directory itself: taken by whatever removes a
    /// name, never by a claim (which is one symlink call).
    func withNamesLock(_ body: () -> Void) {
        let fd = Glibc.open(dataRoot + "/names", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { Sys.close(fd) }
        _ = flock(fd, LOCK_EX)
        body()
    }

    /// An flock on the data root directory: shared by every create from
    /// the image's lookup until its container is in place; exclusive for
    /// `rmi` (which then sees every container being made) and for removing
    /// what creates that died left (`LOCK_NB`: only when none is under way).
    /// nil when it could not be taken.
    func lockDataRoot(_ operation: Int32) -> Int32? {
        let fd = Glibc.open(dataRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        if flock(fd, operation) < 0 {
            Sys.close(fd)
            return nil
        }
        return fd
    }

    /// Finds a container by full id, unique id prefix or name.
    public func lookup(_ ref: String) throws(GockerError) -> ContainerRecord {
        if containerExists(ref) { return try load(ref) }
        let isName = (try? Identifier.validateName(ref)) != nil
        if isName, let id = nameHolder(ref), containerExists(id) { return try load(id) }
        let ids = containerIDs().filter { $0.hasPrefix(ref) }
        if ids.count == 1 && !ref.isEmpty { return try load(ids[0]) }
        if ids.count > 1 {
            throw GockerError(.invalidArgument,
                "multiple containers match \"\(ref)\": \(ids.map { String($0.prefix(12)) }.sorted().joined(separator: ", "))")
        }
        // A record whose gocker died before it claimed the record's name.
        if isName, let r = records().first(where: { $0.name == ref && nameHolder(ref) == nil }) { return r }
        throw GockerError(.notFound, "No such container: \(ref)")
    }

    func load(_ id: String) throws(GockerError) -> ContainerRecord {
        try JSON.readFile(ContainerRecord.self, path: containerDir(id) + "/container.json")
    }

    /// Every container record, oldest first.
    public func records() -> [ContainerRecord] {
        containerIDs().compactMap { try? load($0) }.sorted { $0.created < $1.created }
    }

    /// The containers' directories' names (not those being removed).
    func containerIDs() -> [String] {
        ((try? Sys.listDirectory(dataRoot + "/containers")) ?? []).filter { !$0.hasPrefix(".") }
    }

    /// Cleans up after gocker processes that died (SIGKILLed) while their
    /// container ran: once such a container has stopped, its groups and
    /// runtime state are removed, and with --rm the container itself.
    public func reapOrphans() {
        for record in records() {
            guard let owner = record.ownerPid, UInt64(gk_process_start_time(owner)) != record.ownerStart else { continue }
            if let state = try? runtime.store.load(record.id) {
                // Created and never to be started: its gocker is gone.
                let status = runtime.status(of: state)
                guard status == .stopped || status == .created else { continue }
                try? runtime.delete(id: record.id, force: true)
            } else if runtime.store.ids().contains(record.id) {
                try? runtime.delete(id: record.id, force: true)
            }
            if record.autoRemove {
                try? remove(id: record.id, name: record.name, anonymousVolumes: record.mounts)
            } else {
                _ = try? updateRecord(record.id) { r in
                    r.ownerPid = nil
                    r.ownerStart = nil
                    r.finished = r.finished ?? Timestamp.now()
                }
            }
        }
        // What a removal that died half-way left.
        let entries = (try? Sys.listDirectory(dataRoot + "/containers")) ?? []
        for name in entries where name.hasPrefix(".removing-") {
            try? Sys.removeAll("\(dataRoot)/containers/\(name)")
        }
        // Bundles that a create that died left half-made (none is under way
        // while the lock is ours), and directories without a record that an
        // older gocker left.
        if let lock = lockDataRoot(LOCK_EX | LOCK_NB) {
            defer { Sys.close(lock) }
            for name in entries where name.hasPrefix(".new-") || (!name.hasPrefix(".") && !containerExists(name)) {
                try? Sys.removeAll("\(dataRoot)/containers/\(name)")
            }
        }
        // Names whose container is gone.
        for name in (try? Sys.listDirectory(dataRoot + "/names")) ?? [] where !name.hasPrefix(".") {
            if let holder = nameHolder(name), !containerExists(holder) { dropStaleName(name, holder: holder) }
        }
    }

    /// `gocker rm`: removes a container that is not running (with `force`,
    /// kills it first); with `volumes`, its anonymous volumes too.
    public func remove(_ ref: String, force: Bool, volumes: Bool = false) throws(GockerError) {
        // A name whose container is gone goes (here or in reapOrphans).
        let staleName = (try? Identifier.validateName(ref)) != nil && nameHolder(ref).map { !containerExists($0) } == true
        reapOrphans()
        let record: ContainerRecord
        do { record = try lookup(ref) } catch where error.code == .notFound && staleName {
            if let holder = nameHolder(ref), !containerExists(holder) { dropStaleName(ref, holder: holder) }
            return
        }
        if let state = try? runtime.state(id: record.id), state.status != .stopped {
            guard force else {
                throw GockerError(.invalidState,
                    "cannot remove container \(record.name): container is \(state.status.rawValue): stop the container before removing or force remove")
            }
        }
        // A monitor must not restart the container, and must be done with
        // its record, before the container's directory goes.
        let monitor = record.ownerPid.flatMap { pid in
            UInt64(gk_process_start_time(pid)) == record.ownerStart ? pid : nil
        }
        if monitor != nil {
            _ = try? updateRecord(record.id) { $0.stopRequested = true }
        }
        try runtime.delete(id: record.id, force: true)
        if let monitor {
            for _ in 0..<1000 where UInt64(gk_process_start_time(monitor)) == record.ownerStart {
                var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&ts, nil)
            }
            // Still there after 10 s: it goes, and whatever it started with it.
            if UInt64(gk_process_start_time(monitor)) == record.ownerStart {
                _ = Glibc.kill(monitor, SIGKILL)
                try runtime.delete(id: record.id, force: true)
            }
        }
        try remove(id: record.id, name: record.name, anonymousVolumes: volumes ? record.mounts : nil)
    }

    /// Deletes the container's directory and name; the runtime state must
    /// already be gone. The anonymous volumes among `anonymousVolumes` go
    /// too, unless another container uses them.
    func remove(id: String, name: String, anonymousVolumes: [MountPoint]? = nil) throws(GockerError) {
        // Under the record's lock the directory leaves its place in one
        // rename; a gocker that waited for the lock then finds no record,
        // and only the one that renamed it removes what is inside.
        let tomb = "\(dataRoot)/containers/.removing-\(id)"
        var failure: GockerError?
        do {
            let fd = try lockRecord(id)
            defer { Sys.close(fd) }
            // Another gocker may have renamed it away while this one waited.
            if Sys.exists(containerDir(id)) {
                // Its networks first: a gocker killed after this leaves a
                // container that `rm -f` removes again (and disconnecting
                // twice is no harm).
                disconnect(id: id, (try? load(id))?.launch?.attachments ?? [])
                try performing("remove container \(id)") { () throws(SystemCallError) in
                    try Sys.check("rename", path: containerDir(id)) { rename(containerDir(id), tomb) }
                    try Sys.removeAll(tomb)
                }
            }
        } catch where error.code == .notFound {
            // No directory: a create that failed before making it.
        } catch {
            failure = error
        }
        // The name and the anonymous volumes go whatever happened above.
        dropName(name, of: id)
        removeAnonymousVolumes(anonymousVolumes)
        if let failure { throw failure }
    }

    /// An flock on the container's directory itself (no lock file, which a
    /// removal racing with it could not remove); closing the descriptor
    /// releases it.
    func lockRecord(_ id: String) throws(GockerError) -> Int32 {
        let dir = containerDir(id)
        let fd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { throw GockerError(.notFound, "No such container: \(id)") }
            throw GockerError(.system, "lock container \(id)", cause: SystemCallError("open", path: dir, errno: errno))
        }
        if flock(fd, LOCK_EX) < 0 {
            let e = errno
            Sys.close(fd)
            throw GockerError(.system, "lock container \(id)", cause: SystemCallError("flock", path: dir, errno: e))
        }
        return fd
    }

    /// The docker rule for hostnames: RFC 1123 labels, at most 63 characters each.
    static func validateHostname(_ h: String) throws(GockerError) {
        let labels = h.split(separator: ".", omittingEmptySubsequences: false)
        let ok = !h.isEmpty && h.utf8.count <= 253 && labels.allSatisfy { l in
            !l.isEmpty && l.utf8.count <= 63 && l.first != "-" && l.last != "-"
                && l.utf8.allSatisfy { c in
                    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == UInt8(ascii: "-")
                }
        }
        if !ok { throw GockerError(.invalidArgument, "invalid hostname format: \(h)") }
    }

    static func hostHostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return Sys.string(buf)
    }

    /// Without -i, the container's standard input is /dev/null, as in docker.
    static func detachStdin() throws(GockerError) {
        try performing("open /dev/null") { () throws(SystemCallError) in
            let fd = try Sys.open("/dev/null", O_RDONLY)
            if fd != 0 {
                try Sys.check("dup2", path: "/dev/null") { dup2(fd, 0) }
                Sys.close(fd)
            }
        }
    }
}
