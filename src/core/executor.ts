/**
 * The executor contract (SPEC section 4, seed 001). Every way colony runs work (a local
 * shell, an HTTP call, a container, a pod, a remote worker) implements this one
 * interface and is registered by the methods it serves.
 */
import type { Readable } from "node:stream";
import { ExecutorError } from "./errors.ts";
import type { Method, TaskDefinition, Variable } from "./job-definition.ts";
import type { TaskExecution } from "./job-request.ts";

export interface ExecutionRequest {
  /** Unique per execution; the unit id. Starting the same id twice is an error. */
  executionId: string;
  method: Method;
  /** The task with every `{{.Name}}` already substituted. */
  task: TaskDefinition;
  /** Environment for processes the executor starts (task environment + variables). */
  env: Record<string, string>;
  /** Variables as the TaskRequest carries them. */
  variables: Record<string, Variable>;
  /** `{data}/units/{executionId}`: the executor writes `stdout` there. */
  unitDir: string;
  /** A file whose bytes are the process's stdin, if any. */
  stdinPath?: string;
  /**
   * An earlier colony process may have started this execution and died before it could
   * record that (the engine found it READY when it took the job over): an executor that
   * can find such work looks for it before starting anything (see start()).
   */
  mayHaveStarted?: boolean;
  /**
   * With `mayHaveStarted`, to an executor that `adopts`: only look for that work (its job
   * was cancelled meanwhile, and what runs must be stopped, not started). Found, start()
   * answers as with mayHaveStarted alone; not found, nothing starts and start() rejects
   * with COLONY_NOT_STARTED (`notStarted`).
   */
  adoptOnly?: boolean;
  /**
   * The task's own working directory (tasks with artifacts or dependencies get
   * `{unitDir}/work`); absent: the executor's default.
   */
  workDir?: string;
  /** Ids for the TaskRequest wire format and the hook. */
  jobRequestId?: number;
  jobType?: string;
  jobAttempt?: number;
  attempt?: number;
  /**
   * The caller will call `release(executionId)` once it has recorded the result durably.
   * Until then the executor keeps what a restarted caller needs to learn the result (the
   * shell executor's exit file), and may skip keeping it once released.
   */
  willRelease?: boolean;
  /**
   * The executor runs the task on another machine and moves its artifacts itself (see
   * Executor.movesArtifacts): the server makes no work dir for it, fetches nothing and
   * collects nothing, and passes `artifactDownloads` instead.
   */
  movesArtifacts?: boolean;
  /** With movesArtifacts: the files of the task's `dependencies` to put in its work dir. */
  artifactDownloads?: ArtifactDownload[];
}

/** One file of a dependency's artifacts, for an executor that fetches them itself. */
export interface ArtifactDownload {
  /** Its path relative to the work dir. */
  name: string;
  /** A signed URL that serves its bytes without credentials (for an hour). */
  url: string;
  /** Whether it was executable when stored (mode 0755, else 0644). */
  executable: boolean;
}

export interface ExecutionResult {
  /** The process's exit code; null when it was killed by a signal or never ran. */
  exitCode: number | null;
  /** True when colony stopped it (cancel or timeout). */
  killed: boolean;
  /** Small outputs that did not go to the output file (HTTP bodies...). */
  stdout?: string;
  stderr?: string;
  /** Why it failed, when it failed for a reason other than its exit code. */
  error?: string;
  errorCode?: string;
  /** Values for later tasks (worker task_context, HTTP response fields...). */
  context?: Record<string, unknown>;
  /** Explicit verdict from a worker (COMPLETED, FAILED, EXECUTING); else derived from exitCode. */
  status?: "COMPLETED" | "FAILED" | "EXECUTING";
  /**
   * False when the executor knows it wrote no output file for this execution (a
   * FUNCTION handler that never logged): the task runner then skips looking for
   * `::set-output` lines there. Absent means it may have.
   */
  wroteOutput?: boolean;
}

