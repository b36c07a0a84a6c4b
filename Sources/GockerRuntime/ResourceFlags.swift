import Glibc
import GockerCgroups
import GockerControllers
import GockerCore

/// docker's resource flags, as given on the command line.
public struct ResourceFlags: Sendable, Equatable {
    public var memory: String?
    public var memoryReservation: String?
    public var memorySwap: String?
    public var cpusetCpus: String?
    public var cpusetMems: String?
    public var cpuShares: Int64?
    public var cpus: String?
    public var pidsLimit: Int64?
    public var devices: [String] = []

    public init() {}

    /// The flags, as `run` and `create` take them. The numeric ones take
    /// the next word even when it starts with a dash, as docker's do: "-1"
    /// is a value (unlimited, or a bad one refused with its reason).
    public static let options: [CommandOption<ResourceFlags>] = [
        .text("memory", short: "m", "bytes", signed: true, help: "Memory limit (b, k, m, g; at least 6m).") { $0.memory = $1 },
        .text("memory-reservation", "bytes", signed: true, help: "Memory soft limit.") { $0.memoryReservation = $1 },
        .text("memory-swap", "bytes", signed: true,
              help: "Memory plus swap limit (-1: unlimited swap; default: twice --memory).") { $0.memorySwap = $1 },
        .text("cpuset-cpus", aliases: ["cpuset"], "list", help: "CPUs the container may run on (0-3, 0,1).") { $0.cpusetCpus = $1 },
        .text("cpuset-mems", "list", help: "Memory nodes the container may use (0-3, 0,1).") { $0.cpusetMems = $1 },
        .integer("cpu-shares", short: "c", aliases: ["cpushare"], "shares", help: "Relative CPU weight, 2 to 262144 (0: unset).") {
            $0.cpuShares = $1
        },
        .text("cpus", "number", signed: true, help: "Number of CPUs (decimal, e.g. 0.5).") { $0.cpus = $1 },
        .integer("pids-limit", "n", help: "Most processes at once (-1: unlimited).") { $0.pidsLimit = $1 },
        .list("device", "device", help: "Add a host device: /dev/HOST[:/dev/CONTAINER[:rwm]].") { $0.devices.append($1) },
    ]

    /// docker's sizes: a number with an optional b, k, m, g, t or p (binary
    /// units; "kb", "KiB" and "kib" also read as k).
    public static func parseSize(_ text: String, flag: String) throws(GockerError) -> Int64 {
        var s = Substring(text.lowercased())
        if s.hasSuffix("b") { s = s.dropLast() }
        if s.hasSuffix("i") { s = s.dropLast() }
        var multiplier: Double = 1
        if let last = s.last, let power = ["k": 1, "m": 2, "g": 3, "t": 4, "p": 5][String(last)] {
            multiplier = pow(1024, Double(power))
            s = s.dropLast()
        }
        guard !s.isEmpty, s.allSatisfy({ $0.isNumber || $0 == "." }), let number = Double(s), number >= 0,
              number * multiplier < 9.2e18 else {
            throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for \(flag): invalid size")
        }
        return Int64(number * multiplier)
    }

    /// The CPUs this host has, for `--cpus` and `--cpuset-cpus`.
    public static func onlineList(_ file: String) -> Set<Int> {
        let text = ((try? Sys.readText(file)) ?? "0").trimmed
        var out = Set<Int>()
        for part in text.split(separator: ",") {
            let b = part.split(separator: "-").compactMap { Int($0) }
            if b.count == 1 { out.insert(b[0]) } else if b.count == 2, b[0] <= b[1] { out.formUnion(b[0]...b[1]) }
        }
        return out
    }

    static func expand(_ list: String) -> Set<Int> {
        var out = Set<Int>()
        for part in list.split(separator: ",") {
            let b = part.split(separator: "-").compactMap { Int($0) }
            if b.count == 1 { out.insert(b[0]) } else if b.count == 2 { out.formUnion(b[0]...max(b[0], b[1])) }
        }
        return out
    }

    /// The OCI resources these flags ask for, with docker's rules and
    /// limits; every bad value is refused naming its flag.
    public func resources(privileged: Bool, onlineCPUs: Set<Int> = onlineList("/sys/devices/system/cpu/online"),
                          onlineMems: Set<Int> = onlineList("/sys/devices/system/node/online")) throws(GockerError) -> Spec.Resources {
        var r = Spec.Resources()
        var mem = Spec.Resources.Memory()
        if let m = memory {
            let v = try Self.parseSize(m, flag: "--memory")
            guard v >= 6 * 1024 * 1024 else {
                throw GockerError(.invalidArgument, "invalid argument \"\(m)\" for --memory: minimum memory limit allowed is 6MB")
            }
            mem.limit = v
        }
        if let s = memorySwap {
            guard let limit = mem.limit else {
                throw GockerError(.invalidArgument, "--memory-swap \"\(s)\" needs --memory: set the memory limit too")
            }
            if s == "-1" { mem.swap = -1 } else {
                let v = try Self.parseSize(s, flag: "--memory-swap")
                guard v >= limit else {
                    throw GockerError(.invalidArgument,
                        "invalid argument \"\(s)\" for --memory-swap: it must be at least the memory limit (\(memory!)), or -1")
                }
                mem.swap = v
            }
        } else if let limit = mem.limit {
            mem.swap = limit * 2  // docker: as much swap as memory
        }
        if let res = memoryReservation {
            let v = try Self.parseSize(res, flag: "--memory-reservation")
            if let limit = mem.limit, v > limit {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(res)\" for --memory-reservation: it must be below the memory limit (\(memory!))")
            }
            mem.reservation = v
        }
        if mem.limit != nil || mem.reservation != nil { r.memory = mem }

