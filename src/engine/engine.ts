/**
 * The engine: accepts job requests, claims due ones from the store (respecting
 * scheduled times and max_concurrency), drives each through a JobRunner, renews its
 * leases, and takes over requests whose owner died (crash recovery). The same engine
 * serves `colony run` (one job, embedded SQLite) and `colony server`.
 */
import { FailureLog } from "../core/failure-log.ts";
import { ColonyError, NotFoundError, StoreError, ValidationError } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";
import { ColonyEventBus } from "../core/events.ts";
import type { Deferral, ExecutorRegistry, TaskDispatcher } from "../core/executor.ts";
import type { JobDefinition, TaskDefinition } from "../core/job-definition.ts";
import { renderTask } from "../core/template.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { openDefinition, sealDefinition } from "../core/secrets.ts";
import { isFinal, type State } from "../core/states.ts";
import { join } from "node:path";
import { jsonProblem } from "../core/json.ts";
import type { Readable } from "node:stream";
import { followOutput, notifyDone } from "../core/output-follow.ts";
import { createMaskTransform } from "../core/outputs.ts";
import { secretValues } from "../core/secrets.ts";
import { templateValues, unitDir } from "./task-runner.ts";
import type { Store, StoredDefinition } from "../store/store.ts";
import { JobRunner, type JobRunnerContext } from "./job-runner.ts";
import { isDeadLocalOwner, newOwnerId } from "./owner.ts";
import { Semaphore } from "../core/semaphore.ts";
import { BoundedSet } from "../core/bounded-set.ts";

/** Runners an engine keeps at most, parked ones included, as a multiple of maxParallelJobs. */
const PARKED_JOBS_FACTOR = 10;

/** Deferred jobs are woken (Engine.wakeDeferred) at most this often. */
const WAKE_INTERVAL_MS = 1000;

/** How many handed-back, never-started executions an engine remembers (TaskRunnerContext). */
const HANDED_BACK_KEPT = 10_000;

/** Tasks the built-in ant runs at once when nothing says otherwise. */
export const DEFAULT_MAX_PARALLEL_TASKS = 16;

export interface EngineOptions {
  store: Store;
  executors: ExecutorRegistry;
  /** Picks each task's executor (built-in or remote ant); default: executors by method. */
  dispatch?: TaskDispatcher;
  dataDir: string;
  /** The data dir's id (core/disk.ts), recorded on every execution: its output is there. */
  serverId?: string;
  /** Key that seals secret variables at rest (see core/secrets.ts). */
  secretKey: Buffer;
  events?: ColonyEventBus;
  owner?: string;
  /** How long a claim holds without renewal (default 30 s). */
  leaseMs?: number;
  /** How often to look for due requests submitted elsewhere or scheduled (default 500 ms). */
  pollMs?: number;
  /** Tasks running at once across all jobs (default 16). */
  maxParallelTasks?: number;
  /** Jobs driven at once (default 1000). */
  maxParallelJobs?: number;
  /** Only claim new requests when true (default true); `colony run --resume` turns it off. */
  claim?: boolean;
  log?: (message: string) => void;
  extraEnv?: JobRunnerContext["extraEnv"];
  /** Steps around each execution (artifacts, the job hook's verdict). */
  around?: JobRunnerContext["around"];
  /**
   * How long a job whose runner a store failure stopped is driven again before its
   * waitFor() callers are told, by a StoreError naming the last failure (the job stays
   * as recorded, for a later recovery). Default: no limit, as a server waits for its
   * store to come back; `colony run` sets one, so that a full disk ends the command
   * instead of holding it for ever.
   */
  giveUpAfterMs?: number;
}

/** The longest wait before a job a store failure stopped is driven again (#redrive). */
const REDRIVE_MAX_MS = 10_000;

/** Reads an execution's output from the server of the store that holds it. */
export type RemoteOutput = (
  execution: TaskExecution,
  options: { offset?: number; tail?: boolean; follow?: boolean },
) => Promise<Readable>;

export interface SubmitInput {
  definition: JobDefinition;
  params?: Record<string, unknown>;
  scheduledAt?: Date;
  submittedBy?: string;
}

