import Glibc

/// The one error type of gocker: a code that can grow, a message that says
/// what was being done to what, and the cause underneath.
public struct GockerError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidArgument = Code("invalid argument")
        public static let notFound = Code("not found")
        /// No image by that name or id in the store (`run --pull missing`
        /// pulls it then).
        public static let imageNotFound = Code("image not found")
        public static let alreadyExists = Code("already exists")
        public static let invalidState = Code("invalid state")
        public static let system = Code("system")
        public static let containerSetup = Code("container setup")
        /// The command could not be run inside the container (exit 126).
        public static let commandNotExecutable = Code("command not executable")
        /// The command does not exist inside the container (exit 127).
        public static let commandNotFound = Code("command not found")
        public static let invalidConfig = Code("invalid config")
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return message }
        return "\(message): \(cause)"
    }

    /// The exit status docker uses for this failure.
    public var exitStatus: Int32 {
        switch code {
        case .commandNotExecutable: return 126
        case .commandNotFound: return 127
        default: return 125
        }
    }
}

/// A failed system call: which call, on what path, with what data, and errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var path: String?
    public var data: String?
    public var errno: Int32

    public init(_ call: String, path: String? = nil, data: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.data = data
        self.errno = errno
    }

    public var description: String {
        var s = call
        if let path { s += " \(path)" }
        if let data { s += " \"\(data)\"" }
        return s + ": " + errnoText(errno)
    }
}

/// strerror, lower-cased as Go and docker print it ("no such file or directory").
public func errnoText(_ e: Int32) -> String {
    guard let p = strerror(e) else { return "errno \(e)" }
    let s = String(cString: p)
    guard let first = s.first else { return s }
    return first.lowercased() + s.dropFirst()
}

/// Runs system calls on behalf of `what` ("create state directory of abc"),
/// turning their failure into a GockerError that says so.
@discardableResult
public func performing<T>(_ what: @autoclosure () -> String, code: GockerError.Code = .system,
                          _ body: () throws(SystemCallError) -> T) throws(GockerError) -> T {
    do { return try body() } catch { throw GockerError(code, what(), cause: error) }
}
