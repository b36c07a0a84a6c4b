import Glibc
import GockerCore

/// docker's resource flags as given on a `run` or `create` line: raw
/// values keyed by each option's long name, in the line's order. The
/// options are the controllers' own (`ResourceController.options`); each
/// controller turns its values into OCI resources
/// (`ResourceController.resources(from:host:into:)`), so nothing here knows
/// one flag from another.
public struct ResourceFlags: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The option's long name, without its dashes ("memory").
        public var name: String
        public var value: String
    }

    /// Every value, in the line's order.
    public private(set) var entries: [Entry] = []
    /// `--privileged`: not a resource flag, but the device rules depend on
    /// it. The command sets it from its request before asking for resources.
    public var privileged = false

    public init() {}

    /// Adds a value of the option `name` (a single-valued one counts its last).
    public mutating func add(_ name: String, _ value: String) {
        entries.append(Entry(name: name, value: value))
    }

    /// The last value given to `name`; set: replaces every value it had.
    public subscript(name: String) -> String? {
        get {
            for e in entries.reversed() where e.name == name { return e.value }
            return nil
        }
        set {
            entries.removeAll { $0.name == name }
            if let newValue { add(name, newValue) }
        }
    }

    /// Every value given to a repeatable option (`--device`), in order.
    public func all(_ name: String) -> [String] {
        var out: [String] = []
        for e in entries where e.name == name { out.append(e.value) }
        return out
    }

    public var isEmpty: Bool { entries.isEmpty }

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
}

extension CommandOption where Target == ResourceFlags {
    /// A resource flag: its value kept as typed under its long name, for
    /// its controller to judge. `value`: `.text`, `.signed` (the next word
    /// even when it starts with a dash, as docker's numeric flags take
    /// "-1") or `.integer` (refused while the line is read unless it is one).
    @inlinable public static func resource(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                                           value: OptionValue = .text, repeatable: Bool = false, help: String) -> Self {
        Self(name: name, aliases: aliases, short: short, value: value, valueName: valueName, repeatable: repeatable,
             help: help) { flags, text in flags.add(name, text) }
    }
}

/// What a controller's flags are checked against on the host: its online
/// CPUs and memory nodes, its device nodes. Read only when a flag asks;
/// tests hand in their own.
public struct HostFacts: Sendable {
    /// The device node at a host path: its kind ("c" or "b"), numbers and
    /// mode bits; an errno when it cannot be read; nil for an existing
    /// path that is not a device.
    public struct DeviceNode: Sendable, Equatable {
        public var type: String
        public var major: Int64
        public var minor: Int64
        public var mode: UInt32

        public init(type: String, major: Int64, minor: Int64, mode: UInt32) {
            self.type = type
            self.major = major
            self.minor = minor
            self.mode = mode
        }
    }

    public var onlineCPUs: @Sendable () -> Set<Int>
    public var onlineMems: @Sendable () -> Set<Int>
    public var device: @Sendable (String) -> Result<DeviceNode?, SystemCallError>

    public init(onlineCPUs: @escaping @Sendable () -> Set<Int> = { HostFacts.onlineList("/sys/devices/system/cpu/online") },
                onlineMems: @escaping @Sendable () -> Set<Int> = { HostFacts.onlineList("/sys/devices/system/node/online") },
                device: @escaping @Sendable (String) -> Result<DeviceNode?, SystemCallError> = HostFacts.statDevice) {
        self.onlineCPUs = onlineCPUs
        self.onlineMems = onlineMems
        self.device = device
    }

    /// This host.
    public static let live = HostFacts()

    /// A kernel list file ("0-3,5"): the numbers it names.
    public static func onlineList(_ file: String) -> Set<Int> {
        let text = ((try? Sys.readText(file)) ?? "0").trimmed
        var out = Set<Int>()
        for part in text.split(separator: ",") {
            let b = part.split(separator: "-").compactMap { Int($0) }
            if b.count == 1 { out.insert(b[0]) } else if b.count == 2, b[0] <= b[1] { out.formUnion(b[0]...b[1]) }
        }
        return out
    }

    /// stat(2) of a host path, as a device node.
    @Sendable public static func statDevice(_ path: String) -> Result<DeviceNode?, SystemCallError> {
        var st = stat()
        guard stat(path, &st) == 0 else { return .failure(SystemCallError("stat", path: path, errno: errno)) }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFCHR || kind == S_IFBLK else { return .success(nil) }
        return .success(DeviceNode(type: kind == S_IFCHR ? "c" : "b",
                                   major: Int64((st.st_rdev >> 8) & 0xfff | ((st.st_rdev >> 32) & ~0xfff)),
                                   minor: Int64((st.st_rdev & 0xff) | ((st.st_rdev >> 12) & ~0xff)),
                                   mode: UInt32(st.st_mode & 0o7777)))
    }
}
