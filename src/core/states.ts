/**
 * The state machine shared by job requests and task executions (SPEC section 2).
 * Every store transition is checked against this table; an illegal move is refused.
 */
export const STATES = [
  "PENDING",
  "READY",
  "STARTED",
  "EXECUTING",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "PAUSED",
] as const;

export type State = (typeof STATES)[number];

export const FINAL_STATES: ReadonlySet<State> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/**
 * from -> allowed targets.
 * PENDING: accepted, waiting for its time or a concurrency slot.
 * READY: claimed by an engine (jobs) / created and queued for dispatch (tasks).
 * STARTED: handed to an executor or an ant. EXECUTING: running.
 * Moves back to PENDING are requeues (an ant was lost, a restart of a finished job).
 */
export const TRANSITIONS: Readonly<Record<State, readonly State[]>> = {
  PENDING: ["READY", "CANCELLED", "FAILED", "PAUSED"],
  READY: ["STARTED", "EXECUTING", "PENDING", "CANCELLED", "FAILED", "PAUSED"],
  STARTED: ["EXECUTING", "COMPLETED", "FAILED", "CANCELLED", "PENDING"],
  EXECUTING: ["COMPLETED", "FAILED", "CANCELLED", "PAUSED", "PENDING"],
  PAUSED: ["READY", "PENDING", "CANCELLED"],
  COMPLETED: [],
  FAILED: ["PENDING"],
  CANCELLED: ["PENDING"],
};

export function isState(value: unknown): value is State {
  return typeof value === "string" && (STATES as readonly string[]).includes(value);
}

export function isFinal(state: State): boolean {
  return FINAL_STATES.has(state);
}

export function canTransition(from: State, to: State): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The states a transition into `to` may start from (used by atomic store updates). */
const SOURCES = new Map<State, readonly State[]>(
  STATES.map((to) => [to, Object.freeze(STATES.filter((from) => TRANSITIONS[from].includes(to)))]),
);

/** The states a move to `to` may start from (the same frozen array on every call). */
export function sourcesOf(to: State): readonly State[] {
  return SOURCES.get(to)!;
}
