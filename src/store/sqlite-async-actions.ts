/**
 * The async-action part of the SQLite store (async-action-store.ts), on the store's own
 * connection: writes join its group commit, multi-statement changes run in its
 * transactions, so they are as atomic and durable as every other store operation.
 */
import type { SQLInputValue } from "node:sqlite";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { artifactConditions, newArtifactId, toArtifact, toSchedule } from "./async-action-rows.ts";
import type {
  Artifact,
  ArtifactFilter,
  AsyncActionStore,
  HookReportUpdate,
  NewArtifact,
  Schedule,
  ScheduleFiring,
} from "./async-action-store.ts";
import { FINAL, sqliteCodec as codec, sqlList, toTaskExecution, type Row } from "./row-mapping.ts";
import type { Page } from "./store.ts";

/** What the SQLite store lends this module (its private plumbing). */
export interface SqliteAccess {
  get(sql: string, ...params: SQLInputValue[]): Row | undefined;
  all(sql: string, ...params: SQLInputValue[]): Row[];
  /** A write with group commit (settles once durable). */
  run<T>(what: string, fn: () => T): Promise<T>;
  /** A read (settles after the pending writes it sees are committed). */
  read<T>(what: string, fn: () => T): Promise<T>;
  /** Atomically (a savepoint inside the batch, or its own transaction). */
  tx<T>(fn: () => T): T;
  /** The id of a definition text in job_request_definitions (inserted if new). */
  definitionId(text: string): number;
  /** A whole job_requests row (RETURNING *) as a JobRequest. */
  job(row: Row): JobRequest;
}

const v = (value: unknown): SQLInputValue =>
  value === undefined ? null : (value as SQLInputValue);

