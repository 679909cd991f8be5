import CellProtocol
import NIOCore
import OrderModel
import SwiftProtobuf

/// A cell service's face on the cell protocol: each call's request message
/// in, the cell's operation, its reply message out.
///
/// Refusals (``OrderError``) are answers and travel in the reply's
/// `refusal`; a failure of the cell (storage down, drill fault) is thrown,
/// goes back as a failure frame, and the proxy answers it with order retry
/// or `cell_unavailable`.
public struct CellProtocolService: CellProtocolResponder {
    public let cell: CellService

    public init(cell: CellService) { self.cell = cell }

    /// A method number the protocol does not know.
    struct UnknownMethod: Error, CustomStringConvertible {
        let method: UInt8
        var description: String { "the cell protocol has no method \(method)" }
    }

    /// The cell failed to serve a call (its storage, a drill fault); the text goes back in the failure frame.
    struct CellFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// A caller whose certificate does not allow the method (``CellMethod/permits(_:)``).
    struct CallerRefused: Error, CustomStringConvertible {
        let description: String
    }

    public func answer(
        method: UInt8, payload: ByteBuffer, caller: CellCaller, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator
    ) async throws -> ByteBuffer {
        guard let method = CellMethod(rawValue: method) else { throw UnknownMethod(method: method) }
        guard method.permits(caller) else {
            cell.logRefusedCall(caller: "\(caller)", method: "\(method)")
            throw CallerRefused(description: "cell \(cell.cell): \(caller) may not call \(method)")
        }
        let answer = try await answer(method, payload: payload, caller: caller, deadline: deadline, allocator: allocator)
        // A late-answer drill holds back what the call did, but never the drill's own control.
        if method != .setFault, method != .getFault, let delay = cell.faultMet(at: .answer).answerDelay { try await Task.sleep(for: delay) }
        return answer
    }

