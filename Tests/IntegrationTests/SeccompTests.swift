import Foundation
import Testing

/// seccomp: docker's default profile in `gocker run`, the flags that lift
/// it or replace it, and an OCI config's own profile for `oci run` and
/// `oci exec`.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct SeccompTests {
    /// A static program that makes the key-management calls busybox has no
    /// applet for and prints the errno each got (0: allowed).
    func keyProgram(_ box: Sandbox) throws -> String {
        let dir = box.dir + "/keys"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let source = """
            #include <errno.h>
            #include <stdio.h>
            #include <sys/syscall.h>
            #include <unistd.h>
            int main(void) {
                errno = 0;
                long r = syscall(SYS_add_key, "user", "k", "v", 1, -2 /* session keyring */);
                printf("add_key %d\\n", r < 0 ? errno : 0);
                errno = 0;
                r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2, 0);
                printf("keyctl %d\\n", r < 0 ? errno : 0);
                return 0;
            }
            """
        try source.write(toFile: dir + "/keys.c", atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        cc.arguments = ["-static", "-o", dir + "/keys", dir + "/keys.c"]
        try cc.run()
        cc.waitUntilExit()
        try #require(cc.terminationStatus == 0, "cc -static (gcc, libc6-dev) builds the test program")
        return dir
    }

    func seccompField(_ status: String) -> String? {
        status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }.map { String($0.dropFirst(8)).trimmingCharacters(in: .whitespaces) }
    }

    static let probe = "grep Seccomp: /proc/self/status; unshare -U true && echo unshared; "
        + "mount -t tmpfs none /mnt && echo mounted; /keys/keys"

    @Test func dockersDefaultProfile() throws {
        let box = try Sandbox()
        let keys = try keyProgram(box)
        let r = try box.gocker(["run", "--name", "sc", "-v", "\(keys):/keys", "busybox", "sh", "-c", Self.probe])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(seccompField(r.stdout) == "2", "\(r.stdout)")
        #expect(!r.stdout.contains("unshared"))
        #expect(r.stderr.contains("unshare(0x10000000): Operation not permitted"), "\(r.stderr)")
        #expect(!r.stdout.contains("mounted"))
        #expect(r.stdout.contains("add_key 1\n") && r.stdout.contains("keyctl 1\n"), "EPERM: \(r.stdout)")
        let inspect = try box.gocker(["inspect", "sc"])
        #expect(inspect.stdout.contains(#""Seccomp": "default""#) || inspect.stdout.contains(#""Seccomp":"default""#),
                "\(inspect.stdout)")
        // config.json holds the profile, as runc would be given it.
        let shown = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        let id = try #require(shown?.first?["Id"] as? String)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(box.dataRoot)/containers/\(id)/config.json")))
        let seccomp = ((config as? [String: Any])?["linux"] as? [String: Any])?["seccomp"] as? [String: Any]
        #expect(seccomp?["defaultAction"] as? String == "SCMP_ACT_ERRNO")
        let allowed = (seccomp?["syscalls"] as? [[String: Any]])?.first?["names"] as? [String] ?? []
        #expect(allowed.contains("accept4") && !allowed.contains("unshare"), "\(allowed.count) names")
        #expect(try box.gocker(["rm", "sc"]).status == 0)
        // The compiled program, and config.json's text of the profile, were
        // kept for the next start.
        let kept = box.list(box.dataRoot + "/seccomp")
        #expect(kept.count == 2 && kept.contains { $0.hasSuffix(".bpf") } && kept.contains { $0.hasSuffix(".json") }, "\(kept)")

        // `gocker exec` in such a container runs under the same filter.
        let d = try box.gocker(["run", "-d", "--name", "sce", "busybox", "sleep", "60"])
        #expect(d.status == 0, "\(d.stderr)")
        let e = try box.gocker(["exec", "sce", "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true && echo unshared"])
        #expect(seccompField(e.stdout) == "2" && !e.stdout.contains("unshared"), "\(e.stdout)\(e.stderr)")
        #expect(try box.gocker(["rm", "-f", "sce"]).status == 0)
        box.expectNothingLeft()
    }

    /// The filter goes on while the parent saves the state when it lets
    /// through what the first process does before `start` reaches it: a
    /// created container then waits for `start` under it already. A profile
    /// that refuses one of those calls (prctl, here, only with the
    /// arguments of the one gocker makes) is loaded after `start`, which it
    /// therefore cannot keep out, and still applies to the command.
    @Test func loadedBeforeStartOnlyWhenWhatFollowsGetsThrough() throws {
        let box = try Sandbox()
        let out = #", {"destination": "/out", "type": "bind", "source": "\#(box.dir)", "options": ["rbind"]}"#
        let noPrctl = #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["prctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#
        for (id, profile, waiting) in [("early", Self.noMkdir, "2"), ("late", noPrctl, "0")] {
            let bundle = try ociBundle(box, args: ["sh", "-c", "grep Seccomp: /proc/self/status > /out/\(id)"], seccomp: profile,
                                       extraMounts: out)
            let c = try box.gocker(["oci", "create", "--bundle", bundle, id])
            #expect(c.status == 0, "\(c.stderr)")
            let pid = try #require(try OCITests().state(box, id)["pid"] as? Int)
            #expect(seccompField(try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) == waiting, "\(id)")
            #expect(try box.gocker(["oci", "start", id]).status == 0)
            #expect(box.waitFor { seccompField(box.contents(box.dir + "/\(id)")) == "2" }, "\(id): \(box.contents(box.dir + "/\(id)"))")
            #expect(try box.gocker(["oci", "delete", "--force", id]).status == 0)
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
        }
        box.expectNothingLeft()
    }

    @Test(arguments: [["--security-opt", "seccomp=unconfined"], ["--privileged"]])
    func unconfinedAndPrivilegedLiftIt(flags: [String]) throws {
        let box = try Sandbox()
        let keys = try keyProgram(box)
        let r = try box.gocker(["run", "--name", "free"] + flags + ["-v", "\(keys):/keys", "busybox", "sh", "-c", Self.probe])
        #expect(seccompField(r.stdout) == "0", "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("unshared"))
        #expect(!r.stdout.contains("add_key 1\n") && !r.stdout.contains("keyctl 1\n"), "\(r.stdout)")
        let inspect = try box.gocker(["inspect", "free"])
        #expect(inspect.stdout.contains("unconfined"))
        #expect(try box.gocker(["rm", "free"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func profileFiles() throws {
        let box = try Sandbox()
        // docker's form: archMap, name, includes.
        let good = box.dir + "/nomkdir.json"
        try """
            {"defaultAction": "SCMP_ACT_ALLOW",
             "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                         {"architecture": "SCMP_ARCH_AARCH64"}],
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                          {"name": "rmdir", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
            """.write(toFile: good, atomically: true, encoding: .utf8)
        let r = try box.gocker(["run", "--rm", "--security-opt", "seccomp=\(good)", "busybox", "sh", "-c",
                                "grep Seccomp: /proc/self/status; mkdir /tmp/d && echo made; unshare -U true && echo unshared"])
        #expect(seccompField(r.stdout) == "2", "\(r.stdout)\(r.stderr)")
        #expect(!r.stdout.contains("made"))
        #expect(r.stderr.contains("Permission denied"), "EACCES: \(r.stderr)")
        #expect(r.stdout.contains("unshared"), "the file replaces docker's profile")

        for (text, names) in [
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}"#, "SCMP_ACT_BOGUS"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]}"#, "nosuchcall"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}"#, "SCMP_CMP_ALMOST"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#, "SCMP_ARCH_VAX"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}"#, "SECCOMP_FILTER_FLAG_NOPE"),
            (#"{"defaultAction": "#, "seccomp profile"),
        ] {
            let bad = box.dir + "/bad.json"
            try text.write(toFile: bad, atomically: true, encoding: .utf8)
            let b = try box.gocker(["run", "--rm", "--security-opt", "seccomp=\(bad)", "busybox", "true"])
            #expect(b.status == 125, "\(text)")
            #expect(b.stderr.contains(names) && b.stderr.split(separator: "\n").count == 1, "\(b.stderr)")
        }
        let missing = try box.gocker(["create", "--security-opt", "seccomp=/nonexistent.json", "busybox", "true"])
        #expect(missing.status == 125 && missing.stderr.contains("/nonexistent.json"), "\(missing.stderr)")
        box.expectNothingLeft()
    }

    /// A bundle whose config refuses mkdir with EACCES.
    func ociBundle(_ box: Sandbox, args: [String], seccomp: String, extraMounts: String = "") throws -> String {
        let bundle = try OCITests().makeBundle(box, args: args, extraMounts: extraMounts)
        let path = bundle + "/config.json"
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var linux = config["linux"] as? [String: Any] ?? [:]
        linux["seccomp"] = try JSONSerialization.jsonObject(with: Data(seccomp.utf8))
        config["linux"] = linux
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return bundle
    }

    static let noMkdir = """
        {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
         "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                      {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                      {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]}]}
        """

    @Test func ociConfigProfileAppliesToRunAndExec() throws {
        let box = try Sandbox()
        let script = "grep Seccomp: /proc/self/status; mkdir /tmp/a && echo made; touch /tmp/f; "
            + "chmod 777 /tmp/f && echo chmod777; chmod 644 /tmp/f && echo chmod644"
        let bundle = try ociBundle(box, args: ["sh", "-c", script], seccomp: Self.noMkdir)
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "sc1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(seccompField(r.stdout) == "2", "\(r.stdout)")
        #expect(!r.stdout.contains("made") && r.stderr.contains("Permission denied"), "\(r.stdout)\(r.stderr)")
        #expect(!r.stdout.contains("chmod777") && r.stdout.contains("chmod644"), "an argument condition: \(r.stdout)")
        _ = try box.gocker(["oci", "delete", "--force", "sc1"])

        // An exec'd process runs under the container's filter.
        try JSONSerialization.data(withJSONObject: try {
            var c = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))) as? [String: Any])
            var p = c["process"] as! [String: Any]
            p["args"] = ["sleep", "100"]
            c["process"] = p
            return c
        }()).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        #expect(try box.gocker(["oci", "run", "-d", "--bundle", bundle, "sc2"]).status == 0)
        // The filter is the one the container was created with: a later edit
        // of the bundle's config (no seccomp at all) changes nothing.
        try JSONSerialization.data(withJSONObject: try {
            var c = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))) as? [String: Any])
            var linux = c["linux"] as! [String: Any]
            linux["seccomp"] = nil
            c["linux"] = linux
            return c
        }()).write(to: URL(fileURLWithPath: bundle + "/config.json"))
        let e = try box.gocker(["oci", "exec", "sc2", "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/b && echo made"])
        #expect(seccompField(e.stdout) == "2", "\(e.stdout)\(e.stderr)")
        #expect(!e.stdout.contains("made") && e.stderr.contains("Permission denied"), "\(e.stdout)\(e.stderr)")
        #expect(try box.gocker(["oci", "delete", "--force", "sc2"]).status == 0)

        // A non-root user, no capabilities listed, no no_new_privs: the
        // filter still loads (CAP_SYS_ADMIN kept until then), and the
        // command has no capability left.
        let user = try ociBundle(box, args: ["sh", "-c", "id -u; grep -E 'Seccomp:|CapEff:|CapPrm:' /proc/self/status; mkdir /tmp/u && echo made; true"],
                                 seccomp: Self.noMkdir)
        try JSONSerialization.data(withJSONObject: try {
            var c = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: user + "/config.json"))) as? [String: Any])
            var p = c["process"] as! [String: Any]
            p["user"] = ["uid": 1000, "gid": 1000]
            c["process"] = p
            return c
        }()).write(to: URL(fileURLWithPath: user + "/config.json"))
        let u = try box.gocker(["oci", "run", "--bundle", user, "sc4"])
        #expect(u.status == 0, "\(u.stderr)")
        #expect(u.stdout.hasPrefix("1000\n") && seccompField(u.stdout) == "2", "\(u.stdout)")
        #expect(u.stdout.contains("CapEff:\t0000000000000000") && u.stdout.contains("CapPrm:\t0000000000000000"), "\(u.stdout)")
        #expect(!u.stdout.contains("made") && u.stderr.contains("Permission denied"), "\(u.stdout)\(u.stderr)")
        _ = try box.gocker(["oci", "delete", "--force", "sc4"])

        // SCMP_ACT_NOTIFY: the listener goes to listenerPath with the
        // container process state (runtime-spec), as the engine's agent
        // receives it; a call nobody makes here (acct) is the one notified.
        let agent = try OCIExecTests.ConsoleSocket(path: box.dir + "/agent.sock")
        let notifying = try ociBundle(box, args: ["true"], seccomp: """
            {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "\(agent.path)", "listenerMetadata": "meta-1",
             "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}]}
            """)
        let nr = try box.gocker(["oci", "run", "--bundle", notifying, "sc5"])
        #expect(nr.status == 0, "\(nr.stderr)")
        let (listener, text) = try agent.receive(max: 4096, rest: true)
        defer { if listener >= 0 { close(listener) } }
        #expect(listener >= 0)
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(listener)")) ?? ""
        #expect(target == "anon_inode:seccomp notify", "\(target)")
        let sent = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        #expect(sent["fds"] as? [String] == ["seccompFd"] && sent["metadata"] as? String == "meta-1", "\(text)")
        let inner = try #require(sent["state"] as? [String: Any], "\(text)")
        #expect(inner["id"] as? String == "sc5" && (inner["pid"] as? Int ?? 0) > 0 && inner["pid"] as? Int == sent["pid"] as? Int,
                "\(text)")
        _ = try box.gocker(["oci", "delete", "--force", "sc5"])

        // A bad profile is refused before anything is made.
        let bad = try ociBundle(box, args: ["true"], seccomp: #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_EVERYONE"}]}"#)
        let b = try box.gocker(["oci", "run", "--bundle", bad, "sc3"])
        #expect(b.status != 0 && b.stderr.contains("SCMP_ACT_KILL_EVERYONE") && b.stderr.split(separator: "\n").count == 1,
                "\(b.stderr)")
        box.expectNothingLeft()
    }
}
