import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Semaphore } from "./semaphore.ts";

describe("Semaphore (task slots)", () => {
  it("admits up to its limit, then serves waiters in order as holders release", async () => {
    const slots = new Semaphore(2);
    const order: string[] = [];
    await slots.acquire();
    await slots.acquire();
    const a = slots.acquire().then(() => order.push("a"));
    const b = slots.acquire().then(() => order.push("b"));
    assert.deepEqual([slots.busy, slots.waiting], [2, 2]);
    slots.release();
    slots.release();
    await Promise.all([a, b]);
    assert.deepEqual(order, ["a", "b"]);
    assert.deepEqual([slots.busy, slots.waiting], [2, 0]);
  });

  it("a raised limit admits waiters at once; a lowered one holds new holders until enough release", async () => {
    const released: number[] = [];
    const slots = new Semaphore(1, () => released.push(slots.busy));
    await slots.acquire();
    let admitted = false;
    const waiter = slots.acquire().then(() => (admitted = true));
    slots.setLimit(3); // remote ants connected
    await waiter;
    assert.equal(admitted, true);
    assert.equal(slots.busy, 2);
    slots.setLimit(1); // they left: two holders over a limit of one
    let third = false;
    const late = slots.acquire().then(() => (third = true));
    slots.release();
    await new Promise((r) => setImmediate(r));
    assert.equal(third, false, "still one holder: at the limit");
    slots.release();
    await late;
    assert.equal(third, true);
    assert.deepEqual(released, [1, 1], "onRelease runs after every release");
  });
});
