import Foundation
import Testing
@testable import KilnRecipe

@Suite struct GateTests {
    static let metrics = JSONValue.object([
        "accuracy": .number(0.93), "loss": .number(0.15), "ok": .bool(true), "name": .string("svc"),
        "eval": .object(["f1": .number(0.8), "scores": .array([.number(0.5), .number(0.7)])]),
        "top.k": .number(3),
    ])

    @Test(arguments: [
        ("accuracy >= 0.9", true), ("accuracy > 0.95", false), ("loss < 0.2 and accuracy >= 0.9", true),
        ("loss<0.2 and accuracy>=0.99", false), ("eval.f1 == 0.8", true), ("eval.scores.1 != 0.7", false),
        ("0.5 <= eval.scores.0", true), ("top.k == 3", true), ("ok == 1", true), ("accuracy >= -1e3", true),
        ("missing > 1", false), ("name > 1", false), ("eval.scores.9 > 0", false),
    ])
    func evaluates(text: String, passes: Bool) throws {
        let gate = try GateExpression(parsing: text)
        #expect(gate.passes(Self.metrics) == passes)
    }

    @Test func checksExplainFailures() throws {
        let gate = try GateExpression(parsing: "accuracy >= 0.99 and missing < 1")
        let checks = gate.evaluate(Self.metrics)
        #expect(checks.map(\.passed) == [false, false])
        #expect(checks[0].left == 0.93 && checks[0].right == 0.99)
        #expect(checks[0].comparison.description == "accuracy >= 0.99")
        #expect(checks[1].problem == "missing is missing from the metrics")
    }

    @Test(arguments: [
        ("", 0), ("accuracy", 8), ("accuracy >> 0.9", 10), ("accuracy = 0.9", 9), ("accuracy >= 0.9 or loss < 1", 16),
        ("accuracy >= 0.9 and", 19), ("accuracy >= 1.2.3", 12), ("acc..uracy > 1", 0), ("(accuracy > 1)", 0), ("a > 1 and and", 10),
    ])
    func parseErrorsPointAtTheProblem(text: String, offset: Int) {
        #expect(throws: GateExpression.ParseError.self) { try GateExpression(parsing: text) }
        do {
            _ = try GateExpression(parsing: text)
        } catch {
            #expect(error.offset == offset, "\(error.message)")
        }
    }

    @Test func paramValuesEncodeAsJSONValues() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let params: [String: ParamValue] = ["C": .double(0.5), "seed": .int(7), "kernel": .string("rbf"), "fast": .bool(true)]
        let data = try encoder.encode(params)
        #expect(String(decoding: data, as: UTF8.self) == #"{"C":0.5,"fast":true,"kernel":"rbf","seed":7}"#)
        #expect(try JSONDecoder().decode([String: ParamValue].self, from: data) == params)
        #expect(Recipe.typed("10", like: .double(1)) == .double(10))
    }

    @Test func jsonValueDecodesThroughCodable() throws {
        let json = #"{"accuracy": 0.93, "n": 3, "a": [1, null, false, "x"], "eval": {"f1": 0.5}}"#
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        #expect(value.value(at: "accuracy") == .number(0.93))
        #expect(value.value(at: "n") == .number(3))
        #expect(value.value(at: "eval.f1") == .number(0.5))
        #expect(value.value(at: "a.2") == .bool(false))
        #expect(value.value(at: "a.1") == .null)
        #expect(try GateExpression(parsing: "accuracy >= 0.9 and eval.f1 > 0.4").passes(value))
        #expect(value.value(at: "a.0") == .number(1))
        #expect(value.value(at: "a.3") == .string("x"))
        #expect(value.value(at: "a.x") == nil)
    }
}
