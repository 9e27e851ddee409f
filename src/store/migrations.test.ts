import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import pg from "pg";
import { postgres } from "../../test/support/services.ts";
import { StoreError } from "../core/errors.ts";
import {
  checksumOf,
  loadMigrations,
  migrationsDir,
  planMigrations,
  type Dialect,
} from "./migrations.ts";
import { createPostgresStore } from "./postgres-store.ts";
import { createSqliteStore } from "./sqlite-store.ts";
import type { Store } from "./store.ts";
import { jobDef } from "./store-conformance-fixtures.ts";

// Before any test is registered: the file-level after() hook runs once the tests
// registered so far have finished.
const service = await postgres();
const DIALECTS: Dialect[] = ["sqlite", "postgres"];
const tmp = mkdtempSync(join(tmpdir(), "colony-migrations-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

void describe("released migrations", () => {
  const lock = JSON.parse(
    readFileSync(new URL("./migrations.lock.json", import.meta.url), "utf8"),
  ) as Record<string, string>;
  const listed = Object.keys(lock).filter((key) => !key.startsWith("//"));

  void it("are unchanged: every file in migrations.lock.json still has its checksum", () => {
    assert.ok(listed.length > 0);
    for (const file of listed) {
      const [dialect, name] = file.split("/") as [Dialect, string];
      const text = readFileSync(join(migrationsDir(dialect), name), "utf8");
      assert.equal(
        checksumOf(text),
        lock[file],
        `${file} changed after release; restore it and put the change in a new migration`,
      );
    }
  });

  void it("are all recorded in migrations.lock.json", () => {
    for (const dialect of DIALECTS) {
      for (const migration of loadMigrations(migrationsDir(dialect))) {
        assert.ok(
          listed.includes(`${dialect}/${migration.name}`),
          `${dialect}/${migration.name} is not in migrations.lock.json; add its sha256 there`,
        );
      }
    }
  });

  void it("come in the same numbered files for both dialects", () => {
    const names = DIALECTS.map((d) => loadMigrations(migrationsDir(d)).map((m) => m.name));
    assert.deepEqual(names[0], names[1]);
  });
});

void describe("migration files and plans", () => {
  const folder = (files: Record<string, string>) => {
    const dir = mkdtempSync(join(tmp, "dir-"));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };

  void it("loads in version order and ignores files that are not .sql", () => {
    const dir = folder({ "0002_b.sql": "B", "0001_a.sql": "A", "README.md": "notes" });
    const migrations = loadMigrations(dir);
    assert.deepEqual(
      migrations.map((m) => [m.version, m.name, m.sql]),
      [
        [1, "0001_a.sql", "A"],
        [2, "0002_b.sql", "B"],
      ],
    );
    assert.equal(migrations[0]?.checksum, checksumOf("A"));
    assert.equal(checksumOf("x\r\ny\r\n"), checksumOf("x\ny\n"), "CRLF checkouts are not edits");
  });

  void it("refuses misnamed files, gaps and duplicates", () => {
    const refused = (files: Record<string, string>, pattern: RegExp) =>
      assert.throws(
        () => loadMigrations(folder(files)),
        (e: unknown) => e instanceof StoreError && pattern.test(e.message),
      );
    refused({ "0001_a.sql": "", "2-b.sql": "" }, /2-b\.sql is misnamed/);
    refused(
      { "0001_a.sql": "", "0003_c.sql": "" },
      /found 0003_c\.sql where version 2 was expected/,
    );
    refused({ "0001_a.sql": "", "0001_b.sql": "" }, /without gaps or duplicates/);
    assert.throws(() => loadMigrations(join(tmp, "missing")), StoreError);
  });

  void it("plans what is pending and refuses edited or unknown applied migrations", () => {
    const files = loadMigrations(folder({ "0001_a.sql": "A", "0002_b.sql": "B" }));
    const applied = [{ version: 1, name: "0001_a.sql", checksum: checksumOf("A") }];
    assert.deepEqual(
      planMigrations(files, [], "db").map((m) => m.version),
      [1, 2],
    );
    assert.deepEqual(
      planMigrations(files, applied, "db").map((m) => m.version),
      [2],
    );
    assert.throws(
      () => planMigrations(files, [{ ...applied[0]!, checksum: checksumOf("old A") }], "the db"),
      /migration file 0001_a\.sql changed after it was applied to the db/,
    );
    assert.throws(
      () =>
        planMigrations(
          files,
          [...applied, { version: 3, name: "0003_c.sql", checksum: "x" }],
          "db",
        ),
      /has migration 0003_c\.sql .* upgrade colony/,
    );
  });
});

void describe("sqlite migrations", () => {
  void it("apply once, are recorded, and refuse to start when an applied file changed", async () => {
    const path = join(tmp, "migrate.db");
    const store = createSqliteStore({ path });
    const messages: string[] = [];
    await store.migrate((m) => messages.push(m));
    await store.migrate((m) => messages.push(m));
    assert.deepEqual(messages, [], "a new store, then one with nothing pending, says nothing");
    await store.putDefinition(
      { jobType: "kept", retry: 0, delayBetweenRetriesMs: 0, variables: {}, tasks: [] },
      "src",
    );
    await store.close();

    const db = new DatabaseSync(path);
    const rows = db
      .prepare("SELECT version, name, checksum, applied_at FROM schema_migrations")
      .all();
    const files = loadMigrations(migrationsDir("sqlite"));
    assert.deepEqual(
      rows.map((r) => [r.version, r.name, r.checksum]),
      files.map((m) => [m.version, m.name, m.checksum]),
    );
    assert.ok(typeof rows[0]?.applied_at === "number");
    db.prepare("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1").run();
    db.close();

    const again = createSqliteStore({ path });
    try {
      await assert.rejects(again.migrate(), (error: unknown) => {
        assert.ok(error instanceof StoreError);
        assert.match(
          error.message,
          /migration file 0001_initial\.sql changed after it was applied/,
        );
        assert.match(error.message, new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
        return true;
      });
      assert.equal((await again.getDefinition("kept"))?.jobType, "kept", "nothing was touched");
    } finally {
      await again.close();
    }
  });
});

void describe("sqlite data migrations", () => {
  void it("0006: requests waiting for their next attempt lose the first attempt's started_at", async () => {
    const path = join(tmp, "upgrade-0006.db");
    const store = createSqliteStore({ path });
    await store.migrate();
    const waiting = await store.createJobRequest({
      jobType: "t",
      definition: { jobType: "t", retry: 1, delayBetweenRetriesMs: 0, variables: {}, tasks: [] },
      params: {},
    });
    const running = await store.createJobRequest({
      jobType: "t",
      definition: { jobType: "t", retry: 1, delayBetweenRetriesMs: 0, variables: {}, tasks: [] },
      params: {},
    });
    await store.close();
    // As a store at 0005 had them: a retry kept the first attempt's start.
    const db = new DatabaseSync(path);
    db.prepare("UPDATE job_requests SET started_at = 1000, attempt = 1 WHERE id = ?").run(
      waiting.id,
    );
    db.prepare("UPDATE job_requests SET state = 'EXECUTING', started_at = 2000 WHERE id = ?").run(
      running.id,
    );
    db.prepare("DELETE FROM schema_migrations WHERE version = 6").run();
    db.close();
    const upgraded = createSqliteStore({ path });
    try {
      await upgraded.migrate();
      assert.equal((await upgraded.getJobRequest(waiting.id))?.startedAt, undefined);
      assert.equal((await upgraded.getJobRequest(running.id))?.startedAt?.getTime(), 2000);
    } finally {
      await upgraded.close();
    }
  });
});

/**
 * The job rows of a store at migration 0009, as 0010 finds them: two requests of one
 * definition, one of another (with a quote and a non-ASCII character in its text).
 */
const BEFORE_0010 = [
  { id: 1, definition: JSON.stringify(jobDef("a")) },
  {
    id: 2,
    definition: JSON.stringify(
      jobDef("b", { variables: { note: { name: "note", value: "l'été", secret: false } } }),
    ),
  },
  { id: 3, definition: JSON.stringify(jobDef("a")) },
];

/**
 * An upgrade says which migration it applies, and when each is done (the server's log):
 * 0010 first, then any later one.
 */
function checkUpgradeLog(messages: string[]): void {
  const later = loadMigrations(migrationsDir("sqlite")).filter((m) => m.version >= 10);
  assert.equal(messages.length, 2 * later.length, messages.join("\n"));
  later.forEach((m, k) => {
    const name = m.name.replace(/\./g, "\\.");
    assert.match(messages[2 * k]!, new RegExp(`^upgrading .+: applying migration ${name}$`));
    assert.match(
      messages[2 * k + 1]!,
      new RegExp(`^upgraded .+: migration ${name} applied in \\d+\\.\\d s$`),
    );
  });
  assert.equal(later[0]?.name, "0010_job_request_definitions.sql");
}

/** What 0010 must leave: each request its own definition back, one row per distinct text. */
async function check0010(store: Store, distinct: () => Promise<number>): Promise<void> {
  for (const { id, definition } of BEFORE_0010) {
    assert.deepEqual((await store.getJobRequest(id))?.definition, JSON.parse(definition));
  }
  assert.equal(await distinct(), 2);
  // A new request of a migrated definition finds its row by the same hash.
  const again = await store.createJobRequest({ jobType: "a", definition: jobDef("a"), params: {} });
  assert.deepEqual((await store.getJobRequest(again.id))?.definition, jobDef("a"));
  assert.equal(await distinct(), 2);
}

void describe("0010: definitions stored once per distinct text", () => {
  void it("sqlite: moves each request's definition into job_request_definitions", async () => {
    const path = join(tmp, "upgrade-0010.db");
    const db = new DatabaseSync(path);
    db.exec(
      "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, " +
        "checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    for (const m of loadMigrations(migrationsDir("sqlite")).filter((m) => m.version < 10)) {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?, 0)").run(
        m.version,
        m.name,
        m.checksum,
      );
    }
    for (const { id, definition } of BEFORE_0010) {
      db.prepare(
        `INSERT INTO job_requests (id, job_type, state, params, definition, scheduled_at,
           created_at, updated_at) VALUES (?, 't', 'PENDING', '{}', ?, 0, 0, 0)`,
      ).run(id, definition);
    }
    db.close();
    const store = createSqliteStore({ path });
    try {
      const messages: string[] = [];
      await store.migrate((m) => messages.push(m));
      checkUpgradeLog(messages);
      const count = () => {
        const check = new DatabaseSync(path);
        try {
          return check.prepare("SELECT count(*) AS n FROM job_request_definitions").get()!.n;
        } finally {
          check.close();
        }
      };
      await check0010(store, () => Promise.resolve(count() as number));
    } finally {
      await store.close();
    }
  });

  void it(
    "postgres: moves each request's definition into job_request_definitions",
    {
      skip: service.url ? false : service.reason,
    },
    async () => {
      const schema = `colony_test_0010_${randomBytes(4).toString("hex")}`;
      const c = new pg.Client({ connectionString: service.url });
      await c.connect();
      try {
        await c.query(`CREATE SCHEMA "${schema}"; SET search_path TO "${schema}"`);
        await c.query(
          "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, " +
            "checksum text NOT NULL, applied_at timestamptz NOT NULL)",
        );
        for (const m of loadMigrations(migrationsDir("postgres")).filter((m) => m.version < 10)) {
          await c.query(m.sql);
          await c.query("INSERT INTO schema_migrations VALUES ($1, $2, $3, now())", [
            m.version,
            m.name,
            m.checksum,
          ]);
        }
        for (const { id, definition } of BEFORE_0010) {
          await c.query(
            `INSERT INTO job_requests (id, job_type, state, params, definition, scheduled_at,
             created_at, updated_at) OVERRIDING SYSTEM VALUE
           VALUES ($1, 't', 'PENDING', '{}', $2, now(), now(), now())`,
            [id, definition],
          );
        }
        await c.query("SELECT setval(pg_get_serial_sequence('job_requests', 'id'), 3)");
        const store = createPostgresStore({ url: service.url!, schema });
        try {
          const messages: string[] = [];
          await store.migrate((m) => messages.push(m));
          checkUpgradeLog(messages);
          const distinct = async () =>
            Number((await c.query("SELECT count(*) AS n FROM job_request_definitions")).rows[0].n);
          await check0010(store, distinct);
        } finally {
          await store.close();
        }
      } finally {
        await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await c.end();
      }
    },
  );
});

void describe("postgres migrations", { skip: service.url ? false : service.reason }, () => {
  const schema = `colony_test_migrations_${randomBytes(4).toString("hex")}`;
  const client = () => new pg.Client({ connectionString: service.url });
  after(async () => {
    if (!service.url) return;
    const c = client();
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  });

  void it("apply once, are recorded, and refuse to start when an applied file changed", async () => {
    const store = createPostgresStore({ url: service.url!, schema });
    await Promise.all([store.migrate(), store.migrate()]); // concurrent starts take turns
    await store.close();
    const c = client();
    await c.connect();
    try {
      const { rows } = await c.query(
        `SELECT version, name, checksum FROM "${schema}".schema_migrations`,
      );
      const files = loadMigrations(migrationsDir("postgres"));
      assert.deepEqual(
        rows,
        files.map((m) => ({ version: m.version, name: m.name, checksum: m.checksum })),
      );
      await c.query(`UPDATE "${schema}".schema_migrations SET checksum = 'edited'`);
    } finally {
      await c.end();
    }
    const again = createPostgresStore({ url: service.url!, schema });
    try {
      await assert.rejects(
        again.migrate(),
        /migration file 0001_initial\.sql changed after it was applied/,
      );
    } finally {
      await again.close();
    }
  });

  void it("build the same tables and columns as the sqlite migrations", async () => {
    const sqlitePath = join(tmp, "shape.db");
    const sqliteStore = createSqliteStore({ path: sqlitePath });
    await sqliteStore.migrate();
    await sqliteStore.close();
    const db = new DatabaseSync(sqlitePath);
    const sqliteShape: Record<string, string[]> = {};
    const tables = db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .all();
    for (const { name } of tables) {
      sqliteShape[name as string] = db
        .prepare(`SELECT name FROM pragma_table_info(?) ORDER BY name`)
        .all(name as string)
        .map((r) => r.name as string);
    }
    db.close();

    const shapeSchema = `${schema}_shape`;
    const store = createPostgresStore({ url: service.url!, schema: shapeSchema });
    await store.migrate();
    await store.close();
    const c = client();
    await c.connect();
    try {
      const { rows } = await c.query<{ table_name: string; column_name: string }>(
        `SELECT table_name, column_name FROM information_schema.columns
         WHERE table_schema = $1 ORDER BY table_name, column_name`,
        [shapeSchema],
      );
      const pgShape: Record<string, string[]> = {};
      for (const row of rows) (pgShape[row.table_name] ??= []).push(row.column_name);
      assert.deepEqual(pgShape, sqliteShape);
    } finally {
      await c.query(`DROP SCHEMA IF EXISTS "${shapeSchema}" CASCADE`);
      await c.end();
    }
  });
});

void it("every migration folder holds only numbered .sql files", () => {
  for (const dialect of DIALECTS) {
    for (const name of readdirSync(migrationsDir(dialect)))
      assert.match(name, /^\d{4}_[a-z0-9_]+\.sql$/);
  }
});
