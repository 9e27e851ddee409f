import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextPollDelay } from "./remote-follow.ts";

describe("remote follow's poll interval", () => {
  it("polls every 50 ms for a second after a change, then at the slow interval", () => {
    assert.equal(nextPollDelay(0, 300), 50);
    assert.equal(nextPollDelay(999, 300), 50);
    assert.equal(nextPollDelay(1000, 300), 300);
    assert.equal(nextPollDelay(60_000, 300), 300);
  });

  it("never polls faster than a slow interval chosen below 50 ms", () => {
    assert.equal(nextPollDelay(0, 20), 20);
    assert.equal(nextPollDelay(5000, 20), 20);
  });
});
