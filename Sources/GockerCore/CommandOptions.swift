/// What follows the option's name.
public enum OptionValue: Sendable, Equatable {
    /// Nothing: a flag.
    case none
    /// The next word, unless it looks like an option ("-x", "--x").
    case text
    /// The next word whatever it is: "-1" is a value (unlimited, or a
    /// bad one refused with its reason), as in docker.
    case signed
    /// A signed 64-bit integer, as the next word whatever it is.
    case integer
    /// An unsigned 32-bit integer (an id), the next word unless it looks
    /// like an option.
    case unsigned
}

extension OptionValue {
    /// Whether a next word starting with a dash is an option, not the value.
    var refusesDashes: Bool { self == .text || self == .unsigned }
}

/// One option of a command: its names, the value it takes, its help, and
/// where its value lands. A command's options are one `OptionTable`; its
/// parser and its `--help` are both read from it, so an option cannot be
/// known to one and missing from the other. The entries are plain values
/// with a closure, so a table can be put together from parts (a resource
/// controller's flags appended to `run`'s, lifted onto the command's target
/// with `lifted`).
public struct CommandOption<Target>: Sendable {
    public typealias Value = OptionValue

    /// The long name, without its dashes.
    public var name: String
    /// Other long names for the same option (`--net` for `--network`).
    public var aliases: [String]
    /// The one-letter name, as an ASCII byte; 0 for none.
    public var short: UInt8
    public var value: Value
    /// Shown in help as `<valueName>`; empty for a flag.
    public var valueName: String
    /// Whether each use adds a value (`-e A -e B`); otherwise the last one counts.
    public var repeatable: Bool
    public var help: String
    /// Puts one value into the target ("" for a flag). Called after the
    /// whole line was read, in the line's order, so a line with an unknown
    /// option is refused for that before any value is judged.
    public var apply: @Sendable (inout Target, String) throws(GockerError) -> Void

    public init(name: String, aliases: [String] = [], short: Character? = nil, value: Value, valueName: String = "",
                repeatable: Bool = false, help: String,
                apply: @escaping @Sendable (inout Target, String) throws(GockerError) -> Void) {
        self.name = name
        self.aliases = aliases
        self.short = short?.asciiValue ?? 0
        self.value = value
        self.valueName = valueName
        self.repeatable = repeatable
        self.help = help
        self.apply = apply
    }

    /// A flag: present or not.
    public static func flag(_ name: String, short: Character? = nil, aliases: [String] = [], help: String,
                            _ set: @escaping @Sendable (inout Target) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: .none, help: help) { t, _ in set(&t) }
    }

    /// An option with one value; given twice, the last counts.
    public static func text(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                            signed: Bool = false, help: String,
                            _ set: @escaping @Sendable (inout Target, String) throws(GockerError) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: signed ? .signed : .text, valueName: valueName,
             help: help, apply: set)
    }

    /// An option given any number of times, each value added in order.
    public static func list(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                            help: String, _ add: @escaping @Sendable (inout Target, String) throws(GockerError) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: .text, valueName: valueName, repeatable: true,
             help: help, apply: add)
    }

    /// A signed integer option; a word that is not one is refused while
    /// the line is read.
    public static func integer(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                               help: String, _ set: @escaping @Sendable (inout Target, Int64) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: .integer, valueName: valueName, help: help) { t, text in
            set(&t, Int64(text) ?? 0)
        }
    }

    /// The same option putting its value into a part of a larger target:
    /// `access` hands `body` the part (e.g. a controller's flags landing
    /// in the request's resources).
    public func lifted<Outer>(_ access: @escaping @Sendable (inout Outer, (inout Target) throws(GockerError) -> Void) throws(GockerError) -> Void)
        -> CommandOption<Outer> {
        let apply = self.apply
        return CommandOption<Outer>(name: name, aliases: aliases, short: short == 0 ? nil : Character(Unicode.Scalar(short)),
                                    value: value, valueName: valueName, repeatable: repeatable, help: help) { outer, text throws(GockerError) in
            try access(&outer) { (inner: inout Target) throws(GockerError) in try apply(&inner, text) }
        }
    }

    /// All its names as typed: `-m`, `--memory`, `--mem`.
    public var spellings: [String] {
        (short == 0 ? [] : ["-" + String(Character(Unicode.Scalar(short)))]) + ([name] + aliases).map { "--" + $0 }
    }

    /// How errors name it: `'--memory <bytes>'`, as it was typed.
    func quoted(_ spelling: String) -> String {
        valueName.isEmpty ? "'\(spelling)'" : "'\(spelling) <\(valueName)>'"
    }
}

/// A command's options, in the order `--help` lists them, and the reading
/// of a command line by them.
///
/// The reading is docker's (and ArgumentParser's): `--name value`,
/// `--name=value`, `-x value`, short flags together (`-dit`, the last of
/// them may take the next word as its value), `--` ending the options;
/// options and arguments mix until the command has as many arguments as
/// `stopAfter` says, and everything after that (the container's command)
/// is left alone. It is on the start path: no Foundation, no dictionary, a
/// scan of the table per word.
public struct OptionTable<Target>: Sendable {
    public var options: [CommandOption<Target>]

    public init(_ options: [CommandOption<Target>]) { self.options = options }

    /// The options of both, this one's first.
    public static func + (a: Self, b: [CommandOption<Target>]) -> Self { Self(a.options + b) }

    /// The option with this long name or alias.
    public func index(long: Substring) -> Int? {
        for i in options.indices {
            let o = options[i]
            if o.name == long { return i }
            for a in o.aliases where a == long { return i }
        }
        return nil
    }

