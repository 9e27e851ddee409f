import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RestartWindows } from "./sqlite-checkpointer.ts";

describe("restart windows (when the SQLite store holds operations for a WAL restart)", () => {
  it("opens one only once the WAL is long", () => {
    const windows = new RestartWindows(2000, 50, 1000);
    assert.equal(windows.due(1999, 0), false);
    assert.equal(windows.due(2000, 0), true);
  });

  it("after a window the worker could not complete, waits, doubling each time in a row, up to the cap", () => {
    const windows = new RestartWindows(2000, 50, 1000);
    let now = 1000;
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      windows.ended("incomplete", now);
      let wait = 0;
      while (!windows.due(5000, now + wait)) wait++;
      waits.push(wait);
      now += wait;
    }
    assert.deepEqual(waits, [50, 100, 200, 400, 800, 1000, 1000]);
  });

  it("a window that started the WAL over ends the back-off", () => {
    const windows = new RestartWindows(2000, 50, 1000);
    windows.ended("incomplete", 0);
    windows.ended("incomplete", 50);
    assert.equal(windows.due(5000, 51), false);
    windows.ended("complete", 60);
    assert.equal(windows.due(5000, 60), true);
    windows.ended("incomplete", 70); // the next one waits the first delay again
    assert.equal(windows.due(5000, 119), false);
    assert.equal(windows.due(5000, 120), true);
  });

  it("a window that got no answer in time tries again after the next commit", () => {
    // The copy goes on in the worker: under writes without a pause, trying again is what
    // lets the WAL start over (the WAL restart test in sqlite-store.test.ts).
    const windows = new RestartWindows(2000, 50, 1000);
    windows.ended("no answer", 0);
    assert.equal(windows.due(5000, 0), true);
  });
});
