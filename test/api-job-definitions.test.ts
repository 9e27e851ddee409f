/**
 * /api/job-definitions against a real server on loopback (real SQLite file, auth on):
 * YAML and JSON bodies, refusals with line and column, versions, secrets never shown,
 * pause/resume, delete, and the roles each route needs.
 */
import assert from "node:assert/strict";
import { OFF_LOOP_MIN_CHARS } from "../src/core/definition-offload.ts";
import { after, before, describe, it } from "node:test";
import { createClient, type ColonyClient } from "../src/client/client.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";

const HELLO = `job_type: hello
description: says hello
timeout: 1m30s
job_variables:
  Name: colony
  Password: {value: hunter2-secret, secret: true}
tasks:
- task_type: greet
  script: ["echo hello {{.Name}} {{.Password}}"]
  on_completed: done
- task_type: done
  script: [echo done]
`;

describe("REST /api/job-definitions", () => {
  let server: TestServer;
  let admin: ColonyClient;
  let writer: ColonyClient;
  let reader: ColonyClient;
  const call = (path: string, init: RequestInit & { token?: string } = {}) =>
    fetch(server.url + path, {
      ...init,
      headers: {
        ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
        ...(init.headers as Record<string, string> | undefined),
      },
    });

  /** POSTs a definition as YAML with the admin token. */
  const postYaml = (yaml: string) =>
    call("/api/job-definitions", {
      method: "POST",
      token: server.adminToken,
      headers: { "content-type": "application/yaml" },
      body: yaml,
    });

  /** POSTs YAML that must be refused: the 400 COLONY_INVALID_DEFINITION body. */
  const refusedDefinition = async (yaml: string) => {
    const res = await postYaml(yaml);
    assert.equal(res.status, 400);
    const body = (await res.json()) as {
      error: { code: string; message: string; details: Record<string, unknown> };
    };
    assert.equal(body.error.code, "COLONY_INVALID_DEFINITION");
    return body;
  };

  before(async () => {
    server = await startTestServer();
    admin = createClient({ server: server.url, token: server.adminToken });
    const w = await admin.createToken({ role: "writer", name: "writer-1" });
    const r = await admin.createToken({ role: "reader", name: "reader-1" });
    writer = createClient({ server: server.url, token: w.token });
    reader = createClient({ server: server.url, token: r.token });
  });
  after(async () => {
    for (const c of [admin, writer, reader]) c?.close();
    await server?.close();
  });

  it("saves YAML (application/yaml) as version 1, then version 2, with a Location", async () => {
    const res = await postYaml(HELLO);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("location"), "/api/job-definitions/hello");
    const first = (await res.json()) as { version: number; definition: Record<string, unknown> };
    assert.equal(first.version, 1);
    assert.equal(first.definition.job_type, "hello");
    assert.equal(first.definition.timeout, "1m30s");
    const again = await writer.saveDefinition(HELLO);
    assert.equal(again.version, 2);
    assert.equal(again.paused, false);
  });

  it("accepts text/yaml, text/plain, a JSON definition object and {yaml}", async () => {
    for (const [type, name] of [
      ["text/yaml", "t1"],
      ["text/plain; charset=utf-8", "t2"],
      ["application/x-yaml", "t3"],
    ] as const) {
      const res = await call("/api/job-definitions", {
        method: "POST",
        token: server.adminToken,
        headers: { "content-type": type },
        body: `job_type: ${name}\ntasks:\n- task_type: a\n  script: [echo a]\n`,
      });
      assert.equal(res.status, 201, `${type}: ${await res.clone().text()}`);
    }
    const json = await writer.saveDefinition({
      job_type: "from-json",
      retry: 2,
      tasks: [{ task_type: "a", script: ["echo a"], on_completed: ["b"] }, { task_type: "b" }],
    });
    assert.equal(json.definition.retry, 2);
    assert.deepEqual(
      json.definition.tasks.map((t) => [t.task_type, t.method, t.on_completed ?? []]),
      [
        ["a", "SHELL", ["b"]],
        ["b", "SHELL", []],
      ],
    );
    const wrapped = await writer.saveDefinition({
      yaml: "job_type: wrapped\ntasks:\n- task_type: x\n",
    });
    assert.equal(wrapped.job_type, "wrapped");
  });

  it("refuses an invalid definition with 400, the line and column, and changes nothing", async () => {
    const bad = "job_type: broken\ntasks:\n- task_type: a\n  scrpt: [echo a]\n";
    const body = await refusedDefinition(bad);
    assert.match(body.error.message, /line 4, column 3/);
    assert.match(body.error.message, /did you mean 'script'/);
    assert.deepEqual(body.error.details, { path: "tasks[0].scrpt", line: 4, column: 3 });

    const syntax = await call("/api/job-definitions", {
      method: "POST",
      token: server.adminToken,
      headers: { "content-type": "text/yaml" },
      body: "job_type: x\ntasks: [\n",
    });
    assert.equal(syntax.status, 400);
    assert.match(
      ((await syntax.json()) as { error: { message: string } }).error.message,
      /line \d+/,
    );

    const cycle =
      "job_type: loop\ntasks:\n- task_type: a\n  on_completed: b\n- task_type: b\n  on_completed: a\n";
    await assert.rejects(writer.saveDefinition(cycle), (e: Error & { status?: number }) => {
      assert.equal(e.status, 400);
      assert.match(e.message, /cycle/i);
      return true;
    });

    await assert.rejects(
      writer.saveDefinition({ job_type: "j", tasks: [{ task_type: "a", retries: 2 }] }),
      (e: Error & { details?: Record<string, unknown> }) => {
        assert.equal(e.details?.path, "tasks[0].retries");
        return true;
      },
    );
    const names = (await reader.listDefinitions()).map((d) => d.job_type);
    assert.ok(!names.includes("broken") && !names.includes("loop") && !names.includes("j"));
  });

  it("reads a large definition off the event loop: saved as sent, or refused with where", async () => {
    const names = Array.from({ length: 1500 }, (_, i) => `t${i}`);
    let yaml = `job_type: large\ntasks:\n- task_type: start\n  on_completed: [${names.join(", ")}]\n`;
    for (const n of names) yaml += `- task_type: ${n}\n  script: ["echo ${n}"]\n`;
    assert.ok(yaml.length >= OFF_LOOP_MIN_CHARS, "large enough for the worker");
    const saved = await writer.saveDefinition(yaml);
    assert.equal(saved.definition.tasks.length, 1501);
    assert.deepEqual(saved.definition.tasks[1500], {
      task_type: "t1499",
      method: "SHELL",
      script: ["echo t1499"],
    });

    const bad = yaml
      .replace("job_type: large", "job_type: large-bad")
      .replace(
        '- task_type: t1200\n  script: ["echo t1200"]\n',
        '- task_type: t1200\n  script: ["echo t1200"]\n  on_failed: [nowhere]\n',
      );
    const body = await refusedDefinition(bad);
    assert.match(body.error.message, /nowhere/);
    assert.equal(body.error.details.path, "tasks[1201].on_failed[0]");
    assert.equal(body.error.details.line, 2 + 1 + 1 + 2 * 1200 + 2 + 1);
    const names2 = (await reader.listDefinitions()).map((d) => d.job_type);
    assert.ok(names2.includes("large") && !names2.includes("large-bad"));
  });

  it("refuses malformed JSON and unsupported content types", async () => {
    const malformed = await call("/api/job-definitions", {
      method: "POST",
      token: server.adminToken,
      headers: { "content-type": "application/json" },
      body: '{"job_type": ',
    });
    assert.equal(malformed.status, 400);
    const xml = await call("/api/job-definitions", {
      method: "POST",
      token: server.adminToken,
      headers: { "content-type": "application/xml" },
      body: "<job/>",
    });
    assert.equal(xml.status, 415);
    assert.equal(
      ((await xml.json()) as { error: { code: string } }).error.code,
      "COLONY_UNSUPPORTED_MEDIA_TYPE",
    );
  });

  it("lists by type and shows one; never shows a secret value, in JSON or YAML", async () => {
    const list = await reader.listDefinitions();
    const types = list.map((d) => d.job_type);
    assert.deepEqual(types, [...types].sort());
    assert.ok(types.includes("hello"));

    const hello = await reader.getDefinition("hello");
    assert.equal(hello.version, 2);
    assert.deepEqual(hello.definition.job_variables, {
      Name: "colony",
      Password: { value: "********", secret: true },
    });
    const source = await reader.getDefinitionSource("hello");
    assert.match(source, /^job_type: hello$/m);
    assert.match(source, /Password:.*\*{8}/);
    assert.doesNotMatch(source, /hunter2/);
    assert.doesNotMatch(JSON.stringify(list), /hunter2/);

    // At rest the value is sealed, and a run still gets it (masked in its output).
    const stored = await server.runtime.store.getDefinition("hello");
    const sealed = stored?.definition.variables.Password?.value;
    assert.match(String(sealed), /^sealed:v1:/);
    const job = await writer.submit("hello");
    await server.runtime.engine.waitFor(job.id);
    const out = await reader.taskOutput(job.id, "greet");
    let text = "";
    for await (const chunk of out) text += String(chunk);
    assert.match(text, /^hello colony \*+$/m);

    const unknown = await call("/api/job-definitions/nope", { token: server.adminToken });
    assert.equal(unknown.status, 404);
    const body = (await unknown.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "COLONY_UNKNOWN_JOB_TYPE");
    assert.match(body.error.message, /colony definitions list/);
  });

  it("pauses (submissions refused with 409) and resumes a type", async () => {
    assert.equal((await writer.pauseDefinition("t1")).paused, true);
    await assert.rejects(writer.submit("t1"), (e: Error & { status?: number; code?: string }) => {
      assert.equal(e.status, 409);
      assert.equal(e.code, "COLONY_DEFINITION_PAUSED");
      return true;
    });
    assert.equal((await writer.resumeDefinition("t1")).paused, false);
    const job = await writer.submit("t1");
    assert.equal((await server.runtime.engine.waitFor(job.id)).state, "COMPLETED");
    const missing = await call("/api/job-definitions/nope/pause", {
      method: "POST",
      token: server.adminToken,
    });
    assert.equal(missing.status, 404);
  });

  it("needs a token (401), writer to save (403 for reader), admin to delete", async () => {
    const anonymous = await call("/api/job-definitions");
    assert.equal(anonymous.status, 401);
    await assert.rejects(reader.saveDefinition(HELLO), { status: 403, code: "COLONY_FORBIDDEN" });
    await assert.rejects(writer.deleteDefinition("t2"), { status: 403 });

    await admin.deleteDefinition("t2");
    await assert.rejects(reader.getDefinition("t2"), { status: 404 });
    await assert.rejects(admin.deleteDefinition("t2"), { status: 404 });
  });
});
