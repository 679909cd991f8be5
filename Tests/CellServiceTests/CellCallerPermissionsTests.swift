import CellProtocol
import CellStorage
import Foundation
import NIOCore
import OrderModel
import Testing

@testable import CellService

@Suite("Who may call what on the cell protocol")
struct CellCallerPermissionsTests {
    @Test("the control plane calls everything, a proxy the order API's methods, an operator reads and drill faults, an unnamed certificate nothing")
    func permissions() {
        let proxy = CellCaller.identified(.proxy, name: "proxy-1")
        let control = CellCaller.identified(.control, name: "control")
        let person = CellCaller.identified(.operator, name: "alice")
        let nameless = CellCaller.unidentified("a certificate without an identity")
        let operatorMethods: Set<CellMethod> = [.getOrder, .listRefunds, .listEvents, .getKeyEntry, .findOrder, .getFault, .setFault, .readFeed, .notifierStatus]
        let proxyMethods = operatorMethods.subtracting([.readFeed, .notifierStatus]).union([.createOrder, .applyCommand, .bindKey, .moveKey, .claimKey])
        for method in CellMethod.allCases {
            #expect(method.permits(control), "\(method)")
            #expect(method.permits(proxy) == proxyMethods.contains(method), "\(method)")
            #expect(method.permits(person) == operatorMethods.contains(method), "\(method)")
            #expect(!method.permits(nameless), "\(method)")
            // Without mutual TLS nothing is known of a caller: loopback development, said at start.
            #expect(method.permits(.anonymous), "\(method)")
        }
        #expect(!CellMethod.createOrder.permits(person) && !CellMethod.applyCommand.permits(person))
    }

    @Test("identity URIs name a role and a name")
    func identityURIs() {
        #expect(CellCaller.uri(role: .proxy, name: "proxy-1") == "spiffe://ordercell/proxy/proxy-1")
        #expect(CellCaller.identified(.operator, name: "alice").description == "operator/alice")
        #expect(CellCaller.anonymous.description == "anonymous" && CellCaller.anonymous.role == nil)
        #expect(CellCaller.unidentified("") != .anonymous)
        #expect(CellCaller.isValidName("proxy-1") && CellCaller.isValidName("alice@example.com"))
        #expect(!CellCaller.isValidName("") && !CellCaller.isValidName("a/b") && !CellCaller.isValidName("bad\nline"))
        #expect(!CellCaller.isValidName(String(repeating: "a", count: 65)))
    }

    @Test("a drill fault relayed by a proxy must name its operator; a caller the role does not allow is refused before anything runs")
    func relayedFaults() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-callers-\(UUID().uuidString).sqlite").path
        let service = CellService(cell: CellID(7)!, store: try await SQLiteOrderStore.open(path: path), sequenceSegmentSize: 10, clock: { Timestamp(secondsSinceEpoch: 1_800_000_000) })
        let responder = CellProtocolService(cell: service)
        let allocator = ByteBufferAllocator()
        func setFault(_ mode: String, operator name: String, as caller: CellCaller) async throws {
            var fault = RPCFault()
            fault.mode = mode
            fault.operator = name
            _ = try await responder.answer(
                method: CellMethod.setFault.rawValue, payload: try fault.framePayload(allocator: allocator), caller: caller, deadline: nil, allocator: allocator
            )
        }
        let proxy = CellCaller.identified(.proxy, name: "proxy-1")
        await #expect(throws: (any Error).self) { try await setFault("fail", operator: "", as: proxy) }
        await #expect(throws: (any Error).self) { try await setFault("fail", operator: "bad\nname", as: proxy) }
        #expect(service.currentFault == CellFault.none)
        try await setFault("fail", operator: "alice", as: proxy)
        #expect(service.currentFault == .fail)
        // An unidentified caller is refused, and nothing changes.
        await #expect(throws: (any Error).self) { try await setFault("none", operator: "alice", as: .unidentified("no certificate")) }
        #expect(service.currentFault == .fail)
        try await setFault("none", operator: "", as: .identified(.operator, name: "bob"))
        #expect(service.currentFault == CellFault.none)
        try? FileManager.default.removeItem(atPath: path)
    }
}
