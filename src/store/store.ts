/**
 * The store: all durable state of colony. One interface, two backends (SQLite, the
 * embedded default; PostgreSQL, shared by several servers), one conformance suite
 * (store-conformance.ts) run against both.
 *
 * Every state change is one atomic operation (one statement or one transaction) that
 * checks the transition against core/states.ts; an illegal move throws
 * IllegalTransitionError and changes nothing.
 */
import type { JobDefinition } from "../core/job-definition.ts";
import type { JobRequest, JobRequestFilter, TaskExecution } from "../core/job-request.ts";
import type { Method } from "../core/job-definition.ts";
import type { State } from "../core/states.ts";
import type { AsyncActionStore } from "./async-action-store.ts";
import type {
  NewProcessJob,
  ProcessJob,
  ProcessJobStatus,
  ProcessJobStop,
} from "../core/process-job.ts";

export interface StoredDefinition {
  jobType: string;
  /** Increases by one on every save. */
  version: number;
  definition: JobDefinition;
  /** The source text as submitted (YAML or JSON), for display. */
  source: string;
  paused: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewJobRequest {
  jobType: string;
  definition: JobDefinition;
  params: Record<string, unknown>;
  /** Defaults to now. */
  scheduledAt?: Date;
  submittedBy?: string;
}

export interface NewTaskExecution {
  jobRequestId: number;
  taskType: string;
  method: Method;
  jobAttempt: number;
  attempt: number;
  /** Optional: the caller may choose the unit id; else the store makes one. */
  id?: string;
  /** The id of the data dir its output goes to (runtime/server-id.ts). */
  server?: string | undefined;
}

export interface TaskFinish {
  state: Extract<State, "COMPLETED" | "FAILED" | "CANCELLED">;
  exitCode?: number;
  errorCode?: string;
  errorMessage?: string;
  context?: Record<string, unknown>;
}

export interface JobFinish {
  state: Extract<State, "COMPLETED" | "FAILED" | "CANCELLED">;
  errorCode?: string;
  errorMessage?: string;
}

/** The roles a token can carry (the server's principal.ts gives them meaning). */
export const TOKEN_ROLES = ["reader", "writer", "admin", "ant"] as const;

/** An API token as stored: never the token itself, only its sha256 (hex). */
export interface StoredToken {
  /** `tok_` and 8 letters or digits; what `DELETE /api/tokens/{id}` takes. */
  id: string;
  name: string;
  role: (typeof TOKEN_ROLES)[number];
  createdAt: Date;
  lastUsedAt?: Date;
  revokedAt?: Date;
  /** The name of whoever created it (a token name), when known. */
  createdBy?: string;
}

export interface NewToken {
  name: string;
  role: string;
  /** sha256 of the token, 64 lowercase hex digits. */
  hash: string;
  createdBy?: string;
}

export interface Page<T> {
  items: T[];
  /** Pass as `before` to get the next (older) page; absent on the last page. */
  nextCursor?: number;
}

/**
 * How much earlier than the engine that deferred a request other engines may claim it
 * (Store.deferJobRequest): with the same poll interval, the engine without the ant
 * otherwise claimed it back first every time.
 */
export const DEFERRAL_HEAD_START_MS = 2000;

/** Why a job waits (recorded on a deferred request until it starts). */
export interface WaitReason {
  errorCode: string;
  errorMessage: string;
}

export interface Store {
  /** Which backend this is ("sqlite" | "postgres"), for logs and health. */
  readonly kind: string;
  /** Hook reports, artifacts and schedules (SPEC section 9): async-action-store.ts. */
  readonly asyncActions: AsyncActionStore;

  /**
   * Applies pending numbered migrations (idempotent). On a store that already had some
   * (an upgrade), `log` hears which migration starts and when it ended.
   */
  migrate(log?: (message: string) => void): Promise<void>;
  close(): Promise<void>;

  // -- job definitions ------------------------------------------------------------
  /** Inserts or replaces (version + 1) the definition of `definition.jobType`. */
  putDefinition(definition: JobDefinition, source: string): Promise<StoredDefinition>;
  getDefinition(jobType: string): Promise<StoredDefinition | undefined>;
  listDefinitions(): Promise<StoredDefinition[]>;
  /** True when something was deleted. */
  deleteDefinition(jobType: string): Promise<boolean>;

  // -- job requests -----------------------------------------------------------------
  /** Inserts a PENDING request; the id is assigned by the store (increasing integers). */
  createJobRequest(input: NewJobRequest): Promise<JobRequest>;
  getJobRequest(id: number): Promise<JobRequest | undefined>;
  /** Newest first. */
  listJobRequests(filter: JobRequestFilter): Promise<Page<JobRequest>>;
  /** Requests not in a final state, oldest first. */
  listUnfinishedJobRequests(): Promise<JobRequest[]>;
  /** Counts requests of `jobType` in the given states (for max_concurrency). */
  countJobRequests(jobType: string, states: State[]): Promise<number>;

