/**
 * The wire formats of remote work, in one place (SPEC sections 3, 5 and 6; seed 000
 * "Task Request" / "Task Response"): the TaskRequest colony sends to an ant or a
 * messaging worker, the TaskResponse it answers with, an ant's registration, and the
 * few frames only the `colony ant` agent speaks (output chunks, cancel, acks). Each is a
 * TypeBox schema, compiled once, giving both the runtime check and the TypeScript type.
 *
 * Keys are snake_case exactly as in the seed, so formicary's samples (the Python and
 * browser workers that echo the request with `status` set) work unchanged. Replies are
 * checked loosely where the seed is loose (`exit_code` may be a number or a string, extra
 * keys are kept) and strictly where a mistake could complete the wrong task (the id and
 * the status must be there and be strings).
 */
import { taskDefinition } from "../core/job-definition.ts";
import { randomUUID } from "node:crypto";
import { Type, type Static } from "typebox";
import { Compile } from "typebox/compile";
import type { ArtifactDownload, ExecutionRequest, ExecutionResult } from "../core/executor.ts";
import {
  METHODS,
  type Method,
  type TaskDefinition,
  type Variable,
} from "../core/job-definition.ts";

// -- TaskRequest (colony -> worker) ----------------------------------------------------

const VariableSchema = Type.Object({
  name: Type.String(),
  value: Type.Unknown(),
  secret: Type.Boolean(),
});

export const TaskRequestSchema = Type.Object(
  {
    user_id: Type.String(),
    organization_id: Type.String(),
    job_definition_id: Type.String(),
    job_request_id: Type.Number(),
    job_type: Type.String(),
    task_type: Type.String(),
    job_execution_id: Type.String(),
    task_execution_id: Type.String({ description: "The unit id; replies are matched by it" }),
    co_relation_id: Type.String({ description: "Random per send; replies may carry it instead" }),
    tags: Type.Array(Type.String()),
    platform: Type.String(),
    action: Type.String({ description: "EXECUTE (the only action sent to workers)" }),
    job_retry: Type.Number(),
    task_retry: Type.Number({ description: "Counts task retries and EXECUTING re-sends" }),
    allow_failure: Type.Boolean(),
    before_script: Type.Array(Type.String()),
    script: Type.Array(Type.String()),
    after_script: Type.Array(Type.String()),
    timeout: Type.Number({ description: "Nanoseconds (Go's time.Duration), 0 when none" }),
    variables: Type.Record(Type.String(), VariableSchema),
    executor_opts: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: true },
);
export type TaskRequest = Static<typeof TaskRequestSchema>;

// -- TaskResponse (worker -> colony) ---------------------------------------------------

/** Statuses a reply may carry. EXECUTING: not finished, send the request again later. */
export const RESPONSE_STATUSES = ["COMPLETED", "FAILED", "EXECUTING", "CANCELLED"] as const;
export type ResponseStatus = (typeof RESPONSE_STATUSES)[number];

const Context = Type.Record(Type.String(), Type.Unknown());

export const TaskResponseSchema = Type.Object(
  {
    task_execution_id: Type.Optional(Type.String()),
    co_relation_id: Type.Optional(Type.String()),
    status: Type.Enum([...RESPONSE_STATUSES]),
    job_request_id: Type.Optional(Type.Unknown()),
    job_type: Type.Optional(Type.String()),
    task_type: Type.Optional(Type.String()),
    task_retry: Type.Optional(Type.Number()),
    ant_id: Type.Optional(Type.String()),
    host: Type.Optional(Type.String()),
    exit_code: Type.Optional(Type.Union([Type.Number(), Type.String(), Type.Null()])),
    exit_message: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    error_code: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    error_message: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    failed_command: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    task_context: Type.Optional(Type.Union([Context, Type.Null()])),
    /** The seed's JavaScript messaging sample writes `taskContext`. */
    taskContext: Type.Optional(Type.Union([Context, Type.Null()])),
    job_context: Type.Optional(Type.Union([Context, Type.Null()])),
    warnings: Type.Optional(Type.Union([Type.Array(Type.Unknown()), Type.Null()])),
    cost_factor: Type.Optional(Type.Number()),
    stdout: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String()), Type.Null()])),
  },
  { additionalProperties: true },
);
export type TaskResponse = Static<typeof TaskResponseSchema>;

