// swift-tools-version:6.1
// Micro-benchmarks of OrderCell's hot paths, a package of their own so that
// building and testing OrderCell does not build the benchmark harness.
// Run: cd Benchmarks && swift package --disable-sandbox benchmark
import PackageDescription

let package = Package(
    name: "OrderCellBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "ordercell", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "OrderCellMicro",
            dependencies: [
                .product(name: "RequestJSON", package: "ordercell"),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "OrderModel", package: "ordercell"),
                .product(name: "CellRouting", package: "ordercell"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/OrderCellMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
