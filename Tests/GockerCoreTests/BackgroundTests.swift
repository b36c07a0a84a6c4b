import CGockerCore
import Glibc
import Synchronization
import Testing
@testable import GockerCore

struct BackgroundTests {
    /// The kernel's id of the calling thread.
    static func threadID() -> Int32 {
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buf, buf.count - 1)  // "PID/task/TID"
        precondition(n > 0)
        let text = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Int32(text.split(separator: "/").last!)!
    }

    @Test func runsOnAnotherThread() {
        let caller = Self.threadID()
        let job = Background { Self.threadID() }
        let worker = job.value()
        #expect(worker != caller)
        #expect(job.value() == worker)  // asked again: the same value
    }

    /// `then` runs after the first work, on its thread, given its value.
    @Test func thenRunsAfterOnTheSameThread() {
        let order = Mutex<[String]>([])
        let first = Background { () -> (Int32, Int) in
            usleep(20_000)  // the follow-up is queued long before this ends
            order.withLock { $0.append("first") }
            return (Self.threadID(), 20)
        }
        let second = first.then { (tid, n) -> (Int32, Int, Int32) in
            order.withLock { $0.append("second") }
            return (tid, n + 1, Self.threadID())
        }
        let (tid, n, secondTID) = second.value()
        #expect(n == 21)
        #expect(secondTID == tid)
        #expect(secondTID != Self.threadID())
        #expect(order.withLock { $0 } == ["first", "second"])
        #expect(first.value().1 == 20)
    }

    /// The thread blocks the signals gocker waits for or forwards, so that
    /// none is taken (and dropped, or fatal) there.
    @Test func theThreadBlocksSignals() throws {
        // Whatever the test's own thread blocks, these are open in it here.
        let signals = [SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGWINCH]
        var open = sigset_t(), saved = sigset_t()
        sigemptyset(&open)
        for sig in signals { sigaddset(&open, sig) }
        pthread_sigmask(SIG_UNBLOCK, &open, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        let blocked = Background { () -> UInt64? in
            let status = (try? Sys.readText("/proc/thread-self/status")) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
            return line.flatMap { UInt64($0.dropFirst("SigBlk:".count).trimmed, radix: 16) }
        }.value()
        let mask = try #require(blocked)
        for sig in signals {
            #expect(mask & (1 << UInt64(sig - 1)) != 0, "signal \(sig)")
        }
    }

    /// A wait spins for a bounded time and then says to sleep, and keeps
    /// saying so (every wait of a start relies on it to fall back).
    @Test func aSpinnerGivesUpAndStaysGivenUp() {
        var spin = gk_spinner()
        var start = timespec(), now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var calls = 0
        while gk_spin(&spin) != 0 && calls < 100_000_000 { calls += 1 }
        #expect(calls < 100_000_000, "still spinning")
        clock_gettime(CLOCK_MONOTONIC, &now)
        let elapsed = (now.tv_sec - start.tv_sec) * 1_000_000_000 + (now.tv_nsec - start.tv_nsec)
        // It spun for its window first (none with one CPU), and the window
        // is 1 ms where more than one CPU may be used and GOCKER_SPIN_NS
        // says nothing else (the tests' machines).
        let window = gk_spin_window()
        #expect(window == 0 ? calls == 0 : calls > 0 && elapsed >= window)
        let status = (try? Sys.readText("/proc/self/status")) ?? ""
        let allowed = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") } ?? ""
        if allowed.contains("-") || allowed.contains(","), Sys.env("GOCKER_SPIN_NS") == nil {
            #expect(window == 1_000_000, "\(allowed)")
        }
        for _ in 0..<1000 { #expect(gk_spin(&spin) == 0) }
    }

    /// Dropped without `value()`, a Background still waits for its work.
    @Test func droppedWaitsForItsWork() {
        let done = Atomic<Bool>(false)
        do {
            _ = Background { () -> Int in
                usleep(20_000)
                done.store(true, ordering: .sequentiallyConsistent)
                return 0
            }
        }
        let finished = done.load(ordering: .sequentiallyConsistent)
        #expect(finished)
    }

    /// A follow-up queued on a Background that is then dropped still runs,
    /// and its thread ends once no Background holds it.
    @Test func threadEndsAfterTheLastHolder() throws {
        var tid: Int32 = 0
        do {
            let first = Background { 1 }
            let second = first.then { $0 + 1 }
            #expect(second.value() == 2)
            tid = second.then { _ in Self.threadID() }.value()
        }
        // The thread is gone soon after: its /proc entry disappears.
        var gone = false
        for _ in 0..<200 where !gone {
            gone = access("/proc/self/task/\(tid)", F_OK) != 0
            if !gone { usleep(5_000) }
        }
        #expect(gone)
    }
}
