import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ExecutionRequest } from "../core/executor.ts";
import { deepFreeze } from "../core/json.ts";
import {
  buildTaskRequest,
  encodeTaskRequest,
  executionRequestOf,
  parseRegistration,
  parseTaskRequest,
  parseTaskResponse,
  resultOf,
  taskDefinition,
} from "./task-request.ts";

/** The keys of the seed's "Task Request" example, in its order. */
const SEED_REQUEST_KEYS = [
  "user_id",
  "organization_id",
  "job_definition_id",
  "job_request_id",
  "job_type",
  "task_type",
  "job_execution_id",
  "task_execution_id",
  "co_relation_id",
  "tags",
  "platform",
  "action",
  "job_retry",
  "task_retry",
  "allow_failure",
  "before_script",
  "after_script",
  "script",
  "timeout",
  "variables",
  "executor_opts",
];

const request: ExecutionRequest = {
  executionId: "Ab12Cd34",
  method: "SHELL",
  task: taskDefinition("task1", {
    script: ["t1_cmd1"],
    beforeScript: ["b"],
    tags: ["linux"],
    timeoutMs: 90_000,
    headers: { t1_h1: "1" },
    variables: { jk1: { name: "jk1", value: "jv1", secret: false } },
  }),
  env: { A: "1" },
  variables: {
    jk1: { name: "jk1", value: "jv1", secret: false },
    jk2: { name: "jk2", value: { a: 1, b: 2 }, secret: false },
  },
  unitDir: "/tmp/u",
  jobRequestId: 1,
  jobType: "my-test-job",
  jobAttempt: 0,
  attempt: 2,
};

