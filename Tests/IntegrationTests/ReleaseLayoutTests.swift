import Foundation
import Testing

/// The release binary's code in 2 MB pages (`./build.sh release`): its
/// segments start on 2 MB boundaries, in the file as in memory, and it is
/// written out in 2 MB writes, so that the page cache holds it in 2 MB
/// folios and a start maps its code with a few 2 MB entries. Checked on the
/// binary's program headers, then on a real start: a copy of it written the
/// way `./build.sh release` writes it (the release binary's own page cache
/// may have been dropped since the build, and read back in 4 KB folios),
/// running a container, has its code so mapped (FilePmdMapped in its
/// /proc/PID/smaps). A probe file written the same way first shows that
/// this kernel and file system can keep 2 MB folios at all.
@Suite(.enabled(if: canRunContainers && (VM.isCI || FileManager.default.isExecutableFile(atPath: VM.binary)),
                "needs root and the release binary: run ./build.sh test"))
struct ReleaseLayoutTests {
    static let twoMB = 2 << 20

    /// A file of /proc read to its end ("" if it cannot be opened): its
    /// size says 0, and Foundation's readers stop after a first block.
    static func procFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += block[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// FilePmdMapped, in kB, summed over the mappings of `smaps` whose
    /// header `matches`; nil when none does.
    static func pmdMapped(_ smaps: String, _ matches: (Substring) -> Bool) -> Int? {
        var total: Int?
        var inside = false
        for line in smaps.split(separator: "\n") {
            let first = line.split(separator: " ", maxSplits: 1).first ?? ""
            if first.contains("-") && first.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                inside = matches(line)
                if inside && total == nil { total = 0 }
            } else if inside && line.hasPrefix("FilePmdMapped:") {
                total! += Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            }
        }
        return total
    }

    /// Writes `bytes` to a new file at `path` in 2 MB writes, as `./build.sh
    /// release` writes the binary (`dd bs=2M`).
    static func writeInTwoMegabyteWrites(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        var at = 0
        while at < bytes.count {
            let n = min(twoMB, bytes.count - at)
            let wrote = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + at, n) }
            guard wrote == n else { throw POSIXError(.EIO) }
            at += n
        }
    }

    /// The (file offset, address) of each loadable segment of an ELF file.
    static func loadSegments(_ h: [UInt8]) -> [(offset: Int, address: Int)] {
        guard h.count > 64, h.prefix(4) == [0x7f, 0x45, 0x4c, 0x46] else { return [] }
        func int(_ at: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(h[at + $1]) << (8 * $1) }
        }
        let phoff = int(32, 8), phentsize = int(54, 2), phnum = int(56, 2)
        return (0..<phnum).compactMap { i in
            let at = phoff + i * phentsize
            guard at + 24 <= h.count, int(at, 4) == 1 else { return nil }  // PT_LOAD
            return (int(at + 8, 8), int(at + 16, 8))
        }
    }

    /// Whether a file written in 2 MB writes in `dir` is mapped with a 2 MB
    /// entry when it is read through a 2 MB-aligned mapping.
    static func kernelKeepsTwoMegabyteFolios(in dir: String) throws -> Bool {
        let path = dir + "/layout-probe-\(UUID().uuidString)"
        defer { unlink(path) }
        try writeInTwoMegabyteWrites([UInt8](repeating: 0x5a, count: 2 * twoMB), to: path, mode: 0o600)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        // A 2 MB-aligned window of address space, the file's first 2 MB on it.
        guard let area = mmap(nil, 2 * twoMB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), area != MAP_FAILED else {
            throw POSIXError(.ENOMEM)
        }
        defer { munmap(area, 2 * twoMB) }
        let aligned = (UInt(bitPattern: area) + UInt(twoMB - 1)) & ~UInt(twoMB - 1)
        guard let at = UnsafeMutableRawPointer(bitPattern: aligned),
              mmap(at, twoMB, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED else {
            throw POSIXError(.ENOMEM)
        }
        #expect(at.load(as: UInt8.self) == 0x5a)
        let smaps = procFile("/proc/self/smaps")
        let start = String(aligned, radix: 16)
        return (pmdMapped(smaps) { $0.hasPrefix(start + "-") } ?? 0) > 0
    }

    @Test func aStartMapsTheReleaseCodeInTwoMegabytePages() throws {
        guard FileManager.default.isExecutableFile(atPath: VM.binary) else {
            Issue.record("no release binary at \(VM.binary): ./build.sh test builds it")
            return
        }
        let image = try #require(FileManager.default.contents(atPath: VM.binary).map { [UInt8]($0) })
        let segments = Self.loadSegments(image)
        #expect(segments.count >= 2, "no loadable segments read from \(VM.binary)")
        for s in segments {
            #expect(s.offset % Self.twoMB == 0 && s.address % Self.twoMB == 0,
                    "a segment at offset \(s.offset), address \(s.address): not on a 2 MB boundary")
        }
        let dir = (VM.binary as NSString).deletingLastPathComponent
        guard try Self.kernelKeepsTwoMegabyteFolios(in: dir) else {
            // Nothing more to check where the kernel maps no file in 2 MB
            // pages; CI's machines do.
            if VM.isCI { Issue.record("this kernel or file system keeps no 2 MB folios") }
            print("ReleaseLayoutTests: this kernel or file system keeps no 2 MB folios: not checked")
            return
        }
        // The path the kernel shows, symbolic links resolved.
        let realDir = try #require(realpath(dir, nil).map { p in
            defer { free(p) }
            return String(cString: p)
        })
        let binary = realDir + "/gocker-layout-\(UUID().uuidString)"
        defer { unlink(binary) }
        try Self.writeInTwoMegabyteWrites(image, to: binary, mode: 0o755)
        let box = try Sandbox()
        let bundle = try OCITests().makeBundle(box, args: ["sleep", "1"])
        defer {
            try? FileManager.default.removeItem(atPath: bundle + "/rootfs")
            box.expectNothingLeft()
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["oci", "run", "--bundle", bundle, "layout"]
        p.environment = box.environment
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // While its container sleeps, gocker's code is mapped as it ran it.
        var code: Int?
        _ = box.waitFor(5) {
            let smaps = Self.procFile("/proc/\(p.processIdentifier)/smaps")
            if let kB = Self.pmdMapped(smaps, { $0.contains(" r-xp ") && $0.hasSuffix(" " + binary) }) {
                code = max(code ?? 0, kB)
            }
            return (code ?? 0) > 0 || !p.isRunning
        }
        box.finish(p)
        #expect(p.terminationStatus == 0)
        let kB = try #require(code, "no code mapping of \(binary) seen in the running gocker")
        #expect(kB >= 2048, "the release gocker's code is mapped in 4 KB pages only")
    }
}
