/**
 * What the two backends share: turning rows (snake_case columns) into the model
 * (camelCase, optional fields absent rather than null), the state sets each transition
 * starts from, and the checks on list filters. Each backend supplies a Codec for how its
 * driver returns dates and JSON.
 */
import { ValidationError } from "../core/errors.ts";
import type { JobDefinition, Method } from "../core/job-definition.ts";
import type { JobRequest, JobRequestFilter, TaskExecution } from "../core/job-request.ts";
import { FINAL_STATES, STATES, isState, sourcesOf, type State } from "../core/states.ts";
import { newUnitId } from "../core/ids.ts";
import type { HookReport, HookStatus } from "../core/hook-report.ts";
import {
  TOKEN_ROLES,
  type NewToken,
  type ServerRecord,
  type StoredDefinition,
  type StoredToken,
} from "./store.ts";

export type Row = Record<string, unknown>;

export interface Codec {
  date(value: unknown): Date;
  json(value: unknown): unknown;
  id(value: unknown): number;
  bool(value: unknown): boolean;
}

/** SQLite: dates are integer ms, JSON is TEXT, booleans are 0/1. */
export const sqliteCodec: Codec = {
  date: (value) => new Date(value as number),
  json: (value) => JSON.parse(value as string) as unknown,
  id: (value) => value as number,
  bool: (value) => value === 1,
};

/** pg: timestamptz arrives as Date, json/jsonb parsed, bigint as a string. */
export const postgresCodec: Codec = {
  date: (value) => value as Date,
  json: (value) => value,
  id: (value) => Number(value),
  bool: (value) => value === true,
};

export function toStoredDefinition(row: Row, c: Codec): StoredDefinition {
  return {
    jobType: row.job_type as string,
    version: row.version as number,
    definition: c.json(row.definition) as JobDefinition,
    source: row.source as string,
    paused: c.bool(row.paused),
    createdAt: c.date(row.created_at),
    updatedAt: c.date(row.updated_at),
  };
}

/**
 * A definition just saved, from the small columns its write returned: the definition and
 * its source are the ones written, not read back (for a 20,000-task definition, reading
 * back and parsing its JSON held the event loop ~40-60 ms).
 */
export function savedDefinition(
  row: Row,
  c: Codec,
  definition: JobDefinition,
  source: string,
): StoredDefinition {
  return {
    jobType: definition.jobType,
    version: row.version as number,
    definition,
    source,
    paused: c.bool(row.paused),
    createdAt: c.date(row.created_at),
    updatedAt: c.date(row.updated_at),
  };
}

/** A job request's params and definition: never changed once it is created. */
export interface JobBody {
  params: Record<string, unknown>;
  definition: JobDefinition;
}

/** A row as a JobRequest; `body` (params and definition) when the row does not carry them. */
export function toJobRequest(row: Row, c: Codec, body?: JobBody): JobRequest {
  const request: JobRequest = {
    id: c.id(row.id),
    jobType: row.job_type as string,
    state: row.state as State,
    params: body ? body.params : (c.json(row.params) as Record<string, unknown>),
    definition: body ? body.definition : (c.json(row.definition) as JobDefinition),
    attempt: row.attempt as number,
    scheduledAt: c.date(row.scheduled_at),
    createdAt: c.date(row.created_at),
  };
  if (row.started_at != null) request.startedAt = c.date(row.started_at);
  if (row.ended_at != null) request.endedAt = c.date(row.ended_at);
  if (row.error_code != null) request.errorCode = row.error_code as string;
  if (row.error_message != null) request.errorMessage = row.error_message as string;
  if (row.owner != null) request.owner = row.owner as string;
  if (row.lease_expires_at != null) request.leaseExpiresAt = c.date(row.lease_expires_at);
  if (row.submitted_by != null) request.submittedBy = row.submitted_by as string;
  return request;
}

export function toTaskExecution(row: Row, c: Codec): TaskExecution {
  const execution: TaskExecution = {
    id: row.id as string,
    jobRequestId: c.id(row.job_request_id),
    taskType: row.task_type as string,
    method: row.method as Method,
    jobAttempt: row.job_attempt as number,
    attempt: row.attempt as number,
    state: row.state as State,
    context: c.json(row.context) as Record<string, unknown>,
    createdAt: c.date(row.created_at),
  };
  if (row.exit_code != null) execution.exitCode = row.exit_code as number;
  if (row.error_code != null) execution.errorCode = row.error_code as string;
  if (row.error_message != null) execution.errorMessage = row.error_message as string;
  if (row.handle != null) execution.handle = c.json(row.handle) as Record<string, unknown>;
  if (row.ant_id != null) execution.antId = row.ant_id as string;
  if (row.server != null) execution.server = row.server as string;
  if (row.started_at != null) execution.startedAt = c.date(row.started_at);
  if (row.ended_at != null) execution.endedAt = c.date(row.ended_at);
  const hook = toHookReport(row, c);
  if (hook) execution.hook = hook;
  return execution;
}

/** The hook columns of a task_executions row (migration async_actions); undefined before any report. */
function toHookReport(row: Row, c: Codec): HookReport | undefined {
  if (row.hook_updated_at == null) return undefined;
  const report: HookReport = { updatedAt: c.date(row.hook_updated_at) };
  if (row.hook_status != null) report.status = row.hook_status as HookStatus;
  if (row.hook_status_details != null) report.statusDetails = c.json(row.hook_status_details);
  if (row.hook_error_message != null) report.errorMessage = row.hook_error_message as string;
  return report;
}

