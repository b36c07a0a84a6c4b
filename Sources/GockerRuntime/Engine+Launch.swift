import GockerCore

extension Engine {
    /// The keys under which gocker before `ContainerRecord.launch` wrote
    /// its settings into the config.json of its own containers' bundles.
    static let legacyAnnotations = (overlay: "io.gocker.rootfs.overlay", user: "io.gocker.user",
                                    groupAdd: "io.gocker.group-add", initProcess: "io.gocker.init")

    /// What gocker adds to the container's config to start it, from its
    /// record. A record written before the record kept them has them in
    /// the config.json gocker wrote into the container's directory under
    /// the data root (no one else writes there); only that file, only for
    /// such a record, is read for them. `gocker oci` never reads them.
    func launchExtras(of record: ContainerRecord) -> LaunchExtras? {
        if let launch = record.launch { return launch }
        guard let spec = try? Spec.decodeFile(path: containerDir(record.id) + "/config.json"),
              let a = spec.annotations, let overlay = a[Self.legacyAnnotations.overlay] else { return nil }
        return LaunchExtras(overlay: overlay, user: a[Self.legacyAnnotations.user],
                            groupAdd: a[Self.legacyAnnotations.groupAdd].map { $0.split(separator: ",").map(String.init) },
                            initProcess: a[Self.legacyAnnotations.initProcess] == "true" ? true : nil)
    }
}