/**
 * Whether a result is a completed task by itself (before any `on_exit_code` route): a
 * worker's explicit COMPLETED, or exit code 0 without an error.
 */
export function completedResult(result: ExecutionResult): boolean {
  return (
    result.status === "COMPLETED" ||
    (result.status === undefined && result.exitCode === 0 && !result.error)
  );
}

export interface LogStreamRequest {
  executionId: string;
  /** Only output produced from now on (no history). */
  tail?: boolean;
  /** Stay open until the execution ends. */
  follow?: boolean;
}

/** Re-attach data an executor stores with the task (pid, container id...). */
export type ExecutionHandle = Record<string, unknown>;

export interface Executor {
  /** The methods this executor serves (e.g. ["SHELL"]). */
  readonly methods: readonly Method[];
  /**
   * True for an executor that runs tasks elsewhere and moves their `artifacts` and
   * `dependencies` itself, through the job hook (a `colony ant` agent): files in the
   * server's work dir would never reach the task, nor the task's files the server.
   */
  readonly movesArtifacts?: boolean;
  /** True for an executor that honours ExecutionRequest.adoptOnly (it must: it may start). */
  readonly adopts?: boolean;
  /** Whether the executor can run here (binary present, engine reachable...). */
  isInstalled(signal?: AbortSignal): Promise<boolean>;
  /**
   * Starts an execution and returns once it runs. Errors with
   * COLONY_EXECUTION_EXISTS when the id was started before (running or finished); an
   * executor that follows that execution anyway (started by an earlier colony process
   * that died before recording it) throws an ExecutionExistsError whose `handle` is the
   * one start() would have returned, and its wait() answers that execution's result.
   */
  start(request: ExecutionRequest): Promise<ExecutionHandle>;
  /** start + wait. */
  run(request: ExecutionRequest): Promise<ExecutionResult>;
  /** Resolves when the execution ends. COLONY_UNKNOWN_EXECUTION for unknown or finished ids. */
  wait(executionId: string): Promise<ExecutionResult>;
  /**
   * Stops an execution and everything it started (SIGTERM, then SIGKILL after the grace
   * period). COLONY_UNKNOWN_EXECUTION for unknown or finished ids.
   */
  cancel(executionId: string): Promise<void>;
  /** The execution's output (seed 001 GetLogStream). COLONY_UNKNOWN_EXECUTION for unknown ids. */
  logStream(request: LogStreamRequest): Promise<Readable>;
  /**
   * Re-attaches to an execution started by an earlier process (after a restart), using
   * the handle `start` returned. Resolves false when it is gone; then `wait` answers
   * with the recorded result if one was recorded.
   */
  attach?(request: ExecutionRequest, handle: ExecutionHandle): Promise<boolean>;
  /**
   * The caller recorded the result of an execution started with `willRelease` durably:
   * what the executor kept to recover it after a crash is no longer needed.
   */
  release?(executionId: string): void;
  /** Releases clients; leaves running executions alone unless `killRunning`. */
  close(options?: { killRunning?: boolean }): Promise<void>;
}

/** Why a claimed job goes back to PENDING for a while (TaskDispatcher.deferral). */
export interface DeferralOptions {
  /** The job's timeout, counted like the task's from the first deferral (a first task). */
  jobTimeoutMs?: number;
  /** When the job's timeout ends it (ms; a started job): never put off past that. */
  deadline?: number;
  /** The task's execution when it exists (a started job's next task). */
  executionId?: string;
}

export interface Deferral {
  delayMs: number;
  /** Recorded on the PENDING job until it starts. */
  errorCode: string;
  errorMessage: string;
}

/**
 * Chooses the executor of each task: the built-in ant (this process's registry) or a
 * remote ant (src/ants/dispatcher.ts). Returns an executor now; a promise when the task
 * must wait for an ant with room (resolving undefined if `signal` aborts first, or
 * rejecting with a ColonyError that says why none came); undefined when nothing here can
 * ever run the method. For an execution being re-attached (not READY), the executor
 * that ran it. `mayHaveStarted`: an earlier process recorded it READY and may have
 * started it (ExecutionRequest.mayHaveStarted): the executor that may run it comes first.
 */
