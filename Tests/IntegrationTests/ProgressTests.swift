import Foundation
import Testing

/// The progress line of import, load, save, commit and export: on a
/// terminal only, after a second, silenced by -q.
@Suite(.enabled(if: canRunContainers, "imports as root and starts real containers: needs root"))
struct ProgressTests {
    /// A tarball of more than 8 MB (incompressible, so its size is its
    /// size), and a shell command that feeds it to standard input with a
    /// pause of 1.5 s halfway: the work outlasts the second before a line.
    func slowTarball(_ box: Sandbox) throws -> (tar: String, feed: String) {
        let tree = box.dir + "/tree"
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        #expect(try sh("head -c 9000000 /dev/urandom > '\(tree)/blob' && echo hi > '\(tree)/hi' && tar -cf '\(box.dir)/big.tar' -C '\(tree)' .") == 0)
        let tar = box.dir + "/big.tar"
        return (tar, "(head -c 4000000 '\(tar)'; sleep 1.5; tail -c +4000001 '\(tar)')")
    }

    /// Runs `command` with a terminal as its standard error (and output),
    /// through script(1): its status and what the terminal got.
    func underTerminal(_ box: Sandbox, _ command: String) throws -> (status: Int32, output: String) {
        try runTool("/usr/bin/script", ["-qec", command, "/dev/null"], environment: box.environment, scratch: box.dir)
    }

    @Test func importShowsBytesAndRateOnATerminalAndNothingWithQuiet() throws {
        let box = try Sandbox()
        let (_, feed) = try slowTarball(box)
        let g = Sandbox.binary
        let shown = try underTerminal(box, "\(feed) | '\(g)' import - slow:1")
        #expect(shown.status == 0, "\(shown.output)")
        // "\rImporting 4MB  2.6MB/s\e[K", redrawn, then cleared.
        #expect(shown.output.contains("\rImporting "), "\(shown.output.debugDescription)")
        #expect(shown.output.contains("MB/s") && shown.output.contains("\r\u{1B}[K"), "\(shown.output.debugDescription)")
        #expect(shown.output.contains("sha256:"))

        let quiet = try underTerminal(box, "\(feed) | '\(g)' import -q - slow:2")
        #expect(quiet.status == 0, "\(quiet.output)")
        #expect(!quiet.output.contains("Importing") && !quiet.output.contains("/s"), "\(quiet.output.debugDescription)")
        #expect(quiet.output.contains("sha256:"))
        box.expectNothingLeft()
    }

    @Test func noLineWhenStandardErrorIsNoTerminal() throws {
        let box = try Sandbox()
        let (tar, feed) = try slowTarball(box)
        // The same slow import, its standard error a file.
        let env = box.environment.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
        let err = box.dir + "/import.err"
        #expect(try sh("\(feed) | env \(env) '\(Sandbox.binary)' import - slow:1 > /dev/null 2> '\(err)'") == 0)
        #expect(box.contents(err) == "")
        // And each other command's standard error: empty.
        let results = [
            try box.gocker(["import", tar, "plain:1"]),
            try box.gocker(["save", "-o", box.dir + "/s.tar", "slow:1"]),
            try box.gocker(["rmi", "slow:1"]),
            try box.gocker(["load", "-i", box.dir + "/s.tar"]),
            try box.gocker(["create", "--name", "c2", "busybox"]),
            try box.gocker(["export", "-o", box.dir + "/e.tar", "c2"]),
            try box.gocker(["commit", "c2", "committed:1"]),
        ]
        for r in results {
            #expect(r.status == 0 && r.stderr == "", "\(r.stderr)")
        }
        #expect(try box.gocker(["rm", "c2"]).status == 0)
        box.expectNothingLeft()
    }

    @Test func eachCommandTakesQuiet() throws {
        let box = try Sandbox()
        for command in [["import"], ["load"], ["save"], ["commit"], ["export"], ["image", "import"], ["image", "save"], ["image", "load"]] {
            let r = try box.gocker(command + ["--help"])
            #expect(r.stdout.contains("-q, --quiet"), "\(command): \(r.stdout)")
        }
    }
}
