/**
 * One dispatch mechanism for every task (SPEC sections 1 and 5): the engine asks the
 * dispatcher for the executor of a task, and the dispatcher picks an ant.
 *
 * - The built-in ant is this process's executor registry: it serves the methods
 *   registered there (optionally narrowed by config `ant.methods`) with the tags of
 *   config `ant.tags` (none by default).
 * - Remote ants are the connections on /ws/ants (ant-registry.ts).
 * - An ant qualifies for a task when it serves the task's method and has every one of
 *   its tags; among qualifying ants with room, the least loaded wins (the built-in ant
 *   on a tie: it costs no round trip). Remote ants take at most `max_capacity` tasks.
 * - When none qualifies with room, the task waits (still READY) until one does, up to
 *   the task's timeout, then fails with COLONY_NO_ANT saying which ants are connected;
 *   a cancel or job timeout ends the wait at once.
 * - A job whose first task no ant here serves at all is not started: the engine hands it
 *   back to the store (PENDING, due again after a back-off up to 30 s, sooner when an ant
 *   connects; `deferral`), so such jobs take no memory or claims here and a server that
 *   has the ant may run them. Its task's and its job's timeouts count from the first
 *   deferral. A job whose later task no ant serves keeps waiting here, but does not count
 *   against the engine's job limit (`parkedJobs`).
 * - Without remote ants (`colony run`), tags are not routing constraints: every task
 *   runs here if an executor serves its method, as before.
 *
 * A task re-attached after a restart goes back to what ran it: an agent's session (which
 * may reconnect and keep it), or the local executor. One recorded READY by a process that
 * died may have been sent to an agent already: it waits (up to the reconnect grace from
 * this server's start) for an agent that says it holds it, and is routed anew if none.
 */
import { ColonyError, ExecutorError } from "../core/errors.ts";
import type { ColonyEventBus } from "../core/events.ts";
import {
  UNKNOWN_EXECUTION,
  type Deferral,
  type DeferralOptions,
  type ExecutionResult,
  type Executor,
  type ExecutorRegistry,
  type TaskDispatcher,
} from "../core/executor.ts";
import type { Method, TaskDefinition } from "../core/job-definition.ts";
import type { TaskExecution } from "../core/job-request.ts";
import { formatDuration } from "../core/duration.ts";
import { isFinal } from "../core/states.ts";
import type { AntRegistry } from "./ant-registry.ts";
import { isAntHandle } from "./ant-handle.ts";
import type { RemoteAntExecutor } from "./remote-ant-executor.ts";

export const NO_ANT = "COLONY_NO_ANT";

/** The longest a job waits for its next try when no ant serves its first task (formicary: 30 s). */
export const MAX_DEFER_MS = 30_000;
/** The first wait; each deferral of the same job doubles it up to MAX_DEFER_MS. */
const FIRST_DEFER_MS = 1000;
/** A deferral not followed up this long after it was due is forgotten (another server took the job). */
const DEFERRAL_KEPT_MS = 60_000;

export interface BuiltinAnt {
  /** How the built-in ant is listed (GET /api/ants), e.g. `<node id>/builtin`. */
  id: string;
  tags: readonly string[];
  /** Methods it offers (default: every method registered here). */
  methods?: readonly Method[];
  /** Tasks it runs at once (max_parallel_tasks; default: no bound of its own). */
  capacity?: number;
}

export interface DispatcherOptions {
  local: ExecutorRegistry;
  builtin: BuiltinAnt;
  /** The remote ants; absent when none can connect (`colony run`). */
  ants?: AntRegistry;
  log?: (message: string) => void;
}

interface Waiter {
  task: TaskDefinition;
  jobRequestId: number;
  executionId: string;
  /** Some ant (with room or not) serves it: it counts in waitingCount. */
  served: boolean;
  since: number;
  resolve(executor: Executor | undefined): void;
  reject(error: Error): void;
  /** Its engine's stop signal: aborted, the wait ends with no executor. */
  signal: AbortSignal;
  /** Ends the wait at the task's timeout. */
  timer?: NodeJS.Timeout;
}

