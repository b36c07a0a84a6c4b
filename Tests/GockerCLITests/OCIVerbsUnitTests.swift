import GockerCore
import Testing
@testable import GockerCLI
@testable import GockerRuntime

/// features, spec and events without a container.
struct OCIVerbsUnitTests {
    /// Every list comes from the table gocker checks a config against: a
    /// name in the list is taken, a name outside it is refused.
    @Test func featuresAreTheCodesOwnTables() throws {
        let f = RuntimeFeatures.current()
        #expect(f.linux.namespaces == LaunchPlan.namespaceFlags.keys.sorted())
        #expect(f.linux.capabilities == Capabilities.names)
        for c in f.linux.capabilities { #expect(try Capabilities.canonical(c) == c) }
        #expect(throws: GockerError.self) { try Capabilities.canonical("CAP_NOT_ONE") }
        // Each mount option listed changes what MountOptions makes of it
        // (is not passed on as data); one it does not know is data.
        for o in f.mountOptions { #expect(MountOptions(type: "tmpfs", options: [o]).data.isEmpty, "\(o)") }
        #expect(MountOptions(type: "tmpfs", options: ["size=1m"]).data == ["size=1m"])
        #expect(f.mountOptions.contains("rro") && f.mountOptions.contains("tmpcopyup") && !f.mountOptions.contains("rremount"))
        // seccomp: what the compiler takes, and no more.
        let s = f.linux.seccomp
        #expect(s.enabled && s.actions.contains("SCMP_ACT_NOTIFY") && s.operators.count == 7)
        #expect(s.archs.contains("SCMP_ARCH_X86_64") || s.archs.contains("SCMP_ARCH_AARCH64"))
        func compiles(_ p: Spec.Seccomp) -> Bool { (try? SeccompProgram.compile(p, plain: true)) != nil }
        for a in s.archs { #expect(compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", architectures: [a]))) }
        for a in RuntimeFeatures.seccompArchs where !s.archs.contains(a) {
            #expect(!compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_ALLOW", architectures: [a])), "\(a)")
        }
        #expect(!compiles(Spec.Seccomp(defaultAction: "SCMP_ACT_NOT_ONE")))
        #expect(Set(s.supportedFlags).isSubset(of: s.knownFlags))
        #expect(RuntimeFeatures.seccompFeatures(kernel: (3, 10)).supportedFlags.isEmpty)
        #expect(RuntimeFeatures.seccompFeatures(kernel: (4, 14)).supportedFlags == ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"])
        #expect(!f.linux.cgroup.systemd && !f.linux.cgroup.systemdUser && !f.linux.intelRdt.enabled)
        #expect(f.ociVersionMax == Spec.version && Spec.isSupported(version: f.ociVersionMin))
        // The document reads back as itself.
        #expect(try JSON.read(RuntimeFeatures.self, from: f.jsonBytes, what: "features") == f)
    }

    /// Features lists the six kinds, and a config with a hook of each
    /// is planned (not refused); one with a relative path or a timeout
    /// that is not positive is refused, naming it.
    @Test func hooksFollowTheRefusal() throws {
        #expect(RuntimeFeatures.hooks == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
        #expect(RuntimeFeatures.current().hooks == RuntimeFeatures.hooks)
        #expect(!Spec.refusedMembers.contains { $0.path == "hooks" })
        var spec = DefaultSpec.make()
        var hooks = Spec.Hooks()
        for kind in RuntimeFeatures.hooks {
            let h = [Spec.Hook(path: "/bin/true", timeout: 5)]
            switch kind {
            case "prestart": hooks.prestart = h
            case "createRuntime": hooks.createRuntime = h
            case "createContainer": hooks.createContainer = h
            case "startContainer": hooks.startContainer = h
            case "poststart": hooks.poststart = h
            default: hooks.poststop = h
            }
        }
        spec.hooks = hooks
        let plan = try LaunchPlan(spec: spec, bundle: "/bundle")
        #expect(plan.hooks == hooks)
        for (bad, words) in [(Spec.Hook(path: "bin/true"), "path is not absolute"),
                             (Spec.Hook(path: "/bin/true", timeout: 0), "timeout 0"),
                             (Spec.Hook(path: "/bin/true", timeout: -3), "timeout -3")] {
            spec.hooks = Spec.Hooks()
            spec.hooks?.poststop = [bad]
            #expect { _ = try LaunchPlan(spec: spec, bundle: "/bundle") } throws: { e in
                "\(e)".contains("hooks.poststop") && "\(e)".contains(words)
            }
        }
    }

    /// The spec reads back through gocker's own decoder, and a launch plan
    /// is made from it; the rootless form maps root to the caller.
    @Test func specRoundTrips() throws {
        let spec = DefaultSpec.make()
        let read = try JSON.read(Spec.self, from: JSONText.pretty(spec.jsonBytes), what: "config.json")
        #expect(read == spec)
        try read.checkRefusedMembers()
        #expect(read.process?.args == ["sh"] && read.process?.terminal == true)
        #expect(read.process?.capabilities?.bounding == DefaultSpec.capabilities)
        #expect(read.process?.rlimits == [Spec.Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)])
        #expect(read.mounts?.map(\.destination) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"])
        #expect(read.linux?.namespaces?.map(\.type) == ["pid", "network", "ipc", "uts", "mount", "cgroup"])
        #expect(read.linux?.maskedPaths == DefaultPaths.masked && read.linux?.readonlyPaths == DefaultPaths.readonly)
        _ = try LaunchPlan(spec: read, bundle: "/bundle")

        let rootless = try JSON.read(Spec.self, from: DefaultSpec.make(rootless: true, uid: 1000, gid: 100).jsonBytes, what: "config.json")
        #expect(rootless.linux?.uidMappings == [Spec.IDMapping(containerID: 0, hostID: 1000, size: 1)])
        #expect(rootless.linux?.gidMappings == [Spec.IDMapping(containerID: 0, hostID: 100, size: 1)])
        // A launch plan is made from it (as root: the maps are written by
        // gocker, mapping root to the caller).
        let plan = try LaunchPlan(spec: rootless, bundle: "/bundle")
        #expect(plan.userNamespace == .own && LaunchPlan.mapText(plan.uidMappings) == "0 1000 1\n")
        #expect(rootless.linux?.namespaces?.map(\.type).contains("user") == true)
        #expect(rootless.linux?.namespaces?.map(\.type).contains("network") == false)
        #expect(rootless.linux?.resources == nil && !(rootless.mounts ?? []).contains { $0.type == "cgroup" })
        let sys = try #require(rootless.mounts?.first { $0.destination == "/sys" })
        #expect(sys.source == "/sys" && sys.options == ["rbind", "nosuid", "noexec", "nodev", "ro"])
        #expect(!(rootless.mounts ?? []).contains { ($0.options ?? []).contains { $0.hasPrefix("gid=") || $0.hasPrefix("uid=") } })
    }

    @Test(arguments: [("5s", 5.0), ("200ms", 0.2), ("1m30s", 90.0), ("1.5s", 1.5), ("0", 0.0), ("-1s", -1.0), ("250us", 0.00025)])
    func intervals(text: String, seconds: Double) throws {
        #expect(abs(try OCIEvents.duration(text) - seconds) < 1e-9)
    }

    @Test(arguments: ["", "5", "s", "5x", "1..5s", "soon"])
    func badIntervals(text: String) {
        let e = #expect(throws: GockerError.self) { try OCIEvents.duration(text) }
        #expect(e?.description == "invalid value \"\(text)\" for flag -interval: parse error")
    }

    /// The group files runc's record is made of, as the kernel writes them.
    @Test func groupFilesRead() {
        #expect(EventStatsReader.table("user 5\nsystem 7\n") == ["user": 5, "system": 7])
        #expect(EventStatsReader.numbers("1 2 3 \n") == [1, 2, 3])
        #expect(EventStatsReader.limit("max\n", unlimited: 0) == 0 && EventStatsReader.limit("100\n", unlimited: 0) == 100)
        let v1 = EventStatsReader.blkioV1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n")
        #expect(v1 == [.init(major: 8, minor: 0, op: "Read", value: 4096), .init(major: 8, minor: 0, op: "Write", value: 0)])
        let v2 = EventStatsReader.ioV2("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n")
        #expect(v2.bytes == [.init(major: 8, minor: 0, op: "Read", value: 10), .init(major: 8, minor: 0, op: "Write", value: 20)])
        #expect(v2.ios == [.init(major: 8, minor: 0, op: "Read", value: 1), .init(major: 8, minor: 0, op: "Write", value: 2)])
        // runc leaves zero members out.
        let line = String(decoding: RuntimeEvent(type: "oom", id: "c1").jsonBytes, as: UTF8.self)
        #expect(line == #"{"type":"oom","id":"c1"}"#)
    }

    @Test func helpAndBadLines() {
        for verb in ["features", "spec", "events"] { #expect(GockerMain.run(["oci", verb, "--help"]) == 0) }
        #expect(OCILine.verbHelp(OCIEvents.self).contains("--interval <duration>"))
        #expect(throws: GockerError.self) { try OCILine(["events"]) }
        #expect(throws: GockerError.self) { try OCILine(["features", "extra"]) }
    }
}
