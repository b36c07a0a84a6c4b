import Testing
@testable import GockerCore

/// The text of the progress line of import, load, save, commit and export.
struct ProgressLineTests {
    @Test func theLineSaysBytesRateAndTimeLeftWhenTheTotalIsKnown() {
        #expect(ProgressLine.line(verb: "Saving", done: 50_000_000, total: 200_000_000, seconds: 2)
                == "Saving 50MB / 200MB (25%)  25MB/s  ETA 6s")
        #expect(ProgressLine.line(verb: "Exporting", done: 1_500_000_000, total: nil, seconds: 10)
                == "Exporting 1.5GB  150MB/s")
        #expect(ProgressLine.clock(59.2) == "1m00s" && ProgressLine.clock(3725) == "1h02m" && ProgressLine.clock(4) == "4s")
    }

}
