/**
 * Drives one job request from claim to verdict: plans with the DAG planner, starts
 * tasks, re-plans after each one ends, enforces the job timeout, and records the
 * verdict (or a job-level retry). Re-planning only reads recorded state, so a runner
 * created after a crash continues exactly where the last one stopped.
 */
import type { Deferral } from "../core/executor.ts";
import { taskByType, type TaskDefinition } from "../core/job-definition.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { isFinal } from "../core/states.ts";
import type { JobFinish, TaskFinish } from "../store/store.ts";
import { DagState, planNext, retryDelay, type Plan, type PlannedStart } from "./dag-planner.ts";
import {
  EXECUTOR_CLOSED,
  HANDED_BACK,
  startTask,
  type RunningTask,
  type StopReason,
  type TaskRunnerContext,
} from "./task-runner.ts";

export interface JobRunnerContext extends TaskRunnerContext {
  onFinished(job: JobRequest): void;
  /** The runner stopped after a store failure, the job unfinished: drive it again later. */
  onDropped?(job: JobRequest, error: unknown): void;
  log(message: string): void;
  /**
   * Hands a job this engine runs back to the store for `d.delayMs` (Store.deferJobRequest,
   * and the job:state event): false, changing nothing, when the store refused (a cancel
   * was asked meanwhile) or failed.
   */
  handBack?(job: JobRequest, d: Deferral): Promise<boolean>;
}

type Verdict = NonNullable<Plan["verdict"]>;

/**
 * Up to this many tasks, a task that may be the job's last has its verdict planned
 * beforehand, so that one store operation records both (#recordFinish). That plan is
 * computed from scratch; a larger job records its verdict in a write of its own.
 */
const VERDICT_WITH_TASK_MAX = 64;

/**
 * Executions created in one plan at most: a fan-out's others follow in the next plans
 * (next turns of the event loop), so that creating thousands (~25 µs each on SQLite)
 * does not hold the event loop (a server's requests, ant heartbeats) in one piece.
 */
const LAUNCHES_PER_PLAN = 500;

export class JobRunner {
  readonly #ctx: JobRunnerContext;
  #job: JobRequest;
  readonly #executions = new Map<string, TaskExecution>();
  /** The plan, kept up to date with #executions (#record). */
  #dag: DagState;
  /**
   * Outputs of the executions finished so far (#outputs), merged in the order they
   * finished; `shared` once handed to a task, which keeps it as it was (copy on write).
   */
  #outputsSoFar: { values: Record<string, unknown>; shared: boolean } | undefined;
  readonly #running = new Map<string, RunningTask>();
  readonly #launching = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #abort: StopReason | undefined;
  /** The write that marks the job EXECUTING, when it was not awaited at start. */
  #executing: Promise<void> = Promise.resolve();
  #stepping = false;
  #again = false;
  /** A #step is queued (#step coalesces the requests of one turn into one plan). */
  #stepQueued = false;
  #finished = false;
  /** The verdict recorded with the last task's result (#recordFinish), announced after its event. */
  #recorded: Verdict | undefined;
  #resolveDone!: () => void;
  readonly done: Promise<void>;

  /** Called once: when the first task starts (asks for a slot) or the runner ends. */
  #onLaunched: (() => void) | undefined;

  /** A job that was deferred for want of an ant: its timeout counts from then (ms). */
  readonly #waitedSince: number | undefined;
  /** #fail ran: the runner stopped after a store failure. */
  #failed = false;
  /** When the job's timeout stops it (ms), if it has one. */
  #deadline: number | undefined;

