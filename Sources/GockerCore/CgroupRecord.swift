/// A cgroup hierarchy's version. Detected once, by statfs of /sys/fs/cgroup:
/// the cgroup2 magic means v2; anything else, hybrid included, means v1.
public enum CgroupVersion: String, Codable, Sendable, JSONField {
    case v1, v2
}

/// What the driver made for a container: recorded in its state so that
/// delete removes exactly that, with the backend that made it.
public struct CgroupRecord: JSONShape, Sendable, Equatable {
    public var backend: String
    public var version: CgroupVersion
    /// Relative to each hierarchy's root: "gocker/<id>" or the config's cgroupsPath.
    public var path: String
    public var controllers: [String]

    public init(backend: String, version: CgroupVersion, path: String, controllers: [String]) {
        self.backend = backend
        self.version = version
        self.path = path
        self.controllers = controllers
    }

    public init() { self.init(backend: "", version: .v1, path: "", controllers: []) }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("backend", &backend)
        try v.field("version", &version)
        try v.field("path", &path)
        try v.field("controllers", &controllers)
    }
}

