import assert from "node:assert/strict";
import { it } from "node:test";
import { medianInterval } from "../bench/support.ts";

void it("bench:ab's interval of a median takes the order statistics a binomial gives", () => {
  const values = (n: number) => Array.from({ length: n }, (_, i) => n - i); // unsorted
  // P(Binomial(n, ½) < k) ≤ 5 %: k = 1 for 5 values, 3 for 12, 5 for 16, 11 for 30.
  assert.deepEqual(medianInterval(values(5)), [1, 5]);
  assert.deepEqual(medianInterval(values(12)), [3, 10]);
  assert.deepEqual(medianInterval(values(16)), [5, 12]);
  assert.deepEqual(medianInterval(values(30)), [11, 20]);
  assert.equal(medianInterval(values(4)), undefined, "too few rounds for 90 %");
});