// -- registration (first frame on /ws/ants) --------------------------------------------

export const AGENT_PROTOCOL = "colony-ant/1";

export const RegistrationSchema = Type.Object(
  {
    ant_id: Type.String({ minLength: 1, maxLength: 200 }),
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 100 })),
    methods: Type.Array(Type.Enum([...METHODS]), { minItems: 1, maxItems: 20 }),
    max_capacity: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    /** colony agents: `colony-ant/1` (gets control frames: registered, cancel, ack). */
    protocol: Type.Optional(Type.String()),
    /** colony agents: random per agent process; a reconnect with it keeps its tasks. */
    session: Type.Optional(Type.String({ minLength: 8, maxLength: 200 })),
    /** colony agents: task_execution_ids it still holds (running, or result not acked). */
    running: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 10_000 })),
  },
  { additionalProperties: true },
);
export type Registration = Static<typeof RegistrationSchema>;

// -- agent frames (only between colony and `colony ant`) -------------------------------

/** Agent -> server: `data` (base64) is the task's output from byte `offset`. */
export const OutputFrameSchema = Type.Object(
  {
    type: Type.Literal("output"),
    task_execution_id: Type.String(),
    offset: Type.Integer({ minimum: 0 }),
    data: Type.String(),
  },
  { additionalProperties: false },
);
export type OutputFrame = Static<typeof OutputFrameSchema>;

/** Server -> agent, answering its registration: output bytes the server has per task it wants back. */
export interface RegisteredFrame {
  type: "registered";
  ant_id: string;
  resume: Record<string, number>;
}
/** Server -> agent: stop this task (cancel or timeout). */
export interface CancelFrame {
  type: "cancel";
  task_execution_id: string;
}
/** Server -> agent: the result of this task was recorded; forget it. */
export interface AckFrame {
  type: "ack";
  task_execution_id: string;
}
/**
 * Server -> agent: lines the task's process sent as job hook `logs`. The agent appends
 * them to the task's output, so that the output has one writer and its byte offsets
 * stay the agent's (a restarted server resumes from them).
 */
export interface LogFrame {
  type: "log";
  task_execution_id: string;
  /** base64 */
  data: string;
}
export type ServerFrame = RegisteredFrame | CancelFrame | AckFrame | LogFrame;

const ServerFrameSchema = Type.Union([
  Type.Object({
    type: Type.Literal("registered"),
    ant_id: Type.String(),
    resume: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
  }),
  Type.Object({ type: Type.Literal("cancel"), task_execution_id: Type.String() }),
  Type.Object({ type: Type.Literal("ack"), task_execution_id: Type.String() }),
  Type.Object({
    type: Type.Literal("log"),
    task_execution_id: Type.String(),
    data: Type.String(),
  }),
]);

const checkRequest = Compile(TaskRequestSchema);
const checkResponse = Compile(TaskResponseSchema);
const checkRegistration = Compile(RegistrationSchema);
const checkOutput = Compile(OutputFrameSchema);
const checkServerFrame = Compile(ServerFrameSchema);

/** A parse result: the value, or one line saying what is wrong with it. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function firstError(
  errors: { instancePath: string; message: string }[],
  what: string,
): { ok: false; error: string } {
  const e = errors[0];
  const where = e?.instancePath ? e.instancePath.replace(/^\//, "").replace(/\//g, ".") : "";
  return { ok: false, error: `${what}: ${where ? `${where} ` : ""}${e?.message ?? "invalid"}` };
}

function parseJson(text: string, what: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, error: `${what} is not JSON: ${(error as Error).message}` };
  }
}

function check<T>(
  value: unknown,
  validator: { Check(v: unknown): boolean; Errors(v: unknown): unknown[] },
  what: string,
): Parsed<T> {
  if (validator.Check(value)) return { ok: true, value: value as T };
  return firstError(validator.Errors(value) as { instancePath: string; message: string }[], what);
}

/** A frame from an ant or a messaging worker, as JSON text. */
export function parseJsonFrame(text: string, what = "the frame"): Parsed<unknown> {
  return parseJson(text, what);
}

