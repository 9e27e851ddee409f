/**
 * The remote ants connected to this server (SPEC section 5), each a RemoteAntExecutor.
 * An agent (`colony ant`, with a `session`) is one entry across reconnects; a small
 * worker is one entry per connection. The registry tells listeners (the dispatcher,
 * metrics, the live event log) when ants come, go or free room.
 */
import { EventEmitter } from "node:events";
import {
  DEFAULT_RECONNECT_GRACE_MS,
  RemoteAntExecutor,
  type AntLink,
  type AntHooks,
  type RemoteAntOptions,
} from "./remote-ant-executor.ts";
import { AGENT_PROTOCOL, type Registration } from "./task-request.ts";
import { FinishedRetention, type TrackedExecution } from "../executors/execution-table.ts";

/** How many finished tasks of remote ants the registry keeps known once taken (see #retention). */
export const REMOTE_FINISHED = 100;

export interface AntRegistryEvents {
  connected: [ant: RemoteAntExecutor, reconnect: boolean];
  disconnected: [ant: RemoteAntExecutor, why: string];
  /** Gone for good: no session, or its reconnect grace ended. */
  gone: [ant: RemoteAntExecutor];
  /** Room freed or ant (re)connected. */
  changed: [ant: RemoteAntExecutor];
  lost: [ant: RemoteAntExecutor, count: number];
}

export interface AntRegistryOptions {
  /** Delay before re-sending a request answered EXECUTING (default 1 s). */
  pollDelayMs?: number;
  /** How long an agent's tasks wait for it to reconnect (default 10 s). */
  reconnectGraceMs?: number;
  /** How long a cancelled agent task waits for the agent's answer (default 15 s). */
  cancelGraceMs?: number;
  log?: (message: string) => void;
}

