/**
 * Job requests (one run of a job definition) and task executions (one attempt of one
 * task of that run). A task execution's id is its unit id: its output lives in
 * `{data}/units/{id}/stdout`.
 */
import type { JobDefinition, Method } from "./job-definition.ts";
import type { State } from "./states.ts";
import type { HookReport } from "./hook-report.ts";

export interface JobRequest {
  id: number;
  jobType: string;
  state: State;
  params: Record<string, unknown>;
  /** The definition as it was when the request was accepted (later edits do not apply). */
  definition: JobDefinition;
  /** 0 for the first run; job-level retries and restarts count up. */
  attempt: number;
  scheduledAt: Date;
  createdAt: Date;
  startedAt?: Date;
  endedAt?: Date;
  errorCode?: string;
  errorMessage?: string;
  /** The engine that runs it, and until when its claim holds without a heartbeat. */
  owner?: string;
  leaseExpiresAt?: Date;
  /** Who asked for it (token name), when known. */
  submittedBy?: string;
}

export interface TaskExecution {
  id: string;
  jobRequestId: number;
  taskType: string;
  method: Method;
  /** The job attempt this execution belongs to. */
  jobAttempt: number;
  /** 0 for the first try; task retries count up. */
  attempt: number;
  state: State;
  exitCode?: number;
  errorCode?: string;
  errorMessage?: string;
  /** Outputs (`::set-output`, hook results, worker task_context) for later tasks. */
  context: Record<string, unknown>;
  /** Executor-specific handle for re-attaching after a restart (pid, container id...). */
  handle?: Record<string, unknown>;
  antId?: string;
  /** The id of the data dir that holds its output (servers sharing a store each have one). */
  server?: string;
  /** The last report its process sent through the job hook (SPEC section 9). */
  hook?: HookReport;
  createdAt: Date;
  startedAt?: Date;
  endedAt?: Date;
}

/** What a request filter in the store and the API can ask for. */
export interface JobRequestFilter {
  state?: State | State[];
  jobType?: string;
  /** Return requests with id < before (cursor paging, newest first). */
  before?: number;
  limit?: number;
}
