import CellProtocol

/// What each caller of the cell protocol may call, by the role its mutual
/// TLS certificate names (``CellCaller``).
///
/// - A proxy and the control plane serve the order API and run the cells
///   (health probes, merchant-key index work, index-slot moves): every method.
///   A drill fault they set is an operator's, relayed: it must name the
///   operator they authenticated (``CellProtocolService``).
/// - An operator calling a cell directly (`ordercell admin cell call`) reads
///   orders, refunds, events, index entries and the drill fault, and sets
///   drill faults; an operator never creates, pays, closes or refunds an
///   order, nor touches the merchant-key index.
/// - A certificate of the trusted CA that names no OrderCell identity may do
///   nothing.
/// - Without mutual TLS (loopback development) every caller is anonymous and
///   may call everything, as the cell service says loudly when it starts.
extension CellMethod {
    /// Whether `caller` may call this method.
    public func permits(_ caller: CellCaller) -> Bool {
        if caller.isAnonymous { return true }
        switch caller.role {
        case .proxy, .control: return true
        case .operator: return isOperatorMethod
        case nil: return false
        }
    }

    /// The methods an operator may call directly: reads and drill faults.
    var isOperatorMethod: Bool {
        switch self {
        case .getOrder, .listRefunds, .listEvents, .getKeyEntry, .findOrder, .getFault, .setFault: return true
        case .createOrder, .applyCommand, .bindKey, .moveKey, .claimKey, .listUnverified, .listMovedKeys, .setKeyStatus, .settleKey,
            .claimKeys, .fenceSlots, .exportKeys, .importKeys, .dropKeys:
            return false
        }
    }
}
