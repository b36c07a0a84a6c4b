import GockerCore

/// `gocker push`: an image's layers (their kept archives, as `save` writes
/// them), its config and an OCI manifest, to the repository its name
/// gives; a blob the repository has already is not sent again.
public struct Pusher {
    public let store: ImageStore
    /// docker's lines: "The push refers to repository [...]", a line per
    /// layer, "TAG: digest: sha256:... size: N".
    public var output: (String) -> Void
    public var timeout: Int

    public init(store: ImageStore, timeout: Int = 60, output: @escaping (String) -> Void) {
        self.store = store
        self.timeout = timeout
        self.output = output
    }

    /// The manifest's digest.
    @discardableResult
    public func push(_ ref: RegistryReference) throws(GockerError) -> String {
        guard ref.digest == nil, let tag = ref.tag else {
            throw GockerError(.invalidArgument, "push: a tag is needed, not a digest: \(ref)")
        }
        _ = try RegistryConfig.load()  // its insecure-registries: an invalid file is said, not passed over
        let plan = try store.pushPlan(ref.local.description)
        defer { plan.finish() }
        let client = RegistryClient(ref, credentials: try Credentials.stored(for: ref.registry), timeout: timeout)
        client.actions = "pull,push"
        // Another repository of the same registry the image was pulled
        // from has its blobs: the registry can take them from there.
        let mountFrom = (plan.image.repoDigests ?? []).compactMap { (d: String) -> String? in
            guard let at = d.firstIndex(of: "@") else { return nil }
            let name = String(d[..<at])
            guard let other = try? RegistryReference(parsing: name), other.registry == ref.registry,
                  other.repository != ref.repository else { return nil }
            return other.repository
        }.first
        if let mountFrom { client.readable = [mountFrom] }
        output("The push refers to repository [\(ref.registry)/\(ref.repository)]")
        // Top layer first, as docker lists them.
        for (path, d) in plan.layers.reversed() {
            let short = String(d.digest.dropFirst(7).prefix(12))
            if try client.hasBlob(d.digest) {
                output("\(short): Layer already exists")
                continue
            }
            if let from = try client.upload(d, file: path, mount: mountFrom) {
                output("\(short): Mounted from \(from)")
            } else {
                output("\(short): Pushed")
            }
        }
        if try !client.hasBlob(plan.configDescriptor.digest) {
            try client.upload(plan.configDescriptor, bytes: plan.config)
        }
        let digest = try client.putManifest(plan.manifest, mediaType: OCI.manifestType, tag: tag)
        output("\(tag): digest: \(digest) size: \(plan.manifest.count)")
        return digest
    }
}
