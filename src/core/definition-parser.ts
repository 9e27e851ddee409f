/**
 * Job definitions from YAML or JSON text (SPEC section 2). A pure function: it returns a
 * fully validated JobDefinition or throws one DefinitionError (code
 * COLONY_INVALID_DEFINITION) with the YAML path, the 1-based line and column of the
 * offending node, and what to write instead. Nothing partial is ever returned.
 */
import { parseCronTrigger } from "./cron.ts";
import { LineCounter, parseDocument } from "yaml";
import { JOB_KEYS, parseTask, parseVariables, unknownKey } from "./definition-fields.ts";
import type { ParsedTask, TaskRef } from "./definition-fields.ts";
import { closest } from "./closest.ts";
import { Reader } from "./definition-reader.ts";
import type { YamlNode } from "./definition-reader.ts";
import { DefinitionError } from "./errors.ts";
import type { SourcePosition } from "./errors.ts";
import { EXIT_ACTIONS, successorsWith } from "./job-definition.ts";
import type { JobDefinition } from "./job-definition.ts";

export interface ParseDefinitionOptions {
  /** Default: JSON when the text starts with `{`, else YAML. */
  format?: "yaml" | "json";
}

const JOB_TYPE = /^[A-Za-z0-9._-]+$/;

export function parseJobDefinition(
  text: string,
  options: ParseDefinitionOptions = {},
): JobDefinition {
  if (typeof text !== "string") {
    throw new DefinitionError("a job definition must be YAML or JSON text", "", {
      line: 1,
      column: 1,
    });
  }
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const detected = options.format === undefined;
  const format = options.format ?? (source.trimStart().startsWith("{") ? "json" : "yaml");
  if (format === "json") checkJsonSyntax(source, detected);

  // JSON is YAML 1.2, so one parser gives both formats their node positions.
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const { line, col } = lines.linePos(syntax.pos[0]);
    throw new DefinitionError(
      `${format === "json" ? "JSON" : "YAML"} syntax error: ${syntax.message}`,
      "",
      {
        line,
        column: col,
      },
    );
  }
  return readJob(new Reader(doc, lines), doc.contents as YamlNode | null);
}

function checkJsonSyntax(source: string, detected: boolean): void {
  try {
    JSON.parse(source);
  } catch (err) {
    const message = (err as Error).message;
    const hint = detected
      ? " (the text starts with '{' so it was read as JSON; pass format 'yaml' for YAML)"
      : "";
    throw new DefinitionError(
      `JSON syntax error: ${message}${hint}`,
      "",
      jsonErrorPosition(source, message),
    );
  }
}

/** V8 names the position in most JSON.parse messages; else find where parsing first fails. */
function jsonErrorPosition(source: string, message: string): SourcePosition | undefined {
  const lineCol = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lineCol) return { line: Number(lineCol[1]), column: Number(lineCol[2]) };
  const at = /at position (\d+)/.exec(message);
  const offset = at ? Number(at[1]) : firstBadOffset(source);
  if (offset === undefined) return undefined;
  const lines = new LineCounter();
  parseDocument(source, { lineCounter: lines });
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

/**
 * The offset of the character JSON.parse chokes on: the shortest prefix whose error is
 * not about the input ending early ends with it (later prefixes fail there too).
 */
