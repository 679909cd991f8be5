import Logging
import ServiceLifecycle

/// Periodically closes unpaid orders past their expiry in every cell it is given.
public struct ExpirySweeper: Service {
    /// The cells to sweep, asked before every pass (cells may be added while running).
    public let cells: @Sendable () -> [CellService]
    public let interval: Duration
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
            while !Task.isCancelled {
                await sweepOnce()
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
}
