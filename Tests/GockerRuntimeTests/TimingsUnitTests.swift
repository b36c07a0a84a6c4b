import CGockerCore
import FoundationEssentials
import Glibc
import GockerCore
import Testing
@testable import GockerRuntime

struct TimingsTests {
    /// Marks 1 ms apart, in the order a `gocker run` passes them.
    func marks(skipping skipped: Set<UInt32> = []) -> [UInt64] {
        (0..<GK_MARK_COUNT.rawValue).map { skipped.contains($0) ? 0 : 1_000_000_000 + UInt64($0) * 1_000_000 }
    }

    @Test func everyPhaseOfARunAndTheTotal() {
        let line = Timings.phases(marks: marks())
        #expect(line.phases.map(\.name) == Timings.phaseNames)
        // Two segments each: config and bundle (BUNDLE, CONFIG), cgroups
        // (CLONE, GO), mounts (MOUNTED, READY).
        let ms = Dictionary(uniqueKeysWithValues: line.phases.map { ($0.name, $0.ms) })
        #expect(ms["arguments"] == 1 && ms["image"] == 1 && ms["teardown"] == 1)
        #expect(ms["config and bundle"] == 2 && ms["cgroups"] == 2 && ms["mounts, devices, user"] == 2)
        #expect(line.total == Double(GK_MARK_END.rawValue))
        #expect(line.phases.reduce(0) { $0 + $1.ms } == line.total)
    }

    @Test func aMarkNotReachedGivesItsTimeToTheNext() {
        // `gocker oci run`: no image, no bundle of its own.
        let line = Timings.phases(marks: marks(skipping: [GK_MARK_IMAGE.rawValue, GK_MARK_BUNDLE.rawValue]))
        #expect(!line.phases.contains { $0.name == "image" })
        #expect(line.phases.first { $0.name == "config and bundle" }?.ms == 3)
        #expect(line.total == Double(GK_MARK_END.rawValue))
    }

    @Test func aLateGoEndsTheCgroupWaitAfterTheMounts() {
        // The child mounted its root and the rest while the parent made its
        // groups: GO falls between MOUNTED and READY.
        var m = marks()
        var t = m[Int(GK_MARK_CHILD.rawValue)]
        for (mark, after) in [(GK_MARK_PIVOTED, 1), (GK_MARK_MOUNTED, 1), (GK_MARK_GO, 3), (GK_MARK_READY, 1),
                              (GK_MARK_EXEC, 1), (GK_MARK_STARTED, 1), (GK_MARK_EXITED, 1), (GK_MARK_END, 1)] {
            t += UInt64(after) * 1_000_000
            m[Int(mark.rawValue)] = t
        }
        let line = Timings.phases(marks: m)
        let ms = Dictionary(uniqueKeysWithValues: line.phases.map { ($0.name, $0.ms) })
        #expect(ms["rootfs and pivot_root"] == 1)
        #expect(ms["cgroups"] == 4.0, "CLONE's segment (1) and the wait for GO (3)")
        #expect(ms["mounts, devices, user"] == 2.0, "MOUNTED's segment and READY's")
        #expect(line.phases.reduce(0) { $0 + $1.ms } == line.total)
    }

    @Test func renderedOneLinePerPhaseThenTheTotal() {
        let text = Timings.render(Timings.Line(phases: [.init(name: "arguments", ms: 0.4123), .init(name: "exec", ms: 12)],
                                               total: 12.4123))
        let lines = text.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("arguments ") && lines[0].hasSuffix(" 0.412 ms"))
        #expect(lines[1].hasSuffix(" 12.000 ms"))
        #expect(lines[2].hasPrefix("total ") && lines[2].hasSuffix(" 12.412 ms"))
        #expect(Set(lines.map(\.count)).count == 1, "aligned")
    }

    @Test func theJSONLineDecodes() throws {
        let line = Timings.Line(phases: [.init(name: "rootfs and pivot_root", ms: 0.25)], total: 1.5)
        let text = Timings.json(line)
        #expect(text.hasSuffix("}\n") && text.filter { $0 == "\n" }.count == 1)
        #expect(try JSON.decode(Timings.Line.self, from: Array(text.utf8), what: "line") == line)
    }

    @Test func fixedDecimals() {
        #expect(Timings.fixed(1.23456, 3) == "1.235")
        #expect(Timings.fixed(2, 0) == "2")
        #expect(Timings.fixed(0.0004, 3) == "0.000")
        #expect(Timings.fixed(-0.0004, 3) == "0.000")
        #expect(Timings.fixed(-2.5004, 3) == "-2.500")
        #expect(Timings.fixed(0.05, 1) == "0.1")
        let huge = Timings.fixed(1e300, 2)
        #expect(huge.count == 304 && huge.hasPrefix("1000000000000000052") && huge.hasSuffix(".00"), "\(huge)")
    }

    /// The same text as C's "%.*f" for values a start's timings and the
    /// bench print (none of them half a unit of its last digit away from
    /// a tie, where a product in binary may round the other way).
    @Test func fixedIsCsFormat() {
        var rng = SplitMix64(seed: 0x9E37_79B9_7F4A_7C15)
        var checked = 0
        for i in 0..<20000 {
            let magnitude = [1.0, 10, 1000, 1e6, 1e9][i % 5]
            var value = Double(rng.next() % 1_000_000_007) / 1_000_000_007 * magnitude
            if rng.next() % 4 == 0 { value = -value }
            let decimals = Int(rng.next() % 7)
            var scale = 1.0
            for _ in 0..<decimals { scale *= 10 }
            let frac = (value.magnitude * scale).truncatingRemainder(dividingBy: 1)
            guard abs(frac - 0.5) > 1e-6 else { continue }
            var buf = [CChar](repeating: 0, count: 64)
            _ = withVaList([Int32(decimals), value]) { vsnprintf(&buf, buf.count, "%.*f", $0) }
            var c = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if c.hasPrefix("-"), c.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) { c.removeFirst() }
            #expect(Timings.fixed(value, decimals) == c, "\(value) with \(decimals) decimals")
            checked += 1
        }
        #expect(checked > 19000)
    }
}
