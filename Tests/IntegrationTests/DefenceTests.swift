import Foundation
import Testing

/// Docker's default defences inside a container, and the flags that change them.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct DefenceTests {
    func capEff(_ status: String) -> String? {
        status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .map { String($0.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
    }

    @Test func defaultCapabilitiesMaskedAndReadOnlyPaths() throws {
        let box = try Sandbox()
        let masked = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"]
            .filter { FileManager.default.fileExists(atPath: $0) }
        try #require(!masked.isEmpty, "the host has none of the masked /proc files")
        let script = "cat /proc/self/status; echo ---; for f in \(masked.joined(separator: " ")); do wc -c < $f; done; "
            + "echo ---; ls -A /sys/firmware | wc -l; echo 1 > /proc/sysrq-trigger && echo sysrq-written; "
            + "echo 1 > /proc/sys/kernel/panic && echo sys-written; echo done"
        let r = try box.gocker(["run", "--rm", "busybox", "sh", "-c", script])
        #expect(r.status == 0, "\(r.stderr)")
        let parts = r.stdout.components(separatedBy: "---\n")
        #expect(capEff(parts[0]) == "00000000a80425fb", "docker's default set")
        #expect(parts[0].contains("CapBnd:\t00000000a80425fb"))
        #expect(parts[1].split(separator: "\n").allSatisfy { $0.trimmingCharacters(in: .whitespaces) == "0" }, "\(parts[1])")
        #expect(parts[2].hasPrefix("0\n"), "/sys/firmware is empty")
        #expect(!r.stdout.contains("sysrq-written"))
        #expect(!r.stdout.contains("sys-written"))
        #expect(r.stdout.hasSuffix("done\n"))
        box.expectNothingLeft()
    }

    @Test func privilegedHasEveryCapabilityAndNoMasks() throws {
        let box = try Sandbox()
        let mine = try #require(capEff(try String(contentsOfFile: "/proc/self/status", encoding: .utf8)))
        let r = try box.gocker(["run", "--rm", "--privileged", "busybox", "sh", "-c",
                                "cat /proc/self/status; mount | grep ' /proc/sys ' || echo no-ro-proc-sys"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(capEff(r.stdout) == mine)
        #expect(r.stdout.contains("no-ro-proc-sys"))
        box.expectNothingLeft()
    }

    @Test func capDropAndAdd() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "busybox",
                                "sh", "-c", "grep CapEff /proc/self/status; chown nobody /tmp && echo chowned"])
        #expect(r.stdout.contains("CapEff:\t0000000000000400"), "\(r.stdout)")
        #expect(!r.stdout.contains("chowned"))
        let bad = try box.gocker(["run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true"])
        #expect(bad.status == 125 && bad.stderr.contains("NOT_A_CAP"))
        box.expectNothingLeft()
    }

    @Test func readOnlyRoot() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--read-only", "busybox", "sh", "-c",
                                "touch /file && echo wrote-root; touch /tmp/x && echo wrote-tmp; echo > /dev/shm/ok && echo shm-ok"])
        #expect(!r.stdout.contains("wrote-root"))
        #expect(!r.stdout.contains("wrote-tmp"))
        #expect(r.stdout.contains("shm-ok"))
        #expect(r.stderr.contains("Read-only file system"))
        box.expectNothingLeft()
    }

    @Test func usersAndGroupsComeFromTheContainersFiles() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "-u", "nobody", "busybox", "sh", "-c",
                                "id -u; id -g; echo $HOME; echo x >> /etc/passwd && echo wrote; grep CapEff /proc/self/status"])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.prefix(3) == ["65534", "65534", "/nonexistent"], "\(r.stdout)\(r.stderr)")
        #expect(!r.stdout.contains("wrote"))
        #expect(r.stdout.contains("CapEff:\t0000000000000000"))
        let g = try box.gocker(["run", "--rm", "-u", "65534:tty", "--group-add", "root", "--group-add", "1234", "busybox", "id"])
        #expect(g.stdout.hasPrefix("uid=65534(nobody) gid=5(tty) groups="), "\(g.stdout)")
        #expect(g.stdout.contains("0(root)") && g.stdout.contains("1234"))
        let numeric = try box.gocker(["run", "--rm", "-u", "4321", "busybox", "sh", "-c", "id -u; echo $HOME"])
        #expect(numeric.stdout == "4321\n/\n")
        let missing = try box.gocker(["run", "--rm", "-u", "nosuchuser", "busybox", "true"])
        #expect(missing.status == 125)
        #expect(missing.stderr.contains("unable to find user nosuchuser"))
        let badGroup = try box.gocker(["run", "--rm", "-u", "nobody:nosuchgroup", "busybox", "true"])
        #expect(badGroup.status == 125 && badGroup.stderr.contains("nosuchgroup"))
        box.expectNothingLeft()
    }

    @Test func ulimitsAndNoNewPrivileges() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--ulimit", "nofile=100:200", "--security-opt", "no-new-privileges",
                                "busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn; grep NoNewPrivs /proc/self/status"])
        #expect(r.stdout == "100\n200\nNoNewPrivs:\t1\n", "\(r.stderr)")
        var hard = rlimit()
        getrlimit(__rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue)), &hard)
        if hard.rlim_max != rlim_t.max && ProcessInfo.processInfo.environment["CI"] != nil || hard.rlim_max < 1_000_000 {
            let tooHigh = try box.gocker(["run", "--rm", "--ulimit", "nofile=10:\(hard.rlim_max + 1)", "busybox", "true"])
            #expect(tooHigh.status == 125 && tooHigh.stderr.contains("hard limit"), "\(tooHigh.stderr)")
        }
        box.expectNothingLeft()
    }

    @Test func initIsPID1ReapsAndForwards() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "--rm", "--init", "busybox", "sh", "-c",
                                "echo $$; (sleep 0.1 &); sleep 0.5; ps -o pid,stat,comm; exit 6"])
        #expect(r.status == 6, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.first == "2", "the command is PID 2")
        #expect(lines.contains { $0.hasPrefix("1 ") && $0.hasSuffix("init") }, "\(r.stdout)")
        #expect(!lines.contains { $0.split(separator: " ").dropFirst().first?.hasPrefix("Z") == true }, "no zombie: \(r.stdout)")

        try box.expectTERMReachesTheContainer(["--init"])
        box.expectNothingLeft()
    }
}
