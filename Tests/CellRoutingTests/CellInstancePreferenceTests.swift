import CellRouting
import OrderModel
import Testing

@Suite("Which service instance of a cell is called first")
struct CellInstancePreferenceTests {
    let now = Timestamp(secondsSinceEpoch: 1_800_000_000)

    func later(_ milliseconds: Int64) -> Timestamp { now.adding(milliseconds: milliseconds) }

    @Test("creates go to the first instance; other calls take turns")
    func activeInstanceAndTurns() {
        var preference = CellInstancePreference(instanceCount: 3)
        var creates: [Int] = []
        for _ in 0..<5 { creates.append(preference.chooseForCreate(at: now)) }
        #expect(creates == [0, 0, 0, 0, 0])
        let turns = (0..<6).map { preference.choose(from: $0, at: now) }
        #expect(turns == [0, 1, 2, 0, 1, 2])
        let wrapped = preference.choose(from: Int.min, at: now)
        #expect(wrapped < 3, "a wrapped turn counter still names an instance")
        #expect(!preference.hasFailures)
    }

    @Test("a failed instance is passed over; when its time is up one call tries it, and an answer puts it back")
    func passOverAndTrial() {
        var preference = CellInstancePreference(instanceCount: 3, passOverMilliseconds: 5_000, trialMilliseconds: 1_000)
        let newly = preference.failed(0, at: now)
        let again = preference.failed(0, at: now)
        #expect(newly && !again, "newly passed over, then already")
        #expect(preference.hasFailures)
        let whilePassedOver = [preference.chooseForCreate(at: now), preference.chooseForCreate(at: later(4_999))]
        #expect(whilePassedOver == [1, 1])
        let turns = (0..<3).map { preference.choose(from: $0, at: now) }
        #expect(turns == [1, 1, 2], "turns skip it too")

        // When the time is up, the first call is the trial; the others keep passing
        // it over for the trial's time; a trial that never came back makes another.
        var creates: [Int] = []
        for at in [5_000, 5_001, 5_999, 6_000] as [Int64] { creates.append(preference.chooseForCreate(at: later(at))) }
        #expect(creates == [0, 1, 1, 0])
        let backInTurn = preference.answered(0, callStarted: later(6_000))
        #expect(backInTurn, "the trial answered")
        let afterwards = preference.chooseForCreate(at: later(6_001))
        #expect(afterwards == 0)
        #expect(!preference.hasFailures)
    }

    @Test("the active instance is the first that has not failed since it answered; none when all have")
    func activeForOperators() {
        var preference = CellInstancePreference(instanceCount: 3)
        #expect(preference.activeInstance == 0 && !preference.hasFailed(0))
        preference.failed(0, at: now)
        #expect(preference.activeInstance == 1 && preference.hasFailed(0))
        // Its pass-over time being up does not make it active again: only an answer does.
        _ = preference.chooseForCreate(at: later(5_000))
        #expect(preference.activeInstance == 1)
        preference.failed(1, at: later(5_001))
        preference.failed(2, at: later(5_001))
        #expect(preference.activeInstance == nil)
        preference.answered(0, callStarted: later(5_002))
        #expect(preference.activeInstance == 0 && !preference.hasFailed(0) && preference.hasFailed(1))
    }

    @Test("an answer to a call that started before the failure does not put the instance back")
    func staleAnswers() {
        var preference = CellInstancePreference(instanceCount: 2)
        preference.failed(0, at: later(100))
        let startedBefore = preference.answered(0, callStarted: later(50))
        let sameMillisecond = preference.answered(0, callStarted: later(100))
        #expect(!startedBefore && !sameMillisecond, "not known to have started after the failure")
        #expect(preference.isPassedOver(0, at: later(101)))
        let startedAfter = preference.answered(0, callStarted: later(101))
        #expect(startedAfter)
        #expect(!preference.isPassedOver(0, at: later(101)))
        let neverFailed = preference.answered(1, callStarted: later(101))
        #expect(!neverFailed, "an instance that never failed has nothing to undo")
    }

    @Test("with every instance passed over a call starts where it would have")
    func allPassedOver() {
        var preference = CellInstancePreference(instanceCount: 2)
        preference.failed(0, at: now)
        preference.failed(1, at: now)
        let starts = [preference.chooseForCreate(at: now), preference.choose(from: 1, at: now)]
        #expect(starts == [0, 1])
        var empty = CellInstancePreference(instanceCount: 0)
        let none = empty.chooseForCreate(at: now)
        #expect(none == 0)
    }
}