export function parseRegistration(value: unknown): Parsed<Registration> {
  return check(value, checkRegistration, "registration");
}

/** A TaskResponse: needs `status` and `task_execution_id` or `co_relation_id`. */
export function parseTaskResponse(value: unknown): Parsed<TaskResponse> {
  const r = check<TaskResponse>(value, checkResponse, "task response");
  if (!r.ok) return r;
  if (r.value.task_execution_id === undefined && r.value.co_relation_id === undefined) {
    return { ok: false, error: "task response: needs task_execution_id (or co_relation_id)" };
  }
  return r;
}

export function parseTaskRequest(value: unknown): Parsed<TaskRequest> {
  return check(value, checkRequest, "task request");
}

export function parseOutputFrame(value: unknown): Parsed<OutputFrame> {
  return check(value, checkOutput, "output frame");
}

export function parseServerFrame(value: unknown): Parsed<ServerFrame> {
  return check(value, checkServerFrame, "server frame");
}

// -- building and reading --------------------------------------------------------------

/** Fields of the TaskRequest not in the ExecutionRequest. */
export interface RequestExtras {
  /** The send count: task attempt + EXECUTING re-sends. */
  taskRetry?: number;
}

/**
 * The TaskRequest of an execution. `executor_opts` carries what a full agent needs to run
 * the task like the built-in ant would (method, environment, url, headers, query, the
 * task's own variable names for an HTTP body, container options); a small worker can
 * ignore it.
 */
export function buildTaskRequest(
  request: ExecutionRequest,
  extras: RequestExtras = {},
): TaskRequest {
  const task = request.task;
  const jobRequestId = request.jobRequestId ?? 0;
  const jobAttempt = request.jobAttempt ?? 0;
  const attempt = request.attempt ?? 0;
  const opts: Record<string, unknown> = {
    ...task.executorOptions,
    name: `colony-${jobRequestId}-${task.taskType}-${jobAttempt}-${attempt}`,
    method: request.method,
    headers: task.headers,
    environment: request.env,
  };
  if (task.url !== undefined) opts.url = task.url;
  if (Object.keys(task.query).length > 0) opts.query = task.query;
  if (Object.keys(task.variables).length > 0) opts.task_variables = Object.keys(task.variables);
  if (task.messagingRequestQueue !== undefined) {
    opts.messaging_request_queue = task.messagingRequestQueue;
  }
  if (task.messagingReplyQueue !== undefined) opts.messaging_reply_queue = task.messagingReplyQueue;
  if (request.movesArtifacts) {
    // A `colony ant` agent moves these itself (docs/ants.md, "Artifacts").
    if (task.artifacts && task.artifacts.paths.length > 0) {
      opts.artifacts = { paths: task.artifacts.paths };
    }
    if (request.artifactDownloads && request.artifactDownloads.length > 0) {
      opts.dependency_artifacts = request.artifactDownloads;
    }
  }
  return {
    user_id: "",
    organization_id: "",
    job_definition_id: request.jobType ?? "",
    job_request_id: jobRequestId,
    job_type: request.jobType ?? "",
    task_type: task.taskType,
    job_execution_id: `${jobRequestId}-${jobAttempt}`,
    task_execution_id: request.executionId,
    co_relation_id: randomUUID(),
    tags: task.tags,
    platform: process.platform,
    action: "EXECUTE",
    job_retry: jobAttempt,
    task_retry: extras.taskRetry ?? attempt,
    allow_failure: task.allowFailure,
    before_script: task.beforeScript,
    script: task.script,
    after_script: task.afterScript,
    timeout: (task.timeoutMs ?? 0) * 1_000_000,
    variables: request.variables,
    executor_opts: opts,
  };
}

