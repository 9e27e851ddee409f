/**
 * Conformance: task executions (idempotent creation, creation order, transitions,
 * results and context).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ConflictError,
  IllegalTransitionError,
  NotFoundError,
  ValidationError,
} from "../core/errors.ts";
import { isUnitId } from "../core/ids.ts";
import type { TaskExecution } from "../core/job-request.ts";
import { isFinal, sourcesOf, type State } from "../core/states.ts";
import type { Store } from "./store.ts";
import {
  REACHABLE_TASK_STATES,
  TRICKY_PARAMS,
  executionIn,
  requestIn,
  type CurrentStore,
} from "./store-conformance-fixtures.ts";

interface TaskOperation {
  name: string;
  run: (store: Store, id: string) => Promise<unknown>;
  /** The state it moves into (checked against the table), or undefined for a merge. */
  to?: State;
}

const TASK_OPERATIONS: TaskOperation[] = [
  { name: "markTaskStarted", run: (s, id) => s.markTaskStarted(id, { pid: 1 }), to: "STARTED" },
  { name: "markTaskExecuting", run: (s, id) => s.markTaskExecuting(id), to: "EXECUTING" },
  ...(["COMPLETED", "FAILED", "CANCELLED"] as const).map((state) => ({
    name: `finishTask(${state})`,
    run: (s: Store, id: string) => s.finishTask(id, { state, exitCode: 3 }),
    to: state,
  })),
];

