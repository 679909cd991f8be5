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
        var closed = 0
        for cell in cells() {
            do {
                closed += try await cell.sweepExpiredOrders()
            } catch {
                logger.warning("expiry sweep failed", metadata: ["cell": "\(cell.cell)", "error": "\(error)"])
            }
        }
        return closed
    }

    /// Deletes probe orders older than a day in every cell; a failing cell is logged and skipped.
    @discardableResult
    public func purgeProbeOrdersOnce() async -> Int {
        var purged = 0
        for cell in cells() {
            do {
                purged += try await cell.purgeProbeOrders()
            } catch {
                logger.warning("probe order purge failed", metadata: ["cell": "\(cell.cell)", "error": "\(error)"])
            }
        }
        return purged
    }
}
