import Foundation
import Testing

/// A config.json member gocker does not enforce and that a user relies on
/// for safety is refused by `oci create` and `oci run`, naming it, with
/// nothing made; a member it does not model and that is not one of those
/// is kept, and the container runs.
@Suite(.serialized) struct ConfigMemberTests {
    @Test(arguments: [
        ("hooks", #"{"prestart":[{"path":"true"}]}"#, "hooks.prestart", "path is not absolute"),
        ("hooks", #"{"poststop":[{"path":"/bin/true","timeout":0}]}"#, "hooks.poststop", "timeout 0 is not a positive"),
        ("linux.uidMappings", #"[{"containerID":0,"hostID":100000,"size":65536}]"#, "linux.uidMappings", "need a user namespace in linux.namespaces"),
        ("process.apparmorProfile", #""gocker-test""#, "process.apparmorProfile", "AppArmor is not enabled on this host"),
        ("process.selinuxLabel", #""system_u:system_r:container_t:s0""#, "process.selinuxLabel", "SELinux is not enabled on this host"),
        ("linux.intelRdt", #"{"closID":"x"}"#, "linux.intelRdt", "not supported"),
        ("linux.sysctl", #"{"vm.swappiness":"10"}"#, "vm.swappiness", "is not in a separate kernel namespace"),
        ("process.oomScoreAdj", "1001", "process.oomScoreAdj", "outside -1000..1000"),
        ("linux.resources.memory.kernelTCP", "1048576", "linux.resources.memory.kernelTCP", "not supported"),
    ] as [(String, String, String, String)])
    func aSafetyMemberIsRefusedWithNothingMade(path: String, json: String, named: String, why: String) throws {
        let box = try Sandbox()
        let oci = OCITests()
        let bundle = try oci.makeBundle(box, args: ["true"])
        defer { try? FileManager.default.removeItem(atPath: bundle + "/rootfs") }
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        try oci.editConfig(bundle) { c in
            let parts = path.split(separator: ".").map(String.init)
            func set(_ object: inout [String: Any], _ rest: ArraySlice<String>) {
                guard rest.count > 1 else { object[rest.first!] = value; return }
                var inner = object[rest.first!] as? [String: Any] ?? [:]
                set(&inner, rest.dropFirst())
                object[rest.first!] = inner
            }
            set(&c, parts[...])
        }
        for verb in ["run", "create"] {
            let r = try box.gocker(["oci", verb, "--bundle", bundle, "refused-\(verb)"])
            #expect(r.status != 0, "\(verb): \(r.stderr)")
            #expect(r.stderr.contains(named) && r.stderr.contains(why), "\(verb): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(verb): \(r.stderr)")
            #expect(try box.gocker(["oci", "state", "refused-\(verb)"]).status != 0, "\(verb): no state left")
        }
        box.expectNothingLeft()
    }

    @Test func anUnmodeledMemberIsKeptAndTheContainerRuns() throws {
        let box = try Sandbox()
        let oci = OCITests()
        let bundle = try oci.makeBundle(box, args: ["true"])
        defer { try? FileManager.default.removeItem(atPath: bundle + "/rootfs") }
        try oci.editConfig(bundle) { c in
            var linux = c["linux"] as? [String: Any] ?? [:]
            linux["sysctl"] = [:] as [String: Any]
            c["linux"] = linux
            c["org.example.extension"] = ["kept": true]
            c["hooks"] = [:] as [String: Any]
        }
        let r = try box.gocker(["oci", "run", "--bundle", bundle, "kept"])
        #expect(r.status == 0, "\(r.stderr)")
        box.expectNothingLeft()
    }
}
