/**
 * The REST API's wire formats, in one place: every body, query and response of /api is
 * a TypeBox schema here. The same schema validates requests, shapes responses (Fastify
 * serializes with it, so nothing else leaks out) and feeds /api/openapi.json; the
 * `Static` types are what views.ts produces and the typed client returns.
 *
 * JSON keys are snake_case, as in the YAML of a job definition.
 */
import { Type, type Static, type TSchema } from "typebox";
import { STATES } from "../core/states.ts";

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ description: "ISO 8601 time (UTC)" });
const Params = Type.Record(Type.String(), Type.Unknown(), {
  description: "Request parameters: {{.Name}} in the job's scripts reads them",
});

export const StateSchema = Type.Enum([...STATES], {
  description: "PENDING, READY, STARTED, EXECUTING, PAUSED; final: COMPLETED, FAILED, CANCELLED",
});

// -- errors ---------------------------------------------------------------------------

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: "Stable code, e.g. COLONY_UNKNOWN_JOB_TYPE" }),
      message: Type.String({ description: "What happened and what to do next" }),
      details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  },
  { description: "Every error: {error: {code, message}}" },
);
export type ErrorView = Static<typeof ErrorSchema>;

const ERROR_WHEN: Record<number, string> = {
  400: "Invalid input (the message names the field; definitions give line and column)",
  401: "No token, or an unknown or revoked one",
  403: "The token's role is too low for this route",
  404: "No such resource",
  409: "Not possible in the resource's current state",
  413: "The body is larger than the server's limit",
  415: "Unsupported Content-Type",
};

/** Response schemas for the given error statuses (every authenticated route has 401/403). */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of [401, 403, ...statuses]) {
    out[status] = Type.Object(ErrorSchema.properties, {
      description: ERROR_WHEN[status] ?? "Error",
    });
  }
  return out;
}

// -- job definitions ------------------------------------------------------------------

export const TaskDefinitionSchema = Type.Object(
  {
    task_type: Type.String(),
    method: Type.String(),
    description: Type.Optional(Type.String()),
    before_script: Type.Optional(Type.Array(Type.String())),
    script: Type.Optional(Type.Array(Type.String())),
    after_script: Type.Optional(Type.Array(Type.String())),
    environment: Type.Optional(Type.Record(Type.String(), Type.String())),
    variables: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    timeout: Type.Optional(Type.String()),
    retry: Type.Optional(Type.Integer()),
    delay_between_retries: Type.Optional(Type.String()),
    on_completed: Type.Optional(Type.Array(Type.String())),
    on_failed: Type.Optional(Type.Array(Type.String())),
    on_exit_code: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    depends_on: Type.Optional(Type.Array(Type.String())),
    allow_failure: Type.Optional(Type.Boolean()),
    always_run: Type.Optional(Type.Boolean()),
    tags: Type.Optional(Type.Array(Type.String())),
    url: Type.Optional(Type.String()),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  {
    // Executor options (container, node_selector...) and rarer keys pass through.
    additionalProperties: true,
    description: "A task as written in YAML; secret variable values are shown as ********",
  },
);

export const JobDefinitionSchema = Type.Object(
  {
    job_type: Type.String(),
    description: Type.Optional(Type.String()),
    timeout: Type.Optional(Type.String({ description: "Go-style duration" })),
    retry: Type.Optional(Type.Integer()),
    delay_between_retries: Type.Optional(Type.String()),
    max_concurrency: Type.Optional(Type.Integer()),
    cron_trigger: Type.Optional(Type.String()),
    job_variables: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    tasks: Type.Array(TaskDefinitionSchema),
  },
  { description: "A job definition with the keys of its YAML (SPEC section 2)" },
);
export type JobDefinitionView = Static<typeof JobDefinitionSchema>;

export const StoredDefinitionSchema = Type.Object({
  job_type: Type.String(),
  version: Type.Integer({ description: "1 on first save, + 1 on every save after" }),
  paused: Type.Boolean({ description: "A paused type refuses new submissions" }),
  created_at: Timestamp,
  updated_at: Timestamp,
  definition: JobDefinitionSchema,
});
export type StoredDefinitionView = Static<typeof StoredDefinitionSchema>;

export const DefinitionListSchema = Type.Object({ items: Type.Array(StoredDefinitionSchema) });
export type DefinitionListView = Static<typeof DefinitionListSchema>;

/** POST /api/job-definitions with a JSON body: the definition itself, or its YAML text. */
export const DefinitionJsonBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    "The definition as a JSON object with its YAML keys, or {yaml: '<YAML text>'}. " +
    "YAML can also be sent as the raw body with Content-Type application/yaml, text/yaml or text/plain.",
});

export const JobTypeParams = Type.Object({
  job_type: Type.String({ pattern: "^[A-Za-z0-9._-]+$", description: "The job type" }),
});

