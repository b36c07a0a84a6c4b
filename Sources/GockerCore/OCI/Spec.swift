/// The OCI runtime-spec configuration (config.json), as far as gocker
/// models it. Each type lists its members once, in `fields`; members it does
/// not model are kept in `unmodeled` and written back, and the ones that a
/// user relies on for safety are refused (`refusedMembers`).
public struct Spec: JSONShape, Sendable, Equatable {
    public var unmodeled: [String: JSONValue] = [:]

    public init() { self.init(ociVersion: "") }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("ociVersion", &ociVersion)
        try v.field("process", &process)
        try v.field("root", &root)
        try v.field("hostname", &hostname)
        try v.field("mounts", &mounts)
        try v.field("annotations", &annotations)
        try v.field("hooks", &hooks)
        try v.field("linux", &linux)
    }

    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var annotations: [String: String]?
    public var hooks: Hooks?
    public var linux: Linux?

    public init(ociVersion: String = Spec.version, process: Process? = nil, root: Root? = nil,
                hostname: String? = nil, mounts: [Mount]? = nil,
                annotations: [String: String]? = nil, linux: Linux? = nil) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.mounts = mounts
        self.annotations = annotations
        self.linux = linux
    }

    public static let version = "1.0.2"

    public struct Process: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(args: nil, env: nil, cwd: "") }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("terminal", &terminal)
            try v.field("user", &user)
            try v.field("args", &args)
            try v.field("env", &env)
            try v.field("cwd", &cwd)
            try v.field("capabilities", &capabilities)
            try v.field("rlimits", &rlimits)
            try v.field("noNewPrivileges", &noNewPrivileges)
            try v.field("oomScoreAdj", &oomScoreAdj)
            try v.field("apparmorProfile", &apparmorProfile)
            try v.field("selinuxLabel", &selinuxLabel)
        }

        public var terminal: Bool?
        public var user: User
        public var args: [String]?
        public var env: [String]?
        public var cwd: String
        public var capabilities: Capabilities?
        public var rlimits: [Rlimit]?
        public var noNewPrivileges: Bool?
        public var oomScoreAdj: Int?
        public var apparmorProfile: String?
        public var selinuxLabel: String?

        public init(terminal: Bool? = nil, user: User = User(), args: [String]?, env: [String]?,
                    cwd: String = "/", capabilities: Capabilities? = nil, rlimits: [Rlimit]? = nil,
                    noNewPrivileges: Bool? = nil) {
            self.terminal = terminal
            self.user = user
            self.args = args
            self.env = env
            self.cwd = cwd
            self.capabilities = capabilities
            self.rlimits = rlimits
            self.noNewPrivileges = noNewPrivileges
        }
    }

    /// Capability names ("CAP_CHOWN") in each set.
    public struct Capabilities: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("bounding", &bounding)
            try v.field("effective", &effective)
            try v.field("inheritable", &inheritable)
            try v.field("permitted", &permitted)
            try v.field("ambient", &ambient)
        }

        public var bounding: [String]?
        public var effective: [String]?
        public var inheritable: [String]?
        public var permitted: [String]?
        public var ambient: [String]?

        public init(bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil,
                    permitted: [String]? = nil, ambient: [String]? = nil) {
            self.bounding = bounding
            self.effective = effective
            self.inheritable = inheritable
            self.permitted = permitted
            self.ambient = ambient
        }
    }

    public struct Rlimit: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(type: "", hard: 0, soft: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("type", &type)
            try v.field("hard", &hard)
            try v.field("soft", &soft)
        }

        public var type: String
        public var hard: UInt64
        public var soft: UInt64

        public init(type: String, hard: UInt64, soft: UInt64) {
            self.type = type
            self.hard = hard
            self.soft = soft
        }
    }

    public struct User: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]


        public init() { self.init(uid: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("uid", &uid)
            try v.field("gid", &gid)
            try v.field("umask", &umask)
            try v.field("additionalGids", &additionalGids)
        }

        public var uid: UInt32
        public var gid: UInt32
        public var umask: UInt32?
        public var additionalGids: [UInt32]?

        public init(uid: UInt32 = 0, gid: UInt32 = 0, umask: UInt32? = nil, additionalGids: [UInt32]? = nil) {
            self.uid = uid
            self.gid = gid
            self.umask = umask
            self.additionalGids = additionalGids
        }
    }

    public struct Root: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(path: "") }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("path", &path)
            try v.field("readonly", &readonly)
        }

        public var path: String
        public var readonly: Bool?

        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    public struct Mount: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(destination: "") }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("destination", &destination)
            try v.field("type", &type)
            try v.field("source", &source)
            try v.field("options", &options)
        }

        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?

        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }
    }

    public struct Linux: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]


        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("namespaces", &namespaces)
            try v.field("devices", &devices)
            try v.field("resources", &resources)
            try v.field("cgroupsPath", &cgroupsPath)
            try v.field("rootfsPropagation", &rootfsPropagation)
            try v.field("maskedPaths", &maskedPaths)
            try v.field("readonlyPaths", &readonlyPaths)
            try v.field("seccomp", &seccomp)
            try v.field("sysctl", &sysctl)
            try v.field("uidMappings", &uidMappings)
            try v.field("gidMappings", &gidMappings)
        }

        public var sysctl: [String: String]?
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
        public var namespaces: [Namespace]?
        public var devices: [Device]?
        public var resources: Resources?
        public var cgroupsPath: String?
        public var rootfsPropagation: String?
        public var maskedPaths: [String]?
        public var readonlyPaths: [String]?
        public var seccomp: Seccomp?

        public init(namespaces: [Namespace]? = nil, devices: [Device]? = nil, resources: Resources? = nil,
                    cgroupsPath: String? = nil, rootfsPropagation: String? = nil, maskedPaths: [String]? = nil,
                    readonlyPaths: [String]? = nil, seccomp: Seccomp? = nil) {
            self.seccomp = seccomp
            self.namespaces = namespaces
            self.devices = devices
            self.resources = resources
            self.cgroupsPath = cgroupsPath
            self.rootfsPropagation = rootfsPropagation
            self.maskedPaths = maskedPaths
            self.readonlyPaths = readonlyPaths
        }
    }

    /// `linux.seccomp`: the system-call filter of the container's processes
    /// (runtime-spec config-linux.md "Seccomp"). Names are the spec's
    /// (SCMP_ACT_*, SCMP_ARCH_*, SCMP_CMP_*, SECCOMP_FILTER_FLAG_*); they are
    /// checked when the filter is compiled.
    public struct Seccomp: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(defaultAction: "") }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("defaultAction", &defaultAction)
            try v.field("defaultErrnoRet", &defaultErrnoRet)
            try v.field("architectures", &architectures)
            try v.field("flags", &flags)
            try v.field("listenerPath", &listenerPath)
            try v.field("listenerMetadata", &listenerMetadata)
            try v.field("syscalls", &syscalls)
        }

        public var defaultAction: String
        /// The errno of an SCMP_ACT_ERRNO (or TRACE) default; EPERM if nil.
        public var defaultErrnoRet: UInt32?
        public var architectures: [String]?
        public var flags: [String]?
        /// A unix socket that gets the listener of a notifying filter.
        public var listenerPath: String?
        public var listenerMetadata: String?
        public var syscalls: [Syscall]?

        public init(defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil,
                    flags: [String]? = nil, listenerPath: String? = nil, listenerMetadata: String? = nil,
                    syscalls: [Syscall]? = nil) {
            self.defaultAction = defaultAction
            self.defaultErrnoRet = defaultErrnoRet
            self.architectures = architectures
            self.flags = flags
            self.listenerPath = listenerPath
            self.listenerMetadata = listenerMetadata
            self.syscalls = syscalls
        }

        public struct Syscall: JSONShape, Sendable, Equatable {
            public var unmodeled: [String: JSONValue] = [:]

            public init() { self.init(names: [], action: "") }

            public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
                try v.field("names", &names)
                try v.field("action", &action)
                try v.field("errnoRet", &errnoRet)
                try v.field("args", &args)
            }

            public var names: [String]
            public var action: String
            public var errnoRet: UInt32?
            public var args: [Arg]?

            public init(names: [String], action: String, errnoRet: UInt32? = nil, args: [Arg]? = nil) {
                self.names = names
                self.action = action
                self.errnoRet = errnoRet
                self.args = args
            }
        }

        public struct Arg: JSONShape, Sendable, Equatable {
            public var unmodeled: [String: JSONValue] = [:]

            public init() { self.init(index: 0, value: 0, op: "") }

            public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
                try v.field("index", &index)
                try v.field("value", &value)
                try v.field("valueTwo", &valueTwo)
                try v.field("op", &op)
            }

            public var index: UInt32
            public var value: UInt64
            public var valueTwo: UInt64?
            public var op: String

            public init(index: UInt32, value: UInt64, valueTwo: UInt64? = nil, op: String) {
                self.index = index
                self.value = value
                self.valueTwo = valueTwo
                self.op = op
            }
        }
    }

    /// `linux.resources`: what the cgroup controllers are asked to
    /// enforce. Its members are declared by the controllers that read
    /// them (plugins/), each as a shape of its own with an accessor on
    /// this type (`resources.memory`); here they are kept as read, and the
    /// controller registry refuses a member no controller reads.
    public struct Resources: JSONShape, Sendable, Equatable {
        /// Every member, by name, as read (none is modeled here).
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {}

        /// The member `key` read as `T`; nil when absent or null, or when
        /// it does not read as `T` (which the registry refuses before any
        /// controller looks: see ControllerRegistry.check).
        @inlinable public func member<T: JSONShape>(_ key: String, as: T.Type = T.self) -> T? {
            guard let v = unmodeled[key] else { return nil }
            return try? T(json: v)
        }

        /// The member `key`, an array of `T`.
        @inlinable public func members<T: JSONShape>(_ key: String, as: T.Type = T.self) -> [T]? {
            guard let v = unmodeled[key] else { return nil }
            return try? JSONFields.array(v)
        }

        @inlinable public mutating func setMember<T: JSONShape>(_ key: String, _ value: T?) {
            unmodeled[key] = value.map { JSONValue(shape: $0) }
        }

        @inlinable public mutating func setMembers<T: JSONShape>(_ key: String, _ value: [T]?) {
            unmodeled[key] = value.map { .array($0.map { JSONValue(shape: $0) }) }
        }
    }

    /// `linux.uidMappings` / `gidMappings`: `size` ids from `containerID`
    /// inside the user namespace are `hostID`... outside.
    public struct IDMapping: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(containerID: 0, hostID: 0, size: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("containerID", &containerID)
            try v.field("hostID", &hostID)
            try v.field("size", &size)
        }

        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32

        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }
    }

    /// `hooks`: programs run at points of the container's lifecycle
    /// (runtime-spec config.md "POSIX-platform Hooks").
    public struct Hooks: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() {}

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("prestart", &prestart)
            try v.field("createRuntime", &createRuntime)
            try v.field("createContainer", &createContainer)
            try v.field("startContainer", &startContainer)
            try v.field("poststart", &poststart)
            try v.field("poststop", &poststop)
        }

        public var prestart: [Hook]?
        public var createRuntime: [Hook]?
        public var createContainer: [Hook]?
        public var startContainer: [Hook]?
        public var poststart: [Hook]?
        public var poststop: [Hook]?

        /// The kinds gocker runs, in the order of a container's life.
        public static let kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]

        public subscript(kind: String) -> [Hook] {
            switch kind {
            case "prestart": prestart ?? []
            case "createRuntime": createRuntime ?? []
            case "createContainer": createContainer ?? []
            case "startContainer": startContainer ?? []
            case "poststart": poststart ?? []
            case "poststop": poststop ?? []
            default: []
            }
        }

        public var isEmpty: Bool { Self.kinds.allSatisfy { self[$0].isEmpty } }
    }

    public struct Hook: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(path: "") }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("path", &path)
            try v.field("args", &args)
            try v.field("env", &env)
            try v.field("timeout", &timeout)
        }

        public var path: String
        public var args: [String]?
        public var env: [String]?
        public var timeout: Int?

        public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }
    }

    public struct Namespace: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(type: "") }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("type", &type)
            try v.field("path", &path)
        }

        public var type: String
        public var path: String?

        public init(type: String, path: String? = nil) {
            self.type = type
            self.path = path
        }
    }

    public struct Device: JSONShape, Sendable, Equatable {
        public var unmodeled: [String: JSONValue] = [:]

        public init() { self.init(type: "", path: "", major: 0, minor: 0) }

        public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
            try v.field("type", &type)
            try v.field("path", &path)
            try v.field("major", &major)
            try v.field("minor", &minor)
            try v.field("fileMode", &fileMode)
            try v.field("uid", &uid)
            try v.field("gid", &gid)
        }

        public var type: String
        public var path: String
        public var major: Int64
        public var minor: Int64
        public var fileMode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?

        public init(type: String, path: String, major: Int64, minor: Int64, fileMode: UInt32? = nil,
                    uid: UInt32? = nil, gid: UInt32? = nil) {
            self.type = type
            self.path = path
            self.major = major
            self.minor = minor
            self.fileMode = fileMode
            self.uid = uid
            self.gid = gid
        }
    }
}

/// The state of a container as `state` prints it (runtime-spec "State").
public struct OCIState: JSONShape, Sendable, Equatable {
    public var ociVersion: String
    public var id: String
    public var status: ContainerStatus
    public var pid: Int32
    public var bundle: String
    public var rootfs: String?
    public var created: String?
    public var owner: String?
    public var annotations: [String: String]?

    public init(ociVersion: String = Spec.version, id: String, status: ContainerStatus, pid: Int32,
                bundle: String, rootfs: String? = nil, created: String? = nil, owner: String? = "",
                annotations: [String: String]? = nil) {
        self.ociVersion = ociVersion
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = owner
        self.annotations = annotations
    }

    public init() { self.init(id: "", status: .creating, pid: 0, bundle: "") }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("ociVersion", &ociVersion)
        try v.field("id", &id)
        try v.field("status", &status)
        try v.field("pid", &pid)
        try v.field("bundle", &bundle)
        try v.field("rootfs", &rootfs)
        try v.field("created", &created)
        try v.field("owner", &owner)
        try v.field("annotations", &annotations)
    }
}

/// The OCI lifecycle.
public enum ContainerStatus: String, Sendable, JSONField {
    case creating, created, running, stopped, paused
}
