import Glibc

extension Sys {
    /// Runs a host program to completion and returns its standard output.
    /// Used off the container start path (building the built-in image).
    public static func output(of argv: [String]) throws(GockerError) -> [UInt8] {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            throw GockerError(.system, "run \(argv[0])", cause: SystemCallError("pipe", errno: errno))
        }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let r = posix_spawn(&pid, argv[0], &actions, nil, &cargs, environ)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard r == 0 else {
            throw GockerError(.system, "run \(argv[0])", cause: SystemCallError("posix_spawn", path: argv[0], errno: r))
        }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buf.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n > 0 { out.append(contentsOf: buf[0..<n]) } else if n == 0 || errno != EINTR { break }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            throw GockerError(.system, "run \(argv.joined(separator: " ")): exit status \(status >> 8)")
        }
        return out
    }
}
