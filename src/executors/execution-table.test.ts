import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { FinishedRetention } from "./execution-table.ts";

interface Entry {
  id: string;
  finishedAt?: number;
  delivered?: boolean;
}

function finish(map: Map<string, Entry>, retention: FinishedRetention<Entry>, id: string): Entry {
  const e = map.get(id)!;
  e.finishedAt = Date.now();
  retention.finished(e);
  return e;
}

describe("FinishedRetention (finished executions kept a while)", () => {
  it("keeps at most the newest `max` finished entries, oldest finished first, running ones untouched", () => {
    const map = new Map<string, Entry>();
    for (const id of ["a", "b", "c", "d", "e", "running"]) map.set(id, { id });
    const retention = new FinishedRetention(map, 60_000, 3);
    try {
      // Finished in another order than they started: the first to finish leaves first.
      for (const id of ["c", "a", "e", "b"]) finish(map, retention, id);
      assert.deepEqual([...map.keys()].sort(), ["a", "b", "d", "e", "running"]);
      finish(map, retention, "d");
      assert.deepEqual([...map.keys()].sort(), ["b", "d", "e", "running"]);
    } finally {
      retention.close();
    }
  });

  it("shared by several maps keeps `max` between them, each entry leaving its own map", () => {
    const one = new Map<string, Entry>([
      ["a", { id: "a" }],
      ["b", { id: "b" }],
    ]);
    const two = new Map<string, Entry>([
      ["a", { id: "a" }],
      ["c", { id: "c" }],
    ]);
    const retention = new FinishedRetention<Entry>(undefined, 60_000, 2);
    const done = (map: Map<string, Entry>, id: string) => {
      const e = map.get(id)!;
      e.finishedAt = Date.now();
      retention.finished(e, map);
    };
    try {
      done(one, "a");
      done(two, "a"); // the same id in another map is another entry
      done(one, "b"); // three finished, two kept: the first "a" (of map one) leaves
      assert.deepEqual([...one.keys()], ["b"]);
      assert.deepEqual([...two.keys()], ["a", "c"]);
      done(two, "c");
      assert.deepEqual([...one.keys()], ["b"]);
      assert.deepEqual([...two.keys()], ["c"]);
      assert.throws(() => retention.finished({ id: "x", finishedAt: 0 }), /no map/);
    } finally {
      retention.close();
    }
  });

  it("keeps a result no wait() took past `max`, until it is retainMs old", async () => {
    const map = new Map<string, Entry>();
    for (const id of ["taken", "untaken", "b", "c", "d"]) map.set(id, { id, delivered: true });
    map.get("untaken")!.delivered = false; // its engine never waited: its start was not recorded
    const retention = new FinishedRetention(map, 80, 2);
    try {
      for (const id of ["taken", "untaken", "b", "c"]) finish(map, retention, id);
      assert.deepEqual(
        [...map.keys()].sort(),
        ["b", "c", "d", "untaken"],
        "only 'taken' made room",
      );
      finish(map, retention, "d");
      assert.deepEqual([...map.keys()].sort(), ["c", "d", "untaken"]);
      await sleep(120);
      map.set("e", { id: "e", delivered: true });
      finish(map, retention, "e"); // a sweep: every other one is 80 ms old now
      assert.deepEqual([...map.keys()], ["e"]);
    } finally {
      retention.close();
    }
  });

  it("forgets entries finished more than retainMs ago", async () => {
    const map = new Map<string, Entry>([
      ["old", { id: "old" }],
      ["new", { id: "new" }],
    ]);
    const retention = new FinishedRetention(map, 30, 100);
    try {
      finish(map, retention, "old");
      await sleep(60);
      finish(map, retention, "new");
      assert.deepEqual([...map.keys()], ["new"]);
    } finally {
      retention.close();
    }
  });

  it("leaves an entry re-added under the same id to its own expiry", () => {
    const map = new Map<string, Entry>([["x", { id: "x" }]]);
    const retention = new FinishedRetention(map, 60_000, 1);
    try {
      finish(map, retention, "x");
      const again: Entry = { id: "x" }; // re-attached after a restart: a new entry
      map.set("x", again);
      map.set("y", { id: "y" });
      finish(map, retention, "y"); // pushes the first "x" out: the new one must stay
      assert.equal(map.get("x"), again);
    } finally {
      retention.close();
    }
  });
});
