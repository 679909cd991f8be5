/// The merchant the health checker places its synthetic orders for.
///
/// Its orders are real orders in the cell (created, paid and refunded
/// through the real path) but belong to no customer: the public API refuses
/// this merchant id, and any business statistic or listing must leave it out.
public enum ProbeMerchant {
    public static let id = "ordercell-probe"

    public static func isProbe(_ merchantID: String) -> Bool { merchantID == id }
}
