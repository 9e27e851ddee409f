/**
 * A store that fails for a moment (PostgreSQL restarting, a network blip) while a task
 * ends: the engine stops driving the job, says why, and drives it again once the store
 * answers; the task's real result is recorded, not a failure of colony's own making.
 * The store is a real SQLite store; the outage is its write of the task's end failing
 * (as a StoreError, as a lost connection makes it) until the test lets it through.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { StoreError } from "../src/core/errors.ts";
import { ExecutorRegistry } from "../src/core/executor.ts";
import { CronScheduler } from "../src/engine/cron-scheduler.ts";
import { Engine } from "../src/engine/engine.ts";
import { createShellExecutor } from "../src/executors/shell/shell-executor.ts";
import { openStore } from "../src/store/open-store.ts";
import type { Store } from "../src/store/store.ts";
import { tempDir } from "./support/cli.ts";

/**
 * `real`, with `methods` (of the store or of its asyncActions) failing as a lost
 * connection makes them fail while `down` is true.
 */
function failing(real: Store, methods: string[]) {
  const calls = new Map<string, number>();
  const state = {
    down: false,
    refused: (method: string) => calls.get(method) ?? 0,
    store: undefined as unknown as Store,
  };
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(t, key, receiver) {
        const value: unknown = Reflect.get(t, key, receiver);
        if (key === "asyncActions" && typeof value === "object" && value) return wrap(value);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          if (state.down && methods.includes(String(key))) {
            calls.set(String(key), state.refused(String(key)) + 1);
            return Promise.reject(new StoreError(`cannot reach PostgreSQL while ${String(key)}`));
          }
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  state.store = wrap(real);
  return state;
}

/** An engine with the real shell executor on `store`, quick to claim and to renew. */
function shellEngine(
  store: Store,
  dataDir: string,
  log: (m: string) => void,
  giveUpAfterMs?: number,
) {
  const executors = new ExecutorRegistry();
  executors.register(createShellExecutor({ killGraceMs: 1000 }));
  const engine = new Engine({
    store,
    executors,
    dataDir,
    secretKey: randomBytes(32),
    leaseMs: 3000,
    pollMs: 20,
    log,
    giveUpAfterMs,
  });
  return {
    engine,
    async close() {
      await engine.stop();
      await executors.close();
    },
  };
}

/** Waits (up to 5 s) until `done()`. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
}

void describe("a store outage while a task ends", () => {
  const dir = tempDir("colony-outage-");
  after(() => dir.remove());

  void it("records the task's own result once the store is back", async () => {
    const real = await openStore({ dataDir: dir.path });
    const failingMethods = ["finishTask", "finishTaskAndJob"];
    const outage = failing(real, failingMethods);
    const logs: string[] = [];
    const { engine, close } = shellEngine(outage.store, dir.path, (m) => logs.push(m));
    try {
      await engine.start();
      outage.down = true;
      const job = await engine.submit({
        definition: parseJobDefinition(
          "job_type: outage\ntasks:\n- task_type: work\n  script: ['echo done']\n",
        ),
      });
      const ended = () => outage.refused("finishTask") + outage.refused("finishTaskAndJob");
      await until(() => ended() > 0);
      assert.ok(ended() > 0, "the task ended while the store was down");
      failingMethods.push("claimDueJobRequests");
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(outage.refused("claimDueJobRequests") > 5, "claims went on every 20 ms");
      assert.equal(
        logs.filter((m) => m.startsWith("claiming work failed: ")).length,
        1,
        "a failure that repeats is logged once",
      );
      assert.ok(
        logs.some((m) => m.startsWith(`job ${job.id}: stopped driving it after a store error`)),
        logs.join("\n"),
      );
      outage.down = false;
      const final = await Promise.race([
        engine.waitFor(job.id),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("not driven again within 10 s")), 10_000),
        ),
      ]);
      assert.equal(final.state, "COMPLETED", final.errorMessage);
      const [task] = await real.listTaskExecutions(job.id);
      assert.equal(task?.state, "COMPLETED");
      assert.equal(task?.exitCode, 0);
      await until(() => logs.includes("claiming work works again"));
      assert.ok(logs.includes("claiming work works again"), logs.join("\n"));
    } finally {
      await close();
      await real.close();
    }
  });

  void it("with giveUpAfterMs (colony run), a store that stays down ends the wait with its error", async () => {
    const real = await openStore({ dataDir: dir.path });
    const outage = failing(real, ["finishTask", "finishTaskAndJob"]);
    const logs: string[] = [];
    const { engine, close } = shellEngine(outage.store, dir.path, (m) => logs.push(m), 1500);
    try {
      await engine.start();
      outage.down = true;
      const started = Date.now();
      const job = await engine.submit({
        definition: parseJobDefinition(
          "job_type: outage-for-good\ntasks:\n- task_type: work\n  script: ['echo done']\n",
        ),
      });
      await assert.rejects(
        Promise.race([
          engine.waitFor(job.id),
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error("still waiting after 10 s")), 10_000),
          ),
        ]),
        (e: unknown) => {
          assert.ok(e instanceof StoreError, `${String(e)}\n${logs.join("\n")}`);
          assert.equal(e.code, "COLONY_STORE_FAILURE");
          assert.match(
            e.message,
            new RegExp(
              `^job ${job.id}: the store kept failing for [\\d.]+s, so it is no longer driven here \\(cannot reach PostgreSQL while \\w+\\); it stays as recorded: .*'colony run --resume ${job.id}' finishes it$`,
            ),
          );
          return true;
        },
      );
      assert.ok(Date.now() - started >= 1500, "not before giveUpAfterMs");
      // Recorded as it was: the task is not finished, the job not final.
      const [task] = await real.listTaskExecutions(job.id);
      assert.notEqual(task?.state, "COMPLETED");
      assert.equal((await real.getJobRequest(job.id))?.state, "EXECUTING");
      // No longer driven here: the store sees no more attempts to finish it.
      const tries = outage.refused("finishTask") + outage.refused("finishTaskAndJob");
      // Each refused write stopped the runner once (it was twice, each driving it again).
      const stops = logs.filter((m) => m.startsWith(`job ${job.id}: stopped driving it`));
      assert.equal(stops.length, tries, logs.join("\n"));
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(outage.refused("finishTask") + outage.refused("finishTaskAndJob"), tries);
    } finally {
      await close();
      await real.close();
    }
  });

  void it("a task the store failed to mark started runs on and is recorded as it ends", async () => {
    const real = await openStore({ dataDir: join(dir.path, "started") });
    const outage = failing(real, ["markTaskExecuting"]);
    const { engine, close } = shellEngine(outage.store, join(dir.path, "started"), () => {});
    try {
      await engine.start();
      outage.down = true;
      const job = await engine.submit({
        definition: parseJobDefinition(
          "job_type: outage2\ntasks:\n- task_type: work\n  script: ['sleep 1', 'echo finished']\n",
        ),
      });
      await until(() => outage.refused("markTaskExecuting") > 0);
      assert.ok(outage.refused("markTaskExecuting") > 0);
      outage.down = false;
      const final = await engine.waitFor(job.id);
      assert.equal(final.state, "COMPLETED", final.errorMessage);
      const [task] = await real.listTaskExecutions(job.id);
      assert.equal(task?.exitCode, 0);
      const out = await engine.outputStream(task!.id);
      let text = "";
      for await (const chunk of out) text += String(chunk);
      assert.equal(text, "finished\n");
    } finally {
      await close();
      await real.close();
    }
  });

  void it("the cron scheduler logs an outage once, backs off, and says when it is over", async () => {
    const real = await openStore({ dataDir: join(dir.path, "cron") });
    const outage = failing(real, ["definitionVersions"]);
    const logs: string[] = [];
    const scheduler = new CronScheduler({
      store: outage.store,
      syncEveryMs: 100,
      log: (m) => logs.push(m),
    });
    try {
      await scheduler.start();
      outage.down = true;
      await new Promise((r) => setTimeout(r, 2500));
      const tries = outage.refused("definitionVersions");
      assert.ok(tries >= 2 && tries <= 6, `${tries} tries in 2.5 s (0.5 s, doubling)`);
      assert.deepEqual(logs, [
        "schedules failed: StoreError: cannot reach PostgreSQL while definitionVersions (trying again; said again only if it fails otherwise)",
      ]);
      outage.down = false;
      await until(() => logs.length >= 2);
      assert.equal(logs[1], "schedules works again");
    } finally {
      await scheduler.stop();
      await real.close();
    }
  });
});
