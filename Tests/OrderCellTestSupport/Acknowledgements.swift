import Synchronization

/// What clients were told, shared between their tasks: the orders whose
/// creation was acknowledged, and which of them had a payment acknowledged.
public final class AcknowledgementLog: Sendable {
    /// One acknowledged order: its id, its cell, and whether its payment was acknowledged.
    public struct Entry: Sendable {
        public var id: String
        public var cell: Int
        public var paid: Bool
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    public var all: [Entry] { entries.withLock { Array($0.values) } }
    public var count: Int { entries.withLock { $0.count } }

    public func created(_ id: String, cell: Int) { entries.withLock { $0[id] = Entry(id: id, cell: cell, paid: $0[id]?.paid ?? false) } }
    public func paid(_ id: String) { entries.withLock { $0[id]?.paid = true } }
}

extension APIClient {
    /// Checks every acknowledged order: it exists, and is paid if its payment was acknowledged.
    public func missing(_ acknowledged: [AcknowledgementLog.Entry]) async throws -> [String] {
        let results = try await concurrently(acknowledged.count, width: 8) { index -> String? in
            let entry = acknowledged[index]
            let read = try await send(.GET, "/v1/orders/\(entry.id)")
            guard read.status == 200 else { return "\(entry.id): \(read.status) \(read.code ?? "")" }
            // Paid, and perhaps refunded since: a refund never undoes the payment it refunds.
            if entry.paid, !["PAID", "PARTIALLY_REFUNDED", "REFUNDED"].contains(read["status"] ?? "") {
                return "\(entry.id): payment lost (\(read["status"] ?? "?"))"
            }
            return nil
        }
        return results.compactMap { $0 }
    }
}
