/**
 * The shared store: PostgreSQL through a `pg` pool, for several colony servers working
 * from one database. Transitions are single UPDATE statements guarded by the source
 * states; claims lock rows with FOR UPDATE SKIP LOCKED so concurrent claimers never
 * wait on or take each other's rows, and serialise per job type (a transaction-scoped
 * advisory lock) only where max_concurrency has to be counted.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import pg from "pg";
import type { PoolClient } from "pg";
import { Semaphore } from "../core/semaphore.ts";
import { DefinitionTexts, POSTGRES_JOB_COLUMNS, definitionHash } from "./definition-texts.ts";
import {
  ConflictError,
  IllegalTransitionError,
  NotFoundError,
  ValidationError,
} from "../core/errors.ts";
import { isUnitId, newUnitId } from "../core/ids.ts";
import type { JobDefinition } from "../core/job-definition.ts";
import type { JobRequest, JobRequestFilter, TaskExecution } from "../core/job-request.ts";
import { isFinal, sourcesOf, type State } from "../core/states.ts";
import { describeUrl, postgresFailure } from "./postgres-errors.ts";
import { migratePostgres } from "./migrations.ts";
import { createPostgresAsyncActions } from "./postgres-async-actions.ts";
import {
  formatProcessJobId,
  type NewProcessJob,
  type ProcessJob,
  type ProcessJobStatus,
  type ProcessJobStop,
} from "../core/process-job.ts";
import { PROCESS_JOB_SOURCES, toProcessJob } from "./process-job-rows.ts";
import {
  ACTIVE_STATES,
  CANCEL_PENDING_SOURCES,
  RESTART_SOURCES,
  RETRY_SOURCES,
  UNFINISHED,
  assertFinal,
  leaseUntil,
  parseFilter,
  postgresCodec as codec,
  sqlList,
  WAKE_STARTED,
  toJobRequest,
  savedDefinition,
  toStoredDefinition,
  toServerRecord,
  toStoredToken,
  toTaskExecution,
  checkNewToken,
  isTokenHash,
  newTokenId,
  type Row,
} from "./row-mapping.ts";
import type {
  JobFinish,
  NewJobRequest,
  NewTaskExecution,
  NewToken,
  Page,
  ServerRecord,
  Store,
  StoredDefinition,
  StoredToken,
  TaskFinish,
} from "./store.ts";
import { DEFERRAL_HEAD_START_MS, type WaitReason } from "./store.ts";

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** A schema of its own (created by migrate() if missing, used as search_path). */
  schema?: string;
  /** How long opening a connection may take before it is an error (default 10 s). */
  connectTimeoutMs?: number;
}

export function createPostgresStore(options: PostgresStoreOptions): Store {
  return new PostgresStore(options);
}

type Queryable = pg.Pool | PoolClient;

/** The store whose operation the current async context is running (PostgresStore#run). */
const inTurn = new AsyncLocalStorage<PostgresStore>();

/** A whole job_requests row, its definition joined in. */
const JOB = POSTGRES_JOB_COLUMNS;

/**
 * Due PENDING requests of a claim: scheduled by now, or within the deferral head start
 * when another owner deferred them; the partial indexes of migration 0011. Rows another
 * claimer holds are skipped, not waited for.
 */
const DUE_FREE = `SELECT id, scheduled_at FROM job_requests
  WHERE max_concurrency IS NULL AND state = 'PENDING' AND scheduled_at <= $1
    AND (scheduled_at <= $2 OR (owner IS NOT NULL AND owner <> $3))
  ORDER BY scheduled_at, id LIMIT $4 FOR UPDATE SKIP LOCKED`;
const DUE_LIMITED = `SELECT id, scheduled_at, max_concurrency FROM job_requests
  WHERE max_concurrency IS NOT NULL AND job_type = $1 AND state = 'PENDING' AND scheduled_at <= $2
    AND (scheduled_at <= $3 OR (owner IS NOT NULL AND owner <> $4))
  ORDER BY scheduled_at, id LIMIT $5 FOR UPDATE SKIP LOCKED`;
/** The types with PENDING requests that have a limit: one index probe per type. */
const LIMITED_TYPES = `WITH RECURSIVE types(job_type) AS (
    (SELECT job_type FROM job_requests
     WHERE state = 'PENDING' AND max_concurrency IS NOT NULL ORDER BY job_type LIMIT 1)
    UNION ALL
    SELECT (SELECT r.job_type FROM job_requests r
            WHERE r.state = 'PENDING' AND r.max_concurrency IS NOT NULL AND r.job_type > t.job_type
            ORDER BY r.job_type LIMIT 1)
    FROM types t WHERE t.job_type IS NOT NULL)
  SELECT job_type FROM types WHERE job_type IS NOT NULL`;

