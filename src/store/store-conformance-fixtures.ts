/**
 * Shared helpers of the store conformance suite: definitions, and requests brought into
 * a given state through the store's own methods.
 */
import { taskDefinition, type JobDefinition, type TaskDefinition } from "../core/job-definition.ts";
import type { JobRequest } from "../core/job-request.ts";
import type { State } from "../core/states.ts";
import type { Store } from "./store.ts";

/** The store of the running test (a fresh one per test). */
export type CurrentStore = () => Store;

export function taskDef(taskType: string): TaskDefinition {
  return taskDefinition(taskType, { script: [`echo ${taskType}`] });
}

export function jobDef(jobType: string, extra: Partial<JobDefinition> = {}): JobDefinition {
  return {
    jobType,
    retry: 0,
    delayBetweenRetriesMs: 0,
    variables: {},
    tasks: [taskDef("build"), taskDef("test")],
    ...extra,
  };
}

export const OWNER = "engine-a";
export const LEASE_MS = 30_000;

let pastMs = Date.UTC(2001, 0, 1);

/**
 * Strictly decreasing dates long ago: each request made with one is due before every
 * request made earlier, so a claim of limit 1 at exactly its time takes it alone.
 */
export function nextPast(): Date {
  pastMs -= 1000;
  return new Date(pastMs);
}

/** Creates a PENDING request due in the past, with its own scheduled time. */
export async function pendingRequest(
  store: Store,
  jobType = "conformance",
  params: Record<string, unknown> = {},
): Promise<JobRequest> {
  return store.createJobRequest({
    jobType,
    definition: jobDef(jobType),
    params,
    scheduledAt: nextPast(),
  });
}

/** Claims exactly `request` (it is the oldest due at its own scheduled time). */
export async function claimOne(
  store: Store,
  request: JobRequest,
  owner = OWNER,
): Promise<JobRequest> {
  const claimed = await store.claimDueJobRequests(owner, request.scheduledAt, LEASE_MS, 1);
  if (claimed.length !== 1 || claimed[0]?.id !== request.id) {
    throw new Error(
      `expected to claim request ${request.id}, got ${claimed.map((r) => r.id).join(",")}`,
    );
  }
  return claimed[0];
}

/** The job states the store's methods can reach, and how to reach each. */
export const REACHABLE_JOB_STATES = [
  "PENDING",
  "READY",
  "EXECUTING",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
] as const satisfies readonly State[];

export async function requestIn(store: Store, state: State): Promise<JobRequest> {
  const request = await pendingRequest(store);
  switch (state) {
    case "PENDING":
      return request;
    case "FAILED":
      return store.finishJobRequest(request.id, {
        state: "FAILED",
        errorCode: "E",
        errorMessage: "boom",
      });
    case "CANCELLED":
      return (await store.cancelPendingJobRequest(request.id))!;
    default:
      break;
  }
  const ready = await claimOne(store, request);
  if (state === "READY") return ready;
  const executing = await store.markJobExecuting(request.id);
  if (state === "EXECUTING") return executing;
  if (state === "COMPLETED") return store.finishJobRequest(request.id, { state: "COMPLETED" });
  throw new Error(`requestIn: ${state} is not reachable through the store`);
}

export const REACHABLE_TASK_STATES = [
  "READY",
  "STARTED",
  "EXECUTING",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
] as const satisfies readonly State[];

let taskCounter = 0;

export async function executionIn(store: Store, jobRequestId: number, state: State) {
  const { execution } = await store.createTaskExecution({
    jobRequestId,
    taskType: `task-${++taskCounter}`,
    method: "SHELL",
    jobAttempt: 0,
    attempt: 0,
  });
  if (state === "READY") return execution;
  if (state === "FAILED" || state === "CANCELLED") return store.finishTask(execution.id, { state });
  const started = await store.markTaskStarted(execution.id, { pid: 42 }, "ant-1");
  if (state === "STARTED") return started;
  const executing = await store.markTaskExecuting(execution.id);
  if (state === "EXECUTING") return executing;
  if (state === "COMPLETED")
    return store.finishTask(execution.id, { state: "COMPLETED", exitCode: 0 });
  throw new Error(`executionIn: ${state} is not reachable through the store`);
}

/** Params that exercise JSON round-trips: nesting, unicode, escapes, number edges. */
export const TRICKY_PARAMS: Record<string, unknown> = {
  nested: { a: { b: { c: [1, 2, { d: "deep" }] } }, empty: {}, list: [] },
  unicode: "héllo wörld · 日本語 · 🐜🐜 · עברית",
  escapes: 'quote " backslash \\ newline \n tab \t line-sep \u2028',
  numbers: { int: 42, negative: -7, float: 1.5, big: Number.MAX_SAFE_INTEGER, zero: 0 },
  flags: { yes: true, no: false, nothing: null },
  "key with spaces and ünïcode": "value",
};
