/**
 * Conformance: process jobs (SPEC section 8): ids from 0 in insert order, the two
 * guarded transitions (created -> started, started -> stopped), and that of several
 * concurrent moves exactly one wins.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IllegalTransitionError, NotFoundError, ValidationError } from "../core/errors.ts";
import { newUnitId } from "../core/ids.ts";
import type { NewProcessJob } from "../core/process-job.ts";
import type { CurrentStore } from "./store-conformance-fixtures.ts";

function newJob(command: string, extra: Partial<NewProcessJob> = {}): NewProcessJob {
  return { command, timeoutMs: 30_000, unitId: newUnitId(), nodeId: "node-a", ...extra };
}

export function processJobConformance(store: CurrentStore): void {
  void describe("process jobs", () => {
    void it("creates `created` jobs with ids 0, 1, 2... and round-trips every field", async () => {
      const before = Date.now();
      const a = await store().createProcessJob(
        newJob("ls -lah 'ü' \"$HOME\"", { createdBy: "writer-token", timeoutMs: 1500 }),
      );
      const b = await store().createProcessJob(newJob("sleep 60"));
      assert.equal(a.id, 0);
      assert.equal(b.id, 1);
      assert.equal(a.command, "ls -lah 'ü' \"$HOME\"");
      assert.equal(a.status, "created");
      assert.equal(a.reasonForExit, "");
      assert.equal(a.timeoutMs, 1500);
      assert.equal(a.nodeId, "node-a");
      assert.equal(a.createdBy, "writer-token");
      assert.equal(b.createdBy, undefined);
      assert.ok(a.createdAt.getTime() >= before - 1000 && a.createdAt.getTime() <= Date.now());
      assert.equal(a.startedAt, undefined);
      assert.equal(a.handle, undefined);
      assert.deepEqual(await store().getProcessJob(a.id), a);
      assert.equal(await store().getProcessJob(99), undefined);
      assert.equal(await store().getProcessJob(-1), undefined);
      assert.equal(await store().getProcessJob(Number.NaN), undefined);
    });

    void it("starts a created job once on a node, records its handle, stops it once with a reason", async () => {
      const job = await store().createProcessJob(newJob("sleep 20"));
      // The node that starts it runs it, whichever node created it.
      const started = await store().startProcessJob(job.id, "node-b");
      assert.equal(started.status, "started");
      assert.equal(started.nodeId, "node-b");
      assert.ok(started.startedAt instanceof Date);
      await assert.rejects(store().startProcessJob(job.id, "node-a"), IllegalTransitionError);

      const handle = { pid: 4242, exitPath: "/x/exit", outPath: "/x/stdout", nested: { a: [1] } };
      await store().setProcessJobHandle(job.id, handle);
      assert.deepEqual((await store().getProcessJob(job.id))?.handle, handle);

      const stopped = await store().stopProcessJob(job.id, {
        reasonForExit: "process finished with error: exit status 3",
        exitCode: 3,
      });
      assert.equal(stopped.status, "stopped");
      assert.equal(stopped.reasonForExit, "process finished with error: exit status 3");
      assert.equal(stopped.exitCode, 3);
      assert.ok(stopped.endedAt instanceof Date);
      assert.deepEqual(stopped.handle, handle);
      await assert.rejects(
        store().stopProcessJob(job.id, { reasonForExit: "API" }),
        IllegalTransitionError,
      );
      await assert.rejects(store().startProcessJob(job.id, "node-a"), IllegalTransitionError);
      // A handle arriving after the stop changes nothing.
      await store().setProcessJobHandle(job.id, { pid: 1 });
      assert.deepEqual(await store().getProcessJob(job.id), stopped);
    });

    void it("refuses to stop a created job, an unknown id, and an empty reason", async () => {
      const job = await store().createProcessJob(newJob("true"));
      await assert.rejects(
        store().stopProcessJob(job.id, { reasonForExit: "API" }),
        (error: unknown) =>
          error instanceof IllegalTransitionError &&
          /created/.test(error.message) &&
          /stopped/.test(error.message),
      );
      await assert.rejects(store().startProcessJob(777, "node-a"), NotFoundError);
      await assert.rejects(store().stopProcessJob(777, { reasonForExit: "API" }), NotFoundError);
      await store().startProcessJob(job.id, "node-a");
      await assert.rejects(store().stopProcessJob(job.id, { reasonForExit: "" }), ValidationError);
      assert.equal((await store().getProcessJob(job.id))?.status, "started");
    });

    void it("lets exactly one of several concurrent starts and stops win", async () => {
      const job = await store().createProcessJob(newJob("sleep 1"));
      const starts = await Promise.allSettled(
        Array.from({ length: 8 }, () => store().startProcessJob(job.id, "node-a")),
      );
      assert.equal(starts.filter((r) => r.status === "fulfilled").length, 1);
      const reasons = ["API", "timeout", "Service Shutdown", "process finished"];
      const stops = await Promise.allSettled(
        reasons.map((reasonForExit) => store().stopProcessJob(job.id, { reasonForExit })),
      );
      const won = stops.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      assert.equal(won.length, 1);
      assert.equal((await store().getProcessJob(job.id))?.reasonForExit, won[0]?.reasonForExit);
    });

    void it("lists one node's jobs in one status, oldest first", async () => {
      const a = await store().createProcessJob(newJob("a"));
      const b = await store().createProcessJob(newJob("b", { nodeId: "node-b" }));
      const c = await store().createProcessJob(newJob("c"));
      const d = await store().createProcessJob(newJob("d"));
      for (const j of [a, b, c, d]) await store().startProcessJob(j.id, j.nodeId);
      await store().stopProcessJob(c.id, { reasonForExit: "API" });
      const ids = async (nodeId: string, status: "created" | "started" | "stopped") =>
        (await store().listProcessJobs({ nodeId, status })).map((j) => j.id);
      assert.deepEqual(await ids("node-a", "started"), [a.id, d.id]);
      assert.deepEqual(await ids("node-b", "started"), [b.id]);
      assert.deepEqual(await ids("node-a", "stopped"), [c.id]);
      assert.deepEqual(await ids("node-c", "started"), []);
    });
  });
}
