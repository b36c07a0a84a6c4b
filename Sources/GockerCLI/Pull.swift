import ArgumentParser
import CGockerCore
import Glibc
import GockerCore
import GockerRegistry

struct PullArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The platform of an image with several: os/arch[/variant] (default: this host's).",
                               valueName: "platform"))
    var platform: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Print only the image's name, and no progress on a terminal.")
    var quiet = false

    @Argument(help: ArgumentHelp("The image: [registry[:port]/]name[:tag] or name@sha256:digest.", valueName: "name"))
    var name: String

    func run() throws {
        let ref = try RegistryReference(parsing: name)
        let platform = try PlatformChoice(parsing: platform)
        let board = LayerBoard(fd: 1, quiet: quiet)
        var puller = Puller(store: global.engine.images, platform: platform, timeout: Self.timeout) { line in
            if !quiet { board.say(line) }
        }
        puller.layer = board.update
        try puller.pull(ref)
        print(ref.description)
    }

    /// `run` and `create` with `--pull`: `body` as it is where the image is
    /// here (nothing more on a start's path); where it is not (`missing`),
    /// or first (`always`), the image is pulled, docker's lines on stderr.
    static func pulling(_ line: RunLine, _ body: () throws -> Void) throws {
        try RunLine.checkPull(line.pull, from: "GOCKER_PULL")
        func pull() throws {
            let ref = try RegistryReference(parsing: line.request.image)
            let board = LayerBoard(fd: 2, quiet: false)
            var puller = Puller(store: line.engine.images, platform: try PlatformChoice(parsing: nil), timeout: timeout,
                                output: board.say)
            puller.layer = board.update
            try puller.pull(ref)
        }
        if line.pull == "always" { try pull() }
        do {
            try body()
        } catch let error as GockerError where line.pull == "missing" && error.code == .imageNotFound {
            let said = "Unable to find image '\(line.request.image)' locally\n"
            _ = said.withCString { write(2, $0, strlen($0)) }
            try pull()
            try body()
        }
    }

    /// Seconds a connect, and then each read or write, may wait
    /// (GOCKER_REGISTRY_TIMEOUT, else 60).
    static var timeout: Int {
        Sys.env("GOCKER_REGISTRY_TIMEOUT").flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil } ?? 60
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download an image from a registry.",
        discussion: """
            A name without a registry is docker.io's ("alpine" is docker.io/library/alpine:latest). \
            https is used; plain http only for a registry on loopback, or one named in \
            GOCKER_INSECURE_REGISTRIES (comma-separated host[:port]) or in registries.json's \
            insecure-registries. registries.json ($GOCKER_CONFIG, else /etc/gocker) also names \
            mirrors, asked before the registry: {"registry-mirrors": [URL, ...]} for docker.io (as \
            docker's daemon.json), {"mirrors": {"HOST[:PORT]": [URL, ...]}} for any registry. \
            Credentials come from docker's \
            config.json ($DOCKER_CONFIG, else ~/.docker); a registry's own CA from \
            $GOCKER_CONFIG/certs.d/HOST[:PORT]/ca.crt or /etc/docker/certs.d. Every blob's digest and size \
            is checked before anything of it is stored; layers the store has are not downloaded.
            """)
    @OptionGroup var arguments: PullArguments
    func run() throws { try arguments.run() }
}

struct ImagePull: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Download an image from a registry.")
    @OptionGroup var arguments: PullArguments
    func run() throws { try arguments.run() }
}

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Log in to a registry.",
        discussion: """
            The credentials are checked against the registry (GET /v2/, through its token server if it \
            names one), then kept in docker's config.json ($DOCKER_CONFIG, else ~/.docker), mode 0600. \
            SERVER defaults to docker.io.
            """)

    @Option(name: [.short, .customLong("username")], help: "The user name.")
    var username: String?

    @Option(name: [.short, .customLong("password")], help: "The password (--password-stdin keeps it out of the process list).")
    var password: String?

    @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input.")
    var passwordStdin = false

    @Argument(help: ArgumentHelp("The registry: host[:port].", valueName: "server"))
    var server: String = "docker.io"

    func run() throws {
        let registry = try Self.registry(server)
        guard let username, !username.isEmpty else {
            throw GockerError(.invalidArgument, "login: a user name is required (-u)")
        }
        if password != nil && passwordStdin {
            throw GockerError(.invalidArgument, "login: --password and --password-stdin are mutually exclusive")
        }
        var secret = password
        if passwordStdin {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(0, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                bytes += buffer[..<n]
                guard bytes.count <= 1 << 16 else { throw GockerError(.invalidArgument, "login: the password is too long") }
            }
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            secret = String(decoding: bytes, as: UTF8.self)
        } else if password != nil {
            let warning = "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
            _ = warning.withCString { write(2, $0, strlen($0)) }
        }
        guard let secret, !secret.isEmpty else {
            throw GockerError(.invalidArgument, "login: a password is required (--password-stdin)")
        }
        let credentials = Credentials(username: username, password: secret)
        _ = try RegistryConfig.load()
        try RegistryClient(registry: registry, repository: "", credentials: credentials, timeout: PullArguments.timeout).login()
        try credentials.store(for: registry)
        print("Login Succeeded")
    }

    /// "https://host:5000/" and "host:5000" alike name the registry host:5000.
    static func registry(_ text: String) throws(GockerError) -> String {
        var s = Substring(text)
        for prefix in ["https://", "http://"] where s.hasPrefix(prefix) { s = s.dropFirst(prefix.count) }
        while s.hasSuffix("/") { s = s.dropLast() }
        if s == "index.docker.io/v1" || s == "index.docker.io" || s == "registry-1.docker.io" { return "docker.io" }
        guard !s.isEmpty, !s.contains("/"), HTTPURL.split(authority: s) != nil,
              s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) }) else {
            throw GockerError(.invalidArgument, "invalid registry \"\(text)\"")
        }
        return String(s)
    }
}

