/// gocker's JSON documents (config.json, state.json, container.json, image
/// records) are each declared once: a type conforming to `JSONShape` lists
/// its members in `fields`, one line per stored property, and that list is
/// what reads it, writes it, and tells the tests which keys it has.
///
/// Why not Codable: a start reads config.json, and Codable's first use in a
/// process instantiates a generic container type per coding-key type
/// (KeyedDecodingContainer<K> and its box), about 0.5 ms of `oci run` on
/// this machine with a decoder of our own, more with JSONDecoder. A
/// `fields` function is not generic (one concrete visitor, `JSONFields`,
/// reads, writes or lists), and each `field` call is specialized where it
/// is written: nothing is instantiated at run time.
///
/// Members a type does not model are kept (`unmodeled`) and written back
/// when the document is rewritten, never dropped.
public protocol JSONShape: JSONField {
    /// An empty value, filled in by `fields` when read.
    init()

    /// Each member: `try v.field("name", &name)`. A non-optional property
    /// is a required member; an optional one may be absent or null.
    mutating func fields(_ v: inout JSONFields) throws(JSONError)

    /// The members `fields` does not name, as read; written back as they
    /// were. The default keeps none: a type that keeps them stores them.
    var unmodeled: [String: JSONValue] { get set }
}

/// A value that is one JSON value: strings, numbers, booleans, shapes, and
/// enums whose raw value is a string.
public protocol JSONField {
    init(json: JSONValue) throws(JSONError)
    func write(to out: inout JSONText)
    /// The value as a tree, as its text would read.
    var jsonValue: JSONValue { get }
}

extension JSONField {
    /// Through the text (the types below make their tree directly).
    @inlinable public var jsonValue: JSONValue {
        var out = JSONText()
        write(to: &out)
        return (try? JSONValue.parse(out.bytes)) ?? .null
    }
}

/// A JSON value as read; numbers keep their text.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    /// A value's JSON text as written before (never read: the parser
    /// makes the other cases).
    case text([UInt8])

    /// Null, "", [] and {}: a member given with nothing in it.
    @inlinable public var isEmpty: Bool {
        switch self {
        case .null: return true
        case .string(let s): return s.isEmpty
        case .array(let a): return a.isEmpty
        case .object(let o): return o.isEmpty
        case .bool, .number, .text: return false
        }
    }

    @usableFromInline var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number(let n): return n
        case .string(let s): return "the string \"\(s)\""
        case .array: return "an array"
        case .object: return "an object"
        case .text: return "a value"
        }
    }
}

/// Why a document was refused, and where: the member path ("process.user.uid").
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case syntax, missing, wrongType, invalid }
    public var kind: Kind
    /// Member names and array indexes from the document's top.
    public var path: [String]
    public var detail: String

    @inlinable public init(_ kind: Kind, _ detail: String, path: [String] = []) {
        self.kind = kind
        self.detail = detail
        self.path = path
    }

    @inlinable static func wrongType(_ v: JSONValue, _ expected: String) -> JSONError {
        JSONError(.wrongType, "\(v.kind) is not \(expected)")
    }

    /// The same error, found inside member (or index) `key`.
    @inlinable public func under(_ key: String) -> JSONError {
        var e = self
        e.path.insert(key, at: 0)
        return e
    }

    @inlinable public var description: String {
        let at = path.joined(separator: ".")
        switch kind {
        case .syntax: return detail
        case .missing: return "missing field \"\(at)\""
        case .wrongType: return at.isEmpty ? "wrong type: \(detail)" : "wrong type at \"\(at)\": \(detail)"
        case .invalid: return at.isEmpty ? "invalid value: \(detail)" : "invalid value at \"\(at)\": \(detail)"
        }
    }
}

// MARK: reading and writing whole documents

extension JSONShape {
    @inlinable public var unmodeled: [String: JSONValue] {
        get { [:] }
        set {}
    }

    /// The document in `bytes`.
    @inlinable public init(jsonBytes bytes: [UInt8]) throws(JSONError) {
        try self.init(json: try JSONValue.parse(bytes))
    }

    @inlinable public init(json: JSONValue) throws(JSONError) {
        guard case .object(let o) = json else { throw .wrongType(json, "an object") }
        self.init()
        var reader = JSONFields(.read, members: o)
        try fields(&reader)
        if reader.found < o.count {
            let names = Set(Self.jsonMembers.map(\.key))
            unmodeled = o.filter { !names.contains($0.key) }
        }
    }

