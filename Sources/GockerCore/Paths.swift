import Glibc

public enum Paths {
    /// `path` made absolute against the working directory and cleaned
    /// ("." and ".." components and repeated slashes resolved by name, as
    /// Go's filepath.Abs does for docker's --data-root). gocker's roots are
    /// made so once, at the start: a relative one would name other
    /// directories in a process that changes its directory, and in the
    /// monitor and the container's mount namespace. "" stays "".
    public static func absolute(_ path: String, cwd: () -> String = currentDirectory) -> String {
        guard !path.isEmpty else { return path }
        let full = path.hasPrefix("/") ? path : cwd() + "/" + path
        var parts: [Substring] = []
        for c in full.split(separator: "/") {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        var out = ""
        for p in parts { out += "/" + p }
        return out.isEmpty ? "/" : out
    }

    public static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
