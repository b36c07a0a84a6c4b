extension Spec {
    /// The config in the file at `path` (a bundle's config.json).
    public static func decodeFile(path: String) throws(GockerError) -> Spec {
        try JSON.readFile(Spec.self, path: path)
    }

    /// config.json's text with `seccomp`, a `linux.seccomp` object's text
    /// written before (see DefaultSeccomp.rendered), in place of this
    /// value's own.
    public func json(seccomp: [UInt8]?) -> [UInt8] {
        guard let seccomp else { return jsonBytes }
        var copy = self
        var linux = copy.linux ?? Linux()
        linux.seccomp = nil
        linux.unmodeled["seccomp"] = .text(seccomp)
        copy.linux = linux
        return copy.jsonBytes
    }

    /// Members gocker does not model yet and that a user relies on for
    /// safety: given with anything in them, the config is refused, naming
    /// them, rather than run without what they ask.
    public static let refusedMembers: [(path: String, why: String)] = [
        ("linux.mountLabel", "gocker does not apply SELinux labels to mounts"),
        ("linux.intelRdt", "gocker does not manage Intel RDT"),
        ("linux.personality", "gocker does not set execution domains"),
        ("linux.timeOffsets", "gocker does not make time namespaces"),
        ("process.ioPriority", "gocker does not set I/O priorities"),
        ("process.scheduler", "gocker does not set scheduling policies"),
        ("process.execCPUAffinity", "gocker does not set CPU affinities"),
        ("domainname", "gocker does not set NIS domain names"),
    ]

    /// The first member of `refusedMembers` this config gives.
    /// A version of the runtime spec's 1.x line: 1, 1.MINOR or
    /// 1.MINOR.PATCH, with a pre-release suffix or not (1.0.2-dev).
    public static func isSupported(version: String) -> Bool {
        let core = version.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        return (1...3).contains(parts.count) && parts[0] == "1"
            && parts.allSatisfy { p in !p.isEmpty && p.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
    }

    public func checkRefusedMembers() throws(GockerError) {
        if !ociVersion.isEmpty && !Self.isSupported(version: ociVersion) {
            throw GockerError(.invalidConfig, "config.json: ociVersion \"\(ociVersion)\" is not supported: gocker runs configs of the runtime spec 1.x")
        }
        for (path, why) in Self.refusedMembers {
            let parts = path.split(separator: ".")
            let members: [String: JSONValue]?
            switch parts.count == 1 ? "" : String(parts[0]) {
            case "": members = unmodeled
            case "process": members = process?.unmodeled
            case "linux": members = linux?.unmodeled
            default: members = nil
            }
            if let v = members?[String(parts[parts.count - 1])], !v.isEmpty {
                throw GockerError(.invalidConfig, "config.json: \(path) is not supported: \(why)")
            }
        }
    }
}
