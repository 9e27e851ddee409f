/**
 * `{{.Name}}` substitution (Go template style, as formicary's definitions write it) in a
 * task's strings just before it runs. Values come from request params, job variables,
 * task variables and earlier tasks' `::set-output` lines (the engine merges them).
 * Supported actions: `{{.Name}}`, `{{ .Name }}`, `{{.Obj.field}}` and string literals
 * (`{{"{{"}}` writes a literal `{{`). Anything else is refused rather than passed through.
 */
import { ColonyError } from "./errors.ts";
import type { TaskDefinition } from "./job-definition.ts";

export const TEMPLATE_UNKNOWN_VARIABLE = "COLONY_TEMPLATE_UNKNOWN_VARIABLE";
export const TEMPLATE_SYNTAX = "COLONY_TEMPLATE_SYNTAX";

const SOURCES =
  "request params, job_variables, the task's variables and earlier tasks' ::set-output lines";
const ACTION = /\{\{\s*("(?:[^"\\]|\\.)*"|`[^`]*`|.*?)\s*\}\}/gs;

export function renderTemplate(
  text: string,
  values: Record<string, unknown>,
  field?: string,
): string {
  if (!text.includes("{{")) return text;
  const where = field ? ` in ${field}` : "";
  let out = "";
  let last = 0;
  ACTION.lastIndex = 0;
  for (let m = ACTION.exec(text); m !== null; m = ACTION.exec(text)) {
    out += checkText(text.slice(last, m.index), field) + renderAction(m[1] ?? "", values, where);
    last = m.index + m[0].length;
  }
  return out + checkText(text.slice(last), field);
}

function checkText(text: string, field: string | undefined): string {
  if (text.includes("{{")) {
    throw new ColonyError(
      TEMPLATE_SYNTAX,
      `unclosed '{{'${field ? ` in ${field}` : ""}; close it with '}}' or write {{"{{"}} for a literal '{{'`,
      { status: 400, details: field ? { field } : undefined },
    );
  }
  return text;
}

function renderAction(action: string, values: Record<string, unknown>, where: string): string {
  if (/^"(?:[^"\\]|\\.)*"$/.test(action)) return JSON.parse(action) as string;
  if (/^`[^`]*`$/.test(action)) return action.slice(1, -1);
  if (!/^\.[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/.test(action)) {
    throw new ColonyError(
      TEMPLATE_SYNTAX,
      `unsupported template action {{${action}}}${where}; colony substitutes {{.Name}} only (write {{"{{"}} for a literal '{{')`,
      { status: 400, details: { action } },
    );
  }
  const name = action.slice(1);
  return stringify(lookup(name, values, where));
}

function lookup(name: string, values: Record<string, unknown>, where: string): unknown {
  if (Object.hasOwn(values, name)) return values[name];
  const parts = name.split(".");
  let current: unknown = values;
  for (const part of parts) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, part)) {
      const known = Object.keys(values).sort();
      const list =
        known.length > 0
          ? ` (known: ${known.slice(0, 20).join(", ")}${known.length > 20 ? ", ..." : ""})`
          : "";
      throw new ColonyError(
        TEMPLATE_UNKNOWN_VARIABLE,
        `template variable '${name}'${where} is not defined${list}; values come from ${SOURCES}`,
        { status: 400, details: { variable: name } },
      );
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function stringify(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function renderDeep(value: unknown, values: Record<string, unknown>, field: string): unknown {
  if (typeof value === "string") return renderTemplate(value, values, field);
  if (Array.isArray(value)) return value.map((v, i) => renderDeep(v, values, `${field}[${i}]`));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, {
        value: renderDeep(v, values, `${field}.${k}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

function renderRecord(
  record: Record<string, string>,
  values: Record<string, unknown>,
  field: string,
): Record<string, string> {
  return renderDeep(record, values, field) as Record<string, string>;
}

/**
 * The task with every string it runs with rendered (a copy; a frozen task that has no
 * `{{` anywhere is returned as it is): scripts, url, headers,
 * query and environment values, messaging queues, artifact paths and every string inside
 * executorOptions. Names and routing are left as written; the task's variables are
 * rendered with the template values (engine/task-runner.ts templateValues).
 */
export function renderTask(task: TaskDefinition, values: Record<string, unknown>): TaskDefinition {
  // A frozen task with nothing to render is its own rendering. The SQLite store shares
  // one frozen definition between the jobs of a type, so such a task is the same object
  // job after job, and what is derived from it once can be kept with it
  // (ants/task-request.ts encodeTaskRequest). Whether it has a template is kept per task:
  // frozen, it cannot change. (PostgreSQL rows and definitions with secrets give fresh,
  // unfrozen copies: those tasks are rendered into copies as before.)
  if (Object.isFrozen(task)) {
    let templated = TEMPLATED.get(task);
    if (templated === undefined) {
      templated = hasTemplate(task);
      TEMPLATED.set(task, templated);
    }
    if (!templated) return task;
  }
  const list = (items: string[], field: string) =>
    items.map((s, i) => renderTemplate(s, values, `${field}[${i}]`));
  const out: TaskDefinition = {
    ...task,
    beforeScript: list(task.beforeScript, "before_script"),
    script: list(task.script, "script"),
    afterScript: list(task.afterScript, "after_script"),
    environment: renderRecord(task.environment, values, "environment"),
    headers: renderRecord(task.headers, values, "headers"),
    query: renderRecord(task.query, values, "query"),
    executorOptions: renderDeep(task.executorOptions, values, "executor options") as Record<
      string,
      unknown
    >,
  };
  if (task.url !== undefined) out.url = renderTemplate(task.url, values, "url");
  if (task.messagingRequestQueue !== undefined) {
    out.messagingRequestQueue = renderTemplate(
      task.messagingRequestQueue,
      values,
      "messaging_request_queue",
    );
  }
  if (task.messagingReplyQueue !== undefined) {
    out.messagingReplyQueue = renderTemplate(
      task.messagingReplyQueue,
      values,
      "messaging_reply_queue",
    );
  }
  if (task.artifacts)
    out.artifacts = { ...task.artifacts, paths: list(task.artifacts.paths, "artifacts.paths") };
  return out;
}

/** Whether each frozen task seen has a `{{` in a string renderTask renders. */
const TEMPLATED = new WeakMap<TaskDefinition, boolean>();

function hasTemplate(task: TaskDefinition): boolean {
  const some = (value: unknown): boolean => {
    if (typeof value === "string") return value.includes("{{");
    if (Array.isArray(value)) return value.some(some);
    if (value !== null && typeof value === "object") return Object.values(value).some(some);
    return false;
  };
  return some([
    task.beforeScript,
    task.script,
    task.afterScript,
    task.environment,
    task.headers,
    task.query,
    task.executorOptions,
    task.url,
    task.messagingRequestQueue,
    task.messagingReplyQueue,
    task.artifacts?.paths,
  ]);
}
