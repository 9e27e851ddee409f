/**
 * The bookkeeping every in-process executor shares (HTTP, MESSAGING, remote ants): one
 * entry per execution id, the seed-001 errors (start of a known id, wait or cancel of an
 * unknown or finished one), any number of waiters for one result, finished executions
 * kept a while so that logStream and EXECUTION_EXISTS still answer, and logStream over
 * the execution's output file (`{unitDir}/stdout`) with tail and follow.
 */
import { mkdir } from "node:fs/promises";
import type { Readable } from "node:stream";
import { ExecutorError } from "../core/errors.ts";
import {
  EXECUTION_EXISTS,
  UNKNOWN_EXECUTION,
  type ExecutionResult,
  type LogStreamRequest,
} from "../core/executor.ts";
import { followOutput, notifyDone } from "../core/output-follow.ts";

export interface TrackedExecution {
  readonly id: string;
  readonly outPath: string;
  readonly done: PromiseWithResolvers<ExecutionResult>;
  result?: ExecutionResult;
  finishedAt?: number;
  /** Whether a wait() received the result (then wait and cancel answer UNKNOWN). */
  delivered: boolean;
  waiters: number;
  cancelled: boolean;
}

export function unknownExecution(id: string, executor: string): ExecutorError {
  return new ExecutorError(
    UNKNOWN_EXECUTION,
    `no ${executor} execution '${id}' is running here (unknown, or it finished and its result was already delivered)`,
  );
}

export function existingExecution(id: string): ExecutorError {
  return new ExecutorError(
    EXECUTION_EXISTS,
    `execution '${id}' was already started; start a new attempt under a new execution id`,
  );
}

/**
 * The base fields of a new entry; callers spread their own fields over it. Its `done`
 * has no handler until one waits: reject it with failTracked(), which adds one (a
 * `.catch` on every entry cost each result one more microtask).
 */
export function newTracked(id: string, unitDir: string): TrackedExecution {
  const done = Promise.withResolvers<ExecutionResult>();
  return {
    id,
    outPath: `${unitDir}/stdout`, // not join(): ~1.5 µs a task, and paths are compared resolved
    done,
    delivered: false,
    waiters: 0,
    cancelled: false,
  };
}

/** Rejects an entry's result, also when no one waits for it (no unhandled rejection). */
export function failTracked(e: Pick<TrackedExecution, "done">, error: Error): void {
  e.done.promise.catch(() => undefined);
  e.done.reject(error);
}

/** What FinishedRetention.settle() records a result in: every executor's entries have it. */
interface Settled {
  outPath: string;
  done: PromiseWithResolvers<ExecutionResult>;
  result?: ExecutionResult;
  delivered: boolean;
  waiters: number;
}

/** Takes a finished entry out of its map, unless another entry took its id since. */
function forget<E extends { readonly id: string }>(e: E, entries: Map<string, E>): void {
  if (entries.get(e.id) === e) entries.delete(e.id);
}

/** Entries in the order they were pushed, each with the map it leaves (FinishedRetention). */
class FinishedQueue<E> {
  #items: Array<E | undefined> = [];
  #owners: Array<Map<string, E> | undefined> = [];
  /** Slots before it are taken (cleared); dropped once they are most of the arrays. */
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  /** The oldest, left in place; undefined when empty. */
  peek(): E | undefined {
    return this.#items[this.#head];
  }

  push(e: E, owner: Map<string, E>): void {
    this.#items.push(e);
    this.#owners.push(owner);
  }

