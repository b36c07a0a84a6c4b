import Foundation
import Glibc
import CGockerCore
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

    /// A megabyte of varied bytes fed in odd-sized pieces (across block
    /// boundaries), in one piece, and to sha256sum, agree; a copy taken
    /// midway goes on on its own.
    @Test func oddPiecesOnePieceAndSha256sumAgree() throws {
        let tmp = try TempDir()
        var state: UInt32 = 12345
        let bytes = (0..<(1 << 20)).map { _ -> UInt8 in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: state >> 16)
        }
        let file = tmp.path + "/mb"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let expected = try sha256sum(of: "cat \(file)")
        #expect(SHA256.hash(bytes).hex == expected)
        var pieces = SHA256()
        var offset = 0
        var sizes = [1, 63, 64, 65, 127, 4093, 3, 100_003]
        var copy: SHA256?
        var i = 0
        while offset < bytes.count {
            let n = min(sizes[i % sizes.count], bytes.count - offset)
            bytes.withUnsafeBytes { pieces.update(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
            offset += n
            i += 1
            if copy == nil && offset > 300_000 {
                copy = pieces
                sizes.reverse()
            }
        }
        #expect(pieces.finalize().hex == expected)
        var midway = try #require(copy)
        #expect(midway.finalize().hex == (try sha256sum(of: "head -c \(offsetAtCopy(sizes: sizes.reversed())) \(file)")))
    }

    /// Where `oddPiecesOnePieceAndSha256sumAgree` took its copy.
    private func offsetAtCopy(sizes: [Int]) -> Int {
        var offset = 0, i = 0
        while offset <= 300_000 { offset += sizes[i % sizes.count]; i += 1 }
        return offset
    }
}

struct IdentifierTests {
    @Test(arguments: [[], [""], ["a"], ["a", "b", "c"], ["", "x", ""], ["é", "🇫🇷"]] as [[String]])
    func joinedByMatchesTheStandardLibrarys(parts: [String]) {
        for separator in ["", ",", ", "] {
            #expect(parts.joined(by: separator) == parts.joined(separator: separator))
        }
    }

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

    @Test(arguments: [
        ("a/b/c:V1.x_y-z", "a/b/c", "V1.x_y-z"), ("reg.io:443/team/app", "reg.io:443/team/app", "latest"),
        ("reg.io/app:1", "reg.io/app", "1"), ("a_b.c-d", "a_b.c-d", "latest"),
        // As docker's distribution/reference: a host may have capitals and
        // inner dashes, a port is digits; path components are lowercase
        // runs joined by one ".", one or two "_", or dashes.
        ("My-Host.io/app", "My-Host.io/app", "latest"), ("[::1]:5000/app:v", "[::1]:5000/app", "v"),
        ("localhost/x", "localhost/x", "latest"), ("a__b/c---d", "a__b/c---d", "latest"), ("_x:_t", nil, nil),
        ("h:1:2/app", nil, nil), ("a/", nil, nil), ("a:b/c", nil, nil), ("é", nil, nil), ("-host.io/a", nil, nil),
        ("host-.io/a", nil, nil), ("host.io:/a", nil, nil), ("a___b", nil, nil), ("a._b", nil, nil), ("a.", nil, nil),
        ("../../x:1", nil, nil), ("../../../tmp/x/pwned:1", nil, nil), ("../../etc", nil, nil), ("a/./b", nil, nil),
        ("a/../b", nil, nil), (".a", nil, nil), ("a:_t", "a", "_t"),
        ("a:" + String(repeating: "t", count: 128), "a", String(repeating: "t", count: 128)),
        ("a:" + String(repeating: "t", count: 129), nil, nil), (String(repeating: "n", count: 256), nil, nil),
        ("a:.x", nil, nil), ("a/b//c", nil, nil), ("a:b:c", nil, nil),
    ] as [(String, String?, String?)])
    func parsed(text: String, name: String?, tag: String?) {
        let r = try? ImageReference(parsing: text)
        #expect(r?.name == name && r?.tag == tag, "\(text)")
    }

    @Test(arguments: ["", "Busybox", "a:", ":tag", "a:-x", "a//b", "/a", "a b", "a:b c", "a@sha256:12", "a@:" + String(repeating: "ab", count: 32)])
    func refused(text: String) throws {
        let error = try #require(throws: GockerError.self) { try ImageReference(parsing: text) }
        #expect(error.description == "invalid reference format: \"\(text)\"")
    }

    static let hex64 = String(repeating: "0123456789abcdef", count: 4)

    /// A reference by digest is well formed, and said to be unsupported.
    @Test func digestsAreNamedAsUnsupported() throws {
        let error = try #require(throws: GockerError.self) { try ImageReference(parsing: "busybox@sha256:" + Self.hex64) }
        #expect(error.description.hasPrefix("references by digest are not supported"))
    }
}

