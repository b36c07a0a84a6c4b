import Foundation
import Testing

/// gocker on a pure cgroup v2 kernel: Debian's cloud kernel booted once
/// under qemu with software emulation (`cgroup_no_v1=all`), the fully static
/// release binary inside, both cgroup backends (limits, OOM, pids, devices,
/// stats, exec, pause, clone into the group, removal). The VM's init
/// (Tests/vm/init) prints what it read with a nonce given on the kernel
/// command line; this test checks the nonce and the values.
///
/// `./build.sh test` installs qemu and cpio, builds the release binary and
/// fetches the kernel into .build/vm first. Under CI a missing piece is a
/// failure; elsewhere the test is skipped without them.
@Suite(.enabled(if: VM.isCI || VM.missing.isEmpty, "needs \(VM.missing.joined(separator: ", ")): run ./build.sh test"))
struct CgroupV2VMTests {
    @Test func bothBackendsOnAPureV2Kernel() throws {
        guard VM.missing.isEmpty else {
            Issue.record("missing \(VM.missing.joined(separator: ", ")): ./build.sh test installs and builds them")
            return
        }
        #expect(VM.isStatic(VM.binary), "\(VM.binary) must be fully static: the VM has no shared libraries")
        let nonce = (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
        let lines = try VM.boot(nonce: nonce)

        // Every line of the VM's report carries this boot's nonce.
        // (The firmware's escape sequences may stand before the first one.)
        let report = lines.compactMap { line in line.range(of: "GKVM ").map { String(line[$0.lowerBound...]) } }
        #expect(!report.isEmpty, "the VM printed no report:\n\(lines.suffix(40).joined(separator: "\n"))")
        for line in report {
            #expect(line.hasPrefix("GKVM \(nonce) "), "a line from another run: \(line)")
        }
        var values: [String: String] = [:]
        for line in report where line.hasPrefix("GKVM \(nonce) ") {
            let fields = line.dropFirst("GKVM \(nonce) ".count).split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            let key = fields.prefix(2).joined(separator: " ")
            values[key] = fields.count > 2 ? String(fields[2]).trimmingCharacters(in: .whitespaces) : ""
        }
        #expect(values["done"] != nil, "the VM did not get to the end:\n\(lines.suffix(40).joined(separator: "\n"))")
        #expect(values["host fstype"] == "63677270", "cgroup2 at /sys/fs/cgroup")
        #expect(values["host controllers"]?.contains("memory") == true)

        // Rootless, in a subtree delegated to the user (memory and pids
        // handed down): the limits land in the container's group there; a
        // controller not handed down is refused; nothing is left.
        func r(_ key: String) -> String { values["rootless \(key)"] ?? "<none>" }
        #expect(r("run").hasPrefix("0 gocker: note: rl has no range in /etc/subuid"), "rootless run: \(r("run"))")
        #expect(r("limits").split(separator: " ").map(String.init) == ["0", "1000", "1", "67108864", "20"],
                "the user alone mapped, and its limits: \(r("limits"))")
        #expect(r("refused").hasPrefix("125 gocker: error: ") && r("refused").contains("cpu"), "\(r("refused"))")
        #expect(r("leftover") == "", "rootless groups left: \(r("leftover"))")

        for b in ["libcgroup", "cgroupfs"] {
            func v(_ key: String) -> String { values["\(b) \(key)"] ?? "<none>" }
            #expect(v("run-d") == "0", "\(b): run -d: \(v("run-d"))")
            #expect(v("group") == "present", "\(b)")
            #expect(v("memory.max") == "67108864", "\(b)")
            #expect(v("memory.swap.max") == "33554432", "\(b): --memory-swap 96m less -m 64m")
            #expect(v("memory.low") == "33554432", "\(b): --memory-reservation 32m")
            #expect(v("cpu.weight") == "20", "\(b): 512 shares")
            #expect(v("cpu.max") == "50000 100000", "\(b): --cpus 0.5")
            #expect(v("cpuset.cpus") == "1", "\(b)")
            #expect(v("pids.max") == "10", "\(b)")
            #expect(v("subtree_control").split(separator: " ").sorted() == ["cpu", "cpuset", "memory", "pids"], "\(b)")
            #expect(v("cpus_allowed") == "1", "\(b): Cpus_allowed_list inside")
            #expect(v("stats").contains("\"MemUsage\":\"") && v("stats").contains(" / 64MiB\""), "\(b): \(v("stats"))")
            // The container's cgroup namespace (private by default on v2,
            // as docker's) is rooted at its group: an exec that joined both
            // reads its root.
            #expect(v("exec") == "0::/", "\(b): exec joins the group: \(v("exec"))")
            #expect(v("paused") == "1 frozen 1", "\(b): pause through cgroup.freeze: \(v("paused"))")
            #expect(v("unpaused") == "0 frozen 0", "\(b): \(v("unpaused"))")
            #expect(v("rm") == "0", "\(b): \(v("rm"))")
            #expect(v("group-after-rm") == "gone", "\(b)")
            #expect(v("oom-exit") == "137", "\(b): \(v("oom-stderr"))")
            #expect(v("oom-stderr").contains("OOM-killed"), "\(b): \(v("oom-stderr"))")
            #expect(!v("oom-stdout").contains("survived"), "\(b)")
            let pids = Int(v("pids-count").split(separator: " ").first ?? "") ?? -1
            #expect(pids > 1 && pids <= 10, "\(b): pids.max stops the fork loop: \(v("pids-count"))")
            #expect(v("devices-default").hasPrefix("made null-ok |"), "\(b): \(v("devices-default"))")
            #expect(v("devices-default").contains("Operation not permitted"), "\(b): \(v("devices-default"))")
            #expect(v("devices-allowed").hasPrefix("wrote |"), "\(b): --device: \(v("devices-allowed"))")
            #expect(v("cgroupns") == "0::/", "\(b): cloned straight into its group: \(v("cgroupns"))")
            #expect(v("leftover") == "", "\(b): groups left: \(v("leftover"))")
            print("cgroup v2 VM, \(b): start of `gocker run --rm --timings busybox true`: \(v("timings"))")
        }

        // --- hugetlb (plugins/Hugetlb.swift): Tests/vm/init's hugetlb block.
        #expect(values["host hugepages"]?.contains("hugepages-2048kB") == true, "\(values["host hugepages"] ?? "<none>")")
        for b in ["libcgroup", "cgroupfs"] {
            func v(_ key: String) -> String { values["\(b) \(key)"] ?? "<none>" }
            #expect(v("hugetlb-run") == "0", "\(b): run --hugetlb-limit: \(v("hugetlb-run"))")
            #expect(v("hugetlb.2MB.max") == "4194304", "\(b): --hugetlb-limit 2MB:4MB")
            #expect(v("hugetlb-rm") == "0", "\(b): \(v("hugetlb-rm"))")
            #expect(v("hugetlb-group-after-rm") == "gone", "\(b)")
            #expect(v("hugetlb-3MB").hasPrefix("125 ") && v("hugetlb-3MB").contains("the host has no 3MB huge pages (it has 2MB"),
                    "\(b): \(v("hugetlb-3MB"))")
            print("cgroup v2 VM, \(b): hugetlb.2MB.max with --hugetlb-limit 2MB:4MB: \(v("hugetlb.2MB.max"))")
        }
        // --- end hugetlb
        // blkio (--blkio-weight 500, its own loop in the VM's init): this
        // kernel has the I/O cost model's io.weight and no BFQ, so the
        // weight is on io.weight's scale, read back as "default N".
        for b in ["libcgroup", "cgroupfs"] {
            func v(_ key: String) -> String { values["\(b) \(key)"] ?? "<none>" }
            #expect(v("blkio-run-d") == "0", "\(b): run -d --blkio-weight: \(v("blkio-run-d"))")
            #expect(v("blkio-group") == "present", "\(b)")
            #expect(v("io.weight") == "default 4950", "\(b): 1 + (500 - 10) * 9999 / 990")
            #expect(v("io.bfq.weight") == "-", "\(b): no BFQ on this kernel")
            #expect(v("blkio-rm") == "0", "\(b): \(v("blkio-rm"))")
            #expect(v("blkio-leftover") == "", "\(b): groups left: \(v("blkio-leftover"))")
        }
    }
}

