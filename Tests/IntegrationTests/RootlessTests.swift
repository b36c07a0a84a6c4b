import Foundation
import Testing

/// An ordinary user of the host, made for one test (useradd, with a fixed
/// name and, when asked, a subordinate id range of its own) and removed
/// after it with its processes and files. Its home and runtime directory
/// are in a directory of its own under /tmp, with a copy of the gocker
/// binary it runs.
final class RootlessUser {
    static let name = "gockerrl"
    /// A fixed id no other test gives its files (they use 1000 and 1001,
    /// the ids a first user gets), so that what this user owns is its own.
    static let fixedID: UInt32 = 64_213
    /// The range given in /etc/subuid and /etc/subgid.
    static let rangeStart: UInt32 = 300_000
    static let rangeCount: UInt32 = 65_536

    let dir: String
    let home: String
    let runtimeDir: String
    let binary: String
    let uid: UInt32
    let gid: UInt32

    init(ranges: Bool = true) throws {
        Self.remove()
        var template = Array("/tmp/gocker-rl-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw POSIXError(.EIO) }
        dir = String(cString: p)
        home = dir + "/home"
        runtimeDir = dir + "/run"
        binary = dir + "/bin/gocker"
        // No ranges from useradd's defaults: only those given here.
        _ = try sh("getent group \(Self.fixedID) >/dev/null || groupadd -g \(Self.fixedID) \(Self.name)")
        let made = try sh("useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -M -u \(Self.fixedID) -g \(Self.fixedID) -d \(home) -s /bin/sh \(Self.name)")
        guard made == 0 else { throw POSIXError(.EPERM) }
        if ranges {
            let last = Self.rangeStart + Self.rangeCount - 1
            _ = try sh("usermod --add-subuids \(Self.rangeStart)-\(last) --add-subgids \(Self.rangeStart)-\(last) \(Self.name)")
        }
        guard let pw = getpwnam(Self.name) else { throw POSIXError(.ENOENT) }
        uid = pw.pointee.pw_uid
        gid = pw.pointee.pw_gid
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        // Copied by cp: a descriptor this process held open for writing
        // would be inherited by whatever another test spawns meanwhile, and
        // the copy's execs fail (ETXTBSY) for as long as that runs.
        guard try sh("cp '\(Sandbox.binary)' '\(binary)'") == 0 else { throw POSIXError(.EIO) }
        for d in [home, runtimeDir] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            chown(d, uid, gid)
            chmod(d, 0o700)
        }
        chmod(dir, 0o755)
        chmod(dir + "/bin", 0o755)
        chmod(binary, 0o755)
    }

    /// Kills the user's processes (its containers and their namespaces'
    /// holder among them) and removes it; a user left by an earlier run goes
    /// the same way.
    static func remove() {
        _ = try? sh("pkill -KILL -u \(name) 2>/dev/null; for i in $(seq 50); do pgrep -u \(name) >/dev/null || break; sleep 0.1; done; "
            + "userdel \(name) 2>/dev/null; groupdel \(name) 2>/dev/null; true")
    }

    deinit {
        Self.remove()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// gocker run as the user, with only HOME, PATH and XDG_RUNTIME_DIR
    /// (unless `runtimeDirectory` is false) in its environment.
    @discardableResult
    func gocker(_ args: [String], input: String? = nil, runtimeDirectory: Bool = true,
                path: String = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", environment: [String] = []) throws -> Sandbox.Result {
        var env = ["HOME=\(home)", "PATH=\(path)", "GOCKER_PULL=never"] + environment
        if runtimeDirectory { env.append("XDG_RUNTIME_DIR=\(runtimeDir)") }
        return try Sandbox.run("/usr/bin/setpriv",
                               ["--reuid=\(uid)", "--regid=\(gid)", "--init-groups", "/usr/bin/env", "-i"] + env + [binary] + args,
                               environment: nil, filesIn: dir, input: input, workingDirectory: dir)
    }

    /// The host's owner of `path`.
    func owner(_ path: String) -> (uid: UInt32, gid: UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid)
    }