struct TimestampTests {
    @Test func rfc3339WithNanoseconds() {
        #expect(Timestamp.format(seconds: 0, nanoseconds: 5) == "1970-01-01T00:00:00.000000005Z")
        #expect(Timestamp.format(seconds: 1_800_000_000, nanoseconds: 123_456_789) == "2027-01-15T08:00:00.123456789Z")
    }

    /// The date worked out by hand is gmtime's, for every day of 1900-2400
    /// (leap days and centuries included) at a second that differs each day.
    @Test func theDateIsGmtimes() {
        for day in -25_567...157_000 {
            let seconds = day * 86400 + abs(day * 7919) % 86400
            var t = time_t(seconds)
            var tm = tm()
            gmtime_r(&t, &tm)
            func p(_ v: Int32, _ n: Int) -> String { String(repeating: "0", count: max(0, n - String(v).count)) + String(v) }
            let expected = "\(p(tm.tm_year + 1900, 4))-\(p(tm.tm_mon + 1, 2))-\(p(tm.tm_mday, 2))T"
                + "\(p(tm.tm_hour, 2)):\(p(tm.tm_min, 2)):\(p(tm.tm_sec, 2)).000000000Z"
            let got = Timestamp.format(seconds: seconds, nanoseconds: 0)
            if got != expected {
                Issue.record("\(seconds): \(got), gmtime \(expected)")
                return
            }
        }
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

    /// gk_rename_exchange swaps two names' files, and refuses a missing one.
    @Test func renameExchangeSwaps() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        try Sys.writeFileExclusive(root + "/a", Array("first".utf8))
        try Sys.writeFileExclusive(root + "/b", Array("second".utf8))
        #expect(gk_rename_exchange(root + "/a", root + "/b") == 0)
        #expect(try Sys.readText(root + "/a") == "second")
        #expect(try Sys.readText(root + "/b") == "first")
        #expect(gk_rename_exchange(root + "/a", root + "/none") == -1 && errno == ENOENT)
        #expect(try Sys.readText(root + "/a") == "second")
    }

    /// The names unlinked in `directory` while `body` runs
    /// (inotify's IN_DELETE).
    func deletions(in directory: String, during body: () throws -> Void) throws -> [String] {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        try #require(fd >= 0)
        defer { Sys.close(fd) }
        try #require(inotify_add_watch(fd, directory, UInt32(IN_DELETE)) >= 0)
        try body()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        var names: [String] = []
        var at = 0
        // struct inotify_event: wd, mask, cookie, len (4 bytes each), name[len].
        while n > 0 && at + 16 <= n {
            let len = buffer[(at + 12)..<(at + 16)].reversed().reduce(0) { $0 << 8 | Int($1) }
            let name = buffer[(at + 16)..<(at + 16 + len)].prefix { $0 != 0 }
            names.append(String(decoding: name, as: UTF8.self))
            at += 16 + len
        }
        return names
    }

