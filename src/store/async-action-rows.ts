/**
 * Rows of the async-action tables (migration async_actions) to the model, shared by both backends.
 */
import { randomBytes } from "node:crypto";
import { ValidationError } from "../core/errors.ts";
import type { Artifact, ArtifactFilter, Schedule } from "./async-action-store.ts";
import { DEFAULT_PAGE, MAX_PAGE, type Codec, type Row } from "./row-mapping.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

export function newArtifactId(): string {
  let id = "art_";
  for (const byte of randomBytes(24)) {
    // 252 = 7 * 36: the tail of the byte range is skipped so every character is equally likely.
    if (byte >= 252) continue;
    id += ALPHABET[byte % 36];
    if (id.length === 16) return id;
  }
  return id.length === 16 ? id : newArtifactId();
}

export function toArtifact(row: Row, c: Codec): Artifact {
  const artifact: Artifact = {
    id: row.id as string,
    store: row.store as string,
    ownerId: row.owner_id as string,
    property: row.property as string,
    index: Number(row.idx),
    name: row.name as string,
    mimetype: row.mimetype as string,
    size: Number(row.size),
    md5: row.md5 as string,
    challenge: row.challenge as string,
    sha256: row.sha256 as string,
    metadata: c.json(row.metadata) as Record<string, unknown>,
    createdAt: c.date(row.created_at),
  };
  if (row.job_request_id != null) artifact.jobRequestId = c.id(row.job_request_id);
  if (row.task_execution_id != null) artifact.taskExecutionId = row.task_execution_id as string;
  if (row.task_type != null) artifact.taskType = row.task_type as string;
  if (row.expires_at != null) artifact.expiresAt = c.date(row.expires_at);
  if (row.server != null) artifact.server = row.server as string;
  return artifact;
}

export function toSchedule(row: Row, c: Codec): Schedule {
  const schedule: Schedule = {
    jobType: row.job_type as string,
    cron: row.cron as string,
    paused: c.bool(row.paused),
    lastFiredAt: c.date(row.last_fired_at),
    createdAt: c.date(row.created_at),
    updatedAt: c.date(row.updated_at),
  };
  if (row.timezone != null) schedule.timezone = row.timezone as string;
  if (row.last_job_request_id != null) schedule.lastJobRequestId = c.id(row.last_job_request_id);
  return schedule;
}

/** The WHERE conditions of an artifact listing, with `?` placeholders in order. */
export function artifactConditions(filter: ArtifactFilter): {
  where: string[];
  values: unknown[];
  limit: number;
} {
  const limit = filter.limit ?? DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1)
    throw new ValidationError(
      `limit must be a positive integer (at most ${MAX_PAGE}), got ${limit}`,
    );
  if (filter.before !== undefined && !Number.isSafeInteger(filter.before))
    throw new ValidationError(
      `before must be a cursor from the previous page, got ${filter.before}`,
    );
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (column: string, value: unknown) => {
    if (value === undefined) return;
    where.push(`${column} = ?`);
    values.push(value);
  };
  add("job_request_id", filter.jobRequestId);
  add("task_execution_id", filter.taskExecutionId);
  add("task_type", filter.taskType);
  add("store", filter.store);
  add("owner_id", filter.ownerId);
  add("property", filter.property);
  if (filter.before !== undefined) {
    where.push("seq < ?");
    values.push(filter.before);
  }
  return { where, values, limit: Math.min(limit, MAX_PAGE) };
}
