import CGockerCore
import Glibc
import Testing
@testable import GockerCgroups

struct MountinfoTests {
    /// Lines as the kernel writes them: optional tags before the "-", a
    /// co-mounted pair, a named hierarchy, cgroup2, a path with an escaped space.
    @Test func eachV1ControllersHierarchy() {
        let text = """
            22 27 0:21 / /proc rw,relatime - proc proc rw
            30 28 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
            31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
            33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 master:3 - cgroup cgroup rw,cpu,cpuacct
            34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
            35 30 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
            36 30 0:32 / /mnt/with\\040space/pids rw - cgroup cgroup rw,pids
            37 30 0:33 / /elsewhere/memory rw - cgroup cgroup rw,memory
            bad line - cgroup
            """
        let m = CgroupfsV1Backend.mounts(inMountinfo: text)
        #expect(m == ["cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                      "memory": "/sys/fs/cgroup/memory", "pids": "/mnt/with\\040space/pids"],
                "the first mount of a controller wins; named and v2 hierarchies are none")
    }

    /// On this host: every hierarchy found is a directory holding its
    /// controller's files (cgroup.procs at least).
    @Test func theHostsHierarchiesAreThere() {
        let mounts = CgroupfsV1Backend.hostMounts()
        // A host whose /sys/fs/cgroup is no cgroup2 has v1 hierarchies (memory among them).
        if gk_fs_type("/sys/fs/cgroup") != 0x6367_7270 {
            #expect(mounts["memory"] != nil, "\(mounts)")
        }
        for (_, dir) in mounts {
            var st = stat()
            #expect(stat(dir + "/cgroup.procs", &st) == 0, "\(dir)")
        }
    }
}