    /// The members in `fields`' order, then the unmodeled ones by name;
    /// written into `out` itself.
    @inlinable public func write(to out: inout JSONText) {
        var writer = JSONFields(.write)
        swap(&writer.text, &out)
        writer.text.bytes.append(UInt8(ascii: "{"))
        var copy = self
        try? copy.fields(&writer)
        if !unmodeled.isEmpty {
            for k in unmodeled.keys.sorted() {
                writer.key(k)
                unmodeled[k]!.write(to: &writer.text)
            }
        }
        writer.text.bytes.append(UInt8(ascii: "}"))
        swap(&writer.text, &out)
    }

    /// The members `fields` gives and the unmodeled ones, as a tree.
    @inlinable public var jsonValue: JSONValue {
        var maker = JSONFields(.tree)
        var copy = self
        try? copy.fields(&maker)
        for (k, v) in unmodeled { maker.tree[k] = v }
        return .object(maker.tree)
    }

    /// The document's text: compact, members in `fields`' order, absent
    /// optionals left out.
    @inlinable public var jsonBytes: [UInt8] {
        var out = JSONText()
        write(to: &out)
        return out.bytes
    }

    /// Every member `fields` gives, in its order (the tests derive what
    /// to expect from this).
    public static var jsonMembers: [JSONMember] {
        var lister = JSONFields(.list)
        var empty = Self()
        try? empty.fields(&lister)
        return lister.listed
    }
}

/// What `JSONShape.fields` hands each member to: one type, so that a
/// shape's `fields` is not generic and is compiled once. It reads the
/// members of one object, writes them, or lists them.
public struct JSONFields {
    @usableFromInline enum Mode { case read, write, list, tree }
    @usableFromInline let mode: Mode
    /// Reading: the object's members, and how many `fields` found.
    @usableFromInline let members: [String: JSONValue]
    @usableFromInline var found = 0
    /// Writing: the text so far, and whether a member is in it yet.
    @usableFromInline var text = JSONText()
    @usableFromInline var first = true
    /// Listing: each member, in `fields`' order.
    public var listed: [JSONMember] = []
    /// Making the tree: each member given.
    @usableFromInline var tree: [String: JSONValue] = [:]

    @inlinable init(_ mode: Mode, members: [String: JSONValue] = [:]) {
        self.mode = mode
        self.members = members
    }

    /// The member, nil when absent or null.
    @inlinable mutating func member(_ key: String) -> JSONValue? {
        guard let v = members[key] else { return nil }
        found += 1
        if case .null = v { return nil }
        return v
    }

    /// `"key":` after a comma where a member came before.
    @inlinable mutating func key(_ key: String) {
        if !first { text.bytes.append(UInt8(ascii: ",")) }
        first = false
        text.string(key)
        text.bytes.append(UInt8(ascii: ":"))
    }

    @inlinable mutating func read<T>(_ key: String, required: Bool, _ convert: (JSONValue) throws(JSONError) -> T) throws(JSONError) -> T? {
        guard let v = member(key) else {
            if required { throw JSONError(.missing, "", path: [key]) }
            return nil
        }
        do { return try convert(v) } catch { throw error.under(key) }
    }

    @inlinable public mutating func field<T: JSONField>(_ key: String, _ value: inout T) throws(JSONError) {
        switch mode {
        case .read: value = try read(key, required: true) { v throws(JSONError) in try T(json: v) }!
        case .write: self.key(key); value.write(to: &text)
        case .tree: tree[key] = value.jsonValue
        case .list: listed.append(JSONMember(key: key, required: true, container: .one, type: T.self))
        }
    }

    @inlinable public mutating func field<T: JSONField>(_ key: String, _ value: inout T?) throws(JSONError) {
        switch mode {
        case .read: value = try read(key, required: false) { v throws(JSONError) in try T(json: v) }
        case .write: if let v = value { self.key(key); v.write(to: &text) }
        case .tree: if let v = value { tree[key] = v.jsonValue }
        case .list: listed.append(JSONMember(key: key, required: false, container: .one, type: T.self))
        }
    }

