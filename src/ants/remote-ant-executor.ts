/**
 * One remote ant as an Executor: the engine starts, waits for, cancels and streams the
 * output of a task on a worker connected to /ws/ants exactly as it does with a local
 * executor (SPEC section 5).
 *
 * - start sends the TaskRequest frame (or queues it while the ant is at max_capacity);
 *   the reply with a final status is the result; EXECUTING re-sends the request after a
 *   short delay with task_retry + 1; replies are matched by task_execution_id (or
 *   co_relation_id) and must come from this ant: unknown, duplicate, stale (an older
 *   task_retry) and late replies are reported to the caller and change nothing.
 * - Output: a `colony ant` agent streams output frames (byte offset + base64 data),
 *   appended to the unit's output file in order; a reply's `stdout` is appended too.
 * - An ant that registered with a `session` (the agent) may reconnect: its tasks keep
 *   running for `reconnectGraceMs`, and the new connection lists the ones it still
 *   holds and gets the byte offsets to resend output from. Without a session (a small
 *   worker), or once the grace ends, its in-flight tasks fail with the retryable
 *   COLONY_ANT_LOST and are retried per their policy. The same mechanism re-attaches
 *   tasks after a server restart (`attach`).
 */
import type { AntHandle } from "./ant-handle.ts";
import { mkdirSync, statSync, createWriteStream, type WriteStream } from "node:fs";
import {
  notStarted,
  type ExecutionHandle,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
  type LogStreamRequest,
} from "../core/executor.ts";
import { ExecutionExistsError } from "../core/errors.ts";
import type { Method } from "../core/job-definition.ts";
import {
  ExecutionTable,
  existingExecution,
  type FinishedRetention,
  newTracked,
  type TrackedExecution,
} from "../executors/execution-table.ts";
import {
  AGENT_PROTOCOL,
  encodeTaskRequest,
  resultOf,
  stdoutOf,
  type OutputFrame,
  type Registration,
  type ServerFrame,
  type TaskResponse,
} from "./task-request.ts";

export const ANT_LOST = "COLONY_ANT_LOST";

/** The live connection of an ant (a WebSocket in the server). */
export interface AntLink {
  send(text: string): void;
  close(code: number, reason: string): void;
  readonly remoteAddress: string;
}

/** What the registry hears from an ant. */
export interface AntHooks {
  /** Room was freed, or the ant (re)connected: tasks waiting for an ant may go to it. */
  changed(ant: RemoteAntExecutor): void;
  /** The ant is gone for good (no session, or its reconnect grace ended). */
  gone(ant: RemoteAntExecutor): void;
  /** Tasks failed with COLONY_ANT_LOST. */
  lost?(ant: RemoteAntExecutor, count: number): void;
  /** Tasks sent (first send and re-sends). */
  dispatched?(ant: RemoteAntExecutor): void;
}

export interface RemoteAntOptions {
  /** The registry key: `s:<session>` for agents, `c:<n>` for one connection. */
  key: string;
  registration: Registration;
  link?: AntLink;
  /** Delay before re-sending a request answered EXECUTING (default 1 s). */
  pollDelayMs?: number;
  /** How long an agent's tasks wait for it to reconnect (default 10 s). */
  reconnectGraceMs?: number;
  /** How long a cancelled agent task waits for the agent's answer (default 15 s). */
  cancelGraceMs?: number;
  hooks: AntHooks;
  log?: (message: string) => void;
  /** Where finished tasks are kept a while: one for all the ants of a registry. */
  retention?: FinishedRetention<TrackedExecution>;
}

export { isAntHandle, type AntHandle } from "./ant-handle.ts";

interface RemoteExecution extends TrackedExecution {
  request: ExecutionRequest;
  /** task_retry of the request last sent. */
  taskRetry: number;
  correlationId?: string;
  /** The ant has it (sent on this or an earlier connection of the session). */
  sent: boolean;
  /** A final reply arrived; its result is being recorded. */
  replied: boolean;
  pollTimer?: NodeJS.Timeout;
  cancelTimer?: NodeJS.Timeout;
  /** Bytes in the output file. */
  written: number;
  writer?: WriteStream;
  /** After a server restart: resolves attach() once the agent is back (or not). */
  attachWaiter?: (held: boolean) => void;
}

