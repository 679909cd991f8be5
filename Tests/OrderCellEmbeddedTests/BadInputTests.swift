import Testing

@Suite("Bad input gets problem responses")
struct BadInputTests {
    @Test func everyBadRequestIsATypedProblemNeverA500() async throws {
        try await TestSystem.run { system in
            try await OrderFlows.badInput(system.client, prefix: "embedded")
        }
    }
}
