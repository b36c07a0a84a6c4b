import Glibc
import GockerCore
import GockerRuntime

/// `gocker bench --pull`: `gocker pull` of a generated multi-layer image
/// from a registry of the bench's own (Debian's docker-registry, on a free
/// port of 127.0.0.1, its storage in the scratch directory) against
/// `skopeo copy` of the same image to an OCI directory, side by side in one
/// run. skopeo copies the blobs as they are (downloaded and checked); gocker
/// also checks every layer's content and unpacks it into its store. Each
/// pair (gocker into an empty data root, then skopeo into an empty
/// directory, each after what the other wrote was synced and left the page
/// cache) is repeated, after warm-up pairs that put the registry's files
/// in the page cache.
public struct PullBench: Sendable {
    /// `--images`' options; `size` defaults to 512m here (the CLI's), and
    /// `layers` is this bench's own.
    public typealias Options = ImagesBench.Options

    public let options: Options

    public init(_ options: Options) { self.options = options }

    static let repository = "bench/pull"

    /// Runs it; a signal (INT, TERM, HUP) ends it after the command in
    /// flight, with what was measured until then. The registry stops, and
    /// the scratch directory (trees, image, registry storage, copies) goes,
    /// in any case.
    public func run(progress: (String) -> Void = { _ in }) throws(GockerError) -> ImagesResult {
        guard let registry = BenchProcess.lookup("docker-registry"), let skopeo = BenchProcess.lookup("skopeo"),
              access(registry, X_OK) == 0, access(skopeo, X_OK) == 0 else {
            throw GockerError(.notFound, "bench --pull needs docker-registry and skopeo (Debian's packages of those names)")
        }
        let oldMask = BenchProcess.blockStopSignals()
        defer { BenchProcess.restoreSignals(oldMask) }
        let scratch = try Bench.makeScratch(under: options.dataRoot, prefix: "bench-pull")
        var server: pid_t = 0
        defer {
            if server > 0 {
                kill(server, SIGTERM)
                var status: Int32 = 0
                while waitpid(server, &status, 0) < 0 && errno == EINTR {}
            }
            try? Sys.removeAll(scratch)
            _ = rmdir(options.dataRoot + "/tmp")  // only when empty
            ImagesBench.writeOutRemoval()
        }
        let baseEnv = BenchProcess.environment().filter { e in
            !["GOCKER_DATA_ROOT=", "GOCKER_STATE_ROOT=", "GOCKER_PULL=", "REGISTRY_", Timings.fileVariable + "="]
                .contains { e.hasPrefix($0) }
        }
        var result = ImagesResult(machine: BenchResult.machineNow(), gocker: options.gocker, size: options.size,
                                  seed: options.seed, tree: BenchTree.Stats(), tarBytes: 0, gzipBytes: 0,
                                  count: options.count, warmup: options.warmup, interruptedBy: nil, operations: [])
        result.layers = options.layers
        func stopped() -> Bool {
            if result.interruptedBy == nil, let s = BenchProcess.pendingStopSignal() { result.interruptedBy = s }
            return result.interruptedBy != nil
        }
        func mkdir(_ path: String) throws(GockerError) {
            try performing("create \(path)") { () throws(SystemCallError) in try Sys.mkdirAll(path, mode: 0o700) }
        }
        func write(_ path: String, _ bytes: [UInt8]) throws(GockerError) {
            try performing("write \(path)") { () throws(SystemCallError) in try Sys.writeFileAtomic(path, bytes, mode: 0o600) }
        }
        func sh(_ what: String, _ script: String) throws(GockerError) {
            let t = BenchProcess.runTimed(path: "/bin/sh", argv: ["/bin/sh", "-c", "cd \(ImagesBench.quote(scratch)) && " + script],
                                          env: baseEnv, stderrPath: scratch + "/stderr")
            guard t.ok || stopped() else {
                throw GockerError(.system, "bench --pull: \(what): \(ImagesBench.failure(t, stderr: scratch + "/stderr"))")
            }
        }

        // The image: one tree per layer, each a gzip tar blob of an OCI
        // layout (as registries hold images docker and buildkit push).
        let layout = scratch + "/layout"
        try mkdir(layout + "/blobs/sha256")
        var layers: [OCI.Descriptor] = []
        var diffIDs: [String] = []
        let each = max(1 << 10, options.size / Int64(max(1, options.layers)))
        for k in 0..<options.layers where !stopped() {
            progress("gocker bench --pull: writing layer \(k + 1)/\(options.layers), a tree of \(ImagesBench.megabytes(each)) MB")
            let stats = try BenchTree(size: each, seed: options.seed &+ UInt64(k)).write(to: "\(scratch)/tree\(k)", stop: stopped)
            result.tree.files += stats.files
            result.tree.directories += stats.directories
            result.tree.symlinks += stats.symlinks
            result.tree.bytes += stats.bytes
            // The trees stay until the end (as each run's copies do, below).
            try sh("archive layer \(k + 1)", "tar -c -f layer.tar -C tree\(k) . && gzip -c layer.tar > layer.tar.gz")
            if stopped() { break }
            let tar = try Self.digest(of: scratch + "/layer.tar")
            let gz = try Self.digest(of: scratch + "/layer.tar.gz")
            result.tarBytes += tar.size
            result.gzipBytes += gz.size
            diffIDs.append(tar.digest)
            layers.append(OCI.Descriptor(mediaType: OCI.layerGzipType, digest: gz.digest, size: gz.size))
            try performing("rename \(scratch)/layer.tar.gz") { () throws(SystemCallError) in
                try Sys.check("rename", path: scratch + "/layer.tar.gz") {
                    rename(scratch + "/layer.tar.gz", layout + "/blobs/sha256/" + gz.digest.dropFirst(7))
                }
            }
            _ = unlink(scratch + "/layer.tar")
        }
        var descriptors: [OCI.Descriptor] = []
        for (type, document) in [(OCI.configType, JSON.encode(OCI.ImageConfigFile(
                                     architecture: OCI.hostArchitecture, os: "linux", config: ImageConfig(Cmd: ["/bin/sh"]),
                                     rootfs: OCI.RootFS(diff_ids: diffIDs)))),
                                 (OCI.manifestType, [])] {
            var bytes = document
            if type == OCI.manifestType {
                bytes = JSON.encode(OCI.Manifest(mediaType: type, config: descriptors[0], layers: layers))
            }
            let d = OCI.Descriptor(mediaType: type, digest: "sha256:" + SHA256.hash(bytes).hex, size: Int64(bytes.count))
            try write(layout + "/blobs/sha256/" + d.digest.dropFirst(7), bytes)
            descriptors.append(d)
        }
        try write(layout + "/index.json", JSON.encode(OCI.Index(mediaType: OCI.indexType, manifests: [descriptors[1]])))
        try write(layout + "/oci-layout", Array(#"{"imageLayoutVersion": "1.0.0"}"#.utf8))

        // The registry, and skopeo's settings of the bench's own: any image
        // accepted, no stored credentials, no mirrors.
        try write(scratch + "/policy.json", Array(#"{"default": [{"type": "insecureAcceptAnything"}]}"#.utf8))
        try write(scratch + "/registries.conf", [])
        var host = ""
        for _ in 0..<5 where server == 0 && !stopped() {
            let port = try Self.freePort()
            host = "127.0.0.1:\(port)"
            try write(scratch + "/registry.yml", Array([
                "version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                "storage:", "  filesystem:", "    rootdirectory: \"\(scratch)/registry\"",
                "  maintenance:", "    uploadpurging:", "      enabled: false",
                "http:", "  addr: \(host)", "  secret: \(Sys.randomBytes(16).hex)", "",
            ].joined(separator: "\n").utf8))
            progress("gocker bench --pull: starting docker-registry on \(host)")
            let p = BenchProcess.Prepared(path: registry, argv: [registry, "serve", scratch + "/registry.yml"], env: baseEnv,
                                          stderrPath: scratch + "/registry.log")
            let (pid, e) = p.spawn()
            guard e == 0 else { throw GockerError(.system, "bench --pull: exec \(registry): \(errnoText(e))") }
            switch Self.waitListening(port: port, pid: pid) {
            case .listening: server = pid
            case .exited: break  // reaped already (another process had the port)
            case .silent:
                kill(pid, SIGTERM)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
        }
        guard server > 0 || stopped() else {
            let why = BenchProcess.firstLine(of: scratch + "/registry.log") ?? "it did not listen within 10 s"
            throw GockerError(.system, "bench --pull: docker-registry: \(why)")
        }
        let name = "\(host)/\(Self.repository):latest"
        let skopeoArgs = [skopeo, "--policy", scratch + "/policy.json", "--registries-conf", scratch + "/registries.conf"]
        if !stopped() {
            progress("gocker bench --pull: pushing the image with skopeo")
            let argv = skopeoArgs + ["copy", "-q", "--dest-tls-verify=false", "--dest-no-creds", "oci:\(layout)", "docker://\(name)"]
            let t = BenchProcess.runTimed(path: skopeo, argv: argv, env: baseEnv, stderrPath: scratch + "/stderr")
            guard t.ok || stopped() else {
                throw GockerError(.system, "bench --pull: skopeo copy to the registry: \(ImagesBench.failure(t, stderr: scratch + "/stderr"))")
            }
            try? Sys.removeAll(layout)
        }

        let gockerArgv = [options.gocker, "pull", "-q", name]
        func copyArgv(_ dir: String) -> [String] {
            skopeoArgs + ["copy", "-q", "--src-tls-verify=false", "--src-no-creds", "docker://\(name)", "oci:\(dir):bench"]
        }
        var summary = ImagesOperation(name: "pull", gocker: ["gocker", "pull", "-q", name],
                                      pipeline: (["skopeo"] + copyArgv("copy-N").dropFirst()).joined(separator: " "))
        // What each run wrote stays until the end: files removed shortly
        // before slow file creation down (ext4 passes over inodes freed in
        // the last half minute), which would time ext4, not the pull. It is
        // synced and its page cache given back before the next side runs:
        // nothing is left to write back in that side's time, and the memory
        // it takes is memory in use before, as on a machine that has run a
        // while (new memory costs a virtual machine much more).
        let total = options.warmup + options.count
        for i in 0..<total where !stopped() {
            progress("gocker bench --pull: pull \(i < options.warmup ? "warm-up" : "\(i - options.warmup + 1)/\(options.count)")")
            let root = scratch + "/root-\(i)"
            let gockerEnv = baseEnv + ["GOCKER_DATA_ROOT=\(root)/data", "GOCKER_STATE_ROOT=\(root)/state"]
            if i > 0 { Self.settle(scratch + "/copy-\(i - 1)") }
            let g = BenchProcess.runTimed(path: options.gocker, argv: gockerArgv, env: gockerEnv, stderrPath: scratch + "/stderr")
            if stopped() { break }
            guard g.ok else {
                summary.error = "gocker: " + ImagesBench.failure(g, stderr: scratch + "/stderr")
                break
            }
            Self.settle(root)
            let chdir = "cd \(ImagesBench.quote(scratch)) && exec " + copyArgv("copy-\(i)").map(ImagesBench.quote).joined(separator: " ")
            let p = BenchProcess.runTimed(path: "/bin/sh", argv: ["/bin/sh", "-c", chdir], env: baseEnv,
                                          stderrPath: scratch + "/stderr")
            if stopped() { break }
            guard p.ok else {
                summary.error = "skopeo: " + ImagesBench.failure(p, stderr: scratch + "/stderr")
                break
            }
            if i >= options.warmup { summary.add(gocker: g, pipeline: p) }
        }
        summary.summarize()
        result.operations.append(summary)
        return result
    }

    /// Writes what is under `path` to disk and drops its files' pages from
    /// the page cache (symlinks not followed).
    static func settle(_ path: String) {
        sync()
        func walk(_ dir: Int32) {
            guard let stream = fdopendir(dir) else { Sys.close(dir); return }
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name == "." || name == ".." { continue }
                let fd = openat(dirfd(stream), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
                guard fd >= 0 else { continue }
                var st = stat()
                if fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR {
                    walk(fd)
                    continue
                }
                if st.st_mode & S_IFMT == S_IFREG { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) }
                Sys.close(fd)
            }
        }
        let top = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if top >= 0 { walk(top) }
    }

    /// A file's sha256 digest ("sha256:HEX") and size, read through.
    static func digest(of path: String) throws(GockerError) -> (digest: String, size: Int64) {
        let fd = try performing("open \(path)") { () throws(SystemCallError) in try Sys.open(path, O_RDONLY | O_CLOEXEC) }
        defer { Sys.close(fd) }
        var hash = SHA256()
        var size: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw GockerError(.system, "read \(path): \(errnoText(errno))") }
            if n == 0 { break }
            hash.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += Int64(n)
        }
        return ("sha256:" + hash.finalize().hex, size)
    }

    /// A port of 127.0.0.1 that nothing held a moment ago.
    static func freePort() throws(GockerError) -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw GockerError(.system, "socket: \(errnoText(errno))") }
        defer { Sys.close(fd) }
        var sa = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sa) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { s in
                bind(fd, s, length) == 0 && getsockname(fd, s, &length) == 0
            }
        }
        guard ok else { throw GockerError(.system, "bind 127.0.0.1:0: \(errnoText(errno))") }
        return UInt16(bigEndian: sa.sin_port)
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return sa
    }

    enum Listening { case listening, exited, silent }

    /// Waits up to 10 s for a connection to 127.0.0.1:port to be taken
    /// while `pid` runs: `.exited` when it ended (and was reaped), `.silent`
    /// when it runs but took none.
    static func waitListening(port: UInt16, pid: pid_t) -> Listening {
        for _ in 0..<200 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return .exited }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return .silent }
            var sa = loopback(port: port)
            let connected = withUnsafePointer(to: &sa) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            Sys.close(fd)
            if connected { return .listening }
            usleep(50_000)
        }
        return .silent
    }
}
