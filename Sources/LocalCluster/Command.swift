import Foundation

/// Runs system commands (initdb, pg_ctl, pg_basebackup) for the local cluster.
public enum Command {
    /// A command that exited with a non-zero status.
    public struct Failure: Error, CustomStringConvertible {
        public var command: [String]
        public var status: Int32
        public var output: String
        public var description: String { "\(command.joined(separator: " ")) exited with \(status): \(output.suffix(2000))" }
    }

    /// PostgreSQL refuses to run as root; as root, its tools run as this user.
    public static let postgresUser = "postgres"

    public static var isRoot: Bool { geteuid() == 0 }

    /// Runs `arguments` (as the PostgreSQL user when root) and returns its output.
    @discardableResult
    public static func runPostgresTool(_ arguments: [String], environment: [String: String] = [:]) async throws -> String {
        var command = arguments
        if isRoot { command = ["runuser", "-u", postgresUser, "--"] + arguments }
        return try await run(command, environment: environment)
    }

    /// Runs a command to completion without blocking a concurrency thread.
    ///
    /// - Parameter timeLimit: when given, the command is killed once it has
    ///   run this long and the run fails: a tool that hangs (a commit that
    ///   waits for a standby that is gone) cannot hold its caller forever.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String] = [:], timeLimit: Duration? = nil) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // Foundation's Process learns of the child's exit through a descriptor
        // the child inherits; a server started by the command (pg_ctl start)
        // would inherit it too and the command would never seem to end. The
        // command runs behind a shell that closes every descriptor above 2.
        // `env --default-signal` gives the command the signal mask and
        // handlers of a fresh shell: Process starts it from whichever thread
        // asked, and the concurrency pool's threads block most signals — a
        // pgbench started from one never saw the SIGALRM that ends its run.
        process.arguments = [
            "--default-signal", "bash", "-c",
            #"for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null; fi; done; exec "$@""#,
            "bash",
        ] + arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        // Output goes to a file, not a pipe: `pg_ctl start` leaves a server
        // running that inherits the descriptor, and a pipe would never end.
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("ordercell-command-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: outputPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputPath) }
        let output = try FileHandle(forWritingTo: outputPath)
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let limit: Task<Void, Never>? = timeLimit.map { timeLimit in
            Task {
                guard (try? await Task.sleep(for: timeLimit)) != nil else { return }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
        }
        defer { limit?.cancel() }
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { process in continuation.resume(returning: process.terminationStatus) }
            do {
                try ProcessLaunch.run(process)
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        var text = (try? String(contentsOf: outputPath, encoding: .utf8)) ?? ""
        if process.terminationReason == .uncaughtSignal, status == SIGKILL, let timeLimit {
            text += "\n(killed: still running after its time limit of \(timeLimit))"
        }
        guard status == 0 else { throw Failure(command: arguments, status: status, output: text) }
        return text
    }

    /// Hands a directory to the PostgreSQL user when running as root.
    public static func preparePostgresDirectory(_ path: String) async throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        if isRoot {
            try await run(["chown", "-R", "\(postgresUser):\(postgresUser)", path])
            try await run(["chmod", "700", path])
        }
    }

    /// Finds a PostgreSQL server tool: on PATH, or in Debian's versioned directory.
    public static func postgresTool(_ name: String) -> String {
        let fileManager = FileManager.default
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if fileManager.isExecutableFile(atPath: candidate) { return candidate }
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fileManager.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        for version in versions {
            let candidate = "\(root)/\(version)/bin/\(name)"
            if fileManager.isExecutableFile(atPath: candidate) { return candidate }
        }
        return name
    }
}

/// Starts child processes one at a time within this process.
///
/// Foundation's `Process.run()` was seen to crash (SIGSEGV in a `memcpy`
/// inside it) while the test runner launched `initdb` with other children
/// starting on other threads; one launch at a time costs a few
/// milliseconds and takes that race away. A launch only: the children then
/// run side by side.
public enum ProcessLaunch {
    private static let lock = NSLock()

    public static func run(_ process: Process) throws {
        lock.lock()
        defer { lock.unlock() }
        try process.run()
    }
}
