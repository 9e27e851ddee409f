import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { taskDefinition, type JobDefinition, type TaskDefinition } from "../core/job-definition.ts";
import type { TaskExecution } from "../core/job-request.ts";
import type { State } from "../core/states.ts";
import { DagState, planNext, type Plan } from "./dag-planner.ts";

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

/** A small seeded PRNG (mulberry32), so that a failing case can be run again. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random acyclic job: every edge goes from a task to a later one. */
function randomJob(rnd: () => number, n: number): JobDefinition {
  const pick = (from: number, max: number): string[] => {
    const out: string[] = [];
    for (let j = from; j < n && out.length < max; j++) if (rnd() < 0.3) out.push(`t${j}`);
    return out;
  };
  const tasks = Array.from({ length: n }, (_, i) => {
    const onExitCode: TaskDefinition["onExitCode"] = {};
    if (rnd() < 0.2) onExitCode["3"] = pick(i + 1, 2);
    if (rnd() < 0.1) onExitCode["4"] = (["COMPLETED", "FAILED", "EXECUTING"] as const)[i % 3]!;
    return task(`t${i}`, {
      onCompleted: pick(i + 1, 3),
      onFailed: rnd() < 0.3 ? pick(i + 1, 1) : [],
      dependsOn:
        i > 1 && rnd() < 0.25
          ? pick(Math.floor(rnd() * i), 3).filter((t) => t < `t${i}` && Number(t.slice(1)) < i)
          : [],
      onExitCode,
      allowFailure: rnd() < 0.15,
      alwaysRun: rnd() < 0.1,
      retry: rnd() < 0.2 ? 1 : 0,
      delayBetweenRetriesMs: rnd() < 0.5 ? 0 : 100,
    });
  });
  return job(...tasks);
}

function samePlan(incremental: Plan, full: Plan, where: string): void {
  assert.deepEqual(incremental.start, full.start, `start, ${where}`);
  assert.deepEqual(incremental.running, full.running, `running, ${where}`);
  assert.deepEqual(incremental.verdict, full.verdict, `verdict, ${where}`);
}

describe("DagState (the plan kept up to date)", () => {
  it("gives planNext's plan after every change, on 300 random jobs run at random", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = random(seed);
      const definition = randomJob(rnd, 2 + Math.floor(rnd() * 12));
      const state = new DagState(definition);
      const executions = new Map<string, TaskExecution>();
      let abort: "cancel" | "timeout" | undefined;
      let clock = 1000;
      for (let step = 0; step < 200; step++) {
        const where = `seed ${seed}, step ${step}`;
        const full = planNext({ definition, executions: [...executions.values()], abort });
        samePlan(state.plan(abort), full, where);
        if (step % 17 === 0) {
          // Built at once from the record (a runner after a restart), in any order.
          const shuffled = [...executions.values()].sort(() => rnd() - 0.5);
          samePlan(new DagState(definition, shuffled).plan(abort), full, `${where}, rebuilt`);
        }
        if (full.verdict && full.start.length === 0) break;
        const change = (e: TaskExecution) => {
          executions.set(e.id, e);
          state.update(e);
        };
        const live = [...executions.values()].filter((e) => !isDone(e.state));
        if (full.start.length > 0 && (live.length === 0 || rnd() < 0.5)) {
          const s = full.start[Math.floor(rnd() * full.start.length)]!;
          change(exec(s.taskType, "READY", { attempt: s.attempt, endedAt: undefined }));
        } else if (live.length > 0) {
          const e = live[Math.floor(rnd() * live.length)]!;
          clock += Math.floor(rnd() * 50);
          const r = rnd();
          const exitCode = [0, 1, 3, 4][Math.floor(rnd() * 4)]!;
          if (e.state === "READY" && r < 0.3) change({ ...e, state: "EXECUTING" });
          else if (r < 0.9) {
            change({
              ...e,
              state: exitCode === 0 || exitCode === 4 ? "COMPLETED" : "FAILED",
              exitCode,
              errorMessage: exitCode === 1 ? `failed ${e.taskType}` : undefined,
              endedAt: new Date(clock),
            });
          } else change({ ...e, state: "CANCELLED", endedAt: new Date(clock) });
        } else break;
        if (!abort && rnd() < 0.02) abort = rnd() < 0.5 ? "cancel" : "timeout";
      }
    }
  });

  it("rebuilds when a finished task's outcome changes after all (a later attempt recorded)", () => {
    const d = job(task("a", { onCompleted: ["b"] }), task("b"), task("c", { dependsOn: ["a"] }));
    const first = exec("a", "COMPLETED");
    const state = new DagState(d, [first]);
    assert.deepEqual(
      state.plan().start.map((s) => s.taskType),
      ["b", "c"],
    );
    const again = exec("a", "EXECUTING", { attempt: 1 });
    state.update(again);
    samePlan(state.plan(), planNext({ definition: d, executions: [first, again] }), "after");
    assert.deepEqual(state.plan().running, ["a"]);
    assert.deepEqual(state.plan().start, []);
  });

  it("ignores executions of a task the definition does not have, as planNext does", () => {
    const d = job(task("a"));
    const state = new DagState(d);
    const stray = exec("gone", "EXECUTING");
    state.update(stray);
    samePlan(state.plan(), planNext({ definition: d, executions: [stray] }), "stray");
  });
});

function isDone(s: State): boolean {
  return s === "COMPLETED" || s === "FAILED" || s === "CANCELLED";
}
