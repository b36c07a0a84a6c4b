import Foundation
import Testing

/// `gocker run -it` on a pty pair the test owns, as a person at a terminal.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct TerminalTests {
    final class PTY {
        let master: Int32
        let slave: Int32
        var output = ""

        init() throws {
            // posix_openpt and friends are not in Swift's Glibc module: the same by hand.
            master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
            var unlock: Int32 = 0
            var number: UInt32 = 0
            let TIOCSPTLCK: UInt = 0x4004_5431, TIOCGPTN: UInt = 0x8004_5430
            guard master >= 0, ioctl(master, TIOCSPTLCK, &unlock) == 0, ioctl(master, TIOCGPTN, &number) == 0 else {
                throw POSIXError(.EIO)
            }
            slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
            guard slave >= 0 else { throw POSIXError(.EIO) }
        }

        deinit {
            close(master)
            close(slave)
        }

        func setSize(rows: UInt16, cols: UInt16) {
            var ws = winsize(ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0)
            _ = ioctl(master, UInt(TIOCSWINSZ), &ws)
        }

        /// Starts gocker with `args` in `box`, this pty's slave as its stdio.
        func startGocker(_ args: [String], in box: Sandbox) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Sandbox.binary)
            p.arguments = args
            p.environment = box.environment
            let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
            p.standardInput = handle
            p.standardOutput = handle
            p.standardError = handle
            try p.run()
            return p
        }

        func send(_ text: String) {
            _ = text.withCString { write(master, $0, strlen($0)) }
        }

        /// Reads until the output holds `text` (after `from`), for up to 10 s.
        func expect(_ text: String, after from: String.Index? = nil) -> Bool {
            let deadline = Date().addingTimeInterval(10)
            var buf = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline {
                if output[(from ?? output.startIndex)...].contains(text) { return true }
                var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 100) > 0 {
                    let n = read(master, &buf, buf.count)
                    if n > 0 { output += String(decoding: buf[0..<n], as: UTF8.self) } else { break }
                }
            }
            return output[(from ?? output.startIndex)...].contains(text)
        }
    }

    @Test func aRealTerminal() throws {
        let box = try Sandbox()
        let pty = try PTY()
        pty.setSize(rows: 33, cols: 111)
        var before = termios()
        tcgetattr(pty.slave, &before)

        let p = try pty.startGocker(["run", "-it", "--rm", "busybox", "sh"], in: box)

        pty.send("tty\n")
        #expect(pty.expect("/dev/pts/"), "\(pty.output)")
        var mark = pty.output.endIndex
        pty.send("stty size\n")
        #expect(pty.expect("33 111", after: mark), "\(pty.output)")

        pty.setSize(rows: 40, cols: 120)
        kill(p.processIdentifier, SIGWINCH)
        mark = pty.output.endIndex
        pty.send("stty size\n")
        #expect(pty.expect("40 120", after: mark), "\(pty.output)")

        // ^C reaches the container's foreground process, not gocker: the
        // shell runs the next line within 10 s, so `sleep 30` was stopped.
        pty.send("sleep 30\n")
        usleep(500_000)
        mark = pty.output.endIndex
        pty.send("\u{03}")
        pty.send("echo after-interrupt\n")
        #expect(pty.expect("\nafter-interrupt\r\n", after: mark), "\(pty.output)")
        #expect(p.isRunning)

        // ^D on an empty line ends the shell, and gocker with its status:
        // first make sure the shell is idle at its prompt.
        mark = pty.output.endIndex
        pty.send("echo idle-now\n")
        #expect(pty.expect("\nidle-now\r\n", after: mark), "\(pty.output)")
        #expect(pty.expect("# ", after: pty.output.range(of: "\nidle-now\r\n", range: mark..<pty.output.endIndex)?.upperBound))
        pty.send("\u{04}")
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!p.isRunning)
        // Never hang here: an interactive shell ignores the TERM gocker would pass on.
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        box.finish(p)
        #expect(p.terminationStatus == 0)

        var after = termios()
        tcgetattr(pty.slave, &after)
        #expect(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag && after.c_oflag == before.c_oflag,
                "the terminal's mode is restored")
        box.expectNothingLeft()
    }

    @Test func ttyWithoutInteractiveStillGetsATerminal() throws {
        let box = try Sandbox()
        let r = try box.gocker(["run", "-t", "--rm", "busybox", "sh", "-c", "tty; test -t 0 && echo stdin-is-tty"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("/dev/pts/"))
        #expect(r.stdout.contains("stdin-is-tty"))
        box.expectNothingLeft()
    }
}

/// Containers with a terminal keep their output in the log too.
@Suite(.enabled(if: canRunContainers, "starts real containers: needs root"))
struct TerminalLogTests {
    @Test func attachedTerminalOutputIsLogged() throws {
        let box = try Sandbox()
        defer {
            _ = try? box.gocker(["rm", "-f", "tl"])
            box.expectNothingLeft()
        }
        let r = try box.gocker(["run", "-t", "--name", "tl", "busybox", "sh", "-c", "echo line1; tty"])
        #expect(r.status == 0, "\(r.stderr)")
        let logs = try box.gocker(["logs", "tl"])
        #expect(logs.stdout.hasPrefix("line1\r\n/dev/pts/0\r\n"), "\(logs.stdout)")
    }

    @Test func detachedWithATerminalTheMonitorHoldsThePty() throws {
        let box = try Sandbox()
        defer {
            _ = try? box.gocker(["rm", "-f", "dt"])
            box.expectNothingLeft()
        }
        let run = try box.gocker(["run", "-dit", "--name", "dt", "busybox", "sh", "-c",
                                  "tty; test -t 0 && echo stdin-is-a-tty; exec sh"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(box.waitFor { (try? box.gocker(["logs", "dt"]))?.stdout.contains("stdin-is-a-tty") == true })
        #expect(try box.gocker(["logs", "dt"]).stdout.hasPrefix("/dev/pts/0\r\n"))
        // The shell waits on its terminal: the monitor keeps the master open.
        usleep(300_000)
        let ps = try box.gocker(["ps", "--format", "{{.Names}} {{.Status}}"])
        #expect(ps.stdout.hasPrefix("dt Up"), "\(ps.stdout)")
        #expect(try box.gocker(["exec", "dt", "sh", "-c", "readlink /proc/1/fd/0"]).stdout == "/dev/pts/0\n")
        // stop, then start: a new pty, logged again.
        #expect(try box.gocker(["stop", "-t", "1", "dt"]).status == 0)
        #expect(try box.gocker(["start", "dt"]).status == 0)
        #expect(box.waitFor {
            (try? box.gocker(["logs", "dt"]))?.stdout.components(separatedBy: "stdin-is-a-tty").count == 3
        })
    }
}
