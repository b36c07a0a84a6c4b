import Glibc

public enum Paths {
    /// Where the host's cgroup hierarchies are mounted (v1: one directory
    /// per hierarchy; v2: the unified hierarchy itself).
    public static let cgroupRoot = "/sys/fs/cgroup"

    /// `path` made absolute against the working directory and cleaned
    /// ("." and ".." components and repeated slashes resolved by name, as
    /// Go's filepath.Abs does for docker's --data-root). gocker's roots are
    /// made so once, at the start: a relative one would name other
    /// directories in a process that changes its directory, and in the
    /// monitor and the container's mount namespace. "" stays "".
    public static func absolute(_ path: String, cwd: () -> String = currentDirectory) -> String {
        guard !path.isEmpty else { return path }
        return clean(path.hasPrefix("/") ? path : cwd() + "/" + path)
    }

    /// An absolute path with its "." and ".." components and repeated
    /// slashes resolved by name ("/sys/../etc" is "/etc"). By hand, on the
    /// start path: no split and join, whose first use in a process has the
    /// runtime scan every protocol conformance in the binary.
    public static func clean(_ path: String) -> String {
        var parts: [String] = []
        for c in Sys.components(path) {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        var out = ""
        for p in parts {
            out += "/"
            out += p
        }
        return out.isEmpty ? "/" : out
    }

    public static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