  /** Takes the oldest out (call when peek() gave one): the map it leaves. */
  shift(): Map<string, E> {
    const owner = this.#owners[this.#head]!;
    this.#items[this.#head] = undefined;
    this.#owners[this.#head++] = undefined;
    if (
      this.#head === this.#items.length ||
      (this.#head > 1024 && this.#head * 2 > this.#items.length)
    ) {
      this.#items = this.#items.slice(this.#head);
      this.#owners = this.#owners.slice(this.#head);
      this.#head = 0;
    }
    return owner;
  }
}

/**
 * How many finished executions whose result a wait() took an executor keeps at most (see
 * FinishedRetention). Nothing but the executor contract reads them (the engine records
 * each result it takes and reads output from the unit files), and every kept entry
 * outlives the young generation: at 10,000, a FUNCTION job's entry (~0.5-1 KiB) was
 * promoted, marked and swept by every burst, and a process of 5000 jobs at once kept
 * ~4 MB more heap after they ended (bench/README.md, issue 6). Ants keep 100 likewise
 * (REMOTE_FINISHED).
 */
export const MAX_FINISHED = 100;

/**
 * Keeps finished executions known for a while, so that logStream and EXECUTION_EXISTS
 * still answer: for `retainMs` after they finished, and at most the newest `max` of them
 * (ten minutes of a busy server finishing thousands a second would otherwise be millions
 * of entries: the FUNCTION executor's were ~1-3 KiB each). Entries leave in the order
 * they finished, as each new one finishes and on a timer; an entry replaced in the map
 * under the same id (re-attached) is not touched by its old one's expiry.
 *
 * A result no wait() has taken yet (`delivered: false`) is not dropped to make room,
 * only once `retainMs` has passed: an engine that could not record a start (the store
 * failed) drives the job again and starts the execution again, and a known entry
 * answers that with EXECUTION_EXISTS instead of running the work a second time.
 *
 * One retention may serve several maps (the remote ants' tables share one, so that 50
 * ants keep `max` entries between them, not 50 times `max`): each entry leaves the map
 * it was finished in (`entries` by default).
 */
export class FinishedRetention<
  E extends { readonly id: string; finishedAt?: number; delivered?: boolean },
> {
  readonly #entries: Map<string, E> | undefined;
  readonly #retainMs: number;
  readonly #max: number;
  /** Finished entries in finishing order. */
  readonly #queue = new FinishedQueue<E>();
  /** Undelivered entries pushed out of #queue by `max`: they leave only with age. */
  readonly #held = new FinishedQueue<E>();
  readonly #timer: NodeJS.Timeout;

  constructor(entries: Map<string, E> | undefined, retainMs = 10 * 60_000, max = MAX_FINISHED) {
    this.#entries = entries;
    this.#retainMs = retainMs;
    this.#max = max;
    this.#timer = setInterval(
      () => this.#trim(Date.now()),
      Math.max(1000, Math.min(retainMs, 60_000)),
    );
    this.#timer.unref();
  }

  /**
   * Records an execution's result, once (false when it had one): waiters and output
   * followers are woken and the entry is kept from now on (see finished()).
   */
  settle(e: E & Settled, result: ExecutionResult, entries = this.#entries): boolean {
    if (e.result) return false;
    e.result = result;
    e.finishedAt = Date.now();
    e.delivered = e.waiters > 0;
    e.done.resolve(result);
    notifyDone(e.outPath);
    this.finished(e, entries);
    return true;
  }

  /** Call once an entry has finished (its finishedAt set), when settle() did not. */
  finished(entry: E, entries = this.#entries): void {
    if (!entries) throw new Error("FinishedRetention: no map for this entry");
    this.#queue.push(entry, entries);
    this.#trim(entry.finishedAt ?? Date.now());
  }

  #trim(now: number): void {
    const before = now - this.#retainMs;
    const queue = this.#queue;
    for (let oldest = queue.peek(); oldest !== undefined; oldest = queue.peek()) {
      const expired = (oldest.finishedAt ?? 0) < before;
      if (queue.size <= this.#max && !expired) break;
      const entries = queue.shift();
      if (!expired && oldest.delivered === false) this.#held.push(oldest, entries);
      else forget(oldest, entries);
    }
    // In finishing order too: the first one not yet `retainMs` old ends the sweep.
    const held = this.#held;
    for (let e = held.peek(); e !== undefined && (e.finishedAt ?? 0) < before; e = held.peek()) {
      forget(e, held.shift());
    }
  }