export interface JobView extends JobRequest {
  tasks: TaskExecution[];
}

/** Params are an object of NAME: value (the REST schemas check this for their callers). */
export function checkParams(params: unknown, what = "params"): void {
  if (
    params !== undefined &&
    (typeof params !== "object" || params === null || Array.isArray(params))
  ) {
    const got = params === null ? "null" : Array.isArray(params) ? "an array" : typeof params;
    throw new ValidationError(
      `${what} must be an object of NAME: value (as in { Name: "world" }), got ${got}`,
    );
  }
  const problem = params === undefined ? undefined : jsonProblem(params);
  if (problem) {
    throw new ValidationError(
      `${what} cannot be stored as JSON (${problem}); give strings, numbers, booleans, null, arrays and objects`,
    );
  }
}

/**
 * What the REST schemas check for their callers, for callers in this process (the
 * library): params an object of NAME: value, a real date. Nothing is written otherwise.
 */
function checkSubmit(input: SubmitInput): void {
  checkParams(input.params);
  const at: unknown = input.scheduledAt;
  if (at !== undefined && !(at instanceof Date && Number.isFinite(at.getTime()))) {
    throw new ValidationError(
      `scheduledAt must be a valid Date, got ${at instanceof Date ? "an invalid Date" : typeof at}`,
    );
  }
}

export class Engine {
  readonly events: ColonyEventBus;
  readonly owner: string;
  readonly store: Store;
  readonly #opts: Required<
    Pick<EngineOptions, "leaseMs" | "pollMs" | "maxParallelJobs" | "claim">
  > &
    EngineOptions;
  readonly #runners = new Map<number, JobRunner>();
  readonly #ctx: JobRunnerContext;
  #timer: NodeJS.Timeout | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #remoteOutput: RemoteOutput | undefined;
  #pumping = false;
  #pumpAgain = false;
  /** maxParallelTasks: the tasks the built-in ant runs at once. */
  readonly #localSlots: number;
  /** Jobs claimed whose runner has not started a task yet (see #pump). */
  #unlaunched = 0;
  #stopping = false;
  #started = false;
  #waking = false;
  /** Counts wakeDeferred calls: a deferral written while one came is woken again. */
  #wakes = 0;
  #lastWake = 0;
  readonly #waiters = new Map<number, Array<PromiseWithResolvers<JobRequest>>>();
  /**
   * Jobs a store failure stopped, by id: when this outage began and its last drop, the
   * last failure (for giveUpAfterMs), and the wait before driving it again (doubling).
   */
  readonly #dropped = new Map<
    number,
    { since: number; last: number; error: unknown; delay: number }
  >();
  /** Jobs given up on (giveUpAfterMs): no redrive of them starts here any more. */
  readonly #gaveUp = new Set<number>();
  readonly #failures: FailureLog;
  readonly #redrives = new Set<NodeJS.Timeout>();

