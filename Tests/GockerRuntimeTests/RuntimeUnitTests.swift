import CGockerCore
import Glibc
import GockerCore
import Testing
@testable import GockerRuntime

struct MountOptionsTests {
    @Test func flagsPropagationAndData() {
        let o = MountOptions(type: "tmpfs", options: ["nosuid", "nodev", "ro", "rw", "rprivate", "mode=755", "size=64k"])
        #expect(o.flags == UInt(MS_NOSUID | MS_NODEV))
        #expect(o.propagation == UInt(MS_PRIVATE | MS_REC))
        #expect(o.data == ["mode=755", "size=64k"])
        #expect(!o.isBind)
    }

    @Test func binds() {
        #expect(MountOptions(type: "bind", options: []).isBind)
        let r = MountOptions(type: "none", options: ["rbind", "ro"])
        #expect(r.isBind && r.recursive && r.flags == UInt(MS_RDONLY))
    }
}

struct LaunchPlanTests {
    func spec(namespaces: [String] = ["pid", "mount", "uts", "ipc", "network"], args: [String] = ["sh"]) -> Spec {
        Spec(process: Spec.Process(args: args, env: ["A=1", "PATH=/bin"], cwd: "/work"),
             root: Spec.Root(path: "rootfs", readonly: true), hostname: "h",
             mounts: [Spec.Mount(destination: "/proc", type: "proc", source: "proc"),
                      Spec.Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["mode=755"]),
                      Spec.Mount(destination: "/data", type: "bind", source: "data", options: ["rbind", "ro"])],
             linux: Spec.Linux(namespaces: namespaces.map { Spec.Namespace(type: $0) },
                               devices: [Spec.Device(type: "c", path: "/dev/null", major: 1, minor: 3, fileMode: 0o600)]))
    }

    @Test func aFullConfig() throws {
        let plan = try LaunchPlan(spec: spec(), bundle: "/b")
        #expect(plan.cloneFlags == GK_CLONE_NEWPID | GK_CLONE_NEWNS | GK_CLONE_NEWUTS | GK_CLONE_NEWIPC | GK_CLONE_NEWNET)
        #expect(plan.rootfs == "/b/rootfs")
        #expect(plan.rootReadonly)
        #expect(plan.hostname == "h")
        #expect(plan.process.searchPath == "/bin")
        #expect(plan.mounts.map(\.destination) == ["/proc", "/dev", "/data"])
        #expect(plan.mounts[2].source == "/b/data" && plan.mounts[2].options.isBind)
        // A tmpfs /dev gets the default devices; the config's own /dev/null wins.
        #expect(plan.devSymlinks)
        #expect(Set(plan.devices.map(\.path)) == Set(LaunchPlan.defaultDevices.map(\.path)))
        #expect(plan.devices.first { $0.path == "/dev/null" }?.fileMode == 0o600)
    }

    @Test func refusals() {
        #expect(throws: GockerError.self) { try LaunchPlan(spec: spec(args: []), bundle: "/b") }
        #expect(throws: GockerError.self) { try LaunchPlan(spec: spec(namespaces: ["pid"]), bundle: "/b") }
        #expect(throws: GockerError.self) { try LaunchPlan(spec: spec(namespaces: ["mount", "user"]), bundle: "/b") }
        #expect(throws: GockerError.self) { try LaunchPlan(spec: spec(namespaces: ["mount", "mount"]), bundle: "/b") }
        // A hostname needs its own UTS namespace.
        #expect(throws: GockerError.self) { try LaunchPlan(spec: spec(namespaces: ["mount"]), bundle: "/b") }
        var relativeCwd = spec()
        relativeCwd.process?.cwd = "tmp"
        #expect(throws: GockerError.self) { try LaunchPlan(spec: relativeCwd, bundle: "/b") }
        // The runtime spec: a mount's destination must be absolute.
        var relativeDestination = spec()
        relativeDestination.mounts?[1].destination = "dev"
        #expect(throws: GockerError.self) { try LaunchPlan(spec: relativeDestination, bundle: "/b") }
        // A bind into /sys only of the host's /sys, judged on the cleaned path.
        #expect(LaunchPlan.refusal(destination: "/sys/kernel", type: "bind", isBind: true, source: "/sys/../etc") != nil)
        #expect(LaunchPlan.refusal(destination: "/sys/fs/cgroup/x", type: "bind", isBind: true, source: "/sys/fs/cgroup/x") == nil)
    }
}

