/**
 * The keys a job definition may use and how each task's keys become a TaskDefinition.
 * References between tasks are collected here and checked by definition-parser.ts once
 * every task name is known.
 */
import { isMap, isScalar, isSeq } from "yaml";
import { closest } from "./closest.ts";
import { childPath, setKey } from "./definition-reader.ts";
import type { Entry, Reader, YamlNode } from "./definition-reader.ts";
import { EXIT_ACTIONS, METHODS, taskDefinition } from "./job-definition.ts";
import type { ExitAction, Method, TaskDefinition, Variable } from "./job-definition.ts";

export const JOB_KEYS = [
  "job_type",
  "description",
  "timeout",
  "retry",
  "delay_between_retries",
  "max_concurrency",
  "cron_trigger",
  "job_variables",
  "tasks",
] as const;

/** Container and pod options (seed 000) kept verbatim in executorOptions, with a light type check. */
const EXECUTOR_OPTION_KINDS: Record<string, "string" | "boolean" | "mapping" | "list" | "scalar"> =
  {
    name: "string",
    working_directory: "string",
    container: "mapping",
    services: "list",
    privileged: "boolean",
    network_mode: "string",
    host_network: "boolean",
    affinity: "mapping",
    node_selector: "mapping",
    node_tolerations: "mapping",
    pod_labels: "mapping",
    pod_annotations: "mapping",
    cpu_limit: "scalar",
    cpu_request: "scalar",
    memory_limit: "scalar",
    memory_request: "scalar",
    helper: "mapping",
    messaging_provider: "string",
  };

const TASK_FIELD_KEYS = [
  "task_type",
  "method",
  "description",
  "before_script",
  "script",
  "after_script",
  "environment",
  "variables",
  "timeout",
  "retry",
  "delay_between_retries",
  "on_completed",
  "on_failed",
  "on_exit_code",
  "depends_on",
  "allow_failure",
  "always_run",
  "tags",
  "url",
  "headers",
  "query",
  "messaging_request_queue",
  "messaging_reply_queue",
  "function",
  "work_type",
  "artifacts",
  "dependencies",
] as const;

export const TASK_KEYS: readonly string[] = [
  ...TASK_FIELD_KEYS,
  ...Object.keys(EXECUTOR_OPTION_KINDS),
];

const ARTIFACT_KEYS = ["paths", "expires_after"] as const;

export type RefField =
  "on_completed" | "on_failed" | "on_exit_code" | "depends_on" | "dependencies";

/** A task name written somewhere in a task, checked once all names are known. */
export interface TaskRef {
  from: string;
  name: string;
  field: RefField;
  node: YamlNode | null;
  path: string;
}

export interface ParsedTask {
  task: TaskDefinition;
  node: YamlNode;
  path: string;
  typeNode: YamlNode | null;
  refs: TaskRef[];
}

/** Fails on a key not in `known`, naming the closest known key (or the right level for it). */
export function unknownKey(
  r: Reader,
  e: Entry,
  known: readonly string[],
  where: "job" | "task" | "artifacts",
): never {
  let hint: string;
  if (where === "job" && TASK_KEYS.includes(e.key))
    hint = `'${e.key}' is a task key; move it into a task under tasks`;
  else if (where === "task" && (JOB_KEYS as readonly string[]).includes(e.key)) {
    hint = `'${e.key}' is a job key; move it to the top level of the definition`;
  } else {
    const suggestion = closest(e.key, known);
    hint = suggestion
      ? `did you mean '${suggestion}'?`
      : `known ${where} keys: ${known.join(", ")}`;
  }
  return r.fail(`unknown key '${e.key}'; ${hint}`, e.path, e.keyNode);
}

