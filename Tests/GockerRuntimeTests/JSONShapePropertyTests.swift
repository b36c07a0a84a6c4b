import GockerControllers
import Testing
@testable import GockerCore
@testable import GockerRuntime

/// Every saved shape (and every controller's linux.resources member), filled with random values in every member: written
/// and read back, it is the same value; and `fields` names every stored
/// property, so a new one cannot be forgotten.
struct JSONShapePropertyTests {
    static var shapes: [any JSONShape.Type] { [
        Spec.self, Spec.Process.self, Spec.User.self, Spec.Capabilities.self, Spec.Rlimit.self, Spec.Root.self,
        Spec.Mount.self, Spec.Linux.self, Spec.Namespace.self, Spec.Device.self, Spec.Resources.self,
        Spec.Seccomp.self, Spec.Seccomp.Syscall.self, Spec.Seccomp.Arg.self, OCIState.self,
        RuntimeState.self, CgroupRecord.self, ImageRecord.self, ImageConfig.self, ImageHistory.self,
        ContainerRecord.self, LaunchExtras.self, MountPoint.self, VolumeRecord.self, ContainerDetails.self, ContainerDetails.RunState.self,
        SeccompProfileFile.Profile.self, IPAM.Book.self, SeccompProfileFile.Rule.self, ContainerProcessState.self,
    ] + BuiltinControllers.all.flatMap { $0.resourceMembers.map(\.shape) } }

    @Test(arguments: 0..<shapes.count)
    func everyMemberRoundTrips(index: Int) throws {
        let shape = Self.shapes[index]
        var rng = SplitMix64(seed: UInt64(index) &* 0x9E37_79B9 &+ 1)
        for _ in 0..<20 {
            try Self.roundTrip(shape, &rng)
        }
    }

    /// A random document of the shape, every member given: read, it
    /// writes back the same document.
    static func roundTrip<S: JSONShape>(_: S.Type, _ rng: inout SplitMix64) throws {
        let document = RandomDocument.object(S.self, &rng, depth: 0)
        var text = JSONText()
        document.write(to: &text)
        let value = try S(jsonBytes: text.bytes)
        #expect(try JSONValue.parse(value.jsonBytes) == document, "\(S.self): \(String(decoding: text.bytes, as: UTF8.self))")
        #expect(value.unmodeled.isEmpty)
        // Its tree, made without the text, is the one its text reads as;
        // members it does not model are kept in it too.
        #expect(value.jsonValue == document, "\(S.self)")
        var extended = value
        extended.unmodeled["x-unmodeled"] = .array([.number("-12"), .string("é"), .null])
        #expect(try JSONValue.parse(extended.jsonBytes) == extended.jsonValue, "\(S.self) with an unmodeled member")
    }

    @Test(arguments: 0..<shapes.count)
    func everyStoredPropertyIsAMember(index: Int) {
        let shape = Self.shapes[index]
        func count<S: JSONShape>(_: S.Type) -> (properties: Int, members: [String]) {
            let properties = Mirror(reflecting: S()).children.filter { $0.label != "unmodeled" }.count
            return (properties, S.jsonMembers.map(\.key))
        }
        let (properties, members) = count(shape)
        #expect(properties == members.count, "\(shape): \(properties) stored properties, \(members.count) members in fields")
        #expect(Set(members).count == members.count, "\(shape): a member named twice")
    }
}

/// JSON documents with every member of a shape, each a random value of
/// its type, derived from the shape's own list of members.
enum RandomDocument {
    static func object<S: JSONShape>(_: S.Type, _ rng: inout SplitMix64, depth: Int) -> JSONValue {
        var o: [String: JSONValue] = [:]
        for m in S.jsonMembers {
            switch m.container {
            case .one: o[m.key] = value(m.type, &rng, depth: depth)
            case .array: o[m.key] = .array((0..<(depth > 2 ? 1 : 1 + Int(rng.next() % 2))).map { _ in value(m.type, &rng, depth: depth) })
            case .map: o[m.key] = .object(["k\(rng.next() % 9)": value(m.type, &rng, depth: depth), "": value(m.type, &rng, depth: depth)])
            }
        }
        return .object(o)
    }

    static func value(_ type: any JSONField.Type, _ rng: inout SplitMix64, depth: Int) -> JSONValue {
        let r = rng.next()
        let text = ["x", "é \"q\" \\ / \n\t", "", "0", "/a/b", "\u{1}"][Int(r % 6)]
        func integer<I: FixedWidthInteger>(_: I.Type) -> JSONValue {
            .number(String([I.min, I.max, 0, 1, I(truncatingIfNeeded: r >> 8)][Int(r % 5)]))
        }
        switch type {
        case is String.Type: return .string(text)
        case is Bool.Type: return .bool(r & 1 == 0)
        case is JSONValue.Type: return .string(text)
        case is ContainerStatus.Type: return .string(["creating", "created", "running", "stopped", "paused"][Int(r % 5)])
        case is CgroupVersion.Type: return .string(r & 1 == 0 ? "v1" : "v2")
        case let int as any FixedWidthInteger.Type: return integer(int)
        case let shape as any JSONShape.Type:
            func nested<S: JSONShape>(_: S.Type) -> JSONValue { object(S.self, &rng, depth: depth + 1) }
            return nested(shape)
        default:
            Issue.record("no random \(type)")
            return .null
        }
    }
}
