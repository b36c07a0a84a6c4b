import Glibc
import GockerCore

/// Signal names and numbers, as `kill -s` and `oci kill` take them.
public enum Signals {
    static let names: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("IOT", SIGIOT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL),
        ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM),
        ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT), ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP),
        ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO),
        ("POLL", SIGPOLL), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// "TERM", "SIGTERM", "sigterm", "15" or "RTMIN+3" to a signal number.
    public static func parse(_ text: String) throws(GockerError) -> Int32 {
        if let n = Int32(text) {
            guard n > 0 && n < 65 else { throw GockerError(.invalidArgument, "invalid signal \"\(text)\"") }
            return n
        }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let hit = names.first(where: { $0.0 == name }) { return hit.1 }
        let rtmin = Int32(34), rtmax = Int32(64)
        if name == "RTMIN" { return rtmin }
        if name == "RTMAX" { return rtmax }
        if name.hasPrefix("RTMIN+"), let k = Int32(name.dropFirst(6)), rtmin + k <= rtmax { return rtmin + k }
        if name.hasPrefix("RTMAX-"), let k = Int32(name.dropFirst(6)), rtmax - k >= rtmin { return rtmax - k }
        throw GockerError(.invalidArgument, "invalid signal \"\(text)\"")
    }
}
