import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { parseJobDefinition } from "./definition-parser.ts";
import { DefinitionError } from "./errors.ts";

/** A document from lines, so a test reads its line numbers off the array index + 1. */
const doc = (...lines: string[]): string => lines.join("\n") + "\n";

const SPEC_EXAMPLE = doc(
  "job_type: build-and-notify          # required, [A-Za-z0-9._-]+, unique per definition",
  "description: optional text",
  "timeout: 10m                        # whole job; Go-style durations (90s, 1h30m)",
  "retry: 2                            # job-level retries",
  "max_concurrency: 3                  # running requests of this type at once",
  'cron_trigger: "0 */5 * * * *"       # optional schedule',
  "job_variables: {Region: us-west-2}",
  "tasks:",
  "- task_type: build                  # required, unique within the job",
  "  method: SHELL                     # default SHELL",
  "  before_script: [echo prep]",
  '  script: ["make build TARGET={{.Region}}"]',
  "  after_script: [echo done]         # runs even when script fails",
  "  environment: {GOFLAGS: -mod=mod}",
  "  timeout: 5m",
  "  retry: 1",
  "  delay_between_retries: 5s",
  "  on_completed: [test, lint]        # a list runs in parallel (beyond the seed)",
  "  on_failed: cleanup",
  "- task_type: test",
  "  script: [make test]",
  '  on_exit_code: {"0": deploy, "2": FAILED, "3": COMPLETED}',
  "- task_type: lint",
  "  script: [make lint]",
  "  allow_failure: true",
  "- task_type: deploy",
  "  depends_on: [test, lint]          # join: waits for both (beyond the seed)",
  "  method: HTTP_POST_JSON",
  "  url: https://deploy.example/api",
  '  headers: {Authorization: "Bearer {{.DeployToken}}"}',
  "- task_type: cleanup",
  "  always_run: true",
  "  script: [rm -rf tmp]",
);

