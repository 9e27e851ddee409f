/**
 * The FUNCTION executor: runs TypeScript (or JavaScript) handlers registered by name in
 * this process, as tasks like any other: the same states, retries and timeouts (the
 * engine's), an AbortSignal that fires on cancel and timeout, `ctx.progress()` and
 * `ctx.log()` (lines go to the execution's output file, `{unitDir}/stdout`, so that
 * `colony jobs logs`, the API and logStream show them).
 *
 * A handler's return value becomes the task's context (values for later tasks): a plain
 * object as it is, anything else as `{result: value}`. A thrown error fails the task
 * with its message. In-process work does not survive a restart: after one, the task is
 * lost and retried per its policy.
 */
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import type { Readable } from "node:stream";
import { inspect } from "node:util";
import { ExecutorError } from "../../core/errors.ts";
import { jsonProblem } from "../../core/json.ts";
import type { ColonyEventBus } from "../../core/events.ts";
import {
  EXECUTION_EXISTS,
  UNKNOWN_EXECUTION,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
  type LogStreamRequest,
} from "../../core/executor.ts";
import { notifyDone, notifyFileChanged } from "../../core/output-follow.ts";
import { FinishedRetention, logStreamOf } from "../execution-table.ts";

/** What a handler gets. */
export interface FunctionContext {
  executionId: string;
  jobRequestId?: number;
  jobType?: string;
  taskType: string;
  /** 0 for the first try; retries count up. */
  attempt: number;
  /** Template values: job and task variables, request params, earlier tasks' outputs. */
  params: Record<string, unknown>;
  /** The task's environment (as a SHELL task would get it). */
  env: Record<string, string>;
  /** Aborted on cancel and timeout (its reason says which); stop soon when it fires. */
  signal: AbortSignal;
  /** Reports progress (0..100) as a `task:progress` event. */
  progress(percent: number, message?: string): void;
  /** Appends a line to the execution's output (non-strings are inspected). */
  log(...values: unknown[]): void;
}

export type FunctionHandler = (ctx: FunctionContext) => unknown;

export interface FunctionExecutorOptions {
  /** Where `task:progress` events go. */
  events?: ColonyEventBus;
  /** How long a finished execution stays known (logStream, EXECUTION_EXISTS); default 10 min (of those whose result was taken, only the newest 100). */
  retainFinishedMs?: number;
  /**
   * For this long after the executor is made, a task naming a function not registered yet
   * waits for it (default 3 s): a program registers its handlers just after starting
   * colony, while jobs recovered from its last run may already be starting.
   */
  startupGraceMs?: number;
}

interface Execution {
  id: string;
  /** Runs the handler (once): on the first wait(), logStream() or a short timer. */
  begin: () => void;
  outPath: string;
  /** Made on the first read of the handler's `ctx.signal` (most handlers never read it). */
  controller?: AbortController;
  /** Why the execution was aborted, for a signal first read after that. */
  abortReason?: unknown;
  done: PromiseWithResolvers<ExecutionResult>;
  result?: ExecutionResult;
  finishedAt?: number;
  delivered: boolean;
  out?: WriteStream;
  cancelled: boolean;
}

const NOTHING = (): void => undefined;

/**
 * A handler's `ctx`. A class, not an object literal: a literal with a getter (`signal`)
 * is made through V8's runtime, ~0.8 µs a task against ~0.05 µs for an instance.
 */
class HandlerContext implements FunctionContext {
  readonly #e: Execution;
  readonly executionId: string;
  jobRequestId?: number;
  jobType?: string;
  readonly taskType: string;
  readonly attempt: number;
  readonly params: Record<string, unknown>;
  readonly env: Record<string, string>;
  readonly progress: FunctionContext["progress"];
  readonly log: FunctionContext["log"];

  constructor(
    e: Execution,
    executionId: string,
    taskType: string,
    rest: Pick<FunctionContext, "attempt" | "params" | "env" | "progress" | "log">,
  ) {
    this.#e = e;
    this.executionId = executionId;
    this.taskType = taskType;
    this.attempt = rest.attempt;
    this.params = rest.params;
    this.env = rest.env;
    this.progress = rest.progress;
    this.log = rest.log;
  }

  /** Made on first read: most handlers never look at it. */
  get signal(): AbortSignal {
    const e = this.#e;
    if (!e.controller) {
      e.controller = new AbortController();
      if (e.abortReason !== undefined) e.controller.abort(e.abortReason);
    }
    return e.controller.signal;
  }
}

/** How long a started handler waits for a wait() or logStream() before it runs anyway. */
const BEGIN_ANYWAY_MS = 50;

function abortExecution(e: Execution, reason: unknown): void {
  if (e.controller) e.controller.abort(reason);
  else e.abortReason ??= reason;
}

