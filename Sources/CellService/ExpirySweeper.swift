import Logging
import ServiceLifecycle

/// Periodically closes unpaid orders past their expiry in every cell it is
/// given, and now and then deletes the health checker's synthetic orders
/// older than a day (one probe a second is 86 400 orders a day per cell).
public struct ExpirySweeper: Service {
    /// The cells to sweep, asked before every pass (cells may be added while running).
    public let cells: @Sendable () -> [CellService]
    public let interval: Duration
    /// Every this many passes, probe orders older than a day are deleted.
    public var passesBetweenProbePurges = 60
    private let logger: Logger

    public init(cells: [CellService], interval: Duration = .seconds(1), logger: Logger = Logger(label: "ordercell.expiry")) {
        self.init(cells: { cells }, interval: interval, logger: logger)
    }

    public init(cells: @escaping @Sendable () -> [CellService], interval: Duration = .seconds(1), logger: Logger = Logger(label: "ordercell.expiry")) {
        self.cells = cells
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        // Sleeping is cancelled on graceful shutdown; a sweep under way finishes first.
        try? await cancelWhenGracefulShutdown {
            var passes = 0
            while !Task.isCancelled {
                await sweepOnce()
                if passes % passesBetweenProbePurges == 0 { await purgeProbeOrdersOnce() }
                passes += 1
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One pass over every cell; a failing cell is logged and skipped.
    @discardableResult
    public func sweepOnce() async -> Int {
        await everyCell("expiry sweep failed") { try await $0.sweepExpiredOrders() }
    }

    /// Deletes probe orders older than a day in every cell; a failing cell is logged and skipped.
    @discardableResult
    public func purgeProbeOrdersOnce() async -> Int {
        await everyCell("probe order purge failed") { try await $0.purgeProbeOrders() }
    }

    /// Runs `work` on every cell and adds up what it counted; a failing cell is logged and skipped.
    private func everyCell(_ failure: Logger.Message, _ work: (CellService) async throws -> Int) async -> Int {
        var total = 0
        for cell in cells() {
            do {
                total += try await work(cell)
            } catch {
                logger.warning(failure, metadata: ["cell": "\(cell.cell)", "error": "\(error)"])
            }
        }
        return total
    }
}
