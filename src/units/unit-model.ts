/**
 * One unit model, several views (SPEC section 1): every execution is a unit with an id,
 * a state, an output file and (for work units) a stdin payload. Work units (a work type
 * run here or on a peer) and task executions (a task of a job) both become a
 * UnitSnapshot; the control socket shows it in receptor's words (receptorStatus), the
 * REST API in snake_case (server/api/units.ts).
 */
import type { TaskExecution } from "../core/job-request.ts";
import type { State } from "../core/states.ts";
import {
  CANCELED,
  FAILED,
  PENDING,
  RUNNING,
  stateName,
  SUCCEEDED,
  type UnitState,
  type UnitStateName,
} from "./unit-files.ts";

export interface UnitSnapshot {
  id: string;
  /** A work unit (control socket, POST /api/units) or a task execution of a job. */
  kind: "work" | "task";
  state: UnitState;
  detail: string;
  stdoutSize: number;
  /** Work units: the work type ("remote" for work sent to a peer). Tasks: the method. */
  workType: string;
  /** receptor's ExtraData with secrets removed (null for tasks). */
  extraData: unknown;
  /** The node that runs it (the peer for remote units). */
  node: string;
  createdAt?: Date;
  updatedAt?: Date;
  jobRequestId?: number;
  taskType?: string;
}

/** What `work status` and `work list` answer for a unit (receptor's fields + StateName). */
export interface ReceptorStatusView {
  State: UnitState;
  StateName: UnitStateName;
  Detail: string;
  StdoutSize: number;
  WorkType: string;
  ExtraData: unknown;
}

export function receptorStatus(unit: UnitSnapshot): ReceptorStatusView {
  return {
    State: unit.state,
    StateName: stateName(unit.state),
    Detail: unit.detail,
    StdoutSize: unit.stdoutSize,
    WorkType: unit.workType,
    ExtraData: unit.extraData,
  };
}

/** receptor's state for one of colony's task states. */
export function unitStateOfTask(state: State): UnitState {
  switch (state) {
    case "STARTED":
    case "EXECUTING":
      return RUNNING;
    case "COMPLETED":
      return SUCCEEDED;
    case "FAILED":
      return FAILED;
    case "CANCELLED":
      return CANCELED;
    default:
      return PENDING;
  }
}

function taskDetail(t: TaskExecution): string {
  if (t.errorMessage) return t.errorMessage;
  if (t.exitCode !== undefined) return `exit status ${t.exitCode}`;
  switch (t.state) {
    case "STARTED":
    case "EXECUTING":
      return "Running";
    case "CANCELLED":
      return "Canceled";
    case "PAUSED":
      return "Paused";
    default:
      return "Waiting to start";
  }
}

/** A task execution as a unit. */
export function taskUnit(t: TaskExecution, stdoutSize: number, nodeId: string): UnitSnapshot {
  return {
    id: t.id,
    kind: "task",
    state: unitStateOfTask(t.state),
    detail: taskDetail(t),
    stdoutSize,
    workType: t.method,
    extraData: null,
    node: t.antId ?? nodeId,
    createdAt: t.createdAt,
    ...(t.endedAt ? { updatedAt: t.endedAt } : t.startedAt ? { updatedAt: t.startedAt } : {}),
    jobRequestId: t.jobRequestId,
    taskType: t.taskType,
  };
}