    @inlinable public mutating func field<T: JSONField>(_ key: String, _ value: inout [T]) throws(JSONError) {
        switch mode {
        case .read: value = try read(key, required: true) { v throws(JSONError) in try Self.array(v) }!
        case .write: self.key(key); text.array(value)
        case .tree: tree[key] = .array(value.map(\.jsonValue))
        case .list: listed.append(JSONMember(key: key, required: true, container: .array, type: T.self))
        }
    }

    @inlinable public mutating func field<T: JSONField>(_ key: String, _ value: inout [T]?) throws(JSONError) {
        switch mode {
        case .read: value = try read(key, required: false) { v throws(JSONError) in try Self.array(v) }
        case .write: if let v = value { self.key(key); text.array(v) }
        case .tree: if let v = value { tree[key] = .array(v.map(\.jsonValue)) }
        case .list: listed.append(JSONMember(key: key, required: false, container: .array, type: T.self))
        }
    }

    @inlinable public mutating func field<T: JSONField>(_ key: String, _ value: inout [String: T]) throws(JSONError) {
        switch mode {
        case .read: value = try read(key, required: true) { v throws(JSONError) in try Self.map(v) }!
        case .write: self.key(key); text.map(value)
        case .tree: tree[key] = .object(value.mapValues(\.jsonValue))
        case .list: listed.append(JSONMember(key: key, required: true, container: .map, type: T.self))
        }
    }

    @inlinable public mutating func field<T: JSONField>(_ key: String, _ value: inout [String: T]?) throws(JSONError) {
        switch mode {
        case .read: value = try read(key, required: false) { v throws(JSONError) in try Self.map(v) }
        case .write: if let v = value { self.key(key); text.map(v) }
        case .tree: if let v = value { tree[key] = .object(v.mapValues(\.jsonValue)) }
        case .list: listed.append(JSONMember(key: key, required: false, container: .map, type: T.self))
        }
    }

    @inlinable public static func array<T: JSONField>(_ v: JSONValue) throws(JSONError) -> [T] {
        guard case .array(let a) = v else { throw .wrongType(v, "an array") }
        var out: [T] = []
        out.reserveCapacity(a.count)
        for (i, e) in a.enumerated() {
            do { out.append(try T(json: e)) } catch { throw error.under(String(i)) }
        }
        return out
    }

    @inlinable static func map<T: JSONField>(_ v: JSONValue) throws(JSONError) -> [String: T] {
        guard case .object(let o) = v else { throw .wrongType(v, "an object") }
        var out: [String: T] = [:]
        for (k, e) in o {
            do { out[k] = try T(json: e) } catch { throw error.under(k) }
        }
        return out
    }
}

/// One member as `fields` lists it.
public struct JSONMember {
    public enum Container: Sendable { case one, array, map }
    public var key: String
    /// Must be there (not null).
    public var required: Bool
    public var container: Container
    /// The value's type (the element's, for an array or a map).
    public var type: any JSONField.Type

    @inlinable init(key: String, required: Bool, container: Container, type: any JSONField.Type) {
        self.key = key
        self.required = required
        self.container = container
        self.type = type
    }
}

// MARK: the values

extension String: JSONField {
    @inlinable public init(json: JSONValue) throws(JSONError) {
        guard case .string(let s) = json else { throw .wrongType(json, "a string") }
        self = s
    }
    @inlinable public func write(to out: inout JSONText) { out.string(self) }
    @inlinable public var jsonValue: JSONValue { .string(self) }
}

extension Bool: JSONField {
    @inlinable public init(json: JSONValue) throws(JSONError) {
        guard case .bool(let b) = json else { throw .wrongType(json, "a boolean") }
        self = b
    }
    @inlinable public func write(to out: inout JSONText) { out.raw(self ? "true" : "false") }
    @inlinable public var jsonValue: JSONValue { .bool(self) }
}

extension JSONValue: JSONField {
    @inlinable public init(json: JSONValue) { self = json }
    /// Itself; text written before, read.
    @inlinable public var jsonValue: JSONValue {
        guard case .text(let t) = self else { return self }
        return (try? JSONValue.parse(t)) ?? .null
    }