  constructor(options: EngineOptions) {
    this.#opts = { leaseMs: 30_000, pollMs: 500, maxParallelJobs: 1000, claim: true, ...options };
    this.#localSlots = options.maxParallelTasks ?? DEFAULT_MAX_PARALLEL_TASKS;
    this.store = options.store;
    this.events = options.events ?? new ColonyEventBus();
    this.owner = options.owner ?? newOwnerId();
    const log = options.log ?? ((m: string) => process.stderr.write(`colony: ${m}\n`));
    this.#failures = new FailureLog(log);
    this.#ctx = {
      store: options.store,
      executors: options.executors,
      dispatch: options.dispatch,
      events: this.events,
      dataDir: options.dataDir,
      serverId: options.serverId,
      slots: new Semaphore(this.#localSlots, () => this.#kick()),
      extraEnv: options.extraEnv,
      around: options.around,
      unrecorded: new Map(),
      handedBackUnstarted: new BoundedSet(HANDED_BACK_KEPT),
      log,
      onFinished: (job) => {
        this.#runners.delete(job.id);
        if (isFinal(job.state)) {
          this.#notify(job);
          this.#dropped.delete(job.id);
          this.#gaveUp.delete(job.id);
        }
        this.#kick();
      },
      onDropped: (job, error) => this.#redrive(job.id, error),
      handBack: (job, d) => this.#defer(job, d),
    };
    // Jobs ended outside a runner of this engine (a pending one cancelled, another
    // engine's): read the final record for the waiters. A runner's own verdict reaches
    // them through onFinished right after its event, so look once that has run.
    this.events.on("job:state", (e) => {
      if (!isFinal(e.state) || !this.#waiters.has(e.jobRequestId)) return;
      queueMicrotask(() => {
        if (this.#waiters.has(e.jobRequestId)) this.#readForWaiters(e.jobRequestId);
      });
    });
  }

  #readForWaiters(id: number): void {
    void this.store.getJobRequest(id).then(
      (job) => job && this.#notify(job),
      () => undefined,
    );
  }

  /** Begins claiming and driving work; recovers requests of dead owners first. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await this.recover();
    this.#leaseTimer = setInterval(
      () => void this.#renew(),
      Math.max(1000, this.#opts.leaseMs / 3),
    );
    this.#leaseTimer.unref();
    this.#timer = setInterval(() => this.#kick(), this.#opts.pollMs);
    this.#timer.unref();
    this.#kick();
  }

  /** Accepts a job request (durable before this resolves). */
  async submit(input: SubmitInput): Promise<JobRequest> {
    checkSubmit(input);
    const created = this.store.createJobRequest({
      jobType: input.definition.jobType,
      definition: sealDefinition(input.definition, this.#opts.secretKey),
      params: input.params ?? {},
      scheduledAt: input.scheduledAt,
      submittedBy: input.submittedBy,
    });
    // Claim now: the embedded store has already run the insert, so the claim joins it in
    // the same commit (one commit less before the job starts). Nothing is driven before
    // that commit succeeds: claims resolve only after it. Stores that insert later see
    // the request at the kick below.
    this.#kick();
    const job = await created;
    this.events.emit("job:state", {
      jobRequestId: job.id,
      jobType: job.jobType,
      state: job.state,
      attempt: 0,
    });
    this.#kick();
    return job;
  }

  /** Submits the saved definition of `jobType`. */
  async submitType(
    jobType: string,
    params: Record<string, unknown> = {},
    extra: Omit<SubmitInput, "definition" | "params"> = {},
  ): Promise<JobRequest> {
    const stored = await this.store.getDefinition(jobType);
    if (!stored)
      throw new NotFoundError(
        "job_type",
        jobType,
        "save its definition first (colony definitions / POST /api/job-definitions)",
      );
    if (stored.paused)
      throw new ColonyError(
        "COLONY_DEFINITION_PAUSED",
        `job type ${jobType} is paused; resume it before submitting`,
        { status: 409 },
      );
    return this.submit({
      definition: openDefinition(stored.definition, this.#opts.secretKey),
      params,
      ...extra,
    });
  }

  async getJob(id: number): Promise<JobView> {
    const job = await this.store.getJobRequest(id);
    if (!job) throw new NotFoundError("job_request", id);
    return { ...job, tasks: await this.store.listTaskExecutions(id) };
  }

  /** The definition of a request with its secret values readable (for runners and masking). */
  openJobDefinition(job: JobRequest): JobDefinition {
    return openDefinition(job.definition, this.#opts.secretKey);
  }

  /** Cancels a request: running tasks are stopped, always_run tasks run, it ends CANCELLED. */
  async cancel(id: number): Promise<JobRequest> {
    const runner = this.#runners.get(id);
    const job = await this.store.getJobRequest(id);
    if (!job) throw new NotFoundError("job_request", id);
    if (isFinal(job.state)) return job;
    await this.store.requestCancel(id);
    if (runner) {
      runner.stop("cancel");
      return (await this.store.getJobRequest(id)) ?? job;
    }
    const cancelled = await this.store.cancelPendingJobRequest(id);
    if (cancelled) {
      this.events.emit("job:state", {
        jobRequestId: id,
        jobType: cancelled.jobType,
        state: cancelled.state,
        attempt: cancelled.attempt,
      });
      return cancelled;
    }
    // Another engine runs it: it sees the cancel request at its next lease renewal. Or it
    // started and waits in the store (handed back for want of an ant): requestCancel made
    // it due, and the engine that claims it ends it, running its always_run tasks.
    this.#kick();
    return (await this.store.getJobRequest(id)) ?? job;
  }

  /** Runs a FAILED or CANCELLED request again as a new attempt. */
  async restart(id: number): Promise<JobRequest> {
    const job = await this.store.restartJobRequest(id);
    this.events.emit("job:state", {
      jobRequestId: id,
      jobType: job.jobType,
      state: job.state,
      attempt: job.attempt,
    });
    this.#kick();
    return job;
  }

  /** Resolves with the request once it reaches a final state. */
  async waitFor(id: number): Promise<JobRequest> {
    const job = await this.store.getJobRequest(id);
    if (!job) throw new NotFoundError("job_request", id);
    if (isFinal(job.state)) return job;
    const waiter = Promise.withResolvers<JobRequest>();
    const list = this.#waiters.get(id) ?? [];
    list.push(waiter);
    this.#waiters.set(id, list);
    return waiter.promise;
  }

  #notify(job: JobRequest): void {
    const list = this.#waiters.get(job.id);
    if (!list) return;
    this.#waiters.delete(job.id);
    for (const w of list) w.resolve(job);
  }

  /**
   * Takes over unfinished requests whose owner is gone (lease expired, or a dead process
   * on this host) and drives them: completed tasks are kept, running ones re-attached.
   * With `onlyId`, just that request. Returns the requests taken.
   */
  async recover(onlyId?: number): Promise<JobRequest[]> {
    const taken: JobRequest[] = [];
    const now = new Date();
    const unfinished =
      onlyId === undefined
        ? await this.store.listUnfinishedJobRequests()
        : [await this.store.getJobRequest(onlyId)].filter(
            (j): j is JobRequest => j !== undefined && !isFinal(j.state),
          );
    // One given up on (giveUpAfterMs) is driven here again only when asked for by id.
    if (onlyId !== undefined) this.#gaveUp.delete(onlyId);
    for (const job of unfinished) {
      if (this.#runners.has(job.id) || job.state === "PENDING" || job.state === "PAUSED") continue;
      if (this.#gaveUp.has(job.id)) continue;
      const expected =
        job.owner !== undefined && isDeadLocalOwner(job.owner) ? job.owner : undefined;
      const mine = await this.store.takeOverJobRequest(
        job.id,
        this.owner,
        now,
        this.#opts.leaseMs,
        expected,
      );
      if (!mine) continue;
      taken.push(mine);
      await this.#drive(mine);
    }
    return taken;
  }

  /**
   * Jobs left PENDING with `errorCode` (deferred: no ant served their first task) become
   * due now and are claimed again: an ant that may serve them connected. Calls share
   * one store write a second at most.
   */
  wakeDeferred(errorCode: string): void {
    this.#wakes++;
    if (this.#waking || this.#stopping) return;
    this.#waking = true;
    const run = () => {
      this.#waking = false;
      if (this.#stopping) return;
      this.#lastWake = Date.now();
      this.store.wakeDeferredJobRequests(errorCode, new Date()).then(
        (woken) => {
          if (woken > 0) this.#kick();
        },
        (error: unknown) => this.#ctx.log(`waking deferred jobs failed: ${String(error)}`),
      );
    };
    // Ants connecting in a burst (a fleet starting) share one wake a second: each wake
    // re-claims every deferred job, and those the new ants do not serve are deferred again.
    setTimeout(run, Math.max(0, this.#lastWake + WAKE_INTERVAL_MS - Date.now())).unref();
  }

  /**
   * A claimed job whose first task nothing here would take (no ant serves it: see
   * TaskDispatcher.deferral) goes back to PENDING, due again later, instead of waiting
   * in memory, where it would hold one of maxParallelJobs runners and keep a server
   * that has such an ant from claiming it. Likewise a started job this engine handed back
   * for its next task, asked again for that task before it starts (no EXECUTING and back
   * at every try). Undefined when it starts now.
   */
  #deferralOf(job: JobRequest, definition: JobDefinition): Deferral | undefined {
    const dispatch = this.#ctx.dispatch;
    const first = definition.tasks[0];
    if (!dispatch?.deferral || !first || job.state !== "READY") return undefined;
    if (job.startedAt !== undefined) {
      // Handed back by a runner of this engine: the dispatcher knows for which task. Else
      // (another engine's) its runner finds out from the recorded tasks.
      const waiting = dispatch.deferredTask?.(job.id);
      if (!waiting) return undefined;
      // Past the job's timeout it starts, and its runner's timer ends it.
      const timeout = definition.timeoutMs;
      return dispatch.deferral(job.id, waiting.task, {
        deadline: timeout ? job.startedAt.getTime() + timeout : undefined,
        executionId: waiting.executionId,
      });
    }
    let task: TaskDefinition = first;
    if (first.tags.some((tag) => tag.includes("{{"))) {
      try {
        task = renderTask(first, templateValues(definition, first, {}, job.params));
      } catch {
        return undefined; // its runner records the template error on the task
      }
    }
    return dispatch.deferral(job.id, task, { jobTimeoutMs: definition.timeoutMs });
  }

  /**
   * Hands a claimed job back to the store (see #deferralOf), or one whose runner gives it
   * back (JobRunner's #handOff). False when it was cancelled meanwhile (its runner sees
   * that) or the store refused: it is then driven here, its task waiting for an ant here,
   * rather than left claimed by nobody.
   */
  async #defer(job: JobRequest, d: Deferral): Promise<boolean> {
    const wakes = this.#wakes;
    let deferred: JobRequest | undefined;
    try {
      deferred = await this.store.deferJobRequest(
        job.id,
        this.owner,
        new Date(Date.now() + d.delayMs),
        { errorCode: d.errorCode, errorMessage: d.errorMessage },
      );
    } catch (error) {
      this.#ctx.log(`could not leave job ${job.id} for later (${String(error)}); running it here`);
      return false;
    }
    if (!deferred) return false;
    // An ant connected while this was written: its wake may have run before this write.
    if (this.#wakes !== wakes) this.wakeDeferred(d.errorCode);
    this.events.emit("job:state", {
      jobRequestId: job.id,
      jobType: job.jobType,
      state: deferred.state,
      attempt: deferred.attempt,
      error: d.errorMessage,
    });
    return true;
  }

  async #drive(job: JobRequest): Promise<void> {
    const definition = this.openJobDefinition(job);
    const deferral = this.#deferralOf(job, definition);
    if (deferral && (await this.#defer(job, deferral))) return;
    let unlaunched = true;
    this.#unlaunched++;
    const launched = () => {
      if (!unlaunched) return;
      unlaunched = false;
      this.#unlaunched--; // its task now counts in the slots (or it ended: onFinished kicks)
    };
    const runner = new JobRunner(
      this.#ctx,
      { ...job, definition },
      launched,
      this.#ctx.dispatch?.deferredSince?.(job.id),
    );
    this.#runners.set(job.id, runner);
    try {
      await runner.start();
    } catch (error) {
      launched();
      this.#runners.delete(job.id);
      this.#ctx.log(`could not start job ${job.id}: ${String(error)}`);
    }
  }

  #kick(): void {
    if (!this.#started || this.#stopping || !this.#opts.claim) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    void this.#pump()
      .then(
        () => this.#failures.ok("claiming work"),
        (error: unknown) => this.#failures.failed("claiming work", error),
      )
      .finally(() => {
        this.#pumping = false;
        if (this.#pumpAgain) {
          this.#pumpAgain = false;
          this.#kick();
        }
      });
  }

  async #pump(): Promise<void> {
    for (;;) {
      const slots = this.#ctx.slots;
      // Claim only what the task slots can take soon: the slots' limit again as a
      // look-ahead, less the tasks holding or awaiting a slot or a busy ant (not those no
      // ant serves: see TaskDispatcher.waitingCount) and the jobs claimed whose first
      // task has not asked for one yet. The rest stays PENDING for other engines.
      const waitingForAnt = this.#ctx.dispatch?.waitingCount ?? 0;
      // Jobs parked on a task no connected ant serves hold no share of maxParallelJobs,
      // up to PARKED_JOBS_FACTOR times it in all (their runners are memory).
      const parked = this.#ctx.dispatch?.parkedJobs ?? 0;
      const max = this.#opts.maxParallelJobs;
      const room = Math.min(
        max - (this.#runners.size - parked),
        PARKED_JOBS_FACTOR * max - this.#runners.size,
        2 * slots.limit - slots.busy - slots.waiting - waitingForAnt - this.#unlaunched,
      );
      if (room <= 0 || this.#stopping) return;
      const batch = Math.min(room, 100);
      const claimed = await this.store.claimDueJobRequests(
        this.owner,
        new Date(),
        this.#opts.leaseMs,
        batch,
      );
      for (const job of claimed) await this.#drive(job);
      if (claimed.length < batch) return;
    }
  }

  /**
   * Drives again a job whose runner a store failure stopped: after 0.5 s, doubling to
   * 10 s while the store still fails. The timer holds the process open (`colony run`
   * waits for the job), unlike the poll and lease timers.
   */
  #redrive(id: number, error: unknown): void {
    if (this.#stopping || this.#gaveUp.has(id)) return;
    const now = Date.now();
    let dropped = this.#dropped.get(id);
    // Drops further apart than two of the longest waits are two outages, not one: the
    // job ran in between, and a new outage gets its own giveUpAfterMs.
    if (!dropped || now - dropped.last > 2 * REDRIVE_MAX_MS)
      dropped = { since: now, last: now, error, delay: 250 };
    dropped.last = now;
    dropped.error = error;
    this.#dropped.set(id, dropped);
    const limit = this.#opts.giveUpAfterMs;
    if (limit !== undefined && now - dropped.since >= limit) {
      this.#giveUp(id, dropped.error, now - dropped.since);
      return;
    }
    const delay = (dropped.delay = Math.min(dropped.delay * 2, REDRIVE_MAX_MS));
    const timer = setTimeout(() => {
      this.#redrives.delete(timer);
      if (this.#stopping || this.#runners.has(id) || this.#gaveUp.has(id)) return;
      this.recover(id).then(
        (taken) => {
          this.#failures.ok("driving jobs again");
          if (taken.length === 0) this.#dropped.delete(id); // ended, or another's
        },
        (error: unknown) => {
          this.#failures.failed("driving jobs again", error);
          this.#redrive(id, error);
        },
      );
    }, delay);
    this.#redrives.add(timer);
  }

  /** giveUpAfterMs has passed: the job's waiters learn why; it is no longer driven here. */
  #giveUp(id: number, error: unknown, ms: number): void {
    this.#dropped.delete(id);
    this.#gaveUp.add(id);
    const why = error instanceof Error ? error.message : String(error);
    const gaveUp = new StoreError(
      `job ${id}: the store kept failing for ${formatDuration(ms)}, so it is no longer driven here (${why}); it stays as recorded: once the store answers, a restart or 'colony run --resume ${id}' finishes it`,
      error,
    );
    const list = this.#waiters.get(id) ?? [];
    if (list.length === 0) this.#ctx.log(gaveUp.message); // else the waiters say it
    this.#waiters.delete(id);
    for (const w of list) w.reject(gaveUp);
  }

  async #renew(): Promise<void> {
    try {
      await this.store.renewLeases(this.owner, new Date(), this.#opts.leaseMs);
      for (const [id, runner] of this.#runners) {
        if (await this.store.isCancelRequested(id)) runner.stop("cancel");
      }
      if (this.#opts.claim) await this.recover();
      this.#failures.ok("renewing leases");
    } catch (error) {
      this.#failures.failed("renewing leases", error);
    }
  }

  /**
   * A task execution's output (secrets masked): from byte `offset` (or only new output
   * with `tail`), and with `follow` staying open until the execution ends. Any number of
   * followers share one file watch.
   */
  async outputStream(
    executionId: string,
    options: { offset?: number; tail?: boolean; follow?: boolean } = {},
  ): Promise<Readable> {
    const execution = await this.store.getTaskExecution(executionId);
    if (!execution) throw new NotFoundError("task_execution", executionId);
    if (this.heldElsewhere(execution) && this.#remoteOutput) {
      return this.#remoteOutput(execution, options);
    }
    const job = await this.store.getJobRequest(execution.jobRequestId);
    const path = join(unitDir(this.#ctx.dataDir, executionId), "stdout");
    let done = isFinal(execution.state) || !options.follow;
    let onTask: ((e: { executionId: string; state: State }) => void) | undefined;
    if (!done) {
      onTask = (e) => {
        if (e.executionId !== executionId || !isFinal(e.state)) return;
        done = true;
        this.events.off("task:state", onTask!);
        notifyDone(path);
      };
      this.events.on("task:state", onTask);
    }
    // Nothing written (not started, or a task that printed nothing: a silent FUNCTION
    // handler, a remote ant that sent no bytes) reads as empty unless following.
    const source = await followOutput(path, {
      offset: options.offset,
      tail: options.tail,
      follow: options.follow ?? false,
      done: () => done,
    });
    if (onTask) {
      source.once("close", () => this.events.off("task:state", onTask!));
      // It may have ended between the read above and subscribing: look again.
      void this.store.getTaskExecution(executionId).then(
        (now) => {
          if (now && isFinal(now.state) && !done) onTask!({ executionId, state: now.state });
        },
        () => undefined,
      );
    }
    const secrets = job ? secretValues(this.openJobDefinition(job), job.params) : [];
    if (secrets.length === 0) return source;
    // pipe() does not destroy the source when the consumer goes away: do it, or its
    // file watch outlives the client that disconnected.
    const masked = source.pipe(createMaskTransform(secrets));
    masked.once("close", () => source.destroy());
    source.once("error", (error) => masked.destroy(error));
    return masked;
  }

  /** Whether another server of the store ran the execution: its data dir holds the output. */
  heldElsewhere(execution: TaskExecution): boolean {
    return execution.server !== undefined && execution.server !== this.#ctx.serverId;
  }

  /**
   * How outputStream reads output another server of the store holds (the server's
   * relay, server/relay.ts). Without it, such output reads as empty.
   */
  useRemoteOutput(fetch: RemoteOutput): void {
    this.#remoteOutput = fetch;
  }

  /** Saves (or replaces, version + 1) a job definition, secret values sealed at rest. */
  async saveDefinition(definition: JobDefinition, source: string): Promise<StoredDefinition> {
    return this.store.putDefinition(sealDefinition(definition, this.#opts.secretKey), source);
  }

  /**
   * Remote ants' `max_capacity`, summed: tasks in flight may number maxParallelTasks (the
   * built-in ant's bound, which the dispatcher keeps) plus this. Claims follow.
   */
  setRemoteCapacity(capacity: number): void {
    this.#ctx.slots.setLimit(this.#localSlots + Math.max(0, capacity));
    this.#kick();
  }

  /** Looks for due requests now (a schedule just inserted one) instead of at the next poll. */
  wake(): void {
    this.#kick();
  }

  /** Jobs this engine is driving now. */
  activeJobIds(): number[] {
    return [...this.#runners.keys()];
  }

  /**
   * Stops claiming. With `cancelRunning`, running jobs are cancelled; otherwise they are
   * left to finish for up to `graceMs` and then left to a later recovery (their tasks keep
   * running where the executor allows).
   */
  async stop(options: { graceMs?: number; cancelRunning?: boolean } = {}): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#leaseTimer) clearInterval(this.#leaseTimer);
    for (const timer of this.#redrives) clearTimeout(timer);
    this.#redrives.clear();
    const runners = [...this.#runners.values()];
    if (options.cancelRunning) for (const r of runners) r.stop("cancel");
    const all = Promise.all(runners.map((r) => r.done));
    if (options.graceMs === undefined) await all;
    else {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((r) => (timer = setTimeout(r, options.graceMs)))]);
      if (timer) clearTimeout(timer);
    }
  }
}