export const DefinitionGetQuery = Type.Object(
  {
    format: Type.Optional(
      Type.Union([Type.Literal("json"), Type.Literal("yaml")], {
        description: "yaml: the source text as saved (secret values masked)",
      }),
    ),
  },
  { additionalProperties: false },
);

// -- job requests and task executions --------------------------------------------------

export const TaskExecutionSchema = Type.Object({
  id: Type.String({ description: "The execution's unit id (its output is a unit)" }),
  job_request_id: Type.Integer(),
  task_type: Type.String(),
  method: Type.String(),
  attempt: Type.Integer({ description: "0 for the first try; task retries count up" }),
  job_attempt: Type.Integer({ description: "The job attempt this execution belongs to" }),
  state: StateSchema,
  exit_code: Nullable(Type.Integer()),
  error_code: Nullable(Type.String()),
  error_message: Nullable(Type.String()),
  context: Type.Record(Type.String(), Type.Unknown(), {
    description: "Outputs (::set-output, worker task_context) for later tasks",
  }),
  created_at: Timestamp,
  started_at: Nullable(Timestamp),
  ended_at: Nullable(Timestamp),
  hook: Type.Optional(
    Type.Object(
      {
        status: Type.String({ description: "QUEUED, STARTING, RUNNING, SUCCESS or ERROR" }),
        status_details: Type.Unknown({ description: "What the process last sent, or null" }),
        error_message: Nullable(Type.String()),
        updated_at: Nullable(Timestamp),
      },
      { description: "The job hook's view of the task: its process's own reports (docs/hook.md)" },
    ),
  ),
});
export type TaskExecutionView = Static<typeof TaskExecutionSchema>;

export const JobRequestSchema = Type.Object({
  id: Type.Integer(),
  job_type: Type.String(),
  state: StateSchema,
  params: Type.Record(Type.String(), Type.Unknown(), {
    description: "Request parameters (secret ones shown as ********)",
  }),
  attempt: Type.Integer({ description: "0 for the first run; retries and restarts count up" }),
  task_types: Type.Array(Type.String(), {
    description: "The definition's tasks in order (the first is the entry point)",
  }),
  scheduled_at: Timestamp,
  created_at: Timestamp,
  started_at: Nullable(Timestamp),
  ended_at: Nullable(Timestamp),
  error_code: Nullable(Type.String()),
  error_message: Nullable(Type.String()),
  submitted_by: Nullable(Type.String()),
  tasks: Type.Optional(
    Type.Array(TaskExecutionSchema, { description: "Every execution of every attempt" }),
  ),
});
export type JobRequestView = Static<typeof JobRequestSchema>;

export const JobRequestPageSchema = Type.Object({
  items: Type.Array(JobRequestSchema),
  next_cursor: Nullable(
    Type.String({ description: "Pass as `cursor` for the next (older) page; null on the last" }),
  ),
});
export type JobRequestPageView = Static<typeof JobRequestPageSchema>;

export const SubmitBody = Type.Object(
  {
    job_type: Type.Optional(
      Type.String({ description: "Submit the saved definition of this type" }),
    ),
    definition: Type.Optional(
      Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())], {
        description: "Or an inline definition (YAML text or a JSON object); it is not saved",
      }),
    ),
    params: Type.Optional(Params),
    scheduled_at: Type.Optional(
      Type.String({ description: "ISO 8601 time to run at (default now)" }),
    ),
  },
  { additionalProperties: false, description: "Exactly one of job_type and definition" },
);
export type SubmitBodyView = Static<typeof SubmitBody>;

export const JobRequestListQuery = Type.Object(
  {
    state: Type.Optional(
      Type.String({ description: "A state or comma-separated states, e.g. FAILED,CANCELLED" }),
    ),
    job_type: Type.Optional(Type.String()),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String({ description: "next_cursor of the previous page" })),
  },
  { additionalProperties: false },
);

export const JobRequestIdParams = Type.Object({
  // A string pattern, not Integer: conversion would quietly read "1.5" as 1.
  id: Type.String({
    pattern: "^[1-9][0-9]{0,15}$",
    description: "Job request id (a positive integer)",
  }),
});

// -- task output ------------------------------------------------------------------------

export const OutputQuery = Type.Object(
  {
    offset: Type.Optional(
      Type.Integer({ minimum: 0, description: "Start at this byte of the output (default 0)" }),
    ),
    tail: Type.Optional(
      Type.Boolean({ description: "1: only output written from now on (ignores offset)" }),
    ),
    follow: Type.Optional(
      Type.Boolean({
        description: "1: keep the response open and stream new output until the task ends",
      }),
    ),
  },
  { additionalProperties: false },
);

