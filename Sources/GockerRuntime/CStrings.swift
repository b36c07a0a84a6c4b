import Glibc

/// C strings and arrays that live as long as the arena: the memory of a
/// flat spawn description, freed after gk_spawn returns.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func optionalString(_ s: String?) -> UnsafePointer<CChar>? { s.map { string($0) } }

    /// A NULL-terminated array of C strings.
    func stringArray(_ strings: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        let p = array(of: UnsafePointer<CChar>?.self, count: strings.count + 1)
        for (i, s) in strings.enumerated() { p[i] = string(s) }
        p[strings.count] = nil
        return UnsafePointer(p)
    }

    func array<T>(of: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    func array<T>(_ values: [T]) -> UnsafePointer<T> {
        let p = array(of: T.self, count: values.count)
        for (i, v) in values.enumerated() { (p + i).initialize(to: v) }
        return UnsafePointer(p)
    }

    deinit {
        for b in blocks { free(b) }
    }
}
