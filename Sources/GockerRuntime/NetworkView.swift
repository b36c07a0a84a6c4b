import GockerCore

/// `network inspect`'s object, docker's members.
public struct NetworkView: JSONShape, Sendable {
    public var Name = ""
    public var Id = ""
    public var Created = ""
    public var Scope = "local"
    public var Driver = ""
    public var EnableIPv6 = false
    public var IPAM: [String: JSONValue] = [:]
    public var Internal = false
    public var Attachable = false
    public var Ingress = false
    public var Containers: [String: JSONValue] = [:]
    public var Options: [String: String] = [:]
    public var Labels: [String: String] = [:]

    public init() {}

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("Name", &Name)
        try v.field("Id", &Id)
        try v.field("Created", &Created)
        try v.field("Scope", &Scope)
        try v.field("Driver", &Driver)
        try v.field("EnableIPv6", &EnableIPv6)
        try v.field("IPAM", &IPAM)
        try v.field("Internal", &Internal)
        try v.field("Attachable", &Attachable)
        try v.field("Ingress", &Ingress)
        try v.field("Containers", &Containers)
        try v.field("Options", &Options)
        try v.field("Labels", &Labels)
    }
}

extension Engine {
    /// A stable id for `host` and `none`, which have no record.
    static func predefinedID(_ name: String) -> String {
        SHA256.hash(Array("gocker network \(name)".utf8)).map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    /// Every network: the default one (made if missing), host, none, then
    /// the user's, by name.
    public func networkViews() throws(GockerError) -> [NetworkView] {
        let bridge = try defaultNetwork()
        var out = [view(bridge)]
        for name in ["host", "none"] { out.append(try networkView(name)) }
        out += storedNetworks().filter { $0.name != NetworkRecord.defaultName }.map(view)
        return out
    }

    /// `network inspect NAME`.
    public func networkView(_ ref: String) throws(GockerError) -> NetworkView {
        if ref == "host" || ref == "none" {
            var v = NetworkView()
            v.Name = ref
            v.Id = Self.predefinedID(ref)
            v.Driver = ref == "host" ? "host" : "null"
            v.IPAM = ["Driver": .string("default"), "Options": .null, "Config": .array([])]
            for r in records() where r.network == ref {
                v.Containers[r.id] = .object(["Name": .string(r.name), "EndpointID": .string(""), "MacAddress": .string(""),
                                              "IPv4Address": .string(""), "IPv6Address": .string("")])
            }
            return v
        }
        return view(try network(ref))
    }

    func view(_ r: NetworkRecord) -> NetworkView {
        var v = NetworkView()
        v.Name = r.name
        v.Id = r.id
        v.Created = r.created
        v.Driver = r.driver
        var config: [String: JSONValue] = ["Subnet": .string(r.subnet), "Gateway": .string(r.gateway)]
        if let range = r.ipRange { config["IPRange"] = .string(range) }
        v.IPAM = ["Driver": .string("default"), "Options": .object([:]), "Config": .array([.object(config)])]
        v.Internal = r.internal
        for (c, a) in containers(on: r.name) {
            v.Containers[c.id] = .object(["Name": .string(c.name), "EndpointID": .string(a.hostInterface),
                                          "MacAddress": .string(a.mac), "IPv4Address": .string("\(a.address)/\(a.prefix)"),
                                          "IPv6Address": .string("")])
        }
        v.Options = r.options
        v.Options[NetworkRecord.bridgeNameOption] = r.bridge
        v.Labels = r.labels
        return v
    }
}

/// One line of `network ls --format json`, docker's members.
public struct NetworkRow: JSONShape, Sendable {
    public var CreatedAt = ""
    public var Driver = ""
    public var ID = ""
    public var IPv6 = "false"
    public var Internal = "false"
    public var Labels = ""
    public var Name = ""
    public var Scope = "local"

    public init() {}

    public init(_ v: NetworkView) {
        CreatedAt = v.Created
        Driver = v.Driver
        ID = String(v.Id.prefix(12))
        Internal = v.Internal ? "true" : "false"
        Labels = v.Labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        Name = v.Name
        Scope = v.Scope
    }

    public mutating func fields(_ v: inout JSONFields) throws(JSONError) {
        try v.field("CreatedAt", &CreatedAt)
        try v.field("Driver", &Driver)
        try v.field("ID", &ID)
        try v.field("IPv6", &IPv6)
        try v.field("Internal", &Internal)
        try v.field("Labels", &Labels)
        try v.field("Name", &Name)
        try v.field("Scope", &Scope)
    }
}
