/**
 * colony as a library (SPEC section 12): the same engine, store and executors embedded
 * in a Node program, with TypeScript functions as tasks.
 *
 *   const colony = await startColony({ dataDir: ".colony" });
 *   colony.register("resize", async (ctx) => { ctx.progress(50); return { ok: true }; });
 *   const run = await colony.submit({ job_type: "thumbs", tasks: [{ task_type: "r", method: "FUNCTION", function: "resize" }] });
 *   const { results } = await run.result();      // { r: { ok: true } }
 *   await colony.close();
 *
 * Everything durable is in `dataDir` (or the store URL), exactly as for `colony server`:
 * submitted jobs survive a crash of the program and continue at its next start (a
 * function that was running is retried per its task's policy). With `server`, the
 * program also serves colony's REST API, dashboard and job hook.
 */
import { EventEmitter } from "node:events";
import { parseJobDefinition } from "../core/definition-parser.ts";
import { ColonyError, ValidationError } from "../core/errors.ts";
import type { ColonyEvents } from "../core/events.ts";
import type { JobDefinition } from "../core/job-definition.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { isFinal, type State } from "../core/states.ts";
import { checkParams, type Engine } from "../engine/engine.ts";
import type { FunctionHandler } from "../executors/function/function-executor.ts";
import { openEmbedded, type Embedded } from "../runtime/embedded.ts";
import type { Store, StoredDefinition } from "../store/store.ts";

export interface StartColonyOptions {
  /** Where colony keeps its store, task output and artifacts (created 0700 if missing). */
  dataDir: string;
  /** A PostgreSQL URL to share work with other colony processes (default: SQLite in dataDir). */
  storeUrl?: string;
  /** Tasks running at once (default 16). */
  maxParallelTasks?: number;
  /** Fire cron_trigger schedules of saved definitions (default true). */
  schedules?: boolean;
  /**
   * FUNCTION handlers, registered before any job starts (jobs left by the last run start
   * at once). register() works too: a task naming a function not registered yet waits
   * for it during colony's first 3 seconds.
   */
  functions?: Record<string, FunctionHandler>;
  /**
   * Also serve the REST API, dashboard and job hook (SHELL tasks then get JOB_HOOK):
   * `{port: 0}` picks a free port. Auth is on unless `auth: false`; the admin token is
   * written to `{dataDir}/admin.token`.
   */
  server?: { port?: number; host?: string; baseUrl?: string; auth?: boolean };
  /** Where colony reports what it does (recovery, failures); default stderr. */
  log?: (message: string) => void;
}

/** A submitted job. */
export interface Run {
  readonly id: number;
  readonly jobType: string;
  /** Resolves once the job COMPLETED; rejects with JobFailedError when it FAILED or was CANCELLED. */
  result(): Promise<JobResult>;
  /** Resolves with the job once it ended, whatever its state. */
  done(): Promise<JobResult>;
  cancel(): Promise<void>;
}

export interface JobResult {
  id: number;
  jobType: string;
  state: State;
  /** Each task's context (a FUNCTION's return value), by task_type, from the last attempt. */
  results: Record<string, Record<string, unknown>>;
  tasks: TaskExecution[];
  error?: { code?: string; message?: string };
}

export class JobFailedError extends ColonyError {
  readonly result: JobResult;

  constructor(result: JobResult) {
    super(
      "COLONY_JOB_FAILED",
      `job ${result.id} (${result.jobType}) ended ${result.state}` +
        (result.error?.message ? `: ${result.error.message}` : ""),
      { status: 409, details: { id: result.id, state: result.state } },
    );
    this.result = result;
  }
}

type JobEvent = { id: number; jobType: string; state: State; attempt: number; error?: string };
type TaskEvent = ColonyEvents["task:state"][0];