/**
 * The TaskRequest of an execution as the JSON text sent on the wire: the same text as
 * `JSON.stringify(buildTaskRequest(request, extras))`, and its co_relation_id.
 *
 * Every remote task is sent as one of these, and JSON.stringify of the whole request was
 * ~3 µs of the ~35 µs of server CPU a dispatched task costs (bench/README.md, ants). The
 * parts that depend only on the task and its method (its scripts, tags, headers, options:
 * most of the text) are kept as text per task object (the same task of many jobs: the
 * SQLite store shares one frozen definition between them, and a task with no
 * `{{.Name}}` is not copied to be rendered, see core/template.ts); the per-execution
 * values are stringified around them. The parts of each task are checked once against
 * buildTaskRequest: a task whose text they do not reproduce (executor options that reuse
 * a reserved key, say) keeps the plain path, as does a task object that is not frozen
 * (it could change).
 */
export function encodeTaskRequest(
  request: ExecutionRequest,
  extras: RequestExtras = {},
): { text: string; correlationId: string } {
  const correlationId = randomUUID();
  const parts = requestParts(request);
  const text = parts
    ? joinParts(parts, request, extras, correlationId)
    : JSON.stringify({ ...buildTaskRequest(request, extras), co_relation_id: correlationId });
  return { text, correlationId };
}

/** The text of a TaskRequest around its per-execution values (see encodeTaskRequest). */
interface RequestParts {
  /** `,"task_type":…,"job_execution_id":"` */
  taskType: string;
  /** From `,"tags":` through `"job_retry":` */
  routing: string;
  /** From `,"allow_failure":` through `"variables":` */
  work: string;
  /** `,"executor_opts":{` with the task's own options, through `"name":` */
  optsHead: string;
  /** From `,"method":` through `"environment":` */
  optsMid: string;
  /** The options after `environment`, and the closing braces. */
  optsTail: string;
}

/** Parts by task object, then by method and artifact moving; null: the plain path. */
const partsByTask = new WeakMap<TaskDefinition, Map<string, RequestParts | null>>();

function requestParts(request: ExecutionRequest): RequestParts | undefined {
  // Only a frozen task is the same task the next time it is seen (the SQLite store's
  // shared definitions are frozen); others keep the plain path.
  if (!Object.isFrozen(request.task)) return undefined;
  if (request.movesArtifacts && request.artifactDownloads && request.artifactDownloads.length > 0) {
    return undefined; // per-request download URLs: not worth parts of their own
  }
  if (request.variables === undefined || request.env === undefined) return undefined;
  const key = request.movesArtifacts ? `${request.method}+a` : request.method;
  let known = partsByTask.get(request.task);
  if (!known) partsByTask.set(request.task, (known = new Map()));
  let parts = known.get(key);
  if (parts === undefined) {
    parts = checkedParts(request);
    known.set(key, parts);
  }
  return parts ?? undefined;
}