struct ContainerSpecTests {
    let image = ImageConfig(Cmd: ["sh"], Entrypoint: nil, Env: ["PATH=/bin"])

    @Test func commandLines() throws {
        var r = RunRequest(image: "busybox")
        #expect(try ContainerSpec.commandLine(request: r, image: image) == ["sh"])
        r.command = ["ls", "-l"]
        #expect(try ContainerSpec.commandLine(request: r, image: image) == ["ls", "-l"])
        r.entrypoint = "echo"
        #expect(try ContainerSpec.commandLine(request: r, image: image) == ["echo", "ls", "-l"])
        let withEntrypoint = ImageConfig(Cmd: ["--help"], Entrypoint: ["app"])
        #expect(try ContainerSpec.commandLine(request: RunRequest(image: "x"), image: withEntrypoint) == ["app", "--help"])
        #expect(throws: GockerError.self) { try ContainerSpec.commandLine(request: RunRequest(image: "x"), image: ImageConfig()) }
    }

    @Test func environmentOrderAndOverrides() {
        let env = ContainerSpec.environment(image: ["PATH=/bin", "A=image"], hostname: "h", request: ["A=user", "B=2"])
        #expect(env == ["PATH=/bin", "A=user", "HOSTNAME=h", "B=2"])
        #expect(ContainerSpec.environment(image: [], hostname: "h", request: ["HOME=/x"])
                == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h", "HOME=/x"])
    }

    @Test func envFlagsAndFiles() throws {
        let lookup: (String) -> String? = { $0 == "FROM_HOST" ? "v" : nil }
        #expect(try ContainerSpec.resolveEnv(["A=1", "FROM_HOST", "MISSING"], lookup: lookup) == ["A=1", "FROM_HOST=v"])
        #expect(throws: GockerError.self) { try ContainerSpec.resolveEnv(["=x"], lookup: lookup) }
        let file = "# comment\nA=1\n\n  B=two words\r\nFROM_HOST\n"
        #expect(try ContainerSpec.parseEnvFile(file, lookup: lookup) == ["A=1", "B=two words", "FROM_HOST=v"])
        #expect(throws: GockerError.self) { try ContainerSpec.parseEnvFile("BAD NAME=1", lookup: lookup) }
    }

    @Test func specOfADockerLikeContainer() throws {
        let record = ImageRecord(id: "i", layers: ["l1", "l2"], config: image, created: "")
        var r = RunRequest(image: "busybox")
        r.workdir = "/tmp"
        let spec = try ContainerSpec.build(request: r, image: record, containerDir: "/c",
                                       hostname: "h", env: ["PATH=/bin"], args: ["sh"])
        // The overlay is gocker's own, never in the config.
        #expect(spec.annotations == nil)
        let extras = ContainerSpec.extras(request: r, image: record, layerPaths: ["/d/l1", "/d/l2"], containerDir: "/c")
        // Top layer first in lowerdir.
        #expect(extras.overlay == "lowerdir=/d/l2:/d/l1,upperdir=/c/upper,workdir=/c/work")
        r.autoRemove = true
        let removed = ContainerSpec.extras(request: r, image: record, layerPaths: ["/d/l1", "/d/l2"], containerDir: "/c",
                                           volatileUpper: true)
        #expect(removed.overlay == "lowerdir=/d/l2:/d/l1,upperdir=/c/upper,workdir=/c/work,volatile")
        #expect(spec.linux?.namespaces?.map { $0.type } == ["pid", "ipc", "uts", "mount", "network"])
        #expect(spec.process?.cwd == "/tmp")
        // What run builds is a config the OCI path accepts.
        let plan = try LaunchPlan(spec: spec, bundle: "/c", extras: extras)
        #expect(plan.rootfs == "/c/rootfs" && plan.overlay == extras.overlay)
        #expect(plan.mounts.filter { $0.options.isBind }.map { $0.destination } == ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"])
        r.network = .host
        let host = try ContainerSpec.build(request: r, image: record, containerDir: "/c", hostname: "h",
                                       env: [], args: ["sh"])
        #expect(host.linux?.namespaces?.contains { $0.type == "network" } == false)
    }