    @inlinable public func write(to out: inout JSONText) {
        switch self {
        case .null: out.raw("null")
        case .bool(let b): b.write(to: &out)
        case .number(let n): out.raw(n)
        case .text(let t): out.bytes += t
        case .string(let s): out.string(s)
        case .array(let a): out.array(a)
        case .object(let o): out.map(o)
        }
    }
}

extension JSONValue {
    /// A shape's value as a tree, as its text would read.
    @inlinable public init<S: JSONShape>(shape: S) {
        self = shape.jsonValue
    }

    /// An integer member: a plain JSON integer that fits `I`.
    @inlinable static func integer<I: FixedWidthInteger>(_ v: JSONValue) throws(JSONError) -> I {
        guard case .number(let text) = v else { throw .wrongType(v, "a number") }
        guard let n = I(text) else {
            let what = I.isSigned ? "a \(I.bitWidth)-bit integer" : "an unsigned \(I.bitWidth)-bit integer"
            throw JSONError(.invalid, "\(text) is not \(what)")
        }
        return n
    }
}

/// Integers: a plain JSON integer that fits.
extension JSONField where Self: FixedWidthInteger {
    @inlinable public init(json: JSONValue) throws(JSONError) { self = try JSONValue.integer(json) }
    @inlinable public func write(to out: inout JSONText) { out.integer(self) }
    @inlinable public var jsonValue: JSONValue {
        var out = JSONText()
        out.integer(self)
        return .number(String(decoding: out.bytes, as: UTF8.self))
    }
}

extension Int: JSONField {}
extension Int32: JSONField {}
extension Int64: JSONField {}
extension UInt16: JSONField {}
extension UInt32: JSONField {}
extension UInt64: JSONField {}

/// Enums stored as their string raw value.
extension JSONField where Self: RawRepresentable, RawValue == String {
    @inlinable public init(json: JSONValue) throws(JSONError) {
        let raw = try String(json: json)
        guard let v = Self(rawValue: raw) else { throw JSONError(.invalid, "\"\(raw)\" is not a known value") }
        self = v
    }
    @inlinable public func write(to out: inout JSONText) { out.string(rawValue) }
    @inlinable public var jsonValue: JSONValue { .string(rawValue) }
}

// MARK: the text

/// JSON text being written: compact; a map's members sorted by name, a
/// shape's in `fields`' order.
public struct JSONText {
    public var bytes: [UInt8] = []

    @inlinable public init() {}

    @inlinable public mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Decimal digits written here: the standard library's text of an
    /// integer goes through its generic, unspecialized path.
    @inlinable public mutating func integer<I: BinaryInteger>(_ v: I) {
        guard let n = Int64(exactly: v) else {
            if let u = UInt64(exactly: v) { digits(u) } else { raw(String(v)) }
            return
        }
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        digits(n.magnitude)
    }