describe("TaskRequest / TaskResponse (seed 000)", () => {
  it("builds the seed's TaskRequest with every key, snake_case, timeout in nanoseconds", () => {
    const r = buildTaskRequest(request);
    assert.deepEqual(Object.keys(r).sort(), [...SEED_REQUEST_KEYS].sort());
    assert.equal(r.task_execution_id, "Ab12Cd34");
    assert.equal(r.task_retry, 2);
    assert.equal(r.timeout, 90_000_000_000);
    assert.equal(r.action, "EXECUTE");
    assert.deepEqual(r.variables.jk2, { name: "jk2", value: { a: 1, b: 2 }, secret: false });
    assert.equal(r.executor_opts.method, "SHELL");
    assert.deepEqual(r.executor_opts.headers, { t1_h1: "1" });
    assert.ok(parseTaskRequest(JSON.parse(JSON.stringify(r))).ok);
  });

  it("encodes the exact text of buildTaskRequest for every shape of task, kept parts or not", () => {
    const tasks = {
      plain: taskDefinition("t", {}),
      seed: request.task,
      awkward: taskDefinition('q"uo\\te', {
        script: ["echo 'é ü \u2028' \"$X\"\n\tnext", ""],
        afterScript: ["\u0000"],
        tags: ["a", "ü"],
        timeoutMs: 1500,
        allowFailure: true,
        url: "http://127.0.0.1:1/x?y=1",
        query: { q: "1 2" },
        headers: { "X-A": 'b"c' },
        variables: { v: { name: "v", value: [1, { a: null }], secret: true } },
        executorOptions: { container: { image: "busybox", command: ["sh"] }, n: 1 },
        messagingRequestQueue: "req",
        messagingReplyQueue: "rep",
        artifacts: { paths: ["dist", "out/a b"] },
      }),
      // Executor options that reuse a reserved key keep JSON.stringify's order.
      reserved: taskDefinition("r", { executorOptions: { name: "mine", zz: true, method: "X" } }),
    };
    const variants: Array<Partial<ExecutionRequest>> = [
      {},
      { movesArtifacts: true },
      {
        movesArtifacts: true,
        artifactDownloads: [{ name: "a", url: "http://127.0.0.1:1/a", executable: false }],
      },
      { method: "HTTP_GET", jobRequestId: 123456, jobType: 'j"t', jobAttempt: 3, attempt: 1 },
      { jobRequestId: undefined, jobType: undefined, jobAttempt: undefined, attempt: undefined },
      { env: { K: "v\nw", "A=B": "=" }, variables: {} },
    ];
    let checked = 0;
    for (const [name, task] of Object.entries(tasks)) {
      for (const frozen of [false, true]) {
        const t = frozen ? deepFreeze(structuredClone(task)) : task;
        for (const variant of variants) {
          // Twice each: the first send of a frozen task keeps its parts, the next uses them.
          for (const taskRetry of [undefined, 7, undefined]) {
            const r: ExecutionRequest = { ...request, task: t, ...variant };
            const extras = taskRetry === undefined ? {} : { taskRetry };
            const { text, correlationId } = encodeTaskRequest(r, extras);
            const expected = { ...buildTaskRequest(r, extras), co_relation_id: correlationId };
            assert.equal(text, JSON.stringify(expected), `${name}, frozen ${frozen}`);
            assert.match(correlationId, /^[0-9a-f-]{36}$/);
            checked++;
          }
        }
      }
    }
    assert.equal(checked, 4 * 2 * variants.length * 3);
    // A fresh correlation id for every send.
    const a = encodeTaskRequest(request);
    const b = encodeTaskRequest(request);
    assert.notEqual(a.correlationId, b.correlationId);
  });

  it("an agent gets back the task it runs (executionRequestOf inverts buildTaskRequest)", () => {
    const back = executionRequestOf(buildTaskRequest(request), "/ant/units/Ab12Cd34");
    assert.equal(back.executionId, "Ab12Cd34");
    assert.equal(back.method, "SHELL");
    assert.deepEqual(back.task.script, ["t1_cmd1"]);
    assert.deepEqual(back.task.beforeScript, ["b"]);
    assert.equal(back.task.timeoutMs, 90_000);
    assert.deepEqual(back.env, { A: "1" });
    assert.deepEqual(Object.keys(back.task.variables), ["jk1"]);
    assert.equal(back.unitDir, "/ant/units/Ab12Cd34");
  });

  it("carries artifacts and dependency files only to an agent that moves them; keeps well-formed entries", () => {
    const withArtifacts: ExecutionRequest = {
      ...request,
      task: { ...request.task, artifacts: { paths: ["dist"] }, dependencies: ["build"] },
      artifactDownloads: [{ name: "out/app", url: "http://127.0.0.1:1/a?sig=x", executable: true }],
    };
    const plain = buildTaskRequest(withArtifacts);
    assert.equal(plain.executor_opts.artifacts, undefined, "a plain worker gets none");
    assert.equal(plain.executor_opts.dependency_artifacts, undefined);
    const wire = buildTaskRequest({ ...withArtifacts, movesArtifacts: true });
    assert.deepEqual(wire.executor_opts.artifacts, { paths: ["dist"] });
    const back = executionRequestOf(JSON.parse(JSON.stringify(wire)), "/ant/units/Ab12Cd34");
    assert.deepEqual(back.task.artifacts, { paths: ["dist"] });
    assert.deepEqual(back.artifactDownloads, withArtifacts.artifactDownloads);
    assert.equal(back.task.executorOptions.artifacts, undefined, "not a container option");
    // Malformed entries from the wire are dropped, not trusted.
    wire.executor_opts.dependency_artifacts = [
      { name: "ok", url: "https://h/x" },
      { name: "no-url" },
      { name: "file-url", url: "file:///etc/passwd" },
      { url: "http://h/no-name" },
      "junk",
    ];
    wire.executor_opts.artifacts = { paths: ["a", 7, null] };
    const strict = executionRequestOf(wire, "/ant/units/Ab12Cd34");
    assert.deepEqual(strict.artifactDownloads, [
      { name: "ok", url: "https://h/x", executable: false },
    ]);
    assert.deepEqual(strict.task.artifacts, { paths: ["a"] });
  });

  it("reads the seed's TaskResponse, and an echo of the request with a status", () => {
    const seedResponse = {
      job_request_id: 1,
      job_type: "my-test-job",
      task_type: "task1",
      task_execution_id: "uuid",
      co_relation_id: "uuid",
      status: "COMPLETED",
      ant_id: "",
      host: "",
      namespace: "",
      tags: [],
      error_message: "",
      error_code: "",
      exit_code: "",
      exit_message: "",
      failed_command: "",
      task_context: {},
      job_context: {},
      warnings: [],
      cost_factor: 0,
    };
    const parsed = parseTaskResponse(seedResponse);
    assert.ok(parsed.ok);
    assert.deepEqual(resultOf(parsed.value, "a"), {
      exitCode: 0,
      killed: false,
      status: "COMPLETED",
    });
    const echo = parseTaskResponse({ ...buildTaskRequest(request), status: "COMPLETED" });
    assert.ok(echo.ok);
  });

  it("maps FAILED with its codes and context, and refuses what could complete the wrong task", () => {
    const failed = parseTaskResponse({
      task_execution_id: "x",
      status: "FAILED",
      exit_code: "3",
      error_code: "ERR_MESSAGING_WORKER",
      error_message: "mock error for messaging client",
      taskContext: { epoch: 1 },
    });
    assert.ok(failed.ok);
    assert.deepEqual(resultOf(failed.value, "a"), {
      exitCode: 3,
      killed: false,
      status: "FAILED",
      errorCode: "ERR_MESSAGING_WORKER",
      error: "mock error for messaging client",
      context: { epoch: 1 },
    });
    for (const bad of [
      null,
      [],
      "COMPLETED",
      { status: "COMPLETED" },
      { task_execution_id: 7, status: "COMPLETED" },
      { task_execution_id: "x", status: "DONE" },
      { task_execution_id: "x", status: "COMPLETED", task_context: [1] },
    ]) {
      assert.equal(parseTaskResponse(bad).ok, false, JSON.stringify(bad));
    }
  });

  it("validates registrations: methods are required and must be colony's", () => {
    assert.ok(parseRegistration({ ant_id: "w", tags: ["js"], methods: ["WEBSOCKET"] }).ok);
    const none = parseRegistration({ ant_id: "w", tags: ["js"] });
    assert.equal(none.ok, false);
    assert.equal(parseRegistration({ ant_id: "w", methods: ["TELEPORT"] }).ok, false);
    assert.equal(parseRegistration({ ant_id: "w", methods: ["SHELL"], max_capacity: 0 }).ok, false);
  });
});