/** The library's typed events. */
export interface ColonyLibraryEvents {
  "job:submitted": [JobEvent];
  "job:started": [JobEvent];
  "job:completed": [JobEvent];
  "job:failed": [JobEvent];
  "job:cancelled": [JobEvent];
  "task:started": [TaskEvent];
  "task:completed": [TaskEvent];
  "task:failed": [TaskEvent];
  "task:cancelled": [TaskEvent];
  "task:progress": ColonyEvents["task:progress"];
  /** Every state change (the raw engine events). */
  "job:state": ColonyEvents["job:state"];
  "task:state": ColonyEvents["task:state"];
}

/** A definition: YAML/JSON text, or an object with the YAML's keys (job_type, tasks...). */
export type DefinitionInput = string | Record<string, unknown>;

/** What submit() takes: a saved job type, `{job_type, params}` of one, or a definition. */
export type SubmitInput =
  string | DefinitionInput | { job_type: string; params?: Record<string, unknown> };

export interface SubmitOptions {
  params?: Record<string, unknown>;
  /** Run at this time (default now). */
  scheduledAt?: Date;
}

export interface Colony {
  readonly dataDir: string;
  readonly engine: Engine;
  readonly store: Store;
  /** The REST/hook server's URL, with `server`. */
  readonly url?: string;
  /** Registers (or replaces) the handler that tasks with `method: FUNCTION, function: name` run. */
  register(name: string, handler: FunctionHandler): Colony;
  /** Saves a definition (a cron_trigger makes it a schedule). */
  define(definition: DefinitionInput): Promise<StoredDefinition>;
  submit(input: SubmitInput, options?: SubmitOptions): Promise<Run>;
  on<E extends keyof ColonyLibraryEvents>(
    event: E,
    listener: (...args: ColonyLibraryEvents[E]) => void,
  ): () => void;
  off<E extends keyof ColonyLibraryEvents>(
    event: E,
    listener: (...args: ColonyLibraryEvents[E]) => void,
  ): void;
  /**
   * Stops: running jobs finish for up to `graceMs` (default 10 s), then are left to the
   * next start (`cancelRunning` cancels them instead).
   */
  close(options?: { graceMs?: number; cancelRunning?: boolean }): Promise<void>;
}

function parseDefinition(input: DefinitionInput): JobDefinition {
  if (typeof input === "string") return parseJobDefinition(input);
  return parseJobDefinition(JSON.stringify(input), { format: "json" });
}

