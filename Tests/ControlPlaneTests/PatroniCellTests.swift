import CellRouting
import ControlPlane
import OrderModel
import Testing

/// ``PatroniCell``: a cell's Patroni keys in etcd, read into the storage route the control plane publishes.
@Suite("A cell's Patroni state and the storage route it asks for")
struct PatroniCellTests {
    static let prefix = "/ordercell/cell-1/"
    static let route = CellStorageRoute(
        primary: PostgresEndpoint(host: "127.0.0.1", port: 21050, database: "cell_1", username: "ordercell"),
        replicas: [PostgresEndpoint(host: "127.0.0.1", port: 21051, database: "cell_1", username: "ordercell")]
    )

    static func member(port: Int, api: Int, role: String, state: String, timeline: Int) -> String {
        #"{"conn_url":"postgres://127.0.0.1:\#(port)/postgres","api_url":"http://127.0.0.1:\#(api)/patroni","state":"\#(state)","role":"\#(role)","version":"4.1.5","xlog_location":58038472,"timeline":\#(timeline)}"#
    }

    static func keys(leader: String?, m1: (role: String, state: String)?, m2: (role: String, state: String)?, timeline: Int = 2) -> [String: String] {
        var keys = [prefix + "config": #"{"ttl":20}"#, prefix + "sync": #"{"leader":"cell-1-m2","sync_standby":"cell-1-m1"}"#, "/ordercell/cell-2/leader": "cell-2-m1"]
        if let leader { keys[prefix + "leader"] = leader }
        if let m1 { keys[prefix + "members/cell-1-m1"] = member(port: 21050, api: 21300, role: m1.role, state: m1.state, timeline: timeline) }
        if let m2 { keys[prefix + "members/cell-1-m2"] = member(port: 21051, api: 21301, role: m2.role, state: m2.state, timeline: timeline) }
        return keys
    }

    @Test("the keys read: leader, members with their servers and REST APIs, the synchronous standby; other cells' keys ignored")
    func reads() throws {
        let cell = PatroniCell(keys: Self.keys(leader: "cell-1-m2", m1: ("replica", "streaming"), m2: ("primary", "running")), prefix: Self.prefix)
        #expect(cell.leader == "cell-1-m2" && cell.synchronousStandby == "cell-1-m1")
        let leader = try #require(cell.primary)
        #expect(leader.address == "127.0.0.1:21051" && leader.api == "http://127.0.0.1:21301" && leader.timeline == 2)
        #expect(cell.members.count == 2)
    }

    @Test("a failover: the promoted standby becomes the primary, the old primary leaves the replicas until it rejoins")
    func failover() throws {
        // The old primary's Patroni is gone (its member key expired with its lease).
        let promoted = PatroniCell(keys: Self.keys(leader: "cell-1-m2", m1: nil, m2: ("primary", "running")), prefix: Self.prefix)
        let next = try #require(promoted.storage(following: Self.route))
        #expect(next.primary.port == 21051 && next.primary.database == "cell_1" && next.primary.username == "ordercell" && next.replicas.isEmpty)
        // It rejoins as a standby (pg_rewind): a replica again once it streams, not while it starts.
        let starting = PatroniCell(keys: Self.keys(leader: "cell-1-m2", m1: ("replica", "starting"), m2: ("primary", "running")), prefix: Self.prefix)
        #expect(starting.storage(following: next) == nil)
        let rejoined = PatroniCell(keys: Self.keys(leader: "cell-1-m2", m1: ("replica", "streaming"), m2: ("primary", "running")), prefix: Self.prefix)
        #expect(rejoined.storage(following: next)?.replicas.map(\.port) == [21050])
    }

    @Test("no change while nobody runs as the primary: the lock expired, or taken a moment before the promotion; nor when the route is right")
    func waits() {
        let noLeader = PatroniCell(keys: Self.keys(leader: nil, m1: nil, m2: ("replica", "streaming")), prefix: Self.prefix)
        #expect(noLeader.primary == nil && noLeader.storage(following: Self.route) == nil)
        let notPromotedYet = PatroniCell(keys: Self.keys(leader: "cell-1-m2", m1: nil, m2: ("replica", "running")), prefix: Self.prefix)
        #expect(notPromotedYet.storage(following: Self.route) == nil)
        let same = PatroniCell(keys: Self.keys(leader: "cell-1-m1", m1: ("master", "running"), m2: ("replica", "streaming")), prefix: Self.prefix)
        #expect(same.primary?.name == "cell-1-m1", "Patroni before 4 says master")
        #expect(same.storage(following: Self.route) == nil)
    }

    @Test("the etcd settings: URLs and namespace checked")
    func settings() throws {
        let dcs = try PatroniDCS(etcd: "http://127.0.0.1:1, http://127.0.0.1:2", namespace: "/oc")
        #expect(dcs.etcd == ["http://127.0.0.1:1", "http://127.0.0.1:2"] && dcs.prefix(of: CellID(3)!) == "/oc/cell-3/")
        #expect(throws: OrderError.self) { try PatroniDCS(etcd: "127.0.0.1:2379") }
        #expect(throws: OrderError.self) { try PatroniDCS(etcd: " , ") }
    }
}
