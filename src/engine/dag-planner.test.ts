import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { taskDefinition, type JobDefinition, type TaskDefinition } from "../core/job-definition.ts";
import type { TaskExecution } from "../core/job-request.ts";
import type { State } from "../core/states.ts";
import { planNext } from "./dag-planner.ts";

const task = taskDefinition;

function job(...tasks: TaskDefinition[]): JobDefinition {
  return { jobType: "t", retry: 0, delayBetweenRetriesMs: 0, variables: {}, tasks };
}

let seq = 0;
function exec(taskType: string, state: State, extra: Partial<TaskExecution> = {}): TaskExecution {
  return {
    id: `e${seq++}`,
    jobRequestId: 1,
    taskType,
    method: "SHELL",
    jobAttempt: 0,
    attempt: 0,
    state,
    context: {},
    createdAt: new Date(0),
    endedAt: new Date(1000),
    ...extra,
  };
}

const starts = (p: ReturnType<typeof planNext>) => p.start.map((s) => s.taskType).sort();

describe("dag planner", () => {
  const dag = job(
    task("a", { onCompleted: ["b", "c"], onFailed: ["fix"] }),
    task("b"),
    task("c"),
    task("join", { dependsOn: ["b", "c"] }),
    task("fix"),
    task("cleanup", { alwaysRun: true }),
  );

  it("starts only the entry task first", () => {
    assert.deepEqual(starts(planNext({ definition: dag, executions: [] })), ["a"]);
  });

  it("fans out on_completed lists in parallel", () => {
    const p = planNext({ definition: dag, executions: [exec("a", "COMPLETED", { exitCode: 0 })] });
    assert.deepEqual(starts(p), ["b", "c"]);
  });

  it("runs a depends_on join only when every dependency completed", () => {
    const one = planNext({
      definition: dag,
      executions: [exec("a", "COMPLETED"), exec("b", "COMPLETED"), exec("c", "EXECUTING")],
    });
    assert.deepEqual(starts(one), []);
    assert.deepEqual(one.running, ["c"]);
    const both = planNext({
      definition: dag,
      executions: [exec("a", "COMPLETED"), exec("b", "COMPLETED"), exec("c", "COMPLETED")],
    });
    assert.deepEqual(starts(both), ["join"]);
  });

  it("runs always_run at the end and completes", () => {
    const execs = ["a", "b", "c", "join"].map((t) => exec(t, "COMPLETED"));
    const p = planNext({ definition: dag, executions: execs });
    assert.deepEqual(starts(p), ["cleanup"]);
    const done = planNext({
      definition: dag,
      executions: [...execs, exec("cleanup", "COMPLETED")],
    });
    assert.equal(done.verdict?.state, "COMPLETED");
  });

  it("routes a failure to on_failed, which keeps the job completing", () => {
    const p = planNext({ definition: dag, executions: [exec("a", "FAILED", { exitCode: 1 })] });
    assert.deepEqual(starts(p), ["fix"]);
    const done = planNext({
      definition: dag,
      executions: [
        exec("a", "FAILED", { exitCode: 1 }),
        exec("fix", "COMPLETED"),
        exec("cleanup", "COMPLETED"),
      ],
    });
    assert.equal(done.verdict?.state, "COMPLETED");
  });

  it("fails the job on an unrouted failure, skipping the join but running always_run", () => {
    const execs = [
      exec("a", "COMPLETED"),
      exec("b", "FAILED", { exitCode: 2 }),
      exec("c", "COMPLETED"),
    ];
    const p = planNext({ definition: dag, executions: execs });
    assert.deepEqual(starts(p), ["cleanup"]);
    const done = planNext({
      definition: dag,
      executions: [...execs, exec("cleanup", "COMPLETED")],
    });
    assert.equal(done.verdict?.state, "FAILED");
    assert.match(done.verdict?.reason ?? "", /task b failed/);
  });

  it("waits for running tasks before starting always_run after a failure", () => {
    const p = planNext({
      definition: dag,
      executions: [exec("a", "COMPLETED"), exec("b", "FAILED"), exec("c", "EXECUTING")],
    });
    assert.deepEqual(starts(p), []);
    assert.equal(p.verdict, undefined);
  });

  it("treats allow_failure as completed and lets joins run", () => {
    const d = job(
      task("a", { onCompleted: ["b", "c"] }),
      task("b", { allowFailure: true }),
      task("c"),
      task("j", { dependsOn: ["b", "c"] }),
    );
    const p = planNext({
      definition: d,
      executions: [
        exec("a", "COMPLETED"),
        exec("b", "FAILED", { exitCode: 1 }),
        exec("c", "COMPLETED"),
      ],
    });
    assert.deepEqual(starts(p), ["j"]);
  });

  it("retries with exponential back-off before routing the failure", () => {
    const d = job(task("a", { retry: 2, delayBetweenRetriesMs: 100, onFailed: ["f"] }), task("f"));
    const first = planNext({
      definition: d,
      executions: [exec("a", "FAILED", { endedAt: new Date(1000) })],
    });
    assert.deepEqual(first.start, [{ taskType: "a", attempt: 1, notBefore: 1100 }]);
    const second = planNext({
      definition: d,
      executions: [
        exec("a", "FAILED", { endedAt: new Date(1000) }),
        exec("a", "FAILED", { attempt: 1, endedAt: new Date(2000) }),
      ],
    });
    assert.deepEqual(second.start, [{ taskType: "a", attempt: 2, notBefore: 2200 }]);
    const exhausted = planNext({
      definition: d,
      executions: [
        exec("a", "FAILED"),
        exec("a", "FAILED", { attempt: 1 }),
        exec("a", "FAILED", { attempt: 2 }),
      ],
    });
    assert.deepEqual(starts(exhausted), ["f"]);
  });

  it("follows on_exit_code before on_completed/on_failed, including actions", () => {
    const d = job(
      task("t", {
        onExitCode: { "0": ["deploy"], "2": "FAILED", "3": "COMPLETED", "4": "EXECUTING" },
        onCompleted: ["other"],
        onFailed: ["other"],
        retry: 3,
      }),
      task("deploy"),
      task("other"),
    );
    assert.deepEqual(
      starts(planNext({ definition: d, executions: [exec("t", "COMPLETED", { exitCode: 0 })] })),
      ["deploy"],
    );
    const failed = planNext({ definition: d, executions: [exec("t", "FAILED", { exitCode: 2 })] });
    assert.equal(failed.verdict?.state, "FAILED", "a FAILED action neither retries nor routes");
    assert.deepEqual(
      starts(planNext({ definition: d, executions: [exec("t", "COMPLETED", { exitCode: 3 })] })),
      ["other"],
    );
    const poll = planNext({
      definition: d,
      executions: [exec("t", "COMPLETED", { exitCode: 4, endedAt: new Date(5000) })],
    });
    assert.deepEqual(poll.start, [{ taskType: "t", attempt: 1, notBefore: 6000 }]);
  });

  it("cancels: starts nothing new but always_run, then ends CANCELLED", () => {
    const p = planNext({
      definition: dag,
      executions: [exec("a", "COMPLETED"), exec("b", "CANCELLED"), exec("c", "CANCELLED")],
      abort: "cancel",
    });
    assert.deepEqual(starts(p), ["cleanup"]);
    const done = planNext({
      definition: dag,
      executions: [
        exec("a", "COMPLETED"),
        exec("b", "CANCELLED"),
        exec("c", "CANCELLED"),
        exec("cleanup", "COMPLETED"),
      ],
      abort: "cancel",
    });
    assert.equal(done.verdict?.state, "CANCELLED");
  });

  it("a job timeout ends FAILED with COLONY_JOB_TIMEOUT", () => {
    const d = job(task("a"));
    const done = planNext({
      definition: d,
      executions: [exec("a", "CANCELLED")],
      abort: "timeout",
    });
    assert.deepEqual(done.verdict, {
      state: "FAILED",
      errorCode: "COLONY_JOB_TIMEOUT",
      reason: "the job exceeded its timeout",
    });
  });

  it("does not run a join whose dependency was never reached", () => {
    const d = job(
      task("a", { onExitCode: { "0": ["b"] } }),
      task("b"),
      task("c"),
      task("j", { dependsOn: ["b", "c"] }),
    );
    const done = planNext({
      definition: d,
      executions: [exec("a", "COMPLETED", { exitCode: 0 }), exec("b", "COMPLETED")],
    });
    assert.equal(done.verdict?.state, "COMPLETED");
    assert.deepEqual(starts(done), []);
  });

  it("is idempotent: planning twice on the same record gives the same plan", () => {
    const execs = [exec("a", "COMPLETED")];
    assert.deepEqual(
      planNext({ definition: dag, executions: execs }),
      planNext({ definition: dag, executions: execs }),
    );
  });
});