    @Test func defencesByDefaultAndWithPrivileged() throws {
        let record = ImageRecord(id: "i", layers: [], config: ImageConfig(Cmd: ["sh"], User: "nobody"), created: "")
        var r = RunRequest(image: "busybox")
        let spec = try ContainerSpec.build(request: r, image: record, containerDir: "/c",
                                           hostname: "h", env: [], args: ["sh"])
        #expect(spec.process?.capabilities?.effective?.count == Capabilities.dockerDefault.count)
        #expect(spec.process?.capabilities?.inheritable == [])
        #expect(spec.linux?.maskedPaths == DefaultPaths.masked)
        #expect(spec.linux?.readonlyPaths == DefaultPaths.readonly)
        let extras = ContainerSpec.extras(request: r, image: record, layerPaths: [], containerDir: "/c")
        #expect(extras.user == "nobody", "the image's User")
        #expect(spec.root?.readonly == false)
        let plan = try LaunchPlan(spec: spec, bundle: "/c", extras: extras)
        #expect(plan.process.capabilities?.effective == 0xa80425fb, "docker's default set")
        #expect(plan.process.userName == "nobody" && !plan.initProcess && !plan.process.terminal)

        r.privileged = true
        r.readOnly = true
        r.user = "0:0"
        r.initProcess = true
        r.tty = true
        r.securityOpts = ["no-new-privileges"]
        r.ulimits = ["nofile=10:20"]
        r.groupAdd = ["tty", "7"]
        let p = try ContainerSpec.build(request: r, image: record, containerDir: "/c",
                                        hostname: "h", env: [], args: ["sh"])
        #expect(p.linux?.maskedPaths == [] && p.linux?.readonlyPaths == [])
        #expect(p.mounts?.first { $0.destination == "/sys" }?.options?.contains("ro") == false)
        #expect(p.root?.readonly == true)
        #expect(p.process?.noNewPrivileges == true)
        #expect(p.process?.rlimits == [Spec.Rlimit(type: "RLIMIT_NOFILE", hard: 20, soft: 10)])
        let pp = try LaunchPlan(spec: p, bundle: "/c",
                                extras: ContainerSpec.extras(request: r, image: record, layerPaths: [], containerDir: "/c"))
        #expect(pp.process.userName == "0:0" && pp.process.groupAdd == ["tty", "7"] && pp.initProcess && pp.process.terminal)
        #expect(pp.process.rlimits.count == 1 && pp.process.rlimits[0].resource == 7)
    }
}

struct CapabilityTests {
    @Test func dockerRules() throws {
        #expect(try Capabilities.set(add: [], drop: [], privileged: false).count == 14)
        #expect(try Capabilities.set(add: ["NET_BIND_SERVICE"], drop: ["ALL"], privileged: false) == ["CAP_NET_BIND_SERVICE"])
        #expect(try Capabilities.set(add: ["sys_admin"], drop: ["cap_chown"], privileged: false).contains("CAP_SYS_ADMIN"))
        #expect(try !Capabilities.set(add: [], drop: ["CHOWN"], privileged: false).contains("CAP_CHOWN"))
        #expect(throws: GockerError.self) { try Capabilities.set(add: ["NOT_A_CAP"], drop: [], privileged: false) }
        #expect(throws: GockerError.self) { try Capabilities.mask(["CAP_NOPE"]) }
        #expect(try Capabilities.mask(["CAP_CHOWN", "CAP_KILL"]) == 0b100001)
    }

    @Test func ulimits() throws {
        #expect(try Ulimits.parse("nofile=1024:2048") == Spec.Rlimit(type: "RLIMIT_NOFILE", hard: 2048, soft: 1024))
        #expect(try Ulimits.parse("core=-1") == Spec.Rlimit(type: "RLIMIT_CORE", hard: UInt64.max, soft: UInt64.max))
        for bad in ["nofile", "nofile=", "bogus=1", "nofile=2:1", "nofile=a", "nofile=1:2:3"] {
            #expect(throws: GockerError.self) { try Ulimits.parse(bad) }
        }
    }