function isDefinitionText(text: string): boolean {
  return /[\n:{]/.test(text);
}

const OPTION_TYPES: Record<keyof StartColonyOptions, string> = {
  dataDir: "string",
  storeUrl: "string",
  maxParallelTasks: "number",
  schedules: "boolean",
  functions: "object",
  server: "object",
  log: "function",
};

/** What the TypeScript types say, checked for JavaScript callers and `as` casts. */
function checkOptions(options: unknown): asserts options is StartColonyOptions {
  if (typeof options !== "object" || options === null) {
    throw new ValidationError("startColony needs an options object: startColony({ dataDir })");
  }
  const known = Object.keys(OPTION_TYPES);
  for (const [key, value] of Object.entries(options)) {
    const type = OPTION_TYPES[key as keyof StartColonyOptions];
    if (type === undefined) {
      const near = known.find((k) => k.toLowerCase() === key.toLowerCase());
      throw new ValidationError(
        `startColony: unknown option '${key}'${near ? `; did you mean '${near}'?` : ""} (options: ${known.join(", ")})`,
      );
    }
    if (value !== undefined && typeof value !== type) {
      throw new ValidationError(`startColony: ${key} must be a ${type}, got ${typeof value}`);
    }
  }
  const o = options as StartColonyOptions;
  if (typeof o.dataDir !== "string" || o.dataDir.trim() === "") {
    throw new ValidationError(
      "startColony: dataDir is required: the directory for the store, task output and artifacts",
    );
  }
  const slots = o.maxParallelTasks;
  if (slots !== undefined && !(Number.isInteger(slots) && slots >= 1)) {
    throw new ValidationError(
      `startColony: maxParallelTasks must be a whole number from 1, got ${slots}`,
    );
  }
}

export async function startColony(options: StartColonyOptions): Promise<Colony> {
  checkOptions(options);
  const log = options.log ?? ((m: string) => process.stderr.write(`colony: ${m}\n`));
  let runtime: Embedded;
  let url: string | undefined;
  let stopServer: ((graceMs: number) => Promise<void>) | undefined;
  if (options.server) {
    // The whole server in this process: REST API, dashboard, hook, schedules.
    const { startServer } = await import("../server/server.ts");
    const { loadConfig } = await import("../config/config.ts");
    const config = loadConfig({
      env: {},
      overrides: {
        dataDir: options.dataDir,
        port: options.server.port ?? 0,
        host: options.server.host ?? "127.0.0.1",
        ...(options.storeUrl ? { storeUrl: options.storeUrl } : {}),
        ...(options.server.auth === false ? { insecureNoAuth: true } : {}),
      },
    });
    const server = await startServer(
      {
        ...config,
        ...(options.server.baseUrl ? { baseUrl: options.server.baseUrl } : {}),
        maxParallelTasks: options.maxParallelTasks ?? config.maxParallelTasks,
        schedules: { ...config.schedules, enabled: options.schedules ?? true },
      },
      { log },
    );
    runtime = server.runtime;
    for (const [name, handler] of Object.entries(options.functions ?? {})) {
      runtime.asyncActions.functions.register(name, handler);
    }
    url = server.url;
    stopServer = (graceMs) => server.close({ graceMs });
  } else {
    runtime = await openEmbedded({
      dataDir: options.dataDir,
      ...(options.storeUrl ? { storeUrl: options.storeUrl } : {}),
      maxParallelTasks: options.maxParallelTasks ?? 16,
      engine: { log },
      // As `colony run`: MESSAGING, DOCKER and KUBERNETES load on their first task (their
      // modules were ~950 files and ~8 MB of heap in a program that runs functions).
      lazyExecutors: true,
    });
    for (const [name, handler] of Object.entries(options.functions ?? {})) {
      runtime.asyncActions.functions.register(name, handler);
    }
    try {
      await runtime.engine.start();
      await runtime.asyncActions.start({
        engine: runtime.engine,
        schedules: options.schedules ?? true,
      });
    } catch (error) {
      await runtime.close({ graceMs: 0 });
      throw error;
    }
  }
  const { engine, store } = runtime;
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const onJob = (e: ColonyEvents["job:state"][0]) => {
    emitter.emit("job:state", e);
    const event: JobEvent = {
      id: e.jobRequestId,
      jobType: e.jobType,
      state: e.state,
      attempt: e.attempt,
      ...(e.error ? { error: e.error } : {}),
    };
    const name =
      e.state === "PENDING" && e.attempt === 0 && !e.error // not a deferral (no ant yet)
        ? "job:submitted"
        : e.state === "EXECUTING"
          ? "job:started"
          : e.state === "COMPLETED" || e.state === "FAILED" || e.state === "CANCELLED"
            ? `job:${e.state.toLowerCase()}`
            : undefined;
    if (name) emitter.emit(name, event);
  };
  const onTask = (e: TaskEvent) => {
    emitter.emit("task:state", e);
    const name =
      e.state === "EXECUTING"
        ? "task:started"
        : isFinal(e.state)
          ? `task:${e.state.toLowerCase()}`
          : undefined;
    if (name) emitter.emit(name, e);
  };
  const onProgress = (e: ColonyEvents["task:progress"][0]) => emitter.emit("task:progress", e);
  engine.events.on("job:state", onJob);
  engine.events.on("task:state", onTask);
  engine.events.on("task:progress", onProgress);

  const outcome = async (id: number): Promise<JobResult> => {
    const job: JobRequest = await engine.waitFor(id);
    const tasks = (await store.listTaskExecutions(id)).filter((t) => t.jobAttempt === job.attempt);
    const results: Record<string, Record<string, unknown>> = {};
    for (const t of tasks)
      if (t.state === "COMPLETED" || t.state === "FAILED") results[t.taskType] = t.context;
    const error =
      job.errorCode || job.errorMessage
        ? {
            ...(job.errorCode ? { code: job.errorCode } : {}),
            ...(job.errorMessage ? { message: job.errorMessage } : {}),
          }
        : undefined;
    return {
      id,
      jobType: job.jobType,
      state: job.state,
      results,
      tasks,
      ...(error ? { error } : {}),
    };
  };
  const runOf = (job: JobRequest): Run => ({
    id: job.id,
    jobType: job.jobType,
    done: () => outcome(job.id),
    async result() {
      const r = await outcome(job.id);
      if (r.state !== "COMPLETED") throw new JobFailedError(r);
      return r;
    },
    async cancel() {
      await engine.cancel(job.id);
    },
  });

  let closed: Promise<void> | undefined;
  const assertOpen = () => {
    if (closed) {
      throw new ColonyError(
        "COLONY_CLOSED",
        "this colony was closed; start another with startColony() to submit more jobs",
        { status: 409 },
      );
    }
  };
  const colony: Colony = {
    dataDir: runtime.dataDir,
    engine,
    store,
    ...(url ? { url } : {}),
    register(name, handler) {
      runtime.asyncActions.functions.register(name, handler);
      return colony;
    },
    async define(definition) {
      assertOpen();
      const parsed = parseDefinition(definition);
      const source =
        typeof definition === "string" ? definition : JSON.stringify(definition, null, 2);
      const stored = await engine.saveDefinition(parsed, source);
      // A cron_trigger takes effect now, not at the scheduler's next look.
      if (parsed.cronTrigger) await runtime.asyncActions.schedules.sync();
      return stored;
    },
    async submit(input, submitOptions = {}) {
      assertOpen();
      const extra = {
        ...(submitOptions.scheduledAt ? { scheduledAt: submitOptions.scheduledAt } : {}),
      };
      let job: JobRequest;
      if (typeof input === "string" && !isDefinitionText(input)) {
        job = await engine.submitType(input, submitOptions.params ?? {}, extra);
      } else if (typeof input === "object" && input !== null && !("tasks" in input)) {
        const jobType = (input as { job_type?: unknown }).job_type;
        if (typeof jobType !== "string") {
          throw new ValidationError(
            "submit: give a job type, {job_type, params}, or a definition with tasks",
          );
        }
        const own = (input as { params?: Record<string, unknown> }).params;
        checkParams(own, "submit({job_type, params}): params");
        checkParams(submitOptions.params);
        const params = { ...own, ...submitOptions.params };
        job = await engine.submitType(jobType, params, extra);
      } else {
        job = await engine.submit({
          definition: parseDefinition(input as DefinitionInput),
          params: submitOptions.params ?? {},
          ...extra,
        });
      }
      return runOf(job);
    },
    on(event, listener) {
      emitter.on(event, listener as (...args: unknown[]) => void);
      return () => emitter.off(event, listener as (...args: unknown[]) => void);
    },
    off(event, listener) {
      emitter.off(event, listener as (...args: unknown[]) => void);
    },
    close(closeOptions = {}) {
      closed ??= (async () => {
        engine.events.off("job:state", onJob);
        engine.events.off("task:state", onTask);
        engine.events.off("task:progress", onProgress);
        emitter.removeAllListeners();
        const graceMs = closeOptions.graceMs ?? 10_000;
        if (closeOptions.cancelRunning) {
          await Promise.all(
            engine.activeJobIds().map((id) => engine.cancel(id).catch(() => undefined)),
          );
        }
        if (stopServer) await stopServer(graceMs);
        else
          await runtime.close({
            graceMs,
            ...(closeOptions.cancelRunning ? { cancelRunning: true } : {}),
          });
      })();
      return closed;
    },
  };
  return colony;
}
