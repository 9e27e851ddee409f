import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJobDefinition } from "./definition-parser.ts";
import { DefinitionError } from "./errors.ts";

/** A document from lines, so a test reads its line numbers off the array index + 1. */
const doc = (...lines: string[]): string => lines.join("\n") + "\n";

interface Expected {
  line: number;
  column: number;
  path?: string;
  message: string | RegExp;
}

function refuses(text: string, expected: Expected, options?: { format?: "yaml" | "json" }): void {
  let result: unknown;
  assert.throws(
    () => {
      result = parseJobDefinition(text, options);
    },
    (err: unknown) => {
      assert.ok(err instanceof DefinitionError, `expected a DefinitionError, got ${String(err)}`);
      assert.equal(err.code, "COLONY_INVALID_DEFINITION");
      assert.equal(err.status, 400);
      assert.deepEqual(err.position, { line: expected.line, column: expected.column }, err.message);
      if (expected.path !== undefined) assert.equal(err.path, expected.path, err.message);
      if (typeof expected.message === "string")
        assert.ok(err.message.includes(expected.message), err.message);
      else assert.match(err.message, expected.message);
      return true;
    },
  );
  assert.equal(result, undefined);
}

/** A valid two-task job whose second task gets the given lines (indented by the caller). */
const job = (...taskLines: string[]): string =>
  doc(
    "job_type: j",
    "tasks:",
    "- task_type: a",
    "  script: [echo a]",
    "- task_type: b",
    ...taskLines,
  );

