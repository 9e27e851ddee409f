import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findJsonError, lineAndColumn, MalformedJsonError, parseJsonBody } from "./json-body.ts";

void describe("JSON bodies", () => {
  void it("parses valid JSON", () => {
    assert.deepEqual(parseJsonBody('{"a": [1, -2.5e3, "x\\u00e9", true, null]}'), {
      a: [1, -2500, "xé", true, null],
    });
  });

  void it("says where the syntax breaks, also where V8 does not", () => {
    const cases: Array<[string, number]> = [
      ['{"role": "reader", "name": }', 27],
      ['{"a":tru}', 8],
      ["nul", 3],
      ['{"a":1,}', 7],
      ["[1,2", 4],
      ['{"a":1}x', 7],
      ['{\n  "a": 1,\n  "b": ]\n}', 19],
      ['{"a": "\\q"}', 8],
      ["-", 1],
      ['{"a":01}', 6],
    ];
    for (const [text, position] of cases) {
      assert.equal(findJsonError(text), position, text);
      assert.throws(
        () => parseJsonBody(text),
        (e: unknown) =>
          e instanceof MalformedJsonError &&
          e.status === 400 &&
          e.message.includes(`(position ${position})`) &&
          /line \d+, column \d+/.test(e.message),
        text,
      );
    }
    assert.deepEqual(lineAndColumn('{\n  "a": 1,\n  "b": ]\n}', 19), { line: 3, column: 8 });
    assert.equal(findJsonError('{"ok": [1, {"x": "y"}]}'), undefined);
  });

  void it("refuses empty bodies and prototype keys", () => {
    assert.throws(() => parseJsonBody("  "), /the body is empty/);
    assert.throws(() => parseJsonBody('{"a": {"__proto__": {"x": 1}}}'), /__proto__/);
    assert.throws(
      () => parseJsonBody('{"constructor": {"prototype": {"x": 1}}}'),
      /constructor\.prototype/,
    );
    assert.deepEqual(parseJsonBody('{"constructor": "fine"}'), { constructor: "fine" });
  });

  void it("does not fall over on deep nesting", () => {
    const deep = "[".repeat(200_000);
    assert.throws(() => parseJsonBody(deep), MalformedJsonError);
  });
});