export interface TaskDispatcher {
  executorFor(
    task: TaskDefinition,
    execution: TaskExecution,
    signal: AbortSignal,
    mayHaveStarted?: boolean,
  ): Executor | undefined | Promise<Executor | undefined>;
  /**
   * Asked before a claimed job starts, with its first task (rendered), and by a started
   * job's runner with its next task (and that task's execution): how long to leave the
   * job PENDING when nothing here would ever take that task (no ant serves it), or
   * undefined to start it (or run the task). The job is then not held in memory, and
   * another server (one with such an ant) may claim it.
   */
  deferral?(
    jobRequestId: number,
    task: TaskDefinition,
    options?: DeferralOptions,
  ): Deferral | undefined;
  /** When a job that `deferral` deferred first waited (ms): its timeouts count from there. */
  deferredSince?(jobRequestId: number): number | undefined;
  /** The task (and its execution, if created) `deferral` last deferred a job for here. */
  deferredTask?(jobRequestId: number): { task: TaskDefinition; executionId?: string } | undefined;
  /**
   * For an execution an earlier process recorded READY and may have sent to a remote ant
   * (it is to be stopped, not started): the ant that says it holds it, after waiting for
   * ants to come back as executorFor does with mayHaveStarted; undefined when none does.
   */
  holderFor?(execution: TaskExecution): Promise<Executor | undefined>;
  /** The execution that `executorFor` gave an executor for has ended (its result is in). */
  finished?(executionId: string): void;
  /**
   * Ends the wait of `executionId` for an ant when no connected ant serves it (its
   * promise resolves undefined), so that its job may decide again; true when it did.
   * A task waiting for a busy ant is left waiting (false).
   */
  release?(executionId: string): boolean;
  /**
   * Tasks waiting for an executor that is there but busy (an ant at its capacity) now;
   * tasks nothing here can serve do not count (the engine's claims follow this).
   */
  readonly waitingCount?: number;
  /**
   * Jobs whose running task waits for something nothing here serves (an ant that is not
   * connected): their runners do not count against the engine's maxParallelJobs.
   */
  readonly parkedJobs?: number;
}

export const EXECUTION_EXISTS = "COLONY_EXECUTION_EXISTS";
export const UNKNOWN_EXECUTION = "COLONY_UNKNOWN_EXECUTION";
export const NOT_STARTED = "COLONY_NOT_STARTED";

/** What start() with `adoptOnly` rejects with when no earlier process started the work. */
export function notStarted(executionId: string): ExecutorError {
  return new ExecutorError(
    NOT_STARTED,
    `execution '${executionId}' was not started by an earlier colony process; nothing was started (adoptOnly)`,
  );
}

/**
 * start() with `adoptOnly` found no earlier work: the entry it reserved for the execution
 * goes, a wait() made while it looked rejects, and start() rejects, all with NOT_STARTED.
 */
export function abandonNotStarted(
  executions: Map<string, unknown>,
  executionId: string,
  done: { reject(error: Error): void },
): never {
  const error = notStarted(executionId);
  executions.delete(executionId);
  done.reject(error);
  throw error;
}

/** Executors by method. */
export class ExecutorRegistry {
  readonly #byMethod = new Map<Method, Executor>();

  register(executor: Executor): this {
    for (const method of executor.methods) this.#byMethod.set(method, executor);
    return this;
  }

  get(method: Method): Executor | undefined {
    return this.#byMethod.get(method);
  }

  methods(): Method[] {
    return [...this.#byMethod.keys()];
  }

  all(): Executor[] {
    return [...new Set(this.#byMethod.values())];
  }

  async close(options?: { killRunning?: boolean }): Promise<void> {
    await Promise.all(this.all().map((e) => e.close(options)));
  }
}
