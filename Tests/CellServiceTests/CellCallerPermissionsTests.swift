import CellProtocol
import Testing

@testable import CellService

@Suite("Who may call what on the cell protocol")
struct CellCallerPermissionsTests {
    @Test("proxies and the control plane call everything; an operator reads and sets drill faults; an unnamed certificate nothing")
    func permissions() {
        let proxy = CellCaller(role: .proxy, name: "proxy-1")
        let control = CellCaller(role: .control, name: "control")
        let person = CellCaller(role: .operator, name: "alice")
        let nameless = CellCaller.unidentified("a certificate without an identity")
        let operatorMethods: Set<CellMethod> = [.getOrder, .listRefunds, .listEvents, .getKeyEntry, .findOrder, .getFault, .setFault]
        for method in CellMethod.allCases {
            #expect(method.permits(proxy) && method.permits(control), "\(method)")
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
        #expect(CellCaller(role: .operator, name: "alice").description == "operator/alice")
        #expect(CellCaller.anonymous.description == "anonymous" && CellCaller.anonymous.isAnonymous)
        #expect(!CellCaller.unidentified("x").isAnonymous)
    }
}
