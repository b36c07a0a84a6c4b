import Dispatch
import Glibc
import GockerCore
import Synchronization
import Testing
@testable import GockerRuntime

/// Addresses and subnets as docker reads them, and a network's address
/// book: distinct addresses, also for parallel processes, given back on
/// release and after a gocker that died.
struct IPAMTests {
    @Test func addressesAreReadAsDottedQuads() {
        #expect(IPv4("192.168.10.1")?.value == 0xC0A8_0A01)
        #expect(IPv4("0.0.0.0")?.description == "0.0.0.0")
        #expect(IPv4("255.255.255.255")?.description == "255.255.255.255")
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", "1..2.3", "a.b.c.d", "1.2.3.4 "] {
            #expect(IPv4(bad) == nil, "\(bad)")
        }
    }

    @Test func aSubnetMustBeANetworkAddress() throws {
        let s = try IPv4Subnet("192.168.10.0/24")
        #expect(s.broadcast.description == "192.168.10.255" && s.firstHost.description == "192.168.10.1")
        #expect(s.contains(IPv4("192.168.10.77")!) && !s.contains(IPv4("192.168.11.0")!))
        let error = #expect(throws: GockerError.self) { try IPv4Subnet("192.168.10.1/24") }
        #expect(error?.message.contains("not a network address (did you mean 192.168.10.0/24?)") == true)
        for bad in ["192.168.10.0", "192.168.10.0/33", "192.168.10.0/31", "10.0.0.0/7", "x/24", "192.168.10.0/2x", "/24"] {
            #expect(throws: GockerError.self) { try IPv4Subnet(bad) }
        }
    }

    @Test func overlapsAndTheFirstFreePool() throws {
        let a = try IPv4Subnet("172.17.0.0/16"), b = try IPv4Subnet("172.17.5.0/24"), c = try IPv4Subnet("172.18.0.0/16")
        #expect(a.overlaps(b) && b.overlaps(a) && !a.overlaps(c))
        #expect(IPv4Subnet.dockerPools.first?.description == "172.17.0.0/16")
        #expect(IPv4Subnet.dockerPools.last?.description == "192.168.240.0/20")
        #expect(IPv4Subnet.firstFree(avoiding: [])?.description == "172.17.0.0/16")
        #expect(IPv4Subnet.firstFree(avoiding: [b, try IPv4Subnet("172.18.0.0/15")])?.description == "172.20.0.0/16")
        #expect(IPv4Subnet.firstFree(avoiding: [try IPv4Subnet("128.0.0.0/8"), try IPv4Subnet("172.0.0.0/8"), try IPv4Subnet("192.168.0.0/16")]) == nil)
    }

    @Test func theHostsRoutesAreRead() throws {
        // /proc/net/route as the kernel writes it: a default route, 10.0.2.0/24, 172.17.0.0/16.
        let text = """
            Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
            eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
            eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
            """
        #expect(IPv4Subnet.hostRoutes(text).map(\.description) == ["10.0.2.0/24", "172.17.0.0/16"])
        // This host's own table reads without error, each a network address.
        for r in IPv4Subnet.hostRoutes((try? Sys.readText("/proc/net/route")) ?? "") {
            #expect((try? IPv4Subnet(r.description)) != nil, "\(r)")
        }
    }

    func book(_ subnet: String, gateway: String? = nil) throws -> (IPAM, String) {
        var template = Array("/tmp/gocker-ipam-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw GockerError(.system, "mkdtemp") }
        let dir = String(cString: p)
        return (try IPAM(directory: dir + "/net", subnet: try IPv4Subnet(subnet), gateway: gateway.flatMap(IPv4.init)), dir)
    }

    @Test func addressesAreHandedOutOnceAndComeBack() throws {
        let (ipam, dir) = try book("10.99.0.0/29")
        defer { try? Sys.removeAll(dir) }
        // 10.99.0.0/29: .1 is the gateway, .2 to .6 for containers, .7 the broadcast.
        let got = try (1...5).map { try ipam.allocate(for: "c\($0)").description }
        #expect(got == ["10.99.0.2", "10.99.0.3", "10.99.0.4", "10.99.0.5", "10.99.0.6"])
        #expect(try ipam.allocate(for: "c3").description == "10.99.0.4", "the same container keeps its address")
        #expect(throws: GockerError.self) { try ipam.allocate(for: "c6") }
        try ipam.release("c2")
        #expect(try ipam.allocate(for: "c6").description == "10.99.0.3")
        // Read back from the file by another book of the same network.
        let again = try IPAM(directory: ipam.directory, subnet: ipam.subnet)
        #expect(try again.holders()[IPv4("10.99.0.3")!] == "c6")
    }

    @Test func aRequestedAddressMustBeAFreeHostOfTheSubnet() throws {
        let (ipam, dir) = try book("10.99.1.0/24", gateway: "10.99.1.254")
        defer { try? Sys.removeAll(dir) }
        #expect(try ipam.allocate(for: "a", requested: IPv4("10.99.1.1")).description == "10.99.1.1")
        for bad in ["10.99.1.1", "10.99.1.254", "10.99.1.0", "10.99.1.255", "10.99.2.1"] {
            #expect(throws: GockerError.self, "\(bad)") { try ipam.allocate(for: "b", requested: IPv4(bad)) }
        }
        #expect(try ipam.allocate(for: "b").description == "10.99.1.2")
        #expect(throws: GockerError.self) { try IPAM(directory: dir + "/x", subnet: try IPv4Subnet("10.0.0.0/24"), gateway: IPv4("10.0.1.1")) }
    }

    @Test func addressesOfContainersThatAreGoneComeBack() throws {
        let (ipam, dir) = try book("10.99.2.0/24")
        defer { try? Sys.removeAll(dir) }
        for c in ["live", "dead1", "dead2"] { _ = try ipam.allocate(for: c) }
        let back = try ipam.reconcile { $0.hasPrefix("dead") }
        #expect(back.map(\.description) == ["10.99.2.3", "10.99.2.4"])
        #expect(try ipam.holders().values.sorted() == ["live"])
    }

    /// Allocations at once, each through its own open of the lock file (as
    /// separate gocker processes do), never get the same address.
    @Test func parallelAllocationsGetDistinctAddresses() throws {
        let (ipam, dir) = try book("10.99.3.0/24")
        defer { try? Sys.removeAll(dir) }
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for k in 0..<10 where (try? ipam.allocate(for: "p\(i)-\(k)")) == nil {
                failures.add(1, ordering: .relaxed)
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let holders = try ipam.holders()
        #expect(holders.count == 80)
        #expect(Set(holders.values).count == 80)
    }
}

@Suite struct IPAMOwnerTests {
    @Test func anAddressBeingTakenIsNotReconciledAway() throws {
        var template = Array("/tmp/gocker-ipam-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { try? Sys.removeAll(dir) }
        let ipam = try IPAM(directory: dir + "/net", subnet: try IPv4Subnet("10.9.0.0/24"))
        // Taken by this (live) process for a container with no record yet,
        // and by a process that is gone.
        let live = try ipam.allocate(for: "aaaa", owner: IPAM.thisProcess)
        let dead = try ipam.allocate(for: "bbbb", owner: "2147483646 1")
        #expect(try ipam.reconcile { _ in true } == [dead])
        #expect(try ipam.holders() == [live: "aaaa"])
        try ipam.release("aaaa")
        #expect(try ipam.holders().isEmpty)
        #expect(!String(decoding: try Sys.readFile(dir + "/net/ipam.json"), as: UTF8.self).contains("owners"))
        // A network whose directory is gone is not made again.
        #expect(throws: GockerError.self) { try IPAM(directory: dir + "/gone", subnet: try IPv4Subnet("10.9.0.0/24"), create: false) }
        #expect(!Sys.exists(dir + "/gone"))
    }
}

@Suite struct AddressBookFileTests {
    /// The book is rewritten in place: a shorter one is cut to its length,
    /// and one left padded with blanks (a gocker killed between the write
    /// and the cut) still reads, with nothing lost.
    @Test func theBookIsRewrittenInPlaceAndReadWithTrailingBlanks() throws {
        var template = Array("/tmp/gocker-ipam-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { try? Sys.removeAll(dir) }
        let ipam = try IPAM(directory: dir + "/net", subnet: try IPv4Subnet("10.9.1.0/24"))
        let file = dir + "/net/ipam.json"
        let a = try ipam.allocate(for: "aaaa")
        let b = try ipam.allocate(for: "bbbb")
        let inode = try #require(Sys.fileID(file))
        let long = try Sys.readFile(file)
        try ipam.release("bbbb")
        let short = try Sys.readFile(file)
        #expect(short.count < long.count && short.last != UInt8(ascii: " "), "cut to its length")
        #expect(Sys.fileID(file) == inode, "the same file, not a renamed one")
        // As a killed gocker leaves it.
        try Sys.writeFileAtomic(file, short + Array(repeating: UInt8(ascii: " "), count: 40), mode: 0o600)
        #expect(try ipam.holders() == [a: "aaaa"])
        #expect(try ipam.allocate(for: "cccc") == b, "the freed address, once more")
        #expect(try Sys.readFile(file).last != UInt8(ascii: " "))
    }

    /// An allocation that waited for the lock while `network rm` removed
    /// the book finds the network gone, and writes nothing.
    @Test func anAllocationWaitingOnARemovedBookFails() throws {
        var template = Array("/tmp/gocker-ipam-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { try? Sys.removeAll(dir) }
        let ipam = try IPAM(directory: dir + "/net", subnet: try IPv4Subnet("10.9.2.0/24"))
        _ = try ipam.allocate(for: "aaaa")
        let file = dir + "/net/ipam.json"
        let held = open(file, O_RDWR)
        #expect(held >= 0 && flock(held, LOCK_EX) == 0)
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<String>("")
        DispatchQueue.global().async {
            do throws(GockerError) { _ = try ipam.allocate(for: "bbbb"); outcome.withLock { $0 = "allocated" } } catch {
                outcome.withLock { $0 = error.code == .notFound ? "not found" : error.description }
            }
            done.signal()
        }
        usleep(200_000)
        // What network rm does under the lock: the book goes, with its
        // directory (an allocation that only now opens it finds neither).
        #expect(unlink(file) == 0 && rmdir(dir + "/net") == 0)
        close(held)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(outcome.withLock { $0 } == "not found")
        #expect(!Sys.exists(file))
    }
}
