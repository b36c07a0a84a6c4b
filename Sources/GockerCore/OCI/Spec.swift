/// The OCI runtime-spec configuration (config.json), as far as gocker reads
/// it. Unknown fields are ignored on decoding; optional ones are left out on
/// encoding.
public struct Spec: Codable, Sendable, Equatable {
    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var annotations: [String: String]?
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

    public struct Process: Codable, Sendable, Equatable {
        public var terminal: Bool?
        public var user: User
        public var args: [String]?
        public var env: [String]?
        public var cwd: String
        public var capabilities: Capabilities?
        public var rlimits: [Rlimit]?
        public var noNewPrivileges: Bool?

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
    public struct Capabilities: Codable, Sendable, Equatable {
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

    public struct Rlimit: Codable, Sendable, Equatable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64

        public init(type: String, hard: UInt64, soft: UInt64) {
            self.type = type
            self.hard = hard
            self.soft = soft
        }
    }

    public struct User: Codable, Sendable, Equatable {
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

    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var readonly: Bool?

        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    public struct Mount: Codable, Sendable, Equatable {
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

    public struct Linux: Codable, Sendable, Equatable {
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
    public struct Seccomp: Codable, Sendable, Equatable {
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

        public struct Syscall: Codable, Sendable, Equatable {
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

        public struct Arg: Codable, Sendable, Equatable {
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

    /// `linux.resources`: what the cgroup controllers are asked to enforce.
    public struct Resources: Codable, Sendable, Equatable {
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Pids?
        public var devices: [DeviceRule]?

        public init(memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil, devices: [DeviceRule]? = nil) {
            self.memory = memory
            self.cpu = cpu
            self.pids = pids
            self.devices = devices
        }

        public struct Memory: Codable, Sendable, Equatable {
            /// Bytes; -1 for no limit.
            public var limit: Int64?
            public var reservation: Int64?
            /// Memory plus swap, bytes; -1 for no limit.
            public var swap: Int64?

            public init(limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil) {
                self.limit = limit
                self.reservation = reservation
                self.swap = swap
            }
        }

        public struct CPU: Codable, Sendable, Equatable {
            public var shares: UInt64?
            public var quota: Int64?
            public var period: UInt64?
            public var cpus: String?
            public var mems: String?

            public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil,
                        mems: String? = nil) {
                self.shares = shares
                self.quota = quota
                self.period = period
                self.cpus = cpus
                self.mems = mems
            }
        }

        public struct Pids: Codable, Sendable, Equatable {
            /// -1 (or 0) for no limit.
            public var limit: Int64
            public init(limit: Int64) { self.limit = limit }
        }

        public struct DeviceRule: Codable, Sendable, Equatable {
            public var allow: Bool
            /// "a" (all), "c" or "b"; nil means all.
            public var type: String?
            /// nil means any (*).
            public var major: Int64?
            public var minor: Int64?
            /// Some of "rwm"; nil means all.
            public var access: String?

            public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
                self.allow = allow
                self.type = type
                self.major = major
                self.minor = minor
                self.access = access
            }
        }
    }

    public struct Namespace: Codable, Sendable, Equatable {
        public var type: String
        public var path: String?

        public init(type: String, path: String? = nil) {
            self.type = type
            self.path = path
        }
    }

    public struct Device: Codable, Sendable, Equatable {
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
public struct OCIState: Codable, Sendable, Equatable {
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
}

/// The OCI lifecycle.
public enum ContainerStatus: String, Codable, Sendable {
    case creating, created, running, stopped, paused
}
