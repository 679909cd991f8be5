import ArgumentParser

@main
struct OrderCellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ordercell",
        abstract: "OrderCell: a cell-based, highly available order system.",
        subcommands: [DevCommand.self, ClusterCommand.self, ControlCommand.self, CellCommand.self, ProxyCommand.self, AdminCommand.self, BenchCommand.self]
    )
}