export const TaskOutputQuery = Type.Object(
  {
    ...OutputQuery.properties,
    execution: Type.Optional(
      Type.String({
        description: "A unit id of this task (default: its latest execution in the latest attempt)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const TaskOutputParams = Type.Object({
  id: JobRequestIdParams.properties.id,
  task_type: Type.String(),
});

export const ExecutionIdParams = Type.Object({
  execution_id: Type.String({ description: "A task execution's unit id" }),
});

export const OutputResponse = {
  description: "The output bytes (text/plain), secrets masked",
  content: { "text/plain": { schema: Type.String() } },
};

// -- units ----------------------------------------------------------------------------
// One unit model (src/units/unit-model.ts): work units and task executions alike.

export const UNIT_STATES = ["Pending", "Running", "Succeeded", "Failed", "Canceled"] as const;

export const UnitSchema = Type.Object({
  id: Type.String({ description: "8-character unit id" }),
  kind: Type.Enum(["work", "task"], {
    description:
      "work: a unit of a work type (control socket, POST /api/units); task: a task execution of a job",
  }),
  state: Type.Enum([...UNIT_STATES], { description: "receptor's words for the state" }),
  state_code: Type.Integer({
    minimum: 0,
    maximum: 4,
    description: "receptor's number for the state (Pending 0 ... Canceled 4)",
  }),
  detail: Type.String({ description: "e.g. 'Running: PID 4242', 'exit status 0'" }),
  work_type: Type.String({
    description: "The work type ('remote' for work sent to a peer); for tasks, their method",
  }),
  node: Type.String({ description: "The node that runs it" }),
  stdout_size: Type.Integer({ description: "Bytes of output so far" }),
  extra_data: Type.Unknown({
    description:
      "receptor's ExtraData (remote units: RemoteNode, RemoteUnitID...; secrets removed)",
  }),
  created_at: Nullable(Timestamp),
  updated_at: Nullable(Timestamp),
  job_request_id: Nullable(Type.Integer()),
  task_type: Nullable(Type.String()),
});
export type UnitView = Static<typeof UnitSchema>;

export const UnitPageSchema = Type.Object({
  items: Type.Array(UnitSchema),
  next_cursor: Nullable(Type.String()),
});
export type UnitPageView = Static<typeof UnitPageSchema>;

export const UnitListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String()),
    kind: Type.Optional(Type.Enum(["work", "task"], { description: "Only this kind" })),
  },
  { additionalProperties: false },
);

export const UnitIdParams = Type.Object({ id: Type.String({ description: "Unit id" }) });

const SubmitFields = {
  work_type: Type.String({ minLength: 1, description: "A work type of the target node" }),
  node: Type.Optional(
    Type.String({ description: "Run it on this peer node (default: this node)" }),
  ),
  ttl: Type.Optional(
    Type.String({ description: "Remote work: fail unless it starts within this duration" }),
  ),
  sign_work: Type.Optional(Type.Boolean({ description: "Remote work: sign it for the peer" })),
  origin: Type.Optional(
    Type.String({
      maxLength: 300,
      description: "Idempotency key: a second submit with it answers the first unit",
    }),
  ),
};

export const UnitSubmitBody = Type.Object(
  {
    ...SubmitFields,
    params: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description:
          "Runtime params ('params' is appended to the command's; secret_* are never shown)",
      }),
    ),
    stdin: Type.Optional(Type.String({ description: "The payload (UTF-8 text)" })),
  },
  { additionalProperties: false },
);
export type UnitSubmitBodyView = Static<typeof UnitSubmitBody>;

export const UnitSubmitQuery = Type.Object(
  {
    ...Object.fromEntries(
      Object.entries(SubmitFields).map(([k, v]) => [k, k === "work_type" ? Type.Optional(v) : v]),
    ),
    params: Type.Optional(Type.String({ description: "Runtime params as a JSON object" })),
  },
  { additionalProperties: false },
);

export const UnitSubmitResponse = Type.Object({
  ...UnitSchema.properties,
  result: Type.String({ description: "'Job Started', or 'Job Submitted' while a peer is down" }),
});

export const UnitStdoutQuery = Type.Object(
  {
    offset: Type.Optional(Type.Integer({ minimum: 0, description: "Start at this byte" })),
    follow: Type.Optional(
      Type.Boolean({ description: "Stay open until the unit ends (as `work results`)" }),
    ),
  },
  { additionalProperties: false },
);

export const UnitReleaseQuery = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({ description: "Delete here even when the peer cannot be reached" }),
    ),
  },
  { additionalProperties: false },
);

export const UnitActionResponse = Type.Object({
  unit_id: Type.String(),
  result: Type.Enum(["cancelled", "cancel pending", "released", "release pending"]),
});

export const WorkTypeSchema = Type.Object({
  work_type: Type.String(),
  command: Type.String(),
  params: Type.String(),
  allow_runtime_params: Type.Boolean(),
  verify_signature: Type.Boolean(),
  description: Nullable(Type.String()),
});
export type WorkTypeView = Static<typeof WorkTypeSchema>;

export const WorkTypeListSchema = Type.Object({
  node_id: Type.String(),
  items: Type.Array(WorkTypeSchema),
  peers: Type.Array(Type.String(), { description: "Peer node ids work can be sent to" }),
});
