import Glibc
import GockerCore
import Testing
@testable import GockerRuntime

/// `-v`, `--mount`, `--tmpfs` and `--volumes-from` as docker reads them, and
/// the OCI mounts they become.
struct MountFlagsTests {
    func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let e as GockerError {
            return e.description
        } catch {
            return "\(error)"
        }
    }

    @Test func volumeFlagForms() throws {
        let bind = try MountFlags.parseVolume("/srv/data:/data")
        #expect(bind.kind == .bind && bind.source == "/srv/data" && bind.destination == "/data")
        #expect(bind.createSource && !bind.readOnly)

        let named = try MountFlags.parseVolume("cache:/cache:ro")
        #expect(named.kind == .volume && named.source == "cache" && named.readOnly)

        let anonymous = try MountFlags.parseVolume("/scratch")
        #expect(anonymous.kind == .volume && anonymous.source == "" && anonymous.destination == "/scratch")

        let anonymousRO = try MountFlags.parseVolume("/scratch:ro")
        #expect(anonymousRO.kind == .volume && anonymousRO.source == "" && anonymousRO.readOnly)

        let modes = try MountFlags.parseVolume("/srv//x/./:/a/b/../c/:rw,rshared,z")
        #expect(modes.source == "/srv/x" && modes.destination == "/a/c" && modes.propagation == "rshared" && !modes.readOnly)

        #expect(try MountFlags.parseVolume("v1:/v:nocopy").noCopy)
    }

    @Test func volumeFlagRefusals() {
        #expect(message { _ = try MountFlags.parseVolume("./data:/data") }?.contains(
            "\"./data\" includes invalid characters for a local volume name") == true)
        #expect(message { _ = try MountFlags.parseVolume("/srv/../etc:/data") }
            == "invalid host path \"/srv/../etc\": it must not contain \"..\"")
        #expect(message { _ = try MountFlags.parseVolume("/srv:data") }?.contains("mount path must be absolute") == true)
        #expect(message { _ = try MountFlags.parseVolume("/srv:/") }?.contains("destination can't be '/'") == true)
        #expect(message { _ = try MountFlags.parseVolume("/srv:/..") }?.contains("destination can't be '/'") == true)
        #expect(message { _ = try MountFlags.parseVolume("/a:/b:ro:x") }?.contains("too many colons") == true)
        #expect(message { _ = try MountFlags.parseVolume("/a:/b:ro,rw") } == "invalid mode: ro,rw")
        #expect(message { _ = try MountFlags.parseVolume("/a:/b:bogus") } == "invalid mode: bogus")
        #expect(message { _ = try MountFlags.parseVolume("v1:/b:rshared") }?.contains("bind mounts only") == true)
        #expect(message { _ = try MountFlags.parseVolume("/a:/b:nocopy") }?.contains("volumes only") == true)
        #expect(message { _ = try MountFlags.parseVolume(":/b") }?.contains("empty section") == true)
        #expect(message { _ = try MountFlags.parseVolume("x:/b") }?.contains("invalid characters") == true)
    }

    @Test func mountFlagForms() throws {
        let bind = try MountFlags.parseMount("type=bind,src=/srv/data,dst=/data,readonly,bind-propagation=rslave")
        #expect(bind.kind == .bind && bind.source == "/srv/data" && bind.destination == "/data")
        #expect(bind.readOnly && bind.propagation == "rslave" && !bind.createSource && bind.recursion == .enabled)

        let volume = try MountFlags.parseMount("source=cache,target=/cache,volume-nocopy")
        #expect(volume.kind == .volume && volume.source == "cache" && volume.noCopy)

        let tmpfs = try MountFlags.parseMount("type=tmpfs,destination=/scratch,tmpfs-size=64m,tmpfs-mode=1770")
        #expect(tmpfs.kind == .tmpfs && tmpfs.tmpfsOptions == ["size=67108864", "mode=1770"])

        #expect(try MountFlags.parseMount("type=bind,src=/a,dst=/b,bind-recursive=writable").recursion == .writable)
        #expect(try MountFlags.parseMount("type=bind,src=/a,dst=/b,readonly=false").readOnly == false)
    }

    @Test func mountFlagRefusals() {
        #expect(message { _ = try MountFlags.parseMount("type=bind,src=/a") }?.hasSuffix("target is required") == true)
        #expect(message { _ = try MountFlags.parseMount("type=bind,dst=/a") }?.contains("field Source must not be empty") == true)
        #expect(message { _ = try MountFlags.parseMount("type=bind,src=rel,dst=/a") }?.contains("must be absolute") == true)
        #expect(message { _ = try MountFlags.parseMount("type=tmpfs,src=x,dst=/a") }?.contains("must not be specified") == true)
        #expect(message { _ = try MountFlags.parseMount("type=nfs,dst=/a") }?.contains("invalid mount type") == true)
        #expect(message { _ = try MountFlags.parseMount("type=bind,src=/a,dst=/b,color=red") }?.contains("unexpected key 'color'") == true)
        #expect(message { _ = try MountFlags.parseMount("type=bind,src=/a,dst=/b,src") }?.contains("must be a key=value pair") == true)
        #expect(message { _ = try MountFlags.parseMount("type=volume,dst=/b,tmpfs-size=1m") }?.contains("cannot use tmpfs options") == true)
        #expect(message { _ = try MountFlags.parseMount("type=tmpfs,dst=/b,tmpfs-size=lots") }?.contains("invalid size") == true)
        #expect(message { _ = try MountFlags.parseMount("type=tmpfs,dst=/b,tmpfs-mode=999") }?.contains("invalid tmpfs mode") == true)
        #expect(message { _ = try MountFlags.parseMount("type=bind,src=/a,dst=/b,readonly=maybe") }?.contains("invalid value for readonly") == true)
    }

    @Test func tmpfsFlag() throws {
        let t = try MountFlags.parseTmpfs("/run:size=16m,mode=1777,exec,uid=1000")
        #expect(t.destination == "/run" && t.tmpfsOptions == ["size=16777216", "mode=1777", "exec", "uid=1000"])
        let m = t.ociMount(hostSource: "")
        #expect(m.type == "tmpfs" && m.options == ["nosuid", "nodev", "noexec", "size=16777216", "mode=1777", "exec", "uid=1000"])
        // exec after the default noexec wins.
        #expect(MountOptions(type: m.type, options: m.options!).flags & UInt(MS_NOEXEC) == 0)
        #expect(throws: GockerError.self) { try MountFlags.parseTmpfs("run") }
        #expect(throws: GockerError.self) { try MountFlags.parseTmpfs("/run:bogus=1") }
        #expect(throws: GockerError.self) { try MountFlags.parseTmpfs("/run:uid=me") }
    }

    @Test func volumesFrom() throws {
        #expect(try MountFlags.parseVolumesFrom("web") == ("web", nil))
        #expect(try MountFlags.parseVolumesFrom("web:ro") == ("web", true))
        #expect(throws: GockerError.self) { try MountFlags.parseVolumesFrom("web:rx") }
        #expect(throws: GockerError.self) { try MountFlags.parseVolumesFrom(":ro") }
    }

    @Test func ociOptionsOfBindsAndVolumes() throws {
        let ro = try MountFlags.parseVolume("/srv:/data:ro").ociMount(hostSource: "/srv")
        #expect(ro.type == "bind" && ro.options == ["rbind", "rprivate", "ro", "rro"])
        let o = MountOptions(type: ro.type, options: ro.options!)
        #expect(o.isBind && o.recursive && o.flags == UInt(MS_RDONLY) && o.recursiveFlags == UInt(MS_RDONLY))

        let writable = try MountFlags.parseMount("type=bind,src=/a,dst=/b,readonly,bind-recursive=writable")
        #expect(writable.ociMount(hostSource: "/a").options == ["rbind", "rprivate", "ro"])
        let flat = try MountFlags.parseMount("type=bind,src=/a,dst=/b,bind-recursive=disabled")
        #expect(flat.ociMount(hostSource: "/a").options == ["bind", "rprivate"])

        let volume = try MountFlags.parseVolume("cache:/cache").ociMount(hostSource: "/v/cache/_data")
        #expect(volume.source == "/v/cache/_data" && volume.options == ["rbind", "rprivate", "copyup"])
        #expect(MountOptions(type: volume.type, options: volume.options!).copyUp)
        let nocopy = try MountFlags.parseVolume("cache:/cache:nocopy").ociMount(hostSource: "/v")
        #expect(nocopy.options?.contains("copyup") == false)
    }

    @Test func recursiveOptionsAsRuncTakesThem() {
        let o = MountOptions(type: "bind", options: ["rbind", "rro", "rnosuid", "rnoexec", "rexec"])
        #expect(o.recursiveFlags == UInt(MS_RDONLY | MS_NOSUID))
        #expect(o.flags == 0 && o.data.isEmpty)
    }

    @Test func volumeNames() {
        for good in ["cache", "a1", "my_vol.v-2"] { #expect(throws: Never.self) { try MountFlags.validateVolumeName(good) } }
        for bad in ["a", "_x", "-x", "a/b", "..", "a b", ""] {
            #expect(throws: GockerError.self) { try MountFlags.validateVolumeName(bad) }
        }
    }
}