struct Logout: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Log out from a registry (forget its credentials).")

    @Argument(help: ArgumentHelp("The registry: host[:port] (default docker.io).", valueName: "server"))
    var server: String = "docker.io"

    func run() throws {
        let registry = try Login.registry(server)
        if try Credentials.remove(for: registry) {
            print("Removing login credentials for \(registry)")
        } else {
            print("Not logged in to \(registry)")
        }
    }
}

struct PushArguments: ParsableArguments {
    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .customLong("quiet")], help: "Print nothing but errors.")
    var quiet = false

    @Argument(help: ArgumentHelp("The image, by the name it is pushed under: [registry[:port]/]name[:tag].", valueName: "name"))
    var name: String

    func run() throws {
        let ref = try RegistryReference(parsing: name)
        try Pusher(store: global.engine.images, timeout: PullArguments.timeout) { line in
            if !quiet { print(line) }
        }.push(ref)
    }
}

struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Upload an image to a registry.",
        discussion: """
            The image's name says where it goes (gocker tag gives it one): its layers, config and an OCI \
            manifest; a blob the repository has is not sent again. https, credentials and CAs as for pull.
            """)
    @OptionGroup var arguments: PushArguments
    func run() throws { try arguments.run() }
}

struct ImagePush: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "push", abstract: "Upload an image to a registry.")
    @OptionGroup var arguments: PushArguments
    func run() throws { try arguments.run() }
}

/// docker's lines of a pull's layers. On a terminal, one line per layer,
/// redrawn in place as it changes ("a1b2c3d4e5f6: Downloading [=====>   ]
/// 12.5MB/56.2MB"); elsewhere, a line per change of state and none for
/// bytes. `quiet`: nothing.
final class LayerBoard {
    private let fd: Int32
    private let quiet: Bool
    private let live: Bool
    private var ids: [String] = []
    private var drawn: [String: String] = [:]
    private var lastDraw: [String: Double] = [:]

    init(fd: Int32, quiet: Bool) {
        self.fd = fd
        self.quiet = quiet
        live = !quiet && isatty(fd) == 1
    }

    /// A line of its own, below the layers'.
    func say(_ line: String) {
        if !quiet { emit(line + "\n") }
    }

    func update(_ id: String, _ state: Puller.LayerState) {
        guard !quiet else { return }
        guard live else {
            switch state {
            case .downloading, .extracting: break
            default: emit("\(id): \(state.words)\n")
            }
            return
        }
        let text = Self.line(id, state, columns: Int(gk_term_columns(fd)))
        guard let row = ids.firstIndex(of: id) else {
            ids.append(id)
            drawn[id] = text
            emit(text + "\n")
            return
        }
        // Bytes are redrawn at most ten times a second; a new state at once.
        let now = Self.now()
        if case .downloading(let done, let total) = state, done < total, now - (lastDraw[id] ?? 0) < 0.1 { return }
        guard drawn[id] != text else { return }
        lastDraw[id] = now
        drawn[id] = text
        let up = ids.count - row
        emit("\u{1B}[\(up)A\r\u{1B}[2K" + text + "\u{1B}[\(up)B\r")
    }

    /// docker's line of a layer: its id, its state, and while it downloads
    /// the bytes, with a bar of 50 where the terminal has room for it (110
    /// columns, as docker's). Never wider than the terminal: a line that
    /// wrapped would throw the redrawing off.
    static func line(_ id: String, _ state: Puller.LayerState, columns: Int) -> String {
        var text = "\(id): \(state.words)"
        if case .downloading(let done, let total) = state, total > 0 {
            let bytes = "\(HumanUnits.size(done))/\(HumanUnits.size(total))"
            if columns == 0 || columns >= 110 {
                let filled = Int(min(done, total) * 50 / total)
                let bar = String(repeating: "=", count: max(0, filled - 1)) + (filled > 0 ? ">" : "")
                    + String(repeating: " ", count: 50 - filled)
                text += " [\(bar)]  " + bytes
            } else {
                text += "  " + bytes
            }
        }
        return columns > 1 && text.count >= columns ? String(text.prefix(columns - 1)) : text
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func emit(_ text: String) {
        var text = text
        text.withUTF8 { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n > 0 { off += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}