void describe("parseJobDefinition: accepted definitions", () => {
  void it("reads the SPEC section 2 example field by field", () => {
    const def = parseJobDefinition(SPEC_EXAMPLE);
    assert.equal(def.jobType, "build-and-notify");
    assert.equal(def.description, "optional text");
    assert.equal(def.timeoutMs, 600_000);
    assert.equal(def.retry, 2);
    assert.equal(def.maxConcurrency, 3);
    assert.equal(def.cronTrigger, "0 */5 * * * *");
    assert.deepEqual(def.variables, {
      Region: { name: "Region", value: "us-west-2", secret: false },
    });
    assert.deepEqual(
      def.tasks.map((t) => t.taskType),
      ["build", "test", "lint", "deploy", "cleanup"],
    );
    const [build, test, lint, deploy, cleanup] = def.tasks;
    assert.ok(build && test && lint && deploy && cleanup);
    assert.equal(build.method, "SHELL");
    assert.deepEqual(build.beforeScript, ["echo prep"]);
    assert.deepEqual(build.script, ["make build TARGET={{.Region}}"]);
    assert.deepEqual(build.afterScript, ["echo done"]);
    assert.deepEqual(build.environment, { GOFLAGS: "-mod=mod" });
    assert.equal(build.timeoutMs, 300_000);
    assert.equal(build.retry, 1);
    assert.equal(build.delayBetweenRetriesMs, 5_000);
    assert.deepEqual(build.onCompleted, ["test", "lint"]);
    assert.deepEqual(build.onFailed, ["cleanup"]);
    assert.deepEqual(build.position, { line: 9, column: 3 });
    assert.deepEqual(test.onExitCode, { "0": ["deploy"], "2": "FAILED", "3": "COMPLETED" });
    assert.equal(lint.allowFailure, true);
    assert.deepEqual(deploy.dependsOn, ["test", "lint"]);
    assert.equal(deploy.method, "HTTP_POST_JSON");
    assert.equal(deploy.url, "https://deploy.example/api");
    assert.deepEqual(deploy.headers, { Authorization: "Bearer {{.DeployToken}}" });
    assert.equal(cleanup.alwaysRun, true);
  });

  void it("round-trips the SPEC example through JSON to the same definition", () => {
    const fromYaml = parseJobDefinition(SPEC_EXAMPLE);
    const json = JSON.stringify(parseYaml(SPEC_EXAMPLE), null, 2);
    const fromJson = parseJobDefinition(json);
    const strip = (d: typeof fromYaml) => ({
      ...d,
      tasks: d.tasks.map(({ position: _p, ...t }) => t),
    });
    assert.deepEqual(strip(fromJson), strip(fromYaml));
    const testLine = json.split("\n").findIndex((l) => l.includes('"task_type": "test"'));
    assert.deepEqual(fromJson.tasks[1]?.position, { line: testLine, column: 5 });
    assert.deepEqual(parseJobDefinition(json, { format: "json" }), fromJson);
  });

  void it("fills defaults: SHELL, no retries, empty lists and records", () => {
    const def = parseJobDefinition(doc("job_type: x", "tasks:", "- task_type: only"));
    assert.deepEqual(def, {
      jobType: "x",
      retry: 0,
      delayBetweenRetriesMs: 0,
      variables: {},
      tasks: [
        {
          taskType: "only",
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
          position: { line: 3, column: 3 },
        },
      ],
    });
  });

  void it("reads every task field, single strings as one-element lists, values as written", () => {
    const def = parseJobDefinition(
      doc(
        "job_type: all.fields_1",
        "delay_between_retries: 1m30s",
        "job_variables:",
        "  Token: {value: s3cr3t, secret: true}",
        "  Plain: {value: 7}",
        "  Obj: {a: 1, b: [true, null]}",
        "tasks:",
        "- task_type: t1",
        "  script: echo one",
        "  before_script: [true, 1.10]",
        "  environment: {N: 0755, B: false, S: text}",
        "  variables: {V: 1}",
        "  on_exit_code: {0: t2, '1': [t2, t3], 7: EXECUTING}",
        "  tags: web",
        "  query: {page: 2}",
        "  artifacts: {paths: dist, expires_after: 1h}",
        "  description: first",
        "- task_type: t2",
        "  method: FUNCTION",
        "  function: myFn",
        "  dependencies: t1",
        "  depends_on: t1",
        "- task_type: t3",
        "  method: WORK",
        "  work_type: echo",
        "  messaging_provider: REDIS_MESSAGING",
      ),
    );
    assert.equal(def.delayBetweenRetriesMs, 90_000);
    assert.deepEqual(def.variables, {
      Token: { name: "Token", value: "s3cr3t", secret: true },
      Plain: { name: "Plain", value: 7, secret: false },
      Obj: { name: "Obj", value: { a: 1, b: [true, null] }, secret: false },
    });
    const [t1, t2, t3] = def.tasks;
    assert.ok(t1 && t2 && t3);
    assert.deepEqual(t1.script, ["echo one"]);
    assert.deepEqual(t1.beforeScript, ["true", "1.10"]);
    assert.deepEqual(t1.environment, { N: "0755", B: "false", S: "text" });
    assert.deepEqual(t1.variables, { V: { name: "V", value: 1, secret: false } });
    assert.deepEqual(t1.onExitCode, { "0": ["t2"], "1": ["t2", "t3"], "7": "EXECUTING" });
    assert.deepEqual(t1.tags, ["web"]);
    assert.deepEqual(t1.query, { page: "2" });
    assert.deepEqual(t1.artifacts, { paths: ["dist"], expiresAfterMs: 3_600_000 });
    assert.equal(t1.description, "first");
    assert.equal(t2.function, "myFn");
    assert.deepEqual(t2.dependencies, ["t1"]);
    assert.deepEqual(t2.dependsOn, ["t1"]);
    assert.equal(t3.workType, "echo");
    assert.deepEqual(t3.executorOptions, { messaging_provider: "REDIS_MESSAGING" });
  });

  void it("treats `key:` with no value as the default, and keeps a `__proto__` key as data", () => {
    const def = parseJobDefinition(
      doc(
        "job_type: x",
        "description:",
        "tasks:",
        "- task_type: a",
        "  script:",
        "  environment: {__proto__: polluted}",
      ),
    );
    assert.equal(def.description, undefined);
    assert.deepEqual(def.tasks[0]?.script, []);
    assert.equal(Object.getPrototypeOf(def.tasks[0]?.environment), Object.prototype);
    assert.equal(
      Object.getOwnPropertyDescriptor(def.tasks[0]?.environment, "__proto__")?.value,
      "polluted",
    );
  });

  void it("leaves no shared state behind a refusal (pure function)", () => {
    const bad = doc("job_type: x", "tasks:", "- task_type: a", "  timeout: soon");
    let partial: unknown;
    for (let i = 0; i < 2; i++) {
      try {
        partial = parseJobDefinition(bad);
      } catch (err) {
        assert.ok(err instanceof DefinitionError);
        assert.deepEqual(err.position, { line: 4, column: 12 });
      }
    }
    assert.equal(partial, undefined);
    assert.equal(
      parseJobDefinition(doc("job_type: x", "tasks:", "- task_type: a", "  timeout: 2s")).tasks[0]
        ?.timeoutMs,
      2000,
    );
  });
});