    public func index(short: UInt8) -> Int? {
        for i in options.indices where options[i].short == short { return i }
        return nil
    }

    /// The line's words after the options: the command's arguments, and
    /// the untouched rest once there are `stopAfter` of them.
    public struct Reading: Sendable, Equatable {
        public var arguments: [String] = []
        public var rest: [String] = []
        /// Whether `--help` was among the options.
        public var help = false
    }

    /// Reads `args` into `target`. Errors are worded as ArgumentParser
    /// words them (the CLI's other commands still use it).
    public func parse(_ args: [String], into target: inout Target, stopAfter: Int = .max) throws(GockerError) -> Reading {
        var reading = Reading()
        var uses: [(option: Int, value: String)] = []
        var i = 0
        var optionsEnded = false
        while i < args.count {
            let word = args[i]
            i += 1
            if optionsEnded || !Self.looksLikeOption(word) {
                if word == "--", !optionsEnded {
                    optionsEnded = true
                    continue
                }
                reading.arguments.append(word)
                if reading.arguments.count == stopAfter {
                    reading.rest = Array(args[i...])
                    break
                }
                continue
            }
            if word == "--" {
                optionsEnded = true
                continue
            }
            let utf8 = word.utf8
            if utf8.dropFirst().first == UInt8(ascii: "-") {
                // --name or --name=value
                let body = word.dropFirst(2)
                var name = body
                var attached: Substring?
                if let eq = body.utf8.firstIndex(of: UInt8(ascii: "=")) {
                    name = body[..<eq]
                    attached = body[body.index(after: eq)...]
                }
                guard let o = index(long: name) else {
                    if name == "help" {
                        reading.help = true
                        return reading
                    }
                    throw Self.error(unknown("--" + name))
                }
                let option = options[o]
                if option.value == .none {
                    if let attached {
                        throw Self.error("The option '--\(name)' does not take any value, but '\(attached)' was specified.")
                    }
                    uses.append((o, ""))
                    continue
                }
                let value: String
                if let attached {
                    value = String(attached)
                } else {
                    guard i < args.count, !option.value.refusesDashes || !Self.looksLikeOption(args[i]) else {
                        throw Self.error("Missing value for \(option.quoted("--" + name))")
                    }
                    value = args[i]
                    i += 1
                }
                try check(option, value, typed: "--" + name)
                uses.append((o, value))
                continue
            }
            // -x, -x value, or letters together (-dit); those that take a
            // value take the next words, in order (-mi 1g).
            for letter in utf8.dropFirst() {
                let typed = "-" + String(Character(Unicode.Scalar(letter)))
                guard let o = index(short: letter) else { throw Self.error("Unknown option '\(typed)'") }
                let option = options[o]
                if option.value == .none {
                    uses.append((o, ""))
                    continue
                }
                guard i < args.count, !option.value.refusesDashes || !Self.looksLikeOption(args[i]) else {
                    throw Self.error("Missing value for \(option.quoted(typed))")
                }
                try check(option, args[i], typed: typed)
                uses.append((o, args[i]))
                i += 1
            }
        }
        for use in uses { try options[use.option].apply(&target, use.value) }
        return reading
    }

    func check(_ option: CommandOption<Target>, _ value: String, typed: String) throws(GockerError) {
        if option.value == .integer && Int64(value) == nil || option.value == .unsigned && UInt32(value) == nil {
            throw Self.error("The value '\(value)' is invalid for \(option.quoted(typed))")
        }
    }

    /// "-x", "--x", "-1": anything starting with a dash but "-" itself.
    static func looksLikeOption(_ word: String) -> Bool {
        let utf8 = word.utf8
        return utf8.first == UInt8(ascii: "-") && utf8.count > 1
    }

    static func error(_ message: String) -> GockerError { GockerError(.invalidArgument, message) }

    /// ArgumentParser's words for an unknown long option: the closest long
    /// name (fewer than 4 edits away), if there is one.
    func unknown(_ typed: String) -> String {
        var best: (name: String, distance: Int)?
        for o in options {
            for name in [o.name] + o.aliases {
                let d = Self.editDistance("--" + name, typed)
                if d < 4, d < best?.distance ?? .max { best = ("--" + name, d) }
            }
        }
        guard let best else { return "Unknown option '\(typed)'" }
        return "Unknown option '\(typed)'. Did you mean '\(best.name)'?"
    }

    /// Levenshtein's distance between two words, by characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var row = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = row
        }
        return previous[b.count]
    }

    /// The OPTIONS part of `--help`: one option a line (or two, when its
    /// names are long), its help beside it, as ArgumentParser lays it out.
    public func helpLines(width: Int = 80) -> String {
        var out = ""
        for o in options {
            var names = o.spellings.joined(separator: ", ")
            if !o.valueName.isEmpty { names += " <\(o.valueName)>" }
            Self.appendEntry(&out, names, o.help, width: width)
        }
        Self.appendEntry(&out, "--help", "Show help information.", width: width)
        return out
    }

    /// `  names      help`, the help wrapped at `width` in its column.
    public static func appendEntry(_ out: inout String, _ names: String, _ help: String, width: Int = 80) {
        let column = 26
        out += "  " + names
        var at = 2 + names.count
        if at + 2 > column {
            out += "\n"
            at = 0
        }
        out += String(repeating: " ", count: column - at)
        at = column
        var first = true
        for word in help.split(separator: " ") {
            if !first && at + 1 + word.count > width {
                out += "\n" + String(repeating: " ", count: column)
                at = column
                first = true
            }
            if !first {
                out += " "
                at += 1
            }
            out += word
            at += word.count
            first = false
        }
        out += "\n"
    }
}
