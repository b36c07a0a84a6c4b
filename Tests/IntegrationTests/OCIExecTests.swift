import Foundation
import Testing

/// `gocker oci exec` and console sockets, as containerd and podman use them.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct OCIExecTests {
    /// Listens on a unix socket, as containerd does for --console-socket.
    final class ConsoleSocket {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, ok == 0, listen(fd, 1) == 0 else { throw POSIXError(.EIO) }
        }

        deinit { close(fd) }

        /// Accepts one connection and returns the descriptor it carries
        /// (SCM_RIGHTS) and the name sent with it.
        /// With `rest`, what follows on the connection up to its end too.
        func receive(max: Int = 256, rest: Bool = false) throws -> (fd: Int32, name: String) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 10_000) == 1 else { throw POSIXError(.ETIMEDOUT) }
            let conn = accept(fd, nil, nil)
            defer { close(conn) }
            var name = [UInt8](repeating: 0, count: max)
            // struct cmsghdr (16 bytes on 64-bit Linux) followed by one int.
            var control = [UInt8](repeating: 0, count: 24)
            let n = name.withUnsafeMutableBytes { nameRaw in
                control.withUnsafeMutableBytes { ctl in
                    var iov = iovec(iov_base: nameRaw.baseAddress, iov_len: nameRaw.count)
                    return withUnsafeMutablePointer(to: &iov) { iovp in
                        var msg = msghdr(msg_name: nil, msg_namelen: 0, msg_iov: iovp, msg_iovlen: 1,
                                         msg_control: ctl.baseAddress, msg_controllen: ctl.count, msg_flags: 0)
                        return recvmsg(conn, &msg, 0)
                    }
                }
            }
            guard n > 0 else { throw POSIXError(.EIO) }
            let level = control.withUnsafeBytes { $0.load(fromByteOffset: 8, as: Int32.self) }
            let type = control.withUnsafeBytes { $0.load(fromByteOffset: 12, as: Int32.self) }
            guard level == SOL_SOCKET, type == 1 /* SCM_RIGHTS */ else { throw POSIXError(.EPROTO) }
            let received = control.withUnsafeBytes { $0.load(fromByteOffset: 16, as: Int32.self) }
            var bytes = Array(name[0..<n])
            while rest {
                var q = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
                guard poll(&q, 1, 10_000) == 1 else { throw POSIXError(.ETIMEDOUT) }
                let m = name.withUnsafeMutableBytes { read(conn, $0.baseAddress, $0.count) }
                if m <= 0 { break }
                bytes += name[0..<m]
            }
            return (received, String(decoding: bytes, as: UTF8.self))
        }
    }

    @Test func execByProcessFileArgsAndConsoleSocket() throws {
        let box = try Sandbox()
        let out = box.dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let mounts = #", {"destination": "/out", "type": "bind", "source": "\#(out)", "options": ["rbind"]}"#
            + #", {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666", "mode=0620"]}"#
        let bundle = try OCITests().makeBundle(box, args: ["sleep", "1000"], extraMounts: mounts)
        defer {
            _ = try? box.gocker(["oci", "delete", "--force", "x1"])
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        // A container with a small capability set, no_new_privs and an rlimit.
        let caps = #"["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]"#
        let restricted = #""cwd": "/", "noNewPrivileges": true, "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}], "#
            + #""capabilities": {"bounding": \#(caps), "effective": \#(caps), "permitted": \#(caps)}}"#
        let config = box.contents(bundle + "/config.json").replacingOccurrences(of: #""cwd": "/"}"#, with: restricted)
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let run = try box.gocker(["oci", "run", "-d", "--bundle", bundle, "x1"])
        #expect(run.status == 0, "\(run.stderr)")
        let initPid = try #require(try OCITests().state(box, "x1")["pid"] as? Int)

        // The args form: flags on top of the container's own process.
        let args = try box.gocker(["oci", "exec", "--env", "Y=2", "--cwd", "/tmp", "--user", "65534:65534", "x1",
                                   "sh", "-c", "echo $Y $(pwd) $(id -u) $(id -g) $(hostname)"])
        #expect(args.status == 0, "\(args.stderr)")
        #expect(args.stdout == "2 /tmp 65534 65534 ocibox\n")
        let failed = try box.gocker(["oci", "exec", "x1", "sh", "-c", "exit 3"])
        #expect(failed.status == 3)

        // --process with --detach and --pid-file, as containerd calls it.
        let process = """
            {"args": ["sh", "-c", "echo $X > /out/from-exec; exec sleep 1000"], "env": ["PATH=/bin", "X=from-process"],
             "cwd": "/", "user": {"uid": 0, "gid": 0}}
            """
        try process.write(toFile: box.dir + "/process.json", atomically: true, encoding: .utf8)
        let pidFile = box.dir + "/exec.pid"
        let d = try box.gocker(["oci", "exec", "--process", box.dir + "/process.json", "--detach", "--pid-file", pidFile, "x1"])
        #expect(d.status == 0, "\(d.stderr)")
        let execPid = try #require(Int32(box.contents(pidFile)))
        #expect(box.waitFor { box.contents(out + "/from-exec") == "from-process\n" })
        #expect(link("/proc/\(execPid)/ns/pid") == link("/proc/\(initPid)/ns/pid"))
        #expect(link("/proc/\(execPid)/ns/mnt") == link("/proc/\(initPid)/ns/mnt"))
        // What the process file leaves out is the container's: its
        // capabilities, no_new_privs and rlimits, never gocker's own.
        func field(_ pid: Int32, _ key: String) -> String? {
            box.contents("/proc/\(pid)/status").split(separator: "\n").first { $0.hasPrefix(key + ":") }.map(String.init)
        }
        for key in ["CapEff", "CapBnd", "CapPrm", "NoNewPrivs"] {
            #expect(field(execPid, key) != nil && field(execPid, key) == field(Int32(initPid), key), "\(key)")
        }
        #expect(field(execPid, "CapEff") == "CapEff:\t00000000000000e1")
        let limits = box.contents("/proc/\(execPid)/limits").split(separator: "\n").first { $0.hasPrefix("Max open files") }
        #expect(limits?.split(separator: " ").filter { !$0.isEmpty }.dropFirst(3).prefix(2) == ["77", "88"], "\(limits ?? "")")

        // --tty with a console socket: the pty master arrives there.
        let console = try ConsoleSocket(path: box.dir + "/console.sock")
        let t = try box.gocker(["oci", "exec", "--tty", "--console-socket", console.path, "--detach", "x1",
                                "sh", "-c", "tty; sleep 1000"])
        #expect(t.status == 0, "\(t.stderr)")
        let (master, name) = try console.receive()
        defer { close(master) }
        #expect(name.hasPrefix("/dev/pts/"))
        #expect(readPTY(master, until: "/dev/pts/", box).contains("/dev/pts/"))

        // exec's failures exit 255, as runc's.
        let refused = try box.gocker(["oci", "exec", "--tty", "--detach", "x1", "true"])
        #expect(refused.status == 255 && refused.stderr.contains("console-socket"), "\(refused.stderr)")
        let unknown = try box.gocker(["oci", "exec", "nope", "true"])
        #expect(unknown.status == 255 && unknown.stderr.contains("does not exist"), "\(unknown.stderr)")

        // pause and resume, as podman calls them; no exec while paused.
        #expect(try box.gocker(["oci", "pause", "x1"]).status == 0)
        #expect(try OCITests().state(box, "x1")["status"] as? String == "paused")
        let whilePaused = try box.gocker(["oci", "exec", "x1", "true"])
        #expect(whilePaused.status == 255 && whilePaused.stderr.contains("paused"), "\(whilePaused.stderr)")
        let deletePaused = try box.gocker(["oci", "delete", "x1"])
        #expect(deletePaused.status == 1 && deletePaused.stderr.contains("paused"), "\(deletePaused.stderr)")
        #expect(try box.gocker(["oci", "resume", "x1"]).status == 0)
        #expect(try OCITests().state(box, "x1")["status"] as? String == "running")

        // Deleting the container ends its exec'd processes too.
        #expect(try box.gocker(["oci", "delete", "--force", "x1"]).status == 0)
        #expect(box.waitFor(5) { kill(execPid, 0) != 0 })
    }

    /// Reads the pty master until `text` shows, for up to 10 s.
    func readPTY(_ master: Int32, until text: String, _ box: Sandbox) -> String {
        var buf = [UInt8](repeating: 0, count: 256)
        var out = ""
        _ = box.waitFor {
            var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 {
                let n = Glibc.read(master, &buf, buf.count)
                if n > 0 { out += String(decoding: buf[0..<n], as: UTF8.self) }
            }
            return out.contains(text)
        }
        return out
    }

    @Test func createWithTerminalSendsThePtyToTheConsoleSocket() throws {
        let box = try Sandbox()
        let devpts = #", {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666", "mode=0620"]}"#
        let bundle = try OCITests().makeBundle(box, args: ["sh", "-c", "tty; stty size; read line; echo got-$line"], extraMounts: devpts)
        defer {
            _ = try? box.gocker(["oci", "delete", "--force", "t1"])
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let config = box.contents(bundle + "/config.json").replacingOccurrences(of: #""cwd": "/"}"#, with: #""cwd": "/", "terminal": true}"#)
        try config.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)

        let refused = try box.gocker(["oci", "create", "--bundle", bundle, "t1"])
        #expect(refused.status == 1 && refused.stderr.contains("--console-socket"), "\(refused.stderr)")
        #expect(box.stateLeft() == [] && box.cgroupsLeft() == [])

        let console = try ConsoleSocket(path: box.dir + "/console.sock")
        let c = try box.gocker(["oci", "create", "--bundle", bundle, "--console-socket", console.path, "t1"])
        #expect(c.status == 0, "\(c.stderr)")
        let (master, _) = try console.receive()
        defer { close(master) }
        // Created, its stdio already the terminal: nothing of create's own
        // output files (containerd's shim reads those pipes to their end).
        let pid = try #require(try OCITests().state(box, "t1")["pid"] as? Int)
        for fd in 0...2 {
            let target = link("/proc/\(pid)/fd/\(fd)")
            #expect(target.hasPrefix("/dev/pts/") && !target.contains(box.dir), "fd \(fd): \(target)")
        }
        var ws = winsize(ws_row: 21, ws_col: 77, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &ws)
        #expect(try box.gocker(["oci", "start", "t1"]).status == 0)
        #expect(readPTY(master, until: "21 77", box).contains("/dev/pts/0"))
        _ = "hello\n".withCString { write(master, $0, 6) }
        #expect(readPTY(master, until: "got-hello", box).contains("got-hello"))
        #expect(box.waitFor { (try? OCITests().state(box, "t1"))?["status"] as? String == "stopped" })
    }

    func link(_ path: String) -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "missing \(path)"
    }
}
