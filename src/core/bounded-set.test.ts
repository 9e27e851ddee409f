import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BoundedSet } from "./bounded-set.ts";

describe("BoundedSet", () => {
  it("keeps the newest `max` values, forgetting the oldest first", () => {
    const set = new BoundedSet<string>(3);
    for (const v of ["a", "b", "c", "d"]) set.add(v);
    assert.deepEqual(
      ["a", "b", "c", "d"].map((v) => set.has(v)),
      [false, true, true, true],
    );
    set.add("b"); // re-added: now the newest, so c goes next
    set.add("e");
    assert.deepEqual(
      ["b", "c", "d", "e"].map((v) => set.has(v)),
      [true, false, true, true],
    );
    assert.equal(set.size, 3);
    assert.equal(set.delete("d"), true);
    assert.equal(set.delete("d"), false);
    assert.equal(set.size, 2);
  });

  it("refuses a bound below 1", () => {
    assert.throws(() => new BoundedSet(0), /at least 1/);
  });
});
