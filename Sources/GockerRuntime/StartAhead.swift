import Glibc
import CGockerCore
import GockerCgroups
import GockerCore

extension Runtime {
    typealias DriverJob = Background<Result<CgroupDriver, GockerError>>

    /// What a start makes ahead, on a thread of its own, for one `create`
    /// to take: the cgroup driver coming up (libcgroup reads the host's
    /// mounts) and, for a container with a network namespace of its own,
    /// that namespace (lo up: the kernel's work to make it, the largest of
    /// a start's namespaces). `run` makes it first, so that both overlap
    /// the image and the bundle; `create` makes it itself otherwise, so that
    /// the driver overlaps the config and the plan.
    public struct StartAhead {
        /// The backend the driver is for.
        let backend: String
        let driver: DriverJob
        /// Its descriptor, or a negative errno; the `create` that takes this
        /// closes it.
        var networkNamespace: Background<Int32>?
        /// The networks the namespace is connected to once made (see
        /// `connect`).
        var attachments: [NetworkAttachment] = []

        /// `backend` nil: the default (GOCKER_CGROUP_BACKEND, else libcgroup).
        public init(backend: String?, networkNamespace: Bool = false) {
            let name = backend ?? Runtime(stateRoot: "").cgroupBackend
            self.backend = name
            self.driver = DriverJob { Result { () throws(GockerError) in try Runtime.newDriver(backend: name) } }
            self.networkNamespace = networkNamespace ? Background { gk_new_netns() } : nil
        }

        /// The network namespace made ahead, if making it worked (it is
        /// waited for).
        var madeNetworkNamespace: Int32? {
            guard let fd = networkNamespace?.value(), fd >= 0 else { return nil }
            return fd
        }

        /// Connects the namespace, once made and on the thread that made
        /// it, to each network of `list` (a veth on the network's bridge,
        /// its address; the first one's gateway is the default route):
        /// still while the image and the bundle are read. A host end left
        /// by an earlier run of the same container, whose namespace the
        /// kernel has not yet taken down, is removed first.
        mutating func connect(_ list: [NetworkAttachment]) {
            guard !list.isEmpty else { return }
            attachments = list
            networkNamespace = networkNamespace?.then { fd in
                guard fd >= 0 else { return fd }
                for (i, a) in list.enumerated() {
                    var r = a.connect(netns: fd, defaultRoute: i == 0)
                    if r == -EEXIST {
                        _ = gk_link_delete(a.hostInterface)
                        r = a.connect(netns: fd, defaultRoute: i == 0)
                    }
                    if r < 0 {
                        // The ends made so far go with the namespace.
                        Sys.close(fd)
                        return r
                    }
                }
                return fd
            }
        }

        /// Why making or connecting the namespace failed, if it did.
        var networkFailure: Int32? {
            guard let fd = networkNamespace?.value(), fd < 0 else { return nil }
            return -fd
        }

        func closeNetworkNamespace() {
            if let fd = madeNetworkNamespace { Sys.close(fd) }
        }
    }

    /// How a container starts, chosen from what its plan asks for and what
    /// was made ahead: nothing here looks at the host.
    struct StartChoices: Equatable {
        /// GO is sent after the child mounted its root and binds
        /// (GK_SPAWN_LATE_GO): its groups are made meanwhile by the hook that
        /// sends GO (the state naming them was written before the clone),
        /// and it waits for them only before its device nodes (or its
        /// "cgroup" mount's binds). Otherwise the groups exist before the
        /// clone.
        var lateGo: Bool

        enum Network: Equatable {
            /// No namespace of its own (the host's, or one the config names
            /// to join).
            case none
            /// Joins the one made ahead (lo is up in it already); where
            /// making it failed, the child unshares one.
            case joinMadeAhead
            /// The child unshares one and brings lo up, while the parent
            /// makes the groups: not made by clone, whose set-up of it (half
            /// a millisecond and more) would hold up the parent.
            case childUnshares
            /// With a late GO: made (lo up) on the driver's thread once the
            /// state is written, while the child is cloned and mounts its
            /// root, and sent with GO, which the child waits for before its
            /// sysfs and sysctls (GK_SPAWN_NET_AT_GO). The child's half
            /// millisecond of making it leaves its path, and the parent
            /// makes the groups while the child is cloned.
            case madeForGo
        }
        var network: Network

        /// The driver made ahead is used; else (made for another backend) a
        /// new one comes up now.
        var reuseDriver: Bool

        /// - cgroupVersion: the host's.
        /// - mounts: the plan's.
        /// - newNetwork: the plan asks for a network namespace of its own.
        /// - networkMadeAhead: one is being made ahead.
        /// - driverMadeFor: the backend of the driver made ahead.
        /// - goFirst: the child must have GO before anything else (a user
        ///   namespace's maps come with it).
        /// - parentMakesNetwork: the parent may make the namespace for GO
        ///   (not rootless, where gocker's threads may not make one: the
        ///   child does).
        static func choose(cgroupVersion: CgroupVersion, mounts: [LaunchPlan.PlannedMount], newNetwork: Bool,
                           networkMadeAhead: Bool, driverMadeFor: String, backend: String,
                           goFirst: Bool = false, parentMakesNetwork: Bool = true) -> StartChoices {
            // The child waits for its groups first where they must exist
            // before the clone (v2: cloned straight into them), where its
            // mounts depend on them (opening a block device to mount its
            // filesystem is judged by the devices group), or where it fills
            // a volume (which a container that fails on its limits must
            // leave untouched). An OCI "cgroup" mount names them too, but
            // only its binds of the groups wait for them, where they come
            // (PlannedMount.afterGo).
            let lateGo = cgroupVersion == .v1 && !goFirst
                && !mounts.contains { m in
                    m.options.copyUp || (!m.options.isBind && m.type != "cgroup" && m.source.hasPrefix("/"))
                }
            let network: Network = !newNetwork ? .none
                : networkMadeAhead ? .joinMadeAhead : lateGo && parentMakesNetwork ? .madeForGo : .childUnshares
            return StartChoices(lateGo: lateGo, network: network, reuseDriver: driverMadeFor == backend)
        }
    }
}