class PostgresStore implements Store {
  readonly kind = "postgres";
  readonly #pool: pg.Pool;
  /** One turn per pooled connection (#run). */
  readonly #turns: Semaphore;
  readonly #schema: string | undefined;
  /** host:port/database, never the credentials. */
  readonly #where: string;
  /** SQL text -> prepared statement name (pg prepares each once per connection). */
  readonly #names = new Map<string, string>();
  #closed = false;
  /** Hook reports, artifacts, schedules: postgres-async-actions.ts, on this pool. */
  readonly asyncActions = createPostgresAsyncActions({
    q: (text, values, client) => this.#q(text, values, client ?? this.#pool),
    tx: (fn) => this.#tx(fn),
    run: (what, fn) => this.#run(what, fn),
    definitionId: (text, client) => this.#definitionId(text, client),
  });

  constructor(options: PostgresStoreOptions) {
    const { url, poolSize = 10, schema, connectTimeoutMs = 10_000 } = options;
    if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new ValidationError(
        `schema '${schema}' must be a lowercase SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters)`,
      );
    }
    this.#schema = schema;
    this.#where = describeUrl(url);
    this.#turns = new Semaphore(poolSize);
    this.#pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      connectionTimeoutMillis: connectTimeoutMs,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    // An idle connection that breaks (server restart) is dropped by the pool; the next
    // query opens a new one or reports the failure, so there is nothing to do here.
    this.#pool.on("error", () => {});
  }

  // -- plumbing -----------------------------------------------------------------------

  /** Runs a named (prepared once per connection) statement on the pool or a client. */
  async #q(text: string, values: unknown[] = [], db: Queryable = this.#pool): Promise<Row[]> {
    let name = this.#names.get(text);
    if (name === undefined) {
      name = `colony_${this.#names.size}`;
      this.#names.set(text, name);
    }
    const result = await db.query({ name, text, values });
    return result.rows as Row[];
  }

  async #one(
    text: string,
    values: unknown[] = [],
    db: Queryable = this.#pool,
  ): Promise<Row | undefined> {
    return (await this.#q(text, values, db))[0];
  }

  /** Definitions stored once per distinct text: definition-texts.ts. */
  readonly #definitionIds = new DefinitionTexts();

  /**
   * The id of this definition text in job_request_definitions, inserted if new. Ids are
   * kept only when found or inserted outside a transaction (`client`), which could roll
   * the insert back. A row another transaction is inserting makes the INSERT wait for it
   * and do nothing; the SELECT after it, a statement of its own, then sees it.
   */
  async #definitionId(text: string, client?: PoolClient): Promise<number> {
    const known = this.#definitionIds.idOf(text);
    if (known !== undefined) return known;
    const hash = definitionHash(text);
    const db = client ?? this.#pool;
    const row =
      (await this.#one(
        `INSERT INTO job_request_definitions (sha256, definition) VALUES ($1, $2)
         ON CONFLICT (sha256) DO NOTHING RETURNING id`,
        [hash, text],
        db,
      )) ??
      (await this.#one("SELECT id FROM job_request_definitions WHERE sha256 = $1", [hash], db));
    const id = Number(row!.id);
    if (!client) this.#definitionIds.learn(text, id);
    return id;
  }

  async #tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      client.release();
      return result;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
        client.release();
      } catch (rollbackError) {
        client.release(rollbackError as Error); // broken connection: discard it
      }
      throw error;
    }
  }

  /**
   * Runs one store operation. Operations wait their turn here, at most one per pooled
   * connection at once (`#turns`), not in the pool's own queue: that one gives up after
   * the connect timeout, so a burst of thousands of submits failed those at its back
   * with "timeout exceeded when trying to connect" though PostgreSQL was fine and every
   * connection busy. One inside another (asyncActions' through #run) takes no second turn.
   */
  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (inTurn.getStore() === this) return this.#attempt(what, fn);
    await this.#turns.acquire();
    try {
      return await inTurn.run(this, () => this.#attempt(what, fn));
    } finally {
      this.#turns.release();
    }
  }

  async #attempt<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw this.#wrap(error, what);
    }
  }

  #wrap(error: unknown, what: string): unknown {
    return postgresFailure(error, this.#where, what, this.#closed);
  }

  async #jobMiss(id: number, to: State, db: Queryable = this.#pool): Promise<never> {
    const row = await this.#one("SELECT state FROM job_requests WHERE id = $1", [id], db);
    if (!row) throw new NotFoundError("job_request", id);
    throw new IllegalTransitionError("job request", id, row.state as string, to);
  }

  async #taskMiss(id: string, to: State, db: Queryable = this.#pool): Promise<never> {
    const row = await this.#one("SELECT state FROM task_executions WHERE id = $1", [id], db);
    if (!row) throw new NotFoundError("task_execution", id);
    throw new IllegalTransitionError("task execution", id, row.state as string, to);
  }

  // -- lifecycle ------------------------------------------------------------------------

  migrate(log?: (message: string) => void): Promise<void> {
    return this.#run("migrating", async () => {
      if (this.#schema) {
        try {
          await this.#pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
        } catch (error) {
          // Two servers creating it at once: the loser sees a duplicate, which is fine.
          const code = (error as { code?: unknown }).code;
          if (code !== "23505" && code !== "42P06") throw error;
        }
      }
      const where = `${this.#where}${this.#schema ? ` (schema ${this.#schema})` : ""}`;
      await this.#tx((client) => migratePostgres(client, where, log));
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  // -- job definitions ------------------------------------------------------------------

  putDefinition(definition: JobDefinition, source: string): Promise<StoredDefinition> {
    return this.#run("saving a job definition", async () => {
      const now = new Date();
      const row = await this.#one(
        `INSERT INTO job_definitions AS d (job_type, version, definition, source, paused, created_at, updated_at)
         VALUES ($1, 1, $2, $3, false, $4, $4)
         ON CONFLICT (job_type) DO UPDATE SET version = d.version + 1, definition = excluded.definition,
           source = excluded.source, updated_at = excluded.updated_at
         RETURNING version, paused, created_at, updated_at`,
        [definition.jobType, JSON.stringify(definition), source, now],
      );
      return savedDefinition(row!, codec, definition, source);
    });
  }

  getDefinition(jobType: string): Promise<StoredDefinition | undefined> {
    return this.#run("reading a job definition", async () => {
      const row = await this.#one("SELECT * FROM job_definitions WHERE job_type = $1", [jobType]);
      return row && toStoredDefinition(row, codec);
    });
  }

  listDefinitions(): Promise<StoredDefinition[]> {
    return this.#run("listing job definitions", async () =>
      (await this.#q("SELECT * FROM job_definitions ORDER BY job_type")).map((row) =>
        toStoredDefinition(row, codec),
      ),
    );
  }

  deleteDefinition(jobType: string): Promise<boolean> {
    return this.#run("deleting a job definition", async () => {
      const rows = await this.#q(
        "DELETE FROM job_definitions WHERE job_type = $1 RETURNING job_type",
        [jobType],
      );
      return rows.length > 0;
    });
  }

  // -- job requests ---------------------------------------------------------------------

  createJobRequest(input: NewJobRequest): Promise<JobRequest> {
    return this.#run("creating a job request", async () => {
      const now = new Date();
      const row = await this.#one(
        `INSERT INTO job_requests (job_type, state, params, definition_id, max_concurrency,
           attempt, scheduled_at, created_at, submitted_by, updated_at)
         VALUES ($1, 'PENDING', $2, $3, $4, 0, $5, $6, $7, $6) RETURNING ${JOB}`,
        [
          input.jobType,
          JSON.stringify(input.params),
          await this.#definitionId(JSON.stringify(input.definition)),
          input.definition.maxConcurrency ?? null,
          input.scheduledAt ?? now,
          now,
          input.submittedBy ?? null,
        ],
      );
      return toJobRequest(row!, codec);
    });
  }

  getJobRequest(id: number): Promise<JobRequest | undefined> {
    return this.#run("reading a job request", async () => {
      if (!Number.isSafeInteger(id)) return undefined;
      const row = await this.#one(`SELECT ${JOB} FROM job_requests WHERE id = $1`, [id]);
      return row && toJobRequest(row, codec);
    });
  }

  listJobRequests(filter: JobRequestFilter): Promise<Page<JobRequest>> {
    return this.#run("listing job requests", async () => {
      const query = parseFilter(filter);
      const where: string[] = [];
      const values: unknown[] = [];
      if (query.states) {
        values.push(query.states);
        where.push(`state = ANY($${values.length}::text[])`);
      }
      if (query.jobType !== undefined) {
        values.push(query.jobType);
        where.push(`job_type = $${values.length}`);
      }
      if (query.before !== undefined) {
        values.push(query.before);
        where.push(`id < $${values.length}`);
      }
      values.push(query.limit + 1);
      const sql =
        `SELECT ${JOB} FROM job_requests ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ` +
        `ORDER BY id DESC LIMIT $${values.length}`;
      const rows = await this.#q(sql, values);
      const items = rows.slice(0, query.limit).map((row) => toJobRequest(row, codec));
      const last = items[items.length - 1];
      return rows.length > query.limit && last ? { items, nextCursor: last.id } : { items };
    });
  }

  listUnfinishedJobRequests(): Promise<JobRequest[]> {
    return this.#run("listing unfinished job requests", async () =>
      (
        await this.#q(
          `SELECT ${JOB} FROM job_requests WHERE state IN (${sqlList(UNFINISHED)}) ORDER BY id`,
        )
      ).map((row) => toJobRequest(row, codec)),
    );
  }

  countJobRequests(jobType: string, states: State[]): Promise<number> {
    return this.#run("counting job requests", async () => {
      if (states.length === 0) return 0;
      const { states: checked = [] } = parseFilter({ state: states });
      const row = await this.#one(
        "SELECT count(*)::int AS n FROM job_requests WHERE job_type = $1 AND state = ANY($2::text[])",
        [jobType, checked],
      );
      return row!.n as number;
    });
  }

  claimDueJobRequests(
    owner: string,
    now: Date,
    leaseMs: number,
    limit: number,
  ): Promise<JobRequest[]> {
    return this.#run("claiming due job requests", async () => {
      if (limit <= 0) return [];
      return this.#tx(async (client) => {
        // As the SQLite store does (#chooseDue there): the oldest requests without a
        // limit, and of each type with one as many of its oldest as it has free slots,
        // each from its own partial index (migration 0011), merged oldest first.
        const head = new Date(now.getTime() + DEFERRAL_HEAD_START_MS);
        const picked = await this.#q(DUE_FREE, [head, now, owner, limit], client);
        for (const { job_type: type } of await this.#q(LIMITED_TYPES, [], client)) {
          const due = await this.#q(DUE_LIMITED, [type, head, now, owner, limit], client);
          if (due.length === 0) continue;
          const max = due[0]!.max_concurrency as number;
          const free = await this.#freeSlots(client, type as string, max);
          picked.push(...due.slice(0, Math.max(0, free)));
        }
        picked.sort(
          (a, b) =>
            (a.scheduled_at as Date).getTime() - (b.scheduled_at as Date).getTime() ||
            Number(a.id) - Number(b.id),
        );
        const chosen = picked.slice(0, limit).map((row) => row.id as string);
        if (chosen.length === 0) return [];
        const claimed = await this.#q(
          `UPDATE job_requests SET state = 'READY', owner = $1, lease_expires_at = $2, updated_at = $3
           WHERE id = ANY($4::bigint[]) AND state = 'PENDING' RETURNING ${JOB}`,
          [owner, leaseUntil(now, leaseMs), now, chosen],
          client,
        );
        return claimed
          .map((row) => toJobRequest(row, codec))
          .sort((a, b) => a.scheduledAt.getTime() - b.scheduledAt.getTime() || a.id - b.id);
      });
    });
  }

  /**
   * Free max_concurrency slots of a type, under a transaction-scoped advisory lock so
   * two claimers cannot both count the same free slot. A claimer that finds the type
   * locked skips it this round (the lock holder is claiming it right now).
   */
  async #freeSlots(client: PoolClient, jobType: string, max: number): Promise<number> {
    const lock = await this.#one(
      "SELECT pg_try_advisory_xact_lock(hashtext('colony.claim'), hashtext(current_schema() || ':' || $1)) AS ok",
      [jobType],
      client,
    );
    if (lock?.ok !== true) return 0;
    const active = await this.#one(
      // Requests submitted with a limit (the partial index job_requests_active).
      `SELECT count(*)::int AS n FROM job_requests
       WHERE job_type = $1 AND max_concurrency IS NOT NULL AND state IN (${sqlList(ACTIVE_STATES)})`,
      [jobType],
      client,
    );
    return max - (active!.n as number);
  }

  takeOverJobRequest(
    id: number,
    owner: string,
    now: Date,
    leaseMs: number,
    expectedOwner?: string,
  ): Promise<JobRequest | undefined> {
    return this.#run("taking over a job request", async () => {
      if (!Number.isSafeInteger(id)) throw new NotFoundError("job_request", id);
      const row = await this.#one(
        `UPDATE job_requests SET owner = $2, lease_expires_at = $3, updated_at = $4
         WHERE id = $1 AND state IN (${sqlList(UNFINISHED)})
           AND (owner IS NULL OR owner = $2 OR owner = $5
                OR lease_expires_at IS NULL OR lease_expires_at <= $4)
         RETURNING ${JOB}`,
        [id, owner, leaseUntil(now, leaseMs), now, expectedOwner ?? null],
      );
      if (row) return toJobRequest(row, codec);
      if (!(await this.#one("SELECT 1 FROM job_requests WHERE id = $1", [id]))) {
        throw new NotFoundError("job_request", id);
      }
      return undefined;
    });
  }

  renewLeases(owner: string, now: Date, leaseMs: number): Promise<number> {
    return this.#run("renewing leases", async () => {
      const result = await this.#pool.query({
        text: `UPDATE job_requests SET lease_expires_at = $1, updated_at = $2
               WHERE owner = $3 AND state IN (${sqlList(ACTIVE_STATES)})`,
        values: [leaseUntil(now, leaseMs), now, owner],
      });
      return result.rowCount ?? 0;
    });
  }

  /** One guarded UPDATE of a job request; a miss says why (unknown id or illegal move). */
  async #jobUpdate(
    id: number,
    to: State,
    sql: string,
    values: unknown[],
    db: Queryable = this.#pool,
  ): Promise<JobRequest> {
    if (!Number.isSafeInteger(id)) throw new NotFoundError("job_request", id);
    const row = await this.#one(sql, [id, ...values], db);
    return row ? toJobRequest(row, codec) : this.#jobMiss(id, to, db);
  }

  markJobExecuting(id: number): Promise<JobRequest> {
    return this.#run("marking a job request executing", () =>
      this.#jobUpdate(
        id,
        "EXECUTING",
        `UPDATE job_requests SET state = 'EXECUTING', started_at = COALESCE(started_at, $2), updated_at = $2,
           error_code = NULL, error_message = NULL
         WHERE id = $1 AND state IN (${sqlList(sourcesOf("EXECUTING"))}) RETURNING ${JOB}`,
        [new Date()],
      ),
    );
  }

  finishJobRequest(id: number, finish: JobFinish): Promise<JobRequest> {
    return this.#run("finishing a job request", () => this.#finishJob(id, finish));
  }

  #finishJob(id: number, finish: JobFinish, db?: Queryable): Promise<JobRequest> {
    assertFinal(finish.state);
    return this.#jobUpdate(
      id,
      finish.state,
      `UPDATE job_requests SET state = $2, ended_at = $3, error_code = $4, error_message = $5, updated_at = $3
       WHERE id = $1 AND state IN (${sqlList(sourcesOf(finish.state))}) RETURNING ${JOB}`,
      [finish.state, new Date(), finish.errorCode ?? null, finish.errorMessage ?? null],
      db,
    );
  }

  #requeue(id: number, scheduledAt: Date, sources: readonly State[]): Promise<JobRequest> {
    return this.#jobUpdate(
      id,
      "PENDING",
      `UPDATE job_requests SET state = 'PENDING', attempt = attempt + 1, scheduled_at = $2,
         owner = NULL, lease_expires_at = NULL, cancel_requested = false, started_at = NULL, ended_at = NULL,
         error_code = NULL, error_message = NULL, updated_at = $3
       WHERE id = $1 AND state IN (${sqlList(sources)}) RETURNING ${JOB}`,
      [scheduledAt, new Date()],
    );
  }

  retryJobRequest(id: number, scheduledAt: Date): Promise<JobRequest> {
    return this.#run("retrying a job request", () => this.#requeue(id, scheduledAt, RETRY_SOURCES));
  }

  restartJobRequest(id: number): Promise<JobRequest> {
    return this.#run("restarting a job request", () =>
      this.#requeue(id, new Date(), RESTART_SOURCES),
    );
  }

  // The return type comes from Store (Promise<JobRequest | undefined>).
  deferJobRequest(id: number, owner: string, at: Date, why: WaitReason) {
    return this.#run("deferring a job request", async () => {
      if (!Number.isSafeInteger(id)) throw new NotFoundError("job_request", id);
      const row = await this.#one(
        `UPDATE job_requests SET state = 'PENDING', scheduled_at = $3,
           lease_expires_at = NULL, error_code = $4, error_message = $5, updated_at = $6
         WHERE id = $1 AND state IN ('READY', 'EXECUTING') AND owner = $2 AND NOT cancel_requested
         RETURNING ${JOB}`,
        [id, owner, at, why.errorCode, why.errorMessage, new Date()],
      );
      return row ? toJobRequest(row, codec) : undefined;
    });
  }

  wakeDeferredJobRequests(errorCode: string, now: Date): Promise<number> {
    return this.#run("waking deferred job requests", async () => {
      const result = await this.#pool.query(
        `UPDATE job_requests SET scheduled_at = $2, owner = NULL, updated_at = $2
         WHERE state = 'PENDING' AND error_code = $1 AND scheduled_at > $2`,
        [errorCode, now],
      );
      return result.rowCount ?? 0;
    });
  }

  cancelPendingJobRequest(id: number): Promise<JobRequest | undefined> {
    return this.#run("cancelling a job request", async () => {
      if (!Number.isSafeInteger(id)) throw new NotFoundError("job_request", id);
      const row = await this.#one(
        `UPDATE job_requests SET state = 'CANCELLED', ended_at = $2, updated_at = $2
         WHERE id = $1 AND state IN (${sqlList(CANCEL_PENDING_SOURCES)}) AND started_at IS NULL
         RETURNING ${JOB}`,
        [id, new Date()],
      );
      if (row) return toJobRequest(row, codec);
      const current = await this.#one("SELECT state FROM job_requests WHERE id = $1", [id]);
      if (!current) throw new NotFoundError("job_request", id);
      const state = current.state as State;
      if (isFinal(state)) throw new IllegalTransitionError("job request", id, state, "CANCELLED");
      return undefined; // an engine runs it: the caller asks for cancellation instead
    });
  }

  requestCancel(id: number): Promise<JobRequest> {
    return this.#run("requesting cancellation of a job request", () =>
      this.#jobUpdate(
        id,
        "CANCELLED",
        `UPDATE job_requests SET cancel_requested = true, updated_at = $2,
           scheduled_at = CASE WHEN ${WAKE_STARTED} THEN $2 ELSE scheduled_at END,
           owner = CASE WHEN ${WAKE_STARTED} THEN NULL ELSE owner END
         WHERE id = $1 AND state IN (${sqlList(UNFINISHED)}) RETURNING ${JOB}`,
        [new Date()],
      ),
    );
  }

  isCancelRequested(id: number): Promise<boolean> {
    return this.#run("reading a job request", async () => {
      if (!Number.isSafeInteger(id)) throw new NotFoundError("job_request", id);
      const row = await this.#one("SELECT cancel_requested FROM job_requests WHERE id = $1", [id]);
      if (!row) throw new NotFoundError("job_request", id);
      return row.cancel_requested === true;
    });
  }

  // -- task executions ------------------------------------------------------------------

  createTaskExecution(
    input: NewTaskExecution,
  ): Promise<{ execution: TaskExecution; created: boolean }> {
    return this.#run("creating a task execution", async () => {
      if (input.id !== undefined && !isUnitId(input.id)) {
        throw new ValidationError(`task execution id '${input.id}' is not 8 letters or digits`);
      }
      if (!Number.isSafeInteger(input.jobRequestId)) {
        throw new NotFoundError("job_request", input.jobRequestId);
      }
      const key = [input.jobRequestId, input.jobAttempt, input.taskType, input.attempt];
      for (let tries = 0; ; tries++) {
        const id = input.id ?? newUnitId();
        let row: Row | undefined;
        try {
          row = await this.#one(
            `INSERT INTO task_executions (job_request_id, job_attempt, task_type, attempt, id,
               method, state, context, created_at, server)
             VALUES ($1, $2, $3, $4, $5, $6, 'READY', '{}', $7, $8)
             ON CONFLICT (job_request_id, job_attempt, task_type, attempt) DO NOTHING
             RETURNING *`,
            [...key, id, input.method, new Date(), input.server ?? null],
          );
        } catch (error) {
          const { code, constraint } = error as { code?: unknown; constraint?: unknown };
          if (code === "23503") throw new NotFoundError("job_request", input.jobRequestId);
          if (code !== "23505" || constraint !== "task_executions_pkey") throw error;
          if (input.id !== undefined) {
            throw new ConflictError(
              `task execution id ${input.id} is already used by another task`,
            );
          }
          if (tries >= 5) throw error;
          continue; // a fresh random id clashed with an existing one: draw again
        }
        if (row) return { execution: toTaskExecution(row, codec), created: true };
        const existing = await this.#one(
          `SELECT * FROM task_executions
           WHERE job_request_id = $1 AND job_attempt = $2 AND task_type = $3 AND attempt = $4`,
          key,
        );
        return { execution: toTaskExecution(existing!, codec), created: false };
      }
    });
  }

  getTaskExecution(id: string): Promise<TaskExecution | undefined> {
    return this.#run("reading a task execution", async () => {
      const row = await this.#one("SELECT * FROM task_executions WHERE id = $1", [id]);
      return row && toTaskExecution(row, codec);
    });
  }

  listTaskExecutions(jobRequestId: number): Promise<TaskExecution[]> {
    return this.#run("listing task executions", async () => {
      if (!Number.isSafeInteger(jobRequestId)) return [];
      const rows = await this.#q(
        "SELECT * FROM task_executions WHERE job_request_id = $1 ORDER BY seq",
        [jobRequestId],
      );
      return rows.map((row) => toTaskExecution(row, codec));
    });
  }

  // -- units: executions across requests, and pausing definitions (REST API) ---------

  listRecentTaskExecutions(query: {
    before?: number;
    limit?: number;
  }): Promise<Page<TaskExecution>> {
    return this.#run("listing task executions", async () => {
      const { before, limit } = parseFilter(query);
      const rows =
        before === undefined
          ? await this.#q("SELECT * FROM task_executions ORDER BY seq DESC LIMIT $1", [limit + 1])
          : await this.#q(
              "SELECT * FROM task_executions WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
              [before, limit + 1],
            );
      const items = rows.slice(0, limit).map((row) => toTaskExecution(row, codec));
      const last = rows[limit - 1];
      return rows.length > limit && last ? { items, nextCursor: Number(last.seq) } : { items };
    });
  }

  setDefinitionPaused(jobType: string, paused: boolean): Promise<StoredDefinition | undefined> {
    return this.#run("pausing or resuming a job definition", async () => {
      const row = await this.#one(
        "UPDATE job_definitions SET paused = $1, updated_at = $2 WHERE job_type = $3 RETURNING *",
        [paused, new Date(), jobType],
      );
      return row && toStoredDefinition(row, codec);
    });
  }

  /** One guarded UPDATE of a task execution; a miss says why. */
  async #taskUpdate(
    id: string,
    to: State,
    sql: string,
    values: unknown[],
    db: Queryable = this.#pool,
  ): Promise<TaskExecution> {
    const row = await this.#one(sql, [id, ...values], db);
    return row ? toTaskExecution(row, codec) : this.#taskMiss(id, to, db);
  }

  markTaskStarted(
    id: string,
    handle: Record<string, unknown>,
    antId?: string,
  ): Promise<TaskExecution> {
    return this.#run("marking a task execution started", () =>
      this.#taskUpdate(
        id,
        "STARTED",
        `UPDATE task_executions SET state = 'STARTED', handle = $2, ant_id = $3,
           started_at = COALESCE(started_at, $4)
         WHERE id = $1 AND state IN (${sqlList(sourcesOf("STARTED"))}) RETURNING *`,
        [JSON.stringify(handle), antId ?? null, new Date()],
      ),
    );
  }

  markTaskExecuting(
    id: string,
    started?: { handle: Record<string, unknown>; antId?: string },
  ): Promise<TaskExecution> {
    return this.#run("marking a task execution executing", () =>
      this.#taskUpdate(
        id,
        "EXECUTING",
        `UPDATE task_executions SET state = 'EXECUTING', started_at = COALESCE(started_at, $2),
           handle = COALESCE($3, handle), ant_id = COALESCE($4, ant_id)
         WHERE id = $1 AND state IN (${sqlList(sourcesOf("EXECUTING"))}) RETURNING *`,
        [new Date(), started ? JSON.stringify(started.handle) : null, started?.antId ?? null],
      ),
    );
  }

  finishTask(id: string, finish: TaskFinish): Promise<TaskExecution> {
    return this.#run("finishing a task execution", () => this.#finishTask(id, finish));
  }

  finishTaskAndJob(
    taskId: string,
    task: TaskFinish,
    jobId: number,
    job: JobFinish,
  ): Promise<{ execution: TaskExecution; job: JobRequest }> {
    return this.#run("finishing a task execution and its job request", () =>
      this.#tx(async (client) => ({
        execution: await this.#finishTask(taskId, task, client),
        job: await this.#finishJob(jobId, job, client),
      })),
    );
  }

  #finishTask(id: string, finish: TaskFinish, db?: Queryable): Promise<TaskExecution> {
    assertFinal(finish.state);
    return this.#taskUpdate(
      id,
      finish.state,
      `UPDATE task_executions SET state = $2, exit_code = $3, error_code = $4, error_message = $5,
         ended_at = $6, context = context || COALESCE($7::jsonb, '{}'::jsonb)
       WHERE id = $1 AND state IN (${sqlList(sourcesOf(finish.state))}) RETURNING *`,
      [
        finish.state,
        finish.exitCode ?? null,
        finish.errorCode ?? null,
        finish.errorMessage ?? null,
        new Date(),
        finish.context === undefined ? null : JSON.stringify(finish.context),
      ],
      db,
    );
  }

  // -- process jobs (SPEC section 8) ----------------------------------------------------

  createProcessJob(input: NewProcessJob): Promise<ProcessJob> {
    return this.#run("creating a process job", async () => {
      const row = await this.#one(
        `INSERT INTO process_jobs (command, status, timeout_ms, unit_id, node_id, created_by, created_at)
         VALUES ($1, 'created', $2, $3, $4, $5, $6) RETURNING *`,
        [
          input.command,
          input.timeoutMs,
          input.unitId,
          input.nodeId,
          input.createdBy ?? null,
          new Date(),
        ],
      );
      return toProcessJob(row!, codec);
    });
  }

  getProcessJob(id: number): Promise<ProcessJob | undefined> {
    return this.#run("reading a process job", async () => {
      if (!Number.isSafeInteger(id)) return undefined;
      const row = await this.#one("SELECT * FROM process_jobs WHERE id = $1", [id]);
      return row && toProcessJob(row, codec);
    });
  }

  listProcessJobs(filter: { nodeId: string; status: ProcessJobStatus }): Promise<ProcessJob[]> {
    return this.#run("listing process jobs", async () =>
      (
        await this.#q("SELECT * FROM process_jobs WHERE node_id = $1 AND status = $2 ORDER BY id", [
          filter.nodeId,
          filter.status,
        ])
      ).map((row) => toProcessJob(row, codec)),
    );
  }

  /** One guarded UPDATE of a process job; a miss says why (unknown id or illegal move). */
  async #processJobUpdate(
    id: number,
    to: "started" | "stopped",
    sql: string,
    values: unknown[],
  ): Promise<ProcessJob> {
    const shown = formatProcessJobId(id);
    if (!Number.isSafeInteger(id)) throw new NotFoundError("process_job", shown);
    const row = await this.#one(sql, [id, PROCESS_JOB_SOURCES[to], ...values]);
    if (row) return toProcessJob(row, codec);
    const current = await this.#one("SELECT status FROM process_jobs WHERE id = $1", [id]);
    if (!current) throw new NotFoundError("process_job", shown);
    throw new IllegalTransitionError("process job", shown, current.status as string, to);
  }

  startProcessJob(id: number, nodeId: string): Promise<ProcessJob> {
    return this.#run("starting a process job", () =>
      this.#processJobUpdate(
        id,
        "started",
        `UPDATE process_jobs SET status = 'started', node_id = $3, started_at = $4
         WHERE id = $1 AND status = $2 RETURNING *`,
        [nodeId, new Date()],
      ),
    );
  }

  setProcessJobHandle(id: number, handle: Record<string, unknown>): Promise<void> {
    return this.#run("recording a process job's handle", async () => {
      await this.#q("UPDATE process_jobs SET handle = $2 WHERE id = $1 AND status = 'started'", [
        id,
        JSON.stringify(handle),
      ]);
    });
  }

  stopProcessJob(id: number, stop: ProcessJobStop): Promise<ProcessJob> {
    return this.#run("stopping a process job", () => {
      if (stop.reasonForExit === "") {
        throw new ValidationError("a stopped job needs a reasonForExit");
      }
      return this.#processJobUpdate(
        id,
        "stopped",
        `UPDATE process_jobs SET status = 'stopped', reason_for_exit = $3, exit_code = $4, ended_at = $5
         WHERE id = $1 AND status = $2 RETURNING *`,
        [stop.reasonForExit, stop.exitCode ?? null, new Date()],
      );
    });
  }

  mergeTaskContext(id: string, context: Record<string, unknown>): Promise<void> {
    return this.#run("merging a task execution's context", async () => {
      const row = await this.#one(
        `UPDATE task_executions SET context = context || $2::jsonb
         WHERE id = $1 AND state IN (${sqlList(UNFINISHED)}) RETURNING 1 AS ok`,
        [id, JSON.stringify(context)],
      );
      if (row) return;
      const current = await this.#one("SELECT state FROM task_executions WHERE id = $1", [id]);
      if (!current) throw new NotFoundError("task_execution", id);
      throw new ConflictError(
        `task execution ${id} is ${String(current.state)}; its context can no longer change`,
      );
    });
  }

  // -- API tokens -------------------------------------------------------------------------

  createToken(input: NewToken): Promise<StoredToken> {
    return this.#run("creating a token", async () => {
      checkNewToken(input);
      try {
        const row = await this.#one(
          `INSERT INTO tokens (id, name, role, hash, created_at, created_by)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
          [newTokenId(), input.name, input.role, input.hash, new Date(), input.createdBy ?? null],
        );
        return toStoredToken(row!, codec);
      } catch (error) {
        const { code, constraint } = error as { code?: unknown; constraint?: unknown };
        if (code === "23505" && constraint === "tokens_hash_key") {
          // Only a caller reusing a token gets here (random ones never clash).
          throw new ConflictError("a token with this hash exists already; make a new token");
        }
        throw error;
      }
    });
  }

  findTokenByHash(hash: string): Promise<StoredToken | undefined> {
    return this.#run("looking up a token", async () => {
      if (!isTokenHash(hash)) return undefined;
      const row = await this.#one("SELECT * FROM tokens WHERE hash = $1 AND revoked_at IS NULL", [
        hash,
      ]);
      return row && toStoredToken(row, codec);
    });
  }

  listTokens(): Promise<StoredToken[]> {
    return this.#run("listing tokens", async () =>
      (await this.#q("SELECT * FROM tokens ORDER BY seq")).map((row) => toStoredToken(row, codec)),
    );
  }

  revokeToken(id: string): Promise<StoredToken> {
    return this.#run("revoking a token", async () => {
      const row = await this.#one(
        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *",
        [id, new Date()],
      );
      if (!row) throw new NotFoundError("token", id, "list them with 'colony token list'");
      return toStoredToken(row, codec);
    });
  }

  touchToken(id: string, at: Date): Promise<void> {
    return this.#run("recording a token's use", async () => {
      await this.#q(
        `UPDATE tokens SET last_used_at = $2
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`,
        [id, at],
      );
    });
  }

  claimSetting(key: string, value: string): Promise<string> {
    return this.#run("recording a store setting", async () => {
      await this.#q(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        [key, value],
      );
      const rows = await this.#q("SELECT value FROM settings WHERE key = $1", [key]);
      return String(rows[0]!.value);
    });
  }

  registerServer(server: { id: string; nodeId: string; url: string }): Promise<void> {
    return this.#run("recording this server", async () => {
      await this.#q(
        `INSERT INTO servers (id, node_id, url, seen_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET node_id = excluded.node_id, url = excluded.url,
           seen_at = excluded.seen_at`,
        [server.id, server.nodeId, server.url, new Date()],
      );
    });
  }

  getServer(id: string): Promise<ServerRecord | undefined> {
    return this.#run("looking up a server", async () => {
      const rows = await this.#q("SELECT * FROM servers WHERE id = $1", [id]);
      return rows[0] && toServerRecord(rows[0], codec);
    });
  }

  listServers(): Promise<ServerRecord[]> {
    return this.#run("listing servers", async () =>
      (await this.#q("SELECT * FROM servers ORDER BY seen_at DESC")).map((row) =>
        toServerRecord(row, codec),
      ),
    );
  }
}
