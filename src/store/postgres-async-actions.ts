/**
 * The async-action part of the PostgreSQL store (async-action-store.ts), on the store's
 * own pool. Several servers may share the database: index assignment serialises per
 * (store, owner, property) with a transaction-scoped advisory lock, and a schedule
 * firing is a compare-and-set in the transaction that inserts its job request.
 */
import type { PoolClient } from "pg";
import { POSTGRES_JOB_COLUMNS } from "./definition-texts.ts";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { artifactConditions, newArtifactId, toArtifact, toSchedule } from "./async-action-rows.ts";
import type { Artifact, AsyncActionStore, Schedule } from "./async-action-store.ts";
import {
  FINAL,
  postgresCodec as codec,
  sqlList,
  toJobRequest,
  toTaskExecution,
  type Row,
} from "./row-mapping.ts";
import type { Page } from "./store.ts";

type Queryable = PoolClient | undefined;

/** What the PostgreSQL store lends this module (its private plumbing). */
export interface PostgresAccess {
  /** A named statement on the pool, or on `client` inside a transaction. */
  q(text: string, values?: unknown[], client?: Queryable): Promise<Row[]>;
  tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T>;
  /** Wraps failures into the store's errors, saying what was being done. */
  run<T>(what: string, fn: () => Promise<T>): Promise<T>;
  /** The id of a definition text in job_request_definitions (inserted if new). */
  definitionId(text: string, client?: PoolClient): Promise<number>;
}

const n = (value: unknown) => (value === undefined ? null : value);

/** `?` placeholders to `$1, $2...` (the shared condition builder writes `?`). */
function numbered(sql: string, offset = 0): string {
  let i = offset;
  return sql.replace(/\?/g, () => `$${++i}`);
}

