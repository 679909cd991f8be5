// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Tests reach across layers on purpose; they need not list every module they touch.
let testSwiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "ordercell",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ordercell", targets: ["ordercell"]),
        .library(name: "OrderModel", targets: ["OrderModel"]),
        .library(name: "CellRouting", targets: ["CellRouting"]),
        .library(name: "RequestJSON", targets: ["RequestJSON"]),
        .library(name: "CellStorage", targets: ["CellStorage"]),
        .library(name: "CellService", targets: ["CellService"]),
        .library(name: "OrderProxy", targets: ["OrderProxy"]),
        .library(name: "OrderCellEmbedded", targets: ["OrderCellEmbedded"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // Already built for swift-nio-extras and swift-nio-ssl: the cell protocol reads callers'
        // identities from their certificates, and the local cluster makes its throwaway CA with it.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Pure domain: order id, money, order state machine, typed errors. No I/O.
        .target(name: "OrderModel", swiftSettings: swiftSettings),
        // Pure routing: routing table, partitions, cell selection, order retry, outlier detection.
        .target(name: "CellRouting", dependencies: ["OrderModel"], swiftSettings: swiftSettings),
        // What the servers share above the pure layers: deadlines that hold even when the work
        // ignores cancellation, the wall clock, durable SQLite, PostgreSQL TLS choice and probe.
        .target(
            name: "OrderCellPlatform",
            dependencies: [
                "OrderModel", "CellRouting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The one proxy ↔ cell protocol: its frames, connections, client and server, and the protobuf messages it carries.
        .target(
            name: "CellProtocol",
            dependencies: [
                "OrderModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            exclude: ["cell.proto"],
            swiftSettings: swiftSettings
        ),
        // Storage of one cell: the OrderStore protocol, SQLite and PostgreSQL stores, segment sequence.
        .target(
            name: "CellStorage",
            dependencies: [
                "OrderModel", "CellRouting", "OrderCellPlatform", "MerchantNotifications",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // One cell's business operations over its store, expiry sweep, drill faults.
        .target(
            name: "CellService",
            dependencies: [
                "OrderModel", "CellStorage", "CellProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Reading the order calls' JSON bodies by hand, with the API's precise messages. No I/O.
        .target(
            name: "RequestJSON",
            dependencies: ["OrderModel", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // HTTP pieces every server shares: problem+json errors, JSON bodies, operator tokens and roles,
        // signed requests of the public API.
        .target(
            name: "OrderHTTP",
            dependencies: [
                "OrderModel",
                "RequestJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Public HTTP API, create-with-retry, id routing, admin endpoints.
        .target(
            name: "OrderProxy",
            dependencies: [
                "OrderModel", "CellRouting", "OrderCellPlatform", "CellProtocol", "OrderHTTP", "RequestJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The whole system in one process: cells on SQLite files behind an in-process proxy.
        .target(
            name: "OrderCellEmbedded",
            dependencies: [
                "OrderModel", "OrderCellPlatform", "CellRouting", "CellStorage", "CellService", "OrderProxy", "OrderHTTP", "ControlPlane",
                "HealthChecking", "CellNotifier",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The control plane: routing releases in the control database, served by long poll; failover.
        .target(
            name: "ControlPlane",
            dependencies: [
                "OrderModel", "CellRouting", "OrderCellPlatform", "OrderHTTP", "MerchantNotifications",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The health checker: synthetic orders through the real cell path, verdicts published as releases.
        .target(
            name: "HealthChecking",
            dependencies: [
                "OrderModel", "CellRouting", "OrderCellPlatform", "ControlPlane", "OrderProxy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Merchant notifications' pure core: retry schedule, delivery state machine, signature, URL policy. No I/O.
        .target(
            name: "MerchantNotifications",
            dependencies: ["OrderModel", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // One cell's notifier: the feed into the cell's outbox of notifications, signed POSTs on the retry schedule.
        .target(
            name: "CellNotifier",
            dependencies: [
                "OrderModel", "CellStorage", "MerchantNotifications", "OrderHTTP", "OrderCellPlatform",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Local PostgreSQL servers (initdb, pg_basebackup, pg_ctl) for `ordercell cluster` and the tests.
        .target(
            name: "LocalCluster",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The cluster processes (cell service, proxy, control plane) and `ordercell cluster`.
        .target(
            name: "OrderCellCluster",
            dependencies: [
                "OrderModel", "OrderCellPlatform", "CellRouting", "CellStorage", "CellService", "CellProtocol", "OrderProxy", "ControlPlane",
                "LocalCluster", "OrderHTTP", "HealthChecking", "CellNotifier",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The load generator behind `ordercell bench`.
        .target(
            name: "OrderCellBench",
            dependencies: [
                "OrderModel", "CellRouting", "CellStorage", "CellService", "LocalCluster", "OrderHTTP",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ordercell",
            dependencies: [
                "CellProtocol",
                "OrderCellEmbedded", "OrderCellCluster", "OrderCellPlatform", "OrderModel", "CellStorage", "CellService", "LocalCluster", "OrderCellBench",
                "OrderHTTP", "ControlPlane", "CellRouting", "OrderProxy", "CellNotifier", "MerchantNotifications",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "OrderCellPlatformTests", dependencies: ["OrderCellPlatform"], swiftSettings: testSwiftSettings),
        .testTarget(name: "OrderModelTests", dependencies: ["OrderModel"], swiftSettings: testSwiftSettings),
        .testTarget(name: "CellRoutingTests", dependencies: ["CellRouting", "OrderModel"], swiftSettings: testSwiftSettings),
        .testTarget(
            name: "CellProtocolTests",
            dependencies: [
                "CellProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "CellStorageTests",
            dependencies: [
                "CellStorage", "CellRouting", "OrderModel", "OrderCellPlatform", "LocalCluster", "MerchantNotifications",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(name: "CellServiceTests", dependencies: ["CellService", "CellStorage", "OrderModel"], swiftSettings: testSwiftSettings),
        // What the end-to-end tests share: an HTTP client of the API and the order flows every deployment must pass.
        .target(
            name: "OrderCellTestSupport",
            dependencies: [
                "OrderModel",
                "OrderHTTP",
                "MerchantNotifications",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/OrderCellTestSupport",
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: [
                "OrderCellCluster", "LocalCluster", "OrderCellTestSupport", "OrderModel", "ControlPlane", "CellProtocol", "OrderProxy", "CellRouting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "MerchantNotificationsTests",
            dependencies: ["MerchantNotifications", "OrderModel"],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "OrderHTTPTests",
            dependencies: [
                "OrderHTTP", "OrderCellTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "OrderProxyTests",
            dependencies: [
                "OrderProxy", "OrderHTTP", "RequestJSON", "CellRouting", "OrderModel", "OrderCellPlatform", "CellService", "CellStorage",
                "CellProtocol", "OrderCellTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: testSwiftSettings
        ),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "CellRouting", "OrderHTTP", "OrderModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: testSwiftSettings
        ),
        // End to end, embedded: the whole system in one process over real HTTP, the real binary
        // killed under load, the bench tool, and the documents checked against the code.
        .testTarget(
            name: "OrderCellEmbeddedTests",
            dependencies: [
                "OrderCellEmbedded", "OrderProxy", "CellRouting", "OrderModel", "CellService", "OrderCellTestSupport", "OrderCellBench",
                "HealthChecking", "ControlPlane", "CellNotifier", "CellStorage", "MerchantNotifications",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: testSwiftSettings
        ),
    ]
)
