/**
 * The SQLite store's hot path prepares no statement once it has warmed up: not a new
 * one (each is prepared once and kept), and not one SQLite prepares again behind the
 * scenes. SQLite does the latter on every run of a statement whose plan depends on a
 * bound value (a bare `LIMIT ?`, a `LIKE ?` pattern): binding the parameter expires the
 * statement. That cost ~4 µs on every claim before DUE_FREE said `LIMIT ?+0`.
 *
 * How it is seen: SQLite asks a connection's authorizer about every table and column a
 * statement reads or writes while it prepares it, and at no other time; so an
 * authorizer that counts its calls counts preparations. The test reaches the store's
 * connections by watching DatabaseSync.prototype.prepare, and names the statement that
 * was prepared again by the one running when the authorizer was called.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DatabaseSync, StatementSync } from "node:sqlite";
import { startColony, type Colony } from "../src/index.ts";
import { tempDir } from "./support/cli.ts";

const connections = new Set<DatabaseSync>();
const originalPrepare = DatabaseSync.prototype.prepare;
let running: string | undefined;
const runs = ["run", "get", "all", "iterate"] as const;
const originals = runs.map((name) => StatementSync.prototype[name]);

/** Statement text by preparation counted while `counting` (the one running, or "prepare: SQL"). */
const prepared = new Map<string, number>();
let counting = false;

function count(what: string): void {
  if (counting) prepared.set(what, (prepared.get(what) ?? 0) + 1);
}

function watch(): void {
  DatabaseSync.prototype.prepare = function (this: DatabaseSync, sql: string) {
    if (!connections.has(this)) {
      connections.add(this);
      // Called while SQLite prepares: by prepare() below, or again inside a run.
      this.setAuthorizer(() => {
        count(running ?? "(outside a run)");
        return 0; // SQLITE_OK
      });
    }
    running = `prepare: ${sql.replace(/\s+/g, " ").trim()}`;
    try {
      return originalPrepare.call(this, sql);
    } finally {
      running = undefined;
    }
  } as typeof DatabaseSync.prototype.prepare;
  runs.forEach((name, i) => {
    const original = originals[i] as (...args: unknown[]) => unknown;
    (StatementSync.prototype as unknown as Record<string, unknown>)[name] = function (
      this: StatementSync,
      ...args: unknown[]
    ) {
      running = `run: ${this.sourceSQL.replace(/\s+/g, " ").trim()}`;
      try {
        return original.apply(this, args);
      } finally {
        running = undefined;
      }
    };
  });
}

function unwatch(): void {
  DatabaseSync.prototype.prepare = originalPrepare;
  runs.forEach((name, i) => {
    (StatementSync.prototype as unknown as Record<string, unknown>)[name] = originals[i];
  });
}

describe("the SQLite store's hot path", () => {
  const dir = tempDir("colony-statements-");
  let colony: Colony;

  before(async () => {
    watch();
    colony = await startColony({ dataDir: dir.path, maxParallelTasks: 4 });
    colony.register("noop", () => ({ ok: true }));
  });
  after(async () => {
    await colony.close();
    unwatch();
    dir.remove();
  });

  /**
   * Jobs at once (claims of several) and one after another (claims of one), of a type
   * without a limit (a FUNCTION task, then a SHELL one: a process, its unit and output)
   * and of one with max_concurrency (its own claim query).
   */
  async function workload(n: number): Promise<void> {
    const free = {
      job_type: "statements",
      tasks: [
        { task_type: "a", method: "FUNCTION", function: "noop", on_completed: "b" },
        { task_type: "b", script: ["echo b"] },
      ],
    };
    const limited = {
      job_type: "statements-limited",
      max_concurrency: 2,
      tasks: [{ task_type: "a", method: "FUNCTION", function: "noop" }],
    };
    const burst = await Promise.all(
      Array.from({ length: n }, (_, i) => colony.submit(i % 2 ? free : limited)),
    );
    for (const run of burst) await run.result();
    for (let i = 0; i < n / 4; i++) await (await colony.submit(i % 2 ? free : limited)).result();
  }

  it("prepares no statement, new or again, once warm", async () => {
    assert.ok(connections.size > 0, "the store's connection was seen");
    // Twice: once to prepare every statement the path uses, once for the re-preparation
    // that setting an authorizer causes on statements prepared before it (SQLite expires
    // them).
    await workload(40);
    await workload(40);
    counting = true;
    await workload(40);
    counting = false;
    const report = [...prepared].map(([sql, calls]) => `${calls} × ${sql}`).join("\n");
    assert.equal(prepared.size, 0, `prepared while warm:\n${report}`);
  });

  it("sees a statement SQLite prepares on every run (the check works)", () => {
    prepared.clear();
    const db = new DatabaseSync(":memory:");
    try {
      db.exec("CREATE TABLE t (a INTEGER PRIMARY KEY)");
      const bare = db.prepare("SELECT a FROM t ORDER BY a LIMIT ?");
      const fixed = db.prepare("SELECT a FROM t ORDER BY a LIMIT ?+0");
      bare.all(1);
      fixed.all(1);
      counting = true;
      for (let i = 0; i < 5; i++) {
        bare.all(1);
        fixed.all(1);
      }
      counting = false;
      const keys = [...prepared.keys()];
      assert.deepEqual(keys, ["run: SELECT a FROM t ORDER BY a LIMIT ?"]);
      assert.ok(prepared.get(keys[0]!)! >= 5, "once per run");
    } finally {
      prepared.clear();
      counting = false;
      db.close();
    }
  });
});