/** `{Name: value}` or the long form `{Name: {value: ..., secret: true}}`. */
export function parseVariables(
  r: Reader,
  node: YamlNode | null,
  path: string,
): Record<string, Variable> {
  const out: Record<string, Variable> = {};
  if (r.isNull(node, path)) return out;
  for (const e of r.entries(node, path, "variables")) {
    const value = r.resolve(e.value, e.path);
    let variable: Variable = { name: e.key, value: null, secret: false };
    if (isMap(value)) {
      const inner = r.entries(value, e.path, "a variable");
      const keys = inner.map((i) => i.key);
      const longForm = keys.includes("value") && keys.every((k) => k === "value" || k === "secret");
      if (longForm) {
        for (const i of inner) {
          if (i.key === "value") variable.value = r.plain(i.value, i.path);
          else variable.secret = r.bool(i.value, i.path);
        }
      } else {
        variable = { name: e.key, value: r.plain(value, e.path), secret: false };
      }
    } else {
      variable.value = r.plain(value, e.path);
    }
    setKey(out, e.key, variable);
  }
  return out;
}

function parseMethod(r: Reader, node: YamlNode | null, path: string): Method {
  const text = r.string(node, path);
  if ((METHODS as readonly string[]).includes(text)) return text as Method;
  const suggestion = closest(text, METHODS);
  return r.fail(
    `unknown method '${text}';${suggestion ? ` did you mean '${suggestion}'?` : ""} valid methods: ${METHODS.join(", ")}`,
    path,
    r.resolve(node, path),
  );
}

function parseExecutorOption(r: Reader, e: Entry): unknown {
  const kind = EXECUTOR_OPTION_KINDS[e.key];
  const value = r.resolve(e.value, e.path);
  const ok =
    value === null ||
    (isScalar(value) && value.value === null) ||
    (kind === "mapping" && isMap(value)) ||
    (kind === "list" && isSeq(value)) ||
    (kind === "string" && isScalar(value) && typeof value.value === "string") ||
    (kind === "boolean" && isScalar(value) && typeof value.value === "boolean") ||
    (kind === "scalar" && isScalar(value) && ["string", "number"].includes(typeof value.value));
  if (!ok) {
    const expected = {
      mapping: "a mapping",
      list: "a list",
      string: "a string",
      boolean: "true or false",
    }[kind as string];
    r.fail(`expected ${expected ?? "a string or number"}, got ${r.describe(value)}`, e.path, value);
  }
  return r.plain(value, e.path);
}

function refList(r: Reader, task: ParsedTask, e: Entry, field: RefField): string[] {
  const resolved = r.resolve(e.value, e.path);
  const names = r.stringList(resolved, e.path);
  names.forEach((name, i) => {
    const node = isSeq(resolved) ? (resolved.items[i] as YamlNode) : resolved;
    const path = isSeq(resolved) ? childPath(e.path, i) : e.path;
    task.refs.push({ from: task.task.taskType, name, field, node, path });
  });
  return [...new Set(names)];
}

function parseExitCodes(
  r: Reader,
  task: ParsedTask,
  e: Entry,
): Record<string, string[] | ExitAction> {
  const out: Record<string, string[] | ExitAction> = {};
  if (r.isNull(e.value, e.path)) return out;
  const seen = new Map<string, string>();
  for (const entry of r.entries(e.value, e.path, "exit codes mapped to tasks or actions")) {
    const key = entry.key.trim();
    if (!/^-?\d+$/.test(key) || !Number.isSafeInteger(Number(key))) {
      r.fail(
        `exit code '${entry.key}' is not an integer; use keys like 0 or "2"`,
        entry.path,
        entry.keyNode,
      );
    }
    const code = String(Number(key));
    const previous = seen.get(code);
    if (previous !== undefined)
      r.fail(
        `exit code ${code} is listed twice ('${previous}' and '${entry.key}')`,
        entry.path,
        entry.keyNode,
      );
    seen.set(code, entry.key);
    const value = r.resolve(entry.value, entry.path);
    if (
      isScalar(value) &&
      typeof value.value === "string" &&
      (EXIT_ACTIONS as readonly string[]).includes(value.value)
    ) {
      out[code] = value.value as ExitAction;
      continue;
    }
    if (isSeq(value)) {
      value.items.forEach((item, i) => {
        const n = r.resolve(item as YamlNode, childPath(entry.path, i));
        if (isScalar(n) && (EXIT_ACTIONS as readonly string[]).includes(String(n.value))) {
          r.fail(
            `the action ${String(n.value)} must be the whole value of an exit code, not part of a list`,
            childPath(entry.path, i),
            n,
          );
        }
      });
    }
    if (r.isNull(value, entry.path)) {
      r.fail(
        `exit code ${code} needs a task name or one of ${EXIT_ACTIONS.join(", ")}`,
        entry.path,
        value ?? entry.keyNode,
      );
    }
    out[code] = refList(r, task, { ...entry, value }, "on_exit_code");
  }
  return out;
}

