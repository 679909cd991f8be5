import CellProtocol

/// What each caller of the cell protocol may call, by the role its mutual
/// TLS certificate names (``CellCaller``).
///
/// - The control plane runs the cells: health probes (synthetic orders),
///   the merchant-key index's reconciliation and index-slot moves, drill
///   faults an operator sets through it, the readers of the event feed, an
///   operator's redelivery of dead notifications: every method.
/// - A proxy serves the order API: orders, the merchant-key index's bind,
///   move, claim and reads, and drill faults it relays; never the index's
///   bulk work (freezing, exporting, importing, dropping slots; settling and
///   reconciling), which only the control plane does.
/// - An operator calling a cell directly (`ordercell admin cell call`) reads
///   orders, refunds, events, the event feed, the notifier's status, index entries and the drill fault, and sets
///   drill faults; an operator never creates, pays, closes or refunds an
///   order, nor touches the merchant-key index.
/// - A caller over TLS whose certificate names no identity may do nothing.
/// - Without TLS (loopback development) every caller is anonymous and may
///   call everything, as the cell service says loudly when it starts.
///
/// A drill fault a proxy or the control plane relays must name the operator
/// it authenticated (``CellProtocolService``).
extension CellMethod {
    /// Whether `caller` may call this method.
    public func permits(_ caller: CellCaller) -> Bool {
        switch caller {
        case .anonymous: return true
        case .unidentified: return false
        case .identified(.control, _): return true
        case .identified(.proxy, _): return isProxyMethod
        case .identified(.operator, _): return isOperatorMethod
        }
    }

    /// The methods a proxy calls: the order API's and the index's per-key steps.
    var isProxyMethod: Bool {
        switch self {
        case .createOrder, .applyCommand, .getOrder, .listRefunds, .listEvents, .bindKey, .moveKey, .claimKey, .getKeyEntry, .findOrder,
            .getFault, .setFault:
            return true
        case .listUnverified, .listMovedKeys, .setKeyStatus, .settleKey, .claimKeys, .fenceSlots, .exportKeys, .importKeys, .dropKeys, .readFeed,
            .notifierStatus, .redeliverNotifications:
            return false
        }
    }

    /// The methods an operator may call directly: reads (the event feed among them) and drill faults.
    var isOperatorMethod: Bool {
        switch self {
        case .getOrder, .listRefunds, .listEvents, .getKeyEntry, .findOrder, .getFault, .setFault, .readFeed, .notifierStatus: return true
        case .createOrder, .applyCommand, .bindKey, .moveKey, .claimKey, .listUnverified, .listMovedKeys, .setKeyStatus, .settleKey,
            .claimKeys, .fenceSlots, .exportKeys, .importKeys, .dropKeys, .redeliverNotifications:
            return false
        }
    }
}
