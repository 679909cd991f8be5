import GRPCCore
import Testing

@testable import CellService

@Suite("gRPC timeout header")
struct GRPCTimeoutTests {
    @Test("every unit of grpc-timeout is read; anything else is no timeout")
    func parsing() {
        #expect(GRPCTimeout.parse("500m") == .milliseconds(500))
        #expect(GRPCTimeout.parse("2S") == .seconds(2))
        #expect(GRPCTimeout.parse("3M") == .seconds(180))
        #expect(GRPCTimeout.parse("1H") == .seconds(3600))
        #expect(GRPCTimeout.parse("250u") == .microseconds(250))
        #expect(GRPCTimeout.parse("99999999n") == .nanoseconds(99_999_999))
        for invalid in ["", "m", "500", "500x", "-5m", "1.5S", "123456789m", " 5m", "5 m"] {
            #expect(GRPCTimeout.parse(invalid) == nil, "\(invalid)")
        }
    }

    @Test("the deadline counts from when the handler starts; a call without a valid timeout has none")
    func deadline() {
        let now = ContinuousClock.now
        #expect(GRPCTimeout.deadline(in: ["grpc-timeout": "300m"], from: now) == now.advanced(by: .milliseconds(300)))
        #expect(GRPCTimeout.deadline(in: ["grpc-timeout": "soon"], from: now) == nil)
        #expect(GRPCTimeout.deadline(in: [:], from: now) == nil)
    }
}
