/**
 * Process jobs (core/process-job.ts) in the store: the row -> model mapping both backends
 * share, and the status each guarded transition starts from.
 */
import type { ProcessJob, ProcessJobStatus } from "../core/process-job.ts";
import type { Codec, Row } from "./row-mapping.ts";

/** created -> started (PUT started) and started -> stopped (API, timeout, shutdown, exit). */
export const PROCESS_JOB_SOURCES: Readonly<Record<"started" | "stopped", ProcessJobStatus>> = {
  started: "created",
  stopped: "started",
};

export function toProcessJob(row: Row, c: Codec): ProcessJob {
  const job: ProcessJob = {
    id: c.id(row.id),
    command: row.command as string,
    status: row.status as ProcessJobStatus,
    reasonForExit: row.reason_for_exit as string,
    timeoutMs: Number(row.timeout_ms),
    unitId: row.unit_id as string,
    nodeId: row.node_id as string,
    createdAt: c.date(row.created_at),
  };
  if (row.handle != null) job.handle = c.json(row.handle) as Record<string, unknown>;
  if (row.exit_code != null) job.exitCode = row.exit_code as number;
  if (row.created_by != null) job.createdBy = row.created_by as string;
  if (row.started_at != null) job.startedAt = c.date(row.started_at);
  if (row.ended_at != null) job.endedAt = c.date(row.ended_at);
  return job;
}
