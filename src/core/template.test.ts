import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJobDefinition } from "./definition-parser.ts";
import { ColonyError } from "./errors.ts";
import { deepFreeze } from "./json.ts";
import { renderTask, renderTemplate } from "./template.ts";

void describe("renderTemplate", () => {
  void it("substitutes {{.Name}} with or without spaces inside the braces", () => {
    assert.equal(
      renderTemplate("make TARGET={{.Region}}", { Region: "us-west-2" }),
      "make TARGET=us-west-2",
    );
    assert.equal(renderTemplate("{{ .A }}-{{.B}}-{{  .A}}", { A: 1, B: true }), "1-true-1");
    assert.equal(renderTemplate("no braces at all", {}), "no braces at all");
  });

  void it("renders objects and arrays as JSON, null as empty text", () => {
    assert.equal(renderTemplate("cfg={{.Cfg}}", { Cfg: { a: 1, b: [2] } }), 'cfg={"a":1,"b":[2]}');
    assert.equal(renderTemplate("[{{.Nothing}}]", { Nothing: null }), "[]");
  });

  void it("follows dotted paths into objects", () => {
    assert.equal(renderTemplate("{{.Build.image}}", { Build: { image: "alpine" } }), "alpine");
    assert.equal(renderTemplate("{{.a.b}}", { "a.b": "flat key wins" }), "flat key wins");
  });

  void it("refuses an unknown name, naming it and where values come from", () => {
    assert.throws(
      () => renderTemplate("echo {{.Missing}}", { Known: 1 }, "script[0]"),
      (err: unknown) => {
        assert.ok(err instanceof ColonyError);
        assert.equal(err.code, "COLONY_TEMPLATE_UNKNOWN_VARIABLE");
        assert.match(err.message, /'Missing' in script\[0\] is not defined \(known: Known\)/);
        assert.match(err.message, /request params, job_variables/);
        assert.deepEqual(err.details, { variable: "Missing" });
        return true;
      },
    );
    assert.throws(() => renderTemplate("{{.Build.tag}}", { Build: { image: "x" } }), /'Build.tag'/);
    assert.throws(() => renderTemplate("{{.toString}}", {}), {
      code: "COLONY_TEMPLATE_UNKNOWN_VARIABLE",
    });
  });

  void it("writes string literals verbatim, so {{ can be escaped", () => {
    assert.equal(
      renderTemplate(`docker inspect -f '{{"{{"}}.State.Status}}' {{.Id}}`, { Id: "c1" }),
      "docker inspect -f '{{.State.Status}}' c1",
    );
    assert.equal(renderTemplate("{{`raw {{text}}`}}", {}), "raw {{text}}");
  });

  void it("refuses unsupported actions and an unclosed {{", () => {
    assert.throws(() => renderTemplate("{{ range .X }}", { X: [] }), {
      code: "COLONY_TEMPLATE_SYNTAX",
    });
    assert.throws(
      () => renderTemplate("echo {{.A", { A: 1 }, "url"),
      (err: unknown) => {
        assert.ok(err instanceof ColonyError);
        assert.equal(err.code, "COLONY_TEMPLATE_SYNTAX");
        assert.match(err.message, /unclosed '\{\{' in url/);
        return true;
      },
    );
  });
});

void describe("renderTask", () => {
  const def = parseJobDefinition(
    [
      "job_type: t",
      "tasks:",
      "- task_type: call",
      "  method: KUBERNETES",
      "  before_script: ['echo {{.Env}}']",
      "  script: ['deploy {{.Env}}']",
      "  after_script: ['cleanup {{ .Env }}']",
      "  environment: {TARGET: '{{.Env}}'}",
      "  url: 'https://{{.Host}}/api'",
      "  headers: {Authorization: 'Bearer {{.Token}}'}",
      "  query: {env: '{{.Env}}'}",
      "  container: {image: 'registry/{{.Env}}:1', command: ['run', '{{.Env}}']}",
      "  pod_labels: {env: '{{.Env}}'}",
      "  artifacts: {paths: ['out/{{.Env}}']}",
      "  on_completed: next",
      "- task_type: next",
    ].join("\n"),
  );
  const task = def.tasks[0];
  assert.ok(task);
  const values = { Env: "prod", Host: "deploy.example", Token: "t0k" };

  void it("renders every string the task runs with and leaves the original untouched", () => {
    const before = structuredClone(task);
    const out = renderTask(task, values);
    assert.notEqual(out, task);
    assert.deepEqual(task, before);
    assert.deepEqual(out.beforeScript, ["echo prod"]);
    assert.deepEqual(out.script, ["deploy prod"]);
    assert.deepEqual(out.afterScript, ["cleanup prod"]);
    assert.deepEqual(out.environment, { TARGET: "prod" });
    assert.equal(out.url, "https://deploy.example/api");
    assert.deepEqual(out.headers, { Authorization: "Bearer t0k" });
    assert.deepEqual(out.query, { env: "prod" });
    assert.deepEqual(out.executorOptions, {
      container: { image: "registry/prod:1", command: ["run", "prod"] },
      pod_labels: { env: "prod" },
    });
    assert.deepEqual(out.artifacts?.paths, ["out/prod"]);
    assert.deepEqual(out.onCompleted, ["next"]);
    assert.equal(out.taskType, "call");
  });

  void it("gives a frozen task with nothing to render back as it is, and renders the others", () => {
    const plain = parseJobDefinition("job_type: p\ntasks:\n- task_type: a\n  script: [echo hi]\n")
      .tasks[0]!;
    assert.notEqual(renderTask(plain, values), plain, "not frozen: a copy, as before");
    const frozen = deepFreeze({ ...plain, executorOptions: { container: { image: "busybox" } } });
    assert.equal(renderTask(frozen, values), frozen);
    assert.equal(renderTask(frozen, values), frozen, "the same answer the second time");
    // A `{{` anywhere renderTask looks (here deep in the executor options) means a copy.
    const deep = deepFreeze({ ...plain, executorOptions: { container: { image: "r/{{.Env}}" } } });
    const out = renderTask(deep, values);
    assert.notEqual(out, deep);
    assert.deepEqual(out.executorOptions, { container: { image: "r/prod" } });
    const headers = deepFreeze({ ...plain, headers: { A: "{{.Token}}" } });
    assert.deepEqual(renderTask(headers, values).headers, { A: "t0k" });
  });

  void it("names the field of an unknown variable", () => {
    assert.throws(
      () => renderTask(task, { Env: "x", Host: "h" }),
      /'Token' in headers.Authorization is not defined/,
    );
  });
});
