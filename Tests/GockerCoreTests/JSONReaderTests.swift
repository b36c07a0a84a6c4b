import Testing
@testable import GockerCore

/// config.json read by hand means what JSONDecoder reads in it; where the
/// hand reader gives up, JSONDecoder reads it (and says what is wrong).
struct JSONReaderTests {
    func both(_ text: String) -> (fast: Spec?, codable: Result<Spec, GockerError>) {
        let bytes = Array(text.utf8)
        return (JSONReader.spec(bytes), Result { () throws(GockerError) in try JSON.decode(Spec.self, from: bytes, what: "t") })
    }

    static let full = Spec(
        process: .init(terminal: true, user: .init(uid: 1000, gid: 100, umask: 0o22, additionalGids: [4, 27]),
                       args: ["sh", "-c", "echo \"hi\"\\n\tthere / \\\\"], env: ["PATH=/bin", "É=ü"], cwd: "/w",
                       capabilities: .init(bounding: ["CAP_KILL"], effective: ["CAP_KILL"], inheritable: [],
                                           permitted: ["CAP_KILL", "CAP_CHOWN"], ambient: ["CAP_KILL"]),
                       rlimits: [.init(type: "RLIMIT_NOFILE", hard: 18_446_744_073_709_551_615, soft: 1024)],
                       noNewPrivileges: true),
        root: .init(path: "rootfs", readonly: false), hostname: "box",
        mounts: [.init(destination: "/proc", type: "proc", source: "proc", options: nil),
                 .init(destination: "/x", type: "bind", source: "/srv/x", options: ["rbind", "ro"])],
        annotations: ["io.gocker.user": "0", "k": ""],
        linux: .init(namespaces: [.init(type: "pid"), .init(type: "network", path: "/proc/1/ns/net")],
                     devices: [.init(type: "c", path: "/dev/fuse", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0)],
                     resources: .init(memory: .init(limit: 67_108_864, reservation: 1_048_576, swap: -1),
                                      cpu: .init(shares: 512, quota: -1, period: 100_000, cpus: "0-1", mems: "0"),
                                      pids: .init(limit: -1),
                                      devices: [.init(allow: false, access: "rwm"),
                                                .init(allow: true, type: "c", major: 1, minor: -1, access: "rw")]),
                     cgroupsPath: "gocker/x", rootfsPropagation: "rslave", maskedPaths: ["/proc/kcore"],
                     readonlyPaths: [],
                     seccomp: .init(defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1,
                                    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], flags: ["SECCOMP_FILTER_FLAG_LOG"],
                                    listenerPath: "/run/agent.sock", listenerMetadata: "k=v",
                                    syscalls: [.init(names: ["read", "write"], action: "SCMP_ACT_ALLOW"),
                                               .init(names: ["clone"], action: "SCMP_ACT_ALLOW",
                                                     args: [.init(index: 0, value: 0x7E02_0000, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ"),
                                                            .init(index: 1, value: 18_446_744_073_709_551_615, op: "SCMP_CMP_NE")]),
                                               .init(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38),
                                               .init(names: ["mkdir"], action: "SCMP_ACT_NOTIFY")])))

    @Test func everyFieldAsWrittenIsReadTheSame() throws {
        for pretty in [false, true] {
            let text = String(decoding: JSON.encode(Self.full, pretty: pretty), as: UTF8.self)
            let (fast, codable) = both(text)
            #expect(try #require(fast) == Self.full, "the hand reader takes it")
            #expect(try codable.get() == Self.full)
        }
    }

    @Test func configsAreWrittenAsCodableReadsThem() throws {
        let minimal = Spec(process: .init(args: nil, env: nil), root: .init(path: "r"))
        for spec in [Self.full, minimal, Spec()] {
            #expect(try JSON.decode(Spec.self, from: spec.json, what: "t") == spec)
            #expect(JSONReader.spec(spec.json) == spec)
        }
    }

    @Test(arguments: [
        // As `runc spec` writes it, with what gocker does not read.
        #"{"ociVersion":"1.0.2-dev","process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/usr/bin","TERM=xterm"],"cwd":"/","capabilities":{"bounding":["CAP_AUDIT_WRITE"],"effective":["CAP_AUDIT_WRITE"],"permitted":["CAP_AUDIT_WRITE"],"ambient":["CAP_AUDIT_WRITE"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},"hostname":"runc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}],"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}],"maskedPaths":["/proc/acpi"],"readonlyPaths":["/proc/bus"],"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1500,"op":"SCMP_CMP_EQ"}]}]},"uidMappings":[],"sysctl":{"net.ipv4.ip_forward":"1"}},"hooks":{"prestart":[{"path":"/bin/true","timeout":-0}]}}"#,
        // Optional members given as null, space everywhere.
        " { \"ociVersion\" : \"1.0.2\" , \"hostname\" : null , \"process\" : { \"user\" : { \"uid\" : 0 , \"gid\" : 0 , \"umask\" : null } , \"cwd\" : \"/\" , \"args\" : null } , \"linux\" : null }\n",
        #"{"ociVersion":"1","annotations":{},"mounts":[],"root":{"path":"r"}}"#,
    ])
    func configsAreReadTheSame(text: String) throws {
        let (fast, codable) = both(text)
        #expect(try #require(fast) == (try codable.get()))
    }