function firstBadOffset(source: string): number | undefined {
  const failsBeforeEnd = (n: number): boolean => {
    try {
      JSON.parse(source.slice(0, n));
      return false;
    } catch (error) {
      const message = (error as Error).message;
      if (/end of JSON input/i.test(message)) return false;
      const at = /at position (\d+)/.exec(message);
      return at ? Number(at[1]) < n : true;
    }
  };
  if (!failsBeforeEnd(source.length)) return undefined;
  let lo = 1;
  let hi = source.length;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (failsBeforeEnd(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

function readJob(r: Reader, root: YamlNode | null): JobDefinition {
  if (r.isNull(root, "")) {
    throw new DefinitionError("the definition is empty; it needs at least job_type and tasks", "", {
      line: 1,
      column: 1,
    });
  }
  const entries = r.entries(root, "", "a job definition");
  const def: JobDefinition = {
    jobType: "",
    retry: 0,
    delayBetweenRetriesMs: 0,
    variables: {},
    tasks: [],
  };
  let jobTypeSeen = false;
  let parsed: ParsedTask[] | undefined;
  for (const e of entries) {
    const isNull = r.isNull(e.value, e.path);
    if (isNull && e.key !== "job_type" && e.key !== "tasks") {
      if (!(JOB_KEYS as readonly string[]).includes(e.key)) unknownKey(r, e, JOB_KEYS, "job");
      continue;
    }
    switch (e.key as (typeof JOB_KEYS)[number]) {
      case "job_type": {
        if (isNull)
          r.fail(
            "job_type is empty; name the job, e.g. job_type: build-and-test",
            e.path,
            e.value ?? e.keyNode,
          );
        const jobType = r.string(e.value, e.path);
        if (!JOB_TYPE.test(jobType)) {
          r.fail(
            `job_type '${jobType}' may only contain letters, digits, '.', '_' and '-'`,
            e.path,
            r.resolve(e.value, e.path),
          );
        }
        def.jobType = jobType;
        jobTypeSeen = true;
        break;
      }
      case "description":
        def.description = r.string(e.value, e.path);
        break;
      case "timeout": {
        const ms = r.duration(e.value, e.path);
        if (ms > 0) def.timeoutMs = ms;
        break;
      }
      case "retry":
        def.retry = r.int(e.value, e.path, 0);
        break;
      case "delay_between_retries":
        def.delayBetweenRetriesMs = r.duration(e.value, e.path);
        break;
      case "max_concurrency":
        def.maxConcurrency = r.int(e.value, e.path, 1);
        break;
      case "cron_trigger": {
        const cron = r.string(e.value, e.path).trim();
        try {
          parseCronTrigger(cron);
        } catch (error) {
          r.fail(`cron_trigger ${(error as Error).message}`, e.path, r.resolve(e.value, e.path));
        }
        def.cronTrigger = cron;
        break;
      }
      case "job_variables":
        def.variables = parseVariables(r, e.value, e.path);
        break;
      case "tasks":
        parsed = readTasks(r, e.value, e.keyNode);
        break;
      default:
        unknownKey(r, e, JOB_KEYS, "job");
    }
  }
  const rootNode = r.resolve(root, "");
  if (!jobTypeSeen)
    r.fail("missing job_type; name the job, e.g. job_type: build-and-test", "", rootNode);
  if (!parsed)
    r.fail(
      "missing tasks; list at least one task, e.g. tasks: [{task_type: build, script: [make]}]",
      "",
      rootNode,
    );
  def.tasks = parsed.map((p) => p.task);
  checkReferences(r, parsed);
  checkCycles(r, def, parsed);
  return def;
}

function readTasks(r: Reader, node: YamlNode | null, keyNode: YamlNode): ParsedTask[] {
  if (r.isNull(node, "tasks"))
    r.fail("tasks is empty; list at least one task", "tasks", node ?? keyNode);
  const items = r.list(node, "tasks", "tasks");
  if (items.length === 0)
    r.fail("tasks is empty; list at least one task", "tasks", r.resolve(node, "tasks"));
  const parsed: ParsedTask[] = [];
  const byType = new Map<string, ParsedTask>();
  items.forEach((item, i) => {
    const task = parseTask(r, item, `tasks[${i}]`);
    const first = byType.get(task.task.taskType);
    if (first) {
      const at = r.position(first.typeNode);
      r.fail(
        `duplicate task_type '${task.task.taskType}'${at ? ` (first defined at line ${at.line})` : ""}; task types must be unique within a job`,
        `${task.path}.task_type`,
        task.typeNode,
      );
    }
    byType.set(task.task.taskType, task);
    parsed.push(task);
  });
  return parsed;
}

function checkReferences(r: Reader, parsed: ParsedTask[]): void {
  const names = parsed.map((p) => p.task.taskType);
  const known = new Set(names);
  parsed.forEach((p, index) => {
    for (const ref of p.refs) {
      if (ref.name === p.task.taskType && ref.field === "depends_on") {
        r.fail(
          `task '${ref.name}' lists itself in depends_on; a join cannot wait for itself`,
          ref.path,
          ref.node,
        );
      }
      if (ref.name === p.task.taskType && ref.field === "dependencies") {
        r.fail(
          `task '${ref.name}' lists itself in dependencies; it cannot fetch its own artifacts`,
          ref.path,
          ref.node,
        );
      }
      if (!known.has(ref.name)) r.fail(unknownTaskMessage(ref, names), ref.path, ref.node);
    }
    if (index === 0 && p.task.dependsOn.length > 0) {
      const ref = p.refs.find((x) => x.field === "depends_on") as TaskRef;
      r.fail(
        `the first task '${p.task.taskType}' is the job's entry point and always runs first; it cannot have depends_on (move it later in tasks)`,
        ref.path.replace(/\[\d+\]$/, ""),
        ref.node,
      );
    }
  });
}

function unknownTaskMessage(ref: TaskRef, names: string[]): string {
  const candidates = ref.field === "on_exit_code" ? [...names, ...EXIT_ACTIONS] : names;
  const suggestion = closest(ref.name, candidates);
  const mean = suggestion ? ` did you mean '${suggestion}'?` : "";
  const valid =
    ref.field === "on_exit_code"
      ? `use a task_type of this job (${names.join(", ")}) or one of ${EXIT_ACTIONS.join(", ")}`
      : `tasks in this job: ${names.join(", ")}`;
  return `unknown task '${ref.name}' in ${ref.field};${mean} ${valid}`;
}

/** Refuses a loop in the successor graph (successorsWith), naming it and the edge that closes it. */
function checkCycles(r: Reader, def: JobDefinition, parsed: ParsedTask[]): void {
  const edges = new Map<string, TaskRef>();
  const edgeKey = (from: string, to: string): string => `${from}\u0000${to}`;
  for (const p of parsed) {
    for (const ref of p.refs) {
      if (ref.field === "dependencies") continue;
      const key =
        ref.field === "depends_on" ? edgeKey(ref.name, ref.from) : edgeKey(ref.from, ref.name);
      if (!edges.has(key)) edges.set(key, ref);
    }
  }
  // The tasks naming each one in depends_on, gathered once (linear in the job's size).
  const dependents = new Map<string, JobDefinition["tasks"]>();
  for (const t of def.tasks) {
    for (const d of t.dependsOn) {
      const list = dependents.get(d);
      if (list) list.push(t);
      else dependents.set(d, [t]);
    }
  }
  const successors = new Map(
    def.tasks.map((t) => [t.taskType, successorsWith(t, dependents.get(t.taskType) ?? [])]),
  );
  const state = new Map<string, "open" | "done">();
  for (const start of def.tasks) {
    if (state.has(start.taskType)) continue;
    const stack = [{ name: start.taskType, next: 0 }];
    state.set(start.taskType, "open");
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { name: string; next: number };
      const next = successors.get(top.name)?.[top.next++];
      if (next === undefined) {
        state.set(top.name, "done");
        stack.pop();
        continue;
      }
      const seen = state.get(next);
      if (seen === "open") {
        const loop = [
          ...stack.slice(stack.findIndex((f) => f.name === next)).map((f) => f.name),
          next,
        ];
        const edge = edges.get(edgeKey(top.name, next));
        r.fail(
          `cycle ${loop.join(" -> ")}: '${top.name}' leads back to '${next}' here; tasks may not loop (use retry to run a task again)`,
          edge?.path ?? "tasks",
          edge?.node,
        );
      }
      if (seen === undefined) {
        state.set(next, "open");
        stack.push({ name: next, next: 0 });
      }
    }
  }
}
