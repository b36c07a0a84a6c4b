import Glibc
import GockerCgroups
import GockerCore
import GockerRuntime

/// `gocker bench`: container start latency, measured from outside. Every
/// start is an external process timed from posix_spawn to waitpid, the
/// container's removal included, so that gocker's docker-like `run --rm`,
/// `gocker oci run` on a bundle and any runc-compatible runtime on the same
/// bundle are measured alike. Rows take turns (A B C A B C), so that drift
/// on a noisy machine hits them all.
public struct Bench: Sendable {
    /// What a row starts.
    public enum Target: Sendable, Equatable {
        /// `gocker run --rm FLAGS busybox true`
        case run(flags: [String])
        /// `gocker oci run --bundle B ID`
        case oci
        /// `NAME --root DIR run --bundle B ID`: runc, crun or any
        /// runc-compatible binary, by name (found in $PATH) or path.
        case runtime(String)
        /// `gocker-floor ROOTFS` (csrc/floor/floor.c): clone with five
        /// namespaces, pivot_root, /proc, exec `true`, wait. The floor.
        case floor
        /// As the user of `--rootless`: `gocker run --rm FLAGS busybox true`
        /// ("gocker") or `podman --runtime runc run --rm FLAGS IMAGE true`
        /// ("podman"), through setpriv.
        case rootless(tool: String, flags: [String])
    }

    /// The image the podman rootless rows import into the user's store
    /// (and remove at the end).
    static let podmanImage = "localhost/gocker-bench-busybox"

    public struct Row: Sendable, Equatable {
        public var runtime: String
        public var name: String
        public var target: Target
        /// Memory, CPU and pids limits (`limitFlags`; in a bundle the
        /// resources they make).
        public var limits: Bool
        /// A bundle given with `--bundle`, used as it is (nil: the bundle
        /// the bench writes).
        public var bundle: String? = nil
    }

    /// A bundle given with `--bundle`: its absolute path, and the name its
    /// rows carry (its directory's last component, made unique).
    public struct UserBundle: Sendable, Equatable {
        public var name: String
        public var path: String
    }

    /// The limits of the "limits" rows, as docker's flags.
    public static let limitFlags = ["-m", "64m", "--cpus", "0.5", "--pids-limit", "100"]

    /// The rows: gocker's `run --rm` (with and without its seccomp
    /// profile), `gocker oci run` and each runtime;
    /// with `matrix` also the cgroupfs backend, limits, and the host network.
    /// Then, for each `--bundle`, `gocker oci run` and each runtime on it.
    public static func rows(runtimes: [String], matrix: Bool, bundles: [UserBundle] = [],
                            rootless: Bool = false, podman: Bool = false) -> [Row] {
        var rows = [Row(runtime: "gocker", name: "gocker run --rm", target: .run(flags: []), limits: false),
                    // What docker's seccomp profile costs a start: the same without it.
                    Row(runtime: "gocker", name: "gocker run --rm seccomp=unconfined",
                        target: .run(flags: ["--security-opt", "seccomp=unconfined"]), limits: false),
                    // What the default network (a veth on its bridge) costs a start.
                    Row(runtime: "gocker", name: "gocker run --rm --network none",
                        target: .run(flags: ["--network", "none"]), limits: false),
                    // And a published port (an ephemeral host port: parallel
                    // starts never ask for the same one).
                    Row(runtime: "gocker", name: "gocker run --rm -p 80",
                        target: .run(flags: ["-p", "80"]), limits: false)]
        if matrix {
            rows.append(Row(runtime: "gocker", name: "gocker run --rm cgroupfs",
                            target: .run(flags: ["--cgroup-backend=cgroupfs"]), limits: false))
            rows.append(Row(runtime: "gocker", name: "gocker run --rm limits", target: .run(flags: limitFlags), limits: true))
            rows.append(Row(runtime: "gocker", name: "gocker run --rm cgroupfs limits",
                            target: .run(flags: ["--cgroup-backend=cgroupfs"] + limitFlags), limits: true))
            rows.append(Row(runtime: "gocker", name: "gocker run --rm --network host",
                            target: .run(flags: ["--network", "host"]), limits: false))
        }
        let bundleTargets: [(String, Target)] = [("gocker oci", .oci)] + runtimes.map { ($0, .runtime($0)) }
        for (runtime, target) in bundleTargets {
            rows.append(Row(runtime: runtime, name: "\(runtime) run", target: target, limits: false))
            if matrix {
                rows.append(Row(runtime: runtime, name: "\(runtime) run limits", target: target, limits: true))
            }
        }
        for b in bundles {
            for (runtime, target) in bundleTargets {
                rows.append(Row(runtime: runtime, name: "\(runtime) run [\(b.name)]", target: target, limits: false, bundle: b.path))
            }
        }
        if rootless {
            // Rootless, the default network is slirp4netns, as podman's.
            var tools = [("gocker", "gocker")]
            if podman { tools.append(("podman", "podman (runc)")) }
            for (tool, shown) in tools {
                rows.append(Row(runtime: tool, name: "\(shown) run --rm rootless", target: .rootless(tool: tool, flags: []), limits: false))
                rows.append(Row(runtime: tool, name: "\(shown) run --rm rootless --network none",
                                target: .rootless(tool: tool, flags: ["--network", "none"]), limits: false))
            }
        }
        rows.append(Row(runtime: "C floor", name: "C floor: clone, pivot_root, exec", target: .floor, limits: false))
        return rows
    }

