import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { howClientsFindIt } from "./server-command.ts";

describe("the server's admin token line", () => {
  it("says that client commands run where the server was started need no flag", () => {
    const line = howClientsFindIt("/srv/app/.colony", "/srv/app");
    assert.equal(
      line,
      "colony commands run in /srv/app use it as they are; from elsewhere, give " +
        "--data-dir /srv/app/.colony or COLONY_DATA_DIR=/srv/app/.colony",
    );
  });

  it("names the data dir to give when it is not the default one", () => {
    const line = howClientsFindIt("/var/lib/colony", "/srv/app");
    assert.equal(
      line,
      "colony commands on this machine use it when given --data-dir /var/lib/colony " +
        "or COLONY_DATA_DIR=/var/lib/colony",
    );
  });
});
