/**
 * The job definition model (SPEC section 2, seed 000). The YAML parser
 * (definition-parser.ts) produces these; the engine only ever sees validated values.
 * Durations are milliseconds; YAML snake_case keys become camelCase fields.
 */
import type { SourcePosition } from "./errors.ts";

export const METHODS = [
  "SHELL",
  "HTTP_GET",
  "HTTP_POST_FORM",
  "HTTP_POST_JSON",
  "HTTP_PUT_FORM",
  "HTTP_PUT_JSON",
  "HTTP_DELETE",
  "WEBSOCKET",
  "DOCKER",
  "KUBERNETES",
  "MESSAGING",
  "FUNCTION",
  "WORK",
] as const;

export type Method = (typeof METHODS)[number];

/** Actions an `on_exit_code` entry may name instead of a task. */
export const EXIT_ACTIONS = ["COMPLETED", "FAILED", "EXECUTING"] as const;
export type ExitAction = (typeof EXIT_ACTIONS)[number];

/** A variable as the TaskRequest carries it: `{name, value, secret}`. */
export interface Variable {
  name: string;
  value: unknown;
  secret: boolean;
}

export interface TaskDefinition {
  taskType: string;
  method: Method;
  description?: string;
  /** Shell-ish methods (SHELL, DOCKER, KUBERNETES). */
  beforeScript: string[];
  script: string[];
  afterScript: string[];
  environment: Record<string, string>;
  variables: Record<string, Variable>;
  timeoutMs?: number;
  retry: number;
  delayBetweenRetriesMs: number;
  /** Successors by outcome. Lists run in parallel. */
  onCompleted: string[];
  onFailed: string[];
  /** exit code (as a string) -> task names or one action. */
  onExitCode: Record<string, string[] | ExitAction>;
  dependsOn: string[];
  allowFailure: boolean;
  alwaysRun: boolean;
  /** Ant routing: an ant qualifies if it has the method and every tag. */
  tags: string[];
  /** HTTP_* methods. */
  url?: string;
  headers: Record<string, string>;
  query: Record<string, string>;
  /** MESSAGING. */
  messagingRequestQueue?: string;
  messagingReplyQueue?: string;
  /** FUNCTION: the registered function's name. WORK: the configured work type. */
  function?: string;
  workType?: string;
  /** Artifacts: files to keep after the task; tasks whose artifacts to fetch before it. */
  artifacts?: { paths: string[]; expiresAfterMs?: number };
  dependencies: string[];
  /**
   * Container and pod options (DOCKER, KUBERNETES) kept with their YAML keys: the
   * container executors validate and map them (seed 000: container, services,
   * privileged, affinity, node_selector...).
   */
  executorOptions: Record<string, unknown>;
  /** Where the task's mapping starts in its source, for later error messages. */
  position?: SourcePosition;
}

export interface JobDefinition {
  jobType: string;
  description?: string;
  timeoutMs?: number;
  retry: number;
  delayBetweenRetriesMs: number;
  maxConcurrency?: number;
  cronTrigger?: string;
  variables: Record<string, Variable>;
  /** In source order; the first task is the entry point. */
  tasks: TaskDefinition[];
}

/** A TaskDefinition with every field at its default (the parser's defaults), `parts` over it. */
export function taskDefinition(
  taskType: string,
  parts: Partial<TaskDefinition> = {},
): TaskDefinition {
  return {
    taskType,
    method: "SHELL",
    beforeScript: [],
    script: [],
    afterScript: [],
    environment: {},
    variables: {},
    retry: 0,
    delayBetweenRetriesMs: 0,
    onCompleted: [],
    onFailed: [],
    onExitCode: {},
    dependsOn: [],
    allowFailure: false,
    alwaysRun: false,
    tags: [],
    headers: {},
    query: {},
    dependencies: [],
    executorOptions: {},
    ...parts,
  };
}

/** Each job's tasks by task type, built once per task list (a scan per lookup was linear). */
const byTaskType = new WeakMap<readonly TaskDefinition[], Map<string, TaskDefinition>>();

export function taskByType(def: JobDefinition, taskType: string): TaskDefinition | undefined {
  // A few tasks (most jobs): a scan costs less than the index.
  if (def.tasks.length <= 8) return def.tasks.find((t) => t.taskType === taskType);
  let index = byTaskType.get(def.tasks);
  if (!index) {
    index = new Map();
    // The first of a type wins, as a scan would find it (the parser refuses duplicates).
    for (const t of def.tasks) if (!index.has(t.taskType)) index.set(t.taskType, t);
    byTaskType.set(def.tasks, index);
  }
  return index.get(taskType);
}

/**
 * A task's successors: its on_completed, on_failed and on_exit_code tasks, and the tasks
 * whose depends_on names it (`dependents`, in the job's order, gathered by the caller
 * once for the whole job: a scan per task was quadratic in the job's size).
 */
export function successorsWith(
  task: TaskDefinition,
  dependents: readonly TaskDefinition[],
): string[] {
  const out = new Set<string>([...task.onCompleted, ...task.onFailed]);
  for (const target of Object.values(task.onExitCode)) {
    if (Array.isArray(target)) for (const t of target) out.add(t);
  }
  for (const other of dependents) out.add(other.taskType);
  return [...out];
}