void describe("parseJobDefinition: refusals name the path, line, column and the fix", () => {
  void it("YAML syntax errors", () => {
    refuses(doc("job_type: x", "tasks:", "- task_type: a", "  script: [a, b", "  retry: 1"), {
      line: 5,
      column: 3,
      message: "YAML syntax error",
    });
    refuses(doc("job_type: x", "job_type: y", "tasks: []"), {
      line: 2,
      column: 1,
      message: "unique",
    });
    refuses(doc("job_type: x", "---", "job_type: y"), {
      line: 2,
      column: 1,
      message: "multiple documents",
    });
  });

  void it("JSON syntax errors, also without a position in V8's message", () => {
    refuses('{\n  "job_type": "x",\n  "tasks" [] }', {
      line: 3,
      column: 11,
      message: "JSON syntax error",
    });
    refuses('{"job_type": "x", "tasks": [{"task_type": "a"},]}', {
      line: 1,
      column: 48,
      message: "Unexpected token",
    });
    refuses("{job_type: x, tasks: [{task_type: a}]}", {
      line: 1,
      column: 2,
      message: "format 'yaml'",
    });
  });

  void it("JSON documents: errors carry the JSON path and position", () => {
    const text =
      '{\n  "job_type": "x",\n  "tasks": [\n    {"task_type": "a", "retry": "2"}\n  ]\n}';
    refuses(text, {
      line: 4,
      column: 33,
      path: "tasks[0].retry",
      message: "expected a whole number",
    });
  });

  void it("unknown keys, suggesting the closest known key or the right level", () => {
    refuses(job("  on_complete: a"), {
      line: 6,
      column: 3,
      path: "tasks[1].on_complete",
      message: "unknown key 'on_complete'; did you mean 'on_completed'?",
    });
    refuses(doc("job_type: x", "timout: 5s", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 1,
      message: "did you mean 'timeout'?",
    });
    refuses(job("  onFailed: a"), { line: 6, column: 3, message: "did you mean 'on_failed'?" });
    refuses(doc("job_type: x", "script: [make]", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 1,
      message: "is a task key",
    });
    refuses(job("  job_variables: {}"), { line: 6, column: 3, message: "is a job key" });
    refuses(job("  zzzzzz: 1"), {
      line: 6,
      column: 3,
      message: "known task keys: task_type, method",
    });
    refuses(job("  artifacts: {path: [x]}"), {
      line: 6,
      column: 15,
      path: "tasks[1].artifacts.path",
      message: "did you mean 'paths'?",
    });
  });

  void it("wrong types", () => {
    refuses(job("  retry: two"), {
      line: 6,
      column: 10,
      path: "tasks[1].retry",
      message: 'expected a whole number, got the string "two"',
    });
    refuses(job("  allow_failure: yes"), {
      line: 6,
      column: 18,
      message: "expected true or false",
    });
    refuses(job("  script: {make: all}"), {
      line: 6,
      column: 11,
      message: "expected a string or a list of strings, got a mapping",
    });
    refuses(job("  environment: {A: [1]}"), {
      line: 6,
      column: 20,
      path: "tasks[1].environment.A",
      message: "got a list",
    });
    refuses(job("  url: 42"), { line: 6, column: 8, message: "quote it" });
    refuses(job("  headers: [a]"), { line: 6, column: 12, message: "expected HTTP headers" });
    refuses(job("  privileged: 'yes'"), { line: 6, column: 15, message: "expected true or false" });
    refuses(doc("job_type: x", "tasks: {a: 1}"), {
      line: 2,
      column: 8,
      message: "expected tasks (a list)",
    });
    refuses(doc("job_type: x", "tasks:", "- just a string"), {
      line: 3,
      column: 3,
      path: "tasks[0]",
      message: "expected a task",
    });
    refuses(doc("- job_type: x"), { line: 1, column: 1, message: "expected a job definition" });
    refuses(
      doc(
        "job_type: x",
        "job_variables: {T: {value: 1, secret: maybe}}",
        "tasks: [{task_type: a}]",
      ),
      {
        line: 2,
        column: 39,
        path: "job_variables.T.secret",
        message: "expected true or false",
      },
    );
  });

  void it("missing job_type, tasks or task_type; an empty document", () => {
    refuses(doc("tasks: [{task_type: a}]"), { line: 1, column: 1, message: "missing job_type" });
    refuses(doc("job_type:", "tasks: [{task_type: a}]"), {
      line: 1,
      column: 10,
      message: "job_type is empty",
    });
    refuses(doc("job_type: x", "description: d"), { line: 1, column: 1, message: "missing tasks" });
    refuses(doc("job_type: x", "tasks:", "- script: [a]"), {
      line: 3,
      column: 3,
      path: "tasks[0]",
      message: "missing task_type",
    });
    refuses("# nothing here\n", { line: 1, column: 1, message: "the definition is empty" });
  });

  void it("an empty tasks list", () => {
    refuses(doc("job_type: x", "tasks: []"), {
      line: 2,
      column: 8,
      path: "tasks",
      message: "tasks is empty",
    });
    refuses(doc("job_type: x", "tasks:"), { line: 2, column: 7, message: "tasks is empty" });
  });

  void it("a job_type outside [A-Za-z0-9._-]+", () => {
    refuses(doc("job_type: build and test", "tasks: [{task_type: a}]"), {
      line: 1,
      column: 11,
      path: "job_type",
      message: "may only contain letters, digits",
    });
  });

  void it("duplicate task types, naming the first", () => {
    refuses(job("- task_type: a"), {
      line: 6,
      column: 14,
      path: "tasks[2].task_type",
      message: "duplicate task_type 'a' (first defined at line 3)",
    });
  });

  void it("a reserved task name", () => {
    refuses(job("- task_type: FAILED"), { line: 6, column: 14, message: "reserved" });
  });

  void it("an unknown method, listing the valid ones", () => {
    refuses(job("  method: shell"), {
      line: 6,
      column: 11,
      message: /unknown method 'shell'; did you mean 'SHELL'\? valid methods: SHELL, HTTP_GET/,
    });
    refuses(job("  method: TELEPATHY"), { line: 6, column: 11, message: "valid methods: SHELL" });
  });

  void it("references to unknown tasks in every field that names tasks", () => {
    refuses(job("  on_completed: [a, c]"), {
      line: 6,
      column: 21,
      path: "tasks[1].on_completed[1]",
      message: "unknown task 'c' in on_completed; tasks in this job: a, b",
    });
    refuses(job("  on_failed: cleanup"), {
      line: 6,
      column: 14,
      path: "tasks[1].on_failed",
      message: "unknown task 'cleanup' in on_failed",
    });
    refuses(job("  depends_on: [aa]"), {
      line: 6,
      column: 16,
      message: "unknown task 'aa' in depends_on; did you mean 'a'?",
    });
    refuses(job("  dependencies: [zz]"), {
      line: 6,
      column: 18,
      message: "unknown task 'zz' in dependencies",
    });
  });

  void it("on_exit_code: keys that are not integers, values that are neither tasks nor actions", () => {
    refuses(job("  on_exit_code: {ok: a}"), {
      line: 6,
      column: 18,
      path: "tasks[1].on_exit_code.ok",
      message: "exit code 'ok' is not an integer",
    });
    refuses(job("  on_exit_code: {1.5: a}"), { line: 6, column: 18, message: "is not an integer" });
    refuses(job("  on_exit_code: {0: DONE}"), {
      line: 6,
      column: 21,
      path: 'tasks[1].on_exit_code["0"]',
      message:
        "unknown task 'DONE' in on_exit_code; use a task_type of this job (a, b) or one of COMPLETED, FAILED, EXECUTING",
    });
    refuses(job("  on_exit_code: {0: [a, FAILED]}"), {
      line: 6,
      column: 25,
      message: "must be the whole value",
    });
    refuses(job("  on_exit_code: {0: a, '00': a}"), {
      line: 6,
      column: 24,
      message: "exit code 0 is listed twice",
    });
    refuses(job("  on_exit_code: {3: }"), {
      line: 6,
      column: 21,
      message: "exit code 3 needs a task name",
    });
  });

  void it("cycles, naming the loop and the edge that closes it", () => {
    refuses(
      doc(
        "job_type: j",
        "tasks:",
        "- task_type: build",
        "  on_completed: test",
        "- task_type: test",
        "  on_completed: [deploy, build]",
        "- task_type: deploy",
      ),
      {
        line: 6,
        column: 26,
        path: "tasks[1].on_completed[1]",
        message: "cycle build -> test -> build",
      },
    );
    refuses(job("  on_failed: b"), { line: 6, column: 14, message: "cycle b -> b" });
  });

  void it("cycles through on_exit_code and depends_on", () => {
    refuses(
      doc(
        "job_type: j",
        "tasks:",
        "- task_type: a",
        "  on_completed: b",
        "- task_type: b",
        "  on_exit_code: {2: a}",
      ),
      {
        line: 6,
        column: 21,
        path: 'tasks[1].on_exit_code["2"]',
        message: "cycle a -> b -> a",
      },
    );
    refuses(
      doc(
        "job_type: j",
        "tasks:",
        "- task_type: a",
        "  on_completed: b",
        "- task_type: b",
        "  on_completed: c",
        "  depends_on: [c]",
        "- task_type: c",
      ),
      {
        line: 7,
        column: 16,
        path: "tasks[1].depends_on[0]",
        message: "cycle b -> c -> b",
      },
    );
  });

  void it("a depends_on join that names itself, and depends_on on the entry task", () => {
    refuses(job("  depends_on: [a, b]"), {
      line: 6,
      column: 19,
      path: "tasks[1].depends_on[1]",
      message: "lists itself in depends_on",
    });
    refuses(doc("job_type: j", "tasks:", "- task_type: a", "  depends_on: b", "- task_type: b"), {
      line: 4,
      column: 15,
      message: "entry point",
    });
  });

  void it("bad durations, negative retry, max_concurrency below 1, bad cron_trigger", () => {
    refuses(job("  timeout: 5 minutes"), {
      line: 6,
      column: 12,
      path: "tasks[1].timeout",
      message: "invalid duration '5 minutes'; write it Go style",
    });
    refuses(job("  delay_between_retries: 30"), {
      line: 6,
      column: 26,
      message: "a number needs a unit",
    });
    refuses(job("  artifacts: {paths: [out], expires_after: 1 week}"), {
      line: 6,
      column: 44,
      path: "tasks[1].artifacts.expires_after",
      message: "invalid duration",
    });
    refuses(doc("job_type: j", "timeout: [1h]", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 10,
      message: "invalid duration a list",
    });
    refuses(job("  retry: -1"), {
      line: 6,
      column: 10,
      path: "tasks[1].retry",
      message: "must be 0 or more, got -1",
    });
    refuses(doc("job_type: j", "retry: -2", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 8,
      message: "must be 0 or more",
    });
    refuses(doc("job_type: j", "max_concurrency: 0", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 18,
      path: "max_concurrency",
      message: "must be 1 or more",
    });
    refuses(doc("job_type: j", "cron_trigger: '*/5 * *'", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 15,
      message: "has 3 fields; write 5",
    });
    // Valid fields that name no date: it would never fire.
    refuses(doc("job_type: j", "cron_trigger: '0 0 30 2 *'", "tasks: [{task_type: a}]"), {
      line: 2,
      column: 15,
      message: "'0 0 30 2 *' never fires: no month it names has that day of the month",
    });
  });

  void it("a method's required field missing", () => {
    refuses(job("  method: HTTP_GET"), {
      line: 6,
      column: 11,
      path: "tasks[1]",
      message: "HTTP_GET task 'b' needs url",
    });
    refuses(job("  method: MESSAGING", "  messaging_request_queue: rq"), {
      line: 6,
      column: 11,
      message: "needs messaging_reply_queue",
    });
    refuses(job("  method: MESSAGING", "  messaging_reply_queue: rq"), {
      line: 6,
      column: 11,
      message: "needs messaging_request_queue",
    });
    refuses(job("  method: FUNCTION"), {
      line: 6,
      column: 11,
      message: "FUNCTION task 'b' needs function",
    });
    refuses(job("  method: WORK"), { line: 6, column: 11, message: "needs work_type" });
    refuses(job("  method: DOCKER"), {
      line: 6,
      column: 11,
      message: "DOCKER task 'b' needs container.image",
    });
    refuses(job("  method: KUBERNETES", "  container: {volume_driver: x}"), {
      line: 7,
      column: 14,
      path: "tasks[1].container",
      message: "needs container.image",
    });
    refuses(doc("job_type: j", "tasks:", "- task_type: a", "  url: ''", "  method: HTTP_DELETE"), {
      line: 5,
      column: 11,
      message: "needs url",
    });
  });
});
