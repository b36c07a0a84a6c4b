import Glibc
import GockerCore
import GockerRuntime

/// `gocker bench --bundle DIR`: any OCI bundle, every runtime on it, used
/// exactly as given; and `--write-bundle DIR`, the bundle every OCI user
/// starts from, for the README's row.
extension Bench {
    /// The bundles as given, judged before the bench makes anything: each
    /// must be a directory holding a config.json that parses. Their rows'
    /// names are their directories' last components, a number added to
    /// one that is already taken ("b", "b-2").
    public static func checkBundles(_ paths: [String]) throws(GockerError) -> [UserBundle] {
        var out: [UserBundle] = []
        for given in paths {
            let path = Paths.absolute(given)
            guard Sys.isDirectory(path) else {
                throw GockerError(.invalidArgument, "bench: --bundle \(given): not a directory")
            }
            let config = path + "/config.json"
            guard Sys.exists(config) else {
                throw GockerError(.invalidArgument, "bench: --bundle \(given): no config.json in it")
            }
            do {
                _ = try Spec.decodeFile(path: config)
            } catch {
                throw GockerError(.invalidConfig, "bench: --bundle \(given): \(error.description)")
            }
            let base = path.split(separator: "/").last.map(String.init) ?? "/"
            var name = base
            var n = 2
            while out.contains(where: { $0.name == name }) {
                name = "\(base)-\(n)"
                n += 1
            }
            out.append(UserBundle(name: name, path: path))
        }
        return out
    }

    /// The config of the canonical bundle: `runc spec`'s (as `gocker oci
    /// spec` writes it, or as `runc spec` wrote it: `given`) with
    /// `process.args` ["true"] and no terminal; nothing else changed.
    public static func canonicalSpec(_ given: Spec = DefaultSpec.make()) -> Spec {
        var spec = given
        spec.process?.args = ["true"]
        spec.process?.terminal = false
        return spec
    }

    /// `--write-bundle DIR`: the canonical bundle in DIR, which must not
    /// exist yet (its parent must), or hold only a config.json (as `runc
    /// spec --bundle DIR` leaves it, whose config is then the one kept):
    /// `canonicalSpec()` as config.json and the built-in busybox image's
    /// layers copied to DIR/rootfs. A failure leaves nothing (a config.json
    /// found there is left as it was).
    public static func writeCanonicalBundle(to given: String, dataRoot: String, stateRoot: String) throws(GockerError) {
        let dir = Paths.absolute(given)
        var st = stat()
        var spec = canonicalSpec()
        let kept = lstat(dir, &st) == 0
        if kept {
            guard st.st_mode & S_IFMT == S_IFDIR, (try? Sys.listDirectory(dir)) == ["config.json"] else {
                throw GockerError(.alreadyExists, "bench: --write-bundle \(given): it exists already (and holds more than a config.json)")
            }
            spec = canonicalSpec(try JSON.readFile(Spec.self, path: dir + "/config.json"))
        }
        let engine = Engine(dataRoot: Paths.absolute(dataRoot), stateRoot: Paths.absolute(stateRoot))
        let (image, _) = try engine.images.resolve("busybox")
        if !kept {
            try performing("create \(dir)") { () throws(SystemCallError) in
                _ = try Sys.check("mkdir", path: dir) { mkdir(dir, 0o755) }
            }
        }
        do throws(GockerError) {
            let rootfs = dir + "/rootfs"
            try performing("create \(rootfs)") { () throws(SystemCallError) in try Sys.mkdirAll(rootfs) }
            for layer in image.layers.map(engine.images.layerPath) {
                _ = try Sys.output(of: ["/bin/cp", "-a", layer + "/.", rootfs + "/"])
            }
            try performing("write \(dir)/config.json") { () throws(SystemCallError) in
                try Sys.writeFileAtomic(dir + "/config.json", JSONText.pretty(spec.jsonBytes) + [UInt8(ascii: "\n")])
            }
        } catch {
            try? Sys.removeAll(kept ? dir + "/rootfs" : dir)
            throw error
        }
    }
}