  /**
   * PENDING -> READY for up to `limit` requests whose scheduled time has come, oldest
   * first, setting owner and lease. Requests of a type with max_concurrency are only
   * claimed while fewer than that many of the type are READY/STARTED/EXECUTING.
   * Atomic: two engines never claim the same request.
   */
  claimDueJobRequests(
    owner: string,
    now: Date,
    leaseMs: number,
    limit: number,
  ): Promise<JobRequest[]>;
  /**
   * Takes over an unfinished request whose owner's lease expired (or whose owner is
   * `expectedOwner`): sets owner and lease. Returns undefined when another engine holds it.
   */
  takeOverJobRequest(
    id: number,
    owner: string,
    now: Date,
    leaseMs: number,
    expectedOwner?: string,
  ): Promise<JobRequest | undefined>;
  /**
   * Extends the lease of every request `owner` is driving (READY, STARTED, EXECUTING; a
   * lease means nothing to a PENDING or PAUSED request). Returns how many.
   */
  renewLeases(owner: string, now: Date, leaseMs: number): Promise<number>;

  /** READY|STARTED -> EXECUTING, sets startedAt on first start, clears a deferral's errorCode/errorMessage. */
  markJobExecuting(id: number): Promise<JobRequest>;
  /** Any non-final state -> final state, sets endedAt. */
  finishJobRequest(id: number, finish: JobFinish): Promise<JobRequest>;
  /**
   * A job-level retry: EXECUTING|FAILED -> PENDING with attempt + 1 and the given
   * scheduledAt. startedAt and endedAt are cleared: they are those of the current attempt
   * (its timeout counts from its own start).
   */
  retryJobRequest(id: number, scheduledAt: Date): Promise<JobRequest>;
  /** FAILED|CANCELLED -> PENDING with attempt + 1, scheduled now (user restart); as retryJobRequest. */
  restartJobRequest(id: number): Promise<JobRequest>;
  /**
   * READY|EXECUTING -> PENDING for a request `owner` claimed (or runs) but leaves for
   * later: no ant here serves its first task, or the next task of a started job. Due `at`
   * that time for `owner` itself (kept in `owner`, without a lease) and
   * DEFERRAL_HEAD_START_MS earlier for other engines, so that one that has what it needs
   * gets it first; with why in errorCode/errorMessage until it starts again
   * (markJobExecuting clears them). Its attempt, startedAt and executions stay: the
   * engine that claims it next goes on from them (a task left READY starts there).
   * Undefined, changing nothing, when it is no longer READY or EXECUTING under `owner`
   * or a cancel was asked for it.
   */
  deferJobRequest(
    id: number,
    owner: string,
    at: Date,
    why: WaitReason,
  ): Promise<JobRequest | undefined>;
  /**
   * Deferred requests (PENDING with `errorCode`) due later than `now` become due at `now`
   * for every engine, the one that deferred them included (an ant that may serve them
   * connected). Returns how many.
   */
  wakeDeferredJobRequests(errorCode: string, now: Date): Promise<number>;
  /**
   * Non-final -> CANCELLED for a request no engine runs now (PENDING/READY/PAUSED) that has
   * not started in its attempt. Undefined, changing nothing, for one an engine runs or one
   * that started and was handed back (requestCancel makes that one due: an engine ends it,
   * running its `always_run` tasks).
   */
  cancelPendingJobRequest(id: number): Promise<JobRequest | undefined>;
  /**
   * Records that a user asked to cancel; the owning engine acts on it. A started request
   * waiting PENDING (handed back) becomes due now for every engine, so that one claims it
   * and ends it.
   */
  requestCancel(id: number): Promise<JobRequest>;
  /** Whether cancel was asked for this request. */
  isCancelRequested(id: number): Promise<boolean>;