function parseArtifacts(
  r: Reader,
  node: YamlNode | null,
  path: string,
): TaskDefinition["artifacts"] {
  const out: NonNullable<TaskDefinition["artifacts"]> = { paths: [] };
  for (const e of r.entries(node, path, "artifacts")) {
    if (e.key === "paths") out.paths = r.stringList(e.value, e.path);
    else if (e.key === "expires_after") out.expiresAfterMs = r.duration(e.value, e.path);
    else unknownKey(r, e, ARTIFACT_KEYS, "artifacts");
  }
  return out;
}

/** One entry of `tasks`: reads every key; references to other tasks are only collected. */
export function parseTask(r: Reader, node: YamlNode | null, path: string): ParsedTask {
  const entries = r.entries(node, path, "a task");
  const mapping = r.resolve(node, path) as YamlNode;
  const typeEntry = entries.find((e) => e.key === "task_type");
  if (!typeEntry || r.isNull(typeEntry.value, typeEntry.path)) {
    r.fail(
      "missing task_type; every task needs a name unique within the job, e.g. task_type: build",
      path,
      mapping,
    );
  }
  const taskType = r.string(typeEntry.value, typeEntry.path);
  if (taskType.trim() === "")
    r.fail("task_type must not be empty", typeEntry.path, typeEntry.value);
  if ((EXIT_ACTIONS as readonly string[]).includes(taskType)) {
    r.fail(
      `task_type '${taskType}' is reserved for on_exit_code actions; choose another name`,
      typeEntry.path,
      typeEntry.value,
    );
  }
  const parsed: ParsedTask = {
    task: taskDefinition(taskType),
    node: mapping,
    path,
    typeNode: typeEntry.value,
    refs: [],
  };
  const t = parsed.task;
  const position = r.position(mapping);
  if (position) t.position = position;

  for (const e of entries) {
    if (e.key in EXECUTOR_OPTION_KINDS) {
      setKey(t.executorOptions, e.key, parseExecutorOption(r, e));
      continue;
    }
    // An explicit null (`key:`) leaves the default, except for the required task_type.
    if (e.key !== "task_type" && r.isNull(e.value, e.path)) {
      if (!(TASK_FIELD_KEYS as readonly string[]).includes(e.key))
        unknownKey(r, e, TASK_KEYS, "task");
      continue;
    }
    switch (e.key as (typeof TASK_FIELD_KEYS)[number]) {
      case "task_type":
        break;
      case "method":
        t.method = parseMethod(r, e.value, e.path);
        break;
      case "description":
        t.description = r.string(e.value, e.path);
        break;
      case "before_script":
        t.beforeScript = r.stringList(e.value, e.path, { text: true });
        break;
      case "script":
        t.script = r.stringList(e.value, e.path, { text: true });
        break;
      case "after_script":
        t.afterScript = r.stringList(e.value, e.path, { text: true });
        break;
      case "environment":
        t.environment = r.stringMap(e.value, e.path, "environment variables");
        break;
      case "variables":
        t.variables = parseVariables(r, e.value, e.path);
        break;
      case "timeout": {
        const ms = r.duration(e.value, e.path);
        if (ms > 0) t.timeoutMs = ms;
        break;
      }
      case "retry":
        t.retry = r.int(e.value, e.path, 0);
        break;
      case "delay_between_retries":
        t.delayBetweenRetriesMs = r.duration(e.value, e.path);
        break;
      case "on_completed":
        t.onCompleted = refList(r, parsed, e, "on_completed");
        break;
      case "on_failed":
        t.onFailed = refList(r, parsed, e, "on_failed");
        break;
      case "on_exit_code":
        t.onExitCode = parseExitCodes(r, parsed, e);
        break;
      case "depends_on":
        t.dependsOn = refList(r, parsed, e, "depends_on");
        break;
      case "allow_failure":
        t.allowFailure = r.bool(e.value, e.path);
        break;
      case "always_run":
        t.alwaysRun = r.bool(e.value, e.path);
        break;
      case "tags":
        t.tags = r.stringList(e.value, e.path);
        break;
      case "url":
        t.url = r.string(e.value, e.path);
        break;
      case "headers":
        t.headers = r.stringMap(e.value, e.path, "HTTP headers");
        break;
      case "query":
        t.query = r.stringMap(e.value, e.path, "query parameters");
        break;
      case "messaging_request_queue":
        t.messagingRequestQueue = r.string(e.value, e.path);
        break;
      case "messaging_reply_queue":
        t.messagingReplyQueue = r.string(e.value, e.path);
        break;
      case "function":
        t.function = r.string(e.value, e.path);
        break;
      case "work_type":
        t.workType = r.string(e.value, e.path);
        break;
      case "artifacts":
        t.artifacts = parseArtifacts(r, e.value, e.path);
        break;
      case "dependencies":
        t.dependencies = refList(r, parsed, e, "dependencies");
        break;
      default:
        unknownKey(r, e, TASK_KEYS, "task");
    }
  }
  checkMethodFields(r, parsed, entries);
  return parsed;
}