    @inlinable mutating func digits(_ u: UInt64) {
        var v = u
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes: 20 digits at most
        withUnsafeMutableBytes(of: &tmp) { buf in
            var i = buf.count
            repeat {
                i -= 1
                buf[i] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v % 10)
                v /= 10
            } while v > 0
            bytes.append(contentsOf: buf[i...])
        }
    }

    @inlinable public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escape: copied whole.
        let plain = s.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if plain != true {
            for c in s.utf8 {
                switch c {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    bytes.append(UInt8(ascii: "\\"))
                    bytes.append(c)
                case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
                case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
                case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
                case ..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes += Array("\\u00".utf8) + [hex[Int(c >> 4)], hex[Int(c & 15)]]
                default: bytes.append(c)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// An object of `m`'s members, by name.
    @inlinable public mutating func map<T: JSONField>(_ m: [String: T]) {
        bytes.append(UInt8(ascii: "{"))
        for (i, k) in m.keys.sorted().enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            string(k)
            bytes.append(UInt8(ascii: ":"))
            m[k]!.write(to: &self)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    @inlinable public mutating func array<T: JSONField>(_ a: [T]) {
        bytes.append(UInt8(ascii: "["))
        for (i, e) in a.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            e.write(to: &self)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Compact JSON text laid out one member a line, two spaces a level
    /// (`"key": value`), as runc and docker print it.
    public static func pretty(_ compact: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(compact.count * 2)
        var depth = 0
        var inString = false
        var i = 0
        func newline() {
            out.append(0x0A)
            out += [UInt8](repeating: 0x20, count: depth * 2)
        }
        while i < compact.count {
            let c = compact[i]
            if inString {
                out.append(c)
                if c == UInt8(ascii: "\\"), i + 1 < compact.count { out.append(compact[i + 1]); i += 1 } else if c == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: "\""): inString = true; out.append(c)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close: UInt8 = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                out.append(c)
                if i + 1 < compact.count, compact[i + 1] == close {
                    out.append(close)
                    i += 1
                } else {
                    depth += 1
                    newline()
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                newline()
                out.append(c)
            case UInt8(ascii: ","): out.append(c); newline()
            case UInt8(ascii: ":"): out += [c, 0x20]
            default: out.append(c)
            }
            i += 1
        }
        return out
    }
}

// MARK: the parser

extension JSONValue {
    /// The JSON text in `bytes`: RFC 8259, a duplicate member refused.
    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buf) throws(JSONError) -> JSONValue in
            var p = JSONParser(b: buf)
            let v = try p.value()
            p.space()
            guard p.i == buf.count else { throw p.error("unexpected text after the document") }
            return v
        }
    }
}

struct JSONParser {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0
    /// Arrays and objects open; deeper than this is refused.
    var depth = 0
    static let maxDepth = 512

    init(b: UnsafeBufferPointer<UInt8>) { self.b = b }

    func error(_ what: String) -> JSONError {
        JSONError(.syntax, "not valid JSON: \(what) at byte \(i)")
    }

    mutating func space() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func literal(_ word: StaticString, _ v: JSONValue) throws(JSONError) -> JSONValue {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw error("unexpected end") }
        for k in 0..<n where b[i + k] != word.utf8Start[k] { throw error("unexpected character") }
        i += n
        return v
    }

    mutating func value() throws(JSONError) -> JSONValue {
        space()
        guard i < b.count else { throw error("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            depth += 1
            guard depth <= Self.maxDepth else { throw error("too deeply nested") }
            defer { depth -= 1 }
            var o: [String: JSONValue] = [:]
            space()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                space()
                let key = try string()
                space()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
                i += 1
                guard o.updateValue(try value(), forKey: key) == nil else {
                    throw JSONError(.syntax, "not valid JSON: the member \"\(key)\" is given twice")
                }
                space()
                guard i < b.count else { throw error("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw error("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            depth += 1
            guard depth <= Self.maxDepth else { throw error("too deeply nested") }
            defer { depth -= 1 }
            var a: [JSONValue] = []
            space()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                a.append(try value())
                space()
                guard i < b.count else { throw error("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw error("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return .number(try number())
        }
    }

    /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, as its text.
    mutating func number() throws(JSONError) -> String {
        let start = i
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        let first = i
        digits()
        guard i > first, !(b[first] == UInt8(ascii: "0") && i - first > 1) else { throw error("not a number") }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let f = i
            digits()
            guard i > f else { throw error("not a number") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            let e = i
            digits()
            guard i > e else { throw error("not a number") }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
    }

    mutating func digits() {
        while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") { i += 1 }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= b.count else { throw error("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw error("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONError) -> String {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw error("expected a string") }
        i += 1
        let start = i
        var ascii = true
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") {
            guard b[i] >= 0x20 else { throw error("control character in a string") }
            if b[i] >= 0x80 { ascii = false }
            i += 1
        }
        guard i < b.count else { throw error("unterminated string") }
        if b[i] == UInt8(ascii: "\"") {
            let raw = UnsafeBufferPointer(rebasing: b[start..<i])
            i += 1
            // ASCII is UTF-8 as it is: no validation to run.
            if ascii { return String(decoding: raw, as: UTF8.self) }
            guard let s = String(validating: raw, as: UTF8.self) else { throw error("a string that is not UTF-8") }
            return s
        }
        var out = Array(UnsafeBufferPointer(rebasing: b[start..<i]))
        while true {
            guard i < b.count else { throw error("unterminated string") }
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            guard c >= 0x20 else { throw error("control character in a string") }
            guard c == UInt8(ascii: "\\") else { out.append(c); continue }
            guard i < b.count else { throw error("unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw error("a lone surrogate")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("a lone surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("a lone surrogate") }
                out += Array(String(Character(u)).utf8)
            default: throw error("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("a string that is not UTF-8") }
        return s
    }
}
