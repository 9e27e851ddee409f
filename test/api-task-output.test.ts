/**
 * Task output over HTTP against a real server on loopback with real processes: byte
 * offsets, tail, follow; ten concurrent followers of a task printing numbered lines
 * for about a second each receive exactly the whole output in order; a follower that
 * goes away early breaks no one and releases its file watch; following a finished task
 * returns everything and ends.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient, type ColonyClient, type JobRequestView } from "../src/client/client.ts";
import { watchedPathCount } from "../src/core/output-follow.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";

const LINES = 50;
const NUMBERED = `job_type: numbered
tasks:
- task_type: count
  script: ['for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.02; done']
`;
const FULL = Array.from({ length: LINES }, (_, i) => `line ${i + 1}\n`).join("");

async function text(stream: AsyncIterable<unknown>): Promise<string> {
  let out = "";
  for await (const chunk of stream) out += String(chunk);
  return out;
}

describe("REST task output", () => {
  let server: TestServer;
  let client: ColonyClient;
  const call = (path: string, init: RequestInit = {}) =>
    fetch(server.url + path, {
      ...init,
      headers: { authorization: `Bearer ${server.adminToken}` },
    });

  /** Submits the numbered job and resolves once its task has started. */
  async function runningJob(): Promise<{ job: JobRequestView; unit: string }> {
    const job = await client.submit("numbered");
    for (;;) {
      const view = await client.getJobRequest(job.id);
      const task = view.tasks?.find((t) => t.state === "EXECUTING" || t.state === "STARTED");
      if (task) return { job: view, unit: task.id };
      if (view.state === "COMPLETED") throw new Error("finished before it was seen running");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  before(async () => {
    server = await startTestServer();
    client = createClient({ server: server.url, token: server.adminToken });
    await client.saveDefinition(NUMBERED);
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  it("ten concurrent followers each get exactly the whole output, in order", async () => {
    const { job } = await runningJob();
    const started = Date.now();
    const followers = Array.from({ length: 10 }, () =>
      client.taskOutput(job.id, "count", { follow: true }).then(text),
    );
    const outputs = await Promise.all(followers);
    assert.ok(Date.now() - started > 300, "the followers streamed while the task ran");
    for (const [i, out] of outputs.entries()) assert.equal(out, FULL, `follower ${i}`);
    assert.equal((await client.getJobRequest(job.id)).state, "COMPLETED");
    assert.equal(watchedPathCount(), 0, "every follower released its watch");
  });

  it("a follower that disconnects early breaks no one and releases its watch", async () => {
    const { unit } = await runningJob();
    const quitter = new AbortController();
    const early = await client.executionOutput(unit, { follow: true, signal: quitter.signal });
    const others = Array.from({ length: 3 }, () =>
      client.executionOutput(unit, { follow: true }).then(text),
    );
    // Read one chunk, then hang up.
    await new Promise<void>((resolve) => early.once("data", () => resolve()));
    quitter.abort();
    early.destroy();
    for (const out of await Promise.all(others)) assert.equal(out, FULL);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(watchedPathCount(), 0);
  });

  it("following a finished task returns all of it and ends", async () => {
    const { job } = await runningJob();
    await server.runtime.engine.waitFor(job.id);
    const res = await call(`/api/job-requests/${job.id}/tasks/count/output?follow=1`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(res.headers.get("x-colony-execution") ?? "", /^[A-Za-z0-9]{8}$/);
    assert.equal(await res.text(), FULL);
  });

  it("starts at a byte offset, and tail gives only what comes next", async () => {
    const { job, unit } = await runningJob();
    // Followers from an offset while it runs.
    const offset = FULL.indexOf("line 10\n");
    const fromOffset = client.executionOutput(unit, { follow: true, offset }).then(text);
    await new Promise((r) => setTimeout(r, 300));
    const tailed = client.taskOutput(job.id, "count", { follow: true, tail: true }).then(text);
    assert.equal(await fromOffset, FULL.slice(offset));
    const tail = await tailed;
    assert.ok(tail.length < FULL.length, "tail skipped what was already written");
    assert.ok(FULL.endsWith(tail), "tail is the rest of the output");
    assert.match(tail, /line 50\n$/);

    // Without follow: what is there from the offset, then the end.
    const res = await call(`/api/task-executions/${unit}/output?offset=${offset}`);
    assert.equal(await res.text(), FULL.slice(offset));
    const past = await call(`/api/task-executions/${unit}/output?offset=999999`);
    assert.equal(past.status, 200);
    assert.equal(await past.text(), "");
    const tailOnly = await call(`/api/task-executions/${unit}/output?tail=1`);
    assert.equal(await tailOnly.text(), "");
  });

  it("picks an execution with ?execution=, and answers 404 for what does not exist", async () => {
    const { job, unit } = await runningJob();
    await server.runtime.engine.waitFor(job.id);
    const chosen = await call(`/api/job-requests/${job.id}/tasks/count/output?execution=${unit}`);
    assert.equal(await chosen.text(), FULL);

    const cases: Array<[string, string]> = [
      [
        `/api/job-requests/${job.id}/tasks/count/output?execution=Zzzzzzzz`,
        "COLONY_UNKNOWN_TASK_EXECUTION",
      ],
      [`/api/job-requests/${job.id}/tasks/nope/output`, "COLONY_UNKNOWN_TASK_TYPE"],
      [`/api/job-requests/999999/tasks/count/output`, "COLONY_UNKNOWN_JOB_REQUEST"],
      [`/api/task-executions/Zzzzzzzz/output`, "COLONY_UNKNOWN_TASK_EXECUTION"],
      [`/api/task-executions/..%2F..%2Fetc/output`, "COLONY_UNKNOWN_TASK_EXECUTION"],
    ];
    for (const [path, code] of cases) {
      const res = await call(path);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code, path);
    }
    const later = await client.submit("numbered", {
      scheduledAt: new Date(Date.now() + 3_600_000),
    });
    const notYet = await call(`/api/job-requests/${later.id}/tasks/count/output`);
    assert.equal(notYet.status, 404);
    const e = ((await notYet.json()) as { error: { code: string; message: string } }).error;
    assert.equal(e.code, "COLONY_TASK_NOT_STARTED");
    assert.match(e.message, /has not started/);
    await client.cancelJobRequest(later.id);
  });

  it("a follower of masked output (a job with secrets) that hangs up releases its watch", async () => {
    const job = await client.submitDefinition(
      "job_type: masked-slow\njob_variables:\n  Key: {value: hidden-value, secret: true}\ntasks:\n- task_type: a\n  script: ['echo key={{.Key}}', 'sleep 30']\n",
    );
    let unit: string | undefined;
    while (!unit) {
      const view = await client.getJobRequest(job.id);
      unit = view.tasks?.find((t) => t.state === "EXECUTING")?.id;
      await new Promise((r) => setTimeout(r, 20));
    }
    const quitter = new AbortController();
    const stream = await client.executionOutput(unit, { follow: true, signal: quitter.signal });
    const first = await new Promise<string>((resolve) =>
      stream.once("data", (c) => resolve(String(c))),
    );
    assert.match(first, /key=\*+/);
    assert.equal(watchedPathCount(), 1);
    quitter.abort();
    stream.destroy();
    const end = Date.now() + 5000;
    while (watchedPathCount() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(watchedPathCount(), 0, "the server-side follower was destroyed");
    await client.cancelJobRequest(job.id);
    await server.runtime.engine.waitFor(job.id);
  });

  it("masks secrets in the output", async () => {
    const job = await client.submitDefinition(
      "job_type: masked\njob_variables:\n  Key: {value: s3cr3t-value, secret: true}\ntasks:\n- task_type: a\n  script: ['echo key={{.Key}}']\n",
    );
    await server.runtime.engine.waitFor(job.id);
    const out = await text(await client.taskOutput(job.id, "a", { follow: true }));
    assert.match(out, /^key=\*+$/m);
    assert.doesNotMatch(out, /s3cr3t/);
  });

  it("lists task executions as units, newest first, with their output size", async () => {
    const page = await client.listUnits({ limit: 2 });
    assert.equal(page.items.length, 2);
    assert.ok(page.next_cursor);
    const next = await client.listUnits({ limit: 2, cursor: page.next_cursor! });
    const ids = [...page.items, ...next.items].map((u) => u.id);
    assert.equal(new Set(ids).size, 4, "pages do not overlap");
    const all = await client.listUnits({ limit: 500 });
    const numbered = all.items.filter((u) => u.task_type === "count" && u.state === "Succeeded");
    assert.ok(numbered.length >= 4);
    for (const u of numbered) assert.equal(u.stdout_size, Buffer.byteLength(FULL));
    const one = await client.getUnit(numbered[0]!.id);
    assert.deepEqual(one, numbered[0]);
    await assert.rejects(client.getUnit("Zzzzzzzz"), { status: 404, code: "COLONY_UNKNOWN_UNIT" });
    const bad = await call("/api/units?cursor=xyz");
    assert.equal(bad.status, 400);
  });
});