export function createPostgresAsyncActions(db: PostgresAccess): AsyncActionStore {
  const one = async (text: string, values: unknown[] = [], client?: Queryable) =>
    (await db.q(text, values, client))[0];
  const schedule = async (jobType: string, client?: Queryable): Promise<Schedule | undefined> => {
    const row = await one("SELECT * FROM schedules WHERE job_type = $1", [jobType], client);
    return row && toSchedule(row, codec);
  };

  return {
    recordHookReport(id, update, at) {
      return db.run("recording a hook report", async () => {
        const row = await one(
          `UPDATE task_executions SET hook_status = COALESCE($2, hook_status),
             hook_status_details = COALESCE($3::json, hook_status_details),
             hook_error_message = COALESCE($4, hook_error_message), hook_updated_at = $5
           WHERE id = $1 AND state NOT IN (${sqlList(FINAL)}) RETURNING *`,
          [
            id,
            n(update.status),
            update.statusDetails === undefined || update.statusDetails === null
              ? null
              : JSON.stringify(update.statusDetails),
            n(update.errorMessage),
            at,
          ],
        );
        if (row) return toTaskExecution(row, codec);
        const current = await one("SELECT state FROM task_executions WHERE id = $1", [id]);
        if (!current) throw new NotFoundError("task_execution", id);
        throw new ConflictError(
          `task execution ${id} is ${String(current.state)}; it takes no more hook reports`,
        );
      });
    },

    addArtifact(input, options = {}) {
      return db.run("storing an artifact", () =>
        db.tx(async (client) => {
          await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
            `colony-artifact:${input.store}/${input.ownerId}/${input.property}`,
          ]);
          if (options.dedupe) {
            const existing = await one(
              `SELECT * FROM artifacts WHERE store = $1 AND owner_id = $2 AND property = $3 AND sha256 = $4
               ORDER BY idx LIMIT 1`,
              [input.store, input.ownerId, input.property, input.sha256],
              client,
            );
            if (existing) return { artifact: toArtifact(existing, codec), created: false };
          }
          const row = await one(
            `INSERT INTO artifacts (id, store, owner_id, property, idx, job_request_id, task_execution_id,
               task_type, name, mimetype, size, md5, challenge, sha256, metadata, created_at, expires_at,
               server)
             VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(idx) + 1, 0) FROM artifacts
                                      WHERE store = $2 AND owner_id = $3 AND property = $4),
                     $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             RETURNING *`,
            [
              newArtifactId(),
              input.store,
              input.ownerId,
              input.property,
              n(input.jobRequestId),
              n(input.taskExecutionId),
              n(input.taskType),
              input.name,
              input.mimetype,
              input.size,
              input.md5,
              input.challenge,
              input.sha256,
              JSON.stringify(input.metadata),
              new Date(),
              n(input.expiresAt),
              n(input.server),
            ],
            client,
          );
          return { artifact: toArtifact(row!, codec), created: true };
        }),
      );
    },

    getArtifact(id) {
      return db.run("reading an artifact", async () => {
        const row = await one("SELECT * FROM artifacts WHERE id = $1", [id]);
        return row && toArtifact(row, codec);
      });
    },

    getArtifactAt(store, ownerId, property, index) {
      return db.run("reading an artifact", async () => {
        const row = await one(
          "SELECT * FROM artifacts WHERE store = $1 AND owner_id = $2 AND property = $3 AND idx = $4",
          [store, ownerId, property, index],
        );
        return row && toArtifact(row, codec);
      });
    },

    findArtifactByHashes(md5, challenge) {
      return db.run("looking up an artifact", async () => {
        const row = await one(
          "SELECT * FROM artifacts WHERE md5 = $1 AND challenge = $2 ORDER BY seq DESC LIMIT 1",
          [md5, challenge],
        );
        return row && toArtifact(row, codec);
      });
    },

    listArtifacts(filter) {
      return db.run("listing artifacts", async () => {
        const { where, values, limit } = artifactConditions(filter);
        const sql = numbered(
          `SELECT * FROM artifacts ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
           ORDER BY seq DESC LIMIT ?`,
        );
        const rows = await db.q(sql, [...values, limit + 1]);
        const page: Page<Artifact> = {
          items: rows.slice(0, limit).map((r) => toArtifact(r, codec)),
        };
        if (rows.length > limit) page.nextCursor = Number(rows[limit - 1]!.seq);
        return page;
      });
    },

    deleteExpiredArtifacts(now, limit, server) {
      return db.run("deleting expired artifacts", async () =>
        (
          await db.q(
            `DELETE FROM artifacts WHERE seq IN
               (SELECT seq FROM artifacts WHERE expires_at <= $1
                  AND ($3::text IS NULL OR server IS NULL OR server = $3)
                ORDER BY expires_at LIMIT $2
                FOR UPDATE SKIP LOCKED)
             RETURNING *`,
            [now, limit, n(server)],
          )
        ).map((r) => toArtifact(r, codec)),
      );
    },

    countArtifactsWithBlob(sha256, server) {
      return db.run("counting artifacts", async () =>
        Number(
          (await one(
            `SELECT COUNT(*) AS n FROM artifacts
             WHERE sha256 = $1 AND ($2::text IS NULL OR server IS NULL OR server = $2)`,
            [sha256, n(server)],
          ))!.n,
        ),
      );
    },

    definitionVersions() {
      return db.run("listing job definitions", async () =>
        (await db.q("SELECT job_type, version FROM job_definitions")).map((r) => ({
          jobType: r.job_type as string,
          version: Number(r.version),
        })),
      );
    },

    upsertSchedule(input, now) {
      return db.run("saving a schedule", async () => {
        const row = await one(
          `INSERT INTO schedules (job_type, cron, timezone, paused, last_fired_at, created_at, updated_at)
           VALUES ($1, $2, $3, false, $4, $4, $4)
           ON CONFLICT (job_type) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
             updated_at = excluded.updated_at
           WHERE schedules.cron IS DISTINCT FROM excluded.cron
              OR schedules.timezone IS DISTINCT FROM excluded.timezone
           RETURNING *`,
          [input.jobType, input.cron, n(input.timezone), now],
        );
        return row ? toSchedule(row, codec) : (await schedule(input.jobType))!;
      });
    },

    deleteSchedule(jobType) {
      return db.run("deleting a schedule", async () =>
        Boolean(
          await one("DELETE FROM schedules WHERE job_type = $1 RETURNING job_type", [jobType]),
        ),
      );
    },

    listSchedules() {
      return db.run("listing schedules", async () =>
        (await db.q("SELECT * FROM schedules ORDER BY job_type")).map((r) => toSchedule(r, codec)),
      );
    },

    getSchedule(jobType) {
      return db.run("reading a schedule", () => schedule(jobType));
    },

    setSchedulePaused(jobType, paused, now) {
      return db.run("pausing or resuming a schedule", async () => {
        // Resuming re-anchors: the times missed while paused do not fire.
        const row = await one(
          `UPDATE schedules SET paused = $2, updated_at = $3,
             last_fired_at = CASE WHEN NOT $2 AND paused THEN $3 ELSE last_fired_at END
           WHERE job_type = $1 RETURNING *`,
          [jobType, paused, now],
        );
        return row && toSchedule(row, codec);
      });
    },

    fireSchedule(jobType, expectedLastFiredAt, fireAt, request) {
      return db.run("firing a schedule", () =>
        db.tx(async (client) => {
          const now = new Date();
          const claimed = await one(
            `UPDATE schedules SET last_fired_at = $3, updated_at = $4
             WHERE job_type = $1 AND last_fired_at = $2 AND NOT paused RETURNING *`,
            [jobType, expectedLastFiredAt, fireAt, now],
            client,
          );
          if (!claimed) return { fired: false, schedule: await schedule(jobType, client) };
          const stored = await one(
            "SELECT definition::text AS text FROM job_definitions WHERE job_type = $1 AND NOT paused",
            [jobType],
            client,
          );
          if (!stored) return { fired: true, schedule: toSchedule(claimed, codec) };
          const job = (await one(
            `INSERT INTO job_requests (job_type, state, params, definition_id, max_concurrency,
               attempt, scheduled_at, created_at, submitted_by, updated_at)
             VALUES ($1, 'PENDING', $2, $3, $4, 0, $5, $6, 'schedule', $6)
             RETURNING ${POSTGRES_JOB_COLUMNS}`,
            [
              jobType,
              JSON.stringify(request.params),
              await db.definitionId(stored.text as string, client),
              n(request.maxConcurrency),
              fireAt,
              now,
            ],
            client,
          ))!;
          const updated = (await one(
            "UPDATE schedules SET last_job_request_id = $2 WHERE job_type = $1 RETURNING *",
            [jobType, job.id],
            client,
          ))!;
          return {
            fired: true,
            schedule: toSchedule(updated, codec),
            jobRequest: toJobRequest(job, codec),
          };
        }),
      );
    },
  };
}
