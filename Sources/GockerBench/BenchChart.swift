import GockerCore
import GockerRuntime

/// `gocker bench --svg`: the latency distribution of each row as a box plot
/// (box p25-p75, line at p50, whiskers from min to p99, a dot at max), one
/// row under the other on a common millisecond axis.
extension BenchResult {
    public func svg() -> String {
        let fixed = Timings.fixed
        let width = 960.0
        let left = 250.0, right = 170.0, top = 78.0, rowHeight = 34.0, bottom = 64.0
        let plotWidth = width - left - right
        let height = top + rowHeight * Double(summary.count) + bottom
        let upper = Self.niceCeiling(summary.compactMap { $0.stats.map { Swift.max($0.p99, $0.p75) } }.max() ?? 1, margin: 1.12)
        func x(_ ms: Double) -> Double { left + Swift.min(ms, upper) / upper * plotWidth }
        func n(_ v: Double) -> String { fixed(v, 1) }

        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" \
            viewBox="0 0 \(n(width)) \(n(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="#ffffff"/>

            """
        let mode = parallel == 1 ? "one at a time" : "\(parallel) at a time"
        s += text(x: 16, y: 26, "Container start latency of `true`: \(count) starts per row, \(mode)", size: 17, weight: "bold")
        let date = String(machine.date.prefix(16).map { $0 == "T" ? " " : $0 })
        s += text(x: 16, y: 48, "gocker bench · Linux \(machine.kernel) · \(machine.cpus) CPUs · \(date) UTC · spawn to reap, removal included",
                  size: 12, color: "#555555")

        for i in summary.indices where i % 2 == 1 {
            let y = top + rowHeight * Double(i)
            s += ##"<rect x="0" y="\##(n(y))" width="\##(n(width))" height="\##(n(rowHeight))" fill="#f6f7f9"/>"## + "\n"
        }

        // Grid and axis.
        let step = Self.niceStep(upper / 6)
        var tick = 0.0
        while tick <= upper + step / 1000 {
            let tx = x(tick)
            s += ##"<line x1="\##(n(tx))" y1="\##(n(top - 6))" x2="\##(n(tx))" y2="\##(n(height - bottom + 4))" stroke="#e4e4e4"/>"## + "\n"
            s += text(x: tx, y: height - bottom + 20, fixed(tick, step < 1 ? 1 : 0), size: 11, anchor: "middle", color: "#444444")
            tick += step
        }
        s += ##"<line x1="\##(n(left))" y1="\##(n(height - bottom + 4))" x2="\##(n(left + plotWidth))" y2="\##(n(height - bottom + 4))" stroke="#888888"/>"## + "\n"
        s += text(x: left + plotWidth / 2, y: height - bottom + 40, "milliseconds", size: 12, anchor: "middle", color: "#444444")
        s += text(x: 16, y: height - 10,
                  "box: p25–p75 · bar: p50 · whiskers: min–p99 · dot: max · ratio: p50 over gocker run --rm",
                  size: 11, color: "#666666")

        for (i, row) in summary.enumerated() {
            let cy = top + rowHeight * (Double(i) + 0.5)
            s += text(x: left - 12, y: cy + 4.5, row.row, anchor: "end")
            guard let st = row.stats else {
                s += text(x: left + 6, y: cy + 4.5, "failed: " + Self.shorten(row.error ?? "no start succeeded", to: 90),
                          size: 12, color: "#b00020")
                continue
            }
            let color = row.runtime == "gocker" || row.runtime == "gocker oci" ? "#2f6db5" : "#d9822b"
            let h = rowHeight * 0.52
            s += ##"<line x1="\##(n(x(st.min)))" y1="\##(n(cy))" x2="\##(n(x(st.p99)))" y2="\##(n(cy))" stroke="\##(color)" stroke-width="1.5"/>"## + "\n"
            for v in [st.min, st.p99] {
                s += ##"<line x1="\##(n(x(v)))" y1="\##(n(cy - h / 3))" x2="\##(n(x(v)))" y2="\##(n(cy + h / 3))" stroke="\##(color)" stroke-width="1.5"/>"## + "\n"
            }
            let boxWidth = Swift.max(1.5, x(st.p75) - x(st.p25))
            s += ##"<rect x="\##(n(x(st.p25)))" y="\##(n(cy - h / 2))" width="\##(n(boxWidth))" height="\##(n(h))" fill="\##(color)" fill-opacity="0.25" stroke="\##(color)" stroke-width="1.5"/>"## + "\n"
            s += ##"<line x1="\##(n(x(st.p50)))" y1="\##(n(cy - h / 2))" x2="\##(n(x(st.p50)))" y2="\##(n(cy + h / 2))" stroke="\##(color)" stroke-width="3"/>"## + "\n"
            if st.max > upper {
                s += ##"<path d="M\##(n(x(upper) - 7)),\##(n(cy - 5)) L\##(n(x(upper))),\##(n(cy)) L\##(n(x(upper) - 7)),\##(n(cy + 5)) Z" fill="\##(color)"/>"## + "\n"
            } else {
                s += ##"<circle cx="\##(n(x(st.max)))" cy="\##(n(cy))" r="3" fill="\##(color)"/>"## + "\n"
            }
            var label = "p50 \(fixed(st.p50, 2)) ms"
            if let ratio = row.ratio { label += " · \(fixed(ratio, 2))x" }
            if st.max > upper { label += " · max \(fixed(st.max, 0))" }
            s += text(x: left + plotWidth + 12, y: cy + 4.5, label, size: 12)
        }
        return s + "</svg>\n"
    }

    func text(x: Double, y: Double, _ content: String, size: Double = 13, anchor: String = "start",
              weight: String = "normal", color: String = "#111111") -> String {
        let f = { (v: Double) in Timings.fixed(v, 1) }
        return ##"<text x="\##(f(x))" y="\##(f(y))" font-size="\##(f(size))" text-anchor="\##(anchor)" font-weight="\##(weight)" fill="\##(color)">\##(Self.escape(content))</text>"## + "\n"
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static func shorten(_ s: String, to count: Int) -> String {
        s.count <= count ? s : String(s.prefix(count - 1)) + "…"
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        var magnitude = 1.0
        while magnitude * 10 <= raw { magnitude *= 10 }
        while magnitude > raw { magnitude /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where m * magnitude >= raw { return m * magnitude }
        return 10 * magnitude
    }

    /// The axis' end: `value` with a margin, rounded up to a whole step.
    static func niceCeiling(_ value: Double, margin: Double) -> Double {
        let v = Swift.max(value * margin, 0.001)
        let step = niceStep(v / 6)
        return (v / step).rounded(.up) * step
    }
}
