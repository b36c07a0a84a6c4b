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
    @inlinable var refusesDashes: Bool { self == .text || self == .unsigned }
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

    /// Its names, value and help: all a command line is read by.
    public var spec: OptionSpec
    /// Puts one value into the target ("" for a flag). Called after the
    /// whole line was read, in the line's order, so a line with an unknown
    /// option is refused for that before any value is judged.
    public var apply: @Sendable (inout Target, String) throws(GockerError) -> Void

    @inlinable
    public init(name: String, aliases: [String] = [], short: Character? = nil, value: Value, valueName: String = "",
                repeatable: Bool = false, help: String,
                apply: @escaping @Sendable (inout Target, String) throws(GockerError) -> Void) {
        spec = OptionSpec(name: name, aliases: aliases, short: short?.asciiValue ?? 0, value: value, valueName: valueName,
                          repeatable: repeatable, help: help)
        self.apply = apply
    }

    public var name: String { spec.name }
    public var aliases: [String] { spec.aliases }
    public var short: UInt8 { spec.short }
    public var value: Value { spec.value }
    public var valueName: String { spec.valueName }
    public var repeatable: Bool { spec.repeatable }
    public var help: String { spec.help }
    public var spellings: [String] { spec.spellings }

    /// A flag: present or not.
    @inlinable public static func flag(_ name: String, short: Character? = nil, aliases: [String] = [], help: String,
                            _ set: @escaping @Sendable (inout Target) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: .none, help: help) { t, _ in set(&t) }
    }

    /// An option with one value; given twice, the last counts.
    @inlinable public static func text(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                            signed: Bool = false, help: String,
                            _ set: @escaping @Sendable (inout Target, String) throws(GockerError) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: signed ? .signed : .text, valueName: valueName,
             help: help, apply: set)
    }

    /// An option given any number of times, each value added in order.
    @inlinable public static func list(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                            help: String, _ add: @escaping @Sendable (inout Target, String) throws(GockerError) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: .text, valueName: valueName, repeatable: true,
             help: help, apply: add)
    }

    /// A signed integer option; a word that is not one is refused while
    /// the line is read.
    @inlinable public static func integer(_ name: String, short: Character? = nil, aliases: [String] = [], _ valueName: String,
                               help: String, _ set: @escaping @Sendable (inout Target, Int64) -> Void) -> Self {
        Self(name: name, aliases: aliases, short: short, value: .integer, valueName: valueName, help: help) { t, text in
            set(&t, Int64(text) ?? 0)
        }
    }

    /// The same option putting its value into a part of a larger target:
    /// `access` hands `body` the part (e.g. a controller's flags landing
    /// in the request's resources).
    @inlinable public func lifted<Outer>(_ access: @escaping @Sendable (inout Outer, (inout Target) throws(GockerError) -> Void) throws(GockerError) -> Void)
        -> CommandOption<Outer> {
        let apply = self.apply
        return CommandOption<Outer>(name: name, aliases: aliases, short: short == 0 ? nil : Character(Unicode.Scalar(short)),
                                    value: value, valueName: valueName, repeatable: repeatable, help: help) { outer, text throws(GockerError) in
            try access(&outer) { (inner: inout Target) throws(GockerError) in try apply(&inner, text) }
        }
    }

}

/// What a command line is read by, for one option: not generic, so that
/// the reading is compiled once, whatever the command's target.
public struct OptionSpec: Sendable, Equatable {
    /// The long name, without its dashes.
    public var name: String
    /// Other long names for the same option (`--net` for `--network`).
    public var aliases: [String]
    /// The one-letter name, as an ASCII byte; 0 for none.
    public var short: UInt8
    public var value: OptionValue
    /// Shown in help as `<valueName>`; empty for a flag.
    public var valueName: String
    /// Whether each use adds a value (`-e A -e B`); otherwise the last one counts.
    public var repeatable: Bool
    public var help: String

