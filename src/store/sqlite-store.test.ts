import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { StoreError } from "../core/errors.ts";
import { createSqliteStore, DUE_FREE, DUE_LIMITED, LIMITED_TYPES } from "./sqlite-store.ts";
import { sqliteFailure } from "./sqlite-errors.ts";
import { jobDef } from "./store-conformance-fixtures.ts";
import { storeConformance } from "./store-conformance.ts";

const dir = mkdtempSync(join(tmpdir(), "colony-sqlite-store-"));
const conformanceDir = mkdtempSync(join(tmpdir(), "colony-sqlite-conformance-"));
let files = 0;

async function fresh(path = join(dir, `store-${++files}.db`)) {
  const store = createSqliteStore({ path });
  await store.migrate();
  return store;
}

storeConformance(
  "sqlite",
  () => fresh(join(conformanceDir, `store-${++files}.db`)),
  async () => rmSync(conformanceDir, { recursive: true, force: true }),
);

void describe("sqlite store", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it("refuses to start when a table has a column its row reads do not know", async () => {
    // The reads after each state change name their columns (arrays, not row objects):
    // a migration that adds a task column must update them, or the store says so.
    const path = join(dir, "drifted.db");
    const store = await fresh(path);
    await store.close();
    const db = new DatabaseSync(path);
    db.exec("ALTER TABLE task_executions ADD COLUMN surprise TEXT");
    db.close();
    const again = createSqliteStore({ path });
    try {
      await assert.rejects(again.migrate(), /task_executions .*not read: surprise.*TASK_FIELDS/s);
    } finally {
      await again.close();
    }
  });

  void it("two stores on one file see each other's writes", async () => {
    const path = join(dir, "shared.db");
    const a = await fresh(path);
    const b = await fresh(path);
    try {
      const request = await a.createJobRequest({
        jobType: "s",
        definition: jobDef("s"),
        params: { from: "a" },
      });
      assert.deepEqual(await b.getJobRequest(request.id), request);
      const claimed = await b.claimDueJobRequests("b", new Date(), 1000, 10);
      assert.deepEqual(
        claimed.map((r) => r.id),
        [request.id],
      );
      assert.equal((await a.getJobRequest(request.id))?.owner, "b");
      await b.putDefinition(jobDef("s"), "src");
      assert.equal((await a.getDefinition("s"))?.version, 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  void it("a write gives back the stored row after another connection's write or a write of another kind", async () => {
    // The rows after each job's claim, start and finish are derived, not read back
    // (sqlite-known-rows.ts); these two writes must make the store read them again.
    const path = join(dir, "known-rows.db");
    const a = await fresh(path);
    const b = await fresh(path);
    try {
      const { id } = await a.createJobRequest({
        jobType: "k",
        definition: jobDef("k"),
        params: {},
      });
      assert.equal((await a.claimDueJobRequests("a", new Date(), 1000, 1))[0]?.owner, "a");
      // Another connection takes the job over once a's lease has run out.
      const later = new Date(Date.now() + 60_000);
      assert.equal((await b.takeOverJobRequest(id, "b", later, 30_000))?.owner, "b");
      const executing = await a.markJobExecuting(id);
      assert.equal(executing.owner, "b");
      assert.deepEqual(executing, await a.getJobRequest(id));
      // A hook report through the same connection (not a write that keeps rows).
      const { execution } = await a.createTaskExecution({
        jobRequestId: id,
        taskType: "t",
        method: "SHELL",
        jobAttempt: 0,
        attempt: 0,
      });
      await a.markTaskExecuting(execution.id, { handle: { pid: 1 } });
      await a.asyncActions.recordHookReport(execution.id, { status: "RUNNING" }, new Date());
      const done = await a.finishTask(execution.id, { state: "COMPLETED", exitCode: 0 });
      assert.equal(done.hook?.status, "RUNNING");
      assert.deepEqual(done, await a.getTaskExecution(execution.id));
    } finally {
      await a.close();
      await b.close();
    }
  });

  void it("claimers in four threads on one file claim each request exactly once", async () => {
    const path = join(dir, "threads.db");
    const store = await fresh(path);
    const due = new Date(Date.now() - 1000);
    for (let i = 0; i < 200; i++) {
      await store.createJobRequest({
        jobType: "t",
        definition: jobDef("t"),
        params: { i },
        scheduledAt: due,
      });
    }
    await store.close();
    const moduleUrl = new URL("./sqlite-store.ts", import.meta.url).href;
    const code = `
      const { workerData, parentPort } = require("node:worker_threads");
      (async () => {
        const { createSqliteStore } = await import(workerData.moduleUrl);
        const store = createSqliteStore({ path: workerData.path });
        const got = [];
        for (;;) {
          const batch = await store.claimDueJobRequests(workerData.owner, new Date(), 30000, 3);
          if (batch.length === 0) break;
          got.push(...batch.map((r) => r.id));
        }
        await store.close();
        parentPort.postMessage(got);
      })();`;
    const results = await Promise.all(
      ["w1", "w2", "w3", "w4"].map(
        (owner) =>
          new Promise<number[]>((resolve, reject) => {
            const worker = new Worker(code, { eval: true, workerData: { moduleUrl, path, owner } });
            worker.once("message", resolve);
            worker.once("error", reject);
          }),
      ),
    );
    const all = results.flat();
    assert.equal(all.length, 200);
    assert.equal(new Set(all).size, 200);
  });

  void it("checkpoints run in a worker thread: under writes without a pause the WAL still starts over", async () => {
    const path = join(dir, "checkpoints.db");
    const store = await fresh(path);
    const blob = "x".repeat(8000);
    const write = (i: number) =>
      store.createJobRequest({ jobType: "w", definition: jobDef("w"), params: { blob, i } });
    const walSize = () => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
    try {
      // ~32 MB of rows in commits of 50, back to back. Left alone, the WAL would grow to
      // the safety net (8000 frames, ~33 MB) and be checkpointed on the event loop; the
      // store's restart windows let the worker's checkpoint catch up and the WAL start
      // over from the beginning before that: on a quiet machine every ~2000 frames (the
      // WAL stays near 8-16 MB), on a disk busy with other work later, as a window whose
      // checkpoint takes longer than its 30 ms gives up and the next commit tries again.
      let largest = 0;
      for (let batch = 0; batch < 80; batch++) {
        const made = await Promise.all(Array.from({ length: 50 }, (_, i) => write(batch * 50 + i)));
        // Reads issued while a window holds operations back still see earlier writes.
        const last = made[made.length - 1]!;
        assert.equal((await store.getJobRequest(last.id))?.params.i, batch * 50 + 49);
        largest = Math.max(largest, walSize());
      }
      // Below the safety net: 8000 frames of a 4 KiB page and its 24-byte header.
      const safetyNet = 32 + 8000 * (4096 + 24);
      assert.ok(largest < safetyNet, `the WAL grew to ${largest} bytes (safety net ${safetyNet})`);
      assert.equal(await store.countJobRequests("w", ["PENDING"]), 4000);
    } finally {
      await store.close();
    }
    assert.equal(existsSync(`${path}-wal`), false, "closing checkpointed and removed the WAL");
  });

  void it("claims, max_concurrency counts and lease renewal read the indexes of migrations 0005 and 0011", async () => {
    const path = join(dir, "plans.db");
    const store = await fresh(path);
    await store.close();
    const db = new DatabaseSync(path);
    try {
      const plan = (sql: string) =>
        db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all()
          .map((row) => String(row.detail))
          .join(" / ");
      // The claim's statements, as sqlite-store.ts runs them: each reads its index in
      // order (no sort), and the types are listed by probes of the limited one.
      const free = plan(DUE_FREE);
      assert.match(free, /USING INDEX job_requests_pending_free/);
      assert.doesNotMatch(free, /TEMP B-TREE/);
      const limited = plan(DUE_LIMITED);
      assert.match(
        limited,
        /USING INDEX job_requests_pending_limited \(job_type=\? AND scheduled_at<\?\)/,
      );
      assert.doesNotMatch(limited, /TEMP B-TREE/);
      const types = plan(LIMITED_TYPES);
      assert.match(types, /USING (COVERING )?INDEX job_requests_pending_limited \(job_type>\?\)/);
      assert.doesNotMatch(types, /SCAN job_requests(?! USING)/);
      const count = plan(
        `SELECT count(*) AS n FROM job_requests
         WHERE job_type = ? AND max_concurrency IS NOT NULL AND state IN ('READY', 'STARTED', 'EXECUTING')`,
      );
      assert.match(count, /job_requests_active/);
      // A job moving through its states touches neither index outside their sets.
      const indexes = db
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job_requests'",
        )
        .all()
        .map((row) => String(row.name));
      for (const gone of ["job_requests_due", "job_requests_type_state", "job_requests_owner"]) {
        assert.ok(!indexes.includes(gone), `${gone} is dropped`);
      }
      // Lease renewal reads an index of running requests, not the whole table.
      const renew = plan(
        `UPDATE job_requests SET lease_expires_at = 1, updated_at = 1
         WHERE owner = ? AND state IN ('READY', 'STARTED', 'EXECUTING')`,
      );
      assert.match(renew, /USING (COVERING )?INDEX/);
      assert.doesNotMatch(renew, /^SCAN job_requests$/m);
    } finally {
      db.close();
    }
  });

  void it("a corrupt file is refused at open with a clear StoreError", () => {
    const path = join(dir, "corrupt.db");
    writeFileSync(path, "this is not a database, ".repeat(100));
    assert.throws(
      () => createSqliteStore({ path }),
      (error: unknown) =>
        error instanceof StoreError &&
        error.code === "COLONY_STORE_FAILURE" &&
        error.message.includes(path) &&
        /corrupt or not a SQLite database/.test(error.message),
    );
  });

  void it("an unopenable path gives a clear StoreError", () => {
    const file = join(dir, "plain-file");
    writeFileSync(file, "x");
    const path = join(file, "colony.db"); // a "folder" that is a regular file
    assert.throws(
      () => createSqliteStore({ path }),
      (error: unknown) =>
        error instanceof StoreError &&
        error.message.includes(path) &&
        /cannot open/.test(error.message),
    );
  });

  void it("a closed store says so", async () => {
    const store = await fresh();
    await store.close();
    await store.close(); // twice is fine
    await assert.rejects(store.getJobRequest(1), (error: unknown) => {
      return error instanceof StoreError && /is closed/.test(error.message);
    });
  });

  void it("a full database is reported as disk full, naming the file", () => {
    // max_page_count makes SQLite answer SQLITE_FULL exactly as a full disk would.
    const path = join(dir, "full.db");
    const db = new DatabaseSync(path);
    db.exec("CREATE TABLE t (x TEXT)");
    db.exec("PRAGMA max_page_count = 4");
    let caught: unknown;
    try {
      db.prepare("INSERT INTO t VALUES (?)").run("x".repeat(100_000));
    } catch (error) {
      caught = error;
    } finally {
      db.close();
    }
    const wrapped = sqliteFailure(caught, path, "finishing a task execution");
    assert.ok(wrapped instanceof StoreError);
    assert.equal(
      wrapped.message,
      `disk full while finishing a task execution in the store at ${path}; free space and retry`,
    );
    assert.equal(wrapped.cause, caught);
    assert.equal(wrapped.retryable, true);
    const bug = new TypeError("a bug");
    assert.equal(sqliteFailure(bug, path, "x"), bug, "non-SQLite errors pass through");
  });
});