        var cpu = Spec.Resources.CPU()
        if let shares = cpuShares, shares != 0 {
            guard (2...262_144).contains(shares) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(shares)\" for --cpu-shares: must be 0 (unset) or 2 to 262144")
            }
            cpu.shares = UInt64(shares)
        }
        if let text = cpus {
            guard let n = Double(text), n > 0, text.allSatisfy({ $0.isNumber || $0 == "." }) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --cpus: expected a decimal number of CPUs")
            }
            let count = max(onlineCPUs.count, 1)
            guard n <= Double(count) else {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(text)\" for --cpus: range of CPUs is from 0.01 to \(count).00, as there are only \(count) CPUs available")
            }
            cpu.period = 100_000
            cpu.quota = Int64((n * 100_000).rounded())
            guard cpu.quota! >= 1000 else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --cpus: at least 0.01 CPUs")
            }
        }
        if let list = cpusetCpus {
            do { _ = try CpusetController.validateList(list, what: "cpus") } catch {
                throw GockerError(.invalidArgument, "invalid argument \"\(list)\" for --cpuset-cpus: expected a list like 0-2,4")
            }
            let missing = Self.expand(list).subtracting(onlineCPUs)
            guard missing.isEmpty else {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(list)\" for --cpuset-cpus: CPUs \(missing.sorted()) are not available on this host")
            }
            cpu.cpus = list
        }
        if let list = cpusetMems {
            do { _ = try CpusetController.validateList(list, what: "mems") } catch {
                throw GockerError(.invalidArgument, "invalid argument \"\(list)\" for --cpuset-mems: expected a list like 0-1")
            }
            let missing = Self.expand(list).subtracting(onlineMems)
            guard missing.isEmpty else {
                throw GockerError(.invalidArgument,
                    "invalid argument \"\(list)\" for --cpuset-mems: memory nodes \(missing.sorted()) are not available on this host")
            }
            cpu.mems = list
        }
        if cpu != Spec.Resources.CPU() { r.cpu = cpu }
        if let limit = pidsLimit { r.pids = Spec.Resources.Pids(limit: limit <= 0 ? -1 : limit) }

        if privileged {
            r.devices = [Spec.Resources.DeviceRule(allow: true, access: "rwm")]
        } else {
            r.devices = Self.dockerDeviceRules + (try parsedDevices().map(\.rule))
        }
        return r
    }

    /// Docker's device allow-list: everything denied, except creating any
    /// node (mknod) and using null, zero, full, random, urandom, tty,
    /// console, ptmx and the pts.
    public static let dockerDeviceRules: [Spec.Resources.DeviceRule] = [
        .init(allow: false, access: "rwm"),
        .init(allow: true, type: "c", access: "m"),
        .init(allow: true, type: "b", access: "m"),
    ] + [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)].map {
        Spec.Resources.DeviceRule(allow: true, type: "c", major: $0.0, minor: $0.1, access: "rwm")
    } + [.init(allow: true, type: "c", major: 136, access: "rwm")]

    /// `--device HOST[:CONTAINER[:PERMISSIONS]]`: the node to create and the rule to allow it.
    public func parsedDevices() throws(GockerError) -> [(node: Spec.Device, rule: Spec.Resources.DeviceRule)] {
        var out: [(Spec.Device, Spec.Resources.DeviceRule)] = []
        for text in devices {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (1...3).contains(parts.count), parts[0].hasPrefix("/") else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device: expected /dev/HOST[:/dev/CONTAINER[:rwm]]")
            }
            let host = parts[0]
            var target = parts.count > 1 ? parts[1] : host
            var access = "rwm"
            if parts.count == 2, !parts[1].hasPrefix("/"), parts[1].allSatisfy({ "rwm".contains($0) }) {
                access = parts[1]
                target = host
            }
            if parts.count == 3 { access = parts[2] }
            guard target.hasPrefix("/"), !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device: bad container path or permissions")
            }
            var st = stat()
            guard stat(host, &st) == 0 else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device",
                                  cause: SystemCallError("stat", path: host, errno: errno))
            }
            let kind = st.st_mode & S_IFMT
            guard kind == S_IFCHR || kind == S_IFBLK else {
                throw GockerError(.invalidArgument, "invalid argument \"\(text)\" for --device: \(host) is not a device")
            }
            let major = Int64((st.st_rdev >> 8) & 0xfff | ((st.st_rdev >> 32) & ~0xfff))
            let minor = Int64((st.st_rdev & 0xff) | ((st.st_rdev >> 12) & ~0xff))
            let type = kind == S_IFCHR ? "c" : "b"
            out.append((Spec.Device(type: type, path: target, major: major, minor: minor,
                                    fileMode: UInt32(st.st_mode & 0o7777), uid: 0, gid: 0),
                        Spec.Resources.DeviceRule(allow: true, type: type, major: major, minor: minor, access: access)))
        }
        return out
    }
}
