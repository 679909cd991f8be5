import OrderModel
import Testing

@Suite("Durations in milliseconds")
struct DurationTests {
    @Test("whole milliseconds round towards zero")
    func wholeMilliseconds() {
        #expect(Duration.seconds(5).wholeMilliseconds == 5_000)
        #expect(Duration.milliseconds(1_500).wholeMilliseconds == 1_500)
        #expect(Duration.microseconds(1_999).wholeMilliseconds == 1)
        #expect(Duration.nanoseconds(999_999).wholeMilliseconds == 0)
        #expect((Duration.seconds(2) / 2).wholeMilliseconds == 1_000)
    }
}
