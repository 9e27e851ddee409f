/**
 * The part of the store behind async actions (SPEC section 9, seed 004): hook reports on
 * task executions, artifact metadata, and schedules. Each backend implements it in its
 * own file (sqlite-async-actions.ts, postgres-async-actions.ts) on the store's own
 * connection, and exposes it as `store.asyncActions`; one conformance suite
 * (store-conformance-async-actions.ts) runs against both.
 */
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import type { HookStatus } from "../core/hook-report.ts";
import type { Page } from "./store.ts";

export {
  HOOK_STATUSES,
  isHookStatus,
  type HookReport,
  type HookStatus,
} from "../core/hook-report.ts";

export interface HookReportUpdate {
  status?: HookStatus;
  statusDetails?: unknown;
  errorMessage?: string;
}

/** One stored file: where the hook finds it, what it is attached to, and its hashes. */
export interface Artifact {
  /** `art_` and 12 letters or digits. */
  id: string;
  /** The hook's `{store}` (`artifacts`). */
  store: string;
  /** The hook's `{uuid}`: an execution's JOB_ID or a job request id. */
  ownerId: string;
  /** The hook's `{property}`. */
  property: string;
  /** The hook's `{index}`: files under one (store, owner, property) count from 0. */
  index: number;
  jobRequestId?: number;
  taskExecutionId?: string;
  taskType?: string;
  /** A file name (a relative path for task artifacts). */
  name: string;
  mimetype: string;
  size: number;
  /** md5 of the content, lowercase hex. */
  md5: string;
  /** md5 of "WEBDA" + the content (proof of possession for deduplicated uploads). */
  challenge: string;
  /** sha256 of the content: names the blob file. */
  sha256: string;
  metadata: Record<string, unknown>;
  createdAt: Date;
  expiresAt?: Date;
  /** The id of the data dir that holds its blob (servers sharing a store each have one). */
  server?: string;
}

export type NewArtifact = Omit<Artifact, "id" | "index" | "createdAt">;

export interface ArtifactFilter {
  jobRequestId?: number;
  taskExecutionId?: string;
  taskType?: string;
  store?: string;
  ownerId?: string;
  property?: string;
  /** `nextCursor` of the previous page (newest first). */
  before?: number;
  limit?: number;
}

/** A job type's cron schedule. */
export interface Schedule {
  jobType: string;
  /** The cron expression without its time zone prefix. */
  cron: string;
  /** IANA zone (e.g. Europe/Paris); absent: the server's default. */
  timezone?: string;
  paused: boolean;
  /** The cron time of the last firing, or when the schedule was made or resumed. */
  lastFiredAt: Date;
  lastJobRequestId?: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface ScheduleFiring {
  /** False when another server (or an earlier tick) fired it first: nothing changed. */
  fired: boolean;
  schedule?: Schedule;
  /** The new request; absent when fired while the job type is paused (the time is skipped). */
  jobRequest?: JobRequest;
}

export interface AsyncActionStore {
  // -- hook reports ------------------------------------------------------------------
  /**
   * Records a hook report on an unfinished execution (fields not given keep their value)
   * and returns the execution. NotFoundError for an unknown id, ConflictError once it
   * has ended (a late report changes nothing).
   */
  recordHookReport(id: string, update: HookReportUpdate, at: Date): Promise<TaskExecution>;

  // -- artifacts ---------------------------------------------------------------------
  /**
   * Adds a file under (store, owner, property) at the next index. With `dedupe`, when
   * that name already holds a file with the same sha256, returns it with created false.
   */
  addArtifact(
    input: NewArtifact,
    options?: { dedupe?: boolean },
  ): Promise<{ artifact: Artifact; created: boolean }>;
  getArtifact(id: string): Promise<Artifact | undefined>;
  getArtifactAt(
    store: string,
    ownerId: string,
    property: string,
    index: number,
  ): Promise<Artifact | undefined>;
  /** Any stored file with this md5 and challenge (the proof of possession), newest first. */
  findArtifactByHashes(md5: string, challenge: string): Promise<Artifact | undefined>;
  /** Newest first, with cursor paging. */
  listArtifacts(filter: ArtifactFilter): Promise<Page<Artifact>>;
  /**
   * Deletes up to `limit` artifacts that expired at `now` and returns them: with
   * `server`, only those whose blob is in that data dir (or that record none).
   */
  deleteExpiredArtifacts(now: Date, limit: number, server?: string): Promise<Artifact[]>;
  /**
   * How many artifacts still use the blob (0: its file can go): with `server`, those
   * whose blob is in that data dir (or that record none).
   */
  countArtifactsWithBlob(sha256: string, server?: string): Promise<number>;

  // -- schedules ---------------------------------------------------------------------
  /** job_type and version of every saved definition (cheap change detection). */
  definitionVersions(): Promise<Array<{ jobType: string; version: number }>>;
  /**
   * Creates the schedule (anchored at `now`: past cron times do not fire) or updates its
   * cron and time zone (keeping its last firing and pause). Idempotent.
   */
  upsertSchedule(
    input: { jobType: string; cron: string; timezone?: string },
    now: Date,
  ): Promise<Schedule>;
  deleteSchedule(jobType: string): Promise<boolean>;
  listSchedules(): Promise<Schedule[]>;
  getSchedule(jobType: string): Promise<Schedule | undefined>;
  /** Pauses, or resumes anchored at `now` (times missed while paused do not fire). */
  setSchedulePaused(jobType: string, paused: boolean, now: Date): Promise<Schedule | undefined>;
  /**
   * Claims the firing at `fireAt` and inserts its job request (the saved definition,
   * scheduled at `fireAt`, submitted by "schedule") in one transaction, only when the
   * schedule is not paused and its last firing is still `expectedLastFiredAt`
   * (compare-and-set). A paused job type gets the time claimed without a request.
   */
  fireSchedule(
    jobType: string,
    expectedLastFiredAt: Date,
    fireAt: Date,
    request: { params: Record<string, unknown>; maxConcurrency?: number },
  ): Promise<ScheduleFiring>;
}
