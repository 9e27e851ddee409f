/**
 * GET /metrics of a real server scraped while a real job runs: the job and task
 * counters, the running-task gauge, the duration and dispatch histograms, queue depth,
 * store operation latency, HTTP request durations and process metrics all move as
 * they should. And /metrics needs a token, like the rest of the API.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { http, testConfig, waitUntil } from "./support/server-harness.ts";

/** The value of one sample (`name{labels} value`) in an exposition, or 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe("GET /metrics", () => {
  const dir = tempDir("colony-metrics-");
  let server: RunningServer;
  let token: string;
  const scrape = async () => {
    const res = await http(`${server.url}/metrics`, { headers: { authorization: token } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/);
    return res.text;
  };

  before(async () => {
    server = await startServer(testConfig(dir.path), { log: () => undefined });
    token = readFileSync(server.adminTokenFile!, "utf8").trim();
  });
  after(async () => {
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  it("needs a token", async () => {
    assert.equal((await http(`${server.url}/metrics`)).status, 401);
  });

  it("counters, gauges and histograms move while a job runs", async () => {
    const before = await scrape();
    assert.ok(sample(before, "process_cpu_user_seconds_total") > 0, "process metrics");
    assert.ok(before.includes("nodejs_eventloop_lag_seconds"), "event loop lag");
    assert.equal(sample(before, "colony_task_transitions_total", { state: "COMPLETED" }), 0);

    // Two tasks: the first holds on until the test has seen it running.
    const res = await http(`${server.url}/api/job-requests`, {
      headers: { authorization: token },
      json: {
        definition: `job_type: metered
tasks:
- task_type: slow
  script: ['while [ ! -e "$GO" ]; do sleep 0.05; done']
  environment: {GO: ${dir.path}/go}
  on_completed: [quick]
- task_type: quick
  script: [echo quick]
`,
      },
    });
    assert.equal(res.status, 201, res.text);
    const id = res.json<{ id: number }>().id;
    // A scheduled job waits: it is in the jobs gauge but not in the queue.
    await http(`${server.url}/api/job-requests`, {
      headers: { authorization: token },
      json: {
        definition: "job_type: later\ntasks:\n- task_type: a\n  script: [true]\n",
        scheduled_at: "2099-01-01T00:00:00Z",
      },
    });

    let during = "";
    await waitUntil("the slow task running", async () => {
      during = await scrape();
      return (
        sample(during, "colony_task_transitions_total", { state: "EXECUTING", method: "SHELL" }) ===
        1
      );
    });
    assert.equal(sample(during, "colony_tasks_running", { method: "SHELL" }), 1);
    assert.equal(sample(during, "colony_jobs", { state: "EXECUTING" }), 1);
    assert.equal(sample(during, "colony_jobs", { state: "PENDING" }), 1, "the scheduled one");
    assert.equal(sample(during, "colony_queue_depth"), 0, "not due yet");
    assert.equal(
      sample(during, "colony_task_dispatch_latency_seconds_count", { method: "SHELL" }),
      1,
    );
    assert.ok(
      sample(during, "colony_store_operation_seconds_count", { op: "createJobRequest" }) >= 2,
    );
    assert.ok(
      sample(during, "colony_http_request_duration_seconds_count", {
        method: "POST",
        route: "/api/job-requests",
        status: "201",
      }) >= 2,
    );

    (await import("node:fs")).writeFileSync(`${dir.path}/go`, "");
    await server.runtime.engine.waitFor(id);
    const after = await scrape();
    assert.equal(
      sample(after, "colony_task_transitions_total", { state: "COMPLETED", method: "SHELL" }),
      2,
    );
    assert.equal(sample(after, "colony_job_transitions_total", { state: "COMPLETED" }), 1);
    assert.equal(sample(after, "colony_tasks_running", { method: "SHELL" }), 0);
    assert.equal(
      sample(after, "colony_task_duration_seconds_count", { method: "SHELL", state: "COMPLETED" }),
      2,
    );
    assert.ok(
      sample(after, "colony_task_duration_seconds_sum", { method: "SHELL", state: "COMPLETED" }) >
        0,
    );
    assert.equal(sample(after, "colony_job_duration_seconds_count", { state: "COMPLETED" }), 1);
    assert.equal(sample(after, "colony_jobs", { state: "EXECUTING" }), 0);
    // Two tasks finished: the first alone, the last with its job's verdict.
    assert.equal(sample(after, "colony_store_operation_seconds_count", { op: "finishTask" }), 1);
    assert.equal(
      sample(after, "colony_store_operation_seconds_count", { op: "finishTaskAndJob" }),
      1,
      "store latency",
    );
  });

  it("lets features register their own metrics on the server's registry", async () => {
    const widgets = server.metrics.counter({
      name: "colony_test_widgets_total",
      help: "Widgets a feature made",
      labelNames: ["kind"] as const,
    });
    widgets.inc({ kind: "round" }, 3);
    assert.equal(
      server.metrics.counter({ name: "colony_test_widgets_total", help: "again" }),
      widgets,
    );
    assert.equal(sample(await scrape(), "colony_test_widgets_total", { kind: "round" }), 3);
  });
});
