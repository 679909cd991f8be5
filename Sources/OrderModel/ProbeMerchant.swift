/// The merchant the health checker places its synthetic orders for.
///
/// Its orders are real orders in the cell (created, paid, closed through
/// the real path) but belong to no customer: the public API refuses this
/// merchant id, and business statistics and listings leave it out.
public enum ProbeMerchant {
    public static let id = "ordercell-probe"

    public static func isProbe(_ merchantID: String) -> Bool { merchantID == id }
}
