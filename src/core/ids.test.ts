import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isUnitId, newUnitId } from "./ids.ts";

describe("unit ids", () => {
  it("are 8 characters of [A-Za-z0-9], distinct, every character about equally likely", () => {
    const n = 100_000;
    const seen = new Set<string>();
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const id = newUnitId();
      assert.ok(isUnitId(id), id);
      seen.add(id);
      for (const c of id) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    assert.equal(seen.size, n);
    assert.equal(counts.size, 62);
    const expected = (n * 8) / 62;
    for (const [c, k] of counts) {
      assert.ok(
        Math.abs(k - expected) < expected * 0.05,
        `${c}: ${k} times, expected ~${expected}`,
      );
    }
  });

  it("isUnitId refuses anything else", () => {
    for (const bad of ["", "abc", "abcdefghi", "abcd-fgh", "../../x", "abcdefg\n"]) {
      assert.equal(isUnitId(bad), false, bad);
    }
  });
});
