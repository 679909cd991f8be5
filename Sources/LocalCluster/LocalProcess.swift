import Foundation

/// Background processes of the local cluster (etcd, Patroni): started
/// detached with their output in a log file, found again by their command
/// line, stopped by signal.
public enum LocalProcess {
    /// Starts `arguments` detached from the caller (`nohup … &`, output
    /// appended to `log`, input from /dev/null) — as the PostgreSQL user when
    /// `asPostgresUser` and root — and returns its pid. The process outlives
    /// the `ordercell` that started it.
    public static func startDetached(_ arguments: [String], log: String, asPostgresUser: Bool = false) async throws -> Int32 {
        let script = "nohup \(arguments.map(shellQuoted).joined(separator: " ")) >> \(shellQuoted(log)) 2>&1 < /dev/null & echo $!"
        let output =
            asPostgresUser
            ? try await Command.runPostgresTool(["bash", "-c", script])
            : try await Command.run(["bash", "-c", script])
        guard let line = output.split(separator: "\n").last, let pid = Int32(line.trimmingCharacters(in: .whitespaces)) else {
            throw LocalClusterError("could not start \(arguments.joined(separator: " ")): \(output)")
        }
        return pid
    }

    /// The command line of process `pid`, nil when there is none (or it is a zombie).
    public static func commandLine(_ pid: Int32) -> [String]? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        // Field 3, after the parenthesised name: the state; Z is a zombie, X dead.
        if let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
            if state == "Z" || state == "X" { return nil }
        }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")), !data.isEmpty else { return nil }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether process `pid` runs and its command line has every one of `fragments`
    /// (each a whole argument or part of one).
    public static func isRunning(_ pid: Int32?, matching fragments: [String]) -> Bool {
        guard let pid, let arguments = commandLine(pid) else { return false }
        return fragments.allSatisfy { fragment in arguments.contains { $0.contains(fragment) } }
    }

    /// The processes whose command line has every one of `fragments`.
    public static func find(matching fragments: [String]) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let own = getpid()
        return entries.compactMap(Int32.init).filter { $0 != own && isRunning($0, matching: fragments) }.sorted()
    }

    /// Sends SIGTERM to every process of `pids`, waits up to `timeout` for all of them to
    /// end, then SIGKILLs the ones left. Returns the ones that had to be killed.
    @discardableResult
    public static func terminate(_ pids: [Int32], matching fragments: [String] = [], timeout: Duration) async -> [Int32] {
        let alive = pids.filter { isRunning($0, matching: fragments) }
        for pid in alive { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline, alive.contains(where: { isRunning($0, matching: fragments) }) {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let left = alive.filter { isRunning($0, matching: fragments) }
        for pid in left { kill(pid, SIGKILL) }
        return left
    }

    /// The last `count` characters of a log file, for error messages.
    public static func tail(of log: String, count: Int = 1500) -> String {
        String(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(count))
    }

    /// `text` as one word for bash.
    public static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}

/// A local cluster's process or server that could not be set up, with a message for the operator.
public struct LocalClusterError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