    @Test(arguments: [
        #"{"ociVersion":"1","hostname":"caf\u00e9"}"#,  // \u escapes are JSONDecoder's
        #"{"ociVersion":"1","process":{"user":{"uid":0.0,"gid":0},"cwd":"/"}}"#,  // a number that is not a plain integer
        #"{"ociVersion":"1","hostname":"a","hostname":"b"}"#,  // a duplicate key
    ])
    func whatTheHandReaderLeavesJSONDecoderReads(text: String) throws {
        let (fast, codable) = both(text)
        #expect(fast == nil)
        let spec = try codable.get()
        #expect(try JSON.decode(Spec.self, from: Array(text.utf8), what: "t", reader: JSONReader.spec) == spec)
    }

    @Test func deepNestingIsLeftToJSONDecoder() {
        for depth in [65, 513, 100_000] {
            let text = #"{"ociVersion":"1","x":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
            #expect(JSONReader.spec(Array(text.utf8)) == nil, "\(depth) levels")
            let (_, codable) = both(text)
            if depth > 512 {
                #expect(throws: GockerError.self) { try codable.get() }
            } else {
                #expect((try? codable.get()) != nil)
            }
        }
    }

    @Test(arguments: [
        #"{"process":{"user":{"uid":0,"gid":0},"cwd":"/"}}"#,  // no ociVersion
        #"{"ociVersion":"1","process":{"user":{"uid":"0","gid":0},"cwd":"/"}}"#,  // a string for a number
        #"{"ociVersion":"1","process":{"user":{"uid":-1,"gid":0},"cwd":"/"}}"#,  // out of range
        #"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0}}}"#,  // no cwd
        #"{"ociVersion":"1","mounts":{"destination":"/"}}"#,  // an object for an array
        #"{"ociVersion":"1","linux":{"resources":{"pids":{}}}}"#,  // pids without its limit
        #"{"ociVersion":"1","root":{"path":"r"}} x"#,  // text after the object
        #"{"ociVersion":"1","root":{"path":"r""#,  // cut short
        #"{"ociVersion":"1","hostname":"a\qb"}"#,  // not an escape
        #"[]"#,
    ])
    func badConfigsAreRefusedAsJSONDecoderRefusesThem(text: String) {
        let (fast, codable) = both(text)
        #expect(fast == nil)
        guard case .failure(let expected) = codable else {
            Issue.record("JSONDecoder took \(text)")
            return
        }
        #expect(throws: GockerError.self) { try JSON.decode(Spec.self, from: Array(text.utf8), what: "t", reader: JSONReader.spec) }
        do { _ = try JSON.decode(Spec.self, from: Array(text.utf8), what: "t", reader: JSONReader.spec) } catch {
            #expect(error.description == expected.description)
        }
    }

    static let states = [
        RuntimeState(id: "c1", pid: 42, pidStartTime: 18_446_744_073_709_551_615, bundle: "/b/\"q\"\\x", rootfs: "/b/rootfs",
                     created: "2026-11-29T10:00:00.000000000Z",
                     annotations: ["io.x": "line\nnext\ttab\u{1}bell", "é": "ü/€", "": ""],
                     cgroups: CgroupRecord(backend: "libcgroup", version: .v1, path: "gocker/c1",
                                           controllers: ["cpuset", "memory"])),
        RuntimeState(id: "c4", pid: 9, pidStartTime: 1, bundle: "/b/\"q\"\\x", rootfs: "/é",
                     created: "t", annotations: ["io.x": "line\nnext\ttab", "é": "ü/€"],
                     cgroups: CgroupRecord(backend: "libcgroup", version: .v1, path: "gocker/c4", controllers: ["cpuset", "memory"])),
        RuntimeState(id: "c2", pid: -1, pidStartTime: 0, bundle: "/", rootfs: "", created: "", annotations: nil,
                     cgroups: nil),
        RuntimeState(id: "c3", pid: 1, pidStartTime: 7, bundle: "/b", rootfs: "/r", created: "t", annotations: [:],
                     cgroups: CgroupRecord(backend: "cgroupfs", version: .v2, path: "p", controllers: [])),
    ]

