import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { freeBytes, freeBytesLately } from "./disk.ts";

describe("freeBytesLately", () => {
  const parent = mkdtempSync(join(tmpdir(), "colony-disk-"));
  const unit = join(parent, "u1");
  mkdirSync(unit);
  // A directory that is not there: reading it answers undefined, so an answer that is a
  // number came from an earlier reading.
  const gone = join(parent, "gone");
  after(() => rmSync(parent, { recursive: true, force: true }));

  it("reads the directory when it has no reading of its parent's disk", () => {
    const free = freeBytesLately(unit, 1000);
    assert.equal(typeof free, "number");
    assert.ok(Math.abs(free! - freeBytes(unit)!) < 64 * 1024 * 1024, "the disk's free bytes");
  });

  it("answers from that reading moments later, for another directory under the same parent", () => {
    assert.equal(freeBytesLately(gone, 1001), freeBytesLately(unit, 1001));
    assert.equal(typeof freeBytesLately(gone, 1002), "number");
  });

  it("reads again once the reading is a second old", () => {
    assert.equal(freeBytesLately(gone, 2001), undefined);
  });

  it("keeps no reading it could not take: the next call reads", () => {
    assert.equal(freeBytesLately(gone, 2002), undefined);
    assert.equal(typeof freeBytesLately(unit, 2003), "number");
  });

  it("never answers for a time before its reading", () => {
    assert.equal(freeBytesLately(gone, 500), undefined);
  });
});
