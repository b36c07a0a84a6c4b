import Glibc
import Testing
@testable import GockerCore

struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func knownVectors(input: String, digest: String) {
        #expect(SHA256.hash(Array(input.utf8)).hex == digest)
    }

    @Test func millionAsInPieces() {
        var h = SHA256()
        for _ in 0..<1000 { h.update([UInt8](repeating: UInt8(ascii: "a"), count: 1000)) }
        #expect(h.finalize().hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

struct IdentifierTests {
    @Test func newIDsAre64HexDigitsAndDiffer() {
        let a = Identifier.newContainerID(), b = Identifier.newContainerID()
        #expect(a.count == 64 && a.allSatisfy(\.isHexDigit))
        #expect(a != b)
    }

    @Test(arguments: ["abc", "my-box_1.2", "a+b", String(repeating: "x", count: 1024)])
    func validIDs(id: String) throws { try Identifier.validateContainerID(id) }

    @Test(arguments: ["", ".", "..", "../x", "a/b", "a b", "é", String(repeating: "x", count: 1025)])
    func invalidIDs(id: String) {
        #expect(throws: GockerError.self) { try Identifier.validateContainerID(id) }
    }

    @Test func names() throws {
        try Identifier.validateName("web")
        try Identifier.validateName("my_web.1-a")
        for bad in ["w", "-web", "_web", "we b", "we/b", ""] {
            #expect(throws: GockerError.self) { try Identifier.validateName(bad) }
        }
        try Identifier.validateName(Identifier.randomName())
    }
}

struct ImageReferenceTests {
    @Test func defaultsToLatest() throws {
        let r = try ImageReference(parsing: "busybox")
        #expect(r.name == "busybox" && r.tag == "latest")
        #expect(r.description == "busybox:latest")
    }

    @Test func tagsAndRegistryPorts() throws {
        #expect(try ImageReference(parsing: "myroot:1.0").tag == "1.0")
        let withPort = try ImageReference(parsing: "localhost:5000/app")
        #expect(withPort.name == "localhost:5000/app" && withPort.tag == "latest")
        let both = try ImageReference(parsing: "localhost:5000/app:v2")
        #expect(both.name == "localhost:5000/app" && both.tag == "v2")
    }

    @Test(arguments: ["", "Busybox", "a:", ":tag", "a:-x", "a//b", "/a", "a b", "a:b c"])
    func refused(text: String) {
        #expect(throws: GockerError.self) { try ImageReference(parsing: text) }
    }
}

struct TimestampTests {
    @Test func rfc3339WithNanoseconds() {
        #expect(Timestamp.format(seconds: 0, nanoseconds: 5) == "1970-01-01T00:00:00.000000005Z")
        #expect(Timestamp.format(seconds: 1_800_000_000, nanoseconds: 123_456_789) == "2027-01-15T08:00:00.123456789Z")
    }
}

struct StateStoreTests {
    func tempDir() -> String {
        var t = Array("/tmp/gocker-unit-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&t)!)
    }

    @Test func reserveSaveLoadRemove() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        let store = StateStore(root: root + "/state")
        let lock = try store.reserve("c1")
        #expect(throws: GockerError.self) { try store.reserve("c1") }
        let s = RuntimeState(id: "c1", pid: 42, pidStartTime: 7, bundle: "/b", rootfs: "/b/rootfs",
                             created: Timestamp.now(), annotations: ["k": "v"])
        try store.save(s)
        lock.release()
        #expect(try store.load("c1") == s)
        #expect(store.ids() == ["c1"])
        // Atomic writes leave no temporary file behind.
        #expect(try Sys.listDirectory(store.directory("c1")) == ["state.json"])
        try store.remove("c1")
        #expect(store.ids() == [])
        #expect(throws: GockerError.self) { try store.load("c1") }
    }

    @Test func refusesIDsThatWouldEscape() {
        let store = StateStore(root: "/nonexistent")
        #expect(throws: GockerError.self) { try store.reserve("../etc") }
        #expect(throws: GockerError.self) { try store.load("..") }
    }

    @Test func removeAllDoesNotFollowSymlinks() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        try Sys.mkdirAll(root + "/keep")
        try Sys.writeFileExclusive(root + "/keep/file", Array("x".utf8))
        try Sys.mkdirAll(root + "/gone/sub")
        #expect(symlink(root + "/keep", root + "/gone/sub/link") == 0)
        try Sys.removeAll(root + "/gone")
        #expect(!Sys.exists(root + "/gone"))
        #expect(Sys.exists(root + "/keep/file"))
    }

    /// What overlay leaves (a mode-000 work directory), deep trees, a
    /// symlink given as the path itself, and a path that is not there.
    @Test func removeAllTakesEverythingButWhatLinksPointTo() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        try Sys.mkdirAll(root + "/keep")
        try Sys.writeFileExclusive(root + "/keep/file", Array("x".utf8))
        var deep = root + "/tree"
        for i in 0..<40 { deep += "/d\(i)" }
        try Sys.mkdirAll(deep)
        try Sys.writeFileExclusive(deep + "/f", [])
        try Sys.mkdirAll(root + "/tree/work/work")
        try Sys.writeFileExclusive(root + "/tree/work/work/f", [])
        #expect(chmod(root + "/tree/work/work", 0) == 0)
        #expect(mkfifo(root + "/tree/fifo", 0o600) == 0)
        #expect(symlink(root + "/keep", root + "/tree/dirlink") == 0)
        #expect(symlink(root + "/keep", root + "/toplink") == 0)
        try Sys.removeAll(root + "/tree")
        try Sys.removeAll(root + "/toplink")
        try Sys.removeAll(root + "/not-there")
        #expect(!Sys.exists(root + "/tree") && !Sys.exists(root + "/toplink"))
        #expect(Sys.exists(root + "/keep/file"))
    }

    @Test func removeAllSaysWhatItCouldNotRemove() throws {
        // A mount point cannot be removed: rmdir fails with EBUSY on it.
        let root = tempDir()
        defer {
            _ = umount2(root + "/a/mnt", Int32(MNT_DETACH))
            try? Sys.removeAll(root)
        }
        try Sys.mkdirAll(root + "/a/mnt")
        try #require(mount("tmpfs", root + "/a/mnt", "tmpfs", 0, nil) == 0, "the tests run as root")
        #expect(throws: SystemCallError.self) { try Sys.removeAll(root + "/a") }
        do { try Sys.removeAll(root + "/a") } catch {
            #expect(error.call == "rmdir" && error.path == root + "/a/mnt" && error.errno == EBUSY, "\(error)")
        }
    }
}
