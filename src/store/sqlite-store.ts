/**
 * The embedded store: one SQLite file (node:sqlite) in WAL mode. node:sqlite is
 * synchronous, so every method runs to completion without yielding: operations of one
 * process never interleave, and BEGIN IMMEDIATE serialises writers across processes
 * sharing the file (they wait up to busy_timeout for each other).
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { isDeepStrictEqual } from "node:util";
import {
  ConflictError,
  IllegalTransitionError,
  NotFoundError,
  ValidationError,
} from "../core/errors.ts";
import { isUnitId, newUnitId } from "../core/ids.ts";
import { deepFreeze } from "../core/json.ts";
import type { JobDefinition } from "../core/job-definition.ts";
import type { JobRequest, JobRequestFilter, TaskExecution } from "../core/job-request.ts";
import { isFinal, sourcesOf, type State } from "../core/states.ts";
import { BUSY_TIMEOUT_MS, sqliteFailure } from "./sqlite-errors.ts";
import { RestartWindows, startCheckpointer, type Checkpointer } from "./sqlite-checkpointer.ts";
import { migrateSqlite } from "./migrations.ts";
import { createSqliteAsyncActions } from "./sqlite-async-actions.ts";
import { KnownRows, type RowWrite } from "./sqlite-known-rows.ts";
import { DefinitionTexts, definitionHash } from "./definition-texts.ts";
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
  FINAL,
  RESTART_SOURCES,
  RETRY_SOURCES,
  UNFINISHED,
  assertFinal,
  leaseUntil,
  mergeContext,
  parseFilter,
  sqliteCodec as codec,
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
  type JobBody,
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

export interface SqliteStoreOptions {
  /** The database file (created if missing), or ":memory:". */
  path: string;
}

/** Opens (creating if needed) the SQLite file; call migrate() before use. */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options.path);
}

/**
 * A hot read whose rows come back as arrays: node:sqlite makes a row object by creating
 * a string for every column name of every row, which cost about as much as the read
 * itself (measured: a 20-column row by id 8.2 µs as an object, 4.5-5.4 µs as an array).
 * `build` turns the array into the Row with an object literal (a loop assigning
 * fields[i] cost ~2.2 µs per row: every store with a computed key takes V8's generic
 * path); `fields` are the literal's keys, the columns the SQL selects in that order.
 */
interface HotRead {
  sql: string;
  fields: readonly string[];
  build: (values: readonly unknown[]) => Row;
}

/** Every job_requests column but params and definition_id (see #job), in SELECT order. */
const jobRow = (v: readonly unknown[]): Row => ({
  id: v[0],
  job_type: v[1],
  state: v[2],
  attempt: v[3],
  scheduled_at: v[4],
  created_at: v[5],
  started_at: v[6],
  ended_at: v[7],
  error_code: v[8],
  error_message: v[9],
  owner: v[10],
  lease_expires_at: v[11],
  submitted_by: v[12],
});
/** Every task_executions column (toTaskExecution reads them by name), in SELECT order. */
const taskRow = (v: readonly unknown[]): Row => ({
  id: v[0],
  seq: v[1],
  job_request_id: v[2],
  task_type: v[3],
  method: v[4],
  job_attempt: v[5],
  attempt: v[6],
  state: v[7],
  exit_code: v[8],
  error_code: v[9],
  error_message: v[10],
  context: v[11],
  handle: v[12],
  ant_id: v[13],
  created_at: v[14],
  started_at: v[15],
  ended_at: v[16],
  hook_status: v[17],
  hook_status_details: v[18],
  hook_error_message: v[19],
  hook_updated_at: v[20],
  server: v[21],
});
/** The column lists follow the literals: their keys, in order. */
const JOB_FIELDS = Object.keys(jobRow([]));
const TASK_FIELDS = Object.keys(taskRow([]));
const JOB_ROW = JOB_FIELDS.join(", ");
/** A job request (without its body) and a task execution by id: the reads after an update. */
const READ_JOB: HotRead = {
  sql: `SELECT ${JOB_ROW} FROM job_requests WHERE id = ?`,
  fields: JOB_FIELDS,
  build: jobRow,
};
/**
 * Due PENDING requests (#chooseDue): scheduled by now, or within the deferral head start
 * when another owner deferred them; the partial indexes of migration 0011.
 *
 * `LIMIT ?+0`, not `LIMIT ?`: SQLite plans with the value bound to a bare LIMIT
 * parameter, so binding it again expires the statement and every run prepares it anew
 * (measured with the SQLite of Node 24: DUE_FREE 10.5 µs against 6.5 µs as written
 * here, on every claim). INDEXED BY fixes the plan here, so the value has nothing to
 * steer. test/sqlite-statements.test.ts keeps the hot statements free of it.
 */
const DUE = `state = 'PENDING' AND scheduled_at <= ? AND (scheduled_at <= ? OR (owner IS NOT NULL AND owner <> ?))`;
export const DUE_FREE = `SELECT id, scheduled_at FROM job_requests INDEXED BY job_requests_pending_free
  WHERE max_concurrency IS NULL AND ${DUE} ORDER BY scheduled_at, id LIMIT ?+0`;
export const DUE_LIMITED = `SELECT id, scheduled_at, max_concurrency FROM job_requests
  INDEXED BY job_requests_pending_limited
  WHERE max_concurrency IS NOT NULL AND job_type = ? AND ${DUE} ORDER BY scheduled_at, id LIMIT ?+0`;
/** The types with PENDING requests that have a limit: one index probe per type. */
export const LIMITED_TYPES = `WITH RECURSIVE types(job_type) AS (
    SELECT (SELECT job_type FROM job_requests INDEXED BY job_requests_pending_limited
            WHERE state = 'PENDING' AND max_concurrency IS NOT NULL ORDER BY job_type LIMIT 1)
    UNION ALL
    SELECT (SELECT r.job_type FROM job_requests AS r INDEXED BY job_requests_pending_limited
            WHERE r.state = 'PENDING' AND r.max_concurrency IS NOT NULL AND r.job_type > types.job_type
            ORDER BY r.job_type LIMIT 1)
    FROM types WHERE types.job_type IS NOT NULL)
  SELECT job_type FROM types WHERE job_type IS NOT NULL`;

/** The rows of just-claimed requests, by a JSON array of ids. */
const READ_JOBS: HotRead = {
  sql: `SELECT ${JOB_ROW} FROM job_requests WHERE id IN (SELECT value FROM json_each(?))`,
  fields: JOB_FIELDS,
  build: jobRow,
};
const READ_TASK: HotRead = {
  sql: `SELECT ${TASK_FIELDS.join(", ")} FROM task_executions WHERE id = ?`,
  fields: TASK_FIELDS,
  build: taskRow,
};

/**
 * After migrating: a hot read must name columns the table has (and, for task executions,
 * every one of them, as toTaskExecution reads the whole row), and its `build` must put
 * each value under its column's name, so that a migration that adds a column without
 * updating the lists fails at start, in the tests, not quietly.
 */
