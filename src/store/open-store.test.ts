import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import { postgres } from "../../test/support/services.ts";
import { ColonyError } from "../core/errors.ts";
import { openStore } from "./open-store.ts";
import type { Store } from "./store.ts";

// Before any test is registered: the file-level after() hook runs once the tests
// registered so far have finished.
const service = await postgres();
const dataDir = mkdtempSync(join(tmpdir(), "colony-open-store-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));

async function works(store: Store, kind: string): Promise<void> {
  try {
    assert.equal(store.kind, kind);
    const def = { jobType: "o", retry: 0, delayBetweenRetriesMs: 0, variables: {}, tasks: [] };
    assert.equal((await store.putDefinition(def, "src")).version, 1, "migrated and usable");
  } finally {
    await store.close();
  }
}

void describe("openStore", () => {
  void it("defaults to SQLite at {dataDir}/colony.db, creating the folder", async () => {
    const dir = join(dataDir, "nested", "data");
    await works(await openStore({ dataDir: dir }), "sqlite");
    assert.ok(existsSync(join(dir, "colony.db")));
  });

  void it("takes sqlite:///absolute, sqlite:relative (to the data dir) and sqlite::memory:", async () => {
    const absolute = join(dataDir, "abs", "x.db");
    await works(await openStore({ url: `sqlite://${absolute}`, dataDir }), "sqlite");
    assert.ok(existsSync(absolute));
    await works(await openStore({ url: "sqlite:rel/y.db", dataDir }), "sqlite");
    assert.ok(existsSync(join(dataDir, "rel", "y.db")));
    await works(await openStore({ url: "sqlite::memory:", dataDir }), "sqlite");
  });

  void it("refuses unknown schemes and malformed sqlite URLs, naming the accepted forms", async () => {
    for (const url of [
      "mysql://u:hunter2@h/db",
      "sqlite://host/db.sqlite",
      "sqlite:",
      "colony.db",
    ]) {
      await assert.rejects(openStore({ url, dataDir }), (error: unknown) => {
        assert.ok(error instanceof ColonyError, String(error));
        assert.equal(error.code, "COLONY_CONFIG_INVALID");
        assert.match(error.message, /sqlite:\/\/\/absolute\/path\.db/);
        assert.match(error.message, /postgres:\/\//);
        assert.doesNotMatch(error.message, /hunter2/, "passwords are not echoed");
        assert.ok(error.message.includes(url.replace("hunter2", "***")));
        return true;
      });
    }
  });
});

void describe("openStore with PostgreSQL", { skip: service.url ? false : service.reason }, () => {
  const schema = `colony_test_open_${randomBytes(4).toString("hex")}`;
  after(async () => {
    const client = new pg.Client({ connectionString: service.url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  void it("opens postgres:// and postgresql:// URLs, with ?schema= for a schema of its own", async () => {
    const url = new URL(service.url!);
    url.searchParams.set("schema", schema);
    await works(await openStore({ url: url.toString(), dataDir }), "postgres");
    url.protocol = "postgresql:";
    const again = await openStore({ url: url.toString(), dataDir });
    try {
      assert.equal((await again.getDefinition("o"))?.version, 1, "same schema");
    } finally {
      await again.close();
    }
  });
});