export class AntRegistry extends EventEmitter<AntRegistryEvents> {
  readonly #ants = new Map<string, RemoteAntExecutor>();
  /** all(), until the next change of #ants. */
  #all: RemoteAntExecutor[] | undefined;
  readonly #options: AntRegistryOptions;
  readonly #hooks: AntHooks;
  /**
   * Finished tasks of all these ants, kept a while: 10 minutes, and of those whose
   * result a wait() took, the newest REMOTE_FINISHED between them all (a result nobody
   * took stays the 10 minutes: see FinishedRetention). The engine reads their output
   * from the unit files and records each result it takes, so only the executor
   * contract's answers need the taken ones; each kept entry outlives the young
   * generation and is one more object for every sweep: 10,000 cost ~3 µs of GC per
   * dispatched task, 100 against 1,000 measured 0.94 of the CPU per task (bench/README.md,
   * issue 5).
   */
  readonly #retention = new FinishedRetention<TrackedExecution>(
    undefined,
    10 * 60_000,
    REMOTE_FINISHED,
  );
  #connections = 0;
  #closed = false;
  #stopping = false;
  /**
   * Until when (ms since the epoch) a task an earlier server process may have sent to an
   * agent waits for that agent to reconnect (awaitHolder): the reconnect grace, from the
   * registry's start.
   */
  readonly #recoveryUntil: number;
  /** The awaitHolder() calls still waiting; close() ends them. */
  readonly #holderWaits = new Set<() => void>();

  constructor(options: AntRegistryOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.#options = options;
    this.#recoveryUntil = Date.now() + (options.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS);
    this.#hooks = {
      changed: (ant) => this.emit("changed", ant),
      gone: (ant) => {
        if (this.#ants.get(ant.key) === ant) {
          this.#ants.delete(ant.key);
          this.#all = undefined;
        }
        this.emit("gone", ant);
      },
      lost: (ant, count) => this.emit("lost", ant, count),
      dispatched: () => void this.#dispatched++,
    };
  }

  /**
   * TaskRequests sent to these ants since the registry began, re-sends included (read by
   * the metrics at scrape time: an event per task cost the dispatch path an emit).
   */
  get dispatchedTotal(): number {
    return this.#dispatched;
  }

  #dispatched = 0;

  /** Where ant events worth a line go (the server's log). */
  log(message: string): void {
    this.#options.log?.(message);
  }

  get size(): number {
    return this.#ants.size;
  }

  /** Hook `logs` for a task an agent runs: to that agent (RemoteAntExecutor.appendLogs). */
  appendLogs(executionId: string, bytes: Buffer): boolean {
    for (const ant of this.#ants.values()) if (ant.appendLogs(executionId, bytes)) return true;
    return false;
  }

  /** Every ant, connected or within its reconnect grace. */
  list(): RemoteAntExecutor[] {
    return [...this.#ants.values()];
  }

  /**
   * The same ants without a copy (routing runs this for every task): one array, made
   * again only when an ant comes or goes.
   */
  all(): readonly RemoteAntExecutor[] {
    return (this.#all ??= [...this.#ants.values()]);
  }

  #create(key: string, registration: Registration, link?: AntLink): RemoteAntExecutor {
    const o = this.#options;
    const options: RemoteAntOptions = {
      key,
      registration,
      hooks: this.#hooks,
      ...(link ? { link } : {}),
      ...(o.pollDelayMs === undefined ? {} : { pollDelayMs: o.pollDelayMs }),
      ...(o.reconnectGraceMs === undefined ? {} : { reconnectGraceMs: o.reconnectGraceMs }),
      ...(o.cancelGraceMs === undefined ? {} : { cancelGraceMs: o.cancelGraceMs }),
      ...(o.log ? { log: o.log } : {}),
      retention: this.#retention,
    };
    const ant = new RemoteAntExecutor(options);
    this.#ants.set(key, ant);
    this.#all = undefined;
    return ant;
  }

  /** A registration on a new connection: a new ant, or an agent coming back. */
  register(registration: Registration, link: AntLink): RemoteAntExecutor {
    const agentSession =
      registration.protocol === AGENT_PROTOCOL && registration.session !== undefined;
    const key = agentSession ? `s:${registration.session}` : `c:${++this.#connections}`;
    const known = this.#ants.get(key);
    if (known) {
      known.reattach(link, registration);
      this.emit("connected", known, true);
      return known;
    }
    const ant = this.#create(key, registration, link);
    ant.welcome(registration);
    this.emit("connected", ant, false);
    this.emit("changed", ant);
    return ant;
  }

  /** The connection of `ant` ended. */
  disconnect(ant: RemoteAntExecutor, link: AntLink, why: string): void {
    if (ant.link !== link) return;
    ant.detach(link, why, this.#stopping);
    this.emit("disconnected", ant, why);
  }

  /**
   * The server is stopping and closes every connection: that is not the ants' fault, so
   * their tasks are not failed; the next start re-attaches them (agents reconnect).
   */
  stopping(): void {
    this.#stopping = true;
  }

  /**
   * The ant of an agent session, for re-attaching its tasks after a server restart: the
   * one connected, or one waiting (for the reconnect grace) for the agent to come back.
   */
  forSession(session: string, antId: string): RemoteAntExecutor {
    const key = `s:${session}`;
    const known = this.#ants.get(key);
    if (known) return known;
    return this.#create(key, {
      ant_id: antId,
      methods: [],
      tags: [],
      session,
      protocol: AGENT_PROTOCOL,
    });
  }

  /**
   * The ant `executionId` runs on: one this server sent it to (and drives again after a
   * store failure), or a connected agent that says it holds it and no task here took it
   * back yet (an earlier server process sent it).
   */
  holderOf(executionId: string): RemoteAntExecutor | undefined {
    for (const ant of this.#ants.values()) {
      if (ant.runs(executionId) || ant.holdsUnclaimed(executionId)) return ant;
    }
    return undefined;
  }

  /** Ms left of the reconnect grace from this registry's start (awaitHolder waits that long). */
  recoveryLeftMs(): number {
    return Math.max(0, this.#recoveryUntil - Date.now());
  }

  /**
   * For a task an earlier server process recorded READY and may have sent to an agent
   * before it died: the agent that says it holds it, once one (re)connects saying so.
   * Undefined when none did by the end of the reconnect grace counted from this
   * registry's start (at once after it), or on `signal`, or when the registry closes.
   */
  awaitHolder(executionId: string, signal: AbortSignal): Promise<RemoteAntExecutor | undefined> {
    const known = this.holderOf(executionId);
    const left = this.recoveryLeftMs();
    if (known || left <= 0 || signal.aborted || this.#closed) return Promise.resolve(known);
    return new Promise((resolve) => {
      const end = (ant?: RemoteAntExecutor) => {
        clearTimeout(timer);
        this.off("connected", connected);
        signal.removeEventListener("abort", aborted);
        this.#holderWaits.delete(aborted);
        resolve(ant);
      };
      const connected = (ant: RemoteAntExecutor) => {
        if (ant.holdsUnclaimed(executionId)) end(ant);
      };
      const aborted = () => end();
      const timer = setTimeout(aborted, left);
      timer.unref();
      this.on("connected", connected);
      signal.addEventListener("abort", aborted, { once: true });
      this.#holderWaits.add(aborted);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes every connection and forgets every ant (tasks left for re-attach). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping = true;
    for (const end of [...this.#holderWaits]) end();
    const ants = this.list();
    this.#ants.clear();
    this.#all = undefined;
    for (const ant of ants) ant.link?.close(1001, "the colony server is stopping");
    await Promise.all(ants.map((a) => a.close()));
    this.#retention.close();
  }
}