function checkHotRead(
  db: DatabaseSync,
  table: string,
  read: HotRead,
  how: "exactly" | "among",
): void {
  const columns = db
    .prepare("SELECT name FROM pragma_table_info(?)")
    .all(table)
    .map((row) => row.name as string);
  const missing = read.fields.filter((f) => !columns.includes(f));
  const unread = how === "exactly" ? columns.filter((c) => !read.fields.includes(c)) : [];
  // Built from the names themselves, each value must land under its own name.
  const built = read.build(read.fields);
  const misplaced = read.fields.filter((f) => built[f] !== f);
  if (missing.length > 0 || unread.length > 0 || misplaced.length > 0) {
    const list = (names: string[]) => names.join(", ") || "none";
    throw new Error(
      `the SQLite store's reads of ${table} are out of date with its schema ` +
        `(not in the table: ${list(missing)}; not read: ${list(unread)}; ` +
        `misplaced by the row builder: ${list(misplaced)}): ` +
        `update taskRow / jobRow in sqlite-store.ts (TASK_FIELDS / JOB_FIELDS follow them)`,
    );
  }
}

const BODY_CACHE_SIZE = 16_384;
/**
 * WAL length (frames) past which the store opens a restart window after a commit, and
 * how long the window waits for the checkpoint worker at most (sqlite-checkpointer.ts).
 * journal_size_limit keeps a WAL file of up to WAL_FILE_LIMIT (about twice what
 * RESTART_FRAMES of 4 KiB pages need) between restarts: overwriting it costs less than
 * growing it.
 */
const RESTART_FRAMES = 2000;
const RESTART_WINDOW_MS = 30;
/** After a window the worker answered it could not complete, none for this long, doubling up to 1 s (RestartWindows). */
const RESTART_BACKOFF_MS = 50;
const RESTART_BACKOFF_MAX_MS = 1000;
const WAL_FILE_LIMIT = 16 * 2 ** 20;

const JOB_COLUMNS =
  "job_type, state, params, definition_id, max_concurrency, attempt, scheduled_at, created_at, submitted_by, updated_at";

/**
 * The SQL of the writes every job makes, built once: a text built per call is a new
 * string, which the statement cache's lookup must flatten and hash again each time.
 */
const INSERT_JOB = `INSERT INTO job_requests (${JOB_COLUMNS}) VALUES (?, 'PENDING', ?, ?, ?, 0, ?, ?, ?, ?)`;
const MARK_JOB_EXECUTING: RowWrite = {
  sql: `UPDATE job_requests SET state = 'EXECUTING', started_at = COALESCE(started_at, ?), updated_at = ?,
    error_code = NULL, error_message = NULL
  WHERE id = ? AND state IN (${sqlList(sourcesOf("EXECUTING"))})`,
  apply: (before, [at]) => ({
    ...before,
    state: "EXECUTING",
    started_at: before.started_at ?? at,
    error_code: null,
    error_message: null,
  }),
  final: false,
};
const MARK_TASK_EXECUTING: RowWrite = {
  sql: `UPDATE task_executions SET state = 'EXECUTING', started_at = COALESCE(started_at, ?),
    handle = COALESCE(?, handle), ant_id = COALESCE(?, ant_id)
  WHERE id = ? AND state IN (${sqlList(sourcesOf("EXECUTING"))})`,
  apply: (before, [at, handle, antId]) => ({
    ...before,
    state: "EXECUTING",
    started_at: before.started_at ?? at,
    handle: handle ?? before.handle,
    ant_id: antId ?? before.ant_id,
  }),
  final: false,
};
/**
 * A claim of one request (see claimDueJobRequests); its `apply` serves the claim of a
 * batch too, whose UPDATE sets the same columns.
 */
const CLAIM_JOB: RowWrite = {
  sql: `UPDATE job_requests SET state = 'READY', owner = ?, lease_expires_at = ?, updated_at = ?
  WHERE id = ? AND state = 'PENDING'`,
  apply: (before, [owner, lease]) => ({
    ...before,
    state: "READY",
    owner,
    lease_expires_at: lease,
  }),
  final: false,
};
/** By final state. */
const FINISH_JOB = new Map(
  FINAL.map((state): [State, RowWrite] => [
    state,
    {
      sql: `UPDATE job_requests SET state = ?, ended_at = ?, error_code = ?, error_message = ?, updated_at = ?
  WHERE id = ? AND state IN (${sqlList(sourcesOf(state))})`,
      apply: (before, [to, at, errorCode, errorMessage]) => ({
        ...before,
        state: to,
        ended_at: at,
        error_code: errorCode,
        error_message: errorMessage,
      }),
      final: true,
    },
  ]),
);
const FINISH_TASK = new Map(
  FINAL.map((state): [State, RowWrite] => [
    state,
    {
      sql: `UPDATE task_executions SET state = ?, exit_code = ?, error_code = ?, error_message = ?,
    ended_at = ?, context = COALESCE(?, context)
  WHERE id = ? AND state IN (${sqlList(sourcesOf(state))})`,
      apply: (before, [to, exitCode, errorCode, errorMessage, at, context]) => ({
        ...before,
        state: to,
        exit_code: exitCode,
        error_code: errorCode,
        error_message: errorMessage,
        ended_at: at,
        context: context ?? before.context,
      }),
      final: true,
    },
  ]),
);
/** What a job request's body is taken as where only the rest of its row is compared. */
const NO_BODY: JobBody = { params: {}, definition: {} as JobDefinition };

/** A table whose rows the store keeps (sqlite-known-rows.ts): its rows, read by id, as the model sees them. */
interface KeptTable<K> {
  rows: KnownRows<K>;
  read: HotRead;
  model: (row: Row) => unknown;
}

