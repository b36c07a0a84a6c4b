import Foundation
import Testing

/// Input gocker must refuse, or read as docker reads it: image names
/// outside docker's grammar. Each refusal is one line on stderr,
/// gocker's status, and nothing left behind.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct BadInputTests {
    func expectRefused(_ r: Sandbox.Result, status: Int32 = 125, saying text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("gocker: error: ") && r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func imageNamesOutsideDockersGrammarAreRefused() throws {
        let box = try Sandbox()
        #expect(try box.gocker(["run", "--rm", "busybox", "true"]).status == 0)
        let repositories = box.contents(box.dataRoot + "/image/repositories.json")
        expectRefused(try box.gocker(["tag", "busybox", "../../x:1"]), saying: "invalid reference format: \"../../x:1\"")
        expectRefused(try box.gocker(["run", "--rm", "../../etc"]), saying: "invalid reference format: \"../../etc\"")
        expectRefused(try box.gocker(["create", "Busybox"]), saying: "invalid reference format")
        // rmi reports each image it could not remove and exits 1, as docker does.
        expectRefused(try box.gocker(["rmi", "../../x:1"]), status: 1, saying: "invalid reference format")
        #expect(try box.gocker(["run", "--name", "src", "busybox", "true"]).status == 0)
        expectRefused(try box.gocker(["commit", "src", "../../x:1"]), saying: "invalid reference format")
        #expect(try box.gocker(["export", "-o", box.dir + "/root.tar", "src"]).status == 0)
        expectRefused(try box.gocker(["import", box.dir + "/root.tar", "../x"]), saying: "invalid reference format")
        #expect(try box.gocker(["rm", "src"]).status == 0)
        #expect(box.contents(box.dataRoot + "/image/repositories.json") == repositories, "no tag was added")

        // An archive whose name would be a path out of the store.
        let archive = box.dir + "/busybox.tar", unpacked = box.dir + "/unpacked"
        #expect(try box.gocker(["save", "-o", archive, "busybox"]).status == 0)
        #expect(try shell("mkdir '\(unpacked)' && tar -xf '\(archive)' -C '\(unpacked)'").status == 0)
        let indexURL = URL(fileURLWithPath: unpacked + "/index.json")
        var index = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        var manifests = try #require(index["manifests"] as? [[String: Any]])
        manifests[0]["annotations"] = ["io.containerd.image.name": "../../../tmp/x/pwned:1",
                                       "org.opencontainers.image.ref.name": "../../../tmp/x/pwned:1"]
        index["manifests"] = manifests
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
        #expect(try shell("tar -cf '\(box.dir)/pwned.tar' -C '\(unpacked)' .").status == 0)
        #expect(try box.gocker(["rmi", "busybox"]).status == 0)
        expectRefused(try box.gocker(["load", "-i", box.dir + "/pwned.tar"]), saying: "invalid reference format")
        #expect(try box.gocker(["images", "-q"]).stdout == "", "nothing was loaded")
        #expect(box.list(box.dataRoot + "/image/layers") == [])
        #expect(!FileManager.default.fileExists(atPath: "/tmp/x/pwned"))

        #expect(box.list(box.dataRoot + "/image").filter { $0.hasPrefix(".tmp") } == [])
        box.expectNothingLeft()
    }
}
