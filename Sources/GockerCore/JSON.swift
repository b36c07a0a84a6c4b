import FoundationEssentials
import Glibc

/// JSON in and out, with the errors gocker reports.
public enum JSON {
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws(GockerError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw GockerError(.invalidConfig, "parse \(what)", cause: DecodingDescription(error))
        }
    }

    public static func decodeFile<T: Decodable>(_ type: T.Type, path: String) throws(GockerError) -> T {
        try decode(type, from: try readFile(path), what: path)
    }

    /// The file read by `reader` (JSONReader's, for gocker's own files), or
    /// by JSONDecoder where that gives up (nil).
    public static func decodeFile<T: Decodable>(_ type: T.Type, path: String,
                                                reader: ([UInt8]) -> T?) throws(GockerError) -> T {
        try decode(type, from: try readFile(path), what: path, reader: reader)
    }

    /// `bytes` read by `reader`, or by JSONDecoder where that gives up.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String,
                                            reader: ([UInt8]) -> T?) throws(GockerError) -> T {
        if let value = reader(bytes) { return value }
        return try decode(type, from: bytes, what: what)
    }

    /// A file's bytes; a missing file is `.notFound`.
    public static func readFile(_ path: String) throws(GockerError) -> [UInt8] {
        do { return try Sys.readFile(path) } catch {
            throw GockerError(error.errno == ENOENT ? .notFound : .system, "read \(path)", cause: error)
        }
    }

    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        // Encoding gocker's own Codable values cannot fail.
        return Array((try? encoder.encode(value)) ?? Data())
    }

    /// Decoding errors carry Swift's debug text; keep one readable line.
    struct DecodingDescription: Error, CustomStringConvertible {
        let description: String
        init(_ error: any Error) {
            switch error {
            case DecodingError.dataCorrupted(let c):
                description = c.debugDescription
            case DecodingError.keyNotFound(let key, let c):
                description = "missing field \"\(Self.path(c.codingPath + [key]))\""
            case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
                description = "wrong type at \"\(Self.path(c.codingPath))\": \(c.debugDescription)"
            default:
                description = "\(error)"
            }
        }
        static func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
    }
}
