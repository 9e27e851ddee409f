/**
 * What a running process reports about itself through the job hook (SPEC section 9,
 * seed 004), in webda's AsyncAction vocabulary.
 */

/** The statuses a process reports (and the hook shows for a task). */
export const HOOK_STATUSES = ["QUEUED", "STARTING", "RUNNING", "SUCCESS", "ERROR"] as const;
export type HookStatus = (typeof HOOK_STATUSES)[number];

export function isHookStatus(value: unknown): value is HookStatus {
  return (HOOK_STATUSES as readonly unknown[]).includes(value);
}

/** The last hook report of an execution (fields it never sent are absent). */
export interface HookReport {
  status?: HookStatus;
  statusDetails?: unknown;
  errorMessage?: string;
  updatedAt: Date;
}

/**
 * The status the hook shows for a task: its own report while it runs (QUEUED, STARTING
 * and RUNNING from its state until it reports), SUCCESS or ERROR once it has ended.
 */
export function hookStatusOf(state: string, reported?: HookStatus): HookStatus {
  switch (state) {
    case "COMPLETED":
      return "SUCCESS";
    case "FAILED":
    case "CANCELLED":
      return "ERROR";
    default:
      if (reported) return reported;
      return state === "STARTED" ? "STARTING" : state === "EXECUTING" ? "RUNNING" : "QUEUED";
  }
}
