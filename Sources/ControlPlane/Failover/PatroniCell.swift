import CellRouting
import Foundation
import OrderModel

/// Where Patroni keeps its clusters: an etcd cluster (v3 API) and a
/// namespace in it. Cell N's PostgreSQL servers are the Patroni cluster
/// (scope) `cell-N`.
public struct PatroniDCS: Sendable, Equatable {
    /// etcd client URLs, `http://host:port`; any member answers.
    public var etcd: [String]
    /// The key prefix, `/ordercell/` by default; ends with `/`.
    public var namespace: String

    /// Parses `http://host:port,http://host:port,…`.
    public init(etcd list: String, namespace: String = "/ordercell/") throws(OrderError) {
        let urls = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !urls.isEmpty else { throw OrderError.invalidRequest("--patroni-etcd names no etcd URL") }
        for url in urls where !(url.hasPrefix("http://") || url.hasPrefix("https://")) || url.dropFirst(8).contains("/") {
            throw OrderError.invalidRequest("an etcd client URL is http(s)://host:port, got \(url.prefix(80))")
        }
        guard namespace.hasPrefix("/"), !namespace.contains(" ") else {
            throw OrderError.invalidRequest("--patroni-namespace starts with /, got \(namespace.prefix(80))")
        }
        self.etcd = urls
        self.namespace = namespace.hasSuffix("/") ? namespace : namespace + "/"
    }

    /// The Patroni scope of `cell`.
    public static func scope(of cell: CellID) -> String { "cell-\(cell)" }

    /// The prefix of every key of `cell`'s Patroni cluster.
    public func prefix(of cell: CellID) -> String { namespace + Self.scope(of: cell) + "/" }
}

/// One cell's Patroni cluster as its keys in etcd say: the leader (the
/// member holding the leader lock), its members and the synchronous
/// standby. A pure value, read from a snapshot of the keys.
public struct PatroniCell: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var name: String
        /// Where its PostgreSQL listens, from its `conn_url`.
        public var host: String
        public var port: Int
        /// Its REST API, `http://host:port` (Patroni's `api_url` without the path).
        public var api: String
        /// `primary` (`master` before Patroni 4), `replica`, …
        public var role: String
        /// `running`, `streaming`, `starting`, `stopped`, …
        public var state: String
        public var timeline: Int?

        /// Whether it runs as the primary (Patroni 4 says `primary`, earlier `master`).
        public var isPrimary: Bool { role == "primary" || role == "master" }
        /// Whether it serves as a standby now.
        public var isServingStandby: Bool { !isPrimary && (state == "streaming" || state == "running") }
        public var address: String { "\(host):\(port)" }
    }

    /// The member holding the leader lock; nil while nobody does (between a
    /// leader's lease expiring and a standby's promotion).
    public var leader: String?
    public var members: [String: Member]
    /// The standby Patroni may promote (synchronous mode), nil when none.
    public var synchronousStandby: String?

    public init(leader: String?, members: [String: Member], synchronousStandby: String?) {
        self.leader = leader
        self.members = members
        self.synchronousStandby = synchronousStandby
    }

    /// Reads the cell's keys (`prefix` + `leader`, `members/<name>`, `sync`);
    /// other keys are ignored, and a member key that cannot be read is left out.
    public init(keys: [String: String], prefix: String) {
        var members: [String: Member] = [:]
        var leader: String?
        var synchronousStandby: String?
        for (key, value) in keys where key.hasPrefix(prefix) {
            let name = String(key.dropFirst(prefix.count))
            if name == "leader" {
                leader = value
            } else if name == "sync" {
                let object = (try? JSONSerialization.jsonObject(with: Data(value.utf8))) as? [String: Any]
                synchronousStandby = object?["sync_standby"] as? String
            } else if name.hasPrefix("members/") {
                let member = String(name.dropFirst("members/".count))
                if let parsed = Self.member(member, value) { members[member] = parsed }
            }
        }
        self.init(leader: leader, members: members, synchronousStandby: synchronousStandby)
    }

    /// A member key's value: `{"conn_url":"postgres://host:port/postgres","api_url":"http://host:port/patroni","role":…,"state":…,"timeline":…}`.
    static func member(_ name: String, _ value: String) -> Member? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(value.utf8))) as? [String: Any],
            let connection = object["conn_url"] as? String, let url = URLComponents(string: connection), let host = url.host, let port = url.port
        else { return nil }
        var api = object["api_url"] as? String ?? ""
        if let components = URLComponents(string: api), let apiHost = components.host, let apiPort = components.port {
            api = "\(components.scheme ?? "http")://\(apiHost):\(apiPort)"
        }
        return Member(
            name: name, host: host, port: port, api: api, role: object["role"] as? String ?? "", state: object["state"] as? String ?? "",
            timeline: object["timeline"] as? Int
        )
    }

    /// The leader, once it runs as the primary: the lock alone is taken a
    /// moment before the promoted server accepts writes.
    public var primary: Member? {
        guard let leader, let member = members[leader], member.isPrimary else { return nil }
        return member
    }

    /// The storage route this state asks for, given the route the cell has:
    /// the primary's server and the standbys serving now, with the route's
    /// database and credentials. Nil when the route is right already, or
    /// when no primary runs (nothing to point at: the route stays).
    public func storage(following route: CellStorageRoute) -> CellStorageRoute? {
        guard let primary else { return nil }
        func endpoint(_ member: Member) -> PostgresEndpoint {
            PostgresEndpoint(
                host: member.host, port: member.port, database: route.primary.database, username: route.primary.username,
                password: route.primary.password
            )
        }
        let standbys = members.values.filter { $0.name != primary.name && $0.isServingStandby }.sorted { $0.name < $1.name }
        let next = CellStorageRoute(primary: endpoint(primary), replicas: standbys.map(endpoint))
        return next == route ? nil : next
    }
}