/** The parts of this request's task, if they give exactly buildTaskRequest's text. */
function checkedParts(request: ExecutionRequest): RequestParts | null {
  const task = request.task;
  const options = task.executorOptions;
  for (const key of Object.keys(options)) if (RESERVED_OPTS.has(key)) return null;
  const own = JSON.stringify(options).slice(1, -1);
  let optsTail = "";
  if (task.url !== undefined) optsTail += `,"url":${JSON.stringify(task.url)}`;
  if (Object.keys(task.query).length > 0) optsTail += `,"query":${JSON.stringify(task.query)}`;
  if (Object.keys(task.variables).length > 0) {
    optsTail += `,"task_variables":${JSON.stringify(Object.keys(task.variables))}`;
  }
  if (task.messagingRequestQueue !== undefined) {
    optsTail += `,"messaging_request_queue":${JSON.stringify(task.messagingRequestQueue)}`;
  }
  if (task.messagingReplyQueue !== undefined) {
    optsTail += `,"messaging_reply_queue":${JSON.stringify(task.messagingReplyQueue)}`;
  }
  if (request.movesArtifacts && task.artifacts && task.artifacts.paths.length > 0) {
    optsTail += `,"artifacts":${JSON.stringify({ paths: task.artifacts.paths })}`;
  }
  const parts: RequestParts = {
    taskType: `,"task_type":${JSON.stringify(task.taskType)},"job_execution_id":"`,
    routing:
      `,"tags":${JSON.stringify(task.tags)},"platform":${JSON.stringify(process.platform)}` +
      `,"action":"EXECUTE","job_retry":`,
    work:
      `,"allow_failure":${JSON.stringify(task.allowFailure)}` +
      `,"before_script":${JSON.stringify(task.beforeScript)}` +
      `,"script":${JSON.stringify(task.script)}` +
      `,"after_script":${JSON.stringify(task.afterScript)}` +
      `,"timeout":${JSON.stringify((task.timeoutMs ?? 0) * 1_000_000)},"variables":`,
    optsHead: `,"executor_opts":{${own}${own ? "," : ""}"name":`,
    optsMid: `,"method":${JSON.stringify(request.method)},"headers":${JSON.stringify(task.headers)},"environment":`,
    optsTail: `${optsTail}}}`,
  };
  const probe = "00000000-0000-4000-8000-000000000000";
  const expected = JSON.stringify({ ...buildTaskRequest(request), co_relation_id: probe });
  return joinParts(parts, request, {}, probe) === expected ? parts : null;
}

function joinParts(
  parts: RequestParts,
  request: ExecutionRequest,
  extras: RequestExtras,
  correlationId: string,
): string {
  const jobRequestId = request.jobRequestId ?? 0;
  const jobAttempt = request.jobAttempt ?? 0;
  const attempt = request.attempt ?? 0;
  const taskRetry = extras.taskRetry ?? attempt;
  const jobType = JSON.stringify(request.jobType ?? "");
  return (
    `{"user_id":"","organization_id":"","job_definition_id":${jobType}` +
    `,"job_request_id":${JSON.stringify(jobRequestId)},"job_type":${jobType}` +
    `${parts.taskType}${jobRequestId}-${jobAttempt}"` +
    `,"task_execution_id":${JSON.stringify(request.executionId)}` +
    `,"co_relation_id":"${correlationId}"${parts.routing}${JSON.stringify(jobAttempt)}` +
    `,"task_retry":${JSON.stringify(taskRetry)}${parts.work}${JSON.stringify(request.variables)}` +
    `${parts.optsHead}${JSON.stringify(`colony-${jobRequestId}-${request.task.taskType}-${jobAttempt}-${attempt}`)}` +
    `${parts.optsMid}${JSON.stringify(request.env)}${parts.optsTail}`
  );
}

export { taskDefinition };

const RESERVED_OPTS = new Set([
  "name",
  "method",
  "headers",
  "environment",
  "url",
  "query",
  "task_variables",
  "messaging_request_queue",
  "messaging_reply_queue",
  "artifacts",
  "dependency_artifacts",
]);

/** executor_opts.artifacts: the paths a task's agent uploads after it (strings only). */
function artifactPaths(value: unknown): string[] {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [];
  const paths = (value as { paths?: unknown }).paths;
  return Array.isArray(paths) ? paths.filter((p): p is string => typeof p === "string") : [];
}

/** executor_opts.dependency_artifacts: well-formed entries only. */
function artifactDownloads(value: unknown): ArtifactDownload[] {
  if (!Array.isArray(value)) return [];
  const out: ArtifactDownload[] = [];
  for (const v of value as unknown[]) {
    if (!v || typeof v !== "object") continue;
    const { name, url, executable } = v as Record<string, unknown>;
    if (typeof name === "string" && typeof url === "string" && /^https?:\/\//.test(url)) {
      out.push({ name, url, executable: executable === true });
    }
  }
  return out;
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) out[k] = typeof v === "string" ? v : String(v);
  }
  return out;
}

/**
 * The ExecutionRequest an agent runs for a TaskRequest (the inverse of buildTaskRequest),
 * with its output under `unitDir`.
 */
