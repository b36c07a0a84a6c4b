import Glibc
import GockerCore
import Testing
@testable import GockerRuntime

/// `-p/--publish` as docker reads it, docker's errors word for word, and
/// host ports that are taken or free.
struct PortSpecTests {
    func one(_ raw: String) throws -> PortRequest {
        let r = try PortSpec.parse(raw)
        try #require(r.count == 1, "\(raw): \(r)")
        return r[0]
    }

    func message(_ raw: String) -> String? {
        #expect(throws: GockerError.self, "\(raw)") { try PortSpec.parse(raw) }?.message
    }

    @Test func theFormsDockerAccepts() throws {
        #expect(try one("80") == PortRequest(containerPort: 80))
        #expect(try one("8080:80") == PortRequest(hostPorts: 8080...8080, containerPort: 80))
        #expect(try one("127.0.0.1:8080:80/udp") == PortRequest(proto: .udp, hostIP: IPv4("127.0.0.1"), hostPorts: 8080...8080, containerPort: 80))
        #expect(try one("127.0.0.1::80") == PortRequest(hostIP: IPv4("127.0.0.1"), containerPort: 80))
        #expect(try one(":80") == PortRequest(containerPort: 80))
        #expect(try one("0:80") == PortRequest(containerPort: 80))
        #expect(try one("0.0.0.0:53:53/UDP") == PortRequest(proto: .udp, hostPorts: 53...53, containerPort: 53))
        #expect(try one("80/") == PortRequest(containerPort: 80))
        #expect(try one("65535:65535/tcp") == PortRequest(hostPorts: 65535...65535, containerPort: 65535))
        // A host range with one container port: any free port of it.
        #expect(try one("8000-8010:80") == PortRequest(hostPorts: 8000...8010, containerPort: 80))
    }

    @Test func rangesExpandToSingleMappings() throws {
        #expect(try PortSpec.parse("8080-8082:80-82/udp") == [
            PortRequest(proto: .udp, hostPorts: 8080...8080, containerPort: 80),
            PortRequest(proto: .udp, hostPorts: 8081...8081, containerPort: 81),
            PortRequest(proto: .udp, hostPorts: 8082...8082, containerPort: 82),
        ])
        #expect(try PortSpec.parse("10.1.2.3::7000-7001") == [
            PortRequest(hostIP: IPv4("10.1.2.3"), containerPort: 7000),
            PortRequest(hostIP: IPv4("10.1.2.3"), containerPort: 7001),
        ])
    }

    @Test func docker_sErrors() {
        #expect(message("8080-8081:80-82") == "invalid ranges specified for container and host Ports: 80-82 and 8080-8081")
        #expect(message("8080:80-81") == "invalid ranges specified for container and host Ports: 80-81 and 8080")
        #expect(message("80/sctpx") == "invalid proto: sctpx")
        #expect(message("80/sctp")?.contains("sctp ports are not supported by gocker") == true)
        #expect(message("1.2.3:80:80") == "invalid IP address: 1.2.3")
        #expect(message("localhost:80:80") == "invalid IP address: localhost")
        #expect(message("[::1]:80:80")?.contains("IPv6 host address ::1 is not supported") == true)
        #expect(message("70000:80") == "invalid hostPort: 70000")
        #expect(message("8080:70000") == "invalid containerPort: 70000")
        #expect(message("8080:0") == "invalid containerPort: 0")
        #expect(message("0") == "invalid containerPort: 0")
        #expect(message("80-79") == "invalid containerPort: 80-79")
        #expect(message("8080:x") == "invalid containerPort: x")
        #expect(message("+80") == "invalid containerPort: +80")
        #expect(message("0-5:80") == "invalid hostPort: 0-5")
        #expect(message("8080:") == "no port specified: 8080:<empty>")
        #expect(message("") == "no port specified: <empty>")
        #expect(message("/tcp") == "no port specified: /tcp<empty>")
    }

    @Test func aHostPortInUseIsRefusedInDocker_sWords() throws {
        for proto in PortProtocol.allCases {
            // Hold a port the way a server would, then ask for it.
            let fd = socket(AF_INET, proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue), 0)
            try #require(fd >= 0)
            defer { close(fd) }
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_addr.s_addr = IPv4("127.0.0.1")!.value.bigEndian
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let r = withUnsafeMutablePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 ? getsockname(fd, $0, &len) : -1 }
            }
            try #require(r == 0)
            if proto == .tcp { try #require(listen(fd, 1) == 0) }
            let port = UInt16(bigEndian: sa.sin_port)

            let e = #expect(throws: GockerError.self) { try PortSpec.checkFree(proto, hostIP: nil, port: port) }
            #expect(e?.message == "Bind for 0.0.0.0:\(port) failed: port is already allocated")
            let e2 = #expect(throws: GockerError.self) { try PortSpec.checkFree(proto, hostIP: IPv4("127.0.0.1"), port: port) }
            #expect(e2?.message == "Bind for 127.0.0.1:\(port) failed: port is already allocated")
            #expect(throws: GockerError.self) { try PortSpec.hostPort(for: PortRequest(proto: proto, hostPorts: port...port, containerPort: 80)) }
            // The next port of a range is taken instead, when free.
            if port < 65535, (try? PortSpec.checkFree(proto, hostIP: nil, port: port + 1)) != nil {
                #expect(try PortSpec.hostPort(for: PortRequest(proto: proto, hostPorts: port...(port + 1), containerPort: 80)) == port + 1)
            }
        }
    }

    @Test func anEphemeralPortIsFreeAndInTheKernel_sRange() throws {
        let range = try Sys.readText("/proc/sys/net/ipv4/ip_local_port_range").split(whereSeparator: { $0 == "\t" || $0 == " " || $0 == "\n" }).compactMap { UInt16($0) }
        try #require(range.count == 2)
        for proto in PortProtocol.allCases {
            let p = try PortSpec.ephemeralPort(proto)
            #expect(p >= range[0] && p <= range[1])
            try PortSpec.checkFree(proto, hostIP: nil, port: p)
            let q = try PortSpec.hostPort(for: PortRequest(proto: proto, containerPort: 80))
            #expect(q != 0)
        }
    }
}