    private func answer(
        _ method: CellMethod, payload: ByteBuffer, caller: CellCaller, deadline: ContinuousClock.Instant?, allocator: ByteBufferAllocator
    ) async throws -> ByteBuffer {
        switch method {
        case .createOrder:
            return try await createOrder(try .init(framePayload: payload), deadline: deadline).framePayload(allocator: allocator)
        case .applyCommand: return try await applyCommand(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .getOrder: return try await getOrder(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .listRefunds: return try await listRefunds(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .listEvents: return try await listEvents(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .setFault: return try setFault(try .init(framePayload: payload), caller: caller).framePayload(allocator: allocator)
        case .getFault: return try RPCFault(cell.currentFault).framePayload(allocator: allocator)
        case .bindKey: return try await bindKey(try .init(framePayload: payload), deadline: deadline).framePayload(allocator: allocator)
        case .moveKey: return try await moveKey(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .claimKey: return try await claimKey(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .getKeyEntry: return try await getKeyEntry(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .findOrder: return try await findOrder(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .listUnverified: return try await listUnverified(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .listMovedKeys: return try await listMovedKeys(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .setKeyStatus: return try await setKeyStatus(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .settleKey: return try await settleKey(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .claimKeys: return try await claimKeys(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .fenceSlots: return try await fenceSlots(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .exportKeys: return try await exportKeys(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .importKeys: return try await importKeys(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .dropKeys: return try await dropKeys(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .readFeed: return try await readFeed(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .notifierStatus: return try await notifierStatus(try .init(framePayload: payload)).framePayload(allocator: allocator)
        case .redeliverNotifications:
            return try await redeliver(try .init(framePayload: payload), caller: caller).framePayload(allocator: allocator)
        }
    }

    // MARK: - The methods

    /// A create still queued for a group commit when its caller's deadline
    /// passes is never stored: the proxy may have made it in another cell.
    func createOrder(
        _ request: Ordercell_Cell_V1_CreateOrderRequest, deadline: ContinuousClock.Instant?
    ) async throws -> Ordercell_Cell_V1_CreateOrderReply {
        var reply = Ordercell_Cell_V1_CreateOrderReply()
        do {
            let result: CreateOrderResult
            if request.bindAttempt != 0 {
                switch try await answering({ try await cell.createBound(try request.domain(), attempt: request.bindAttempt, deadline: deadline) }) {
                case .order(let order): result = order
                case .boundElsewhere(let binding):
                    reply.boundElsewhere = Ordercell_Cell_V1_KeyBindingReply(binding)
                    return reply
                }
            } else {
                result = try await answering {
                    try await cell.create(try request.domain(), keyStatus: try request.domainKeyStatus(), deadline: deadline)
                }
            }
            reply.order = RPCOrder(result.order)
            reply.created = result.created
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func applyCommand(_ request: Ordercell_Cell_V1_ApplyCommandRequest) async throws -> Ordercell_Cell_V1_ApplyCommandReply {
        var reply = Ordercell_Cell_V1_ApplyCommandReply()
        do {
            let result = try await answering {
                try await cell.apply(
                    try request.domain(), to: try parseOrderID(request.orderID), ownedBy: request.ownerMerchantID.isEmpty ? nil : request.ownerMerchantID
                )
            }
            reply.order = RPCOrder(result.order)
            if let refund = result.refund { reply.refund = RPCRefund(refund) }
            reply.changed = result.changed
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func getOrder(_ request: Ordercell_Cell_V1_GetOrderRequest) async throws -> Ordercell_Cell_V1_GetOrderReply {
        var reply = Ordercell_Cell_V1_GetOrderReply()
        do {
            reply.order = RPCOrder(
                try await answering {
                    try await cell.order(try parseOrderID(request.orderID), consistency: request.eventual ? .eventual : .strong)
                }
            )
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func listRefunds(_ request: Ordercell_Cell_V1_OrderRef) async throws -> Ordercell_Cell_V1_ListRefundsReply {
        var reply = Ordercell_Cell_V1_ListRefundsReply()
        do {
            reply.refunds = try await answering { try await cell.refunds(of: try parseOrderID(request.orderID), ownedBy: request.owner) }.map(RPCRefund.init)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func listEvents(_ request: Ordercell_Cell_V1_OrderRef) async throws -> Ordercell_Cell_V1_ListEventsReply {
        var reply = Ordercell_Cell_V1_ListEventsReply()
        do {
            reply.events = try await answering { try await cell.events(of: try parseOrderID(request.orderID), ownedBy: request.owner) }.map(RPCEvent.init)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    // MARK: - Merchant-key index

    /// A bind still queued for a group commit when its caller's deadline passes is never written.
    func bindKey(_ request: Ordercell_Cell_V1_BindKeyRequest, deadline: ContinuousClock.Instant?) async throws -> Ordercell_Cell_V1_KeyBindingReply {
        do {
            return Ordercell_Cell_V1_KeyBindingReply(
                try await answering {
                    try await cell.bindMerchantKey(
                        try request.key.domain(), candidate: try parseCellID(request.candidateCell, field: "candidate_cell"), attempt: request.attempt,
                        deadline: deadline
                    )
                }
            )
        } catch let refusal as OrderError {
            var reply = Ordercell_Cell_V1_KeyBindingReply()
            reply.refusal = RPCRefusal(refusal)
            return reply
        }
    }

    func moveKey(_ request: Ordercell_Cell_V1_MoveKeyRequest) async throws -> Ordercell_Cell_V1_KeyBindingReply {
        do {
            return Ordercell_Cell_V1_KeyBindingReply(
                try await answering {
                    try await cell.moveMerchantKey(
                        try request.key.domain(), from: try parseCellID(request.fromCell, field: "from_cell"),
                        to: try parseCellID(request.toCell, field: "to_cell"), attempt: request.attempt
                    )
                }
            )
        } catch let refusal as OrderError {
            var reply = Ordercell_Cell_V1_KeyBindingReply()
            reply.refusal = RPCRefusal(refusal)
            return reply
        }
    }

    func claimKey(_ request: Ordercell_Cell_V1_ClaimKeyRequest) async throws -> Ordercell_Cell_V1_ClaimKeyReply {
        do {
            return Ordercell_Cell_V1_ClaimKeyReply(
                try await answering { try await cell.claimMerchantKey(try request.key.domain(), for: try parseOrderID(request.orderID)) }
            )
        } catch let refusal as OrderError {
            var reply = Ordercell_Cell_V1_ClaimKeyReply()
            reply.refusal = RPCRefusal(refusal)
            return reply
        }
    }

    func getKeyEntry(_ request: Ordercell_Cell_V1_MerchantKeyRef) async throws -> Ordercell_Cell_V1_KeyEntryReply {
        var reply = Ordercell_Cell_V1_KeyEntryReply()
        do {
            if let entry = try await answering({ try await cell.merchantKeyEntry(try request.domain(), consistency: request.consistency) }) {
                reply.entry = Ordercell_Cell_V1_KeyEntry(entry)
            }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    /// No order for the key in this cell is `order_not_found`.
    func findOrder(_ request: Ordercell_Cell_V1_MerchantKeyRef) async throws -> Ordercell_Cell_V1_GetOrderReply {
        var reply = Ordercell_Cell_V1_GetOrderReply()
        do {
            let key = try request.domain()
            guard let order = try await answering({ try await cell.order(key, consistency: request.consistency) }) else {
                throw OrderError(.orderNotFound, "no order \(key) in cell \(cell.cell)")
            }
            reply.order = RPCOrder(order)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func listUnverified(_ request: Ordercell_Cell_V1_ReconcileListRequest) async throws -> Ordercell_Cell_V1_OrderListReply {
        var reply = Ordercell_Cell_V1_OrderListReply()
        do {
            let limit = Int(min(max(request.limit, 1), 1000))
            let after = request.afterOrderID.isEmpty
                ? nil
                : OrderListPosition(createdAt: Timestamp(millisecondsSinceEpoch: request.afterCreatedAtMs), id: try parseOrderID(request.afterOrderID))
            reply.orders = try await answering {
                try await cell.unverifiedOrders(createdBefore: Timestamp(millisecondsSinceEpoch: request.beforeMs), after: after, limit: limit)
            }.map(RPCOrder.init)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func listMovedKeys(_ request: Ordercell_Cell_V1_ReconcileListRequest) async throws -> Ordercell_Cell_V1_KeyEntryListReply {
        var reply = Ordercell_Cell_V1_KeyEntryListReply()
        let limit = Int(min(max(request.limit, 1), 1000))
        reply.entries = try await answering {
            try await cell.movedMerchantKeys(updatedBefore: Timestamp(millisecondsSinceEpoch: request.beforeMs), limit: limit)
        }.map(Ordercell_Cell_V1_KeyEntry.init)
        return reply
    }

    func setKeyStatus(_ request: Ordercell_Cell_V1_SetKeyStatusRequest) async throws -> Ordercell_Cell_V1_SetKeyStatusReply {
        var reply = Ordercell_Cell_V1_SetKeyStatusReply()
        do {
            guard let status = MerchantKeyStatus(rawValue: request.keyStatus) else {
                throw OrderError.invalidRequest("unknown key status \(request.keyStatus)")
            }
            guard request.orderIds.count <= 1000 else { throw OrderError.invalidRequest("at most 1000 orders at once") }
            let ids = try request.orderIds.map { text throws(OrderError) in try parseOrderID(text) }
            try await answering { try await cell.setKeyStatus(status, of: ids) }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func claimKeys(_ request: Ordercell_Cell_V1_ClaimKeysRequest) async throws -> Ordercell_Cell_V1_ClaimKeysReply {
        var reply = Ordercell_Cell_V1_ClaimKeysReply()
        do {
            guard request.claims.count <= 1000 else { throw OrderError.invalidRequest("at most 1000 claims at once") }
            let claims = try request.claims.map { claim throws(OrderError) in (key: try claim.key.domain(), order: try parseOrderID(claim.orderID)) }
            reply.claims = try await answering { try await cell.claimMerchantKeys(claims) }.map { answer in
                switch answer {
                case .success(let claim): return Ordercell_Cell_V1_ClaimKeyReply(claim)
                case .failure(let refusal):
                    var reply = Ordercell_Cell_V1_ClaimKeyReply()
                    reply.refusal = RPCRefusal(refusal)
                    return reply
                }
            }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func settleKey(_ request: Ordercell_Cell_V1_SettleKeyRequest) async throws -> Ordercell_Cell_V1_SettleKeyReply {
        var reply = Ordercell_Cell_V1_SettleKeyReply()
        do {
            let entry: MerchantKeyEntry
            do { entry = try request.entry.domain() } catch let error as OrderError { throw error } catch {
                throw OrderError.invalidRequest("\(error)")
            }
            reply.written = try await answering { try await cell.settleMerchantKey(entry, ifRevision: Int(request.ifRevision)) }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    // MARK: Moving index slots (the control plane's slot move)

    func fenceSlots(_ request: Ordercell_Cell_V1_FenceSlotsRequest) async throws -> Ordercell_Cell_V1_FenceSlotsReply {
        var reply = Ordercell_Cell_V1_FenceSlotsReply()
        do {
            let slots = request.slots.map(Int.init)
            try await answering { try await cell.setIndexSlots(slots, frozen: request.frozen) }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func exportKeys(_ request: Ordercell_Cell_V1_ExportKeysRequest) async throws -> Ordercell_Cell_V1_ExportKeysReply {
        var reply = Ordercell_Cell_V1_ExportKeysReply()
        do {
            let after = request.hasAfter ? try request.after.domain() : nil
            let limit = Int(min(max(request.limit, 1), 5000))
            let page = try await answering { try await cell.frozenMerchantKeys(inSlots: Set(request.slots.map(Int.init)), after: after, limit: limit) }
            reply.entries = page.entries.map(Ordercell_Cell_V1_KeyEntry.init)
            if let next = page.next { reply.next = Ordercell_Cell_V1_MerchantKeyRef(next) }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func importKeys(_ request: Ordercell_Cell_V1_ImportKeysRequest) async throws -> Ordercell_Cell_V1_ImportKeysReply {
        var reply = Ordercell_Cell_V1_ImportKeysReply()
        do {
            guard request.entries.count <= 5000 else { throw OrderError.invalidRequest("at most 5000 entries at once") }
            let entries: [MerchantKeyEntry]
            do { entries = try request.entries.map { try $0.domain() } } catch let error as OrderError { throw error } catch {
                throw OrderError.invalidRequest("\(error)")
            }
            try await answering { try await cell.importMerchantKeys(entries) }
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func dropKeys(_ request: Ordercell_Cell_V1_DropKeysRequest) async throws -> Ordercell_Cell_V1_DropKeysReply {
        var reply = Ordercell_Cell_V1_DropKeysReply()
        do {
            guard request.keys.count <= 5000 else { throw OrderError.invalidRequest("at most 5000 keys at once") }
            let keys = try request.keys.map { key throws(OrderError) in try key.domain() }
            reply.dropped = Int32(try await answering { try await cell.deleteFrozenMerchantKeys(keys) })
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func readFeed(_ request: Ordercell_Cell_V1_FeedRequest) async throws -> Ordercell_Cell_V1_FeedReply {
        var reply = Ordercell_Cell_V1_FeedReply()
        do {
            let position = EventFeedPosition(transaction: request.afterTransaction, event: request.afterEvent)
            reply.events = try await answering { try await cell.eventFeed(after: position, limit: Int(request.limit)) }.map(Ordercell_Cell_V1_FeedEvent.init)
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    func notifierStatus(_ request: Ordercell_Cell_V1_NotifierStatusRequest) async throws -> Ordercell_Cell_V1_NotifierStatusReply {
        do {
            let status: NotificationStatus?
            if request.status.isEmpty {
                status = nil
            } else {
                guard let named = NotificationStatus(rawValue: request.status) else {
                    throw OrderError.invalidRequest("status must be pending, delivered or dead, not '\(request.status.prefix(16))'")
                }
                status = named
            }
            let after = request.afterEventID.isEmpty ? nil : request.afterEventID
            return Ordercell_Cell_V1_NotifierStatusReply(
                try await answering { try await cell.notifierStatus(status, after: after, limit: Int(request.limit)) }
            )
        } catch let refusal as OrderError {
            var reply = Ordercell_Cell_V1_NotifierStatusReply()
            reply.refusal = RPCRefusal(refusal)
            return reply
        }
    }

    /// A redelivery is an operator's act, relayed by the control plane, which names the operator.
    func redeliver(_ request: Ordercell_Cell_V1_RedeliverRequest, caller: CellCaller) async throws -> Ordercell_Cell_V1_RedeliverReply {
        var reply = Ordercell_Cell_V1_RedeliverReply()
        let requester = CellCaller.isValidName(request.requestedBy) ? request.requestedBy : "unnamed"
        do {
            let ids = request.eventIds.isEmpty ? nil : request.eventIds
            reply.redelivered = Int32(
                clamping: try await answering { try await cell.redeliverNotifications(ids, by: "\(requester) through \(caller)") }
            )
        } catch let refusal as OrderError {
            reply.refusal = RPCRefusal(refusal)
        }
        return reply
    }

    /// An invalid fault is a failure of the call (the operator's tool reports it), not a refusal of an order.
    ///
    /// A drill fault is an operator's act: a proxy or the control plane
    /// relaying it must name the operator it authenticated, and the cell
    /// records who set what through whom.
    func setFault(_ request: RPCFault, caller: CellCaller) throws -> RPCFault {
        let operatorName: String
        switch caller {
        case .identified(.operator, let name): operatorName = name
        case .identified(.proxy, _), .identified(.control, _):
            guard CellCaller.isValidName(request.operator) else {
                throw CallerRefused(description: "cell \(cell.cell): a drill fault relayed by \(caller) must name its operator (1-64 of a-z A-Z 0-9 . _ @ -)")
            }
            operatorName = request.operator
        case .anonymous, .unidentified:
            operatorName = CellCaller.isValidName(request.operator) ? "\(request.operator) (unverified)" : "anonymous"
        }
        let fault: CellFault
        do {
            fault = try request.domain()
        } catch {
            throw CellFailure(description: error.detail)
        }
        cell.inject(fault, calls: request.calls > 0 ? Int(request.calls) : nil, by: operatorName, through: caller.description)
        return RPCFault(cell.currentFault)
    }

    /// Lets refusals through and names the cell in every failure.
    private func answering<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let refusal as OrderError {
            throw refusal
        } catch {
            throw CellFailure(description: "cell \(cell.cell): \(error)")
        }
    }
}

extension Ordercell_Cell_V1_OrderRef {
    /// The merchant whose order it must be; nil when the caller acts for none.
    var owner: String? { ownerMerchantID.isEmpty ? nil : ownerMerchantID }
}
