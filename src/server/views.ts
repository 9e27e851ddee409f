/**
 * From the model to the wire: the views of schemas.ts. Secret values never leave
 * through a view: secret variables of a definition and secret request params are
 * shown as ********, and the saved YAML source has them masked before it is stored.
 */
import { isMap, isScalar, isSeq, parseDocument, type Document } from "yaml";
import type { JobDefinition, TaskDefinition, Variable } from "../core/job-definition.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import { hookStatusOf } from "../core/hook-report.ts";
import type { StoredDefinition } from "../store/store.ts";
import type {
  JobDefinitionView,
  JobRequestView,
  StoredDefinitionView,
  TaskExecutionView,
} from "./schemas.ts";

export const MASK = "********";

/** Milliseconds as a Go-style duration that parseDuration reads back exactly ("1h30m", "1m0.5s"). */
export function goDuration(ms: number): string {
  if (ms === 0) return "0s";
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const rest = ms % 60_000;
  const s = rest % 1000 === 0 ? `${rest / 1000}s` : rest < 1000 ? `${rest}ms` : `${rest / 1000}s`;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${rest ? s : ""}`;
}

function iso(date: Date | undefined): string | null {
  return date ? date.toISOString() : null;
}

function variablesView(vars: Record<string, Variable>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const v of Object.values(vars))
    out[v.name] = v.secret ? { value: MASK, secret: true } : v.value;
  return out;
}

/** Sets `key` only when the value is not the YAML default (empty, false, 0, undefined). */
function put(out: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined || value === false || value === 0) return;
  if (Array.isArray(value) && value.length === 0) return;
  if (typeof value === "object" && value !== null && Object.keys(value).length === 0) return;
  out[key] = value;
}

function taskView(t: TaskDefinition): JobDefinitionView["tasks"][number] {
  const out: Record<string, unknown> = { task_type: t.taskType, method: t.method };
  put(out, "description", t.description);
  put(out, "before_script", t.beforeScript);
  put(out, "script", t.script);
  put(out, "after_script", t.afterScript);
  put(out, "environment", t.environment);
  put(out, "variables", variablesView(t.variables));
  put(out, "timeout", t.timeoutMs === undefined ? undefined : goDuration(t.timeoutMs));
  put(out, "retry", t.retry);
  put(
    out,
    "delay_between_retries",
    t.delayBetweenRetriesMs ? goDuration(t.delayBetweenRetriesMs) : 0,
  );
  put(out, "on_completed", t.onCompleted);
  put(out, "on_failed", t.onFailed);
  put(out, "on_exit_code", t.onExitCode);
  put(out, "depends_on", t.dependsOn);
  put(out, "allow_failure", t.allowFailure);
  put(out, "always_run", t.alwaysRun);
  put(out, "tags", t.tags);
  put(out, "url", t.url);
  put(out, "headers", t.headers);
  put(out, "query", t.query);
  put(out, "messaging_request_queue", t.messagingRequestQueue);
  put(out, "messaging_reply_queue", t.messagingReplyQueue);
  put(out, "function", t.function);
  put(out, "work_type", t.workType);
  if (t.artifacts) {
    const artifacts: Record<string, unknown> = { paths: t.artifacts.paths };
    if (t.artifacts.expiresAfterMs !== undefined)
      artifacts.expires_after = goDuration(t.artifacts.expiresAfterMs);
    out.artifacts = artifacts;
  }
  put(out, "dependencies", t.dependencies);
  for (const [key, value] of Object.entries(t.executorOptions)) out[key] = value;
  return out as JobDefinitionView["tasks"][number];
}

export function definitionView(def: JobDefinition): JobDefinitionView {
  const out: Record<string, unknown> = { job_type: def.jobType };
  put(out, "description", def.description);
  put(out, "timeout", def.timeoutMs === undefined ? undefined : goDuration(def.timeoutMs));
  put(out, "retry", def.retry);
  put(
    out,
    "delay_between_retries",
    def.delayBetweenRetriesMs ? goDuration(def.delayBetweenRetriesMs) : 0,
  );
  put(out, "max_concurrency", def.maxConcurrency);
  put(out, "cron_trigger", def.cronTrigger);
  put(out, "job_variables", variablesView(def.variables));
  out.tasks = def.tasks.map(taskView);
  return out as JobDefinitionView;
}

export function storedDefinitionView(stored: StoredDefinition): StoredDefinitionView {
  return {
    job_type: stored.jobType,
    version: stored.version,
    paused: stored.paused,
    created_at: stored.createdAt.toISOString(),
    updated_at: stored.updatedAt.toISOString(),
    definition: definitionView(stored.definition),
  };
}

function secretNames(def: JobDefinition): Set<string> {
  const names = new Set<string>();
  for (const vars of [def.variables, ...def.tasks.map((t) => t.variables)]) {
    for (const v of Object.values(vars)) if (v.secret) names.add(v.name);
  }
  return names;
}

/** Params with secret ones masked: those naming a secret variable, and `{value, secret: true}`. */
export function paramsView(
  def: JobDefinition,
  params: Record<string, unknown>,
): Record<string, unknown> {
  const secret = secretNames(def);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(params)) {
    const marked =
      typeof value === "object" &&
      value !== null &&
      (value as { secret?: unknown }).secret === true;
    out[name] = marked ? { value: MASK, secret: true } : secret.has(name) ? MASK : value;
  }
  return out;
}

export function taskExecutionView(t: TaskExecution): TaskExecutionView {
  return {
    id: t.id,
    job_request_id: t.jobRequestId,
    task_type: t.taskType,
    method: t.method,
    attempt: t.attempt,
    job_attempt: t.jobAttempt,
    state: t.state,
    exit_code: t.exitCode ?? null,
    error_code: t.errorCode ?? null,
    error_message: t.errorMessage ?? null,
    context: t.context,
    created_at: t.createdAt.toISOString(),
    started_at: iso(t.startedAt),
    ended_at: iso(t.endedAt),
    hook: {
      status: hookStatusOf(t.state, t.hook?.status),
      status_details: t.hook?.statusDetails ?? null,
      error_message: t.hook?.errorMessage ?? null,
      updated_at: iso(t.hook?.updatedAt),
    },
  };
}

export function jobRequestView(job: JobRequest, tasks?: TaskExecution[]): JobRequestView {
  const view: JobRequestView = {
    id: job.id,
    job_type: job.jobType,
    state: job.state,
    params: paramsView(job.definition, job.params),
    attempt: job.attempt,
    task_types: job.definition.tasks.map((t) => t.taskType),
    scheduled_at: job.scheduledAt.toISOString(),
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    ended_at: iso(job.endedAt),
    error_code: job.errorCode ?? null,
    error_message: job.errorMessage ?? null,
    submitted_by: job.submittedBy ?? null,
  };
  if (tasks) view.tasks = tasks.map(taskExecutionView);
  return view;
}

/**
 * The source text to keep for display, with the value of every secret variable
 * replaced by ******** (secrets are sealed in the stored definition, never kept in
 * plain text). Text without secret variables is kept exactly as sent.
 */
export function redactSource(source: string, def: JobDefinition): string {
  if (secretNames(def).size === 0) return source;
  const doc = parseDocument(source);
  const maskIn = (vars: unknown) => {
    if (!isMap(vars)) return;
    for (const pair of vars.items) {
      const value = pair.value;
      if (!isMap(value)) continue;
      const secret = value.get("secret", true);
      if (isScalar(secret) && secret.value === true && value.has("value"))
        value.set("value", doc.createNode(MASK));
    }
  };
  const root = doc.contents;
  if (!isMap(root)) return source;
  maskIn(root.get("job_variables", true));
  const tasks = root.get("tasks", true);
  if (isSeq(tasks)) for (const t of tasks.items) if (isMap(t)) maskIn(t.get("variables", true));
  return (doc as Document).toString();
}