export function createSqliteAsyncActions(db: SqliteAccess): AsyncActionStore {
  const schedule = (jobType: string): Schedule | undefined => {
    const row = db.get("SELECT * FROM schedules WHERE job_type = ?", jobType);
    return row && toSchedule(row, codec);
  };

  return {
    recordHookReport(id: string, update: HookReportUpdate, at: Date): Promise<TaskExecution> {
      return db.run("recording a hook report", () => {
        const row = db.get(
          `UPDATE task_executions SET hook_status = COALESCE(?, hook_status),
             hook_status_details = COALESCE(?, hook_status_details),
             hook_error_message = COALESCE(?, hook_error_message), hook_updated_at = ?
           WHERE id = ? AND state NOT IN (${sqlList(FINAL)}) RETURNING *`,
          v(update.status),
          update.statusDetails === undefined || update.statusDetails === null
            ? null
            : JSON.stringify(update.statusDetails),
          v(update.errorMessage),
          at.getTime(),
          id,
        );
        if (row) return toTaskExecution(row, codec);
        const current = db.get("SELECT state FROM task_executions WHERE id = ?", id);
        if (!current) throw new NotFoundError("task_execution", id);
        throw new ConflictError(
          `task execution ${id} is ${String(current.state)}; it takes no more hook reports`,
        );
      });
    },

    addArtifact(input: NewArtifact, options = {}) {
      return db.run("storing an artifact", () =>
        db.tx(() => {
          if (options.dedupe) {
            const existing = db.get(
              `SELECT * FROM artifacts WHERE store = ? AND owner_id = ? AND property = ? AND sha256 = ?
               ORDER BY idx LIMIT 1`,
              input.store,
              input.ownerId,
              input.property,
              input.sha256,
            );
            if (existing) return { artifact: toArtifact(existing, codec), created: false };
          }
          const row = db.get(
            `INSERT INTO artifacts (id, store, owner_id, property, idx, job_request_id, task_execution_id,
               task_type, name, mimetype, size, md5, challenge, sha256, metadata, created_at, expires_at,
               server)
             VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(idx) + 1, 0) FROM artifacts
                                  WHERE store = ? AND owner_id = ? AND property = ?),
                     ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             RETURNING *`,
            newArtifactId(),
            input.store,
            input.ownerId,
            input.property,
            input.store,
            input.ownerId,
            input.property,
            v(input.jobRequestId),
            v(input.taskExecutionId),
            v(input.taskType),
            input.name,
            input.mimetype,
            input.size,
            input.md5,
            input.challenge,
            input.sha256,
            JSON.stringify(input.metadata),
            Date.now(),
            v(input.expiresAt?.getTime()),
            v(input.server),
          );
          return { artifact: toArtifact(row!, codec), created: true };
        }),
      );
    },

    getArtifact(id: string): Promise<Artifact | undefined> {
      return db.read("reading an artifact", () => {
        const row = db.get("SELECT * FROM artifacts WHERE id = ?", id);
        return row && toArtifact(row, codec);
      });
    },

    getArtifactAt(store: string, ownerId: string, property: string, index: number) {
      return db.read("reading an artifact", () => {
        const row = db.get(
          "SELECT * FROM artifacts WHERE store = ? AND owner_id = ? AND property = ? AND idx = ?",
          store,
          ownerId,
          property,
          index,
        );
        return row && toArtifact(row, codec);
      });
    },

    findArtifactByHashes(md5: string, challenge: string) {
      return db.read("looking up an artifact", () => {
        const row = db.get(
          "SELECT * FROM artifacts WHERE md5 = ? AND challenge = ? ORDER BY seq DESC LIMIT 1",
          md5,
          challenge,
        );
        return row && toArtifact(row, codec);
      });
    },

    listArtifacts(filter: ArtifactFilter): Promise<Page<Artifact>> {
      return db.read("listing artifacts", () => {
        const { where, values, limit } = artifactConditions(filter);
        const rows = db.all(
          `SELECT * FROM artifacts ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
           ORDER BY seq DESC LIMIT ?`,
          ...(values as SQLInputValue[]),
          limit + 1,
        );
        const page: Page<Artifact> = {
          items: rows.slice(0, limit).map((r) => toArtifact(r, codec)),
        };
        if (rows.length > limit) page.nextCursor = Number(rows[limit - 1]!.seq);
        return page;
      });
    },

    deleteExpiredArtifacts(now: Date, limit: number, server?: string): Promise<Artifact[]> {
      return db.run("deleting expired artifacts", () =>
        db
          .all(
            `DELETE FROM artifacts WHERE seq IN
               (SELECT seq FROM artifacts WHERE expires_at <= ?
                  AND (?2 IS NULL OR server IS NULL OR server = ?2)
                ORDER BY expires_at LIMIT ?)
             RETURNING *`,
            now.getTime(),
            v(server),
            limit,
          )
          .map((r) => toArtifact(r, codec)),
      );
    },

    countArtifactsWithBlob(sha256: string, server?: string): Promise<number> {
      return db.read("counting artifacts", () =>
        Number(
          db.get(
            `SELECT COUNT(*) AS n FROM artifacts
             WHERE sha256 = ? AND (?2 IS NULL OR server IS NULL OR server = ?2)`,
            sha256,
            v(server),
          )!.n,
        ),
      );
    },

    definitionVersions() {
      return db.read("listing job definitions", () =>
        db
          .all("SELECT job_type, version FROM job_definitions")
          .map((r) => ({ jobType: r.job_type as string, version: Number(r.version) })),
      );
    },

    upsertSchedule(input, now) {
      return db.run("saving a schedule", () => {
        const row = db.get(
          `INSERT INTO schedules (job_type, cron, timezone, paused, last_fired_at, created_at, updated_at)
           VALUES (?, ?, ?, 0, ?, ?, ?)
           ON CONFLICT (job_type) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
             updated_at = excluded.updated_at
           WHERE schedules.cron IS NOT excluded.cron OR schedules.timezone IS NOT excluded.timezone
           RETURNING *`,
          input.jobType,
          input.cron,
          v(input.timezone),
          now.getTime(),
          now.getTime(),
          now.getTime(),
        );
        return row ? toSchedule(row, codec) : schedule(input.jobType)!;
      });
    },

    deleteSchedule(jobType: string): Promise<boolean> {
      return db.run("deleting a schedule", () =>
        Boolean(db.get("DELETE FROM schedules WHERE job_type = ? RETURNING job_type", jobType)),
      );
    },

    listSchedules(): Promise<Schedule[]> {
      return db.read("listing schedules", () =>
        db.all("SELECT * FROM schedules ORDER BY job_type").map((r) => toSchedule(r, codec)),
      );
    },

    getSchedule(jobType: string) {
      return db.read("reading a schedule", () => schedule(jobType));
    },

    setSchedulePaused(jobType: string, paused: boolean, now: Date) {
      return db.run("pausing or resuming a schedule", () => {
        // Resuming re-anchors: the times missed while paused do not fire.
        const row = db.get(
          `UPDATE schedules SET paused = ?, updated_at = ?,
             last_fired_at = CASE WHEN ? = 0 AND paused = 1 THEN ? ELSE last_fired_at END
           WHERE job_type = ? RETURNING *`,
          paused ? 1 : 0,
          now.getTime(),
          paused ? 1 : 0,
          now.getTime(),
          jobType,
        );
        return row && toSchedule(row, codec);
      });
    },

    fireSchedule(jobType, expectedLastFiredAt, fireAt, request): Promise<ScheduleFiring> {
      return db.run("firing a schedule", () =>
        db.tx(() => {
          const now = Date.now();
          const claimed = db.get(
            `UPDATE schedules SET last_fired_at = ?, updated_at = ?
             WHERE job_type = ? AND last_fired_at = ? AND paused = 0 RETURNING *`,
            fireAt.getTime(),
            now,
            jobType,
            expectedLastFiredAt.getTime(),
          );
          if (!claimed) return { fired: false, schedule: schedule(jobType) };
          const stored = db.get(
            "SELECT definition FROM job_definitions WHERE job_type = ? AND paused = 0",
            jobType,
          );
          if (!stored) return { fired: true, schedule: toSchedule(claimed, codec) };
          const job = db.get(
            `INSERT INTO job_requests (job_type, state, params, definition_id, max_concurrency,
               attempt, scheduled_at, created_at, submitted_by, updated_at)
             VALUES (?, 'PENDING', ?, ?, ?, 0, ?, ?, 'schedule', ?) RETURNING *`,
            jobType,
            JSON.stringify(request.params),
            db.definitionId(stored.definition as string),
            v(request.maxConcurrency),
            fireAt.getTime(),
            now,
            now,
          )!;
          const updated = db.get(
            "UPDATE schedules SET last_job_request_id = ? WHERE job_type = ? RETURNING *",
            job.id as number,
            jobType,
          )!;
          return {
            fired: true,
            schedule: toSchedule(updated, codec),
            jobRequest: db.job(job),
          };
        }),
      );
    },
  };
}
