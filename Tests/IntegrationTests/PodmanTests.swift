import Foundation
import Testing

/// A podman of the test's own: its configuration, storage and run
/// directories in the sandbox, gocker-oci its only runtime (a wrapper that
/// keeps gocker's state in the sandbox: podman passes no --root), the
/// sandbox's busybox imported as `localhost/gk-busybox`. Whatever it made
/// goes on deinit, also when a test fails.
final class PrivatePodman {
    let dir: String
    let box: Sandbox
    static let image = "localhost/gk-busybox"

    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/podman") }

    /// Held while this podman runs containers (see CgroupLayoutLock).
    private let layout = CgroupLayoutLock(exclusive: false)

    init(in box: Sandbox) throws {
        self.box = box
        dir = box.dir + "/podman"
        try FileManager.default.createDirectory(atPath: dir + "/tmp", withIntermediateDirectories: true)
        let runtime = dir + "/gocker-oci"
        try """
            #!/bin/sh
            GOCKER_STATE_ROOT='\(box.stateRoot)' exec '\(Sandbox.binary)' oci "$@"

            """.write(toFile: runtime, atomically: true, encoding: .utf8)
        chmod(runtime, 0o755)
        // What podman needs on this kind of machine (root lacks
        // CAP_SYS_RESOURCE: the hard nofile limit is 20000).
        try """
            [containers]
            default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
            log_driver = "k8s-file"
            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            runtime = "gocker"
            runtime_supports_json = ["gocker"]
            [engine.runtimes]
            gocker = ["\(runtime)"]

            """.write(toFile: dir + "/containers.conf", atomically: true, encoding: .utf8)
        #expect(try box.gocker(["create", "--name", "podman-image", "--network", "none", "busybox", "true"]).status == 0)
        #expect(try box.gocker(["export", "-o", dir + "/busybox.tar", "podman-image"]).status == 0)
        #expect(try box.gocker(["rm", "podman-image"]).status == 0)
        let imported = try podman(["import", dir + "/busybox.tar", Self.image])
        guard imported.status == 0 else { throw PodmanError(output: imported.output) }
    }

    struct PodmanError: Error { let output: String }

    deinit {
        _ = try? podman(["rm", "-a", "-f", "-t", "0"])
        _ = try? podman(["system", "reset", "-f"])
        _ = try? shell("grep -o ' \(dir)[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l")
    }

    /// podman with this configuration and storage; its containers' groups
    /// under the sandbox's cgroup parent.
    @discardableResult
    func podman(_ args: [String]) throws -> (status: Int32, output: String) {
        var args = args
        if ["run", "create"].contains(args.first) {
            args.insert(contentsOf: ["--cgroup-parent", "/" + box.cgroupParent, "--network", "none"], at: 1)
        }
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_CONF"] = dir + "/containers.conf"
        // Through bash, which closes every descriptor above 2 first: conmon
        // (podman's child, which outlives it) would hold one this process
        // left open, and `run -d` would not return until the container ended.
        return try runTool("/bin/bash", ["-c", #"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; exec /usr/bin/podman "$@""#,
                                         "podman", "--root", dir + "/root", "--runroot", dir + "/run", "--tmpdir", dir + "/tmp"] + args,
                           environment: env, scratch: dir)
    }
}

/// podman drives gocker-oci as it drives runc: what it tripped on before
/// (a non-root user, --read-only and --tmpfs, a missing command's 127),
/// exit codes, a terminal, exec, top, pause, update, stop and rm, and its
/// seccomp profiles really applied.
@Suite(.enabled(if: canRunContainers && (PrivatePodman.installed || ProcessInfo.processInfo.environment["CI"] == "true"),
                "needs root and Debian's podman (./build.sh deps installs it)"))
