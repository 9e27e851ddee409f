/**
 * Process jobs (SPEC section 8, seed 003): one shell command as a job with three
 * statuses, created -> started -> stopped, and why it stopped, in the words the
 * seed's Go service uses. The HTTP surface is src/server/compat-jobs/; state lives in
 * the store (one guarded statement per transition).
 */
import type { ExecutionResult } from "./executor.ts";

export const PROCESS_JOB_STATUSES = ["created", "started", "stopped"] as const;
export type ProcessJobStatus = (typeof PROCESS_JOB_STATUSES)[number];

/** What a client may ask a job to become with PUT /jobs/{id}. */
export const PROCESS_JOB_TARGETS = ["started", "stopped"] as const;
export type ProcessJobTarget = (typeof PROCESS_JOB_TARGETS)[number];

/** The fixed reasons; a process's own end is `process finished[ with error: <err>]`. */
export const REASON_TIMEOUT = "timeout";
export const REASON_API = "API";
export const REASON_SERVICE_SHUTDOWN = "Service Shutdown";
export const REASON_FINISHED = "process finished";

export interface ProcessJob {
  /** Store sequence number, 0 first; shown zero-padded (formatProcessJobId). */
  id: number;
  command: string;
  status: ProcessJobStatus;
  /** "" until stopped. */
  reasonForExit: string;
  /** Stopped with `timeout` this long after it started. */
  timeoutMs: number;
  /** Unit id: the process's output is `{data}/units/{unitId}/stdout`. */
  unitId: string;
  /** The node that runs (or ran) its process; only that node follows and recovers it. */
  nodeId: string;
  /** What the executor returned from start (pid, files), for re-attach after a restart. */
  handle?: Record<string, unknown>;
  /** The process's exit code when it exited by itself with one. */
  exitCode?: number;
  createdBy?: string;
  createdAt: Date;
  startedAt?: Date;
  endedAt?: Date;
}

export interface NewProcessJob {
  command: string;
  timeoutMs: number;
  unitId: string;
  nodeId: string;
  createdBy?: string;
}

export interface ProcessJobStop {
  reasonForExit: string;
  exitCode?: number;
}

/** Ids are shown zero-padded to four digits, as the seed shows them ("0000"). */
export function formatProcessJobId(id: number): string {
  return String(id).padStart(4, "0");
}

/** The store id of a shown id ("0007" or "7"); undefined when it cannot be one. */
export function parseProcessJobId(text: string): number | undefined {
  if (!/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

/** Signal descriptions as Go's os/exec prints them in `signal: <name>`. */
const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGHUP: "hangup",
  SIGINT: "interrupt",
  SIGQUIT: "quit",
  SIGILL: "illegal instruction",
  SIGTRAP: "trace/breakpoint trap",
  SIGABRT: "aborted",
  SIGBUS: "bus error",
  SIGFPE: "floating point exception",
  SIGKILL: "killed",
  SIGUSR1: "user defined signal 1",
  SIGSEGV: "segmentation fault",
  SIGUSR2: "user defined signal 2",
  SIGPIPE: "broken pipe",
  SIGALRM: "alarm clock",
  SIGTERM: "terminated",
};

/**
 * The reasonForExit of a process that ended by itself, worded as the seed's Go service
 * words it: `process finished`, `process finished with error: exit status 1`,
 * `process finished with error: signal: killed`.
 */
export function finishedReason(result: ExecutionResult, signal?: string | null): string {
  if (result.exitCode === 0) return REASON_FINISHED;
  if (result.exitCode !== null) {
    return `${REASON_FINISHED} with error: exit status ${result.exitCode}`;
  }
  const sig = signal ?? /\b(SIG[A-Z0-9]+)\b/.exec(result.error ?? "")?.[1];
  if (sig) return `${REASON_FINISHED} with error: signal: ${GO_SIGNAL_NAMES[sig] ?? sig}`;
  return `${REASON_FINISHED} with error: ${result.error ?? "the process ended without an exit status"}`;
}