class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly #path: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #arrayStatements = new Map<HotRead, StatementSync>();
  /** Hook reports, artifacts, schedules: sqlite-async-actions.ts, on this connection. */
  readonly asyncActions = createSqliteAsyncActions({
    get: (sql, ...params) => this.#get(sql, ...params),
    all: (sql, ...params) => this.#all(sql, ...params),
    run: (what, fn) => this.#run(what, fn),
    read: (what, fn) => this.#read(what, fn),
    tx: (fn) => this.#tx(fn),
    definitionId: (text) => this.#definitionId(text),
    job: (row) => this.#fullJob(row),
  });

  constructor(path: string) {
    this.#path = path;
    try {
      this.#db = new DatabaseSync(path, {
        timeout: BUSY_TIMEOUT_MS,
        enableForeignKeyConstraints: true,
      });
    } catch (error) {
      throw this.#wrap(error, "opening");
    }
    try {
      // Each pragma reads the file header, so a corrupt file is reported here, at start.
      this.#db.exec(
        `PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; ` +
          `PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; ` +
          // Statement journals in memory: every write runs inside a group-commit
          // transaction, so each statement that may abort (CHECK, foreign keys) and each
          // savepoint copies the pages it touches to a statement journal, which spilled
          // to a temporary file (a pwrite per page) past 64 KiB: ~25 % of a FUNCTION
          // job's CPU. They never need to survive a crash (the WAL holds the transaction).
          `PRAGMA temp_store = MEMORY;`,
      );
    } catch (error) {
      this.#db.close();
      throw this.#wrap(error, "opening");
    }
    if (path !== ":memory:" && path !== "") {
      // Checkpoints (and their fsyncs) in a worker thread, not in the commit that
      // happens to cross the WAL's size limit on this event loop: sqlite-checkpointer.ts.
      // The automatic checkpoint stays as a safety net, at 8x the default size, for when
      // restart windows (#openRestartWindow) cannot let the WAL start over (another
      // connection reading an old snapshot, the worker gone). journal_size_limit trims
      // the file past WAL_FILE_LIMIT when it starts over.
      this.#db.exec(
        `PRAGMA wal_autocheckpoint = 8000; PRAGMA journal_size_limit = ${WAL_FILE_LIMIT}`,
      );
      this.#checkpointer = startCheckpointer(path, () => {
        if (this.#db.isOpen) this.#db.exec("PRAGMA wal_autocheckpoint = 1000");
      });
    }
  }

  #checkpointer: Checkpointer | undefined;
  #batch: Array<{ ok: () => void; fail: (error: unknown) => void }> | undefined;
  readonly #windows = new RestartWindows(
    RESTART_FRAMES,
    RESTART_BACKOFF_MS,
    RESTART_BACKOFF_MAX_MS,
  );
  /** Operations waiting for a restart window to close (see #openRestartWindow), in order. */
  #held: Array<() => void> | undefined;

  // -- plumbing -----------------------------------------------------------------------

  #stmt(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.#stmt(sql).get(...params);
  }

  #all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.#stmt(sql).all(...params);
  }

  #arrayStmt(read: HotRead): StatementSync {
    let statement = this.#arrayStatements.get(read);
    if (!statement) {
      statement = this.#db.prepare(read.sql);
      statement.setReturnArrays(true);
      this.#arrayStatements.set(read, statement);
    }
    return statement;
  }

  /** A HotRead of the row with this id. */
  #hot(read: HotRead, id: SQLInputValue): Row | undefined {
    const values = this.#arrayStmt(read).get(id) as unknown as unknown[] | undefined;
    return values && read.build(values);
  }

  /** A HotRead of every row its parameter selects. */
  #hotAll(read: HotRead, param: SQLInputValue): Row[] {
    const rows = this.#arrayStmt(read).all(param) as unknown as unknown[][];
    return rows.map(read.build);
  }

  /**
   * Runs an UPDATE of one row (its last parameter is the row's id) and gives the row after
   * it: derived from the row `table` keeps (sqlite-known-rows.ts), else read back, and
   * kept for the next write. Two statements cost less than one with
   * RETURNING, which SQLite runs to completion into an ephemeral table before the first
   * row comes back; the derived row costs neither.
   */
  #update<K extends SQLInputValue>(
    write: RowWrite,
    table: KeptTable<K>,
    ...params: SQLInputValue[]
  ): Row | undefined {
    const id = params[params.length - 1] as K;
    const changed = this.#stmt(write.sql).run(...params).changes;
    if (Number(changed) !== 1) {
      table.rows.drop(id);
      return undefined;
    }
    const before = table.rows.get(id);
    const row = before ? write.apply(before, params) : this.#hot(table.read, id)!;
    if (before && this.#verifyRows) this.#verifyRow(table, id, row);
    table.rows.keep(id, row, write.final);
    return row;
  }

  /** COLONY_STORE_VERIFY_ROWS: a derived row must be what a read gives, as the model sees it. */
  #verifyRow<K extends SQLInputValue>(table: KeptTable<K>, id: K, derived: Row): void {
    const stored = this.#hot(table.read, id);
    if (!stored || !isDeepStrictEqual(table.model(derived), table.model(stored))) {
      const error = new Error(
        `the SQLite store derived a row of ${id} that differs from the stored one: ` +
          `${JSON.stringify(derived)} against ${JSON.stringify(stored)} ` +
          `(a RowWrite's apply no longer follows its SQL: sqlite-known-rows.ts)`,
      );
      // Uncaught as well: the engine retries failed writes, which would hide it.
      setImmediate(() => {
        throw error;
      });
      throw error;
    }
  }

  /**
   * At the start of each write transaction: rows kept while another connection has
   * written since are forgotten (sqlite-known-rows.ts).
   */
  #checkDataVersion(): void {
    const version = this.#stmt("PRAGMA data_version").get()!.data_version as number;
    if (version !== this.#dataVersion) {
      this.#forgetRows();
      this.#dataVersion = version;
    }
  }

  #forgetRows(): void {
    this.#jobs.rows.clear();
    this.#tasks.rows.clear();
  }

  /**
   * Runs `fn` atomically: inside the open group-commit batch as a savepoint (so a
   * failure undoes only `fn`), else in its own BEGIN IMMEDIATE transaction.
   */
  #tx<T>(fn: () => T): T {
    if (this.#batch) {
      this.#stmt("SAVEPOINT op").run();
      try {
        const result = fn();
        this.#stmt("RELEASE op").run();
        return result;
      } catch (error) {
        if (this.#db.isOpen && this.#db.isTransaction) {
          this.#stmt("ROLLBACK TO op").run();
          this.#stmt("RELEASE op").run();
        }
        this.#forgetInserts();
        throw error;
      }
    }
    this.#stmt("BEGIN IMMEDIATE").run();
    try {
      const result = fn();
      this.#stmt("COMMIT").run();
      return result;
    } catch (error) {
      if (this.#db.isOpen && this.#db.isTransaction) this.#stmt("ROLLBACK").run();
      this.#forgetInserts();
      throw error;
    }
  }

  /**
   * Runs one write operation with group commit: every write issued in the same turn of
   * the event loop shares one transaction, committed on the next `setImmediate`; each
   * operation's promise settles only after that commit succeeded (or rejects with the
   * commit's error), so nothing is reported done before it is durable. A single-statement
   * write that fails is undone by SQLite alone; multi-statement ones use #tx (a
   * savepoint in the batch). This turns ~8 commits per task into a shared handful.
   */
  #run<T>(what: string, fn: () => T, keepsRows = false): Promise<T> {
    if (this.#held) return this.#defer(() => this.#run(what, fn, keepsRows));
    try {
      if (!this.#batch) {
        this.#stmt("BEGIN IMMEDIATE").run();
        this.#batch = [];
        setImmediate(() => this.#commit());
        this.#checkDataVersion();
      }
      if (!keepsRows) this.#forgetRows();
      const result = fn();
      return new Promise<T>((resolve, reject) => {
        this.#batch!.push({ ok: () => resolve(result), fail: reject });
      });
    } catch (error) {
      this.#forgetRows(); // a savepoint or the whole batch may have been rolled back
      const failure = this.#wrap(error, what);
      // Some failures (disk full, I/O) make SQLite roll the whole transaction back:
      // then every write queued in this batch is lost and must be reported so.
      if (this.#batch && !(this.#db.isOpen && this.#db.isTransaction)) {
        const batch = this.#batch;
        this.#batch = undefined;
        this.#forgetInserts();
        for (const op of batch) op.fail(failure);
      }
      return Promise.reject(failure);
    }
  }

  /** #run for the writes that keep the known rows exact (sqlite-known-rows.ts). */
  #runKeeping<T>(what: string, fn: () => T): Promise<T> {
    return this.#run(what, fn, true);
  }

  /** A read: sees this connection's pending writes, so it settles after their commit. */
  #read<T>(what: string, fn: () => T): Promise<T> {
    if (this.#held) return this.#defer(() => this.#read(what, fn));
    try {
      const result = fn();
      if (!this.#batch) return Promise.resolve(result);
      return new Promise<T>((resolve, reject) => {
        this.#batch!.push({ ok: () => resolve(result), fail: reject });
      });
    } catch (error) {
      return Promise.reject(this.#wrap(error, what));
    }
  }

  #commit(): void {
    const batch = this.#batch;
    this.#batch = undefined;
    if (!batch) return;
    try {
      this.#stmt("COMMIT").run();
    } catch (error) {
      if (this.#db.isOpen && this.#db.isTransaction) this.#stmt("ROLLBACK").run();
      this.#forgetInserts();
      this.#forgetRows();
      const failure = this.#wrap(error, "committing");
      for (const op of batch) op.fail(failure);
      return;
    }
    for (const op of batch) op.ok();
    const checkpointer = this.#checkpointer;
    if (checkpointer && this.#windows.due(checkpointer.walFrames, performance.now())) {
      this.#openRestartWindow(checkpointer);
    }
  }

  /**
   * Under writes without a pause the WAL never starts over by itself (see
   * sqlite-checkpointer.ts): right after a commit, operations are held back while the
   * worker copies the last frames, so that the next transaction begins on a fully
   * copied WAL and starts it over. Reads wait too, as they must see the writes queued
   * before them. The event loop runs on meanwhile; the window lasts a few ms at most.
   */
  #openRestartWindow(checkpointer: Checkpointer): void {
    this.#held = [];
    void checkpointer.checkpointNow(RESTART_WINDOW_MS).then((outcome) => {
      this.#windows.ended(outcome, performance.now());
      this.#closeRestartWindow();
    });
  }

  #closeRestartWindow(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held) for (const op of held) op();
  }

  #defer<T>(op: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#held!.push(() => void op().then(resolve, reject));
    });
  }

  #wrap(error: unknown, what: string): unknown {
    return sqliteFailure(error, this.#path, what);
  }

  /** After an UPDATE matched nothing: unknown id, or a state the move cannot start from. */
  #jobMiss(id: number, to: State): never {
    const row = this.#get("SELECT state FROM job_requests WHERE id = ?", id);
    if (!row) throw new NotFoundError("job_request", id);
    throw new IllegalTransitionError("job request", id, row.state as string, to);
  }

  #taskMiss(id: string, to: State): never {
    const row = this.#get("SELECT state FROM task_executions WHERE id = ?", id);
    if (!row) throw new NotFoundError("task_execution", id);
    throw new IllegalTransitionError("task execution", id, row.state as string, to);
  }

  /**
   * Params and definition of recently seen job requests, parsed once and frozen: they
   * never change after the insert, and parsing the definition back on every state
   * change of every job was a measurable part of each job's cost. Hot statements
   * return JOB_ROW (everything else) and get the body from here.
   */
  readonly #bodies = new Map<number, JobBody>();

  /** Unfinished rows as this connection last wrote or read them: sqlite-known-rows.ts. */
  readonly #jobs: KeptTable<number> = {
    rows: new KnownRows(),
    read: READ_JOB,
    model: (row) => toJobRequest(row, codec, NO_BODY),
  };
  readonly #tasks: KeptTable<string> = {
    rows: new KnownRows(),
    read: READ_TASK,
    model: (row) => toTaskExecution(row, codec),
  };
  /** PRAGMA data_version when the rows above were last checked (#checkDataVersion). */
  #dataVersion = -1;
  readonly #verifyRows = process.env.COLONY_STORE_VERIFY_ROWS === "1";

  /** Definitions stored once per distinct text: definition-texts.ts. */
  readonly #definitionTexts = new DefinitionTexts();

  /** The id of this definition text in job_request_definitions, inserted if new. */
  #definitionId(text: string): number {
    let id = this.#definitionTexts.idOf(text);
    if (id === undefined) {
      const hash = definitionHash(text);
      const found = this.#get("SELECT id FROM job_request_definitions WHERE sha256 = ?", hash);
      id = found
        ? (found.id as number)
        : Number(
            this.#stmt(
              "INSERT INTO job_request_definitions (sha256, definition) VALUES (?, ?)",
            ).run(hash, text).lastInsertRowid,
          );
      this.#definitionTexts.learn(text, id);
    }
    return id;
  }

  #definition(id: number): JobDefinition {
    return this.#definitionTexts.definition(
      id,
      () =>
        this.#get("SELECT definition FROM job_request_definitions WHERE id = ?", id)!
          .definition as string,
    );
  }

  /** The body of a row that has params and definition_id (SELECT * and RETURNING *). */
  #bodyOf(row: Row): JobBody {
    return {
      params: deepFreeze(JSON.parse(row.params as string) as Record<string, unknown>),
      definition: this.#definition(row.definition_id as number),
    };
  }

  /** A whole row (SELECT *, RETURNING *) as a JobRequest, its body not kept in #bodies. */
  #fullJob(row: Row): JobRequest {
    return toJobRequest(row, codec, this.#bodies.get(row.id as number) ?? this.#bodyOf(row));
  }

  /** After a rollback: ids of rolled-back inserts can be handed out again. */
  #forgetInserts(): void {
    this.#bodies.clear();
    this.#definitionTexts.clear();
  }

  #job(row: Row, body?: JobBody): JobRequest {
    const id = row.id as number;
    let known = body ?? this.#bodies.get(id);
    if (!known) {
      known = this.#bodyOf(
        this.#get("SELECT params, definition_id FROM job_requests WHERE id = ?", id)!,
      );
    }
    if (!this.#bodies.has(id)) {
      if (this.#bodies.size >= BODY_CACHE_SIZE) {
        this.#bodies.delete(this.#bodies.keys().next().value!);
      }
      this.#bodies.set(id, known);
    }
    return toJobRequest(row, codec, known);
  }

  // -- lifecycle ------------------------------------------------------------------------

  migrate(log?: (message: string) => void): Promise<void> {
    try {
      this.#commit();
      this.#tx(() => migrateSqlite(this.#db, `the store at ${this.#path}`, log));
      checkHotRead(this.#db, "task_executions", READ_TASK, "exactly");
      checkHotRead(this.#db, "job_requests", READ_JOB, "among");
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(this.#wrap(error, "migrating"));
    }
  }

  async close(): Promise<void> {
    const checkpointer = this.#checkpointer;
    this.#checkpointer = undefined; // no restart window from here on
    this.#closeRestartWindow(); // held operations run, and commit just below
    if (this.#db.isOpen) this.#commit();
    await checkpointer?.close();
    if (this.#db.isOpen) {
      this.#commit();
      this.#statements.clear();
      this.#arrayStatements.clear();
      this.#db.close(); // the last connection to close checkpoints and removes the WAL
    }
  }

  // -- job definitions ------------------------------------------------------------------

  putDefinition(definition: JobDefinition, source: string): Promise<StoredDefinition> {
    return this.#run("saving a job definition", () => {
      const now = Date.now();
      const row = this.#get(
        `INSERT INTO job_definitions (job_type, version, definition, source, paused, created_at, updated_at)
         VALUES (?, 1, ?, ?, 0, ?, ?)
         ON CONFLICT (job_type) DO UPDATE SET version = version + 1, definition = excluded.definition,
           source = excluded.source, updated_at = excluded.updated_at
         RETURNING version, paused, created_at, updated_at`,
        definition.jobType,
        JSON.stringify(definition),
        source,
        now,
        now,
      );
      return savedDefinition(row!, codec, definition, source);
    });
  }

  getDefinition(jobType: string): Promise<StoredDefinition | undefined> {
    return this.#read("reading a job definition", () => {
      const row = this.#get("SELECT * FROM job_definitions WHERE job_type = ?", jobType);
      return row && toStoredDefinition(row, codec);
    });
  }

  listDefinitions(): Promise<StoredDefinition[]> {
    return this.#read("listing job definitions", () =>
      this.#all("SELECT * FROM job_definitions ORDER BY job_type").map((row) =>
        toStoredDefinition(row, codec),
      ),
    );
  }

  deleteDefinition(jobType: string): Promise<boolean> {
    return this.#run("deleting a job definition", () => {
      const result = this.#stmt("DELETE FROM job_definitions WHERE job_type = ?").run(jobType);
      return Number(result.changes) > 0;
    });
  }

  // -- job requests ---------------------------------------------------------------------

  createJobRequest(input: NewJobRequest): Promise<JobRequest> {
    return this.#runKeeping("creating a job request", () => {
      const now = Date.now();
      const paramsText = JSON.stringify(input.params);
      const definitionText = JSON.stringify(input.definition);
      const definitionId = this.#definitionId(definitionText);
      const scheduledAt = input.scheduledAt?.getTime() ?? now;
      const submittedBy = input.submittedBy ?? null;
      const { lastInsertRowid } = this.#stmt(INSERT_JOB).run(
        input.jobType,
        paramsText,
        definitionId,
        input.definition.maxConcurrency ?? null,
        scheduledAt,
        now,
        submittedBy,
        now,
      );
      // Every column of the new row is known here: no RETURNING (see #update).
      const id = Number(lastInsertRowid);
      const row: Row = {
        id,
        job_type: input.jobType,
        state: "PENDING",
        attempt: 0,
        scheduled_at: scheduledAt,
        created_at: now,
        started_at: null,
        ended_at: null,
        error_code: null,
        error_message: null,
        owner: null,
        lease_expires_at: null,
        submitted_by: submittedBy,
      };
      this.#jobs.rows.keep(id, row);
      return this.#job(row, {
        params: deepFreeze(JSON.parse(paramsText) as Record<string, unknown>),
        definition: this.#definitionTexts.definition(definitionId, () => definitionText),
      });
    });
  }

  getJobRequest(id: number): Promise<JobRequest | undefined> {
    return this.#read("reading a job request", () => {
      const row = this.#hot(READ_JOB, id);
      return row && this.#job(row);
    });
  }

  listJobRequests(filter: JobRequestFilter): Promise<Page<JobRequest>> {
    return this.#read("listing job requests", () => {
      const query = parseFilter(filter);
      const where: string[] = [];
      const params: SQLInputValue[] = [];
      if (query.states) {
        where.push(`state IN (${query.states.map(() => "?").join(", ")})`);
        params.push(...query.states);
      }
      if (query.jobType !== undefined) {
        where.push("job_type = ?");
        params.push(query.jobType);
      }
      if (query.before !== undefined) {
        where.push("id < ?");
        params.push(query.before);
      }
      const sql =
        `SELECT * FROM job_requests ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ` +
        `ORDER BY id DESC LIMIT ?`;
      const rows = this.#all(sql, ...params, query.limit + 1);
      const items = rows.slice(0, query.limit).map((row) => this.#fullJob(row));
      const last = items[items.length - 1];
      return rows.length > query.limit && last ? { items, nextCursor: last.id } : { items };
    });
  }

  listUnfinishedJobRequests(): Promise<JobRequest[]> {
    return this.#read("listing unfinished job requests", () =>
      this.#all(
        `SELECT * FROM job_requests WHERE state IN (${sqlList(UNFINISHED)}) ORDER BY id`,
      ).map((row) => this.#fullJob(row)),
    );
  }

  countJobRequests(jobType: string, states: State[]): Promise<number> {
    return this.#read("counting job requests", () => {
      if (states.length === 0) return 0;
      const { states: checked = [] } = parseFilter({ state: states });
      const row = this.#get(
        `SELECT count(*) AS n FROM job_requests WHERE job_type = ? AND state IN (${checked.map(() => "?").join(", ")})`,
        jobType,
        ...checked,
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
    return this.#runKeeping("claiming due job requests", () => {
      if (limit <= 0) return [];
      // Reads first (the batch's write lock is held, so nothing changes under them), then
      // one UPDATE for all of them (atomic by itself) and one read back.
      const chosen = this.#chooseDue(owner, now, limit);
      if (chosen.length === 0) return [];
      const lease = leaseUntil(now, leaseMs).getTime();
      if (chosen.length === 1) {
        // The common case (a claim right after a submit): by id, since json_each costs
        // about twice as much for a single id (measured: ~19 against ~10 µs).
        const params = [owner, lease, now.getTime(), chosen[0]!];
        const row = this.#update(CLAIM_JOB, this.#jobs, ...params);
        return [this.#job(row!)];
      }
      const ids = JSON.stringify(chosen);
      const { changes } = this.#stmt(
        `UPDATE job_requests SET state = 'READY', owner = ?, lease_expires_at = ?, updated_at = ?
         WHERE id IN (SELECT value FROM json_each(?)) AND state = 'PENDING'`,
      ).run(owner, lease, now.getTime(), ids);
      // Each chosen row was PENDING (read above, under the write lock): all changed.
      const before = chosen.map((id) => this.#jobs.rows.get(id));
      let rows: Row[];
      if (Number(changes) === chosen.length && before.every((row) => row !== undefined)) {
        rows = before.map((row) => CLAIM_JOB.apply(row!, [owner, lease]));
        if (this.#verifyRows)
          rows.forEach((row, i) => this.#verifyRow(this.#jobs, chosen[i]!, row));
      } else {
        const byId = new Map(this.#hotAll(READ_JOBS, ids).map((row) => [row.id as number, row]));
        rows = chosen.map((id) => byId.get(id)!);
      }
      return rows.map((row, i) => {
        this.#jobs.rows.keep(chosen[i]!, row);
        return this.#job(row);
      });
    });
  }

  /**
   * Ids of due PENDING requests to claim, oldest first, within max_concurrency: the
   * oldest of the requests without a limit, and of each type with one as many of its
   * oldest as it has free slots (its first due request's limit, less its running
   * requests submitted with a limit), merged (migration 0011: a type at its limit costs
   * a count, not a read of every request it has waiting).
   */
  #chooseDue(owner: string, now: Date, limit: number): number[] {
    const t = now.getTime();
    const head = t + DEFERRAL_HEAD_START_MS;
    const picked: Row[] = this.#all(DUE_FREE, head, t, owner, limit);
    for (const { job_type: type } of this.#all(LIMITED_TYPES)) {
      const due = this.#all(DUE_LIMITED, type as string, head, t, owner, limit);
      if (due.length === 0) continue;
      const active = this.#get(
        `SELECT count(*) AS n FROM job_requests
         WHERE job_type = ? AND max_concurrency IS NOT NULL AND state IN (${sqlList(ACTIVE_STATES)})`,
        type as string,
      );
      const free = (due[0]!.max_concurrency as number) - (active!.n as number);
      for (let k = 0; k < Math.min(free, due.length); k++) picked.push(due[k]!);
    }
    picked.sort(
      (a, b) =>
        (a.scheduled_at as number) - (b.scheduled_at as number) ||
        (a.id as number) - (b.id as number),
    );
    return picked.slice(0, limit).map((row) => row.id as number);
  }

  takeOverJobRequest(
    id: number,
    owner: string,
    now: Date,
    leaseMs: number,
    expectedOwner?: string,
  ): Promise<JobRequest | undefined> {
    return this.#run("taking over a job request", () => {
      const row = this.#stmt(
        `UPDATE job_requests SET owner = $owner, lease_expires_at = $lease, updated_at = $now
         WHERE id = $id AND state IN (${sqlList(UNFINISHED)})
           AND (owner IS NULL OR owner = $owner OR owner = $expected
                OR lease_expires_at IS NULL OR lease_expires_at <= $now)
         RETURNING *`,
      ).get({
        owner,
        lease: leaseUntil(now, leaseMs).getTime(),
        now: now.getTime(),
        id,
        expected: expectedOwner ?? null,
      });
      if (row) return this.#fullJob(row);
      if (!this.#get("SELECT 1 FROM job_requests WHERE id = ?", id)) {
        throw new NotFoundError("job_request", id);
      }
      return undefined;
    });
  }

  renewLeases(owner: string, now: Date, leaseMs: number): Promise<number> {
    return this.#run("renewing leases", () => {
      const result = this.#stmt(
        `UPDATE job_requests SET lease_expires_at = ?, updated_at = ?
         WHERE owner = ? AND state IN (${sqlList(ACTIVE_STATES)})`,
      ).run(leaseUntil(now, leaseMs).getTime(), now.getTime(), owner);
      return Number(result.changes);
    });
  }

  markJobExecuting(id: number): Promise<JobRequest> {
    return this.#runKeeping("marking a job request executing", () => {
      const now = Date.now();
      const row = this.#update(MARK_JOB_EXECUTING, this.#jobs, now, now, id);
      return row ? this.#job(row) : this.#jobMiss(id, "EXECUTING");
    });
  }

  finishJobRequest(id: number, finish: JobFinish): Promise<JobRequest> {
    return this.#runKeeping("finishing a job request", () => this.#finishJob(id, finish));
  }

  #finishJob(id: number, finish: JobFinish): JobRequest {
    assertFinal(finish.state);
    const now = Date.now();
    const row = this.#update(
      FINISH_JOB.get(finish.state)!,
      this.#jobs,
      finish.state,
      now,
      finish.errorCode ?? null,
      finish.errorMessage ?? null,
      now,
      id,
    );
    if (!row) return this.#jobMiss(id, finish.state);
    const job = this.#job(row);
    // Its runner is done with it: the cache keeps the bodies of jobs still under way.
    this.#bodies.delete(id);
    return job;
  }

  #requeue(id: number, scheduledAt: number, sources: readonly State[]): JobRequest {
    const row = this.#get(
      `UPDATE job_requests SET state = 'PENDING', attempt = attempt + 1, scheduled_at = ?,
         owner = NULL, lease_expires_at = NULL, cancel_requested = 0, started_at = NULL, ended_at = NULL,
         error_code = NULL, error_message = NULL, updated_at = ?
       WHERE id = ? AND state IN (${sqlList(sources)}) RETURNING *`,
      scheduledAt,
      Date.now(),
      id,
    );
    return row ? this.#fullJob(row) : this.#jobMiss(id, "PENDING");
  }

  retryJobRequest(id: number, scheduledAt: Date): Promise<JobRequest> {
    return this.#run("retrying a job request", () =>
      this.#requeue(id, scheduledAt.getTime(), RETRY_SOURCES),
    );
  }

  restartJobRequest(id: number): Promise<JobRequest> {
    return this.#run("restarting a job request", () =>
      this.#requeue(id, Date.now(), RESTART_SOURCES),
    );
  }

  // The return type comes from Store (Promise<JobRequest | undefined>).
  deferJobRequest(id: number, owner: string, at: Date, why: WaitReason) {
    return this.#run("deferring a job request", () => {
      const row = this.#get(
        `UPDATE job_requests SET state = 'PENDING', scheduled_at = ?,
           lease_expires_at = NULL, error_code = ?, error_message = ?, updated_at = ?
         WHERE id = ? AND state IN ('READY', 'EXECUTING') AND owner = ? AND cancel_requested = 0
         RETURNING *`,
        at.getTime(),
        why.errorCode,
        why.errorMessage,
        Date.now(),
        id,
        owner,
      );
      return row ? this.#fullJob(row) : undefined;
    });
  }

  wakeDeferredJobRequests(errorCode: string, now: Date): Promise<number> {
    return this.#run("waking deferred job requests", () => {
      const result = this.#stmt(
        `UPDATE job_requests SET scheduled_at = ?, owner = NULL, updated_at = ?
         WHERE state = 'PENDING' AND error_code = ? AND scheduled_at > ?`,
      ).run(now.getTime(), now.getTime(), errorCode, now.getTime());
      return Number(result.changes);
    });
  }

  cancelPendingJobRequest(id: number): Promise<JobRequest | undefined> {
    return this.#run("cancelling a job request", () => {
      const now = Date.now();
      const row = this.#get(
        `UPDATE job_requests SET state = 'CANCELLED', ended_at = ?, updated_at = ?
         WHERE id = ? AND state IN (${sqlList(CANCEL_PENDING_SOURCES)}) AND started_at IS NULL
         RETURNING *`,
        now,
        now,
        id,
      );
      if (row) return this.#fullJob(row);
      const current = this.#get("SELECT state FROM job_requests WHERE id = ?", id);
      if (!current) throw new NotFoundError("job_request", id);
      const state = current.state as State;
      if (isFinal(state)) throw new IllegalTransitionError("job request", id, state, "CANCELLED");
      return undefined; // an engine runs it: the caller asks for cancellation instead
    });
  }

  requestCancel(id: number): Promise<JobRequest> {
    return this.#run("requesting cancellation of a job request", () => {
      const row = this.#get(
        `UPDATE job_requests SET cancel_requested = 1, updated_at = ?1,
           scheduled_at = CASE WHEN ${WAKE_STARTED} THEN ?1 ELSE scheduled_at END,
           owner = CASE WHEN ${WAKE_STARTED} THEN NULL ELSE owner END
         WHERE id = ?2 AND state IN (${sqlList(UNFINISHED)}) RETURNING *`,
        Date.now(),
        id,
      );
      return row ? this.#fullJob(row) : this.#jobMiss(id, "CANCELLED");
    });
  }

  isCancelRequested(id: number): Promise<boolean> {
    return this.#read("reading a job request", () => {
      const row = this.#get("SELECT cancel_requested FROM job_requests WHERE id = ?", id);
      if (!row) throw new NotFoundError("job_request", id);
      return row.cancel_requested === 1;
    });
  }

  // -- task executions ------------------------------------------------------------------

  createTaskExecution(
    input: NewTaskExecution,
  ): Promise<{ execution: TaskExecution; created: boolean }> {
    return this.#runKeeping("creating a task execution", () => {
      if (input.id !== undefined && !isUnitId(input.id)) {
        throw new ValidationError(`task execution id '${input.id}' is not 8 letters or digits`);
      }
      const key = [input.jobRequestId, input.jobAttempt, input.taskType, input.attempt] as const;
      for (let tries = 0; ; tries++) {
        const id = input.id ?? newUnitId();
        const createdAt = Date.now();
        let inserted: boolean;
        try {
          const { changes } = this.#stmt(
            `INSERT INTO task_executions (id, seq, job_request_id, job_attempt, task_type, attempt,
               method, state, context, created_at, server)
             VALUES (?, (SELECT IFNULL(MAX(seq), 0) + 1 FROM task_executions), ?, ?, ?, ?, ?, 'READY', '{}', ?, ?)
             ON CONFLICT (job_request_id, job_attempt, task_type, attempt) DO NOTHING`,
          ).run(id, ...key, input.method, createdAt, input.server ?? null);
          inserted = Number(changes) === 1;
        } catch (error) {
          const code = (error as { errcode?: unknown }).errcode;
          if (code === 787) throw new NotFoundError("job_request", input.jobRequestId); // FOREIGNKEY
          if (code !== 1555) throw error; // not a PRIMARYKEY clash
          if (input.id !== undefined) {
            throw new ConflictError(
              `task execution id ${input.id} is already used by another task`,
            );
          }
          if (tries >= 5) throw error;
          continue; // a fresh random id clashed with an existing one: draw again
        }
        if (inserted) {
          // Every column of the new row is known here: no RETURNING (see #update). The row
          // is kept for the writes that follow (in taskRow's order; seq is not known here,
          // and the model does not carry it).
          const row: Row = {
            id,
            seq: null,
            job_request_id: input.jobRequestId,
            task_type: input.taskType,
            method: input.method,
            job_attempt: input.jobAttempt,
            attempt: input.attempt,
            state: "READY",
            exit_code: null,
            error_code: null,
            error_message: null,
            context: "{}",
            handle: null,
            ant_id: null,
            created_at: createdAt,
            started_at: null,
            ended_at: null,
            hook_status: null,
            hook_status_details: null,
            hook_error_message: null,
            hook_updated_at: null,
            server: input.server ?? null,
          };
          this.#tasks.rows.keep(id, row);
          const execution = toTaskExecution(row, codec);
          return { execution, created: true };
        }
        const existing = this.#get(
          `SELECT * FROM task_executions
           WHERE job_request_id = ? AND job_attempt = ? AND task_type = ? AND attempt = ?`,
          ...key,
        );
        return { execution: toTaskExecution(existing!, codec), created: false };
      }
    });
  }

  getTaskExecution(id: string): Promise<TaskExecution | undefined> {
    return this.#read("reading a task execution", () => {
      const row = this.#hot(READ_TASK, id);
      return row && toTaskExecution(row, codec);
    });
  }

  listTaskExecutions(jobRequestId: number): Promise<TaskExecution[]> {
    return this.#read("listing task executions", () =>
      this.#all(
        "SELECT * FROM task_executions WHERE job_request_id = ? ORDER BY seq",
        jobRequestId,
      ).map((row) => toTaskExecution(row, codec)),
    );
  }

  // -- units: executions across requests, and pausing definitions (REST API) ---------

  listRecentTaskExecutions(query: {
    before?: number;
    limit?: number;
  }): Promise<Page<TaskExecution>> {
    return this.#read("listing task executions", () => {
      const { before, limit } = parseFilter(query);
      const rows =
        before === undefined
          ? this.#all("SELECT * FROM task_executions ORDER BY seq DESC LIMIT ?", limit + 1)
          : this.#all(
              "SELECT * FROM task_executions WHERE seq < ? ORDER BY seq DESC LIMIT ?",
              before,
              limit + 1,
            );
      const items = rows.slice(0, limit).map((row) => toTaskExecution(row, codec));
      const last = rows[limit - 1];
      return rows.length > limit && last ? { items, nextCursor: Number(last.seq) } : { items };
    });
  }

  setDefinitionPaused(jobType: string, paused: boolean): Promise<StoredDefinition | undefined> {
    return this.#run("pausing or resuming a job definition", () => {
      const row = this.#get(
        "UPDATE job_definitions SET paused = ?, updated_at = ? WHERE job_type = ? RETURNING *",
        paused ? 1 : 0,
        Date.now(),
        jobType,
      );
      return row && toStoredDefinition(row, codec);
    });
  }

  markTaskStarted(
    id: string,
    handle: Record<string, unknown>,
    antId?: string,
  ): Promise<TaskExecution> {
    return this.#runKeeping("marking a task execution started", () => {
      const row = this.#get(
        `UPDATE task_executions SET state = 'STARTED', handle = ?, ant_id = ?, started_at = COALESCE(started_at, ?)
         WHERE id = ? AND state IN (${sqlList(sourcesOf("STARTED"))}) RETURNING *`,
        JSON.stringify(handle),
        antId ?? null,
        Date.now(),
        id,
      );
      if (!row) return this.#taskMiss(id, "STARTED");
      this.#tasks.rows.keep(id, row);
      return toTaskExecution(row, codec);
    });
  }

  markTaskExecuting(
    id: string,
    started?: { handle: Record<string, unknown>; antId?: string },
  ): Promise<TaskExecution> {
    return this.#runKeeping("marking a task execution executing", () => {
      const row = this.#update(
        MARK_TASK_EXECUTING,
        this.#tasks,
        Date.now(),
        started ? JSON.stringify(started.handle) : null,
        started?.antId ?? null,
        id,
      );
      return row ? toTaskExecution(row, codec) : this.#taskMiss(id, "EXECUTING");
    });
  }

  finishTask(id: string, finish: TaskFinish): Promise<TaskExecution> {
    return this.#runKeeping("finishing a task execution", () => this.#finishTask(id, finish));
  }

  finishTaskAndJob(
    taskId: string,
    task: TaskFinish,
    jobId: number,
    job: JobFinish,
  ): Promise<{ execution: TaskExecution; job: JobRequest }> {
    return this.#runKeeping("finishing a task execution and its job request", () =>
      this.#tx(() => ({
        execution: this.#finishTask(taskId, task),
        job: this.#finishJob(jobId, job),
      })),
    );
  }

  #finishTask(id: string, finish: TaskFinish): TaskExecution {
    assertFinal(finish.state);
    const write = FINISH_TASK.get(finish.state)!;
    const update = (context: string | null) => {
      const row = this.#update(
        write,
        this.#tasks,
        finish.state,
        finish.exitCode ?? null,
        finish.errorCode ?? null,
        finish.errorMessage ?? null,
        Date.now(),
        context,
        id,
      );
      return row ? toTaskExecution(row, codec) : this.#taskMiss(id, finish.state);
    };
    const extra = finish.context;
    if (extra === undefined) return update(null);
    // A merge reads the current context: one transaction so no writer slips in between.
    return this.#tx(() => {
      const current = this.#get("SELECT context FROM task_executions WHERE id = ?", id);
      if (!current) throw new NotFoundError("task_execution", id);
      const merged = mergeContext(codec.json(current.context) as Record<string, unknown>, extra);
      return update(JSON.stringify(merged));
    });
  }

  // -- process jobs (SPEC section 8) ----------------------------------------------------

  createProcessJob(input: NewProcessJob): Promise<ProcessJob> {
    return this.#run("creating a process job", () => {
      // MAX(id) + 1 inside the INSERT: SQLite runs one writer at a time, so ids never clash.
      const row = this.#get(
        `INSERT INTO process_jobs (id, command, status, timeout_ms, unit_id, node_id, created_by, created_at)
         VALUES ((SELECT IFNULL(MAX(id) + 1, 0) FROM process_jobs), ?, 'created', ?, ?, ?, ?, ?)
         RETURNING *`,
        input.command,
        input.timeoutMs,
        input.unitId,
        input.nodeId,
        input.createdBy ?? null,
        Date.now(),
      );
      return toProcessJob(row!, codec);
    });
  }

  getProcessJob(id: number): Promise<ProcessJob | undefined> {
    return this.#read("reading a process job", () => {
      if (!Number.isSafeInteger(id)) return undefined;
      const row = this.#get("SELECT * FROM process_jobs WHERE id = ?", id);
      return row && toProcessJob(row, codec);
    });
  }

  listProcessJobs(filter: { nodeId: string; status: ProcessJobStatus }): Promise<ProcessJob[]> {
    return this.#read("listing process jobs", () =>
      this.#all(
        "SELECT * FROM process_jobs WHERE node_id = ? AND status = ? ORDER BY id",
        filter.nodeId,
        filter.status,
      ).map((row) => toProcessJob(row, codec)),
    );
  }

  #processJobMiss(id: number, to: ProcessJobStatus): never {
    const row = Number.isSafeInteger(id)
      ? this.#get("SELECT status FROM process_jobs WHERE id = ?", id)
      : undefined;
    if (!row) throw new NotFoundError("process_job", formatProcessJobId(id));
    throw new IllegalTransitionError(
      "process job",
      formatProcessJobId(id),
      row.status as string,
      to,
    );
  }

  startProcessJob(id: number, nodeId: string): Promise<ProcessJob> {
    return this.#run("starting a process job", () => {
      const row = this.#get(
        `UPDATE process_jobs SET status = 'started', node_id = ?, started_at = ?
         WHERE id = ? AND status = ? RETURNING *`,
        nodeId,
        Date.now(),
        id,
        PROCESS_JOB_SOURCES.started,
      );
      return row ? toProcessJob(row, codec) : this.#processJobMiss(id, "started");
    });
  }

  setProcessJobHandle(id: number, handle: Record<string, unknown>): Promise<void> {
    return this.#run("recording a process job's handle", () => {
      this.#stmt("UPDATE process_jobs SET handle = ? WHERE id = ? AND status = 'started'").run(
        JSON.stringify(handle),
        id,
      );
    });
  }

  stopProcessJob(id: number, stop: ProcessJobStop): Promise<ProcessJob> {
    return this.#run("stopping a process job", () => {
      if (stop.reasonForExit === "") {
        throw new ValidationError("a stopped job needs a reasonForExit");
      }
      const row = this.#get(
        `UPDATE process_jobs SET status = 'stopped', reason_for_exit = ?, exit_code = ?, ended_at = ?
         WHERE id = ? AND status = ? RETURNING *`,
        stop.reasonForExit,
        stop.exitCode ?? null,
        Date.now(),
        id,
        PROCESS_JOB_SOURCES.stopped,
      );
      return row ? toProcessJob(row, codec) : this.#processJobMiss(id, "stopped");
    });
  }

  mergeTaskContext(id: string, context: Record<string, unknown>): Promise<void> {
    return this.#run("merging a task execution's context", () => {
      this.#tx(() => {
        const current = this.#get("SELECT state, context FROM task_executions WHERE id = ?", id);
        if (!current) throw new NotFoundError("task_execution", id);
        if (FINAL.includes(current.state as State)) {
          throw new ConflictError(
            `task execution ${id} is ${String(current.state)}; its context can no longer change`,
          );
        }
        const merged = mergeContext(
          codec.json(current.context) as Record<string, unknown>,
          context,
        );
        this.#stmt("UPDATE task_executions SET context = ? WHERE id = ?").run(
          JSON.stringify(merged),
          id,
        );
      });
    });
  }

  // -- API tokens -------------------------------------------------------------------------

  createToken(input: NewToken): Promise<StoredToken> {
    return this.#run("creating a token", () => {
      checkNewToken(input);
      try {
        const row = this.#get(
          `INSERT INTO tokens (id, seq, name, role, hash, created_at, created_by)
           VALUES (?, (SELECT IFNULL(MAX(seq), 0) + 1 FROM tokens), ?, ?, ?, ?, ?) RETURNING *`,
          newTokenId(),
          input.name,
          input.role,
          input.hash,
          Date.now(),
          input.createdBy ?? null,
        );
        return toStoredToken(row!, codec);
      } catch (error) {
        if ((error as { errcode?: unknown }).errcode === 2067) {
          // UNIQUE on hash: only a caller reusing a token gets here (random ones never clash).
          throw new ConflictError("a token with this hash exists already; make a new token");
        }
        throw error;
      }
    });
  }

  findTokenByHash(hash: string): Promise<StoredToken | undefined> {
    return this.#read("looking up a token", () => {
      if (!isTokenHash(hash)) return undefined;
      const row = this.#get("SELECT * FROM tokens WHERE hash = ? AND revoked_at IS NULL", hash);
      return row && toStoredToken(row, codec);
    });
  }

  listTokens(): Promise<StoredToken[]> {
    return this.#read("listing tokens", () =>
      this.#all("SELECT * FROM tokens ORDER BY seq").map((row) => toStoredToken(row, codec)),
    );
  }

  revokeToken(id: string): Promise<StoredToken> {
    return this.#run("revoking a token", () => {
      const row = this.#get(
        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING *",
        Date.now(),
        id,
      );
      if (!row) throw new NotFoundError("token", id, "list them with 'colony token list'");
      return toStoredToken(row, codec);
    });
  }

  touchToken(id: string, at: Date): Promise<void> {
    return this.#runKeeping("recording a token's use", () => {
      this.#stmt(
        `UPDATE tokens SET last_used_at = ?
         WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
      ).run(at.getTime(), id, at.getTime());
    }); // tokens only: the kept job and task rows stay exact
  }

  claimSetting(key: string, value: string): Promise<string> {
    return this.#run("recording a store setting", () => {
      this.#stmt(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
      ).run(key, value);
      return String(this.#get("SELECT value FROM settings WHERE key = ?", key)!.value);
    });
  }

  registerServer(server: { id: string; nodeId: string; url: string }): Promise<void> {
    return this.#run("recording this server", () => {
      this.#stmt(
        `INSERT INTO servers (id, node_id, url, seen_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET node_id = excluded.node_id, url = excluded.url,
           seen_at = excluded.seen_at`,
      ).run(server.id, server.nodeId, server.url, Date.now());
    });
  }

  getServer(id: string): Promise<ServerRecord | undefined> {
    return this.#read("looking up a server", () => {
      const row = this.#get("SELECT * FROM servers WHERE id = ?", id);
      return row && toServerRecord(row, codec);
    });
  }

  listServers(): Promise<ServerRecord[]> {
    return this.#read("listing servers", () =>
      this.#all("SELECT * FROM servers ORDER BY seen_at DESC").map((row) =>
        toServerRecord(row, codec),
      ),
    );
  }
}
