import CGockerCore
import Glibc
import GockerCore
import Testing

/// csrc/libcgroup_mounts.c: inside a libcgroup call, the thread's opens of
/// /proc/mounts read one copy of the table; everything else reads the
/// kernel's.
@Suite(.serialized) struct LibcgroupMountsTests {
    /// The text of `path` read through fopen, as libcgroup reads it.
    static func readThroughFopen(_ path: String = "/proc/mounts") -> String? {
        guard let f = fopen(path, "re") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n == 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func insideLibcgroup<T>(_ body: () -> T) -> T {
        gk_libcgroup_enter()
        defer { gk_libcgroup_leave() }
        return body()
    }

    @Test func aMountMadeAfterTheCopyIsSeenOnlyOutsideLibcgroup() throws {
        // The copy exists from here on (made now, or by an earlier call).
        let copy = try #require(Self.insideLibcgroup { Self.readThroughFopen() })
        #expect(copy.contains(" /proc proc "))

        var template = Array("/tmp/gocker-mounts-XXXXXX".utf8CString)
        let dir = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { rmdir(dir) }
        try #require(mount("gocker-test", dir, "tmpfs", 0, "size=4k") == 0, "mount: \(errno)")
        defer { umount2(dir, Int32(MNT_DETACH)) }

        let outside = try #require(Self.readThroughFopen())
        #expect(outside.contains(" \(dir) tmpfs "))
        let inside = try #require(Self.insideLibcgroup { Self.readThroughFopen() })
        #expect(inside == copy)
        #expect(!inside.contains(dir))
        // Another thread is not inside libcgroup while this one is.
        let other = Self.insideLibcgroup { Background { Self.readThroughFopen() }.value() }
        #expect(other?.contains(" \(dir) tmpfs ") == true)
        // Only /proc/mounts, and only for reading.
        let mountinfo = Self.insideLibcgroup { Self.readThroughFopen("/proc/self/mountinfo") }
        #expect(mountinfo?.contains(dir) == true)
    }
}
