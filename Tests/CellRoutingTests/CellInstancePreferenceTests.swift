import CellRouting
import OrderModel
import Testing

@Suite("Which service instance of a cell is called first")
struct CellInstancePreferenceTests {
    let now = Timestamp(secondsSinceEpoch: 1_800_000_000)

    @Test("creates go to the first instance; other calls take turns")
    func activeInstanceAndTurns() {
        let preference = CellInstancePreference(instanceCount: 3)
        for _ in 0..<5 { #expect(preference.firstForCreate(at: now) == 0) }
        #expect((0..<6).map { preference.first(from: $0, at: now) } == [0, 1, 2, 0, 1, 2])
        #expect(preference.first(from: Int.min, at: now) < 3, "a wrapped turn counter still names an instance")
        #expect(!preference.hasFailures)
    }

    @Test("a failed instance is passed over until its time lapses, and is first again at once when it answers")
    func passOver() {
        var preference = CellInstancePreference(instanceCount: 3, passOverMilliseconds: 5_000)
        preference.failed(0, at: now)
        #expect(preference.hasFailures)
        #expect(preference.firstForCreate(at: now) == 1)
        #expect(preference.firstForCreate(at: now.adding(milliseconds: 4_999)) == 1)
        #expect(preference.firstForCreate(at: now.adding(milliseconds: 5_000)) == 0, "tried first again once the time is up")
        #expect((0..<3).map { preference.first(from: $0, at: now) } == [1, 1, 2], "turns skip it too")

        preference.failed(1, at: now)
        #expect(preference.firstForCreate(at: now) == 2)
        preference.answered(0)
        #expect(preference.firstForCreate(at: now) == 0)
        preference.answered(1)
        #expect(!preference.hasFailures)
    }

    @Test("with every instance passed over a call starts where it would have")
    func allPassedOver() {
        var preference = CellInstancePreference(instanceCount: 2)
        preference.failed(0, at: now)
        preference.failed(1, at: now)
        #expect(preference.firstForCreate(at: now) == 0)
        #expect(preference.first(from: 1, at: now) == 1)
        #expect(CellInstancePreference(instanceCount: 0).firstForCreate(at: now) == 0)
    }
}
