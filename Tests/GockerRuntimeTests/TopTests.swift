import Glibc
import Testing
@testable import GockerRuntime

struct TopTests {
    @Test func ttyNamesAsPsShowsThem() {
        #expect(ProcessRow.ttyName(0) == "?")
        #expect(ProcessRow.ttyName(136 << 8) == "pts/0")
        #expect(ProcessRow.ttyName(136 << 8 | 7) == "pts/7")
        #expect(ProcessRow.ttyName(137 << 8 | 2) == "pts/258")
        #expect(ProcessRow.ttyName(4 << 8 | 1) == "tty1")
        #expect(ProcessRow.ttyName(4 << 8 | 65) == "ttyS1")
    }

    @Test func aRowReadFromProcAndItsCells() throws {
        let row = try #require(ProcessRow.read(pid: getpid(), clock: ProcClock.now()))
        #expect(row.pid == getpid() && row.ppid == getppid())
        #expect(row.uid == getuid())
        #expect(!row.command.isEmpty)
        var r = row
        r.cpuSeconds = 86400 + 3600 + 62
        r.startTime = Int(time(nil))
        let cells = r.cells(userName: { $0 == row.uid ? "someone" : nil }, now: Int(time(nil)))
        #expect(cells.count == ProcessRow.header.count)
        #expect(cells[0] == "someone" && cells[6] == "1-01:01:02")
        #expect(cells[4].count == 5 && cells[4].contains(":"), "started today: HH:MM")
        #expect(ProcessRow.read(pid: Int32.max, clock: ProcClock.now()) == nil)
    }
}
