import Testing
@testable import GockerCore

/// The JSON text itself: what the parser takes and refuses, and how
/// errors name the member that is wrong.
struct JSONShapeTests {
    func read(_ text: String) throws(GockerError) -> Spec {
        try JSON.read(Spec.self, from: Array(text.utf8), what: "config.json")
    }

    @Test(arguments: [
        // As `runc spec` writes it, with what gocker does not model.
        #"{"ociVersion":"1.0.2-dev","process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/usr/bin","TERM=xterm"],"cwd":"/","capabilities":{"bounding":["CAP_AUDIT_WRITE"],"effective":["CAP_AUDIT_WRITE"],"permitted":["CAP_AUDIT_WRITE"],"ambient":["CAP_AUDIT_WRITE"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},"hostname":"runc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}],"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}],"maskedPaths":["/proc/acpi"],"readonlyPaths":["/proc/bus"],"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1500,"op":"SCMP_CMP_EQ"}]}]},"uidMappings":[],"sysctl":{"net.ipv4.ip_forward":"1"}},"hooks":{}}"#,
        // Optional members given as null, space everywhere.
        " { \"ociVersion\" : \"1.0.2\" , \"hostname\" : null , \"process\" : { \"user\" : { \"uid\" : 0 , \"gid\" : 0 , \"umask\" : null } , \"cwd\" : \"/\" , \"args\" : null } , \"linux\" : null }\n",
        #"{"ociVersion":"1","annotations":{},"mounts":[],"root":{"path":"r"}}"#,
    ])
    func configsAreReadAndWrittenBackWhole(text: String) throws {
        let spec = try read(text)
        #expect(spec.ociVersion.hasPrefix("1"))
        // Written and read again: the same value, and the same members
        // (null ones left out), unmodeled ones included.
        #expect(try Spec(jsonBytes: spec.jsonBytes) == spec)
        #expect(try JSONValue.parse(spec.jsonBytes) == Self.withoutNulls(try JSONValue.parse(Array(text.utf8))))
    }

