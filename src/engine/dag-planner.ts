/**
 * The DAG planner: a pure function from a job definition and the task executions
 * recorded so far to what happens next (tasks to start, or the job's verdict).
 *
 * Because it only reads recorded state, the engine can re-plan at any time — after
 * every task, after a crash, on another server — and get the same answer; together
 * with the store's idempotent createTaskExecution this is what makes resuming safe.
 *
 * Semantics (SPEC section 2, documented in docs/jobs.md):
 * - The first task is the entry point. A finished task picks its successors by outcome:
 *   `on_exit_code` first when it names the exit code, else `on_completed` / `on_failed`.
 * - `depends_on: [a, b]` runs a task once every listed task completed (or failed with
 *   allow_failure); it is a successor of each of them.
 * - A failed task retries (task `retry`, exponential back-off from
 *   `delay_between_retries`) unless `on_exit_code` names its exit code.
 * - An unrouted failure makes the job fail: running tasks finish, nothing new starts
 *   except `always_run` tasks, which each run exactly once (when reached, or at the end).
 * - Cancel and job timeout behave like a failure that also stops running tasks.
 */
import type { JobDefinition, TaskDefinition } from "../core/job-definition.ts";
import type { TaskExecution } from "../core/job-request.ts";
import { isFinal } from "../core/states.ts";

export type Outcome =
  | { kind: "running" }
  | { kind: "completed"; next: string[] }
  | { kind: "routed"; next: string[] }
  | { kind: "failed"; reason: string }
  | { kind: "retry"; notBefore: number }
  | { kind: "poll"; notBefore: number }
  | { kind: "cancelled" };

export interface PlannedStart {
  taskType: string;
  /** The execution attempt number to create (0 first, then retries and polls). */
  attempt: number;
  /** Epoch ms before which it must not start (retry back-off, polling). */
  notBefore?: number;
}

export interface Plan {
  start: PlannedStart[];
  /** Set when nothing runs and nothing more will: the job's verdict. */
  verdict?: { state: "COMPLETED" | "FAILED" | "CANCELLED"; errorCode?: string; reason?: string };
  /** Task types still running. */
  running: string[];
}

export interface PlanInput {
  definition: JobDefinition;
  /** Executions of the current job attempt, any order. */
  executions: readonly TaskExecution[];
  /** Stop starting normal tasks: a user cancel or the job's timeout. */
  abort?: "cancel" | "timeout";
}

const MAX_BACKOFF_MS = 10 * 60_000;
const DEFAULT_POLL_MS = 1000;

/** Back-off before retry number `n` (1-based): delay * 2^(n-1), capped. */
export function retryDelay(task: TaskDefinition, n: number): number {
  const base = task.delayBetweenRetriesMs;
  if (base <= 0) return 0;
  return Math.min(base * 2 ** Math.max(0, n - 1), MAX_BACKOFF_MS);
}

/** How a task's exit code is routed by `on_exit_code`, if at all. */
export function exitRoute(task: TaskDefinition, exitCode: number | undefined) {
  if (exitCode === undefined) return undefined;
  return task.onExitCode[String(exitCode)];
}

/**
 * The outcome of one task given all its executions (sorted by attempt). Only the last
 * one decides; earlier ones count the failures already spent on retries.
 */
export function outcomeOf(task: TaskDefinition, history: readonly TaskExecution[]): Outcome {
  const last = history[history.length - 1];
  if (!last || !isFinal(last.state)) return { kind: "running" };
  if (last.state === "CANCELLED") return { kind: "cancelled" };
  const ended = last.endedAt?.getTime() ?? Date.now();
  const route = exitRoute(task, last.exitCode);
  if (route !== undefined) {
    if (Array.isArray(route)) return { kind: "routed", next: route };
    if (route === "COMPLETED") return { kind: "completed", next: task.onCompleted };
    if (route === "FAILED") {
      return { kind: "failed", reason: `exit code ${last.exitCode} is mapped to FAILED` };
    }
    const poll = task.delayBetweenRetriesMs > 0 ? task.delayBetweenRetriesMs : DEFAULT_POLL_MS;
    return { kind: "poll", notBefore: ended + poll };
  }
  if (last.state === "COMPLETED") return { kind: "completed", next: task.onCompleted };
  // FAILED without an exit-code route: retries first, then on_failed, then allow_failure.
  const failures = history.filter(
    (e) => e.state === "FAILED" && exitRoute(task, e.exitCode) === undefined,
  ).length;
  if (failures <= task.retry)
    return { kind: "retry", notBefore: ended + retryDelay(task, failures) };
  if (task.onFailed.length > 0) return { kind: "routed", next: task.onFailed };
  if (task.allowFailure) return { kind: "completed", next: task.onCompleted };
  const why =
    last.errorMessage ?? (last.exitCode !== undefined ? `exit code ${last.exitCode}` : "failed");
  return { kind: "failed", reason: `task ${task.taskType} failed: ${why}` };
}