export function executionRequestOf(request: TaskRequest, unitDir: string): ExecutionRequest {
  const opts = request.executor_opts;
  const method = (
    typeof opts.method === "string" && (METHODS as readonly string[]).includes(opts.method)
      ? opts.method
      : "WEBSOCKET"
  ) as Method;
  const own = Array.isArray(opts.task_variables) ? (opts.task_variables as unknown[]) : [];
  const taskVariables: Record<string, Variable> = {};
  for (const name of own) {
    if (typeof name === "string" && request.variables[name]) {
      taskVariables[name] = request.variables[name];
    }
  }
  const executorOptions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) if (!RESERVED_OPTS.has(k)) executorOptions[k] = v;
  const timeoutMs = request.timeout > 0 ? Math.ceil(request.timeout / 1_000_000) : undefined;
  const task = taskDefinition(request.task_type, {
    method,
    beforeScript: request.before_script,
    script: request.script,
    afterScript: request.after_script,
    environment: stringRecord(opts.environment),
    variables: taskVariables,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    allowFailure: request.allow_failure,
    tags: request.tags,
    ...(typeof opts.url === "string" ? { url: opts.url } : {}),
    headers: stringRecord(opts.headers),
    query: stringRecord(opts.query),
    executorOptions,
  });
  const paths = artifactPaths(opts.artifacts);
  if (paths.length > 0) task.artifacts = { paths };
  const downloads = artifactDownloads(opts.dependency_artifacts);
  return {
    executionId: request.task_execution_id,
    method,
    task,
    env: stringRecord(opts.environment),
    variables: request.variables,
    unitDir,
    jobRequestId: request.job_request_id,
    jobType: request.job_type,
    jobAttempt: request.job_retry,
    attempt: request.task_retry,
    ...(downloads.length > 0 ? { artifactDownloads: downloads } : {}),
  };
}

function exitCodeOf(value: TaskResponse["exit_code"]): number | null {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/.test(value.trim())) return Number(value.trim());
  return null;
}

function contextOf(response: TaskResponse): Record<string, unknown> | undefined {
  // Most replies carry none: no three spreads and a key count for them.
  if (!response.job_context && !response.taskContext && !response.task_context) return undefined;
  const context = {
    ...(response.job_context ?? {}),
    ...(response.taskContext ?? {}),
    ...(response.task_context ?? {}),
  };
  return Object.keys(context).length > 0 ? context : undefined;
}

/** The executor result of a final reply (COMPLETED, FAILED, CANCELLED). */
export function resultOf(response: TaskResponse, antId: string): ExecutionResult {
  const exitCode = exitCodeOf(response.exit_code);
  const context = contextOf(response);
  const base = context ? { context } : {};
  switch (response.status) {
    case "COMPLETED":
      return { exitCode: exitCode ?? 0, killed: false, status: "COMPLETED", ...base };
    case "CANCELLED":
      return {
        exitCode,
        killed: true,
        error: response.error_message || `cancelled by ant ${antId}`,
        ...base,
      };
    default:
      return {
        exitCode,
        killed: false,
        status: "FAILED",
        errorCode: response.error_code || "COLONY_WORKER_FAILED",
        error:
          response.error_message ||
          response.exit_message ||
          `ant ${antId} reported FAILED${exitCode === null ? "" : ` (exit code ${exitCode})`}`,
        ...base,
      };
  }
}

/** What a reply's `stdout` says, as text for the output file. */
export function stdoutOf(response: TaskResponse): string {
  const out = response.stdout;
  if (typeof out === "string") return out === "" || out.endsWith("\n") ? out : `${out}\n`;
  if (Array.isArray(out)) return out.map((l) => `${l}\n`).join("");
  return "";
}

/** The TaskResponse a worker sends for a request: the request's ids with `status` set. */
export function responseFor(
  request: TaskRequest,
  reply: Partial<TaskResponse> & { status: ResponseStatus },
): TaskResponse {
  return {
    job_request_id: request.job_request_id,
    job_type: request.job_type,
    task_type: request.task_type,
    task_execution_id: request.task_execution_id,
    co_relation_id: request.co_relation_id,
    task_retry: request.task_retry,
    ...reply,
  };
}

export type { Method };
