/**
 * The wire types the dashboard reads: the REST API's own schemas (src/server/schemas.ts),
 * imported as types only, so a change to the API that breaks the page fails typecheck.
 */
export type {
  JobDefinitionView,
  JobRequestPageView,
  JobRequestView,
  StoredDefinitionView,
  TaskExecutionView,
  UnitView,
} from "../../src/server/schemas.ts";

export type State =
  "PENDING" | "READY" | "STARTED" | "EXECUTING" | "COMPLETED" | "FAILED" | "CANCELLED" | "PAUSED";

export const STATES: State[] = [
  "PENDING",
  "READY",
  "STARTED",
  "EXECUTING",
  "PAUSED",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
];

export const FINAL: ReadonlySet<string> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export interface SessionView {
  name: string;
  role: "reader" | "writer" | "admin" | "ant";
  auth_enabled: boolean;
  via: string;
  csrf_token: string | null;
}

/** `job:state` as GET /api/events sends it. */
export interface JobStateEvent {
  id: number;
  job_type: string;
  state: State;
  attempt: number;
  error?: string;
  at: string;
}

/** `task:state` as GET /api/events sends it. */
export interface TaskStateEvent {
  job_request_id: number;
  task_type: string;
  execution_id: string;
  state: State;
  attempt: number;
  method?: string;
  exit_code?: number;
  error?: string;
  at: string;
}