const byAttempt = (a: TaskExecution, b: TaskExecution) => a.attempt - b.attempt;
const NO_HISTORY: readonly TaskExecution[] = Object.freeze([]);

function groupByTask(executions: readonly TaskExecution[]): Map<string, TaskExecution[]> {
  const byTask = new Map<string, TaskExecution[]>();
  for (const e of executions) {
    const list = byTask.get(e.taskType);
    if (list) list.push(e);
    else byTask.set(e.taskType, [e]);
  }
  for (const list of byTask.values()) if (list.length > 1) list.sort(byAttempt);
  return byTask;
}

export function planNext(input: PlanInput): Plan {
  const { definition, abort } = input;
  const history = groupByTask(input.executions);
  const outcomes = new Map<string, Outcome>();
  for (const task of definition.tasks) {
    const h = history.get(task.taskType);
    if (h && h.length > 0) outcomes.set(task.taskType, outcomeOf(task, h));
  }

  // Which tasks have been reached by an edge from a finished task.
  const reached = new Set<string>();
  const entry = definition.tasks[0];
  if (entry) reached.add(entry.taskType);
  let failure: string | undefined;
  for (const outcome of outcomes.values()) {
    if (outcome.kind === "completed" || outcome.kind === "routed") {
      for (const next of outcome.next) reached.add(next);
    } else if (outcome.kind === "failed" && failure === undefined) {
      failure = outcome.reason;
    }
  }
  const satisfied = (dep: string) => {
    const o = outcomes.get(dep);
    if (!o) return false;
    const last = history.get(dep)?.at(-1);
    return o.kind === "completed" || (o.kind === "routed" && last?.state === "COMPLETED");
  };
  for (const task of definition.tasks) {
    if (task.dependsOn.length > 0 && task.dependsOn.every(satisfied)) reached.add(task.taskType);
  }

  const running: string[] = [];
  const start: PlannedStart[] = [];
  const stopping = abort !== undefined || failure !== undefined;
  let pending = false;
  for (const task of definition.tasks) {
    const h = history.get(task.taskType) ?? NO_HISTORY;
    const outcome = outcomes.get(task.taskType);
    const nextAttempt = (h.at(-1)?.attempt ?? -1) + 1;
    if (outcome?.kind === "running") {
      running.push(task.taskType);
      continue;
    }
    if (outcome?.kind === "retry" || outcome?.kind === "poll") {
      // A retry of an always_run task still happens when stopping: it must run once, fully.
      if (stopping && !task.alwaysRun) continue;
      if (abort !== undefined) continue;
      start.push({ taskType: task.taskType, attempt: nextAttempt, notBefore: outcome.notBefore });
      pending = true;
      continue;
    }
    if (outcome !== undefined) continue; // finished for good
    const depsOk = task.dependsOn.length === 0 || task.dependsOn.every(satisfied);
    if (!stopping && reached.has(task.taskType) && depsOk) {
      start.push({ taskType: task.taskType, attempt: 0 });
    }
  }

  // always_run tasks never reached run at the end, once nothing else is running or due.
  if (running.length === 0 && !pending && start.length === 0) {
    for (const task of definition.tasks) {
      if (task.alwaysRun && !history.has(task.taskType)) {
        start.push({ taskType: task.taskType, attempt: 0 });
      }
    }
  }

  if (running.length > 0 || start.length > 0) return { start, running };
  if (abort === "cancel")
    return { start, running, verdict: { state: "CANCELLED", reason: "cancelled" } };
  if (abort === "timeout") {
    return {
      start,
      running,
      verdict: {
        state: "FAILED",
        errorCode: "COLONY_JOB_TIMEOUT",
        reason: "the job exceeded its timeout",
      },
    };
  }
  // A cancelled task (e.g. by a server stop) without a cancel of the job fails it.
  for (const outcome of outcomes.values()) {
    if (outcome.kind === "cancelled" && failure === undefined) failure = "a task was cancelled";
  }
  if (failure !== undefined) {
    return {
      start,
      running,
      verdict: { state: "FAILED", errorCode: "COLONY_TASK_FAILED", reason: failure },
    };
  }
  return { start, running, verdict: { state: "COMPLETED" } };
}

