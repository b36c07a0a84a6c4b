import GockerCore
import Testing
@testable import GockerRuntime

/// container.json as gocker writes it is what JSONDecoder reads back.
struct RecordJSONTests {
    @Test func everyFieldOfARecordIsWritten() throws {
        var full = ContainerRecord(
            id: "c1", name: "web", image: "busybox", imageID: "i", args: ["sh", "-c", "echo \"x\"\n"], created: "t0",
            hostname: "h", network: "none", autoRemove: true, restartPolicy: "on-failure:3", cgroupBackend: "cgroupfs",
            cgroupParent: "p/q", logMaxSize: 10_485_760,
            mounts: [MountPoint(type: "volume", Name: "v", Source: "/s", Destination: "/d", Driver: "local", Mode: "z",
                                RW: false, Propagation: "rprivate")])
        full.exitCode = -1
        full.finished = "t1"
        full.oomKilled = true
        full.ownerPid = 42
        full.ownerStart = 18_446_744_073_709_551_615
        full.started = "t2"
        full.restartCount = 3
        full.stopRequested = false
        full.launch = LaunchExtras(overlay: "lowerdir=/a:/b,upperdir=/c/upper,workdir=/c/work,volatile", user: "nobody:users",
                                   groupAdd: ["tty", "7"], initProcess: true)
        let minimal = ContainerRecord(id: "c2", name: "n", image: "i", imageID: "x", args: [], created: "", hostname: "",
                                      network: "host", autoRemove: false, restartPolicy: nil, cgroupBackend: nil,
                                      cgroupParent: nil, logMaxSize: nil, mounts: nil)
        for record in [full, minimal] {
            #expect(try JSON.decode(ContainerRecord.self, from: record.json, what: "t") == record)
        }
    }
}