/** How a frame from the ant was taken; anything but "ok" changed nothing. */
export type FrameVerdict = "ok" | "unknown" | "late" | "duplicate" | "stale" | "gap";

export type AntState = "connected" | "disconnected";

/** How long an agent's tasks wait for it to reconnect, by default (config `ant.reconnect_grace`). */
export const DEFAULT_RECONNECT_GRACE_MS = 10_000;

/** Bytes of a task's output already in its unit's file (0 when there is none). */
function outputSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export class RemoteAntExecutor implements Executor {
  readonly key: string;
  methods: readonly Method[];
  antId: string;
  tags: ReadonlySet<string>;
  capacity: number;
  readonly session: string | undefined;
  /** A `colony ant` agent (gets cancel, ack and registered frames). */
  agent: boolean;

  /** A start with adoptOnly takes back only a task the agent says it holds. */
  readonly adopts = true;

  /** An agent fetches its tasks' dependencies and uploads their artifacts itself. */
  get movesArtifacts(): boolean {
    return this.agent;
  }
  remoteAddress: string;
  connectedAt: Date;
  /** Any sign of life, ms since the epoch (a Date per frame would cost more). */
  #lastSeen: number;
  state: AntState;
  /** Tasks sent to this ant since it registered (re-sends included). */
  dispatched = 0;
  readonly #table: ExecutionTable<RemoteExecution>;
  readonly #hooks: AntHooks;
  readonly #log: (message: string) => void;
  readonly #pollDelayMs: number;
  readonly #graceMs: number;
  readonly #cancelGraceMs: number;
  #link: AntLink | undefined;
  #reserved = 0;
  /** Tasks to send, in order, once there is room (new ones and EXECUTING re-sends). */
  readonly #queue: RemoteExecution[] = [];
  #releaseScheduled = false;
  /** What start() answers: the ant's handle (see start). */
  #started: Promise<AntHandle> | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  /** Ids the agent said it holds that no task here claimed (yet): a restart's re-attach may. */
  #heldUnclaimed = new Set<string>();
  #gone = false;

  constructor(options: RemoteAntOptions) {
    const r = options.registration;
    this.key = options.key;
    this.antId = r.ant_id;
    this.methods = [...r.methods];
    this.tags = new Set(r.tags ?? []);
    this.capacity = r.max_capacity ?? 1;
    this.session = r.session;
    this.agent = r.protocol === AGENT_PROTOCOL;
    this.#link = options.link;
    this.remoteAddress = options.link?.remoteAddress ?? "";
    this.connectedAt = new Date();
    this.#lastSeen = Date.now();
    this.state = options.link ? "connected" : "disconnected";
    this.#hooks = options.hooks;
    this.#log = options.log ?? (() => undefined);
    this.#pollDelayMs = options.pollDelayMs ?? 1000;
    this.#graceMs = options.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    this.#cancelGraceMs = options.cancelGraceMs ?? 15_000;
    this.#table = new ExecutionTable<RemoteExecution>(
      `ant ${this.antId}`,
      undefined,
      options.retention,
    );
    if (!options.link) this.#startGrace();
  }

  // -- routing ---------------------------------------------------------------------------

  /** Tasks on this ant (running, queued, between polls) plus reservations. */
  get load(): number {
    return this.#table.runningCount + this.#reserved;
  }

  /** Task ids on this ant now. */
  runningIds(): string[] {
    return this.#table.running().map((e) => e.id);
  }

  hasRoom(): boolean {
    return this.state === "connected" && !this.#gone && this.load < this.capacity;
  }

  /** Whether this ant may run `method` with all of `tags` (SPEC section 5 routing). */
  serves(method: Method, tags: readonly string[]): boolean {
    if (!this.methods.includes(method)) return false;
    for (const tag of tags) if (!this.tags.has(tag)) return false;
    return true;
  }

  get lastSeenAt(): Date {
    return new Date(this.#lastSeen);
  }

  /**
   * Holds one slot for a start() coming in this same turn of the event loop (the
   * dispatcher picks, the engine starts); released at the next turn if not used. The
   * ants reserved in one turn are released by one setImmediate, not one each.
   */
  reserve(): void {
    this.#reserved++;
    if (this.#releaseScheduled) return;
    this.#releaseScheduled = true;
    if (RemoteAntExecutor.#toRelease.length === 0) setImmediate(RemoteAntExecutor.#releaseAll);
    RemoteAntExecutor.#toRelease.push(this);
  }

  static #toRelease: RemoteAntExecutor[] = [];

  static #releaseAll(): void {
    const ants = RemoteAntExecutor.#toRelease;
    RemoteAntExecutor.#toRelease = [];
    // Every ant's reservation is released before any listener runs: one that throws
    // cannot leave another ant holding a slot.
    const freed = ants.filter((ant) => {
      ant.#releaseScheduled = false;
      const had = ant.#reserved > 0;
      ant.#reserved = 0;
      return had;
    });
    for (const ant of freed) ant.#hooks.changed(ant);
  }

  // -- the Executor contract -------------------------------------------------------------

  async isInstalled(): Promise<boolean> {
    return this.state === "connected";
  }

  start(request: ExecutionRequest): Promise<AntHandle> {
    let e: RemoteExecution;
    try {
      e = this.#table.add({
        ...newTracked(request.executionId, request.unitDir),
        request,
        taskRetry: request.attempt ?? 0,
        sent: false,
        replied: false,
        written: 0,
      });
    } catch (error) {
      // Started here already (this server drives the job again after a store failure):
      // it goes on as started on this ant, which the handle names.
      if (this.runs(request.executionId)) {
        const exists = error as Error;
        return Promise.reject(new ExecutionExistsError(exists.message, { ...this.#handle() }));
      }
      return Promise.reject(error as Error);
    }
    if (this.#reserved > 0) this.#reserved--;
    if (request.mayHaveStarted && request.adoptOnly && !this.holdsUnclaimed(e.id)) {
      this.#table.remove(e.id);
      return Promise.reject(notStarted(e.id));
    }
    if (this.#gone) {
      this.#lose(e, "left");
    } else if (request.mayHaveStarted && this.holdsUnclaimed(e.id)) {
      // An earlier server process sent it here and died before recording that: it runs
      // on, and the agent resends what of its output is not here yet.
      e.sent = true;
      e.written = outputSize(e.outPath);
      this.#resumeHeld(e);
    } else {
      this.#queue.push(e);
      this.#pump();
    }
    // One settled promise of the (frozen) handle serves every start until the ant's id
    // changes: not an async function's promise and a handle object per task.
    return (this.#started ??= Promise.resolve(this.#handle()));
  }

  wait(executionId: string): Promise<ExecutionResult> {
    return this.#table.wait(executionId);
  }

  async run(request: ExecutionRequest): Promise<ExecutionResult> {
    await this.start(request);
    return this.wait(request.executionId);
  }

  async cancel(executionId: string): Promise<void> {
    const e = this.#table.requireRunning(executionId);
    if (e.cancelled) return;
    e.cancelled = true;
    clearTimeout(e.pollTimer);
    e.pollTimer = undefined;
    if (e.sent && !e.replied && this.agent && this.#link) {
      // The agent stops the work and answers CANCELLED; if it does not, stop waiting.
      this.#sendFrame({ type: "cancel", task_execution_id: e.id });
      e.cancelTimer = setTimeout(() => this.#finishKilled(e), this.#cancelGraceMs);
      e.cancelTimer.unref();
      return;
    }
    // A small worker has no cancel message: forget the task (a late reply is ignored).
    this.#finishKilled(e);
  }

  logStream(request: LogStreamRequest) {
    return this.#table.logStream(request);
  }

  /**
   * After a server restart: takes back a task this ant's session ran, once the agent
   * reconnects and says it still holds it (false when it does not within the grace).
   */
  async attach(request: ExecutionRequest, _handle: ExecutionHandle): Promise<boolean> {
    if (!this.session || this.#gone) return false;
    if (this.#table.get(request.executionId)) throw existingExecution(request.executionId);
    const e = this.#table.add({
      ...newTracked(request.executionId, request.unitDir),
      request,
      taskRetry: request.attempt ?? 0,
      sent: true,
      replied: false,
      written: outputSize(`${request.unitDir}/stdout`),
    });
    if (this.#resumeHeld(e)) return true;
    if (this.state === "connected") {
      this.#table.remove(e.id);
      return false;
    }
    return new Promise<boolean>((resolve) => {
      e.attachWaiter = (held) => {
        e.attachWaiter = undefined;
        if (!held) this.#table.remove(e.id);
        resolve(held);
      };
    });
  }

  async close(): Promise<void> {
    this.#gone = true;
    clearTimeout(this.#graceTimer);
    for (const e of this.#table.running()) {
      clearTimeout(e.pollTimer);
      clearTimeout(e.cancelTimer);
      e.attachWaiter?.(false);
      e.writer?.end();
    }
    this.#table.close();
  }

  // -- frames from the ant ---------------------------------------------------------------

  /** A TaskResponse from this ant's connection. */
  onResponse(response: TaskResponse): FrameVerdict {
    this.#lastSeen = Date.now();
    const e = this.#find(response);
    if (!e) return "unknown";
    if (e.result) return "late";
    if (e.replied || e.pollTimer) return "duplicate";
    if (!e.sent) return "unknown";
    if (typeof response.task_retry === "number" && response.task_retry !== e.taskRetry) {
      return "stale";
    }
    if (response.status === "EXECUTING") {
      // A polling task: ask again after a pause, with task_retry + 1 (formicary's sensors).
      e.sent = false;
      e.pollTimer = setTimeout(() => {
        e.pollTimer = undefined;
        if (e.result || e.cancelled) return;
        e.taskRetry++;
        this.#queue.push(e);
        this.#pump();
      }, this.#pollDelayMs);
      e.pollTimer.unref();
      return "ok";
    }
    e.replied = true;
    const text = stdoutOf(response);
    if (text) this.#append(e, Buffer.from(text, "utf8"));
    if (this.agent) this.#sendFrame({ type: "ack", task_execution_id: e.id });
    this.#finish(e, resultOf(response, this.antId));
    return "ok";
  }

  /** An output frame from this ant's connection (agents). */
  onOutput(frame: OutputFrame): FrameVerdict {
    this.#lastSeen = Date.now();
    const e = this.#table.get(frame.task_execution_id);
    if (!e) return "unknown";
    if (e.result || e.replied) return "late";
    const bytes = Buffer.from(frame.data, "base64");
    if (frame.offset > e.written) return "gap";
    const skip = e.written - frame.offset;
    if (skip >= bytes.length) return bytes.length === 0 ? "ok" : "duplicate";
    this.#append(e, skip > 0 ? bytes.subarray(skip) : bytes);
    return "ok";
  }

  /** Any sign of life (a pong, a frame). */
  touch(): void {
    this.#lastSeen = Date.now();
  }

  // -- the connection --------------------------------------------------------------------

  /** The connection of this ant, if connected. */
  get link(): AntLink | undefined {
    return this.#link;
  }

  /**
   * The agent reconnected with the same session (or registered again while its old
   * connection lingers): its tasks continue on the new connection. Tasks it no longer
   * holds are lost; it is told the output offsets of those it keeps.
   */
  reattach(link: AntLink, registration: Registration): void {
    const old = this.#link;
    this.#link = link;
    if (old && old !== link) old.close(4000, "replaced by a newer connection of the same ant");
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    this.state = "connected";
    this.antId = registration.ant_id;
    this.#started = undefined; // its handle names the ant
    this.methods = [...registration.methods];
    this.tags = new Set(registration.tags ?? []);
    this.capacity = registration.max_capacity ?? 1;
    this.agent = registration.protocol === AGENT_PROTOCOL;
    this.remoteAddress = link.remoteAddress;
    this.connectedAt = new Date();
    this.#lastSeen = Date.now();
    const held = new Set(registration.running ?? []);
    const resume: Record<string, number> = {};
    const lost: RemoteExecution[] = [];
    for (const e of this.#table.running()) {
      if (e.attachWaiter) {
        const has = held.has(e.id);
        if (has) resume[e.id] = e.written;
        e.attachWaiter(has);
      } else if (e.sent && !e.replied) {
        if (held.has(e.id)) resume[e.id] = e.written;
        else lost.push(e);
      }
      held.delete(e.id);
    }
    // Held tasks that ended here meanwhile (cancelled, timed out): the agent forgets them.
    for (const id of held) {
      if (this.#table.get(id)?.result) {
        held.delete(id);
        this.#sendFrame({ type: "ack", task_execution_id: id });
      }
    }
    this.#heldUnclaimed = held;
    if (this.agent) this.#sendFrame({ type: "registered", ant_id: this.antId, resume });
    for (const e of lost) this.#lose(e, "reconnected without it (the agent restarted?)");
    if (lost.length > 0) this.#hooks.lost?.(this, lost.length);
    this.#pump();
    this.#hooks.changed(this);
  }

  /**
   * Its connection ended (closed, or stopped answering pings). With `keepTasks` (the
   * server is stopping: not the ant's fault) its tasks are left for the next start.
   */
  detach(link: AntLink, why: string, keepTasks = false): void {
    if (this.#link !== link) return; // an older connection, already replaced
    this.#link = undefined;
    this.state = "disconnected";
    if (this.#gone || keepTasks) return;
    if (!this.session) {
      this.#loseAll(why);
      this.#bury();
      return;
    }
    this.#startGrace(why);
  }

  /** Whether `executionId` runs on this ant as far as this server knows (sent, no result yet). */
  runs(executionId: string): boolean {
    const e = this.#table.get(executionId);
    return e !== undefined && e.result === undefined;
  }

  /** Whether the agent said it holds `executionId`, which no task here took back yet. */
  holdsUnclaimed(executionId: string): boolean {
    return this.state === "connected" && this.#heldUnclaimed.has(executionId);
  }

  /**
   * Takes back a task the connected agent says it holds (an earlier server process sent
   * it): nothing is sent again; the agent is told how much of its output is here
   * (`e.written`) and resends the rest, then its result.
   */
  #resumeHeld(e: RemoteExecution): boolean {
    if (!this.holdsUnclaimed(e.id)) return false;
    this.#heldUnclaimed.delete(e.id);
    this.#sendFrame({ type: "registered", ant_id: this.antId, resume: { [e.id]: e.written } });
    return true;
  }

  /**
   * The first registration's answer to an agent: nothing to resume yet. Tasks it says it
   * holds may be claimed a moment later by a restarted server re-attaching them.
   */
  welcome(registration: Registration): void {
    this.#heldUnclaimed = new Set(registration.running ?? []);
    if (this.agent) this.#sendFrame({ type: "registered", ant_id: this.antId, resume: {} });
  }

  // -- internals -------------------------------------------------------------------------

  #handle(): AntHandle {
    return Object.freeze({
      ant_key: this.key,
      ant_id: this.antId,
      ...(this.session ? { ant_session: this.session } : {}),
    });
  }

  #find(response: TaskResponse): RemoteExecution | undefined {
    if (response.task_execution_id !== undefined) {
      return this.#table.get(response.task_execution_id);
    }
    return this.#table.running().find((e) => e.correlationId === response.co_relation_id);
  }

  /**
   * Sends queued requests while there is room: every unfinished task not in the queue
   * holds a slot (sent, or between EXECUTING polls).
   */
  #pump(): void {
    const link = this.#link;
    if (!link || this.state !== "connected") return;
    while (
      this.#queue.length > 0 &&
      this.#table.runningCount - this.#queue.length < this.capacity
    ) {
      const e = this.#queue.shift()!;
      if (e.result || e.cancelled) continue;
      const { text, correlationId } = encodeTaskRequest(e.request, { taskRetry: e.taskRetry });
      e.correlationId = correlationId;
      e.sent = true;
      this.dispatched++;
      try {
        link.send(text);
      } catch (error) {
        this.#log(`ant ${this.antId}: could not send task ${e.id}: ${(error as Error).message}`);
      }
      this.#hooks.dispatched?.(this);
    }
  }

  /**
   * Hands hook `logs` of a task this agent runs to the agent, which appends them to the
   * task's output (LogFrame). False when it cannot take them now (not an agent, not its
   * task, not connected): the caller then writes them here.
   */
  appendLogs(executionId: string, bytes: Buffer): boolean {
    if (!this.agent || !this.#link || this.state !== "connected") return false;
    const e = this.#table.get(executionId);
    if (!e || e.result || !e.sent) return false;
    this.#sendFrame({
      type: "log",
      task_execution_id: executionId,
      data: bytes.toString("base64"),
    });
    return true;
  }

  #sendFrame(frame: ServerFrame): void {
    try {
      this.#link?.send(JSON.stringify(frame));
    } catch {
      // the connection is going away; its close handler takes over
    }
  }

  #append(e: RemoteExecution, bytes: Buffer): void {
    if (!e.writer) {
      mkdirSync(e.request.unitDir, { recursive: true, mode: 0o700 });
      e.writer = createWriteStream(e.outPath, { flags: "a", mode: 0o600 });
      e.writer.on("error", (error) =>
        this.#log(`ant ${this.antId}: writing the output of ${e.id} failed: ${error.message}`),
      );
    }
    e.written += bytes.length;
    e.writer.write(bytes);
  }

  #finish(e: RemoteExecution, result: ExecutionResult): void {
    if (this.#queue.length > 0) {
      const queued = this.#queue.indexOf(e);
      if (queued >= 0) this.#queue.splice(queued, 1);
    }
    if (e.pollTimer) clearTimeout(e.pollTimer);
    if (e.cancelTimer) clearTimeout(e.cancelTimer);
    e.pollTimer = e.cancelTimer = undefined;
    e.replied = true;
    // `written` counts the bytes in the file, those of an earlier server run included.
    // (Every caller passes a result of its own making: it is completed in place.)
    if (e.written === 0) result.wroteOutput = false;
    const writer = e.writer;
    // Every byte is in the file before the engine reads it for ::set-output lines.
    if (writer) writer.end(() => this.#settle(e, result));
    else this.#settle(e, result);
  }

  #settle(e: RemoteExecution, result: ExecutionResult): void {
    if (!this.#table.finish(e, result)) return;
    this.#pump();
    this.#hooks.changed(this);
  }

  #finishKilled(e: RemoteExecution): void {
    this.#finish(e, { exitCode: null, killed: true, error: "cancelled" });
  }

  #lose(e: RemoteExecution, why: string): void {
    if (e.attachWaiter) {
      e.attachWaiter(false);
      return;
    }
    this.#finish(e, {
      exitCode: null,
      killed: false,
      errorCode: ANT_LOST,
      error: `ant ${this.antId} ${why} while it had this task; the task is retried per its retry setting`,
    });
  }

  #loseAll(why: string): void {
    const running = this.#table.running();
    let lost = 0;
    for (const e of running) {
      if (e.cancelled && !e.attachWaiter) this.#finishKilled(e);
      else {
        if (!e.attachWaiter) lost++;
        this.#lose(e, why);
      }
    }
    if (lost > 0) this.#hooks.lost?.(this, lost);
  }

  #startGrace(why = "did not come back"): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      if (this.state === "connected") return;
      this.#loseAll(`${why} and did not reconnect within ${this.#graceMs} ms`);
      this.#bury();
    }, this.#graceMs);
    this.#graceTimer.unref();
  }

  #bury(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#hooks.gone(this);
    // Keep answering wait() for results just recorded, then stop the table's sweep.
    setTimeout(() => void this.close(), 60_000).unref();
  }
}
