import CellService
import OrderCellPlatform
import OrderModel
import OrderProxy

/// The proxy's client of a cell service running in the same process.
///
/// It bounds its own calls: in process, a call can only outlast the
/// proxy's deadline under a drill latency fault (waits for the database are
/// bounded by SQLite's busy timeout, and a create's wait for its turn in a
/// group commit by the cell service's maximum wait), so only then does it
/// pay for a deadline around the call.
struct InProcessCellClient: CellClient {
    let service: CellService
    let timeout: Duration

    var enforcesOwnDeadline: Bool { true }

    private func bounded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard case .latency = service.currentFault else { return try await body() }
        return try await withDeadline(timeout, body)
    }

    func create(_ request: CreateOrderRequest) async throws -> CreateOrderResult {
        try await bounded { [service] in try await service.create(request) }
    }

    func apply(_ command: OrderCommand, to id: OrderID) async throws -> OrderCommandResult {
        try await bounded { [service] in try await service.apply(command, to: id) }
    }

    func order(_ id: OrderID, consistency: ReadConsistency) async throws -> Order {
        try await bounded { [service] in try await service.order(id, consistency: consistency) }
    }

    func refunds(of id: OrderID) async throws -> [Refund] {
        try await bounded { [service] in try await service.refunds(of: id) }
    }

    func events(of id: OrderID) async throws -> [OrderEvent] {
        try await bounded { [service] in try await service.events(of: id) }
    }
}
