import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

struct OrderCellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ordercell",
        abstract: "OrderCell: a cell-based, highly available order system.",
        subcommands: [DevCommand.self, ClusterCommand.self, ControlCommand.self, CellCommand.self, ProxyCommand.self, AdminCommand.self, BenchCommand.self, SignCommand.self]
    )
}

@main
enum OrderCellMain {
    static func main() {
        if ExecutorTakeover.wanted(by: Array(CommandLine.arguments.dropFirst())) {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        // The main thread keeps serving the main queue (the main actor) while the command runs.
        Task {
            await OrderCellCommand.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// Whether the process runs Swift concurrency on the NIO event loops.
///
/// The network-only processes (`ordercell cell`, `ordercell proxy`) do, unless
/// started with `--no-executor-takeover`: a request then stays on the event
/// loop that read it instead of hopping to the concurrency pool and back
/// (measured: +28 % creates through a local cluster, docs/performance-history.md).
/// The embedded system (`dev`, `bench`) does only when asked with
/// `--executor-takeover`: its SQLite commits run on GRDB's writer queue, so
/// they do not block the loops, but it measured no faster (four A/B pairs,
/// docs/performance-history.md). It must be decided before the first task starts,
/// so it is read from the raw arguments; as with the parsed flag, the last
/// of `--executor-takeover` / `--no-executor-takeover` wins.
enum ExecutorTakeover {
    static let onByDefault: Set<String> = ["cell", "proxy"]
    static let offByDefault: Set<String> = ["dev", "bench"]

    static func wanted(by arguments: [String]) -> Bool {
        guard let subcommand = arguments.first else { return false }
        let last = arguments.last { $0 == "--executor-takeover" || $0 == "--no-executor-takeover" }
        if onByDefault.contains(subcommand) { return last != "--no-executor-takeover" }
        if offByDefault.contains(subcommand) { return last == "--executor-takeover" }
        return false
    }
}

/// The flag `ordercell cell` and `ordercell proxy` accept (read by ``ExecutorTakeover`` before parsing).
struct ExecutorTakeoverOption: ParsableArguments {
    @Flag(
        inversion: .prefixedNo,
        help: "Run Swift concurrency on the NIO event loops (fewer thread hand-offs per request)."
    )
    var executorTakeover = true
}

/// The flag `ordercell dev` and `ordercell bench` accept: off unless asked for.
struct EmbeddedExecutorTakeoverOption: ParsableArguments {
    @Flag(
        inversion: .prefixedNo,
        help: "Run Swift concurrency on the NIO event loops (fewer thread hand-offs per request)."
    )
    var executorTakeover = false
}