  constructor(
    ctx: JobRunnerContext,
    job: JobRequest,
    onLaunched?: () => void,
    waitedSince?: number,
  ) {
    this.#ctx = ctx;
    this.#job = job;
    this.#onLaunched = onLaunched;
    this.#waitedSince = waitedSince;
    this.#dag = new DagState(job.definition);
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  get job(): JobRequest {
    return this.#job;
  }

  /** Starts driving the job; resolves once it is underway (not when it ends). */
  async start(): Promise<void> {
    const { store } = this.#ctx;
    // A request fresh from a claim (READY, never started) has no executions of its attempt
    // yet: tasks are only created once it is EXECUTING. One taken over from another engine
    // may have some, and so may one handed back to the store (#handOff) and claimed again.
    const fresh = this.#job.state === "READY" && this.#job.startedAt === undefined;
    if (!fresh) {
      const all = await store.listTaskExecutions(this.#job.id);
      for (const e of all) if (e.jobAttempt === this.#job.attempt) this.#executions.set(e.id, e);
      this.#dag = new DagState(this.#job.definition, this.#executions.values());
    }
    if (this.#job.state !== "EXECUTING") {
      if (fresh) {
        // Not awaited: the first task's creation joins this write in one store commit.
        // Task creation needs no EXECUTING job; a failure here surfaces through #fail.
        this.#executing = store.markJobExecuting(this.#job.id).then(
          (job) => {
            this.#job = this.#withDefinition(job);
            this.#emitJob();
          },
          (error: unknown) => this.#fail(error),
        );
      } else {
        this.#job = this.#withDefinition(await store.markJobExecuting(this.#job.id));
        this.#emitJob();
      }
    }
    // A cancel asked while it was claimed is seen here or at the next lease renewal.
    if (!fresh && (await store.isCancelRequested(this.#job.id))) this.#abort = "cancel";
    const timeout = this.#job.definition.timeoutMs;
    if (timeout !== undefined && timeout > 0) {
      // From its first start, or from when it first waited for an ant if that was earlier
      // (its first task deferred: TaskDispatcher.deferral).
      const since = Math.min(
        this.#job.startedAt?.getTime() ?? Date.now(),
        this.#waitedSince ?? Number.POSITIVE_INFINITY,
      );
      this.#deadline = since + timeout;
      this.#later(Math.max(0, this.#deadline - Date.now()), () => this.stop("timeout"));
    }
    // Executions left unfinished by an earlier process: re-attach (or fail) them.
    for (const e of this.#executions.values()) {
      if (!isFinal(e.state)) this.#track(e, this.#outputs(), true);
    }
    this.#step();
  }

  /** Cancel (user) or timeout: running tasks are stopped, always_run tasks still run. */
  stop(reason: StopReason): void {
    if (this.#finished || this.#abort) return;
    this.#abort = reason;
    // always_run tasks are the job's cleanup: they run to their end (or their own timeout).
    for (const task of this.#running.values()) {
      if (!this.#isAlwaysRun(task.execution.taskType)) task.stop(reason);
    }
    this.#step();
  }

  /** Store rows carry the sealed definition; the runner keeps the opened one it was given. */
  #withDefinition(job: JobRequest): JobRequest {
    return { ...job, definition: this.#job.definition };
  }

  #isAlwaysRun(taskType: string): boolean {
    return taskByType(this.#job.definition, taskType)?.alwaysRun === true;
  }

  /** An execution of this attempt was created or changed: the plan and outputs follow. */
  #record(execution: TaskExecution): void {
    const before = this.#executions.get(execution.id);
    this.#executions.set(execution.id, execution);
    this.#dag.update(execution);
    const ended = execution.state === "COMPLETED" || execution.state === "FAILED";
    if (!ended || before?.state === execution.state || !this.#outputsSoFar) return;
    if (Object.keys(execution.context).length === 0) return;
    const so = this.#outputsSoFar;
    if (so.shared)
      this.#outputsSoFar = { values: { ...so.values, ...execution.context }, shared: false };
    else Object.assign(so.values, execution.context);
  }

  /**
   * Outputs of every finished execution so far, for templates of later tasks: those
   * recorded before this runner in the order they ended, then each as it ends here.
   */
  #outputs(): Record<string, unknown> {
    if (!this.#outputsSoFar) {
      const values: Record<string, unknown> = {};
      const done = [...this.#executions.values()].filter(
        (e) => e.state === "COMPLETED" || e.state === "FAILED",
      );
      done.sort((a, b) => (a.endedAt?.getTime() ?? 0) - (b.endedAt?.getTime() ?? 0));
      for (const e of done) Object.assign(values, e.context);
      this.#outputsSoFar = { values, shared: false };
    }
    this.#outputsSoFar.shared = true;
    return this.#outputsSoFar.values;
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  #emitJob(error?: string): void {
    this.#ctx.events.emit("job:state", {
      jobRequestId: this.#job.id,
      jobType: this.#job.jobType,
      state: this.#job.state,
      attempt: this.#job.attempt,
      error,
    });
  }

  /** `inherited`: an execution recorded before this runner started (see startTask). */
  #track(execution: TaskExecution, outputs: Record<string, unknown>, inherited = false): void {
    this.#record(execution);
    const running = startTask(
      this.#ctx,
      this.#job,
      execution,
      outputs,
      this.#recordFinish,
      this.#handOff,
      inherited,
    );
    this.#running.set(execution.id, running);
    this.#launched();
    if (this.#abort && !this.#isAlwaysRun(execution.taskType)) running.stop(this.#abort);
    running.done.then(
      (finished) => {
        this.#running.delete(execution.id);
        this.#record(finished);
        // The one left may be waiting for an ant nothing here has: the job can leave now.
        if (this.#running.size === 1 && !this.#recorded) {
          for (const other of this.#running.values()) other.reconsider();
        }
        if (this.#recorded) this.#announce(this.#recorded);
        else this.#step();
      },
      (error: unknown) => {
        if ((error as { code?: unknown } | undefined)?.code === HANDED_BACK) this.#left();
        else this.#fail(error);
      },
    );
  }

  /**
   * A task would wait here for an ant nothing here has (TaskDispatcher.deferral says so:
   * no connected ant, none within its reconnect grace, not the built-in one). When that
   * task is all this job does here now, the job goes back to the store instead, PENDING
   * with why, due again after the deferral's back-off or as soon as an ant connects: a
   * server that has such an ant may claim it (others get it a little earlier, as with a
   * deferred first task), and this one keeps no runner for it. Whoever claims it next
   * goes on from its recorded executions; the task, left READY, starts there. A task that
   * waits beside others of its job still running here waits here (TaskDispatcher's
   * parkedJobs). Undefined when the task waits here.
   */
  readonly #handOff = (
    task: TaskDefinition,
    execution: TaskExecution,
  ): Promise<boolean> | undefined => {
    const { dispatch, handBack } = this.#ctx;
    if (!dispatch?.deferral || !handBack || this.#abort || this.#finished) return undefined;
    if (this.#launching.size > 0 || this.#running.size !== 1) return undefined;
    if (!this.#running.has(execution.id)) return undefined;
    // Not put off past the job's timeout (once that has passed, its timer stops it now).
    const d = dispatch.deferral(this.#job.id, task, {
      deadline: this.#deadline,
      executionId: execution.id,
    });
    if (!d) return undefined;
    return (async () => {
      await this.#executing;
      if (this.#abort || this.#finished) return false;
      const back = await handBack(this.#job, d);
      if (back) {
        this.#finished = true;
        this.#clearTimers();
      }
      return back;
    })();
  };

  /** The job went back to the store (#handOff): the engine forgets this runner. */
  #left(): void {
    this.#running.clear();
    this.#launched();
    this.#ctx.onFinished(this.#job);
    this.#resolveDone();
  }

  /** Starts creating the planned execution; false when it is under way already. */
  #launch(planned: PlannedStart): boolean {
    const key = `${planned.taskType}#${planned.attempt}`;
    if (this.#launching.has(key)) return false;
    const wait = (planned.notBefore ?? 0) - Date.now();
    this.#launching.add(key);
    if (wait > 0) {
      this.#launched(); // a task waiting out its retry delay asks for no slot yet
      this.#later(wait, () => {
        this.#launching.delete(key);
        this.#step();
      });
      return true;
    }
    const task = taskByType(this.#job.definition, planned.taskType);
    const outputs = this.#outputs();
    this.#ctx.store
      .createTaskExecution({
        jobRequestId: this.#job.id,
        taskType: planned.taskType,
        method: task?.method ?? "SHELL",
        jobAttempt: this.#job.attempt,
        attempt: planned.attempt,
        server: this.#ctx.serverId,
      })
      .then(
        ({ execution }) => {
          this.#launching.delete(key);
          if (isFinal(execution.state)) this.#record(execution);
          else if (!this.#running.has(execution.id)) {
            this.#ctx.events.emit("task:state", {
              jobRequestId: execution.jobRequestId,
              taskType: execution.taskType,
              executionId: execution.id,
              state: execution.state,
              attempt: execution.attempt,
              method: execution.method,
            });
            this.#track(execution, outputs);
          }
          this.#step();
        },
        (error: unknown) => this.#fail(error),
      );
    return true;
  }

  /**
   * Plans and acts, once for all the requests of one turn: a microtask later, so that the
   * thousands of executions a fan-out creates in one store commit, each of which asks,
   * get one plan rather than one each.
   */
  #step(): void {
    if (this.#finished || this.#stepQueued) return;
    this.#stepQueued = true;
    queueMicrotask(() => {
      this.#stepQueued = false;
      this.#stepNow();
    });
  }

  /** Serialized so that two task completions never plan concurrently. */
  #stepNow(): void {
    if (this.#finished) return;
    if (this.#stepping) {
      this.#again = true;
      return;
    }
    this.#stepping = true;
    try {
      do {
        this.#again = false;
        const plan = this.#dag.plan(this.#abort);
        // The rest wait for the next plan, which each of these launches asks for when
        // its execution is created (or its retry delay has passed).
        let launched = 0;
        for (const s of plan.start) {
          if (launched === LAUNCHES_PER_PLAN) break;
          if (this.#launch(s)) launched++;
        }
        if (plan.verdict && this.#launching.size === 0 && this.#running.size === 0) {
          this.#finished = true;
          void this.#conclude(plan.verdict).catch((error: unknown) => this.#fail(error));
        }
      } while (this.#again && !this.#finished);
    } finally {
      this.#stepping = false;
    }
  }

  /**
   * Records a task's final state. When it is the job's last task and the job ends with
   * it (no job-level retry), the job's verdict is recorded in the same store operation:
   * one commit instead of the task's and then, once that one returned, the job's.
   */
  readonly #recordFinish = async (
    execution: TaskExecution,
    f: TaskFinish,
  ): Promise<TaskExecution> => {
    const { store } = this.#ctx;
    const verdict = this.#verdictWith(execution, f);
    if (!verdict) return store.finishTask(execution.id, f);
    this.#finished = true;
    this.#clearTimers();
    await this.#executing;
    try {
      const both = await store.finishTaskAndJob(execution.id, f, this.#job.id, jobFinish(verdict));
      this.#job = this.#withDefinition(both.job);
      this.#recorded = verdict;
      return both.execution;
    } catch (error) {
      this.#fail(error);
      throw error;
    }
  };

  /** The job's verdict if `execution`, the only one running, ends as `f` says; else none. */
  #verdictWith(execution: TaskExecution, f: TaskFinish): Verdict | undefined {
    if (this.#finished || this.#launching.size > 0 || this.#running.size !== 1) return undefined;
    if (!this.#running.has(execution.id)) return undefined;
    if (this.#job.definition.tasks.length > VERDICT_WITH_TASK_MAX) return undefined;
    const ended: TaskExecution = {
      ...execution,
      state: f.state,
      exitCode: f.exitCode,
      errorCode: f.errorCode,
      errorMessage: f.errorMessage,
      endedAt: new Date(),
      context: { ...execution.context, ...f.context },
    };
    const executions = [...this.#executions.values()].filter((e) => e.id !== execution.id);
    executions.push(ended);
    const plan = planNext({ definition: this.#job.definition, executions, abort: this.#abort });
    const verdict = plan.start.length === 0 ? plan.verdict : undefined;
    return verdict && !this.#retries(verdict) ? verdict : undefined;
  }

  /** Whether this verdict makes a job-level retry rather than the job's end. */
  #retries(verdict: Verdict): boolean {
    return (
      verdict.state === "FAILED" &&
      this.#abort === undefined &&
      this.#job.attempt < this.#job.definition.retry
    );
  }

  #launched(): void {
    const fn = this.#onLaunched;
    this.#onLaunched = undefined;
    fn?.();
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  /** The job ended (its verdict recorded): say so, and let the engine forget the runner. */
  #announce(verdict: Verdict): void {
    this.#emitJob(verdict.reason);
    this.#launched();
    this.#ctx.onFinished(this.#job);
    this.#resolveDone();
  }

  async #conclude(verdict: Verdict): Promise<void> {
    this.#clearTimers();
    await this.#executing;
    const { store } = this.#ctx;
    const def = this.#job.definition;
    if (this.#retries(verdict)) {
      const delay = retryDelay(
        { ...def.tasks[0]!, delayBetweenRetriesMs: def.delayBetweenRetriesMs },
        this.#job.attempt + 1,
      );
      this.#ctx.log(
        `job ${this.#job.id} failed (${verdict.reason}); retrying as attempt ${this.#job.attempt + 1}`,
      );
      this.#job = this.#withDefinition(
        await store.retryJobRequest(this.#job.id, new Date(Date.now() + delay)),
      );
      this.#emitJob(verdict.reason);
    } else {
      this.#job = this.#withDefinition(
        await store.finishJobRequest(this.#job.id, jobFinish(verdict)),
      );
      this.#emitJob(verdict.reason);
    }
    this.#launched();
    this.#ctx.onFinished(this.#job);
    this.#resolveDone();
  }

  /** A store failure while driving the job: say so loudly; the job stays for recovery. */
  #fail(error: unknown): void {
    // Once: a failed last write reaches here from the write and again from its task.
    if (this.#failed || (this.#finished && this.#running.size === 0)) return;
    this.#failed = true;
    this.#finished = true;
    for (const t of this.#timers) clearTimeout(t);
    const closed = (error as { code?: unknown } | undefined)?.code === EXECUTOR_CLOSED;
    this.#ctx.log(
      closed
        ? `job ${this.#job.id}: left to the next start, which re-attaches to its running tasks`
        : `job ${this.#job.id}: stopped driving it after a store error (driven again once the store answers): ${String(error)}`,
    );
    this.#launched();
    this.#ctx.onFinished(this.#job);
    if (!closed) this.#ctx.onDropped?.(this.#job, error);
    this.#resolveDone();
  }
}

function jobFinish(verdict: Verdict): JobFinish {
  return {
    state: verdict.state,
    errorCode: verdict.errorCode,
    errorMessage: verdict.state === "COMPLETED" ? undefined : verdict.reason,
  };
}
