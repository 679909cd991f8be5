/// Hands out a cell's order sequence numbers from segments reserved in the
/// cell's own database (the Leaf segment scheme).
///
/// One database round trip per segment instead of per order; the next
/// segment is fetched when the current one is 90 % used, so callers rarely
/// wait. Values of a segment lost in a crash are skipped, never reused,
/// because the reservation is committed before any value is handed out.
public actor SegmentSequence {
    public typealias Reserve = @Sendable (Int64) async throws -> ClosedRange<Int64>

    public let segmentSize: Int64
    private let reserve: Reserve
    private var current: ClosedRange<Int64>?
    private var nextValue: Int64 = 0
    private var buffered: ClosedRange<Int64>?
    private var refill: Task<ClosedRange<Int64>, any Error>?

    public init(segmentSize: Int64 = 1000, reserve: @escaping Reserve) {
        precondition(segmentSize > 0)
        self.segmentSize = segmentSize
        self.reserve = reserve
    }

    /// The next sequence number.
    public func next() async throws -> Int64 {
        while true {
            if let segment = current, nextValue <= segment.upperBound {
                let value = nextValue
                nextValue += 1
                if buffered == nil, refill == nil, segment.upperBound - value < max(1, segmentSize / 10) {
                    startRefill()
                }
                return value
            }
            if let segment = buffered {
                buffered = nil
                current = segment
                nextValue = segment.lowerBound
                continue
            }
            if refill == nil { startRefill() }
            try await awaitRefill()
        }
    }

    private func startRefill() {
        let reserve = self.reserve
        let size = segmentSize
        refill = Task { try await reserve(size) }
    }

    private func awaitRefill() async throws {
        guard let task = refill else { return }
        do {
            let segment = try await task.value
            if refill == task {
                refill = nil
                buffered = segment
            }
        } catch {
            if refill == task { refill = nil }
            throw error
        }
    }
}