struct UserMountsInTheSpecTests {
    @Test func userMountsReplaceDefaultsAndParentsComeFirst() throws {
        let record = ImageRecord(id: "i", layers: [], config: ImageConfig(Cmd: ["sh"]), created: "")
        let user = [
            try MountFlags.parseVolume("/h/deep:/etc/app/conf").ociMount(hostSource: "/h/deep"),
            try MountFlags.parseVolume("etcvol:/etc").ociMount(hostSource: "/v/etcvol/_data"),
            try MountFlags.parseTmpfs("/dev/shm:size=1m").ociMount(hostSource: ""),
        ]
        let spec = try ContainerSpec.build(request: RunRequest(image: "busybox"), image: record,
                                           containerDir: "/c", hostname: "h", env: [], args: ["sh"], userMounts: user)
        let destinations = spec.mounts?.map(\.destination) ?? []
        #expect(destinations == ["/proc", "/dev", "/sys", "/etc", "/dev/pts", "/dev/mqueue",
                                 "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/dev/shm", "/etc/app/conf"])
        #expect(spec.mounts?.first { $0.destination == "/dev/shm" }?.options?.contains("size=1048576") == true)
        let plan = try LaunchPlan(spec: spec, bundle: "/c")
        #expect(plan.mounts.first { $0.destination == "/etc" }?.options.copyUp == true)
    }
}
