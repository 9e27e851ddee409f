import assert from "node:assert/strict";
import { resolve } from "node:path";
import { describe, it } from "node:test";
import { defaultDataDir } from "./embedded.ts";

describe("defaultDataDir", () => {
  it("is $COLONY_DATA_DIR, resolved, else ./.colony; an empty one counts as unset", () => {
    assert.equal(defaultDataDir({ COLONY_DATA_DIR: "data" }), resolve("data"));
    assert.equal(defaultDataDir({}), resolve(".colony"));
    // As the server's config reads it: not the current directory itself.
    assert.equal(defaultDataDir({ COLONY_DATA_DIR: "" }), resolve(".colony"));
  });
});