/**
 * planNext kept up to date instead of computed afresh: the runner tells it of each
 * execution created or changed (`update`) and asks for the plan after. Re-planning a job
 * from scratch after every task made a job's cost grow with the square of its size (a
 * 10,000-task fan-out spent minutes of the event loop in planNext); here a change costs
 * what it touches (its task, that task's successors), and a plan what it returns.
 *
 * Same answers as planNext (dag-planner.test.ts checks it on random jobs): what it keeps
 * only grows, as a task's outcome, once final, never changes within a job attempt (nothing
 * starts a task again that completed, was routed, failed or was cancelled). Should an
 * update ever change a final outcome all the same, everything is rebuilt from the
 * executions, which is planNext's own computation.
 */
export class DagState {
  readonly #def: JobDefinition;
  readonly #index = new Map<string, number>();
  /** By task index: the tasks whose depends_on names it (once per mention). */
  readonly #dependents: (number[] | undefined)[] = [];
  readonly #alwaysRun: number[] = [];
  // Set by #build.
  #history!: (TaskExecution[] | undefined)[];
  #outcome!: (Outcome | undefined)[];
  #reached!: boolean[];
  /** By task index: depends_on entries not satisfied yet. */
  #unmet!: number[];
  /** Tasks whose last execution has not ended. */
  #running!: Set<number>;
  /** Tasks due to start again (retry or poll outcome). */
  #again!: Set<number>;
  /** Tasks never started that may start: reached, their dependencies met. */
  #startable!: Set<number>;
  /** The first failed task in the job's order (its reason is the job's), if any. */
  #failed!: number;
  #cancelled!: number;

