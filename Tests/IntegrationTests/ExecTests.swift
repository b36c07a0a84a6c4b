import Foundation
import Testing

/// `gocker exec` and `gocker top`: a process that joins a running container,
/// each property checked by its effect.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct ExecTests {
    /// Starts a detached container running `sleep 1000`; returns its host pid.
    func startContainer(_ box: Sandbox, _ flags: [String] = []) throws -> Int32 {
        let run = try box.gocker(["run", "-d", "--name", "web"] + flags + ["busybox", "sleep", "1000"])
        #expect(run.status == 0, "\(run.stderr)")
        let inspect = try box.gocker(["inspect", "web"])
        let details = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]])
        let state = try #require(details.first?["State"] as? [String: Any])
        return Int32(try #require(state["Pid"] as? Int))
    }

    func exec(_ box: Sandbox, _ args: [String]) throws -> Sandbox.Result {
        try box.gocker(["exec"] + args)
    }

    func link(_ path: String) -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "missing \(path)"
    }

    /// Removes the container whatever happened, then checks nothing is left.
    func removeContainer(_ box: Sandbox) {
        _ = try? box.gocker(["rm", "-f", "web"])
        box.expectNothingLeft()
    }

    @Test func execJoinsEveryNamespaceAndCgroupAndKeepsTheDefences() throws {
        let box = try Sandbox()
        let pid1 = try startContainer(box, ["--hostname", "box1", "--security-opt", "no-new-privileges",
                                            "--ulimit", "nofile=123:456"])
        defer { removeContainer(box) }

        #expect(try exec(box, ["web", "hostname"]).stdout == "box1\n")
        // Its PID namespace: the container's sleep is PID 1 there.
        let ps = try exec(box, ["web", "ps", "-o", "pid,args"])
        #expect(ps.status == 0, "\(ps.stderr)")
        #expect(ps.stdout.split(separator: "\n").contains { $0.split(separator: " ").prefix(3) == ["1", "sleep", "1000"] }, "\(ps.stdout)")
        // The same namespaces as the container's first process, one by one.
        let names = ["mnt", "uts", "ipc", "net", "pid", "cgroup"]
        let script = names.map { "readlink /proc/self/ns/\($0)" }.joined(separator: "; ")
        let seen = try exec(box, ["web", "sh", "-c", script]).stdout.split(separator: "\n").map(String.init)
        #expect(seen == names.map { link("/proc/\(pid1)/ns/\($0)") })
        #expect(seen[0] != link("/proc/self/ns/mnt") && seen[3] != link("/proc/self/ns/net"))
        // Its root filesystem: a file written by exec lands in the container's upper layer.
        #expect(try exec(box, ["web", "sh", "-c", "echo from-exec > /exec-marker"]).status == 0)
        let id = try box.gocker(["ps", "-q", "--no-trunc"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(box.contents("\(box.dataRoot)/containers/\(id)/upper/exec-marker") == "from-exec\n")
        #expect(!FileManager.default.fileExists(atPath: "/exec-marker"))

        // The container's capabilities and no_new_privs, not gocker's.
        func status(_ text: String, _ key: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix(key + ":") }.map { String($0.dropFirst(key.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
        let own = try exec(box, ["web", "cat", "/proc/self/status"]).stdout
        let first = box.contents("/proc/\(pid1)/status")
        for key in ["CapEff", "CapPrm", "CapBnd", "NoNewPrivs"] {
            #expect(status(own, key) != nil && status(own, key) == status(first, key), "\(key)")
        }
        #expect(status(own, "NoNewPrivs") == "1")
        #expect(try exec(box, ["web", "sh", "-c", "ulimit -n; ulimit -Hn"]).stdout == "123\n456\n")
        // Nothing of gocker's open files reaches the command: only its stdio
        // (and ls's own directory descriptor).
        let fds = try exec(box, ["web", "ls", "/proc/self/fd"]).stdout.split(separator: "\n")
        #expect(fds.count <= 4 && fds.allSatisfy { ["0", "1", "2", "3"].contains($0) }, "\(fds)")
        #expect(status(own, "CapEff") != status(box.contents("/proc/self/status"), "CapEff"))
        // Masked paths stay masked: /proc/timer_list, not empty on the host, reads as /dev/null.
        #expect(!box.contents("/proc/timer_list").isEmpty)
        #expect(try exec(box, ["web", "sh", "-c", "wc -c < /proc/timer_list"]).stdout == "0\n")

        // exec -d returns at once and its process lives on, in every cgroup
        // of the container; top lists it; removing the container ends it.
        let d = try exec(box, ["-d", "web", "sh", "-c", "sleep 1000 || true"])
        #expect(d.status == 0 && d.stdout.isEmpty, "\(d.stderr)")
        let top = try box.gocker(["top", "web"])
        #expect(top.stdout.hasPrefix("UID"), "\(top.stdout)")
        let execRow = try #require(top.stdout.split(separator: "\n").first { $0.hasSuffix("sh -c sleep 1000 || true") }, "\(top.stdout)")
        let execPid = try #require(Int32(execRow.split(separator: " ")[1]))
        #expect(top.stdout.split(separator: "\n").contains { $0.split(separator: " ")[1] == "\(pid1)" })
        for controller in ["pids", "memory", "cpu", "cpuacct", "cpuset", "freezer", "devices"] {
            let procs = box.contents("/sys/fs/cgroup/\(controller)/\(box.cgroupParent)/\(id)/cgroup.procs")
            #expect(procs.split(separator: "\n").contains("\(execPid)"), "\(controller): \(procs)")
        }
        // (exec -d returns once sh runs; sh forks its sleep when it gets to it.)
        #expect(box.waitFor(5) { box.contents("/sys/fs/cgroup/pids/\(box.cgroupParent)/\(id)/pids.current").hasPrefix("3") },
                "sleep, sh and its sleep")
        let aux = try box.gocker(["top", "web", "-o", "pid,args"])
        let auxRows = aux.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(auxRows.first == "PID COMMAND" && auxRows.contains("\(execPid) sh -c sleep 1000 || true"), "\(aux.stdout)")

        #expect(try box.gocker(["rm", "-f", "web"]).status == 0)
        #expect(box.waitFor(5) { kill(execPid, 0) != 0 }, "the exec'd process ended with its container")
    }

    @Test func flagsExitStatusAndErrors() throws {
        let box = try Sandbox()
        _ = try startContainer(box)
        defer { removeContainer(box) }

        let envFile = box.dir + "/env"
        try "FROM_FILE=yes\n# a comment\n".write(toFile: envFile, atomically: true, encoding: .utf8)
        let r = try exec(box, ["-e", "X=1", "--env-file", envFile, "-w", "/tmp", "-u", "nobody", "web",
                               "sh", "-c", "echo $X $FROM_FILE $HOSTNAME; pwd; id -u; id -g"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 4 && lines[0].hasPrefix("1 yes ") && lines[1] == "/tmp" && lines[2] == "65534" && lines[3] == "65534", "\(r.stdout)")
        #expect(try exec(box, ["web", "sh", "-c", "exit 7"]).status == 7)
        #expect(try exec(box, ["web", "sh", "-c", "kill -TERM $$"]).status == 143)
        let missing = try exec(box, ["web", "no-such-command"])
        #expect(missing.status == 127 && missing.stderr.contains("executable file not found"), "\(missing.stderr)")
        #expect(try exec(box, ["web", "/etc/passwd"]).status == 126)
        let badDir = try exec(box, ["-w", "/no/such/dir", "web", "true"])
        #expect(badDir.status == 125 && badDir.stderr.contains("/no/such/dir"), "\(badDir.stderr)")
        #expect(try exec(box, ["-w", "relative", "web", "true"]).status == 125)
        let unknownUser = try exec(box, ["-u", "nosuchuser", "web", "true"])
        #expect(unknownUser.status == 125 && unknownUser.stderr.contains("nosuchuser"), "\(unknownUser.stderr)")
        // Standard input is passed through only with -i.
        #expect(try box.gocker(["exec", "-i", "web", "cat"], input: "typed\n").stdout == "typed\n")
        #expect(try box.gocker(["exec", "web", "cat"], input: "typed\n").stdout == "")
        let dt = try exec(box, ["-d", "-t", "web", "true"])
        #expect(dt.status == 125 && dt.stderr.contains("-d with -t"), "\(dt.stderr)")

        let unknown = try exec(box, ["nosuch", "true"])
        #expect(unknown.status == 125 && unknown.stderr == "gocker: error: No such container: nosuch\n", "\(unknown.stderr)")

        #expect(try box.gocker(["pause", "web"]).status == 0)
        let paused = try exec(box, ["web", "true"])
        #expect(paused.status == 125 && paused.stderr.contains("paused"), "\(paused.stderr)")
        #expect(try box.gocker(["unpause", "web"]).status == 0)
        #expect(try exec(box, ["web", "true"]).status == 0)

        #expect(try box.gocker(["stop", "-t", "0", "web"]).status == 0)
        let stopped = try exec(box, ["web", "true"])
        #expect(stopped.status == 125 && stopped.stderr.contains("is not running"), "\(stopped.stderr)")
        #expect(stopped.stderr.split(separator: "\n").count == 1)
        let topStopped = try box.gocker(["top", "web"])
        #expect(topStopped.status == 125 && topStopped.stderr.contains("is not running"))
    }

    @Test func execThroughATerminal() throws {
        let box = try Sandbox()
        _ = try startContainer(box)
        defer { removeContainer(box) }
        let pty = try TerminalTests.PTY()
        pty.setSize(rows: 33, cols: 111)
        let p = try pty.startGocker(["exec", "-it", "web", "sh"], in: box)
        pty.send("tty; stty size\n")
        #expect(pty.expect("33 111"), "\(pty.output)")
        #expect(pty.output.contains("/dev/pts/0"), "a pty of the container's own devpts: \(pty.output)")
        pty.setSize(rows: 40, cols: 120)
        kill(p.processIdentifier, SIGWINCH)
        let mark = pty.output.endIndex
        pty.send("stty size\n")
        #expect(pty.expect("40 120", after: mark), "\(pty.output)")
        pty.send("exit 5\n")
        box.finish(p)
        #expect(p.terminationStatus == 5)
    }

    @Test func twentyExecsAtOnce() throws {
        let box = try Sandbox()
        _ = try startContainer(box)
        defer { removeContainer(box) }
        let results = try (0..<20).map { n in
            try box.start(["exec", "web", "sh", "-c", "echo exec-\(n) $(hostname)"])
        }
        for (n, (p, out)) in results.enumerated() {
            box.finish(p, within: 60)
            #expect(p.terminationStatus == 0, "\(box.contents(out + ".err"))")
            #expect(box.contents(out).hasPrefix("exec-\(n) "), "\(box.contents(out))")
        }
    }
}