    @Test(arguments: states)
    func stateFilesAreWrittenAndReadAsCodableDoes(state: RuntimeState) throws {
        // What the writer writes, JSONDecoder reads as the same value.
        #expect(try JSON.decode(RuntimeState.self, from: state.json, what: "t") == state)
        // What the writer writes, the reader reads as the same value (its
        // only escape the reader leaves to JSONDecoder is \u00XX).
        if state.annotations?.values.contains(where: { $0.contains("\u{1}") }) != true {
            #expect(JSONReader.runtimeState(state.json) == state)
        }
        // What JSONEncoder writes, the reader reads as the same value.
        let encoded = JSON.encode(state)
        if state.annotations?.values.contains(where: { $0.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" } }) != true {
            #expect(JSONReader.runtimeState(encoded) == state)
        }
        #expect(try JSON.decode(RuntimeState.self, from: encoded, what: "t", reader: JSONReader.runtimeState) == state)
        #expect(try JSON.decode(RuntimeState.self, from: state.json, what: "t", reader: JSONReader.runtimeState) == state)
    }

    @Test func aBadStateFileIsReportedAsJSONDecoderReportsIt() {
        for text in [#"{"id":"c","pid":"1"}"#, #"{"id":"c"}"#, "{", #"{"id":"c","pid":1,"pidStartTime":1,"bundle":"b","rootfs":"r","created":"c","cgroups":{"backend":"x","version":"v3","path":"p","controllers":[]}}"#] {
            #expect(JSONReader.runtimeState(Array(text.utf8)) == nil)
            #expect(throws: GockerError.self) { try JSON.decode(RuntimeState.self, from: Array(text.utf8), what: "t", reader: JSONReader.runtimeState) }
        }
    }

    @Test func imageRecordsAndTagsAreReadAsCodableReadsThem() throws {
        let images = [
            ImageRecord(id: String(repeating: "a", count: 64), layers: ["l1", "l2"],
                        config: ImageConfig(Cmd: ["sh"], Entrypoint: ["/e", "-x"], Env: ["A=1"], WorkingDir: "/w", User: "1:2"),
                        created: "2026-11-29T10:00:00Z", size: 1234, comment: "c \"q\"", author: "me", parent: "p",
                        history: [ImageHistory(created: "t", created_by: "import", author: "a", comment: "c", empty_layer: true)]),
            ImageRecord(id: "b", layers: [], config: ImageConfig(), created: ""),
        ]
        for image in images {
            let bytes = JSON.encode(image)
            #expect(JSONReader.imageRecord(bytes) == image)
            #expect(try JSON.decode(ImageRecord.self, from: bytes, what: "t") == image)
        }
        let tags = ["busybox:latest": String(repeating: "a", count: 64), "x/y:1": "b"]
        #expect(JSONReader.stringMap(JSON.encode(tags)) == tags)
        #expect(JSONReader.stringMap(Array(#"{"a":1}"#.utf8)) == nil)
        #expect(JSONReader.imageRecord(Array(#"{"id":"x","layers":[],"created":"t"}"#.utf8)) == nil, "no config")
    }
}

/// A config JSONDecoder refuses is reported naming the bad field.
struct DecodingErrorTests {
    @Test(arguments: [
        (#"{"ociVersion": "1.0.2", "process": {"user": {"uid": -1, "gid": 0}, "cwd": "/"}}"#, "process.user.uid", "-1"),
        (#"{"ociVersion": "1.0.2", "process": {"user": {"uid": 0, "gid": 4294967296}, "cwd": "/"}}"#, "process.user.gid", "4294967296"),
        (#"{"ociVersion": "1.0.2", "linux": {"resources": {"memory": {"limit": "x"}}}}"#, "linux.resources.memory.limit", ""),
        (#"{"ociVersion": "1.0.2", "process": {"user": {"uid": 0, "gid": 0}}}"#, "process.cwd", ""),
    ] as [(String, String, String)])
    func theFieldIsNamed(json: String, field: String, value: String) throws {
        let error = try #require(throws: GockerError.self) {
            try JSON.decode(Spec.self, from: Array(json.utf8), what: "config.json", reader: JSONReader.spec)
        }
        #expect(error.description.contains(field) && (value.isEmpty || error.description.contains(value)), "\(error)")
        #expect(!error.description.contains("not valid JSON"), "\(error)")
        #expect(!error.description.contains("\n"))
    }
}