    @Test func securityOptions() throws {
        #expect(try ContainerSpec.noNewPrivileges(["no-new-privileges"]))
        #expect(try !ContainerSpec.noNewPrivileges(["no-new-privileges:false"]))
        // docker's no-op forms are taken; what gocker does not know is not.
        #expect(try !ContainerSpec.noNewPrivileges(["apparmor=unconfined", "label=disable"]))
        #expect(throws: GockerError.self) { try ContainerSpec.noNewPrivileges(["bogus=1"]) }
    }

    @Test func resolvConfLeavesOutLoopbackNameservers() throws {
        let host = Array("# made by a resolver\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.test\noptions edns0\n".utf8)
        var r = RunRequest(image: "busybox")
        #expect(String(decoding: Engine.resolvConf(host: host, request: r), as: UTF8.self)
                == "search corp.test\nnameserver 10.0.0.2\noptions edns0\n")
        let onlyLoopback = Array("nameserver 127.0.0.53\n".utf8)
        #expect(String(decoding: Engine.resolvConf(host: onlyLoopback, request: r), as: UTF8.self)
                == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
        r.network = .host
        #expect(Engine.resolvConf(host: onlyLoopback, request: r) == onlyLoopback)
        r.network = .default
        r.dns = ["10.1.1.1"]
        r.dnsSearch = ["."]
        #expect(String(decoding: Engine.resolvConf(host: host, request: r), as: UTF8.self) == "nameserver 10.1.1.1\noptions edns0\n")
    }

    @Test func netIOAsDockerPrintsIt() {
        let dev = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
              eth0:    1234      12    0    0    0     0          0         0      648       8    0    0    0     0       0          0
            """
        #expect(Engine.interfaceBytes(dev) == (1234, 648))
        #expect(Engine.decimal(0) == "0B" && Engine.decimal(648) == "648B" && Engine.decimal(1234) == "1.23kB")
        #expect(Engine.decimal(45_600_000) == "45.6MB" && Engine.decimal(999) == "999B")
        // MEM USAGE's sizes, four digits and binary units, from the same code.
        #expect(Engine.binary(1536) == "1.5KiB" && Engine.binary(64 << 20) == "64MiB" && Engine.binary(25_179_245_773) == "23.45GiB")
        #expect(Engine.binary(1023) == "1023B" && Engine.binary(0) == "0B")
    }

    @Test func networkModes() throws {
        #expect(try NetworkMode(parsing: "none") == .none)
        #expect(try NetworkMode(parsing: "host") == .host)
        #expect(try NetworkMode(parsing: "bridge") == .bridge("bridge"))
        #expect(try NetworkMode(parsing: "mynet") == .bridge("mynet"))
        #expect(try NetworkMode(parsing: "container:web") == .container("web"))
        #expect(throws: GockerError.self) { try NetworkMode(parsing: "container:") }
        #expect(NetworkMode.none.ownNamespace && NetworkMode.default.ownNamespace)
        #expect(!NetworkMode.host.ownNamespace && !NetworkMode.container("web").ownNamespace)
    }
}

struct SignalTests {
    @Test func namesAndNumbers() throws {
        #expect(try Signals.parse("TERM") == SIGTERM)
        #expect(try Signals.parse("SIGKILL") == SIGKILL)
        #expect(try Signals.parse("hup") == SIGHUP)
        #expect(try Signals.parse("9") == 9)
        #expect(try Signals.parse("RTMIN+2") == 36)
        for bad in ["0", "65", "NOPE", "", "RTMIN+99"] {
            #expect(throws: GockerError.self) { try Signals.parse(bad) }
        }
    }

    @Test func exitCodes() {
        #expect(Runtime.exitCode(7 << 8) == 7)
        #expect(Runtime.exitCode(9) == 137)
        #expect(Runtime.exitCode(0) == 0)
    }
}

struct StartChoicesTests {
    typealias Choices = Runtime.StartChoices

    func mount(_ type: String, _ source: String, _ options: [String] = []) -> LaunchPlan.PlannedMount {
        LaunchPlan.PlannedMount(destination: "/m", type: type, source: source,
                                options: MountOptions(type: type, options: options))
    }

    func choose(_ version: CgroupVersion = .v1, mounts: [LaunchPlan.PlannedMount] = [], newNetwork: Bool = true,
                ahead: Bool = false, madeFor: String = "libcgroup", backend: String = "libcgroup") -> Choices {
        Choices.choose(cgroupVersion: version, mounts: mounts, newNetwork: newNetwork, networkMadeAhead: ahead,
                       driverMadeFor: madeFor, backend: backend)
    }

    @Test func goAfterTheMountsOnV1Only() {
        let plain = [mount("proc", "proc"), mount("tmpfs", "tmpfs"), mount("bind", "/etc/hosts", ["rbind"])]
        #expect(choose(.v1, mounts: plain).lateGo)
        #expect(!choose(.v2, mounts: plain).lateGo)
        #expect(choose(.v1, mounts: []).lateGo)
    }

    @Test func groupsFirstWhereTheMountsDependOnThem() {
        // An OCI cgroup mount names the groups, but only its binds of them
        // wait for GO (PlannedMount.afterGo), after the mounts before them.
        #expect(choose(mounts: [mount("proc", "proc"), mount("cgroup", "cgroup")]).lateGo)
        #expect(!choose(.v2, mounts: [mount("cgroup", "cgroup")]).lateGo)
        // A block device's filesystem: judged by the devices group.
        #expect(!choose(mounts: [mount("ext4", "/dev/sdb1")]).lateGo)
        // A volume the child fills.
        #expect(!choose(mounts: [mount("bind", "/var/lib/gocker/volumes/v/_data", ["rbind", "copyup"])]).lateGo)
        // A bind of a host path is not a filesystem mount of it.
        #expect(choose(mounts: [mount("bind", "/dev/sdb1", ["bind"])]).lateGo)
    }

    @Test func networkNamespace() {
        #expect(choose(newNetwork: false, ahead: false).network == .none)
        // One made ahead but not asked for is not joined.
        #expect(choose(newNetwork: false, ahead: true).network == .none)
        #expect(choose(newNetwork: true, ahead: true).network == .joinMadeAhead)
        // With a late GO it comes with GO; otherwise the child makes it.
        #expect(choose(.v1, newNetwork: true, ahead: false).network == .madeForGo)
        #expect(choose(.v2, newNetwork: true, ahead: false).network == .childUnshares)
        #expect(choose(.v1, mounts: [mount("ext4", "/dev/sdb1")], newNetwork: true, ahead: false).network == .childUnshares)
        #expect(Choices.choose(cgroupVersion: .v1, mounts: [], newNetwork: true, networkMadeAhead: false,
                               driverMadeFor: "libcgroup", backend: "libcgroup", goFirst: true).network == .childUnshares)
        // Rootless, the child makes it.
        #expect(Choices.choose(cgroupVersion: .v1, mounts: [], newNetwork: true, networkMadeAhead: false,
                               driverMadeFor: "libcgroup", backend: "libcgroup",
                               parentMakesNetwork: false).network == .childUnshares)
    }

    @Test func driverOfTheSameBackendOnly() {
        #expect(choose(madeFor: "libcgroup", backend: "libcgroup").reuseDriver)
        #expect(choose(madeFor: "cgroupfs", backend: "cgroupfs").reuseDriver)
        #expect(!choose(madeFor: "libcgroup", backend: "cgroupfs").reuseDriver)
        #expect(!choose(madeFor: "cgroupfs", backend: "libcgroup").reuseDriver)
    }

    /// The value made ahead: a namespace that is really new, that create
    /// takes and closes.
    @Test func aNetworkNamespaceMadeAhead() throws {
        try #require(getuid() == 0, "makes a network namespace")
        let ahead = Runtime.StartAhead(backend: "cgroupfs", networkNamespace: true)
        #expect(ahead.backend == "cgroupfs")
        let fd = try #require(ahead.madeNetworkNamespace)
        var mine = stat(), made = stat()
        #expect(stat("/proc/self/ns/net", &mine) == 0 && fstat(fd, &made) == 0)
        #expect(made.st_ino != mine.st_ino)
        ahead.closeNetworkNamespace()
        #expect(fcntl(fd, F_GETFD) < 0)
        #expect(Runtime.StartAhead(backend: nil).madeNetworkNamespace == nil)
    }
}