/** The field each method cannot run without. */
function checkMethodFields(r: Reader, parsed: ParsedTask, entries: Entry[]): void {
  const t = parsed.task;
  const at = (key: string): YamlNode => {
    const e = entries.find((x) => x.key === key);
    return (e?.value ?? e?.keyNode ?? parsed.node) as YamlNode;
  };
  const need = (field: string, example: string, key = "method"): never =>
    r.fail(
      `${t.method} task '${t.taskType}' needs ${field}; add e.g. ${example}`,
      key === "method" ? parsed.path : childPath(parsed.path, key),
      at(key),
    );
  const empty = (v: string | undefined): boolean => v === undefined || v.trim() === "";
  if (t.method.startsWith("HTTP_") && empty(t.url)) need("url", "url: https://example.com/api");
  if (t.method === "MESSAGING") {
    if (empty(t.messagingRequestQueue))
      need("messaging_request_queue", "messaging_request_queue: my-requests");
    if (empty(t.messagingReplyQueue))
      need("messaging_reply_queue", "messaging_reply_queue: my-replies");
  }
  if (t.method === "FUNCTION" && empty(t.function))
    need("function", "function: myRegisteredFunction");
  if (t.method === "WORK" && empty(t.workType)) need("work_type", "work_type: my-work-type");
  if (t.method === "DOCKER" || t.method === "KUBERNETES") {
    const container = t.executorOptions["container"] as Record<string, unknown> | null | undefined;
    const image = container?.["image"];
    if (
      container !== undefined &&
      container !== null &&
      image !== undefined &&
      typeof image !== "string"
    ) {
      r.fail(
        `container.image must be a string, got ${JSON.stringify(image)}`,
        childPath(childPath(parsed.path, "container"), "image"),
        at("container"),
      );
    }
    if (typeof image !== "string" || image.trim() === "") {
      need(
        "container.image",
        "container: {image: alpine:3.20}",
        container ? "container" : "method",
      );
    }
  }
}
