/**
 * The handle stored with a task an ant runs, apart from the ant executor itself: the
 * dispatcher needs only this to re-attach tasks, and importing it must not load the
 * wire formats' schemas (a `colony run` of SHELL tasks never needs them).
 */
import type { ExecutionHandle } from "../core/executor.ts";

/** The handle stored with a task an ant runs (for re-attaching after a restart). */
export interface AntHandle extends ExecutionHandle {
  ant_key: string;
  ant_id: string;
  ant_session?: string;
}

export function isAntHandle(handle: ExecutionHandle | undefined): handle is AntHandle {
  return typeof handle?.["ant_key"] === "string" && typeof handle["ant_id"] === "string";
}