    /// A state saved over another is swapped in whole (RENAME_EXCHANGE,
    /// then the old file, under the temporary name, unlinked): a reader
    /// that opened the old one still reads it all, the name gives the new
    /// one, and nothing else is left. (A rename over it would unlink
    /// nothing by name.)
    @Test func savingOverAStateSwapsItIn() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        let store = StateStore(root: root + "/state")
        let lock = try store.reserve("c1")
        defer { lock.release() }
        var s = RuntimeState(id: "c1", pid: 0, pidStartTime: 0, bundle: "/b", rootfs: "/b/rootfs",
                             created: Timestamp.now(), annotations: nil)
        #expect(try deletions(in: store.directory("c1")) { try store.save(s) } == [])
        let oldInode = try #require(inode(store.statePath("c1")))
        let reader = try Sys.open(store.statePath("c1"), O_RDONLY)
        defer { Sys.close(reader) }
        s.pid = 42
        #expect(try deletions(in: store.directory("c1")) { try store.save(s) } == ["state.json.tmp-\(getpid())"])
        #expect(try store.load("c1").pid == 42)
        #expect(inode(store.statePath("c1")) != oldInode)
        var st = stat()
        #expect(fstat(reader, &st) == 0 && st.st_nlink == 0 && st.st_mode & 0o777 == 0o600)
        let old = try JSON.read(RuntimeState.self, from: Sys.readAll(reader, path: "old state"), what: "old state")
        #expect(old.pid == 0)
        #expect(try Sys.listDirectory(store.directory("c1")) == ["state.json"])
        #expect(stat(store.statePath("c1"), &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    func inode(_ path: String) -> ino_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_ino : nil
    }

    /// A removed container's emptied directory is kept as a spare, taken
    /// by the next reserve (the same inode) and never listed; two at most.
    @Test func sparesAreTakenAndBounded() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        let store = StateStore(root: root + "/state")
        let first = try store.reserve("a")
        try Sys.writeFileExclusive(store.directory("a") + "/seccomp.bpf", Array("p".utf8))
        let made = inode(store.directory("a"))
        try store.remove("a")
        first.release()
        #expect(inode(store.spareRoot + "/0") == made)
        #expect(store.ids() == [])
        let second = try store.reserve("b")
        #expect(inode(store.directory("b")) == made)
        #expect(try Sys.listDirectory(store.directory("b")) == [])
        #expect(try Sys.listDirectory(store.spareRoot) == [])
        second.release()

        // Three removed: two kept, the third removed.
        let locks = try ["c", "d", "e"].map { id throws(GockerError) in try store.reserve(id) }
        for id in ["b", "c", "d", "e"] { try store.remove(id) }
        locks.forEach { $0.release() }
        #expect(try Sys.listDirectory(store.spareRoot).sorted() == ["0", "1"])
        #expect(try Sys.listDirectory(store.root) == ["@spare"])
        #expect(store.ids() == [])
    }

    /// An id in use is refused even with a spare at hand, and the spare
    /// stays; a directory holding something unknown is removed, not kept.
    @Test func sparesRefuseTakenIDsAndStayEmpty() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        let store = StateStore(root: root + "/state")
        let held = try store.reserve("x")
        try store.reserve("spare-me").release()
        try store.remove("spare-me")
        #expect(throws: GockerError.self) { try store.reserve("x") }
        #expect(try Sys.listDirectory(store.spareRoot) == ["0"])
        try Sys.writeFileExclusive(store.directory("x") + "/unknown", Array("u".utf8))
        try store.remove("x")
        held.release()
        #expect(!Sys.exists(store.directory("x")))
        #expect(try Sys.listDirectory(store.spareRoot) == ["0"])
        #expect(try Sys.listDirectory(store.spareRoot + "/0") == [])
    }

    /// A spare whose removal still holds its lock (poststop hooks run under
    /// it) is passed over, not waited for; a spare that holds something is
    /// removed, and a new directory made.
    @Test func busyOrUncleanSparesAreNotUsed() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        let store = StateStore(root: root + "/state")
        let removing = try store.reserve("old")
        let kept = try #require(inode(store.directory("old")))
        try store.remove("old")
        #expect(inode(store.spareRoot + "/0") == kept)
        // Still locked by its removal: a new directory, at once.
        let fresh = try store.reserve("new")
        #expect(inode(store.directory("new")) != kept)
        #expect(inode(store.spareRoot + "/0") == kept)
        fresh.release()
        removing.release()
        try store.remove("new")

        // Something left in a spare: not used, and gone.
        try Sys.writeFileExclusive(store.spareRoot + "/0/exec.fifo", [])
        let next = try store.reserve("next")
        #expect(try Sys.listDirectory(store.directory("next")) == [])
        #expect(try Sys.listDirectory(store.spareRoot) == ["1"])
        next.release()
        #expect(store.ids() == ["next"])
    }

    /// The flock lines of /proc/locks on inode `ino`: (blocked, held).
    func flocks(on ino: ino_t) -> (waiting: Int, held: Int) {
        let text = (try? Sys.readFile("/proc/locks")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var waiting = 0, held = 0
        for line in text.split(separator: "\n") where line.contains("FLOCK") && line.contains(":\(ino) ") {
            if line.contains("->") { waiting += 1 } else { held += 1 }
        }
        return (waiting, held)
    }

    /// A lock waited for on a directory whose name meanwhile went to
    /// another one ends on the directory the name gives now.
    @Test func lockFollowsTheName() throws {
        let root = tempDir()
        defer { try? Sys.removeAll(root) }
        let store = StateStore(root: root + "/state")
        let first = try store.reserve("c1")
        let old = try #require(inode(store.directory("c1")))
        let waiter = Background { () -> Result<StateStore.Lock, GockerError> in
            Result { () throws(GockerError) in try store.lock("c1") }
        }
        // Until the waiter is blocked on the first directory's lock.
        var blocked = false
        for _ in 0..<500 where !blocked {
            blocked = flocks(on: old).waiting == 1
            if !blocked { usleep(10_000) }
        }
        #expect(blocked)
        #expect(rename(store.directory("c1"), root + "/moved") == 0)
        #expect(mkdir(store.directory("c1"), 0o711) == 0)
        let now = try #require(inode(store.directory("c1")))
        first.release()
        let lock = try waiter.value().get()
        #expect(flocks(on: now).held == 1)
        #expect(flocks(on: old).held == 0)
        lock.release()
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

@Suite(.enabled(if: getuid() == 0 || Sys.env("CI") == "true", "makes root's files, devices and trusted attributes: needs root"))
struct InitLayerTests {
    /// Layers (top first) made by a shell script in a scratch directory;
    /// root's files, as the image store's are.
    func layers(_ script: String) throws -> (root: String, top: [String]) {
        var t = Array("/tmp/gocker-unit-XXXXXX".utf8CString)
        let root = String(cString: mkdtemp(&t)!)
        let p = popen("cd \(root) && mkdir top bottom && chmod 755 top bottom && umask 022 && (\(script)) 2>&1", "r")
        var out = [CChar](repeating: 0, count: 512)
        var text = ""
        while let p, fgets(&out, Int32(out.count), p) != nil { text += Sys.string(out) }
        guard let p, pclose(p) == 0 else { throw GockerError(.system, "layer script failed: \(text)") }
        return (root, [root + "/top", root + "/bottom"])
    }

    @Test(arguments: [
        ("true", true),                                                    // no /etc at all
        ("mkdir bottom/etc", true),                                        // the usual
        ("mkdir bottom/etc && touch bottom/etc/hosts bottom/etc/hostname", true),
        ("mkdir -m 700 bottom/etc", false),                                // /etc would look different
        ("mkdir bottom/etc && chown 1:1 bottom/etc", false),
        ("mkdir bottom/real && ln -s real bottom/etc", false),
        ("mkdir bottom/etc && ln -s x bottom/etc/hosts", false),
        ("mkdir bottom/etc && mkdir bottom/etc/resolv.conf", false),
        // What the top layer hides below does not count...
        ("mkdir bottom/etc top/etc && ln -s x bottom/etc/hosts && mknod top/etc/hosts c 0 0", true),
        ("mkdir bottom/etc top/etc && ln -s x bottom/etc/hosts && OPAQUE", true),                 // top/etc opaque
        ("mkdir bottom/etc && ln -s x bottom/etc/hosts && touch top/etc", false),            // a file over /etc: no /etc dir
        ("mkdir bottom/etc && ln -s x bottom/etc/hosts && mknod top/etc c 0 0", true),      // /etc deleted
        // ... and what it does not hide does.
        ("mkdir bottom/etc top/etc && ln -s x bottom/etc/hosts", false),
        ("mkdir -m 700 bottom/etc && mkdir top/etc", true),                // the top /etc is what shows
        ("mkdir bottom/etc && XATTR", false),                              // an ACL, a label: it would hide them
    ])
    func theImagesEtcDecides(script: String, takes: Bool) throws {
        // OPAQUE: top/etc gets overlayfs's opaque mark; XATTR: bottom/etc
        // an attribute of its own.
        let marker = script.hasSuffix(" && OPAQUE") ? "OPAQUE" : script.hasSuffix(" && XATTR") ? "XATTR" : nil
        let (root, top) = try layers(marker.map { String(script.dropLast(" && ".count + $0.count)) } ?? script)
        defer { try? Sys.removeAll(root) }
        if let marker {
            let fd = open(root + (marker == "OPAQUE" ? "/top/etc" : "/bottom/etc"), O_RDONLY | O_DIRECTORY)
            defer { close(fd) }
            let (name, value) = marker == "OPAQUE" ? ("trusted.overlay.opaque", "y") : ("user.gocker-test", "1")
            try #require(gk_fsetxattr(fd, name, value, 1, 0) == 0)
        }
        #expect(ImageStore.imageTakesInitLayer(topFirst: top) == takes, "\(script)")
    }

    @Test func madeOnceWithItsModesWhateverTheUmask() throws {
        let (root, _) = try layers("true")
        defer { try? Sys.removeAll(root) }
        let store = ImageStore(dataRoot: root)
        let old = umask(0o077)
        defer { umask(old) }
        let path = try #require(store.initLayer(for: []))
        #expect(path == root + "/image/init")
        var st = stat()
        #expect(stat(path + "/etc", &st) == 0 && st.st_mode & 0o7777 == 0o755)
        for name in ["hostname", "hosts", "resolv.conf"] {
            #expect(stat(path + "/etc/" + name, &st) == 0 && st.st_mode & 0o7777 == 0o644 && st.st_size == 0, "\(name)")
        }
        #expect(try Sys.listDirectory(root + "/image") == ["init"], "nothing made aside is left")
        #expect(store.initLayer(for: []) == path)
        // What a making that died half-way left goes with the next clean-up.
        try Sys.mkdirAll(root + "/image/.init-dead/etc")
        _ = try store.removeUnusedLayers(heldByContainers: [])
        #expect(try Sys.listDirectory(root + "/image").filter { !["images", "layers", "lock"].contains($0) } == ["init"])
    }
}
