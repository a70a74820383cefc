import Crypto

/// A SHA-256 digest, written `sha256:` followed by 64 lowercase hex digits (DESIGN.md, Identity).
///
/// It is `Codable` as that string, `Comparable` by its bytes, and cheap to hash and copy.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible, LosslessStringConvertible, Codable {
    /// The algorithm prefix, including the colon.
    public static let prefix = "sha256:"

    // The 32 bytes, big-endian in four words so comparison is byte order.
    @usableFromInline var w0, w1, w2, w3: UInt64

    /// The digest of these 32 bytes.
    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        precondition(bytes.count == 32, "a SHA-256 digest has 32 bytes")
        var w: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var i = 0
        for b in bytes {
            switch i >> 3 {
            case 0: w.0 = w.0 << 8 | UInt64(b)
            case 1: w.1 = w.1 << 8 | UInt64(b)
            case 2: w.2 = w.2 << 8 | UInt64(b)
            default: w.3 = w.3 << 8 | UInt64(b)
            }
            i += 1
        }
        (w0, w1, w2, w3) = w
    }

    init(_ sha: SHA256.Digest) {
        self = sha.withUnsafeBytes { Digest(bytes: $0) }
    }

    /// The 32 bytes of the digest.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
        }
        return out
    }

    /// The 64 lowercase hex digits, without the prefix.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `sha256:HEX`.
    public var description: String { Digest.prefix + hex }

    /// Parses `sha256:HEX` (64 hex digits, either case); nil for anything else.
    public init?(_ string: String) {
        guard string.hasPrefix(Digest.prefix) else { return nil }
        guard let d = Digest(hex: string.dropFirst(Digest.prefix.count)) else { return nil }
        self = d
    }

    /// Parses 64 hex digits without the prefix (a blob's file name).
    public init?<S: StringProtocol>(hex: S) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = Digest.nibble(utf8[i]), let lo = Digest.nibble(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: bytes)
    }

    /// Parses `sha256:HEX`, or throws an error that quotes the text and says what was expected.
    public init(parsing string: String, what: String = "digest") throws {
        guard let d = Digest(string) else {
            throw StoreError(
                .invalidArgument,
                "'\(string)' is not a valid \(what): expected 'sha256:' followed by 64 hex digits.")
        }
        self = d
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    public static func < (a: Digest, b: Digest) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let d = Digest(string) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(string)' is not a digest: expected 'sha256:' followed by 64 hex digits.")
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The digest of these bytes.
    public static func of<C: Collection>(_ data: C) -> Digest where C.Element == UInt8 {
        var h = Hasher256()
        h.update(Array(data))
        return h.finalize()
    }
}

/// Streaming SHA-256 (swift-crypto's, which uses the CPU's SHA extensions when it has them).
public struct Hasher256: @unchecked Sendable {
    private var sha = SHA256()
    public private(set) var count: Int64 = 0

    public init() {}

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        sha.update(bufferPointer: buffer)
        count += Int64(buffer.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finalize() -> Digest {
        Digest(sha.finalize())
    }
}
