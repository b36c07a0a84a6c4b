import Foundation
import GockerCgroups
import GockerCore
import Testing

/// The cgroup v2 device allow-list, an eBPF program, attached to a real
/// cgroup2 group: /sys/fs/cgroup on a pure v2 host, the unified hierarchy
/// (/sys/fs/cgroup/unified) on a hybrid one, which runs device programs too.
/// A shell joins the group and tries the devices.
@Suite(.enabled(if: canRunContainers, "attaches eBPF programs: needs root"))
struct DevicePolicyTests {
    /// The host's cgroup2 mount, from /proc/self/mountinfo.
    static var cgroup2Mount: String? {
        let lines = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n")
        for line in lines {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// Runs `script` in a shell that first moves itself into a new group
    /// with `rules` attached; returns its output (stdout and stderr).
    func run(_ rules: [DeviceRule], _ script: String) throws -> String {
        let mount = try #require(Self.cgroup2Mount, "no cgroup2 mount on this host")
        let name = "gocker-test-devices-\(getpid())-\(UUID().uuidString.prefix(8))"
        let dir = "\(mount)/\(name)"
        #expect(mkdir(dir, 0o755) == 0)
        defer { rmdir(dir) }
        try CgroupfsV2Backend(root: mount).attachDevicePolicy(rules, controller: "", path: name)
        let tmp = NSTemporaryDirectory() + "gocker-dev-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "echo $$ > \(dir)/cgroup.procs || exit 99; cd \(tmp); " + script]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 99, "could not join \(dir)")
        return text
    }

    let docker: [DeviceRule] = [
        DeviceRule(allow: false, type: "a", major: nil, minor: nil, access: "rwm"),
        DeviceRule(allow: true, type: "c", major: nil, minor: nil, access: "m"),
        DeviceRule(allow: true, type: "b", major: nil, minor: nil, access: "m"),
        DeviceRule(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
        DeviceRule(allow: true, type: "c", major: 1, minor: 5, access: "r"),
    ]

    @Test func anAllowListLetsThroughOnlyWhatItNames() throws {
        let out = try run(docker, """
            echo x > /dev/null && echo null-write
            head -c 1 /dev/zero > /dev/null && echo zero-read
            echo x > /dev/zero && echo zero-write
            head -c 1 /dev/urandom > /dev/null && echo urandom-read
            mknod blk b 7 0 && echo mknod-b
            mknod chr c 1 8 && echo mknod-c
            head -c 1 chr > /dev/null && echo made-read
            true
            """)
        #expect(out.contains("null-write"), "\(out)")
        #expect(out.contains("zero-read"), "an allow rule for r lets r through: \(out)")
        #expect(!out.contains("zero-write"), "but not w: \(out)")
        #expect(!out.contains("urandom-read"), "denied by the first rule: \(out)")
        #expect(out.contains("mknod-b") && out.contains("mknod-c"), "m is allowed for any node: \(out)")
        #expect(!out.contains("made-read"), "a node made is still not opened: \(out)")
        #expect(out.contains("Operation not permitted"), "\(out)")
    }

    @Test func theLastMatchingRuleDecidesAsOnV1() throws {
        let out = try run([
            DeviceRule(allow: true, type: "a", major: nil, minor: nil, access: "rwm"),
            DeviceRule(allow: false, type: "c", major: 1, minor: 3, access: "w"),
            DeviceRule(allow: false, type: "c", major: 1, minor: nil, access: "rwm"),
            DeviceRule(allow: true, type: "c", major: 1, minor: 9, access: "rwm"),
        ], """
            head -c 0 /dev/null && echo null-read
            echo x > /dev/null && echo null-write
            head -c 1 /dev/zero > out && echo zero-read
            head -c 1 /dev/urandom > out && echo urandom-read
            true
            """)
        #expect(!out.contains("null-read"), "c 1:* denied after: \(out)")
        #expect(!out.contains("null-write") && !out.contains("zero-read"), "\(out)")
        #expect(out.contains("urandom-read"), "the last rule allows c 1:9: \(out)")
    }

    @Test func aRuleTheKernelCannotTakeIsAnError() throws {
        let mount = try #require(Self.cgroup2Mount)
        // A real group, so that only the rule can be what is refused: a
        // major past the kernel's 12 bits (it would not fit the program's
        // 32-bit immediate either).
        let name = "gocker-test-bigmajor-\(getpid())"
        #expect(mkdir("\(mount)/\(name)", 0o755) == 0)
        defer { rmdir("\(mount)/\(name)") }
        let error = #expect(throws: GockerError.self) {
            try CgroupfsV2Backend(root: mount).attachDevicePolicy(
                [DeviceRule(allow: false, type: "c", major: 0x1000, minor: nil, access: "r")], controller: "", path: name)
        }
        #expect(error?.description.contains("bpf") == true, "\(String(describing: error))")
        // A directory that is not a cgroup: refused, never ignored.
        let dir = NSTemporaryDirectory() + "gocker-notcg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: GockerError.self) {
            try CgroupfsV2Backend(root: dir).attachDevicePolicy(docker, controller: "", path: "")
        }
    }
}