    static func withoutNulls(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o): return .object(o.filter { $0.value != .null }.mapValues(withoutNulls))
        case .array(let a): return .array(a.map(withoutNulls))
        default: return v
        }
    }

    /// Integers are written as their decimal text, at every width and
    /// at both ends of their range.
    @Test func integersAreWrittenInDecimal() {
        func text<I: BinaryInteger>(_ v: I) -> String {
            var t = JSONText()
            t.integer(v)
            return String(decoding: t.bytes, as: UTF8.self)
        }
        for v: Int64 in [0, 7, 9, 10, 99, 100, -1, -10, 1_234_567_890, .max, .min] { #expect(text(v) == "\(v)") }
        for v: UInt64 in [0, 10, UInt64(Int64.max) + 1, .max] { #expect(text(v) == "\(v)") }
        for v: Int32 in [.min, -5, .max] { #expect(text(v) == "\(v)") }
        #expect(text(UInt16.max) == "65535" && text(Int.min) == "-9223372036854775808")
    }

    /// Strings of raw UTF-8 are read as they are (ASCII or not, with or
    /// without escapes); bytes that are not UTF-8 are refused either way.
    @Test func rawUTF8IsCheckedWhereItIsNotASCII() throws {
        #expect(try JSONValue.parse(Array(#"["plain","café","caf\u00e9 é","\"q\""]"#.utf8))
                == .array([.string("plain"), .string("café"), .string("café é"), .string("\"q\"")]))
        for bad: [UInt8] in [[0xFF], [0xC3], [0xC3, 0x28], [0x5C, 0x6E, 0xFF], [0xED, 0xA0, 0x80]] {
            let text: [UInt8] = Array(#"{"hostname":"a"#.utf8) + bad + Array(#""}"#.utf8)
            #expect(throws: GockerError.self) { try JSON.read(Spec.self, from: text, what: "config.json") }
        }
    }

    @Test func escapesAreReadAndWritten() throws {
        let spec = try read(#"{"ociVersion":"1","hostname":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t\u0001"}"#)
        #expect(spec.hostname == "café 😀 \"q\" \\ / \u{8}\u{c}\n\r\t\u{1}")
        #expect(try Spec(jsonBytes: spec.jsonBytes) == spec)
    }

    @Test func deepNestingIsRefused() {
        for depth in [513, 100_000] {
            let text = #"{"ociVersion":"1","x":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
            #expect(throws: GockerError.self) { try read(text) }
        }
        let text = #"{"ociVersion":"1","x":"# + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "}"
        #expect((try? read(text)) != nil)
    }

    @Test(arguments: [
        (#"{"process":{"user":{"uid":0,"gid":0},"cwd":"/"}}"#, "missing field \"ociVersion\""),
        (#"{"ociVersion":"1","process":{"user":{"uid":"0","gid":0},"cwd":"/"}}"#, "wrong type at \"process.user.uid\""),
        (#"{"ociVersion":"1","process":{"user":{"uid":-1,"gid":0},"cwd":"/"}}"#, "invalid value at \"process.user.uid\": -1"),
        (#"{"ociVersion":"1","process":{"user":{"uid":0,"gid":4294967296},"cwd":"/"}}"#, "invalid value at \"process.user.gid\": 4294967296"),
        (#"{"ociVersion":"1","process":{"user":{"uid":0.0,"gid":0},"cwd":"/"}}"#, "invalid value at \"process.user.uid\""),
        (#"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0}}}"#, "missing field \"process.cwd\""),
        (#"{"ociVersion":"1","mounts":{"destination":"/"}}"#, "wrong type at \"mounts\""),
        (#"{"ociVersion":"1","mounts":[{"destination":"/"},{"type":"x"}]}"#, "missing field \"mounts.1.destination\""),
        (#"{"ociVersion":"1","linux":{"namespaces":[{"type":"pid"},{}]}}"#, "missing field \"linux.namespaces.1.type\""),
        (#"{"ociVersion":"1","linux":{"seccomp":{"defaultAction":"x","syscalls":[{"names":["a"],"action":"y","args":[{"index":0,"value":"1","op":"z"}]}]}}}"#,
         "wrong type at \"linux.seccomp.syscalls.0.args.0.value\""),
        (#"{"ociVersion":"1","root":{"path":"r"}} x"#, "not valid JSON"),
        (#"{"ociVersion":"1","root":{"path":"r""#, "not valid JSON"),
        (#"{"ociVersion":"1","hostname":"a\qb"}"#, "not valid JSON"),
        (#"{"ociVersion":"1","hostname":"a","hostname":"b"}"#, "\"hostname\" is given twice"),
        (#"{"ociVersion":"1","hostname":"\ud800"}"#, "not valid JSON"),
        (#"[]"#, "wrong type"),
    ] as [(String, String)])
    func badConfigsAreRefusedNamingWhatIsWrong(text: String, expected: String) {
        let error = #expect(throws: GockerError.self) { try read(text) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
        #expect(error?.description.contains("\n") == false)
    }

    @Test func prettyTextIsTheSameDocument() throws {
        let spec = try read(#"{"ociVersion":"1","hostname":"a, b: {c}","mounts":[],"annotations":{"k":"[v]"},"process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["sh","-c"]}}"#)
        let pretty = JSONText.pretty(spec.jsonBytes)
        #expect(try Spec(jsonBytes: pretty) == spec)
        #expect(String(decoding: pretty, as: UTF8.self).contains("\n  \"hostname\": \"a, b: {c}\",\n"))
    }
}

/// Members gocker does not model: kept through a rewrite, and refused
/// where a user relies on them for safety.
struct UnmodeledMemberTests {
    @Test func unknownMembersSurviveARewrite() throws {
        let text = #"{"ociVersion":"1","future":{"a":[1,2.5e3,null,true]},"process":{"user":{"uid":0,"gid":0,"x":"y"},"cwd":"/","ioPriority":{"class":"IOPRIO_CLASS_IDLE"}},"mounts":[{"destination":"/a"},{"destination":"/b","idmap":{"k":1}}],"linux":{"sysctl":{"net.ipv4.ip_forward":"1"},"resources":{"memory":{"swappiness":10},"unified":{"io.max":"8:0 rbps=1"}}}}"#
        var spec = try JSON.read(Spec.self, from: Array(text.utf8), what: "t")
        #expect(spec.unmodeled["future"] != nil)
        #expect(spec.process?.user.unmodeled["x"] == .string("y"))
        #expect(spec.mounts?[1].unmodeled["idmap"] != nil)
        // A rewrite changes what gocker models and keeps the rest.
        spec.hostname = "h"
        spec.mounts?.append(Spec.Mount(destination: "/c"))
        var expected = try JSONValue.parse(Array(text.utf8))
        guard case .object(var o) = expected, case .array(var mounts) = o["mounts"] else { Issue.record("not parsed"); return }
        o["hostname"] = .string("h")
        mounts.append(.object(["destination": .string("/c")]))
        o["mounts"] = .array(mounts)
        expected = .object(o)
        #expect(try JSONValue.parse(spec.jsonBytes) == expected)
    }

    @Test(arguments: Spec.refusedMembers.map(\.path))
    func aSafetyMemberIsRefusedNamingIt(path: String) throws {
        let parts = path.split(separator: ".").map(String.init)
        func config(_ value: String) -> String {
            let member = "\"\(parts.last!)\":\(value)"
            switch parts.first! {
            case "process": return #"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0},"cwd":"/","# + member + "}}"
            case "linux": return #"{"ociVersion":"1","linux":{"# + member + "}}"
            default: return #"{"ociVersion":"1","# + member + "}"
            }
        }
        let given = [#"{"prestart":[{"path":"/bin/true"}]}"#, #"[{"containerID":0,"hostID":1000,"size":1}]"#, #""profile""#]
        var refused = 0
        for value in given {
            let spec = try JSON.read(Spec.self, from: Array(config(value).utf8), what: "t")
            do { try spec.checkRefusedMembers() } catch {
                #expect(error.description.contains(path), "\(error)")
                refused += 1
            }
        }
        #expect(refused == 3, "every non-empty value is refused")
        for empty in ["null", "{}", "[]", #""""#] {
            let spec = try JSON.read(Spec.self, from: Array(config(empty).utf8), what: "t")
            #expect(throws: Never.self) { try spec.checkRefusedMembers() }
        }
    }
}

@Suite struct SpecVersionTests {
    @Test func onlyTheRuntimeSpecs1xLineIsSupported() {
        for v in ["1", "1.0", "1.0.2", "1.0.2-dev", "1.1.0", "1.2.0-rc.1"] { #expect(Spec.isSupported(version: v), "\(v)") }
        for v in ["invalid", "2.0.0", "0.9", "1.0.x", "1..2", "1.0.2.3", "-1", "1.", ""] { #expect(!Spec.isSupported(version: v), "\(v)") }
    }
}
