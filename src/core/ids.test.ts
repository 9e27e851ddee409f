import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { isUnitId, newUnitId } from "./ids.ts";

const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** The number an id's first five characters spell: its millisecond, modulo 62^5. */
function clockOf(id: string): number {
  let n = 0;
  for (const c of id.slice(0, 5)) n = n * 62 + DIGITS.indexOf(c);
  return n;
}

describe("unit ids", () => {
  it("are 8 characters of [A-Za-z0-9], none repeated in a burst of 100,000", () => {
    // A burst puts hundreds in one millisecond: they differ in their random part.
    const n = 100_000;
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const id = newUnitId();
      assert.ok(isUnitId(id), id);
      seen.add(id);
    }
    assert.equal(seen.size, n);
  });

  it("begin with the time they were made, so that later ids sort after earlier ones", async () => {
    const before = Date.now() % 62 ** 5;
    const first = newUnitId();
    const after = Date.now() % 62 ** 5;
    assert.ok(clockOf(first) >= before && clockOf(first) <= after, `${first}: ${clockOf(first)}`);
    await sleep(3);
    const later = newUnitId();
    // Byte order, as the stores' indexes compare them (the clock starts over every
    // ~10.6 days: a 3 ms wait across that instant is the one way this could fail).
    assert.ok(first < later, `${first} then ${later}`);
    assert.ok(Buffer.compare(Buffer.from(first), Buffer.from(later)) < 0);
  });

  it("end in three random characters, every character about equally likely", () => {
    const n = 100_000;
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      for (const c of newUnitId().slice(5)) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    assert.equal(counts.size, 62);
    // Pearson's chi-square against the uniform distribution, 61 degrees of freedom: a
    // uniform source exceeds 130 about once in a million runs, where a per-character
    // bound of 5 % (3.5 sigma here) failed about one run in 35 (it did, once); the modulo
    // bias of drawing each character from one byte (8 characters 25 % likelier) scores
    // about 2,000.
    const expected = (n * 3) / 62;
    let chi2 = 0;
    for (const k of counts.values()) chi2 += (k - expected) ** 2 / expected;
    const far = [...counts].sort((a, b) => Math.abs(b[1] - expected) - Math.abs(a[1] - expected));
    assert.ok(
      chi2 < 130,
      `chi-square ${chi2.toFixed(1)} (expected ~61); furthest: ${far
        .slice(0, 3)
        .map(([c, k]) => `${c} ${k} times`)
        .join(", ")} against ~${expected.toFixed(0)}`,
    );
  });

  it("isUnitId refuses anything else", () => {
    for (const bad of ["", "abc", "abcdefghi", "abcd-fgh", "../../x", "abcdefg\n"]) {
      assert.equal(isUnitId(bad), false, bad);
    }
  });
});