/** A job this server handed back because no ant serves its first task. */
interface Deferred {
  jobRequestId: number;
  task: TaskDefinition;
  /** The task's execution when it exists (a started job's next task, left READY). */
  executionId?: string;
  /** First deferral (ms): the task's timeout counts from here. */
  since: number;
  count: number;
  /** When it is due again. */
  until: number;
}

/** What GET /api/ants says about a task waiting for an ant. */
export interface WaitingTask {
  jobRequestId: number;
  /** Absent for a job left PENDING before its first task was created. */
  executionId?: string;
  taskType: string;
  method: Method;
  tags: string[];
  since: Date;
  /**
   * `busy`: every ant that serves it is at its capacity; `no_ant`: no connected ant serves
   * it; `reconnect`: the server process before this one may have sent it to an agent, and
   * it waits for that agent to reconnect (at most the reconnect grace from this server's
   * start) before it is routed anew.
   */
  reason: "busy" | "no_ant" | "reconnect";
  /** Its job was left PENDING in the store (deferred or handed back), not waiting here. */
  leftPending: boolean;
}

function lostExecutor(method: Method): Executor {
  const unknown = (id: string) =>
    new ExecutorError(UNKNOWN_EXECUTION, `execution '${id}' ran on an ant that is gone`);
  return {
    methods: [method],
    isInstalled: async () => false,
    start: async () => {
      throw new ExecutorError("COLONY_ANT_LOST", "the ant is gone");
    },
    run: async (): Promise<ExecutionResult> => {
      throw new ExecutorError("COLONY_ANT_LOST", "the ant is gone");
    },
    wait: async (id) => {
      throw unknown(id);
    },
    cancel: async (id) => {
      throw unknown(id);
    },
    logStream: async (r) => {
      throw unknown(r.executionId);
    },
    attach: async () => false,
    close: async () => undefined,
  };
}

export class Dispatcher implements TaskDispatcher {
  readonly builtin: BuiltinAnt;
  readonly #local: ExecutorRegistry;
  readonly #ants: AntRegistry | undefined;
  readonly #log: (message: string) => void;
  readonly #builtinTags: ReadonlySet<string>;
  readonly #builtinCapacity: number;
  /** Executions the built-in ant runs now (its load). */
  readonly #localRunning = new Set<string>();
  #waiters: Waiter[] = [];
  /** Jobs handed back for want of an ant, by id (see deferral). */
  readonly #deferred = new Map<number, Deferred>();
  #sweptAt = 0;
  /** Waiters some ant serves (waitingCount). */
  #busyWaiting = 0;
  /** Waiters no ant serves, by job id (parkedJobs). */
  readonly #parked = new Map<number, number>();
  #closed = false;
  /** Aborted by close(): ends the waits for an agent that may hold a task (#findHolder). */
  readonly #closing = new AbortController();
  /** Tasks waiting for an agent that may hold them to reconnect (#holder), by execution id. */
  readonly #holderWaits = new Map<string, WaitingTask>();
  /** Where the next scan of the remote ants starts (executorFor). */
  #cursor = 0;
  /**
   * Stop signals with this dispatcher's abort listener: one listener per signal for
   * every wait under it, not one added and removed per wait (~1-2 µs of each task that
   * waits for a busy ant).
   */
  readonly #watched = new WeakSet<AbortSignal>();
  readonly #detach: Array<() => void> = [];