/// Where the VM's pieces are, and the boot.
enum VM {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let binary = packageRoot + "/.build/release/gocker"
    static let kernelDir = packageRoot + "/.build/vm/kernel"
    static let qemu = "/usr/bin/qemu-system-x86_64"

    static var kernel: String? {
        let boot = kernelDir + "/boot"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: boot)) ?? []
        return names.first { $0.hasPrefix("vmlinuz-") }.map { "\(boot)/\($0)" }
    }

    static var missing: [String] {
        var out: [String] = []
        if !FileManager.default.isExecutableFile(atPath: qemu) { out.append("qemu-system-x86") }
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/cpio") && !FileManager.default.isExecutableFile(atPath: "/bin/cpio") {
            out.append("cpio")
        }
        if kernel == nil { out.append("the test kernel in .build/vm") }
        if !FileManager.default.isExecutableFile(atPath: binary) { out.append("the release binary") }
        return out
    }

    /// No program header of type PT_INTERP: no dynamic loader needed.
    static func isStatic(_ path: String) -> Bool {
        guard let h = FileManager.default.contents(atPath: path), h.count > 64, h.prefix(4) == Data([0x7f, 0x45, 0x4c, 0x46]) else {
            return false
        }
        func int(_ at: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(h[at + $1]) << (8 * $1) }
        }
        let phoff = int(32, 8), phentsize = int(54, 2), phnum = int(56, 2)
        for i in 0..<phnum where phoff + i * phentsize + 4 <= h.count {
            if int(phoff + i * phentsize, 4) == 3 { return false }
        }
        return true
    }

    /// Builds the initramfs, boots it and returns the serial console's lines.
    static func boot(nonce: String) throws -> [String] {
        let dir = NSTemporaryDirectory() + "gocker-vm-\(nonce)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let initrd = dir + "/initrd"
        let make = try run(packageRoot + "/Tests/vm/make-initramfs.sh", [initrd, binary, kernelDir], output: dir + "/make.out")
        guard make == 0 else {
            throw VMError("make-initramfs.sh failed: " + ((try? String(contentsOfFile: dir + "/make.out", encoding: .utf8)) ?? ""))
        }
        let console = dir + "/console.out"
        let status = try run(qemu, [
            "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "512", "-nographic", "-no-reboot",
            "-kernel", kernel!, "-initrd", initrd,
            "-append", "console=ttyS0 quiet panic=-1 cgroup_no_v1=all gocker.nonce=\(nonce)",
        ], output: console, timeout: 300)
        let text = (try? String(contentsOfFile: console, encoding: .utf8)) ?? ""
        let lines = text.replacingOccurrences(of: "\r", with: "").split(separator: "\n").map(String.init)
        guard status == 0 else { throw VMError("qemu exited with \(status):\n" + lines.suffix(40).joined(separator: "\n")) }
        return lines
    }

    /// Runs a program with its output in a file; kills it after `timeout` seconds.
    static func run(_ path: String, _ args: [String], output: String, timeout: Double = 60) throws -> Int32 {
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardOutput = FileHandle(forWritingAtPath: output)
        p.standardError = p.standardOutput
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw VMError("\(path) did not finish within \(Int(timeout)) s")
        }
        return p.terminationStatus
    }

    struct VMError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}
