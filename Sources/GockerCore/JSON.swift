import FoundationEssentials
import Glibc

/// JSON in and out, with the errors gocker reports.
public enum JSON {
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws(GockerError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw GockerError(.invalidConfig, "parse \(what)", cause: DecodingDescription(located(error, type, bytes)))
        }
    }

    public static func decodeFile<T: Decodable>(_ type: T.Type, path: String) throws(GockerError) -> T {
        try decode(type, from: try readFile(path), what: path)
    }

    /// A document of one of gocker's shapes, from `bytes`; `what` names it in errors.
    public static func read<T: JSONShape>(_ type: T.Type, from bytes: [UInt8], what: String) throws(GockerError) -> T {
        do { return try T(jsonBytes: bytes) } catch {
            throw GockerError(.invalidConfig, "parse \(what)", cause: error)
        }
    }

    /// A document of one of gocker's shapes, from the file at `path`.
    public static func readFile<T: JSONShape>(_ type: T.Type, path: String) throws(GockerError) -> T {
        try read(type, from: try readFile(path), what: path)
    }

    /// A JSON object of strings (the image store's repositories.json).
    public static func readStrings(from bytes: [UInt8], what: String) throws(GockerError) -> [String: String] {
        do { return try JSONFields.map(try JSONValue.parse(bytes)) } catch {
            throw GockerError(.invalidConfig, "parse \(what)", cause: error)
        }
    }

    /// A JSON object of strings, compact, names sorted.
    public static func strings(_ map: [String: String]) -> [UInt8] {
        var out = JSONText()
        out.map(map)
        return out.bytes
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

    /// JSONDecoder's error, or where it names no field (a number that does
    /// not fit its field is "not valid JSON" to it) and the text is JSON,
    /// the error of a decoder that says where the bad value is.
    static func located<T: Decodable>(_ error: any Error, _ type: T.Type, _ bytes: [UInt8]) -> any Error {
        guard case DecodingError.dataCorrupted(let c) = error, c.codingPath.isEmpty,
              let value = try? JSONValue.parse(bytes) else { return error }
        do {
            _ = try T(from: JSONPathFinder(value: value, codingPath: []))
        } catch let located as DecodingError {
            switch located {
            case .dataCorrupted(let c) where !c.codingPath.isEmpty: return located
            case .typeMismatch(_, let c) where !c.codingPath.isEmpty: return located
            default: break
            }
        } catch {}
        return error
    }

    /// Decoding errors carry Swift's debug text; keep one readable line.
    struct DecodingDescription: Error, CustomStringConvertible {
        let description: String
        init(_ error: any Error) {
            switch error {
            case DecodingError.dataCorrupted(let c) where !c.codingPath.isEmpty:
                description = "invalid value at \"\(Self.path(c.codingPath))\": \(Self.detail(c))"
            case DecodingError.dataCorrupted(let c):
                description = Self.detail(c)
            case DecodingError.keyNotFound(let key, let c):
                description = "missing field \"\(Self.path(c.codingPath + [key]))\""
            case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
                description = "wrong type at \"\(Self.path(c.codingPath))\": \(c.debugDescription)"
            default:
                description = "\(error)"
            }
        }
        /// The decoder's text, with its underlying error's when it has one
        /// (which says what was wrong where the text says only "not valid").
        static func detail(_ c: DecodingError.Context) -> String {
            guard let under = c.underlyingError else { return c.debugDescription }
            return "\(c.debugDescription) (\(under))"
        }

        static func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
    }
}
