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
        ("hooks", "gocker does not run OCI hooks"),
        ("process.apparmorProfile", "gocker does not apply AppArmor profiles"),
        ("process.selinuxLabel", "gocker does not apply SELinux labels"),
        ("linux.mountLabel", "gocker does not apply SELinux labels"),
        ("linux.uidMappings", "gocker does not make user namespaces"),
        ("linux.gidMappings", "gocker does not make user namespaces"),
    ]

    /// The first member of `refusedMembers` this config gives.
    public func checkRefusedMembers() throws(GockerError) {
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
