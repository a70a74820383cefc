import Foundation
import KilnStore
import KilnTestSupport
import Testing

@Suite struct DigestTests {
    @Test func printsAndParses() throws {
        let d = Digest.of(Array("hello\n".utf8))
        #expect(d.description == "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        #expect(Digest(d.description) == d)
        #expect(Digest("SHA256:" + d.hex) == nil)
        #expect(Digest("sha256:" + d.hex.uppercased()) == d)
        #expect(Digest.of([UInt8]()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(d.bytes.count == 32)
        #expect(Digest(bytes: d.bytes) == d)
    }

    @Test(arguments: [
        "", "sha256:", "sha256:abc", "md5:5891b5b522d5df086d0ff0b110fbd9d2",
        "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be0g",
        "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03ff",
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(Digest(text) == nil)
        #expect(throws: StoreError.self) { try Digest(parsing: text) }
    }

    @Test func codableAsString() throws {
        struct Box: Codable, Equatable { var d: Digest }
        let box = Box(d: Digest.of(Array("x".utf8)))
        let json = try JSONEncoder().encode(box)
        #expect(String(decoding: json, as: UTF8.self) == #"{"d":"\#(box.d.description)"}"#)
        #expect(try JSONDecoder().decode(Box.self, from: json) == box)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"d":"sha256:00"}"#.utf8)) }
    }

    @Test func ordersByBytes() {
        let a = Digest(bytes: [UInt8](repeating: 0, count: 31) + [1])
        let b = Digest(bytes: [1] + [UInt8](repeating: 0, count: 31))
        #expect(a < b)
    }
}