  // -- task executions --------------------------------------------------------------
  /**
   * Inserts a READY execution. Unique on (jobRequestId, jobAttempt, taskType, attempt):
   * a second insert of the same key returns the existing row instead (so a planner
   * re-run after a crash never starts a task twice).
   */
  createTaskExecution(
    input: NewTaskExecution,
  ): Promise<{ execution: TaskExecution; created: boolean }>;
  getTaskExecution(id: string): Promise<TaskExecution | undefined>;
  /** All executions of a request (every attempt), in creation order. */
  listTaskExecutions(jobRequestId: number): Promise<TaskExecution[]>;
  /** READY -> STARTED with the executor handle (for re-attach) and ant id. */
  markTaskStarted(
    id: string,
    handle: Record<string, unknown>,
    antId?: string,
  ): Promise<TaskExecution>;
  /**
   * READY|STARTED -> EXECUTING. With `started`, also records the executor handle and ant
   * (one statement for executors whose start returns once the work runs).
   */
  markTaskExecuting(
    id: string,
    started?: { handle: Record<string, unknown>; antId?: string },
  ): Promise<TaskExecution>;
  /** Non-final -> final with result fields. */
  finishTask(id: string, finish: TaskFinish): Promise<TaskExecution>;
  /**
   * A job's last task and the job's verdict in one atomic operation (finishTask then
   * finishJobRequest, both or neither): the engine's runner uses it when the job ends
   * with that task, so the two are one commit rather than two in a row.
   */
  finishTaskAndJob(
    taskId: string,
    task: TaskFinish,
    jobId: number,
    job: JobFinish,
  ): Promise<{ execution: TaskExecution; job: JobRequest }>;
  /** Merges keys into the context of a running execution (hook results, outputs). */
  mergeTaskContext(id: string, context: Record<string, unknown>): Promise<void>;

  // -- process jobs (SPEC section 8, seed 003) --------------------------------------
  /** Inserts a `created` process job; ids are 0, 1, 2... in insert order, never reused. */
  createProcessJob(input: NewProcessJob): Promise<ProcessJob>;
  getProcessJob(id: number): Promise<ProcessJob | undefined>;
  /** The jobs of one node in one status, oldest first (recovery lists the started ones). */
  listProcessJobs(filter: { nodeId: string; status: ProcessJobStatus }): Promise<ProcessJob[]>;
  /**
   * created -> started on `nodeId` (the node that runs the process), setting startedAt:
   * one guarded UPDATE, so of two concurrent starts exactly one succeeds. NotFoundError
   * for an unknown id, IllegalTransitionError when the job is not `created`.
   */
  startProcessJob(id: number, nodeId: string): Promise<ProcessJob>;
  /** Records the executor's start handle of a `started` job; a no-op once it stopped. */
  setProcessJobHandle(id: number, handle: Record<string, unknown>): Promise<void>;
  /**
   * started -> stopped with the reason (and exit code), setting endedAt: one guarded
   * UPDATE, so the first of API stop, timeout, shutdown and the process's own exit wins.
   * NotFoundError for an unknown id, IllegalTransitionError when it is not `started`.
   */
  stopProcessJob(id: number, stop: ProcessJobStop): Promise<ProcessJob>;

  // -- REST views -------------------------------------------------------------------
  /**
   * Executions of every request, newest first (the units list). `before` is the
   * `nextCursor` of the previous page (a creation sequence number, not a unit id).
   */
  listRecentTaskExecutions(query: {
    before?: number;
    limit?: number;
  }): Promise<Page<TaskExecution>>;
  /** Pauses (submits refused) or resumes a job type. Undefined when there is no such type. */
  setDefinitionPaused(jobType: string, paused: boolean): Promise<StoredDefinition | undefined>;

  // -- API tokens -------------------------------------------------------------------
  /**
   * Inserts a token (its hash only) with a new id. Throws ValidationError for an unknown
   * role, an empty name or a malformed hash; ConflictError when the hash exists already.
   */
  createToken(input: NewToken): Promise<StoredToken>;
  /** The token with this hash, or undefined when unknown or revoked. */
  findTokenByHash(hash: string): Promise<StoredToken | undefined>;
  /** Every token, revoked ones too, oldest first. */
  listTokens(): Promise<StoredToken[]>;
  /**
   * Sets revokedAt (once: revoking again keeps the first time). NotFoundError for an
   * unknown id.
   */
  revokeToken(id: string): Promise<StoredToken>;
  /** Records a use (lastUsedAt = at, never moving backwards); unknown ids are ignored. */
  touchToken(id: string, at: Date): Promise<void>;

  // -- settings ---------------------------------------------------------------------
  /**
   * The store-wide setting `key`: set to `value` when it has none yet. Answers the value
   * it holds, which is `value` or what another server set first (it never changes).
   */
  claimSetting(key: string, value: string): Promise<string>;

  // -- servers ----------------------------------------------------------------------
  /** Records (or updates) where a server answers; seenAt is now (servers renew it while they run). */
  registerServer(server: { id: string; nodeId: string; url: string }): Promise<void>;
  /** A server by its data dir's id (TaskExecution.server), or undefined. */
  getServer(id: string): Promise<ServerRecord | undefined>;
  /** Every server that has recorded itself, most recently seen first. */
  listServers(): Promise<ServerRecord[]>;
}

/** A server sharing the store: its data dir's id, node id, URL, and when it was last seen. */
export interface ServerRecord {
  id: string;
  nodeId: string;
  url: string;
  seenAt: Date;
}