  constructor(options: DispatcherOptions) {
    this.#local = options.local;
    this.builtin = options.builtin;
    this.#ants = options.ants;
    this.#log = options.log ?? (() => undefined);
    this.#builtinTags = new Set(options.builtin.tags);
    this.#builtinCapacity = options.builtin.capacity ?? Infinity;
    if (this.#ants) {
      const ants = this.#ants;
      const serve = (ant: RemoteAntExecutor) => this.#serve(ant);
      ants.on("changed", serve);
      const recount = () => this.#recount();
      ants.on("connected", recount).on("disconnected", recount).on("gone", recount);
      this.#detach.push(() => {
        ants.off("changed", serve);
        ants.off("connected", recount).off("disconnected", recount).off("gone", recount);
      });
    }
  }

  /** Counts the built-in ant's load from the engine's task events; forgets ended deferred jobs. */
  observe(events: ColonyEventBus): void {
    const onTask = (e: { executionId: string; state: string }) => {
      if (isFinal(e.state as never)) this.finished(e.executionId);
    };
    const onJob = (e: { jobRequestId: number; state: string }) => {
      if (isFinal(e.state as never)) this.#deferred.delete(e.jobRequestId);
    };
    events.on("task:state", onTask);
    events.on("job:state", onJob);
    this.#detach.push(() => {
      events.off("task:state", onTask);
      events.off("job:state", onJob);
    });
  }

  /**
   * Before the engine starts a claimed job: when no ant here serves its first task (no
   * connected one, none within its reconnect grace, not the built-in one), the job goes
   * back to PENDING for a while instead of waiting in memory: 1 s, then twice as long
   * each time, up to 30 s, and at once when an ant connects (the engine wakes deferred
   * jobs then). Once the task's or the job's timeout has passed since the first deferral,
   * the job starts and ends at once (COLONY_NO_ANT or COLONY_JOB_TIMEOUT). Without remote
   * ants (`colony run`) nothing is deferred.
   */
  deferral(
    jobRequestId: number,
    task: TaskDefinition,
    options: DeferralOptions = {},
  ): Deferral | undefined {
    if (!this.#ants || this.#anyServes(task)) return undefined;
    const now = Date.now();
    this.#forgetStale(now);
    const d = this.#entry(jobRequestId, task, now, now);
    d.task = task;
    d.executionId = options.executionId;
    // The task's and the job's timeouts both count from the first deferral (a started
    // job's from its start: `deadline`): once one has passed, the job starts and ends at
    // once (COLONY_NO_ANT, or the job's timeout).
    const left = Math.min(
      timeLeft(d.since, now, task.timeoutMs, options.jobTimeoutMs),
      (options.deadline ?? Number.POSITIVE_INFINITY) - now,
    );
    if (left <= 0) return undefined;
    const delayMs = Math.min(MAX_DEFER_MS, FIRST_DEFER_MS * 2 ** d.count, left);
    d.count++;
    d.until = now + delayMs;
    return {
      delayMs,
      errorCode: NO_ANT,
      errorMessage: `waiting for an ant since ${new Date(d.since).toISOString()} (tried ${d.count} time(s), next try within ${formatDuration(delayMs)}): ${this.#describe(task)}`,
    };
  }

  /** The job's deferral entry; made, waiting since `since`, when it has none. */
  #entry(
    jobRequestId: number,
    task: TaskDefinition,
    since: number,
    now: number,
    executionId?: string,
  ): Deferred {
    let d = this.#deferred.get(jobRequestId);
    if (!d) {
      d = { jobRequestId, task, executionId, since, count: 0, until: now };
      this.#deferred.set(jobRequestId, d);
    }
    return d;
  }

  deferredTask(jobRequestId: number): { task: TaskDefinition; executionId?: string } | undefined {
    const d = this.#deferred.get(jobRequestId);
    return (
      d && { task: d.task, ...(d.executionId === undefined ? {} : { executionId: d.executionId }) }
    );
  }

  deferredSince(jobRequestId: number): number | undefined {
    return this.#deferred.get(jobRequestId)?.since;
  }

  #forgetStale(now: number): void {
    // Once a second at most: deferral() runs for every deferred job claimed again.
    if (now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    for (const [id, d] of this.#deferred) {
      if (now - d.until > DEFERRAL_KEPT_MS) this.#deferred.delete(id);
    }
  }

  release(executionId: string): boolean {
    const i = this.#waiters.findIndex((w) => w.executionId === executionId);
    const waiter = this.#waiters[i];
    if (!waiter || waiter.served) return false;
    this.#takeAt(i);
    // Its wait goes on from when it began, whether its job is deferred now (deferral)
    // or it waits here again (executorFor takes `since` from the entry).
    this.#entry(waiter.jobRequestId, waiter.task, waiter.since, Date.now(), waiter.executionId);
    waiter.resolve(undefined);
    return true;
  }

  /** An execution ended: if the built-in ant ran it, it has room for a waiting task. */
  finished(executionId: string): void {
    if (this.#localRunning.delete(executionId)) this.#serveBuiltin();
  }

  /**
   * Tasks waiting for an ant that is there but at its capacity (back-pressure: the engine
   * claims no further work for them). Tasks that no ant here serves at all do not count:
   * they would otherwise take the engine's look-ahead and stop it from claiming the work
   * it can run. Kept as waiters come and go; counted again when an ant connects or leaves.
   */
  get waitingCount(): number {
    return this.#busyWaiting;
  }

  /**
   * Jobs with a task waiting for an ant that no connected ant serves (a later task: a
   * first one is deferred instead). The engine does not count their runners against
   * maxParallelJobs, or jobs whose deploy step waits for an offline ant would stop it
   * from claiming anything else.
   */
  get parkedJobs(): number {
    return this.#parked.size;
  }

  #park(w: Waiter, by: 1 | -1): void {
    const n = (this.#parked.get(w.jobRequestId) ?? 0) + by;
    if (n > 0) this.#parked.set(w.jobRequestId, n);
    else this.#parked.delete(w.jobRequestId);
  }

  /** An ant connected or left: which waiting tasks some ant serves may have changed. */
  #recount(): void {
    let n = 0;
    this.#parked.clear();
    for (const w of this.#waiters) {
      if ((w.served = this.#anyServes(w.task))) n++;
      else this.#park(w, 1);
    }
    this.#busyWaiting = n;
  }

  /** Whether the built-in ant or a connected one serves `task` (room or not). */
  #anyServes(task: TaskDefinition): boolean {
    if (this.#builtinFor(task)) return true;
    if (!this.#ants) return false;
    for (const ant of this.#ants.all()) if (ant.serves(task.method, task.tags)) return true;
    return false;
  }

  /** Tasks the built-in ant runs now. */
  get builtinLoad(): number {
    return this.#localRunning.size;
  }

  /** Methods the built-in ant offers. */
  builtinMethods(): Method[] {
    const here = this.#local.methods();
    return this.builtin.methods ? here.filter((m) => this.builtin.methods!.includes(m)) : here;
  }

  /**
   * Tasks waiting for an ant with room, oldest first (at most `limit`): jobs left PENDING
   * because no ant serves their first task, then tasks waiting in this server.
   */
  waiting(limit = Infinity): WaitingTask[] {
    this.#forgetStale(Date.now());
    const out: WaitingTask[] = [];
    // A deferral's entry is made at its first deferral: the map's order is the oldest first.
    for (const d of this.#deferred.values()) {
      if (out.length >= limit) return out;
      out.push({
        jobRequestId: d.jobRequestId,
        ...(d.executionId === undefined ? {} : { executionId: d.executionId }),
        taskType: d.task.taskType,
        method: d.task.method,
        tags: [...d.task.tags],
        since: new Date(d.since),
        reason: "no_ant",
        leftPending: true,
      });
    }
    // Tasks an earlier process left READY: older than any waiting in this one.
    for (const h of this.#holderWaits.values()) {
      if (out.length >= limit) return out;
      out.push({ ...h, tags: [...h.tags] });
    }
    for (const w of this.#waiters) {
      if (out.length >= limit) return out;
      out.push({
        jobRequestId: w.jobRequestId,
        executionId: w.executionId,
        taskType: w.task.taskType,
        method: w.task.method,
        tags: [...w.task.tags],
        since: new Date(w.since),
        reason: w.served ? "busy" : "no_ant",
        leftPending: false,
      });
    }
    return out;
  }

  /** How many wait, by reason (as in waiting()), without listing them. */
  waitingCounts(): { busy: number; noAnt: number; reconnect: number } {
    this.#forgetStale(Date.now());
    const busy = this.#busyWaiting;
    return {
      busy,
      noAnt: this.#deferred.size + this.#waiters.length - busy,
      reconnect: this.#holderWaits.size,
    };
  }

  executorFor(
    task: TaskDefinition,
    execution: TaskExecution,
    signal: AbortSignal,
    mayHaveStarted = false,
  ): Executor | undefined | Promise<Executor | undefined> {
    if (execution.state !== "READY") return this.#reattach(task, execution);
    const ants = this.#ants;
    if (!ants) return this.#local.get(task.method);
    // A job that was deferred: its first task has waited since the first deferral (and is
    // no longer listed as left PENDING).
    let since: number | undefined;
    if (this.#deferred.size > 0) {
      const d = this.#deferred.get(execution.jobRequestId);
      if (d && d.task.taskType === task.taskType) {
        this.#deferred.delete(execution.jobRequestId);
        since = d.since;
      }
    }
    if (mayHaveStarted && !ants.closed) {
      return this.#findHolder(task, execution, signal, ants, since);
    }
    return this.#route(task, execution, signal, ants, since);
  }

  /** The ant for a task as new: the least loaded with room, else a wait for one. */
  #route(
    task: TaskDefinition,
    execution: TaskExecution,
    signal: AbortSignal,
    ants: AntRegistry,
    since: number | undefined,
  ): Executor | undefined | Promise<Executor | undefined> {
    // Tasks wait only while no ant that serves them has room (room that frees up goes to
    // the oldest waiter at once): one that routes like the newest waiter waits behind it,
    // without a look at every ant.
    const newest = this.#waiters.at(-1);
    if (newest !== undefined && sameRoute(newest.task, task)) {
      return this.#wait(task, execution, signal, newest.served, since);
    }
    const local = this.#builtinFor(task);
    let best: RemoteAntExecutor | undefined;
    let bestLoad = Infinity;
    let qualifying = false;
    // The scan starts after the ant picked last: idle ants are found without passing
    // over the busy ones each time, and ties go round the ants in turn.
    const all = ants.all();
    const n = all.length;
    let bestAt = 0;
    for (
      let k = 0, i = this.#cursor < n ? this.#cursor : 0;
      k < n;
      k++, i = i + 1 < n ? i + 1 : 0
    ) {
      const ant = all[i]!;
      if (!ant.serves(task.method, task.tags)) continue;
      qualifying = true;
      if (!ant.hasRoom()) continue;
      const load = ant.load;
      if (load < bestLoad) {
        best = ant;
        bestLoad = load;
        bestAt = i;
        if (load === 0) break; // an idle ant: none can have less load
      }
    }
    const localRoom = local !== undefined && this.#localRunning.size < this.#builtinCapacity;
    if (local && localRoom && (!best || this.#localRunning.size <= bestLoad)) {
      this.#localRunning.add(execution.id);
      return local;
    }
    if (local) qualifying = true;
    if (best) {
      this.#cursor = bestAt + 1;
      best.reserve();
      return best;
    }
    return this.#wait(task, execution, signal, qualifying, since);
  }

  /**
   * A task an earlier server process recorded READY, which it may have sent to an agent
   * before it died: it goes to the agent that says it holds it (which runs it on, not
   * twice), waiting for agents to reconnect within the reconnect grace of this server's
   * start; when none holds it, it is routed as any task (SPEC section 5).
   */
  async #findHolder(
    task: TaskDefinition,
    execution: TaskExecution,
    signal: AbortSignal,
    ants: AntRegistry,
    since: number | undefined,
  ): Promise<Executor | undefined> {
    if (this.#closed) throw closedError();
    const holder = await this.#holder(
      ants,
      execution,
      AbortSignal.any([signal, this.#closing.signal]),
      "routed as a new task",
      task,
    );
    if (signal.aborted) return undefined;
    if (this.#closed) throw closedError();
    if (holder) {
      holder.reserve();
      return holder;
    }
    return this.#route(task, execution, signal, ants, since);
  }

  async holderFor(execution: TaskExecution): Promise<Executor | undefined> {
    const ants = this.#ants;
    if (!ants || ants.closed || this.#closed) return undefined;
    const holder = await this.#holder(ants, execution, this.#closing.signal, "looked for here");
    if (!holder || this.#closed) return undefined;
    holder.reserve();
    return holder;
  }

  /**
   * AntRegistry.awaitHolder, saying in the log when the task waits and how that ended,
   * and listing it meanwhile in waiting() (reason `reconnect`).
   */
  async #holder(
    ants: AntRegistry,
    execution: TaskExecution,
    signal: AbortSignal,
    otherwise: string,
    task?: TaskDefinition,
  ): Promise<RemoteAntExecutor | undefined> {
    const left = ants.recoveryLeftMs();
    if (left <= 0 || ants.holderOf(execution.id)) return ants.awaitHolder(execution.id, signal);
    const what = `task ${execution.taskType} (${execution.id}) of job ${execution.jobRequestId}`;
    this.#log(
      `${what}: the server process before this one may have sent it to an agent; waiting up to ${formatDuration(left)} for an agent that holds it`,
    );
    this.#holderWaits.set(execution.id, {
      jobRequestId: execution.jobRequestId,
      executionId: execution.id,
      taskType: execution.taskType,
      method: execution.method,
      tags: task ? [...task.tags] : [],
      since: new Date(),
      reason: "reconnect",
      leftPending: false,
    });
    let holder: RemoteAntExecutor | undefined;
    try {
      holder = await ants.awaitHolder(execution.id, signal);
    } finally {
      this.#holderWaits.delete(execution.id);
    }
    if (holder) this.#log(`${what}: taken back from ant ${holder.antId}, which runs it`);
    else if (!signal.aborted) this.#log(`${what}: no agent holds it; ${otherwise}`);
    return holder;
  }

  #builtinFor(task: TaskDefinition): Executor | undefined {
    if (this.builtin.methods && !this.builtin.methods.includes(task.method)) return undefined;
    for (const tag of task.tags) if (!this.#builtinTags.has(tag)) return undefined;
    return this.#local.get(task.method);
  }

  #reattach(task: TaskDefinition, execution: TaskExecution): Executor | undefined {
    const handle = execution.handle;
    if (!isAntHandle(handle)) {
      this.#localRunning.add(execution.id); // it counts against the built-in ant's room
      return this.#local.get(task.method);
    }
    if (handle.ant_session && this.#ants && !this.#ants.closed) {
      return this.#ants.forSession(handle.ant_session, handle.ant_id);
    }
    return lostExecutor(task.method);
  }

  #wait(
    task: TaskDefinition,
    execution: TaskExecution,
    signal: AbortSignal,
    qualifying: boolean,
    since = Date.now(),
  ): Promise<Executor | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (this.#closed) return Promise.reject(closedError());
    const timeout = task.timeoutMs;
    const noAnt = () =>
      new ColonyError(
        NO_ANT,
        `no ant took task ${task.taskType} within its timeout (${formatDuration(timeout!)}): ${this.#describe(task)}`,
        { status: 503, retryable: true },
      );
    const left = timeLeft(since, Date.now(), timeout);
    if (left <= 0) return Promise.reject(noAnt());
    if (!this.#watched.has(signal)) {
      this.#watched.add(signal);
      signal.addEventListener("abort", () => this.#aborted(signal), { once: true });
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        task,
        jobRequestId: execution.jobRequestId,
        executionId: execution.id,
        served: qualifying,
        since,
        resolve,
        reject,
        signal,
      };
      if (left !== Infinity) {
        waiter.timer = setTimeout(() => {
          this.#remove(waiter);
          reject(noAnt());
        }, left);
      }
      this.#waiters.push(waiter);
      if (qualifying) this.#busyWaiting++;
      else this.#park(waiter, 1);
      // Waiting for a busy ant is ordinary back-pressure; no qualifying ant at all is worth a line.
      if (!qualifying) {
        this.#log(
          `task ${task.taskType} (${execution.id}) waits for an ant: ${this.#describe(task)}`,
        );
      }
    });
  }

  #remove(waiter: Waiter): void {
    const i = this.#waiters.indexOf(waiter);
    if (i >= 0) this.#takeAt(i);
    else clearTimeout(waiter.timer);
  }

  /** A stop signal was aborted: the tasks waiting under it get no executor. */
  #aborted(signal: AbortSignal): void {
    for (let i = 0; i < this.#waiters.length;) {
      const waiter = this.#waiters[i]!;
      if (waiter.signal !== signal) {
        i++;
        continue;
      }
      this.#takeAt(i);
      waiter.resolve(undefined);
    }
  }

  /** Takes the waiter at `i` out of the queue (and out of waitingCount). */
  #takeAt(i: number): void {
    // The oldest is the usual one: shift() moves the rest without a new array.
    const waiter = (i === 0 ? this.#waiters.shift() : this.#waiters.splice(i, 1)[0])!;
    if (waiter.served) this.#busyWaiting--;
    else this.#park(waiter, -1);
    clearTimeout(waiter.timer);
  }

  /**
   * `ant` has room now (a task ended, or it connected): it takes the oldest waiting tasks
   * it qualifies for. Only it changed: tasks wait only when no qualifying ant had room.
   */
  #serve(ant: RemoteAntExecutor): void {
    if (this.#waiters.length === 0) return;
    for (let i = 0; i < this.#waiters.length && ant.hasRoom();) {
      const waiter = this.#waiters[i]!;
      if (!ant.serves(waiter.task.method, waiter.task.tags)) {
        i++;
        continue;
      }
      this.#takeAt(i);
      ant.reserve();
      waiter.resolve(ant);
    }
  }

  /** The built-in ant has room: it takes the oldest waiting tasks it serves. */
  #serveBuiltin(): void {
    for (let i = 0; i < this.#waiters.length;) {
      if (this.#localRunning.size >= this.#builtinCapacity) return;
      const waiter = this.#waiters[i]!;
      const local = this.#builtinFor(waiter.task);
      if (!local) {
        i++;
        continue;
      }
      this.#takeAt(i);
      this.#localRunning.add(waiter.executionId);
      waiter.resolve(local);
    }
  }

  /** Why no ant takes `task`, for messages. */
  #describe(task: TaskDefinition): string {
    const wanted = `method ${task.method}${task.tags.length > 0 ? ` and tags ${task.tags.join(", ")}` : ""}`;
    const ants = this.#ants?.list() ?? [];
    if (ants.length === 0 && !this.#builtinFor(task)) {
      return `no remote ant is connected and the built-in ant does not serve ${wanted}; start one (colony ant --methods ${task.method}${task.tags.length > 0 ? ` --tags ${task.tags.join(",")}` : ""}) or connect a worker to /ws/ants`;
    }
    const qualifying = ants.filter((a) => a.serves(task.method, task.tags));
    const list = (xs: RemoteAntExecutor[]) =>
      xs
        .slice(0, 5)
        .map(
          (a) =>
            `${a.antId} (${a.methods.join(",")}; tags ${[...a.tags].join(",") || "none"}; ${a.load}/${a.capacity}${a.state === "connected" ? "" : `, ${a.state}`})`,
        )
        .join("; ");
    const builtin = this.#builtinFor(task)
      ? `the built-in ant (${this.#localRunning.size}/${this.#builtinCapacity}, max_parallel_tasks)`
      : undefined;
    if (qualifying.length === 0 && !builtin) {
      return `none of the ${ants.length} connected ant(s) serves ${wanted}: ${list(ants)}`;
    }
    const full = [builtin, qualifying.length > 0 ? list(qualifying) : undefined];
    return `every ant that serves ${wanted} is at its max_capacity: ${full.filter(Boolean).join("; ")}`;
  }

  /** Tasks still waiting end with COLONY_EXECUTOR_CLOSED (left for the next start). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    for (const detach of this.#detach.splice(0)) detach();
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#busyWaiting = 0;
    this.#parked.clear();
    this.#deferred.clear();
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(closedError());
    }
  }
}

/** Ms left at `now` of the shortest of `timeouts` (0 or undefined: none) counted from `since`. */
function timeLeft(since: number, now: number, ...timeouts: Array<number | undefined>): number {
  let left = Infinity;
  for (const t of timeouts) if (t !== undefined && t > 0) left = Math.min(left, since + t - now);
  return left;
}

/** Whether two tasks go to the same ants (the same method and tags, in the same order). */
function sameRoute(a: TaskDefinition, b: TaskDefinition): boolean {
  if (a === b) return true;
  if (a.method !== b.method || a.tags.length !== b.tags.length) return false;
  for (let i = 0; i < a.tags.length; i++) if (a.tags[i] !== b.tags[i]) return false;
  return true;
}

function closedError(): ExecutorError {
  return new ExecutorError(
    "COLONY_EXECUTOR_CLOSED",
    "the server is stopping; the task waits for an ant again at the next start",
  );
}