export function taskConformance(store: CurrentStore): void {
  void describe("task executions", () => {
    void it("creates READY executions with unit ids, idempotently on their key", async () => {
      const request = await requestIn(store(), "EXECUTING");
      const key = {
        jobRequestId: request.id,
        taskType: "build",
        method: "SHELL" as const,
        jobAttempt: 0,
        attempt: 0,
      };
      const first = await store().createTaskExecution(key);
      assert.equal(first.created, true);
      const e = first.execution;
      assert.ok(isUnitId(e.id), e.id);
      assert.equal(e.state, "READY");
      assert.deepEqual(e.context, {});
      assert.equal(e.jobRequestId, request.id);
      assert.equal(e.method, "SHELL");
      assert.ok(Math.abs(e.createdAt.getTime() - Date.now()) < 5000);
      for (const k of [
        "exitCode",
        "errorCode",
        "errorMessage",
        "handle",
        "antId",
        "server",
        "startedAt",
        "endedAt",
      ]) {
        assert.ok(!(k in e), `${k} absent on a new execution`);
      }
      const again = await store().createTaskExecution({ ...key, method: "HTTP_GET" });
      assert.deepEqual(again, { execution: e, created: false });
      await store().markTaskStarted(e.id, {});
      const afterStart = await store().createTaskExecution(key);
      assert.equal(afterStart.created, false);
      assert.equal(afterStart.execution.state, "STARTED", "the existing row, as it is now");

      for (const variant of [{ attempt: 1 }, { jobAttempt: 1 }, { taskType: "test" }]) {
        const other = await store().createTaskExecution({ ...key, ...variant });
        assert.equal(other.created, true, JSON.stringify(variant));
        assert.notEqual(other.execution.id, e.id);
      }
      assert.deepEqual(await store().getTaskExecution(e.id), afterStart.execution);
      assert.equal(await store().getTaskExecution("ZZZZZZZZ"), undefined);

      const placed = await store().createTaskExecution({ ...key, attempt: 2, server: "dir-a" });
      assert.equal(placed.execution.server, "dir-a", "the data dir that holds its output");
      assert.deepEqual(await store().getTaskExecution(placed.execution.id), placed.execution);
    });

    void it("uses a caller-chosen id, refuses a taken or malformed one, and unknown requests", async () => {
      const request = await requestIn(store(), "EXECUTING");
      const base = {
        jobRequestId: request.id,
        method: "SHELL" as const,
        jobAttempt: 0,
        attempt: 0,
      };
      const chosen = await store().createTaskExecution({ ...base, taskType: "a", id: "Unit0001" });
      assert.equal(chosen.execution.id, "Unit0001");
      await assert.rejects(
        store().createTaskExecution({ ...base, taskType: "b", id: "Unit0001" }),
        ConflictError,
      );
      assert.deepEqual(
        await store().createTaskExecution({ ...base, taskType: "a", id: "Unit0001" }),
        { execution: chosen.execution, created: false },
      );
      await assert.rejects(
        store().createTaskExecution({ ...base, taskType: "c", id: "../../etc" }),
        ValidationError,
      );
      await assert.rejects(
        store().createTaskExecution({ ...base, jobRequestId: 777_777, taskType: "a" }),
        NotFoundError,
      );
      assert.equal(
        (await store().listTaskExecutions(request.id)).length,
        1,
        "nothing else was written",
      );
    });

    void it("lists every execution of a request in creation order", async () => {
      const request = await requestIn(store(), "EXECUTING");
      const other = await requestIn(store(), "EXECUTING");
      const made: TaskExecution[] = [];
      for (let i = 0; i < 30; i++) {
        const { execution } = await store().createTaskExecution({
          jobRequestId: request.id,
          taskType: `t${(i * 7) % 30}`,
          method: "SHELL",
          jobAttempt: i % 2,
          attempt: 0,
        });
        made.push(execution);
        if (i % 10 === 0) {
          await store().createTaskExecution({
            jobRequestId: other.id,
            taskType: `o${i}`,
            method: "SHELL",
            jobAttempt: 0,
            attempt: 0,
          });
        }
      }
      assert.deepEqual(
        (await store().listTaskExecutions(request.id)).map((e) => e.id),
        made.map((e) => e.id),
      );
      assert.equal((await store().listTaskExecutions(other.id)).length, 3);
      assert.deepEqual(await store().listTaskExecutions(123_456), []);
    });

    for (const op of TASK_OPERATIONS) {
      void it(`${op.name}: follows the transition table from every reachable state`, async () => {
        const request = await requestIn(store(), "EXECUTING");
        for (const from of REACHABLE_TASK_STATES) {
          const execution = await executionIn(store(), request.id, from);
          assert.equal(execution.state, from);
          if (sourcesOf(op.to!).includes(from)) {
            const result = (await op.run(store(), execution.id)) as TaskExecution;
            assert.equal(result.state, op.to, `${op.name} from ${from}`);
            assert.deepEqual(await store().getTaskExecution(execution.id), result);
          } else {
            await assert.rejects(op.run(store(), execution.id), (error: unknown) => {
              assert.ok(
                error instanceof IllegalTransitionError,
                `${op.name} from ${from}: ${String(error)}`,
              );
              assert.equal(error.details?.from, from);
              assert.equal(error.details?.to, op.to);
              return true;
            });
            assert.deepEqual(
              await store().getTaskExecution(execution.id),
              execution,
              "nothing changed",
            );
          }
        }
        await assert.rejects(op.run(store(), "NoSuchId"), NotFoundError);
      });
    }

    void it("records handle, ant, start and end times, exit code, error and context", async () => {
      const request = await requestIn(store(), "EXECUTING");
      const { execution } = await store().createTaskExecution({
        jobRequestId: request.id,
        taskType: "build",
        method: "DOCKER",
        jobAttempt: 0,
        attempt: 0,
      });
      const handle = {
        containerId: "abc123",
        ports: [80, 443],
        labels: { "colony/unit": execution.id, note: "ü 🐜" },
      };
      const started = await store().markTaskStarted(execution.id, handle, "ant-7");
      assert.deepEqual(started.handle, handle);
      assert.equal(started.antId, "ant-7");
      assert.ok(started.startedAt instanceof Date);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const executing = await store().markTaskExecuting(execution.id);
      assert.deepEqual(executing.startedAt, started.startedAt, "startedAt is set once");
      await store().mergeTaskContext(execution.id, { out: "one", keep: 1 });
      const failed = await store().finishTask(execution.id, {
        state: "FAILED",
        exitCode: 2,
        errorCode: "COLONY_TASK_EXIT",
        errorMessage: "exit status 2 · ✗",
        context: { out: "two", params: TRICKY_PARAMS },
      });
      assert.equal(failed.exitCode, 2);
      assert.equal(failed.errorCode, "COLONY_TASK_EXIT");
      assert.equal(failed.errorMessage, "exit status 2 · ✗");
      assert.ok(failed.endedAt instanceof Date);
      assert.ok(failed.endedAt.getTime() >= failed.startedAt!.getTime());
      assert.deepEqual(failed.context, { out: "two", keep: 1, params: TRICKY_PARAMS });
      assert.deepEqual(await store().getTaskExecution(execution.id), failed);
      await assert.rejects(
        store().finishTask(execution.id, { state: "EXECUTING" as never }),
        ValidationError,
      );
    });

    void it("finishes a job's last task and the job in one operation, both or neither", async () => {
      const request = await requestIn(store(), "EXECUTING");
      const execution = await executionIn(store(), request.id, "EXECUTING");
      await store().mergeTaskContext(execution.id, { kept: 1 });
      const both = await store().finishTaskAndJob(
        execution.id,
        { state: "FAILED", exitCode: 3, errorMessage: "exited with code 3", context: { out: "x" } },
        request.id,
        { state: "FAILED", errorCode: "COLONY_TASK_FAILED", errorMessage: "task failed" },
      );
      assert.equal(both.execution.state, "FAILED");
      assert.equal(both.execution.exitCode, 3);
      assert.deepEqual(both.execution.context, { kept: 1, out: "x" });
      assert.equal(both.job.state, "FAILED");
      assert.equal(both.job.errorCode, "COLONY_TASK_FAILED");
      assert.ok(both.job.endedAt instanceof Date);
      assert.deepEqual(await store().getTaskExecution(execution.id), both.execution);
      assert.deepEqual(await store().getJobRequest(request.id), both.job);

      // The job cannot end (it ended already): the task's result is not written either.
      const other = await executionIn(store(), request.id, "EXECUTING");
      await assert.rejects(
        store().finishTaskAndJob(other.id, { state: "COMPLETED", exitCode: 0 }, request.id, {
          state: "COMPLETED",
        }),
        IllegalTransitionError,
      );
      assert.equal((await store().getTaskExecution(other.id))?.state, "EXECUTING");
      // The task cannot end: the job keeps its state.
      const live = await requestIn(store(), "EXECUTING");
      const done = await executionIn(store(), live.id, "COMPLETED");
      await assert.rejects(
        store().finishTaskAndJob(done.id, { state: "FAILED" }, live.id, { state: "FAILED" }),
        IllegalTransitionError,
      );
      assert.equal((await store().getJobRequest(live.id))?.state, "EXECUTING");
    });

    void it("merges context shallowly into unfinished executions only", async () => {
      const request = await requestIn(store(), "EXECUTING");
      const execution = await executionIn(store(), request.id, "EXECUTING");
      await store().mergeTaskContext(execution.id, { a: 1, nested: { x: 1, y: 2 } });
      await store().mergeTaskContext(execution.id, { b: "日本", nested: { x: 3 } });
      assert.deepEqual((await store().getTaskExecution(execution.id))?.context, {
        a: 1,
        b: "日本",
        nested: { x: 3 },
      });
      const kept = await store().finishTask(execution.id, { state: "COMPLETED", exitCode: 0 });
      assert.deepEqual(
        kept.context,
        { a: 1, b: "日本", nested: { x: 3 } },
        "a finish without context keeps it",
      );
      await assert.rejects(store().mergeTaskContext(execution.id, { late: true }), ConflictError);
      assert.deepEqual((await store().getTaskExecution(execution.id))?.context, kept.context);
      await assert.rejects(store().mergeTaskContext("NoSuchId", {}), NotFoundError);
      for (const from of REACHABLE_TASK_STATES.filter((s) => !isFinal(s))) {
        const e = await executionIn(store(), request.id, from);
        await store().mergeTaskContext(e.id, { from });
        assert.deepEqual((await store().getTaskExecution(e.id))?.context, { from });
      }
    });
  });
}
