import Foundation
import LocalCluster
import OrderCellTestSupport
import Synchronization
import Testing

/// What clients under load were told (order ids, and whether paid).
final class RestartLog: Sendable {
    private let entries = Mutex<[RestartTests.Acknowledged]>([])
    var all: [RestartTests.Acknowledged] { entries.withLock { $0 } }
    var count: Int { entries.withLock { $0.count } }
    func created(_ id: String) { entries.withLock { $0.append(.init(id: id, paid: false)) } }
    func paid(_ id: String) {
        entries.withLock { list in
            if let index = list.lastIndex(where: { $0.id == id }) { list[index].paid = true }
        }
    }
}

/// `ordercell dev` as a real child process.
final class DevProcess {
    let process = Process()
    let dataDirectory: URL
    let output: URL
    private(set) var client: APIClient!

    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["ORDERCELL_BINARY"] { return URL(fileURLWithPath: path) }
        // The test runner lives in the build directory, next to the `ordercell` product.
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ordercell")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/ordercell")
    }

    init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
        self.output = dataDirectory.appendingPathComponent("stdout-\(UUID().uuidString).log")
    }

    /// A test that fails half-way leaves no server running behind it.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Starts the process and waits until it prints where it listens.
    func start() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the ordercell product first (scripts/test does): \(Self.binary.path)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = Self.binary
        process.arguments = ["dev", "--port", "0", "--data-dir", dataDirectory.path, "--log-level", "notice", "--admin-token", "t"]
        // Both streams go to the file: a child holding the test runner's own
        // stderr would keep `swift test` waiting for it after a crash.
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try ProcessLaunch.run(process)
        for _ in 0..<600 {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            if let range = text.range(of: #"running embedded on http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                let url = text[range].split(separator: " ").last.map(String.init) ?? ""
                client = APIClient(base: url)
                return
            }
            try #require(process.isRunning, "ordercell dev exited early: \(text)")
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("ordercell dev did not start within 30 s")
    }

    /// Sends `signal` and waits for the process to exit; returns its status.
    @discardableResult
    func stop(signal: Int32) async throws -> Int32 {
        kill(process.processIdentifier, signal)
        // Generous: the suites beside this one run PostgreSQL clusters on the same two cores.
        for _ in 0..<1200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            let log = (try? String(contentsOf: output, encoding: .utf8)).map { String($0.suffix(3000)) } ?? ""
            Issue.record("ordercell dev did not exit within 60 s of signal \(signal); its output ends with:\n\(log)")
        }
        try #require(!process.isRunning, "ordercell dev did not exit after signal \(signal)")
        return process.terminationStatus
    }
}

@Suite("Restart keeps every acknowledged order")
struct RestartTests {
    /// What a client was told: the order exists, and whether its payment was acknowledged.
    struct Acknowledged: Sendable {
        var id: String
        var paid: Bool
    }

    static func verify(_ acknowledged: [Acknowledged], with client: APIClient) async throws {
        let results = try await concurrently(acknowledged.count, width: 8) { index in
            try await client.send(.GET, "/v1/orders/\(acknowledged[index].id)")
        }
        for (ack, result) in zip(acknowledged, results) {
            #expect(result.status == 200, "acknowledged order \(ack.id) is lost")
            if ack.paid { #expect(result["status"] == "PAID", "acknowledged payment of \(ack.id) is lost") }
        }
    }

    @Test func gracefulStopAndKillLoseNothingAcknowledged() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        // 1. Orders and payments, then a graceful stop (SIGTERM) and a restart.
        let first = DevProcess(dataDirectory: directory)
        try await first.start()
        let api = first.client!
        let acknowledged = try await concurrently(200, width: 8) { index -> Acknowledged in
            let created = try await api.create("m\(index % 7)", "restart-\(index)")
            let id = try #require(created["order_id"])
            guard index.isMultiple(of: 2) else { return Acknowledged(id: id, paid: false) }
            return Acknowledged(id: id, paid: try await api.pay(id, "pay-\(index)").status == 200)
        }
        #expect(try await first.stop(signal: SIGTERM) == 0, "a graceful stop exits cleanly")
        let second = DevProcess(dataDirectory: directory)
        try await second.start()
        try await Self.verify(acknowledged, with: second.client)

        // 2. Kill -9 in the middle of a load of creates and payments.
        let load = second.client!
        let tally = RestartLog()
        let killing = StopFlag()
        let loadTask = Task {
            try? await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        // A failure before the kill (a busy machine) is retried with
                        // the next round; after it, the worker stops.
                        for round in 0..<100_000 {
                            guard let created = try? await load.create("k\(worker)", "kill-\(worker)-\(round)"), created.status == 201,
                                let id = created["order_id"]
                            else {
                                if killing.isSet { return }
                                try? await Task.sleep(for: .milliseconds(10))
                                continue
                            }
                            tally.created(id)
                            guard let paid = try? await load.pay(id, "kp-\(worker)-\(round)"), paid.status == 200 else {
                                if killing.isSet { return }
                                continue
                            }
                            tally.paid(id)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let giveUp = ContinuousClock.now.advanced(by: .seconds(120))
        while tally.count < 1000, ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(20)) }
        killing.set()
        try await second.stop(signal: SIGKILL)
        await loadTask.value
        let beforeKill = tally.all
        #expect(beforeKill.count >= 1000)

        let third = DevProcess(dataDirectory: directory)
        try await third.start()
        try await Self.verify(acknowledged + beforeKill, with: third.client)
        try await third.stop(signal: SIGTERM)
        print("restart: \(acknowledged.count) orders survived SIGTERM, \(beforeKill.count) acknowledged under load survived SIGKILL")
    }
}