export function toServerRecord(row: Row, c: Codec): ServerRecord {
  return {
    id: row.id as string,
    nodeId: row.node_id as string,
    url: row.url as string,
    seenAt: c.date(row.seen_at),
  };
}

export function toStoredToken(row: Row, c: Codec): StoredToken {
  const token: StoredToken = {
    id: row.id as string,
    name: row.name as string,
    role: row.role as StoredToken["role"],
    createdAt: c.date(row.created_at),
  };
  if (row.last_used_at != null) token.lastUsedAt = c.date(row.last_used_at);
  if (row.revoked_at != null) token.revokedAt = c.date(row.revoked_at);
  if (row.created_by != null) token.createdBy = row.created_by as string;
  return token;
}

/** Checks a new token before it reaches SQL. */
export function checkNewToken(input: NewToken): void {
  if (!(TOKEN_ROLES as readonly string[]).includes(input.role)) {
    throw new ValidationError(`unknown role '${input.role}'; use one of ${TOKEN_ROLES.join(", ")}`);
  }
  if (typeof input.name !== "string" || input.name.trim() === "" || input.name.length > 200) {
    throw new ValidationError("a token needs a name of 1 to 200 characters");
  }
  if (!isTokenHash(input.hash)) {
    throw new ValidationError("a token hash must be a sha256 in 64 lowercase hex digits");
  }
}

export function isTokenHash(value: string): boolean {
  return /^[0-9a-f]{64}$/.test(value);
}

export function newTokenId(): string {
  return `tok_${newUnitId()}`;
}

// -- transition rules beyond the plain table --------------------------------------------

/** States counted against max_concurrency. */
export const ACTIVE_STATES: readonly State[] = ["READY", "STARTED", "EXECUTING"];
export const FINAL: readonly State[] = [...FINAL_STATES];
export const UNFINISHED: readonly State[] = STATES.filter((s) => !FINAL_STATES.has(s));

/** Narrows the table's sources of `to` to the ones a store method documents. */
function within(to: State, documented: State[]): State[] {
  const legal = sourcesOf(to);
  for (const from of documented) {
    if (!legal.includes(from)) throw new Error(`states.ts forbids ${from} -> ${to}`);
  }
  return documented;
}

/** retryJobRequest: a job-level retry after a failure (EXECUTING|FAILED -> PENDING). */
export const RETRY_SOURCES = within("PENDING", ["EXECUTING", "FAILED"]);
/** restartJobRequest: a user restart of a finished, unsuccessful request. */
export const RESTART_SOURCES = within("PENDING", ["FAILED", "CANCELLED"]);
/** cancelPendingJobRequest: requests that no engine is running yet. */
export const CANCEL_PENDING_SOURCES = within("CANCELLED", ["PENDING", "READY", "PAUSED"]);

/**
 * A started job waiting in the store (handed back for want of an ant): a cancel makes it
 * due at once for every engine, which runs it to its end (cancelled tasks, `always_run`
 * cleanup) rather than the store ending it where it stands.
 */
export const WAKE_STARTED = "state = 'PENDING' AND started_at IS NOT NULL";

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

export interface ListQuery {
  states: State[] | undefined;
  jobType: string | undefined;
  before: number | undefined;
  limit: number;
}

/** Checks a filter before it reaches SQL: unknown states and bad numbers are refused. */
export function parseFilter(filter: JobRequestFilter): ListQuery {
  const raw = filter.state === undefined ? [] : [filter.state].flat();
  for (const state of raw) {
    if (!isState(state)) {
      throw new ValidationError(
        `unknown state '${String(state)}'; use one of ${STATES.join(", ")}`,
      );
    }
  }
  const limit = filter.limit ?? DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ValidationError(
      `limit must be a positive integer (at most ${MAX_PAGE}), got ${limit}`,
    );
  }
  if (filter.before !== undefined && !Number.isInteger(filter.before)) {
    throw new ValidationError(`before must be a job request id, got ${filter.before}`);
  }
  return {
    // An empty list means "no state filter", as an API query without `state` would.
    states: raw.length > 0 ? [...new Set(raw)] : undefined,
    jobType: filter.jobType,
    before: filter.before,
    limit: Math.min(limit, MAX_PAGE),
  };
}

/** Shallow merge, the same as PostgreSQL's `jsonb || jsonb`. */
export function mergeContext(
  current: Record<string, unknown>,
  update: Record<string, unknown>,
): Record<string, unknown> {
  return { ...current, ...update };
}

/** A SQL list literal of states; only ever built from the constants in states.ts. */
const sqlLists = new WeakMap<readonly State[], string>();

/** `'A', 'B'` for an IN list (remembered per array: hot statements build their SQL often). */
export function sqlList(states: readonly State[]): string {
  let list = sqlLists.get(states);
  if (list === undefined) {
    list = states.map((s) => `'${s}'`).join(", ");
    sqlLists.set(states, list);
  }
  return list;
}

export function assertFinal(state: State): void {
  if (!FINAL_STATES.has(state)) {
    throw new ValidationError(`a finish must be COMPLETED, FAILED or CANCELLED, got ${state}`);
  }
}

export function leaseUntil(now: Date, leaseMs: number): Date {
  return new Date(now.getTime() + leaseMs);
}
