import Foundation
import Testing

/// docs/architecture.md's module table against Package.swift: a module
/// added, removed or given another dependency without the table following
/// fails here.
@Suite("Architecture document")
struct ArchitectureDocumentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every source target (not the tests) of Package.swift and the project modules it depends on.
    static func packageModules() throws -> [String: Set<String>] {
        let manifest = try read("Package.swift")
        let target = try Regex(#"\.(?:target|executableTarget)\(\s*name:\s*"(\w+)"(.*?)swiftSettings"#).dotMatchesNewlines()
        var modules: [String: Set<String>] = [:]
        for match in manifest.matches(of: target) {
            guard let name = match.output[1].substring.map(String.init), let body = match.output[2].substring else { continue }
            if body.contains("path: \"Tests/") { continue }
            // Quoted names that are not a package product's (`.product(name: "X", package: "y")`).
            let withoutProducts = body.replacing(try Regex(#"\.product\([^)]*\)"#), with: "")
            let names = withoutProducts.matches(of: try Regex(#""(\w+)""#)).compactMap { $0.output[1].substring.map(String.init) }
            modules[name] = Set(names)
        }
        return modules
    }

    /// The module table's rows: the module, and the names in backticks of its "depends on" column.
    static func documentedModules() throws -> [String: Set<String>] {
        let document = try read("docs/architecture.md")
        let section = try #require(document.components(separatedBy: "## Modules").dropFirst().first?.components(separatedBy: "\n## ").first)
        var modules: [String: Set<String>] = [:]
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let module = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            // Project modules come before the "·" that starts the libraries; a parenthesis only explains.
            let projectPart = cells[3].components(separatedBy: "·")[0].replacing(try Regex(#"\([^)]*\)"#), with: "")
            let names = projectPart.matches(of: try Regex(#"`(\w+)`"#)).compactMap { $0.output[1].substring.map(String.init) }
            modules[module] = Set(names)
        }
        return modules
    }

    @Test func theModuleTableListsEveryModuleWithItsDependencies() throws {
        let package = try Self.packageModules()
        let documented = try Self.documentedModules()
        #expect(package.count > 10, "Package.swift was read: \(package.keys.sorted())")
        #expect(Set(documented.keys) == Set(package.keys), "in Package.swift only: \(Set(package.keys).subtracting(documented.keys).sorted()); in the table only: \(Set(documented.keys).subtracting(package.keys).sorted())")
        for (module, dependencies) in package {
            guard let listed = documented[module] else { continue }
            #expect(listed == dependencies, "\(module): Package.swift says \(dependencies.sorted()), the table \(listed.sorted())")
        }
    }
}
