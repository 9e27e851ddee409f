/**
 * /api/job-requests against a real server on loopback (real SQLite file, real
 * processes, auth on): submit, list with filters and cursor paging, get with tasks,
 * cancel a running job, restart a failed one, the 400/404/409 cases, and the OpenAPI
 * document describing every route.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient, type ColonyClient, type JobRequestView } from "../src/client/client.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";

const QUICK = "job_type: quick\ntasks:\n- task_type: only\n  script: ['echo quick {{.Who}}']\n";
const SLEEPY =
  "job_type: sleepy\ntasks:\n- task_type: nap\n  script: ['echo napping', 'sleep 30']\n- task_type: wake\n  always_run: true\n  script: [echo woke]\n";
const FAILING = "job_type: failing\ntasks:\n- task_type: boom\n  script: ['echo try', 'exit 3']\n";

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("REST /api/job-requests", () => {
  let server: TestServer;
  let client: ColonyClient;
  const call = (path: string, init: RequestInit = {}) =>
    fetch(server.url + path, {
      ...init,
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        ...(init.body ? { "content-type": "application/json" } : {}),
        ...(init.headers as Record<string, string> | undefined),
      },
    });
  const error = async (res: Response) =>
    ((await res.json()) as { error: { code: string; message: string } }).error;

  before(async () => {
    server = await startTestServer();
    client = createClient({ server: server.url, token: server.adminToken });
    for (const yaml of [QUICK, SLEEPY, FAILING]) await client.saveDefinition(yaml);
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  it("submits a saved type: 201, Location, durable, runs to COMPLETED", async () => {
    const res = await call("/api/job-requests", {
      method: "POST",
      body: JSON.stringify({ job_type: "quick", params: { Who: "api" } }),
    });
    assert.equal(res.status, 201);
    const job = (await res.json()) as JobRequestView;
    assert.equal(res.headers.get("location"), `/api/job-requests/${job.id}`);
    assert.equal(job.job_type, "quick");
    assert.deepEqual(job.params, { Who: "api" });
    assert.deepEqual(job.task_types, ["only"]);
    assert.equal(job.submitted_by, "admin");
    assert.equal((await server.runtime.engine.waitFor(job.id)).state, "COMPLETED");
    const shown = await client.getJobRequest(job.id);
    assert.equal(shown.state, "COMPLETED");
    assert.equal(shown.tasks?.length, 1);
    const task = shown.tasks![0]!;
    assert.equal(task.task_type, "only");
    assert.equal(task.state, "COMPLETED");
    assert.equal(task.exit_code, 0);
    assert.match(task.id, /^[A-Za-z0-9]{8}$/);
    assert.ok(shown.started_at && shown.ended_at);
  });

  it("submits an inline definition (YAML text or object) without saving it", async () => {
    const yaml = await client.submitDefinition(
      "job_type: inline-y\ntasks:\n- task_type: a\n  script: [echo inline]\n",
    );
    const object = await client.submitDefinition({
      job_type: "inline-o",
      tasks: [{ task_type: "a", script: ["echo object"] }],
    });
    for (const job of [yaml, object])
      assert.equal((await server.runtime.engine.waitFor(job.id)).state, "COMPLETED");
    const saved = (await client.listDefinitions()).map((d) => d.job_type);
    assert.ok(!saved.includes("inline-y") && !saved.includes("inline-o"));
    await assert.rejects(
      client.submitDefinition("job_type: bad\ntasks:\n- task_type: a\n  on_completed: zzz\n"),
      { status: 400, code: "COLONY_INVALID_DEFINITION" },
    );
  });

  it("refuses bad submissions with 400 and unknown types with 404 and a hint", async () => {
    for (const [body, pattern] of [
      [{}, /exactly one of job_type/],
      [{ job_type: "quick", definition: QUICK }, /exactly one of job_type/],
      [{ job_type: "quick", colour: "red" }, /unknown field 'colour'/],
      [{ job_type: "quick", params: "x=1" }, /params/],
      [{ job_type: "quick", scheduled_at: "tomorrow" }, /scheduled_at.*ISO 8601/],
    ] as const) {
      const res = await call("/api/job-requests", { method: "POST", body: JSON.stringify(body) });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match((await error(res)).message, pattern);
    }
    const unknown = await call("/api/job-requests", {
      method: "POST",
      body: JSON.stringify({ job_type: "no-such-type" }),
    });
    assert.equal(unknown.status, 404);
    const e = await error(unknown);
    assert.equal(e.code, "COLONY_UNKNOWN_JOB_TYPE");
    assert.match(e.message, /save its definition first/);
  });

  it("keeps a request scheduled in the future PENDING, and cancels it", async () => {
    const at = new Date(Date.now() + 3_600_000);
    const job = await client.submit("quick", { scheduledAt: at });
    assert.equal(job.state, "PENDING");
    assert.equal(job.scheduled_at, at.toISOString());
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await client.getJobRequest(job.id)).state, "PENDING");
    const cancelled = await client.cancelJobRequest(job.id);
    assert.equal(cancelled.state, "CANCELLED");
  });

  it("lists newest first with state, job_type and limit, paging with cursors", async () => {
    // Future requests stay PENDING, so the listing is stable while we page.
    const later = new Date(Date.now() + 3_600_000);
    const made: number[] = [];
    for (let i = 0; i < 7; i++)
      made.push((await client.submit("sleepy", { scheduledAt: later })).id);
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.listJobRequests({
        jobType: "sleepy",
        state: "PENDING",
        limit: 3,
        cursor,
      });
      pages++;
      assert.ok(page.items.length <= 3);
      for (const j of page.items) {
        assert.equal(j.job_type, "sleepy");
        assert.equal(j.state, "PENDING");
        assert.equal(j.tasks, undefined, "lists do not carry tasks");
      }
      seen.push(...page.items.map((j) => j.id));
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...made].reverse());

    const all: number[] = [];
    for await (const j of client.jobRequests({ jobType: "sleepy", limit: 2 })) all.push(j.id);
    assert.deepEqual(all, [...made].reverse());

    const several = await call("/api/job-requests?state=completed,CANCELLED&limit=500");
    assert.equal(several.status, 200);
    const states = new Set(
      ((await several.json()) as { items: JobRequestView[] }).items.map((j) => j.state),
    );
    assert.deepEqual([...states].sort(), ["CANCELLED", "COMPLETED"]);

    const byDefault = (await (await call("/api/job-requests")).json()) as { items: unknown[] };
    assert.ok(byDefault.items.length <= 50);

    for (const query of [
      "state=DONE",
      "limit=0",
      "limit=501",
      "limit=x",
      "cursor=abc",
      "cursor=-4",
      "sort=id",
    ]) {
      const res = await call(`/api/job-requests?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal((await error(res)).code, "COLONY_VALIDATION", query);
    }
    for (const id of made) await client.cancelJobRequest(id);
  });

  it("cancels a running job: its task stops, always_run runs, it ends CANCELLED", async () => {
    const job = await client.submit("sleepy");
    await until("nap to run", async () => {
      const j = await client.getJobRequest(job.id);
      return j.tasks?.some((t) => t.task_type === "nap" && t.state === "EXECUTING") ? j : undefined;
    });
    const started = Date.now();
    const answer = await client.cancelJobRequest(job.id);
    assert.equal(answer.id, job.id);
    const final = await until("CANCELLED", async () => {
      const j = await client.getJobRequest(job.id);
      return j.state === "CANCELLED" ? j : undefined;
    });
    assert.ok(Date.now() - started < 10_000, "the sleep was stopped, not waited for");
    const byTask = Object.fromEntries(final.tasks!.map((t) => [t.task_type, t.state]));
    assert.equal(byTask.nap, "CANCELLED");
    assert.equal(byTask.wake, "COMPLETED");
    // Cancelling again changes nothing.
    assert.equal((await client.cancelJobRequest(job.id)).state, "CANCELLED");
  });

  it("restarts a FAILED job as its next attempt; refuses COMPLETED and running ones (409)", async () => {
    const job = await client.submit("failing");
    const failed = await server.runtime.engine.waitFor(job.id);
    assert.equal(failed.state, "FAILED");
    assert.equal((await client.getJobRequest(job.id)).tasks![0]!.exit_code, 3);

    const restarted = await client.restartJobRequest(job.id);
    assert.equal(restarted.attempt, 1);
    assert.ok(["PENDING", "READY", "STARTED", "EXECUTING", "FAILED"].includes(restarted.state));
    const again = await until("second run to end", async () => {
      const j = await client.getJobRequest(job.id);
      return j.state === "FAILED" && j.attempt === 1 && j.tasks!.length === 2 ? j : undefined;
    });
    assert.deepEqual(
      again.tasks!.map((t) => [t.job_attempt, t.state]),
      [
        [0, "FAILED"],
        [1, "FAILED"],
      ],
    );

    const done = await client.submit("quick", { params: { Who: "me" } });
    assert.equal((await server.runtime.engine.waitFor(done.id)).state, "COMPLETED");
    const res = await call(`/api/job-requests/${done.id}/restart`, { method: "POST" });
    assert.equal(res.status, 409);
    const e = await error(res);
    assert.equal(e.code, "COLONY_CONFLICT");
    assert.match(e.message, /COMPLETED; only FAILED or CANCELLED requests restart/);

    const running = await client.submit("sleepy");
    await until("sleepy to start", async () => {
      const j = await client.getJobRequest(running.id);
      return j.state === "EXECUTING" ? j : undefined;
    });
    await assert.rejects(
      client.restartJobRequest(running.id),
      (err: Error & { status?: number }) => {
        assert.equal(err.status, 409);
        assert.match(err.message, /still EXECUTING; cancel it first/);
        return true;
      },
    );
    await client.cancelJobRequest(running.id);
    await server.runtime.engine.waitFor(running.id);
  });

  it("answers 400 for ids that are not integers and 404 for unknown ones", async () => {
    for (const path of ["/api/job-requests/abc", "/api/job-requests/1.5", "/api/job-requests/-1"]) {
      const res = await call(path);
      assert.equal(res.status, 400, path);
      assert.match((await error(res)).message, /params\.id/);
    }
    for (const [method, path] of [
      ["GET", "/api/job-requests/999999"],
      ["POST", "/api/job-requests/999999/cancel"],
      ["POST", "/api/job-requests/999999/restart"],
    ] as const) {
      const res = await call(path, { method });
      assert.equal(res.status, 404, path);
      const e = await error(res);
      assert.equal(e.code, "COLONY_UNKNOWN_JOB_REQUEST");
      assert.match(e.message, /999999/);
    }
  });

  it("masks secret params in every view", async () => {
    const def =
      "job_type: secretive\njob_variables:\n  Key: {value: k, secret: true}\ntasks:\n- task_type: a\n  script: [echo ok]\n";
    const job = await client.submitDefinition(def, {
      params: {
        Key: "override-secret",
        Token: { value: "param-secret", secret: true },
        Plain: "p",
      },
    });
    assert.deepEqual(job.params, {
      Key: "********",
      Token: { value: "********", secret: true },
      Plain: "p",
    });
    await server.runtime.engine.waitFor(job.id);
    const text = JSON.stringify([
      await client.getJobRequest(job.id),
      await client.listJobRequests(),
    ]);
    assert.doesNotMatch(text, /override-secret|param-secret/);
  });

  it("needs writer to submit, cancel and restart (a reader may only look)", async () => {
    const created = await client.createToken({ role: "reader", name: "looker" });
    const reader = createClient({ server: server.url, token: created.token });
    try {
      await assert.rejects(reader.submit("quick"), { status: 403 });
      await assert.rejects(reader.cancelJobRequest(1), { status: 403 });
      await assert.rejects(reader.restartJobRequest(1), { status: 403 });
      assert.ok((await reader.listJobRequests()).items.length > 0);
      assert.equal((await reader.getJobRequest(1)).id, 1);
    } finally {
      reader.close();
    }
  });

  it("describes every route in /api/openapi.json, with summaries, tags and error responses", async () => {
    const res = await fetch(`${server.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as {
      paths: Record<
        string,
        Record<string, { summary?: string; tags?: string[]; responses: Record<string, unknown> }>
      >;
    };
    const expected: Array<[string, string, string[]]> = [
      ["post", "/api/job-definitions", ["201", "400", "401", "403"]],
      ["get", "/api/job-definitions", ["200", "401"]],
      ["get", "/api/job-definitions/{job_type}", ["200", "404"]],
      ["delete", "/api/job-definitions/{job_type}", ["204", "404"]],
      ["post", "/api/job-definitions/{job_type}/pause", ["200", "404"]],
      ["post", "/api/job-definitions/{job_type}/resume", ["200", "404"]],
      ["post", "/api/job-requests", ["201", "400", "404", "409"]],
      ["get", "/api/job-requests", ["200", "400"]],
      ["get", "/api/job-requests/{id}", ["200", "400", "404"]],
      ["post", "/api/job-requests/{id}/cancel", ["200", "404"]],
      ["post", "/api/job-requests/{id}/restart", ["200", "404", "409"]],
      ["get", "/api/job-requests/{id}/tasks/{task_type}/output", ["200", "404"]],
      ["get", "/api/task-executions/{execution_id}/output", ["200", "404"]],
      ["get", "/api/units", ["200", "400"]],
      ["get", "/api/units/{id}", ["200", "404"]],
    ];
    for (const [method, path, statuses] of expected) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method.toUpperCase()} ${path} is documented`);
      assert.ok(op.summary && op.summary.length > 10, `${path} has a summary`);
      assert.ok(op.tags && op.tags.length > 0, `${path} has tags`);
      for (const s of statuses) assert.ok(op.responses[s], `${method} ${path} documents ${s}`);
    }
    const submit = doc.paths["/api/job-requests"]!.post!;
    assert.match(JSON.stringify(submit.responses["404"]), /"error"/);
  });
});
