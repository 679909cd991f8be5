import CellRouting
import OrderModel

/// A slot move's cell calls, over the cells' clients: the freeze and thaw,
/// the copy page by page (export from the old cell, import into the new
/// one), and the drop of what the move left behind.
public struct CellIndexSlotCopier: IndexSlotCopying {
    private let clients: any CellClientProvider
    /// Keys scanned per page.
    private let pageSize: Int

    public init(clients: any CellClientProvider, pageSize: Int = 1000) {
        self.clients = clients
        self.pageSize = pageSize
    }

    public func setIndexSlots(_ slots: [Int], frozen: Bool, in cell: CellRoute) async throws {
        try await client(cell).setIndexSlots(slots, frozen: frozen)
    }

    public func copyIndexSlots(_ slots: [Int], from source: CellRoute, to target: CellRoute) async throws -> Int {
        let (from, to) = (try client(source), try client(target))
        var copied = 0
        try await scan(slots, of: from) { entries in
            try await to.importMerchantKeys(entries)
            copied += entries.count
        }
        return copied
    }

    public func dropIndexSlots(_ slots: [Int], in cell: CellRoute) async throws -> Int {
        let client = try client(cell)
        var dropped = 0
        try await scan(slots, of: client) { entries in dropped += try await client.deleteFrozenMerchantKeys(entries.map(\.key)) }
        return dropped
    }

    /// Every page of the slots' entries, in key order.
    private func scan(_ slots: [Int], of client: any CellClient, _ body: ([MerchantKeyEntry]) async throws -> Void) async throws {
        var after: MerchantKey?
        repeat {
            let page = try await client.frozenMerchantKeys(inSlots: slots, after: after, limit: pageSize)
            if !page.entries.isEmpty { try await body(page.entries) }
            after = page.next
        } while after != nil
    }

    private func client(_ route: CellRoute) throws -> any CellClient {
        guard let client = clients.client(for: route) else { throw OrderError(.cellUnavailable, "no client for cell \(route.id)", retryAfterSeconds: 5) }
        return client
    }
}