    @inlinable
    public init(name: String, aliases: [String], short: UInt8, value: OptionValue, valueName: String, repeatable: Bool,
                help: String) {
        self.name = name
        self.aliases = aliases
        self.short = short
        self.value = value
        self.valueName = valueName
        self.repeatable = repeatable
        self.help = help
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
    public let options: [CommandOption<Target>]
    /// The options' specs, read by OptionReader.
    public let specs: [OptionSpec]

    @inlinable public init(_ options: [CommandOption<Target>]) {
        self.options = options
        specs = options.map { $0.spec }
    }

    /// The options of both, this one's first.
    public static func + (a: Self, b: [CommandOption<Target>]) -> Self { Self(a.options + b) }

    public typealias Reading = OptionReading

    /// Reads `args` into `target`. Errors are worded as ArgumentParser
    /// words them (the CLI's other commands still use it).
    @inlinable
    public func parse(_ args: [String], into target: inout Target, stopAfter: Int = .max) throws(GockerError) -> Reading {
        let (reading, uses) = try OptionReader.read(args, specs, stopAfter: stopAfter)
        for use in uses { try options[use.option].apply(&target, use.value) }
        return reading
    }

    /// The OPTIONS part of `--help`: one option a line (or two, when its
    /// names are long), its help beside it, as ArgumentParser lays it out.
    public func helpLines(width: Int = 80) -> String {
        var out = ""
        for o in specs {
            var names = o.spellings.joined(separator: ", ")
            if !o.valueName.isEmpty { names += " <\(o.valueName)>" }
            OptionReader.appendEntry(&out, names, o.help, width: width)
        }
        OptionReader.appendEntry(&out, "--help", "Show help information.", width: width)
        return out
    }

    /// `  names      help`, the help wrapped at `width` in its column.
    public static func appendEntry(_ out: inout String, _ names: String, _ help: String, width: Int = 80) {
        OptionReader.appendEntry(&out, names, help, width: width)
    }
}

/// What a line held besides its options: its arguments, the words after
/// the last of them (the container's command), and whether --help was asked.
public struct OptionReading: Sendable, Equatable {
    public var arguments: [String] = []
    public var rest: [String] = []
    /// Whether `--help` was among the options.
    public var help = false

    public init() {}
}

/// The reading of a command line by a table's specs, not generic: one
/// compiled copy serves every command.
public enum OptionReader {
    /// The reading, and each use of an option (its index in `specs`, its
    /// value) in the line's order.
    public static func read(_ args: [String], _ specs: [OptionSpec],
                            stopAfter: Int = .max) throws(GockerError) -> (OptionReading, [(option: Int, value: String)]) {
        var reading = OptionReading()
        var uses: [(option: Int, value: String)] = []
        var i = 0
        var optionsEnded = false
        while i < args.count {
            let word = args[i]
            i += 1
            if optionsEnded || !looksLikeOption(word) {
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
                guard let o = index(long: name, in: specs) else {
                    if name == "help" {
                        reading.help = true
                        return (reading, uses)
                    }
                    throw error(unknown("--" + String(name), in: specs))
                }
                let option = specs[o]
                if option.value == .none {
                    if let attached {
                        throw error("The option '--\(name)' does not take any value, but '\(attached)' was specified.")
                    }
                    uses.append((o, ""))
                    continue
                }
                let value: String
                if let attached {
                    value = String(attached)
                } else {
                    guard i < args.count, !option.value.refusesDashes || !looksLikeOption(args[i]) else {
                        throw error("Missing value for \(option.quoted("--" + String(name)))")
                    }
                    value = args[i]
                    i += 1
                }
                try check(option, value, typed: "--" + String(name))
                uses.append((o, value))
                continue
            }
            // -x, -x value, or letters together (-dit); those that take a
            // value take the next words, in order (-mi 1g).
            for letter in utf8.dropFirst() {
                // As typed, for an error only.
                func typed() -> String { "-" + String(Character(Unicode.Scalar(letter))) }
                guard let o = index(short: letter, in: specs) else { throw error("Unknown option '\(typed())'") }
                let option = specs[o]
                if option.value == .none {
                    uses.append((o, ""))
                    continue
                }
                guard i < args.count, !option.value.refusesDashes || !looksLikeOption(args[i]) else {
                    throw error("Missing value for \(option.quoted(typed()))")
                }
                try check(option, args[i], typed: typed())
                uses.append((o, args[i]))
                i += 1
            }
        }
        return (reading, uses)
    }

    /// The option with this long name or alias, compared byte by byte
    /// (String == Substring goes through generic code).
    static func index(long: Substring, in specs: [OptionSpec]) -> Int? {
        for i in specs.indices {
            if specs[i].name.utf8.elementsEqual(long.utf8) { return i }
            for a in specs[i].aliases where a.utf8.elementsEqual(long.utf8) { return i }
        }
        return nil
    }

    static func index(short: UInt8, in specs: [OptionSpec]) -> Int? {
        for i in specs.indices where specs[i].short == short { return i }
        return nil
    }

    /// (`typed` is made only for an error: a String + Substring on the
    /// start path costs a scan of the binary's protocol conformances.)
    static func check(_ option: OptionSpec, _ value: String, typed: @autoclosure () -> String) throws(GockerError) {
        if option.value == .integer && Int64(value) == nil || option.value == .unsigned && UInt32(value) == nil {
            throw error("The value '\(value)' is invalid for \(option.quoted(typed()))")
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
    static func unknown(_ typed: String, in specs: [OptionSpec]) -> String {
        var best: (name: String, distance: Int)?
        for o in specs {
            for name in [o.name] + o.aliases {
                let d = editDistance("--" + name, typed)
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