    /// Files owned by the user or its range outside its own directory.
    /// Outside its namespace the user can make files only in directories
    /// open to everyone (its namespace's root overrides no permission of
    /// files owned by ids it does not map): /tmp, /var/tmp and /dev/shm,
    /// looked at two levels down.
    func filesOutside() throws -> [String] {
        let out = dir + "/outside.txt"
        let last = Self.rangeStart + Self.rangeCount
        _ = try sh("find /tmp /var/tmp /dev/shm -maxdepth 2 -path \(dir) -prune -o "
            + "\\( -uid \(uid) -o \\( -uid +\(Self.rangeStart - 1) -uid -\(last) \\) \\) -print > \(out) 2>/dev/null; true")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: out)
        return text.split(separator: "\n").map(String.init).filter { $0 != out }
    }
}

/// gocker run by an ordinary user: a user namespace of the user's own
/// (its ranges through newuidmap and newgidmap, or the user alone), its
/// storage in the user's directories, no cgroups where none are delegated.
@Suite(.serialized, .enabled(if: canRunContainers, "makes users and starts real containers: needs root"))
struct RootlessTests {
    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
    }

    @Test func aUserRunsContainersAsRootOfItsOwnRange() throws {
        let user = try RootlessUser()
        let uid = user.uid, start = RootlessUser.rangeStart, count = RootlessUser.rangeCount
        let map = ["0 \(uid) 1", "1 \(start) \(count)"]

        // In the foreground: root inside, the user and its range outside.
        var r = try user.gocker(["run", "--rm", "--network", "none", "busybox", "sh", "-c",
                                 "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.lines(r.stdout) == ["0", map[0], map[1], "0 \(user.gid) 1", "1 \(start) \(count)"], "\(r.stdout)")
        #expect(!r.stderr.contains("note:"), "a user with ranges gets no note: \(r.stderr)")

        // Detached, with a volume of the user's: who owns what it writes.
        let volume = user.dir + "/volume"
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        chown(volume, user.uid, user.gid)
        r = try user.gocker(["run", "-d", "--name", "rl1", "--network", "none", "-v", "\(volume):/data", "busybox", "sh", "-c",
                             "echo hello; touch /data/mine; touch /data/theirs; chown 1000:1000 /data/theirs; touch /data/done; sleep 60"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Sandbox.wait(10) { FileManager.default.fileExists(atPath: volume + "/done") })
        #expect(user.owner(volume + "/mine").map { [$0.uid, $0.gid] } == [uid, user.gid], "the container's root is the user")
        #expect(user.owner(volume + "/theirs").map { [$0.uid, $0.gid] } == [start + 999, start + 999],
                "its id 1000 is the range's 1000th")
        // The container's process, seen from the host.
        r = try user.gocker(["inspect", "rl1"])
        let inspected = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
        let pid = try #require((inspected?.first?["State"] as? [String: Any])?["Pid"] as? Int32, "\(r.stdout) \(r.stderr)")
        let hostMap = try String(contentsOfFile: "/proc/\(pid)/uid_map", encoding: .utf8)
        #expect(Self.lines(hostMap) == map, "\(hostMap)")
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Uid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)"), "\(status)")

        r = try user.gocker(["exec", "rl1", "sh", "-c", "id -u; hostname; ps -o pid,comm | grep -c sleep"])
        #expect(r.status == 0 && Self.lines(r.stdout).first == "0" && Self.lines(r.stdout).last == "1", "\(r.stdout) \(r.stderr)")
        r = try user.gocker(["logs", "rl1"])
        #expect(r.stdout == "hello\n", "\(r.stdout) \(r.stderr)")
        r = try user.gocker(["ps", "--format", "{{.Names}}"])
        #expect(r.stdout == "rl1\n", "\(r.stdout) \(r.stderr)")
        r = try user.gocker(["rm", "-f", "rl1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Sandbox.wait(5) { kill(pid, 0) != 0 }, "the container is gone")
        r = try user.gocker(["ps", "-a", "-q"])
        #expect(r.status == 0 && r.stdout.isEmpty, "\(r.stdout) \(r.stderr)")

        // Its storage is the user's: the default data root in its home.
        let dataRoot = user.home + "/.local/share/gocker"
        #expect(user.owner(dataRoot)?.uid == uid)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dataRoot + "/containers")) == [])
        #expect(FileManager.default.fileExists(atPath: user.runtimeDir + "/gocker/pause.pid"))
        let outside = try user.filesOutside()
        #expect(outside == [], "nothing of the user's outside its directories: \(outside)")
    }

    /// The holder of the namespaces is known by its pid and start time: a
    /// process of the user's that took its pid (here: named as it is, and
    /// put in its place in pause.pid) is not joined, and a new one is made.
    @Test func aProcessInThePausesPlaceIsNotJoined() throws {
        let user = try RootlessUser()
        var r = try user.gocker(["images", "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        let pidFile = user.runtimeDir + "/gocker/pause.pid"
        let recorded = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: " ").map(String.init)
        #expect(recorded.count == 2, "PID START-TIME: \(recorded)")
        let pause = try #require(Int32(recorded[0]))
        kill(pause, SIGKILL)
        #expect(Sandbox.wait(5) { kill(pause, 0) != 0 })
        // A process of the user's named gocker-pause.
        let impostor = user.dir + "/gocker-pause"
        #expect(try sh("cp /bin/sleep '\(impostor)'") == 0, "copied by cp: see RootlessUser")
        chmod(impostor, 0o755)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", impostor, "60"]
        try p.run()
        defer {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try "\(p.processIdentifier) \(recorded[1])".write(toFile: pidFile, atomically: false, encoding: .utf8)
        r = try user.gocker(["run", "--rm", "--network", "none", "busybox", "true"])
        #expect(r.status == 0, "\(r.stderr)")
        let now = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: " ").first.map(String.init)
        #expect(now != nil && now != "\(p.processIdentifier)" && now != recorded[0], "a new holder: \(now ?? "")")
        let joined = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.processIdentifier)/ns/mnt")
        let holder = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(now ?? "0")/ns/mnt")
        #expect(joined != nil && holder != nil && joined != holder)
    }

    /// newuidmap and newgidmap are looked for in $PATH, as a shell would:
    /// without them a user with a range gets one line, and no namespace.
    @Test func withoutNewuidmapAUserWithARangeIsToldSo() throws {
        let user = try RootlessUser()
        let r = try user.gocker(["images"], path: "/nonexistent")
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr == "gocker: error: rootless: \(RootlessUser.name) has ranges in /etc/subuid and /etc/subgid, but newuidmap and newgidmap are not installed (Debian's uidmap package)\n", "\(r.stderr)")
        let holders = user.dir + "/holders.txt"
        _ = try sh("pgrep -u \(user.uid) -x gocker-pause > \(holders); true")
        #expect((try? String(contentsOfFile: holders, encoding: .utf8)) == "", "no namespace holder left")
        #expect(!FileManager.default.fileExists(atPath: user.runtimeDir + "/gocker/pause.pid"))
    }

    /// A pull into the user's store, from a registry of the test's own on
    /// loopback, and a run of what it pulled.
    @Test func aUserPullsAndRunsAnImage() throws {
        let box = try Sandbox()
        let registry = try PrivateRegistry(in: box)
        try registry.push(ociArchive: try PrivateRegistry.busyboxArchive(box), as: "test/busybox:1")
        let user = try RootlessUser()
        let name = registry.host + "/test/busybox:1"
        var r = try user.gocker(["pull", "-q", name])
        #expect(r.status == 0 && r.stdout == name + "\n", "\(r.stdout) \(r.stderr)")
        r = try user.gocker(["run", "--rm", "--network", "none", name, "sh", "-c", "id -u; ls /bin/busybox"])
        #expect(r.status == 0 && r.stdout == "0\n/bin/busybox\n", "\(r.stdout) \(r.stderr)")
        let layers = user.home + "/.local/share/gocker/image/layers"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: layers)) ?? []).count == 1, "the layer is in the user's store")
    }

    /// Limits, and a backend or parent for groups there are none of: each
    /// one line naming what was asked, and nothing left.
    @Test func aLimitIsRefusedWhereNoCgroupIsDelegated() throws {
        let user = try RootlessUser()
        let cases: [([String], [String], String)] = [
            (["-m", "64m"], [], "rootless container has no cgroups"),
            (["--cpus", "1"], [], "rootless container has no cgroups"),
            (["--pids-limit", "10"], [], "rootless container has no cgroups"),
            (["--cgroup-backend", "cgroupfs"], [], "--cgroup-backend cgroupfs: a rootless gocker has no choice of cgroup backend: a rootless container has no cgroups"),
            ([], ["GOCKER_CGROUP_BACKEND=libcgroup"], "GOCKER_CGROUP_BACKEND libcgroup: a rootless gocker has no choice of cgroup backend"),
            (["--cgroup-parent", "mine"], [], "--cgroup-parent mine: a rootless container has no cgroups"),
        ]
        for (flags, environment, said) in cases {
            let r = try user.gocker(["run", "--rm", "--network", "none"] + flags + ["busybox", "true"], environment: environment)
            #expect(r.status == 125, "\(flags): \(r.stderr)")
            #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(said)
                    && r.stderr.split(separator: "\n").count == 1, "\(flags): \(r.stderr)")
        }
        let r = try user.gocker(["ps", "-a", "-q"])
        #expect(r.status == 0 && r.stdout.isEmpty, "nothing left: \(r.stdout) \(r.stderr)")
        let containers = user.home + "/.local/share/gocker/containers"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: containers)) ?? []) == [])
        #expect(Sandbox.stateLeft(in: user.runtimeDir + "/gocker") == ["pause.lock", "pause.pid"])
    }

    @Test func theHostNetworkAndItsSys() throws {
        let user = try RootlessUser()
        let r = try user.gocker(["run", "--rm", "--network", "host", "busybox", "sh", "-c",
                                 "ls /sys/class/net | grep -c '^lo$'; touch /sys/x 2>&1 || echo read-only"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.lines(r.stdout).first == "1" && r.stdout.contains("read-only"), "\(r.stdout)")
    }

    @Test func withoutARangeOnlyTheUserIsMapped() throws {
        let user = try RootlessUser(ranges: false)
        var r = try user.gocker(["run", "--rm", "--network", "none", "busybox", "sh", "-c",
                                 "cat /proc/self/uid_map; chown 1 /tmp 2>/dev/null || echo refused"],
                                runtimeDirectory: false)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.lines(r.stdout) == ["0 \(user.uid) 1", "refused"], "\(r.stdout)")
        #expect(r.stderr.contains("note: \(RootlessUser.name) has no range in /etc/subuid"), "\(r.stderr)")
        // Without XDG_RUNTIME_DIR: a private directory in /tmp.
        let fallback = "/tmp/gocker-\(user.uid)"
        defer { try? FileManager.default.removeItem(atPath: fallback) }
        var st = stat()
        #expect(lstat(fallback, &st) == 0 && st.st_uid == user.uid && st.st_mode & 0o777 == 0o700)
        // The note comes once, with the namespace.
        r = try user.gocker(["images", "-q"], runtimeDirectory: false)
        #expect(r.status == 0 && !r.stderr.contains("note:"), "\(r.stderr)")
    }

    /// `gocker oci spec --rootless` writes runc's rootless config (the
    /// user's own host id mapped to root), and `gocker oci` runs it as the
    /// user: the host sees the container's root as the user.
    @Test func theOCIFrontDoorRunsARootlessConfig() throws {
        let user = try RootlessUser()
        let bundle = user.home + "/bundle"
        _ = try sh("mkdir -p \(bundle)/rootfs/bin \(bundle)/rootfs/proc \(bundle)/rootfs/dev \(bundle)/rootfs/sys && "
            + "cp /bin/busybox \(bundle)/rootfs/bin/ && for a in sh cat id sleep; do ln -s busybox \(bundle)/rootfs/bin/$a; done && "
            + "chown -R \(user.uid):\(user.gid) \(bundle)")
        var r = try user.gocker(["oci", "spec", "--rootless", "--bundle", bundle])
        #expect(r.status == 0, "\(r.stderr)")
        let configPath = bundle + "/config.json"
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        let linux = try #require(config["linux"] as? [String: Any])
        let uidMap = (linux["uidMappings"] as? [[String: Any]])?.first
        #expect(uidMap?["hostID"] as? Int == Int(user.uid) && uidMap?["containerID"] as? Int == 0, "runc's: the user's own id")
        var process = try #require(config["process"] as? [String: Any])
        process["terminal"] = false
        process["args"] = ["sh", "-c", "id -u; echo ready; sleep 30"]
        config["process"] = process
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        chown(configPath, user.uid, user.gid)

        // A backend asked for is refused, and leaves no state.
        r = try user.gocker(["oci", "--cgroup-backend", "cgroupfs", "create", "--bundle", bundle, "rl-refused"])
        #expect(r.status != 0 && r.stderr.contains("--cgroup-backend cgroupfs: a rootless gocker has no choice of cgroup backend")
                && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try user.gocker(["oci", "state", "rl-refused"]).status != 0)
        r = try user.gocker(["oci", "--cgroup-backend", "libcgroup", "run", "--bundle", bundle, "rl-refused"])
        #expect(r.status != 0 && r.stderr.contains("--cgroup-backend libcgroup: a rootless gocker has no choice of cgroup backend")
                && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try user.gocker(["oci", "state", "rl-refused"]).status != 0)

        r = try user.gocker(["oci", "create", "--bundle", bundle, "rl-oci"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["oci", "state", "rl-oci"])
        let state = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let pid = try #require(state?["pid"] as? Int, "\(r.stdout) \(r.stderr)")
        let hostMap = try String(contentsOfFile: "/proc/\(pid)/uid_map", encoding: .utf8)
        #expect(Self.lines(hostMap) == ["0 \(user.uid) 1"], "\(hostMap)")
        r = try user.gocker(["oci", "start", "rl-oci"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["oci", "delete", "-f", "rl-oci"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Sandbox.wait(5) { kill(pid_t(pid), 0) != 0 })
        #expect(Sandbox.stateLeft(in: user.runtimeDir + "/gocker") == ["pause.lock", "pause.pid"])
    }

    @Test func imagesKeepTheirOwnersInTheRange() throws {
        let user = try RootlessUser()
        // A layer with a file of id 1000 and a setuid one of root's.
        let tree = user.dir + "/tree"
        _ = try sh("mkdir -p \(tree)/etc \(tree)/bin && cp /bin/busybox \(tree)/bin/ && echo x > \(tree)/etc/theirs && "
            + "chown 1000:1000 \(tree)/etc/theirs && tar -C \(tree) -cf \(user.dir)/layer.tar . && chmod 644 \(user.dir)/layer.tar")
        var r = try user.gocker(["import", user.dir + "/layer.tar", "owned"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["run", "--rm", "--network", "none", "owned", "/bin/busybox", "stat", "-c", "%u:%g", "/etc/theirs"])
        #expect(r.stdout == "1000:1000\n", "\(r.stdout) \(r.stderr)")
        // On the host, the layer's file belongs to the range.
        let found = user.dir + "/found.txt"
        _ = try sh("find \(user.home)/.local/share/gocker/image -name theirs -printf '%U:%G\\n' > \(found)")
        let start = RootlessUser.rangeStart
        #expect((try? String(contentsOfFile: found, encoding: .utf8)) == "\(start + 999):\(start + 999)\n")
        // commit, save and load keep them.
        r = try user.gocker(["run", "--name", "c1", "--network", "none", "owned", "/bin/busybox", "sh", "-c", "echo y > /etc/more && chown 7:7 /etc/more"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["commit", "c1", "committed"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["save", "-o", user.home + "/saved.tar", "committed"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["rm", "c1"])
        r = try user.gocker(["rmi", "committed", "owned"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["load", "-i", user.home + "/saved.tar"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try user.gocker(["run", "--rm", "--network", "none", "committed", "/bin/busybox", "stat", "-c", "%u:%g", "/etc/theirs", "/etc/more"])
        #expect(r.stdout == "1000:1000\n7:7\n", "\(r.stdout) \(r.stderr)")
    }

    @Test func aFileOfAnIdOutsideTheMapsIsNamed() throws {
        let user = try RootlessUser(ranges: false)
        let tree = user.dir + "/tree"
        _ = try sh("mkdir -p \(tree)/etc && echo x > \(tree)/etc/theirs && chown 1000:1000 \(tree)/etc/theirs && "
            + "tar -C \(tree) -cf \(user.dir)/layer.tar . && chmod 644 \(user.dir)/layer.tar")
        let r = try user.gocker(["import", user.dir + "/layer.tar", "owned"], runtimeDirectory: false)
        defer { try? FileManager.default.removeItem(atPath: "/tmp/gocker-\(user.uid)") }
        #expect(r.status == 125, "\(r.stderr)")
        #expect(r.stderr.contains("etc/theirs") && r.stderr.contains("1000") && r.stderr.contains("/etc/subuid"), "\(r.stderr)")
        let images = try user.gocker(["images", "-q"], runtimeDirectory: false)
        #expect(images.stdout.isEmpty, "no image left: \(images.stdout)")
    }
}

/// A rootless container's default network: slirp4netns. (In the same
/// suite as the others: they share the user's name, one test at a time.)
extension RootlessTests {
    /// A port of the host's loopback nothing listens on now.
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        return UInt16(bigEndian: a.sin_port)
    }

    /// The body of `GET /` at 127.0.0.1:`port`, or nil.
    static func httpGet(port: UInt16) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return nil }
        let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var answer: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            answer += buf[0..<n]
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard text.hasPrefix("HTTP/1."), let end = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[end.upperBound...])
    }

    func slirps(of user: RootlessUser) throws -> Int {
        let out = user.dir + "/pgrep.txt"
        _ = try sh("pgrep -u \(user.uid) -x slirp4netns > \(out); true")
        return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    @Test func slirp4netnsCarriesTheDefaultNetworkAndPublishesPorts() throws {
        let user = try RootlessUser()
        // Its own address, gateway and DNS forwarder.
        var r = try user.gocker(["run", "--rm", "busybox", "sh", "-c",
                                 "ip -o -4 addr show tap0; ip route | grep default; cat /etc/resolv.conf; grep -c 10.0.2.100 /etc/hosts"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("inet 10.0.2.100/24") && r.stdout.contains("default via 10.0.2.2")
                && r.stdout.contains("nameserver 10.0.2.3\n") && r.stdout.hasSuffix("1\n"), "\(r.stdout)")
        #expect(try slirps(of: user) == 0, "slirp4netns went with the container")

        // A web server published on the host's loopback.
        let port = Self.freePort()
        r = try user.gocker(["run", "-d", "--name", "web", "-p", "127.0.0.1:\(port):8080", "busybox", "sh", "-c",
                             "mkdir /www && echo hello from web > /www/index.html && exec httpd -f -p 8080 -h /www"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try slirps(of: user) == 1)
        var page: String?
        #expect(Sandbox.wait(10) {
            page = Self.httpGet(port: port)
            return page != nil
        }, "the host reaches the published port")
        #expect(page == "hello from web\n")
        r = try user.gocker(["port", "web"])
        #expect(r.stdout == "8080/tcp -> 127.0.0.1:\(port)\n", "\(r.stdout) \(r.stderr)")

        // Another container reaches it through the host's loopback, when
        // allowed; by default the host's loopback is out of reach.
        // (busybox's nc: its static wget crashes in name lookup.)
        let get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.2 \(port)"
        r = try user.gocker(["run", "--rm", "--network", "slirp4netns:allow_host_loopback=true", "busybox", "sh", "-c", get])
        #expect(r.status == 0 && r.stdout.hasPrefix("HTTP/1.") && r.stdout.hasSuffix("\r\n\r\nhello from web\n"), "\(r.stdout) \(r.stderr)")
        r = try user.gocker(["run", "--rm", "busybox", "sh", "-c", get])
        #expect(r.status != 0 && r.stdout.isEmpty, "\(r.stdout) \(r.stderr)")

        r = try user.gocker(["rm", "-f", "web"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Sandbox.wait(5) { (try? slirps(of: user)) == 0 }, "slirp4netns went with the container")
        #expect(Self.httpGet(port: port) == nil, "the port is closed")
    }

    @Test func refusedNetworksLeaveNothing() throws {
        let user = try RootlessUser()
        let cases: [([String], String)] = [
            (["run", "--rm", "-p", "80:80", "busybox", "true"], "port 80 is below"),
            (["run", "--rm", "--network", "mynet", "busybox", "true"], "network mynet is not available to a rootless container"),
            (["run", "--rm", "--network", "slirp4netns:mtu=1500", "busybox", "true"], "unsupported slirp4netns option"),
            (["network", "create", "mynet"], "network create is not available to a rootless container"),
            (["run", "--rm", "--network", "none", "-v", "/root:/data", "busybox", "true"], "/root: permission denied"),
        ]
        for (args, message) in cases {
            let r = try user.gocker(args)
            #expect(r.status == 125 && r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1,
                    "\(args): \(r.status) \(r.stderr)")
        }
        let r = try user.gocker(["ps", "-a", "-q"])
        #expect(r.status == 0 && r.stdout.isEmpty, "\(r.stdout)")
        #expect(try slirps(of: user) == 0)
        let outside = try user.filesOutside()
        #expect(outside == [], "nothing of the user's outside its directories: \(outside)")
    }
}