function unknown(id: string): ExecutorError {
  return new ExecutorError(
    UNKNOWN_EXECUTION,
    `no execution '${id}' is running here (unknown, or it finished and its result was already delivered)`,
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function contextOf(value: unknown): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  return isPlainObject(value) ? value : { result: value };
}

export class FunctionExecutor implements Executor {
  readonly methods = ["FUNCTION"] as const;
  readonly #handlers = new Map<string, FunctionHandler>();
  readonly #executions = new Map<string, Execution>();
  readonly #events: ColonyEventBus | undefined;
  #graceUntil: number;
  readonly #awaited = new Map<string, Array<() => void>>();
  readonly #retention: FinishedRetention<Execution>;
  #closed = false;
  /**
   * Started executions, by the turn of #beginTimer they arrived in: one timer for all of
   * them rather than one per task. When it fires, the handlers of those that were
   * already there at its last turn begin, if nothing began them (after 50 to 100 ms).
   */
  #unbegun = new Set<Execution>();
  #unbegunBefore = new Set<Execution>();
  #beginTimer: NodeJS.Timeout | undefined;

  constructor(options: FunctionExecutorOptions = {}) {
    this.#events = options.events;
    this.#graceUntil = Date.now() + (options.startupGraceMs ?? 3000);
    this.#retention = new FinishedRetention(this.#executions, options.retainFinishedMs);
  }

  /** Registers (or replaces) the handler that tasks with `function: name` run. */
  register(name: string, handler: FunctionHandler): this {
    if (typeof name !== "string" || name.trim() === "")
      throw new TypeError("a function needs a name (what tasks write as `function: name`)");
    if (typeof handler !== "function")
      throw new TypeError(`the handler of '${name}' is not a function`);
    const first = this.#handlers.size === 0;
    this.#handlers.set(name, handler);
    const waiting = this.#awaited.get(name);
    this.#awaited.delete(name);
    for (const wake of waiting ?? []) wake();
    if (first && this.#graceUntil > Date.now()) {
      // A program registers its handlers together: once this turn of the event loop is
      // over, a name still missing is not coming.
      setImmediate(() => {
        this.#graceUntil = 0;
        const all = [...this.#awaited.values()].flat();
        this.#awaited.clear();
        for (const wake of all) wake();
      });
    }
    return this;
  }

  unregister(name: string): boolean {
    return this.#handlers.delete(name);
  }

  registered(): string[] {
    return [...this.#handlers.keys()];
  }

  async isInstalled(): Promise<boolean> {
    return true;
  }

  async start(request: ExecutionRequest): Promise<Record<string, unknown>> {
    if (this.#closed)
      throw new ExecutorError("COLONY_EXECUTOR_CLOSED", "the function executor is closed");
    const id = request.executionId;
    if (this.#executions.has(id)) {
      throw new ExecutorError(
        EXECUTION_EXISTS,
        `execution '${id}' was already started; start a new attempt under a new id`,
      );
    }
    const name = request.task.function ?? "";
    let handler = this.#handlers.get(name);
    const left = this.#graceUntil - Date.now();
    if (!handler && left > 0) {
      // Starting up: the program may register it in a moment.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        const list = this.#awaited.get(name) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.#awaited.set(name, list);
      });
      handler = this.#handlers.get(name);
    }
    if (!handler) {
      const known = this.registered();
      throw new ExecutorError(
        "COLONY_UNKNOWN_FUNCTION",
        `no function '${name}' is registered in this process` +
          (known.length
            ? ` (registered: ${known.join(", ")})`
            : "; register it with colony.register(name, handler)"),
      );
    }
    const e: Execution = {
      id,
      begin: NOTHING,
      outPath: `${request.unitDir}/stdout`, // not join(): see newTracked
      done: Promise.withResolvers<ExecutionResult>(),
      delivered: false,
      cancelled: false,
    };
    this.#executions.set(id, e);
    const params: Record<string, unknown> = {};
    for (const v of Object.values(request.variables)) params[v.name] = v.value;
    const events = this.#events;
    // Closures, not methods: handlers destructure them (`async ({ log, signal }) => ...`).
    const ctx: FunctionContext = new HandlerContext(e, id, request.task.taskType, {
      attempt: request.attempt ?? 0,
      params,
      env: request.env,
      progress: (percent, message) => {
        if (e.result) return;
        events?.emit("task:progress", {
          jobRequestId: request.jobRequestId ?? 0,
          taskType: request.task.taskType,
          executionId: id,
          progress: Math.max(0, Math.min(100, Number(percent) || 0)),
          ...(message === undefined ? {} : { message }),
        });
      },
      log: (...values) => {
        if (e.result) return;
        if (!e.out) {
          mkdirSync(request.unitDir, { recursive: true, mode: 0o700 });
          e.out = createWriteStream(e.outPath, { flags: "a", mode: 0o600 });
        }
        const line = values.map((v) => (typeof v === "string" ? v : inspect(v))).join(" ") + "\n";
        e.out.write(line, () => notifyFileChanged(e.outPath));
      },
    });
    if (request.jobRequestId !== undefined) ctx.jobRequestId = request.jobRequestId;
    if (request.jobType !== undefined) ctx.jobType = request.jobType;
    // The handler runs once someone waits for it (the engine does so right after it has
    // recorded the task EXECUTING, so task:started comes before anything the handler
    // reports), or after a moment when nobody does (#beginLater).
    e.begin = () => {
      if (e.begin === NOTHING) return;
      e.begin = NOTHING; // (the timer's call, if it comes, finds it so)
      if (e.result) return; // cancelled before it began
      let running: unknown;
      try {
        running = handler(ctx);
      } catch (error) {
        void this.#finish(e, this.#failed(error));
        return;
      }
      Promise.resolve(running).then(
        (value) => {
          const context = contextOf(value);
          const why = context && jsonProblem(context);
          if (why) {
            return this.#finish(e, {
              exitCode: 1,
              killed: false,
              errorCode: "COLONY_FUNCTION_RESULT",
              error: `function '${name}' returned what cannot be stored as JSON (${why}); return plain data: objects, arrays, strings, numbers, booleans, null`,
            });
          }
          return this.#finish(
            e,
            context ? { exitCode: 0, killed: false, context } : { exitCode: 0, killed: false },
          );
        },
        (error: unknown) => this.#finish(e, this.#failed(error)),
      );
    };
    this.#beginLater(e);
    return {};
  }

  #beginLater(e: Execution): void {
    this.#unbegun.add(e);
    if (this.#beginTimer) return;
    this.#beginTimer = setInterval(() => {
      for (const waiting of this.#unbegunBefore) waiting.begin();
      this.#unbegunBefore = this.#unbegun;
      this.#unbegun = new Set();
      if (this.#unbegunBefore.size === 0) {
        clearInterval(this.#beginTimer);
        this.#beginTimer = undefined;
      }
    }, BEGIN_ANYWAY_MS);
    this.#beginTimer.unref();
  }

  #failed(error: unknown): ExecutionResult {
    const message = error instanceof Error ? error.message : String(error);
    return {
      exitCode: 1,
      killed: false,
      error: message || "the function failed",
      errorCode: "COLONY_FUNCTION_FAILED",
    };
  }

  async #finish(e: Execution, result: ExecutionResult): Promise<void> {
    if (e.result) return;
    e.result = e.cancelled ? { exitCode: null, killed: true, error: "cancelled" } : result;
    if (!e.out) e.result.wroteOutput = false;
    e.finishedAt = Date.now();
    // Finished entries stay known for minutes: let go of the handler's context (the
    // request, its environment and closures) now rather than then.
    e.begin = NOTHING;
    const out = e.out;
    // The output is complete on disk before anyone hears of the end.
    if (out) await new Promise<void>((resolve) => out.end(resolve));
    e.done.resolve(e.result);
    notifyDone(e.outPath);
    this.#retention.finished(e);
  }

  async wait(executionId: string): Promise<ExecutionResult> {
    const e = this.#executions.get(executionId);
    if (!e || (e.result && e.delivered)) throw unknown(executionId);
    if (e.result) {
      e.delivered = true;
      return e.result;
    }
    queueMicrotask(e.begin);
    const result = await e.done.promise;
    e.delivered = true;
    return result;
  }

  async run(request: ExecutionRequest): Promise<ExecutionResult> {
    await this.start(request);
    return this.wait(request.executionId);
  }

  /** Aborts the handler's signal; the execution ends at once as killed (a handler that ignores it runs on unheard). */
  async cancel(executionId: string): Promise<void> {
    const e = this.#executions.get(executionId);
    if (!e || e.result) throw unknown(executionId);
    e.cancelled = true;
    abortExecution(e, new ExecutorError("COLONY_CANCELLED", "the task was cancelled or timed out"));
    await this.#finish(e, { exitCode: null, killed: true });
  }

  async logStream(request: LogStreamRequest): Promise<Readable> {
    const e = this.#executions.get(request.executionId);
    if (!e) throw unknown(request.executionId);
    queueMicrotask(e.begin);
    // A handler that never logged wrote no file: it reads as empty.
    return logStreamOf(e, request);
  }

  /** In-process work does not outlive its process. */
  async attach(): Promise<boolean> {
    return false;
  }

  async close(options?: { killRunning?: boolean }): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#retention.close();
    clearInterval(this.#beginTimer);
    for (const e of this.#executions.values()) {
      if (e.result) continue;
      if (options?.killRunning) {
        await this.cancel(e.id).catch(() => undefined);
        continue;
      }
      // As the shell executor does: wait() rejects with EXECUTOR_CLOSED and the task stays
      // unfinished; the next start finds it lost (nothing to re-attach) and retries it.
      const closed = new ExecutorError(
        "COLONY_EXECUTOR_CLOSED",
        "colony shut down while the function ran",
      );
      abortExecution(e, closed);
      e.result = { exitCode: null, killed: true, error: closed.message };
      e.done.reject(closed);
      e.done.promise.catch(() => undefined);
    }
  }
}

export function createFunctionExecutor(options: FunctionExecutorOptions = {}): FunctionExecutor {
  return new FunctionExecutor(options);
}
