/// Where JSONDecoder refuses a document without saying where (a number
/// that does not fit its field, such as `"uid": -1`, comes back as "The
/// given data was not valid JSON."), the same type is decoded again from
/// JSONReader's parse through this strict decoder, which fails at the same
/// value and says where it is. Error path only: never used to read.
struct JSONPathFinder: Decoder {
    typealias Value = JSONValue
    let value: Value
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    struct Index: CodingKey {
        var intValue: Int?
        var stringValue: String { "\(intValue!)" }
        init(intValue: Int) { self.intValue = intValue }
        init?(stringValue: String) { nil }
    }

    static func wrong(_ v: Value, _ expected: String, _ path: [any CodingKey]) -> DecodingError {
        .typeMismatch(Any.self, .init(codingPath: path, debugDescription: "\(v.kind) is not \(expected)"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let o) = value else { throw Self.wrong(value, "an object", codingPath) }
        return KeyedDecodingContainer(Keyed<Key>(o: o, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let a) = value else { throw Self.wrong(value, "an array", codingPath) }
        return Unkeyed(a: a, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(value: value, codingPath: codingPath) }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let o: [String: Value]
        let codingPath: [any CodingKey]
        var allKeys: [Key] { o.keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { o[key.stringValue] != nil }
        func decoder(_ key: Key) throws -> JSONPathFinder {
            guard let v = o[key.stringValue] else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
            }
            return JSONPathFinder(value: v, codingPath: codingPath + [key])
        }
        func decodeNil(forKey key: Key) throws -> Bool {
            guard let v = o[key.stringValue] else { return true }
            if case .null = v { return true }
            return false
        }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try T(from: decoder(key)) }
        func decode(_ t: Bool.Type, forKey key: Key) throws -> Bool { try Bool(from: decoder(key)) }
        func decode(_ t: String.Type, forKey key: Key) throws -> String { try String(from: decoder(key)) }
        func decode(_ t: Double.Type, forKey key: Key) throws -> Double { try Double(from: decoder(key)) }
        func decode(_ t: Float.Type, forKey key: Key) throws -> Float { try Float(from: decoder(key)) }
        func decode(_ t: Int.Type, forKey key: Key) throws -> Int { try Int(from: decoder(key)) }
        func decode(_ t: Int8.Type, forKey key: Key) throws -> Int8 { try Int8(from: decoder(key)) }
        func decode(_ t: Int16.Type, forKey key: Key) throws -> Int16 { try Int16(from: decoder(key)) }
        func decode(_ t: Int32.Type, forKey key: Key) throws -> Int32 { try Int32(from: decoder(key)) }
        func decode(_ t: Int64.Type, forKey key: Key) throws -> Int64 { try Int64(from: decoder(key)) }
        func decode(_ t: UInt.Type, forKey key: Key) throws -> UInt { try UInt(from: decoder(key)) }
        func decode(_ t: UInt8.Type, forKey key: Key) throws -> UInt8 { try UInt8(from: decoder(key)) }
        func decode(_ t: UInt16.Type, forKey key: Key) throws -> UInt16 { try UInt16(from: decoder(key)) }
        func decode(_ t: UInt32.Type, forKey key: Key) throws -> UInt32 { try UInt32(from: decoder(key)) }
        func decode(_ t: UInt64.Type, forKey key: Key) throws -> UInt64 { try UInt64(from: decoder(key)) }
        func nestedContainer<N: CodingKey>(keyedBy type: N.Type, forKey key: Key) throws -> KeyedDecodingContainer<N> {
            try decoder(key).container(keyedBy: type)
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try decoder(key).unkeyedContainer()
        }
        func superDecoder() throws -> any Decoder { JSONPathFinder(value: .object(o), codingPath: codingPath) }
        func superDecoder(forKey key: Key) throws -> any Decoder { try decoder(key) }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let a: [Value]
        let codingPath: [any CodingKey]
        var currentIndex = 0
        var count: Int? { a.count }
        var isAtEnd: Bool { currentIndex >= a.count }
        mutating func next() throws -> JSONPathFinder {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath, debugDescription: "past the end"))
            }
            defer { currentIndex += 1 }
            return JSONPathFinder(value: a[currentIndex], codingPath: codingPath + [Index(intValue: currentIndex)])
        }
        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, case .null = a[currentIndex] else { return false }
            currentIndex += 1
            return true
        }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: next()) }
        mutating func decode(_ t: Bool.Type) throws -> Bool { try Bool(from: next()) }
        mutating func decode(_ t: String.Type) throws -> String { try String(from: next()) }
        mutating func decode(_ t: Double.Type) throws -> Double { try Double(from: next()) }
        mutating func decode(_ t: Float.Type) throws -> Float { try Float(from: next()) }
        mutating func decode(_ t: Int.Type) throws -> Int { try Int(from: next()) }
        mutating func decode(_ t: Int8.Type) throws -> Int8 { try Int8(from: next()) }
        mutating func decode(_ t: Int16.Type) throws -> Int16 { try Int16(from: next()) }
        mutating func decode(_ t: Int32.Type) throws -> Int32 { try Int32(from: next()) }
        mutating func decode(_ t: Int64.Type) throws -> Int64 { try Int64(from: next()) }
        mutating func decode(_ t: UInt.Type) throws -> UInt { try UInt(from: next()) }
        mutating func decode(_ t: UInt8.Type) throws -> UInt8 { try UInt8(from: next()) }
        mutating func decode(_ t: UInt16.Type) throws -> UInt16 { try UInt16(from: next()) }
        mutating func decode(_ t: UInt32.Type) throws -> UInt32 { try UInt32(from: next()) }
        mutating func decode(_ t: UInt64.Type) throws -> UInt64 { try UInt64(from: next()) }
        mutating func nestedContainer<N: CodingKey>(keyedBy type: N.Type) throws -> KeyedDecodingContainer<N> {
            try next().container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
        mutating func superDecoder() throws -> any Decoder { try next() }
    }

    struct Single: SingleValueDecodingContainer {
        let value: Value
        let codingPath: [any CodingKey]
        func decodeNil() -> Bool {
            if case .null = value { return true }
            return false
        }
        func integer<T: FixedWidthInteger>(_ t: T.Type) throws -> T {
            guard case .number(let text) = value else { throw wrong("a number") }
            guard let n = T(text) else {
                let what = T.isSigned ? "a \(T.bitWidth)-bit integer" : "an unsigned \(T.bitWidth)-bit integer"
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(text) is not \(what)"))
            }
            return n
        }
        func wrong(_ expected: String) -> DecodingError { JSONPathFinder.wrong(value, expected, codingPath) }
        func decode(_ t: Bool.Type) throws -> Bool {
            guard case .bool(let b) = value else { throw wrong("a boolean") }
            return b
        }
        func decode(_ t: String.Type) throws -> String {
            guard case .string(let s) = value else { throw wrong("a string") }
            return s
        }
        func decode(_ t: Double.Type) throws -> Double {
            guard case .number(let text) = value, let d = Double(text) else { throw wrong("a number") }
            return d
        }
        func decode(_ t: Float.Type) throws -> Float { Float(try decode(Double.self)) }
        func decode(_ t: Int.Type) throws -> Int { try integer(t) }
        func decode(_ t: Int8.Type) throws -> Int8 { try integer(t) }
        func decode(_ t: Int16.Type) throws -> Int16 { try integer(t) }
        func decode(_ t: Int32.Type) throws -> Int32 { try integer(t) }
        func decode(_ t: Int64.Type) throws -> Int64 { try integer(t) }
        func decode(_ t: UInt.Type) throws -> UInt { try integer(t) }
        func decode(_ t: UInt8.Type) throws -> UInt8 { try integer(t) }
        func decode(_ t: UInt16.Type) throws -> UInt16 { try integer(t) }
        func decode(_ t: UInt32.Type) throws -> UInt32 { try integer(t) }
        func decode(_ t: UInt64.Type) throws -> UInt64 { try integer(t) }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: JSONPathFinder(value: value, codingPath: codingPath)) }
    }
}