  constructor(definition: JobDefinition, executions: Iterable<TaskExecution> = []) {
    this.#def = definition;
    const { tasks } = definition;
    tasks.forEach((task, i) => {
      if (!this.#index.has(task.taskType)) this.#index.set(task.taskType, i);
      if (task.alwaysRun) this.#alwaysRun.push(i);
    });
    tasks.forEach((task, i) => {
      for (const dep of task.dependsOn) {
        const d = this.#index.get(dep);
        if (d !== undefined) (this.#dependents[d] ??= []).push(i);
      }
    });
    this.#build(executions);
  }

  /** An execution of this job attempt was created or changed. */
  update(execution: TaskExecution): void {
    const i = this.#index.get(execution.taskType);
    if (i === undefined) return; // not a task of this definition: planNext ignores it too
    const history = this.#history[i];
    if (!history) this.#history[i] = [execution];
    else {
      const at = history.findIndex((e) => e.id === execution.id);
      if (at >= 0) history[at] = execution;
      else history.push(execution);
      if (history.length > 1) history.sort(byAttempt);
    }
    const before = this.#outcome[i];
    const after = outcomeOf(this.#def.tasks[i]!, this.#history[i]!);
    if (before && isSettled(before)) {
      if (sameOutcome(before, after)) return;
      this.#build(this.#history.flatMap((h) => h ?? []));
      return;
    }
    this.#settle(i, before, after);
  }

  /** The plan, as planNext gives it for the executions updated so far. */
  plan(abort?: "cancel" | "timeout"): Plan {
    const tasks = this.#def.tasks;
    const stopping = abort !== undefined || Number.isFinite(this.#failed);
    const starts: number[] = [];
    for (const i of this.#again) {
      if (stopping && !tasks[i]!.alwaysRun) continue;
      if (abort !== undefined) continue;
      starts.push(i);
    }
    if (!stopping) for (const i of this.#startable) starts.push(i);
    if (this.#running.size === 0 && starts.length === 0) {
      for (const i of this.#alwaysRun) if (!this.#history[i]) starts.push(i);
    }
    starts.sort((a, b) => a - b);
    const start = starts.map((i): PlannedStart => {
      const outcome = this.#outcome[i];
      const attempt = (this.#history[i]?.at(-1)?.attempt ?? -1) + 1;
      const taskType = tasks[i]!.taskType;
      return outcome?.kind === "retry" || outcome?.kind === "poll"
        ? { taskType, attempt, notBefore: outcome.notBefore }
        : { taskType, attempt };
    });
    const plan = (verdict?: Plan["verdict"]): Plan =>
      new KeptPlan(start, this.#running, tasks, verdict);
    if (this.#running.size > 0 || start.length > 0) return plan();
    if (abort === "cancel") return plan({ state: "CANCELLED", reason: "cancelled" });
    if (abort === "timeout") {
      return plan({
        state: "FAILED",
        errorCode: "COLONY_JOB_TIMEOUT",
        reason: "the job exceeded its timeout",
      });
    }
    const failed = this.#outcome[this.#failed];
    const failure =
      failed?.kind === "failed"
        ? failed.reason
        : this.#cancelled > 0
          ? "a task was cancelled"
          : undefined;
    if (failure !== undefined)
      return plan({ state: "FAILED", errorCode: "COLONY_TASK_FAILED", reason: failure });
    return plan({ state: "COMPLETED" });
  }

  #build(executions: Iterable<TaskExecution>): void {
    const n = this.#def.tasks.length;
    this.#history = new Array<TaskExecution[] | undefined>(n);
    this.#outcome = new Array<Outcome | undefined>(n);
    this.#reached = new Array<boolean>(n).fill(false);
    this.#unmet = this.#def.tasks.map((t) => t.dependsOn.length);
    this.#running = new Set();
    this.#again = new Set();
    this.#startable = new Set();
    this.#failed = Number.POSITIVE_INFINITY;
    this.#cancelled = 0;
    for (const e of executions) {
      const i = this.#index.get(e.taskType);
      if (i === undefined) continue;
      const history = this.#history[i];
      if (history) history.push(e);
      else this.#history[i] = [e];
    }
    for (const h of this.#history) if (h && h.length > 1) h.sort(byAttempt);
    if (n > 0) this.#reach(0);
    for (let i = 0; i < n; i++) {
      const h = this.#history[i];
      if (h && h.length > 0) this.#settle(i, undefined, outcomeOf(this.#def.tasks[i]!, h));
    }
  }

  /** Task i's outcome went from `before` (not final) to `after`. */
  #settle(i: number, before: Outcome | undefined, after: Outcome): void {
    this.#outcome[i] = after;
    this.#startable.delete(i); // it has executions now
    if (before?.kind === "running") this.#running.delete(i);
    else if (before?.kind === "retry" || before?.kind === "poll") this.#again.delete(i);
    switch (after.kind) {
      case "running":
        this.#running.add(i);
        return;
      case "retry":
      case "poll":
        this.#again.add(i);
        return;
      case "failed":
        this.#failed = Math.min(this.#failed, i);
        return;
      case "cancelled":
        this.#cancelled++;
        return;
      case "completed":
      case "routed": {
        for (const next of after.next) {
          const j = this.#index.get(next);
          if (j !== undefined) this.#reach(j);
        }
        const last = this.#history[i]!.at(-1)!;
        if (after.kind === "completed" || last.state === "COMPLETED") {
          for (const d of this.#dependents[i] ?? []) {
            if (--this.#unmet[d]! === 0) this.#reach(d);
            else this.#check(d);
          }
        }
        return;
      }
    }
  }

  #reach(i: number): void {
    this.#reached[i] = true;
    this.#check(i);
  }

  /** Startable: never started, reached, every dependency met. */
  #check(i: number): void {
    if (this.#reached[i] && this.#unmet[i] === 0 && !this.#history[i]) this.#startable.add(i);
  }
}

/**
 * DagState's plan: the running tasks are listed only when asked for (the runner never
 * does), as they are then, not when the plan was made: read them before the next update.
 */
class KeptPlan implements Plan {
  readonly start: PlannedStart[];
  readonly verdict: Plan["verdict"];
  readonly #running: ReadonlySet<number>;
  readonly #tasks: readonly TaskDefinition[];

  constructor(
    start: PlannedStart[],
    running: ReadonlySet<number>,
    tasks: readonly TaskDefinition[],
    verdict: Plan["verdict"],
  ) {
    this.start = start;
    this.#running = running;
    this.#tasks = tasks;
    this.verdict = verdict;
  }

  get running(): string[] {
    return [...this.#running].sort((a, b) => a - b).map((i) => this.#tasks[i]!.taskType);
  }
}

/** An outcome no later execution changes (the task will not start again). */
function isSettled(o: Outcome): boolean {
  return o.kind !== "running" && o.kind !== "retry" && o.kind !== "poll";
}

function sameOutcome(a: Outcome, b: Outcome): boolean {
  if (a.kind !== b.kind) return false;
  if (
    (a.kind === "completed" || a.kind === "routed") &&
    (b.kind === "completed" || b.kind === "routed")
  )
    return a.next.length === b.next.length && a.next.every((t, k) => t === b.next[k]);
  if (a.kind === "failed" && b.kind === "failed") return a.reason === b.reason;
  return true;
}