  /** Stops the timer (the entries stay where they are). */
  close(): void {
    clearInterval(this.#timer);
  }
}

/**
 * logStream of the executor contract over one execution's output file (`outPath`), with
 * tail and follow; following ends once the execution has its result.
 */
export function logStreamOf(
  e: { readonly outPath: string; readonly result?: ExecutionResult },
  request: LogStreamRequest,
): Promise<Readable> {
  return followOutput(e.outPath, {
    tail: request.tail === true,
    follow: request.follow === true,
    done: () => e.result !== undefined,
  });
}

/**
 * wait() of the executor contract over one entry: its result once (later waits and a
 * wait for an unknown id reject with `unknown()`), or a promise of it while it runs.
 */
export function resultOf(
  e: Pick<TrackedExecution, "result" | "delivered" | "waiters" | "done"> | undefined,
  unknown: () => Error,
): Promise<ExecutionResult> {
  if (!e || (e.result && e.delivered)) return Promise.reject(unknown());
  if (e.result) {
    e.delivered = true;
    return Promise.resolve(e.result);
  }
  e.waiters++;
  return e.done.promise;
}

export class ExecutionTable<E extends TrackedExecution> {
  readonly #name: string;
  readonly #entries = new Map<string, E>();
  /** The unfinished ones (kept apart: finished entries stay for minutes, in thousands). */
  readonly #running = new Map<string, E>();
  readonly #retention: FinishedRetention<E>;
  /** The retention is this table's own (closed with it), not one it shares. */
  readonly #ownRetention: boolean;
  #closed = false;

  /**
   * `name` appears in error messages ("http", "ant"...). `shared`: a retention this
   * table shares with others (its `retainMs` applies; the owner closes it).
   */
  constructor(name: string, retainMs = 10 * 60_000, shared?: FinishedRetention<TrackedExecution>) {
    this.#name = name;
    this.#ownRetention = shared === undefined;
    // It reads only the TrackedExecution fields of E, and deletes each entry from the
    // map it was finished in.
    this.#retention =
      (shared as FinishedRetention<E> | undefined) ??
      new FinishedRetention(this.#entries, retainMs);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Registers a new execution; EXECUTION_EXISTS when the id is known (running or kept). */
  add(entry: E): E {
    if (this.#closed) {
      throw new ExecutorError("COLONY_EXECUTOR_CLOSED", `the ${this.#name} executor is closed`);
    }
    if (this.#entries.has(entry.id)) throw existingExecution(entry.id);
    this.#entries.set(entry.id, entry);
    if (!entry.result) this.#running.set(entry.id, entry);
    return entry;
  }

  /** Forgets an entry whose start failed (its id may be started again). */
  remove(id: string): void {
    this.#entries.delete(id);
    this.#running.delete(id);
  }

  get(id: string): E | undefined {
    return this.#entries.get(id);
  }

  /** Executions that have not finished, oldest first. */
  running(): E[] {
    return [...this.#running.values()];
  }

  get runningCount(): number {
    return this.#running.size;
  }

  /** The entry of a running execution; UNKNOWN_EXECUTION otherwise (for cancel). */
  requireRunning(id: string): E {
    const e = this.#entries.get(id);
    if (!e || e.result) throw unknownExecution(id, this.#name);
    return e;
  }

  /** Records the result (once) and wakes waiters and output followers. */
  finish(e: E, result: ExecutionResult): boolean {
    if (!this.#retention.settle(e, result, this.#entries)) return false;
    this.#running.delete(e.id);
    return true;
  }

  wait(id: string): Promise<ExecutionResult> {
    return resultOf(this.#entries.get(id), () => unknownExecution(id, this.#name));
  }

  async logStream(request: LogStreamRequest): Promise<Readable> {
    const e = this.#entries.get(request.executionId);
    if (!e) throw unknownExecution(request.executionId, this.#name);
    return logStreamOf(e, request);
  }

  /** Stops the sweep; running executions' waiters get COLONY_EXECUTOR_CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownRetention) this.#retention.close();
    for (const e of this.#entries.values()) {
      if (!e.result) {
        failTracked(
          e,
          new ExecutorError(
            "COLONY_EXECUTOR_CLOSED",
            `the ${this.#name} executor was closed while execution '${e.id}' was running`,
          ),
        );
      }
    }
  }
}

/** Creates the unit directory (0700) and an empty output file's parent. */
export async function ensureUnitDir(unitDir: string): Promise<void> {
  await mkdir(unitDir, { recursive: true, mode: 0o700 });
}