    public struct Options: Sendable {
        public var count = 100
        public var warmup = 1
        /// Starts at a time, per row.
        public var parallel = 1
        public var runtimes: [String] = []
        public var matrix = false
        /// OCI bundles to time every runtime on (`--bundle`), as given.
        public var bundles: [String] = []
        /// `--rootless USER`: rows run as that user (see Target.rootless).
        public var rootlessUser: String?
        public var dataRoot: String
        public var stateRoot: String
        /// The gocker binary under test (default: this one).
        public var gocker: String

        public init(dataRoot: String, stateRoot: String, gocker: String) {
            self.dataRoot = Paths.absolute(dataRoot)
            self.stateRoot = Paths.absolute(stateRoot)
            self.gocker = gocker
        }
    }

    public let options: Options

    public init(_ options: Options) { self.options = options }

    /// The binary this process runs.
    public static func selfPath() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/proc/self/exe"
    }

    // MARK: running

    /// A row while it runs.
    final class RowRun {
        let row: Row
        let index: Int
        /// The executable (nil: not found, see `setupError`).
        var path: String?
        var setupError: String?
        /// One bundle per slot (parallel starts need cgroups of their own).
        var bundles: [String] = []
        var cgroupPaths: [String] = []
        var runtimeRoot: String?
        /// The floor's root directory.
        var rootfs: String?
        /// A rootless row's setpriv and env words before its command.
        var prefix: [String] = []
        var env: [String] = []
        var samples: [BenchSample] = []
        var measured = 0
        var warmed = 0
        var failed = false
        var wallNs: UInt64 = 0
        var phaseSums: [String: Double] = [:]
        var timedStarts = 0

        init(row: Row, index: Int) {
            self.row = row
            self.index = index
        }

        /// gocker's own rows, which report their phases.
        var isGocker: Bool {
            switch row.target {
            case .run, .oci: return true
            case .runtime, .floor: return false
            case .rootless(let tool, _): return tool == "gocker"
            }
        }

        /// The command of one start.
        func command(gocker: String, id: String, slot: Int) -> [String] {
            switch row.target {
            case .run(let flags): return [gocker, "run", "--rm"] + flags + ["busybox", "true"]
            case .oci: return [gocker, "oci", "run", "--bundle", bundles[slot], id]
            case .runtime(let name): return [name, "--root", runtimeRoot!, "run", "--bundle", bundles[slot], id]
            case .floor: return ["gocker-floor", rootfs!]
            case .rootless(let tool, let flags):
                if tool == "podman" { return prefix + ["podman", "--runtime", "runc", "run", "--rm"] + flags + [Bench.podmanImage, "true"] }
                return prefix + ["\(Timings.fileVariable)=/dev/fd/3", gocker, "run", "--rm"] + flags + ["busybox", "true"]
            }
        }

        /// How to remove what a failed start may have left.
        func cleanupCommand(gocker: String, id: String) -> [String]? {
            switch row.target {
            case .run: return nil  // `run --rm` removes its container itself, also on failure
            case .oci: return [gocker, "oci", "delete", "--force", id]
            case .runtime(let name): return [name, "--root", runtimeRoot!, "delete", "--force", id]
            case .floor: return nil  // nothing outlives its namespaces
            case .rootless: return nil  // `run --rm`, both
            }
        }
    }

    /// One start in flight.
    struct InFlight {
        let row: RowRun
        let slot: Int
        let id: String
        let warmup: Bool
        let index: Int
        let start: UInt64
    }

    /// Runs the bench. A signal (INT, TERM, HUP) ends it after the starts in
    /// flight, with what was measured until then; everything it made (the
    /// scratch directory, containers of failed starts) is removed in any case.
    public func run(progress: (String) -> Void = { _ in }) throws(GockerError) -> BenchResult {
        // Bundles are judged before anything is made.
        let userBundles = try Self.checkBundles(options.bundles)
        let oldMask = BenchProcess.blockStopSignals()
        defer { BenchProcess.restoreSignals(oldMask) }
        let scratch = try makeScratch()
        var runs: [RowRun] = []
        let engine = Engine(dataRoot: options.dataRoot, stateRoot: options.stateRoot)
        // The `run` rows make the default network when it is not there yet;
        // the bench then removes it again (its bridge, its nftables part).
        let hadDefaultNetwork = engine.hasDefaultNetwork
        defer {
            cleanUp(scratch: scratch, runs: runs)
            if !hadDefaultNetwork { engine.removeDefaultNetworkIfUnused() }
        }

        let (image, _) = try engine.images.resolve("busybox")
        try prepareRootfs(scratch: scratch, layers: image.layers.map(engine.images.layerPath))
        let etc = try prepareEtc(scratch: scratch)
        let baseEnv = BenchProcess.environment().filter { e in
            !["GOCKER_DATA_ROOT=", "GOCKER_STATE_ROOT=", Timings.fileVariable + "="].contains { e.hasPrefix($0) }
        } + ["GOCKER_DATA_ROOT=\(options.dataRoot)", "GOCKER_STATE_ROOT=\(options.stateRoot)"]
        let cgroupParent = try CgroupDriver.validatePath(Runtime(stateRoot: options.stateRoot).cgroupParent)

        // Rootless rows: the user's words for setpriv, and podman's image
        // in the user's store (when podman is installed).
        let user = try options.rootlessUser.map { name throws(GockerError) in try Self.rootlessPrefix(name) }
        var podmanSetup: String?? = nil
        if let user, BenchProcess.lookup("podman") != nil {
            podmanSetup = .some(importForPodman(prefix: user, rootfs: scratch + "/rootfs", scratch: scratch))
        }
        defer {
            if let user, podmanSetup != nil {
                BenchProcess.runQuietly(path: "/usr/bin/setpriv", argv: ["setpriv"] + user.dropFirst()
                                        + ["podman", "rmi", "-f", Self.podmanImage], env: [])
            }
        }
        let rows = Self.rows(runtimes: options.runtimes, matrix: options.matrix, bundles: userBundles,
                             rootless: user != nil, podman: podmanSetup != nil)
        for (i, row) in rows.enumerated() {
            let r = RowRun(row: row, index: i)
            runs.append(r)
            r.env = baseEnv
            if case .rootless(let tool, _) = row.target, let user {
                r.path = user[0]
                r.prefix = user
                if tool == "podman", let failure = podmanSetup ?? nil { r.setupError = failure }
                continue
            }
            switch row.target {
            case .run, .oci:
                r.path = options.gocker
            case .floor:
                r.path = options.gocker
                r.rootfs = scratch + "/rootfs"
            case .runtime(let name):
                r.path = BenchProcess.lookup(name)
                if r.path == nil { r.setupError = "\(name): executable file not found in $PATH" }
                r.runtimeRoot = "\(scratch)/root-\(i)"
                try performing("create \(r.runtimeRoot!)") { () throws(SystemCallError) in
                    try Sys.mkdirAll(r.runtimeRoot!, mode: 0o700)
                }
            case .rootless: continue
            }
            switch row.target {
            case .run, .floor, .rootless: continue
            case .oci, .runtime: break
            }
            // A user's bundle is used as it is, by every slot: each start
            // has an id of its own, and the config says where its groups go.
            if let bundle = row.bundle {
                r.bundles = Array(repeating: bundle, count: options.parallel)
                continue
            }
            for slot in 0..<options.parallel {
                let cgroupsPath = "/\(cgroupParent)/gocker-bench-\(getpid())-\(i)-\(slot)"
                let bundle = "\(scratch)/bundle-\(i)-\(slot)"
                let spec = try bundleSpec(image: image, etc: etc, rootfs: scratch + "/rootfs",
                                          cgroupsPath: cgroupsPath, limits: row.limits)
                try performing("write bundle \(bundle)") { () throws(SystemCallError) in
                    try Sys.mkdirAll(bundle, mode: 0o700)
                    try Sys.writeFileAtomic(bundle + "/config.json", JSONText.pretty(spec.jsonBytes))
                }
                r.bundles.append(bundle)
                r.cgroupPaths.append(cgroupsPath)
            }
        }

        var interruptedBy: Int32?
        let total = options.warmup + options.count
        progress("gocker bench: \(runs.count) rows, \(options.warmup) warm-up + \(options.count) starts each, \(options.parallel) at a time")
        rounds: while true {
            var any = false
            for r in runs where !r.failed && r.warmed + r.measured < total {
                any = true
                let warm = r.warmed < options.warmup
                let k = warm ? min(options.parallel, options.warmup - r.warmed)
                             : min(options.parallel, options.count - r.measured)
                wave(r, size: k, warmup: warm, scratch: scratch)
                if let s = BenchProcess.pendingStopSignal() {
                    interruptedBy = s
                    break rounds
                }
            }
            if !any { break }
        }
        return result(runs, interruptedBy: interruptedBy)
    }

    /// `size` starts of one row at once, each timed from its spawn to its reap.
    func wave(_ r: RowRun, size: Int, warmup: Bool, scratch: String) {
        var prepared: [(BenchProcess.Prepared?, String, [String])] = []
        // gocker's rows write their phases to a pipe (descriptor 3), not to
        // a file: no disk work is added to the starts being timed.
        var pipes: [(read: Int32, write: Int32)?] = []
        defer { for p in pipes { if let p { Sys.close(p.read); Sys.close(p.write) } } }
        for slot in 0..<size {
            let index = warmup ? r.warmed + slot : r.measured + slot
            let id = "gocker-bench-\(getpid())-\(r.index)-\(warmup ? "w" : "")\(index)"
            let argv = r.command(gocker: options.gocker, id: id, slot: slot)
            var env = r.env
            let pipe = r.isGocker ? BenchProcess.timingsPipe() : nil
            pipes.append(pipe)
            if pipe != nil { env.append("\(Timings.fileVariable)=/dev/fd/3") }
            let p = r.path.map {
                BenchProcess.Prepared(path: $0, argv: argv, env: env, stderrPath: "\(scratch)/stderr-\(slot)", fd3: pipe?.write)
            }
            prepared.append((p, id, argv))
        }
        var inFlight: [pid_t: InFlight] = [:]
        var done: [(InFlight, ms: Double?, ok: Bool, error: String?)] = []
        let waveStart = BenchProcess.now()
        for (slot, (p, id, _)) in prepared.enumerated() {
            let index = warmup ? r.warmed + slot : r.measured + slot
            let start = BenchProcess.now()
            let flight = InFlight(row: r, slot: slot, id: id, warmup: warmup, index: index, start: start)
            guard let p else {
                done.append((flight, nil, false, r.setupError))
                continue
            }
            let (pid, e) = p.spawn()
            if let w = pipes[slot]?.write {
                Sys.close(w)
                pipes[slot]?.write = -1
            }
            if e != 0 {
                let ms = Double(BenchProcess.now() - start) / 1e6
                done.append((flight, ms, false, "exec \(p.path): \(errnoText(e))"))
            } else {
                inFlight[pid] = flight
            }
        }
        var waveEnd = BenchProcess.now()
        while !inFlight.isEmpty, let (pid, status, at) = BenchProcess.waitAny() {
            guard let flight = inFlight.removeValue(forKey: pid) else { continue }
            waveEnd = at
            let ms = Double(at - flight.start) / 1e6
            if status == 0 {
                done.append((flight, ms, true, nil))
            } else {
                let code = Runtime.exitCode(status)
                let line = BenchProcess.firstLine(of: "\(scratch)/stderr-\(flight.slot)")
                let what = status & 0x7f != 0 ? "killed by signal \(status & 0x7f)" : "exit status \(code)"
                done.append((flight, ms, false, line ?? what))
            }
        }
        if !warmup { r.wallNs += waveEnd - waveStart }

        for (flight, ms, succeeded, failure) in done.sorted(by: { $0.0.slot < $1.0.slot }) {
            var ok = succeeded, error = failure
            // gocker writes its phases only once it started a container: a
            // start that exited 0 without them ran none (it printed its
            // help, say), and is no sample of a start.
            if ok, r.isGocker, let pipe = pipes[flight.slot] {
                if let line = try? JSON.decode(Timings.Line.self, from: BenchProcess.drain(pipe.read), what: "timings") {
                    if !warmup {
                        for p in line.phases { r.phaseSums[p.name, default: 0] += p.ms }
                        r.timedStarts += 1
                    }
                } else {
                    ok = false
                    error = BenchProcess.firstLine(of: "\(scratch)/stderr-\(flight.slot)")
                        ?? "it exited 0 but started no container (no phases reported)"
                }
            }
            r.samples.append(BenchSample(runtime: r.row.runtime, row: r.row.name, index: flight.index,
                                         warmup: flight.warmup, ms: ms, ok: ok, error: error))
            if !ok, let cleanup = r.cleanupCommand(gocker: options.gocker, id: flight.id), let path = r.path {
                BenchProcess.runQuietly(path: path, argv: cleanup, env: r.env)
            }
        }
        if warmup { r.warmed += size } else { r.measured += size }
        // A row whose first start fails is not tried again: a missing
        // binary or a host it refuses fails the same way every time.
        if let first = r.samples.first, !first.ok, r.samples.allSatisfy({ !$0.ok }) { r.failed = true }
    }

    func result(_ runs: [RowRun], interruptedBy: Int32?) -> BenchResult {
        var summary: [BenchSummary] = []
        for r in runs {
            let measured = r.samples.filter { !$0.warmup }
            let okMs = measured.filter(\.ok).compactMap(\.ms)
            let stats = BenchStats(okMs)
            let error = r.samples.first { !$0.ok }?.error ?? (r.failed ? "failed" : nil)
            let phases = Timings.phaseNames.compactMap { name -> BenchSummary.PhaseSum? in
                guard let total = r.phaseSums[name], r.timedStarts > 0 else { return nil }
                return BenchSummary.PhaseSum(name: name, total: total, mean: total / Double(r.timedStarts))
            }
            let throughput = r.wallNs > 0 && !okMs.isEmpty ? Double(okMs.count) / (Double(r.wallNs) / 1e9) : nil
            let firstCommand = r.command(gocker: options.gocker, id: "gocker-bench-\(getpid())-\(r.index)-0", slot: 0)
            summary.append(BenchSummary(
                runtime: r.row.runtime, row: r.row.name, command: firstCommand, n: okMs.count,
                failedStarts: r.samples.filter { !$0.ok }.count, failed: stats == nil, error: error, stats: stats,
                ratio: nil, throughput: throughput, phases: phases))
        }
        if let base = summary.first?.stats?.p50, base > 0 {
            for i in summary.indices { summary[i].ratio = summary[i].stats.map { $0.p50 / base } }
        }
        return BenchResult(machine: BenchResult.machineNow(), gocker: options.gocker, count: options.count,
                           warmup: options.warmup, parallel: options.parallel, interruptedBy: interruptedBy,
                           summary: summary, samples: runs.flatMap(\.samples))
    }

    // MARK: the bundle

    /// The scratch directory: `<data-root>/tmp/bench-XXXXXX`.
    func makeScratch() throws(GockerError) -> String {
        try Self.makeScratch(under: options.dataRoot, prefix: "bench")
    }

    /// A new directory `<data-root>/tmp/PREFIX-XXXXXX`.
    static func makeScratch(under dataRoot: String, prefix: String) throws(GockerError) -> String {
        let parent = dataRoot + "/tmp"
        try performing("create \(parent)") { () throws(SystemCallError) in try Sys.mkdirAll(parent, mode: 0o700) }
        var template = Array("\(parent)/\(prefix)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else {
            throw GockerError(.system, "create the bench's scratch directory",
                              cause: SystemCallError("mkdtemp", path: parent, errno: errno))
        }
        return String(cString: p)
    }

    /// The image's layers copied, in order, to `<scratch>/rootfs`: a plain
    /// root filesystem every runtime can use.
    func prepareRootfs(scratch: String, layers: [String]) throws(GockerError) {
        let rootfs = scratch + "/rootfs"
        try performing("create \(rootfs)") { () throws(SystemCallError) in try Sys.mkdirAll(rootfs) }
        for layer in layers {
            _ = try Sys.output(of: ["/bin/cp", "-a", layer + "/.", rootfs + "/"])
        }
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf to bind into the
    /// containers, as `gocker run` writes them for a container.
    func prepareEtc(scratch: String) throws(GockerError) -> String {
        let etc = scratch + "/etc"
        try performing("create \(etc)") { () throws(SystemCallError) in
            try Sys.mkdirAll(etc)
            try Sys.writeFileAtomic(etc + "/hostname", Array("bench\n".utf8))
            try Sys.writeFileAtomic(etc + "/hosts", Array("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".utf8))
            try Sys.writeFileAtomic(etc + "/resolv.conf", (try? Sys.readFile("/etc/resolv.conf")) ?? [])
        }
        return etc
    }

    /// The OCI config of the bundle rows: the one `gocker run --rm busybox
    /// true` makes (namespaces, mounts, capabilities, masked paths, device
    /// rules, resources), with a plain root directory instead of gocker's
    /// overlay, without what gocker adds beside the config (`LaunchExtras`),
    /// and with an explicit cgroupsPath, so that every runtime is asked for
    /// exactly the same.
    func bundleSpec(image: ImageRecord, etc: String, rootfs: String, cgroupsPath: String,
                    limits: Bool) throws(GockerError) -> Spec {
        var request = RunRequest(image: "busybox")
        request.command = ["true"]
        request.autoRemove = true
        if limits {
            request.resources["memory"] = "64m"
            request.resources["cpus"] = "0.5"
            request.resources["pids-limit"] = "100"
        }
        let env = ContainerSpec.environment(image: image.config.Env ?? [], hostname: "bench", request: [])
        var spec = try ContainerSpec.build(request: request, image: image, containerDir: etc,
                                           hostname: "bench", env: env, args: ["true"])
        spec.root = Spec.Root(path: rootfs, readonly: false)
        spec.linux?.cgroupsPath = cgroupsPath
        return spec
    }

    // MARK: cleaning up

    /// Removes what the bench made: containers a failed start may have left
    /// (their runtimes' `delete --force`, already run after each failure),
    /// any group left at the bundles' cgroupsPaths, and the scratch directory.
    /// setpriv to the user `name` (from /etc/passwd: a static binary has no
    /// NSS) with its groups, then `env -i` with its HOME and a PATH: the
    /// words before a rootless row's command (the first is setpriv's path).
    static func rootlessPrefix(_ name: String) throws(GockerError) -> [String] {
        let text = String(decoding: (try? Sys.readFile("/etc/passwd")) ?? [], as: UTF8.self)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 6, f[0] == name, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { continue }
            guard uid != 0 else { throw GockerError(.invalidArgument, "--rootless \(name): the user must not be root") }
            guard let setpriv = BenchProcess.lookup("setpriv") else {
                throw GockerError(.invalidArgument, "--rootless: setpriv (util-linux) is not installed")
            }
            return [setpriv, "--reuid=\(uid)", "--regid=\(gid)", "--init-groups", "/usr/bin/env", "-i",
                    "HOME=\(f[5])", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        }
        throw GockerError(.notFound, "--rootless \(name): no such user in /etc/passwd")
    }

    /// The bench's busybox root imported into the user's podman store as
    /// `podmanImage`: nil, or why it failed.
    func importForPodman(prefix: [String], rootfs: String, scratch: String) -> String? {
        // A tarball the user can read, for as long as the import takes.
        var template = Array("/tmp/gocker-bench-busybox-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { return "podman: a tarball for its import: \(errnoText(errno))" }
        let tar = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        Sys.close(fd)
        defer { unlink(tar) }
        chmod(tar, 0o644)
        BenchProcess.runQuietly(path: "/bin/tar", argv: ["tar", "-C", rootfs, "-cf", tar, "."], env: [])
        let err = scratch + "/podman-import.err"
        let t = BenchProcess.runTimed(path: prefix[0], argv: ["setpriv"] + prefix.dropFirst() + ["podman", "import", tar, Self.podmanImage],
                                      env: [], stderrPath: err)
        if t.ok { return nil }
        return "podman import: " + (BenchProcess.firstLine(of: err) ?? "status \(t.status)")
    }

    func cleanUp(scratch: String, runs: [RowRun]) {
        let hierarchies = (try? Sys.listDirectory(Paths.cgroupRoot)) ?? []
        for r in runs {
            for path in r.cgroupPaths {
                for h in hierarchies { _ = rmdir("\(Paths.cgroupRoot)/\(h)\(path)") }
            }
        }
        try? Sys.removeAll(scratch)
        _ = rmdir(options.dataRoot + "/tmp")  // only when empty
    }
}