struct PodmanTests {
    @Test func podmanRunsGockerContainersAsWithRunc() throws {
        let box = try Sandbox()
        let pm = try PrivatePodman(in: box)
        let image = PrivatePodman.image
        let info = try pm.podman(["info", "--format", "{{.Host.OCIRuntime.Name}}"])
        #expect(info.status == 0 && info.output == "gocker\n", "\(info.output)")

        for (args, status, output) in [
            (["sh", "-c", "exit 7"], Int32(7), nil),
            (["nosuch"], 127, "executable file not found in $PATH"),
            (["/etc/passwd"], 126, "permission denied"),
        ] as [([String], Int32, String?)] {
            let r = try pm.podman(["run", "--rm", image] + args)
            #expect(r.status == status && (output.map { r.output.contains($0) } ?? true), "\(args): \(r.status) \(r.output)")
        }
        for (flags, command, output) in [
            (["--user", "nobody"], "id -u", "65534\n"),
            (["--user", "1000:1000"], "id -u; id -g", "1000\n1000\n"),
            (["--read-only"], "touch /x 2>/dev/null || echo refused", "refused\n"),
            // tmpcopyup: the image's /etc in the new tmpfs.
            (["--read-only", "--tmpfs", "/etc"], "touch /etc/x && grep -c ^root: /etc/passwd", "1\n"),
            (["-t"], "tty", "/dev/pts/0\r\n"),
        ] as [([String], String, String)] {
            let r = try pm.podman(["run", "--rm"] + flags + [image, "sh", "-c", command])
            #expect(r.status == 0 && r.output == output, "\(flags): \(r.status) \(r.output)")
        }

        // seccomp: podman's own profile, and one that denies mkdir, as under runc.
        let seccomp = try pm.podman(["run", "--rm", image, "grep", "Seccomp:", "/proc/self/status"])
        #expect(seccomp.output.hasSuffix("2\n"), "\(seccomp.output)")
        let profile = box.dir + "/no-mkdir.json"
        try #"""
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
            """#.write(toFile: profile, atomically: true, encoding: .utf8)
        let denied = try pm.podman(["run", "--rm", "--security-opt", "seccomp=" + profile, image, "mkdir", "/tmp/x"])
        #expect(denied.status == 1 && denied.output.contains("Operation not permitted"), "\(denied.output)")

        // A detached one: exec, top, pause, update, stop, rm.
        let run = try pm.podman(["run", "-d", "--name", "w1", "--memory", "64m", image, "sh", "-c", "echo started; exec sleep 300"])
        #expect(run.status == 0, "\(run.output)")
        #expect(try pm.podman(["exec", "w1", "sh", "-c", "exit 3"]).status == 3)
        let top = try pm.podman(["top", "w1"])
        #expect(top.status == 0 && top.output.contains("sleep 300"), "\(top.output)")
        #expect(try pm.podman(["pause", "w1"]).status == 0)
        #expect(try pm.podman(["inspect", "-f", "{{.State.Status}}", "w1"]).output == "paused\n")
        #expect(try pm.podman(["unpause", "w1"]).status == 0)
        let pid = try pm.podman(["inspect", "-f", "{{.State.Pid}}", "w1"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        func memoryLimit() -> String {
            let cgroup = box.contents("/proc/\(pid)/cgroup").split(separator: "\n")
            if let v2 = cgroup.first(where: { $0.hasPrefix("0::") }), cgroup.count == 1 {
                return box.contents("/sys/fs/cgroup" + v2.dropFirst(3) + "/memory.max").trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let line = cgroup.first { $0.split(separator: ":")[1] == "memory" } ?? ""
            let path = line.split(separator: ":", maxSplits: 2).last ?? ""
            return box.contents("/sys/fs/cgroup/memory\(path)/memory.limit_in_bytes").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(memoryLimit() == "67108864")
        // podman stats reads the container's groups gocker made.
        let stats = try pm.podman(["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "w1"])
        #expect(stats.status == 0 && stats.output.hasPrefix("w1 ") && stats.output.contains("/ 67.11MB"), "\(stats.output)")
        let update = try pm.podman(["update", "--memory", "128m", "w1"])
        #expect(update.status == 0, "\(update.output)")
        #expect(memoryLimit() == "134217728")
        #expect(try pm.podman(["logs", "w1"]).output == "started\n")
        #expect(try pm.podman(["stop", "-t", "1", "w1"]).status == 0)
        #expect(try pm.podman(["inspect", "-f", "{{.State.Status}}", "w1"]).output == "exited\n")
        #expect(try pm.podman(["rm", "w1"]).status == 0)
        #expect(try pm.podman(["ps", "-aq"]).output.isEmpty)
        // podman's own group for its conmons (as with any runtime) goes by hand.
        for d in box.cgroupParentDirs { rmdir(d + "/conmon") }
        box.expectNothingLeft()
    }

    /// What podman puts in the config from its own flags: a user namespace
    /// with its maps (--uidmap/--gidmap), sysctls, oom_score_adj and a
    /// hook-free exec in that user namespace, as under runc.
    @Test func podmanUserNamespacesSysctlsAndOomScore() throws {
        let box = try Sandbox()
        let pm = try PrivatePodman(in: box)
        let image = PrivatePodman.image
        let maps = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
        let r = try pm.podman(["run", "--rm"] + maps + [image, "sh", "-c",
            "cat /proc/self/uid_map | tr -s ' '; id -u; touch /x && stat -c %u /x; cat /proc/self/oom_score_adj"])
        #expect(r.status == 0 && r.output == " 0 100000 65536\n0\n0\n0\n", "\(r.status) \(r.output)")

        let s = try pm.podman(["run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--oom-score-adj", "300", image,
                               "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/self/oom_score_adj"])
        #expect(s.status == 0 && s.output == "1\n300\n", "\(s.status) \(s.output)")

        let d = try pm.podman(["run", "-d", "--name", "u1"] + maps + [image, "sleep", "300"])
        #expect(d.status == 0, "\(d.output)")
        let pid = try pm.podman(["inspect", "-f", "{{.State.Pid}}", "u1"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let uid = box.contents("/proc/\(pid)/status").split(separator: "\n").first { $0.hasPrefix("Uid:") } ?? ""
        #expect(uid.split(separator: "\t").dropFirst().allSatisfy { $0 == "100000" }, "the host sees id 100000: \(uid)")
        let e = try pm.podman(["exec", "u1", "sh", "-c", "id -u; readlink /proc/self/ns/user"])
        let owner = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/user")) ?? "?"
        #expect(e.status == 0 && e.output == "0\n\(owner)\n", "\(e.status) \(e.output)")
        // podman 4.3 races its own cleanup (conmon's `podman container
        // cleanup`) when a container with a user namespace goes: `rm` can
        // find the shm mount still there and fail with EBUSY on
        // userdata/shm, as it does under runc (8 in 60) and under gocker
        // (3 in 60); a second `rm` then always removes it. Any other
        // failure fails the test.
        var rm = try pm.podman(["rm", "-f", "-t", "0", "u1"])
        if rm.status != 0 && rm.output.contains("/userdata/shm: device or resource busy") {
            usleep(200_000)
            rm = try pm.podman(["rm", "-f", "-t", "0", "u1"])
        }
        #expect(rm.status == 0, "\(rm.output)")
        // podman's own group for its conmons goes by hand, once the last
        // conmon has left it.
        _ = box.waitFor {
            for d in box.cgroupParentDirs { rmdir(d + "/conmon") }
            return box.cgroupsLeft().isEmpty
        }
        box.expectNothingLeft()
    }
}
