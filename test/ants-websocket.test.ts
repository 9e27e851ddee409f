/**
 * Remote ants on /ws/ants (SPEC section 5) against a real TLS server: the seed's Python
 * worker unchanged but for HOST and TOKEN, auth, routing by method + tags + least load,
 * max_capacity, EXECUTING re-sends, bad frames, and ants that disconnect or go silent
 * (their tasks are retried within seconds).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { runCli, startCli } from "./support/cli.ts";
import { http } from "./support/server-harness.ts";
import {
  join,
  RawAnt,
  startAntServer,
  waitForAnt,
  waitUntil,
  type AntTestServer,
  type Frame,
} from "./support/ants.ts";

const PYTHON = "/usr/bin/python3";
const CI = process.env.CI === "true" || process.env.CI === "1";

async function pythonHasWebsocket(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  const r = spawn(PYTHON, ["-c", "import websocket"], { stdio: "ignore" });
  return new Promise<boolean>((resolve) => r.on("close", (code) => resolve(code === 0)));
}

const hasPython = await pythonHasWebsocket();
if (!hasPython && CI)
  throw new Error("CI=true but /usr/bin/python3 with python3-websocket is missing");
const NO_PYTHON = hasPython
  ? false
  : "needs /usr/bin/python3 with python3-websocket (scripts/test-services.sh installs it)";

describe("remote ants over WebSocket (TLS server)", () => {
  let s: AntTestServer;
  const ants: RawAnt[] = [];
  const connect = async (registration: Frame) => {
    const ant = await RawAnt.connect(s.wsUrl, registration, { token: s.antToken, ca: s.ca! });
    ants.push(ant);
    await waitForAnt(s, registration.ant_id as string);
    return ant;
  };

  before(async () => {
    s = await startAntServer({ tls: true });
  });
  after(async () => {
    await Promise.all(ants.map((a) => a.close()));
    await s.close();
  });

  describe("the seed's Python worker", { skip: NO_PYTHON }, () => {
    let python: ChildProcess | undefined;
    let output = "";
    before(async () => {
      const seed = readFileSync(
        new URL("./fixtures/seed/websocket_ant.py", import.meta.url),
        "utf8",
      );
      // Only what the seed leaves to the user: where the server is and the token.
      const script = seed
        .replace(/^HOST = .*$/m, `HOST = "localhost:${s.port}"`)
        .replace(/^TOKEN = .*$/m, `TOKEN = "${s.antToken}"`);
      const file = join(s.server.runtime.dataDir, "websocket_ant.py");
      writeFileSync(file, script);
      python = spawn(PYTHON, ["-u", file], {
        // websocket-client trusts this CA bundle for wss:// (the test server's own CA).
        env: { ...process.env, WEBSOCKET_CLIENT_CA_BUNDLE: s.certs!.caCert },
        stdio: ["ignore", "pipe", "pipe"],
      });
      python.stdout!.on("data", (c: Buffer) => (output += c.toString()));
      python.stderr!.on("data", (c: Buffer) => (output += c.toString()));
      await waitForAnt(s, "sample-python").catch((error: Error) => {
        throw new Error(`${error.message}; worker output: ${output}`);
      });
    });
    after(() => {
      python?.kill("SIGKILL");
    });

    it("completes tasks whose method and tags it has, as the echoed TaskRequest", async () => {
      const job = await s.submit(
        "job_type: py-job\ntasks:\n- task_type: process\n  method: WEBSOCKET\n  tags: [python, web]\n" +
          "  variables: {Who: colony}\n  on_completed: again\n" +
          "- task_type: again\n  method: WEBSOCKET\n  tags: [python]\n",
      );
      const { job: done, tasks } = await s.finished(job.id);
      assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
      assert.deepEqual(
        tasks.map((x) => [x.taskType, x.state, x.handle?.ant_id]),
        [
          ["process", "COMPLETED", "sample-python"],
          ["again", "COMPLETED", "sample-python"],
        ],
      );
    });

    it("a task whose tags no ant has waits, then fails with COLONY_NO_ANT naming the ants", async () => {
      const job = await s.submit(
        "job_type: gpu-job\ntasks:\n- task_type: train\n  method: WEBSOCKET\n  tags: [gpu]\n  timeout: 1s\n",
      );
      await waitUntil("the task waits", async () => (await s.ants()).waiting.length === 1);
      assert.equal((await s.ants()).waiting[0]!.reason, "no_ant");
      const { job: done, tasks } = await s.finished(job.id);
      assert.equal(done.state, "FAILED");
      assert.equal(tasks[0]!.errorCode, "COLONY_NO_ANT");
      assert.match(tasks[0]!.errorMessage!, /tags gpu/);
      assert.match(tasks[0]!.errorMessage!, /sample-python/);
    });
  });

  it("authenticates: 401 without a token, 403 for a reader, the query token for browsers", async () => {
    const none = new RawAnt(s.wsUrl, { ca: s.ca! });
    assert.equal(await none.opened(), 401);
    const reader = new RawAnt(s.wsUrl, { token: await s.token("reader", "r"), ca: s.ca! });
    assert.equal(await reader.opened(), 403);
    const bearer = new RawAnt(s.wsUrl, { token: `Bearer ${s.antToken}`, ca: s.ca! });
    assert.equal(await bearer.opened(), 101);
    const query = new RawAnt(s.wsUrl, { token: s.antToken, ca: s.ca!, query: true });
    assert.equal(await query.opened(), 101);
    const admin = new RawAnt(s.wsUrl, { token: s.adminToken, ca: s.ca! });
    assert.equal(await admin.opened(), 101);
    await Promise.all([bearer.close(), query.close(), admin.close()]);
  });

  it("closes a connection whose registration is invalid, with the reason (1008)", async () => {
    const ant = new RawAnt(s.wsUrl, { token: s.antToken, ca: s.ca! });
    await ant.opened();
    ant.send({ ant_id: "no-methods", tags: ["x"] });
    const closed = await ant.closed;
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /methods/);
  });

  it("ignores malformed, unknown, stale, duplicate and foreign replies; the right one completes the task", async () => {
    const ant = await connect({ ant_id: "careful", tags: ["careful"], methods: ["WEBSOCKET"] });
    const other = await connect({ ant_id: "other", tags: ["other"], methods: ["WEBSOCKET"] });
    const job = await s.submit(
      "job_type: careful\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [careful]\n",
    );
    const request = await ant.next();
    assert.equal(request.action, "EXECUTE");
    assert.equal(request.job_request_id, job.id);
    for (const bad of [
      "not json",
      "[1,2]",
      "null",
      JSON.stringify({ status: "COMPLETED" }),
      JSON.stringify({ ...request, status: "WHATEVER" }),
      JSON.stringify({ ...request, task_execution_id: "zzzzzzzz", status: "COMPLETED" }),
      JSON.stringify({ ...request, task_retry: 5, status: "FAILED" }),
      JSON.stringify({ ...request, task_context: "not an object", status: "FAILED" }),
      JSON.stringify({ type: "output", task_execution_id: request.task_execution_id }),
    ]) {
      ant.send(bad);
    }
    other.send({ ...request, status: "FAILED" }); // not its task
    ant.send({ ...request, status: "COMPLETED", task_context: { answer: 42 } });
    ant.send({ ...request, status: "FAILED" }); // duplicate
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED");
    assert.deepEqual(tasks[0]!.context, { answer: 42 });
    assert.ok(
      s.logs.some((l) => /ignored a malformed frame/.test(l)),
      s.logs.join("\n"),
    );
    // Everything still works.
    ant.echo();
    const again = await s.submit(
      "job_type: careful2\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [careful]\n",
    );
    assert.equal((await s.finished(again.id)).job.state, "COMPLETED");
  });

  it("re-sends a request answered EXECUTING with task_retry + 1 until a final status", async () => {
    // What GET /metrics serves (this server runs TLS with its own CA: read in-process).
    const dispatches = async () =>
      Number(/^colony_ant_dispatches_total (\d+)$/m.exec(await s.server.metrics.scrape())?.[1]);
    const before = await dispatches();
    const ant = await connect({ ant_id: "sensor", tags: ["sensor"], methods: ["WEBSOCKET"] });
    const job = await s.submit(
      "job_type: sensor\ntasks:\n- task_type: poll\n  method: WEBSOCKET\n  tags: [sensor]\n",
    );
    const retries: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await ant.next();
      retries.push(r.task_retry);
      ant.send({ ...r, status: i < 2 ? "EXECUTING" : "COMPLETED" });
    }
    assert.deepEqual(retries, [0, 1, 2]);
    assert.equal((await s.finished(job.id)).job.state, "COMPLETED");
    assert.equal(await dispatches(), before + 3, "/metrics counts every send, re-sends too");
  });

  it("routes to the least-loaded qualifying ant, at most max_capacity each; the rest wait", async () => {
    const a = await connect({
      ant_id: "cap-a",
      tags: ["cap"],
      methods: ["WEBSOCKET"],
      max_capacity: 2,
    });
    const b = await connect({ ant_id: "cap-b", tags: ["cap", "x"], methods: ["WEBSOCKET"] });
    const yaml = "job_type: cap\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [cap]\n";
    const jobs = [];
    for (let i = 0; i < 4; i++) jobs.push(await s.submit(yaml));
    const fromA = [await a.next(), await a.next()];
    const fromB = [await b.next()];
    await waitUntil("one task waits", async () => (await s.ants()).waiting.length === 1);
    const view = await s.ants();
    assert.equal(view.waiting[0]!.reason, "busy", "both cap ants serve it; both are full");
    assert.deepEqual(
      view.items.filter((x) => x.ant_id.startsWith("cap-")).map((x) => [x.ant_id, x.load]),
      [
        ["cap-a", 2],
        ["cap-b", 1],
      ],
    );
    b.send({ ...fromB[0]!, status: "COMPLETED" });
    const fourth = await b.next(); // room freed on b: the waiting task goes there
    for (const r of fromA) a.send({ ...r, status: "COMPLETED" });
    b.send({ ...fourth, status: "COMPLETED" });
    for (const j of jobs) assert.equal((await s.finished(j.id)).job.state, "COMPLETED");
  });

  it("an ant that disconnects mid-task loses it at once; it is retried on another ant", async () => {
    const quitter = await connect({ ant_id: "quitter", tags: ["flaky"], methods: ["WEBSOCKET"] });
    const job = await s.submit(
      "job_type: flaky\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [flaky]\n  retry: 1\n",
    );
    await quitter.next();
    const started = Date.now();
    await quitter.close();
    const steady = await connect({ ant_id: "steady", tags: ["flaky"], methods: ["WEBSOCKET"] });
    steady.echo();
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED");
    assert.deepEqual(
      tasks.map((t) => [t.state, t.errorCode ?? null, t.handle?.ant_id]),
      [
        ["FAILED", "COLONY_ANT_LOST", "quitter"],
        ["COMPLETED", null, "steady"],
      ],
    );
    assert.ok(Date.now() - started < 5000, "re-queued within seconds");
  });

  it("an ant that stops answering pings is dropped and its task retried", async () => {
    const silent = await connect({ ant_id: "silent", tags: ["quiet"], methods: ["WEBSOCKET"] });
    const job = await s.submit(
      "job_type: quiet\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [quiet]\n  retry: 1\n",
    );
    await silent.next();
    // Stop reading: pings go unanswered, as with a hung process or a dead network.
    (silent.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const started = Date.now();
    await waitUntil("silent ant dropped", () =>
      s.logs.some((l) => /ant silent stopped answering pings/.test(l)),
    );
    const steady = await connect({ ant_id: "steady-2", tags: ["quiet"], methods: ["WEBSOCKET"] });
    steady.echo();
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED");
    assert.equal(tasks[0]!.errorCode, "COLONY_ANT_LOST");
    assert.ok(Date.now() - started < 5000, `dropped after ${Date.now() - started} ms`);
    silent.ws.terminate();
  });

  it("lists ants in GET /api/ants and `colony ants list`", async () => {
    await connect({
      ant_id: "listed",
      tags: ["t1", "t2"],
      methods: ["WEBSOCKET", "SHELL"],
      max_capacity: 3,
    });
    const view = await s.ants();
    const builtin = view.items[0] as Frame;
    assert.equal(builtin.kind, "builtin");
    assert.ok((builtin.methods as string[]).includes("SHELL"));
    const r = await runCli(
      ["ants", "list", "--server", s.url, "--token", s.adminToken, "--ca", s.certs!.caCert],
      { env: { NO_COLOR: "1" } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ANT\s+KIND\s+STATE\s+LOAD\s+TAGS\s+METHODS\s+LAST SEEN/m);
    assert.match(
      r.stdout,
      /^listed\s+worker\s+connected\s+0\/3\s+t1,t2\s+WEBSOCKET,SHELL\s+(just now|\ds ago)/m,
    );
    assert.match(r.stdout, /^colony\/builtin\s+built-in\s+connected\s+\d+\/-/m);
  });
});

describe("remote ants add their max_capacity to the server's max_parallel_tasks", () => {
  let s: AntTestServer;
  const ants: RawAnt[] = [];
  before(async () => {
    s = await startAntServer({
      yaml: "ant:\n  ping_interval: 500ms\n  reconnect_grace: 1s\nmax_parallel_tasks: 1\n",
    });
  });
  after(async () => {
    await Promise.all(ants.map((a) => a.close()));
    await s.close();
  });

  it("runs as many tasks at once as the ants can take, not max_parallel_tasks", async () => {
    const connect = async (id: string) => {
      const ant = await RawAnt.connect(
        s.wsUrl,
        { ant_id: id, tags: ["wide"], methods: ["WEBSOCKET"], max_capacity: 2 },
        { token: s.antToken },
      );
      ants.push(ant);
      await waitForAnt(s, id);
      return ant;
    };
    const [a, b] = [await connect("wide-a"), await connect("wide-b")];
    const yaml = "job_type: wide\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [wide]\n";
    const jobs = [];
    for (let i = 0; i < 4; i++) jobs.push(await s.submit(yaml));
    // Four tasks in flight at once (two per ant), with max_parallel_tasks 1.
    const fromA = [await a.next(), await a.next()];
    const fromB = [await b.next(), await b.next()];
    const ids = [...fromA, ...fromB].map((r) => r.task_execution_id);
    assert.equal(new Set(ids).size, 4);
    for (const r of fromA) a.send({ ...r, status: "COMPLETED" });
    for (const r of fromB) b.send({ ...r, status: "COMPLETED" });
    for (const j of jobs) assert.equal((await s.finished(j.id)).job.state, "COMPLETED");
  });
});

describe("a task waiting for an ant holds no task slot", () => {
  let s: AntTestServer;
  before(async () => {
    s = await startAntServer({ yaml: "max_parallel_tasks: 1\n" });
  });
  after(async () => {
    await s.close();
  });

  it("the server's own tasks run while a task waits for an ant that is not there", async () => {
    const waiting = await s.submit(
      "job_type: gpu\ntasks:\n- task_type: train\n  method: WEBSOCKET\n  tags: [gpu]\n  timeout: 20s\n",
    );
    await waitUntil("the task waits", async () => (await s.ants()).waiting.length === 1);
    // With max_parallel_tasks 1, the waiting task used to hold the only slot for 20 s.
    const started = Date.now();
    const shell = await s.submit('job_type: here\ntasks:\n- task_type: t\n  script: ["true"]\n');
    assert.equal((await s.finished(shell.id)).job.state, "COMPLETED");
    assert.ok(Date.now() - started < 15_000, "it did not wait for the other task's timeout");
    assert.equal((await s.ants()).waiting.length, 1, "the other task still waits");
    await s.server.runtime.engine.cancel(waiting.id);
    assert.equal((await s.finished(waiting.id)).job.state, "CANCELLED");
  });

  it("colony submit --follow says once why a job waits for an ant, and ends when it is cancelled", async () => {
    const file = join(s.server.runtime.dataDir, "tpu-follow.yaml");
    writeFileSync(
      file,
      "job_type: tpu-follow\ntasks:\n- task_type: fit\n  method: WEBSOCKET\n  tags: [tpu]\n",
    );
    const cli = startCli(["submit", file, "--follow", "--server", s.url, "--token", s.adminToken]);
    await waitUntil("the CLI to say why the job waits", async () =>
      /waits \(COLONY_NO_ANT\)/.test(cli.stderr()),
    );
    const { items } = await s.server.runtime.store.listJobRequests({ jobType: "tpu-follow" });
    const id = items[0]!.id;
    // Deferred again meanwhile (1 s, then 2 s): still said once.
    await waitUntil("a second deferral", async () =>
      /tried 2 time/.test((await s.server.runtime.store.getJobRequest(id))?.errorMessage ?? ""),
    );
    await s.server.runtime.engine.cancel(id);
    const r = await cli.result;
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.includes("waits (COLONY_NO_ANT)"));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      new RegExp(`^job ${id} waits \\(COLONY_NO_ANT\\): waiting for an ant since .*tags tpu`),
    );
  });

  it("colony submit --follow says why a started job waits after the output of the task that ran", async () => {
    const file = join(s.server.runtime.dataDir, "ship-follow.yaml");
    writeFileSync(
      file,
      'job_type: ship-follow\ntasks:\n- task_type: build\n  script: ["echo built it"]\n' +
        "  on_completed: deploy\n- task_type: deploy\n  method: WEBSOCKET\n  tags: [moon]\n",
    );
    const cli = startCli(["submit", file, "--follow", "--server", s.url, "--token", s.adminToken]);
    await waitUntil("the CLI to say why the job waits", async () =>
      /waits \(COLONY_NO_ANT\)/.test(cli.stderr()),
    );
    const { items } = await s.server.runtime.store.listJobRequests({ jobType: "ship-follow" });
    await s.server.runtime.engine.cancel(items[0]!.id);
    const r = await cli.result;
    assert.match(r.stdout, /\[build\].*built it/);
    // State lines go to stderr, in the order they happened.
    const at = (re: RegExp) => r.stderr.split("\n").findIndex((l) => re.test(l));
    const ended = at(/\[build\].*COMPLETED/);
    assert.ok(ended >= 0 && ended < at(/waits \(COLONY_NO_ANT\)/), r.stderr);
  });

  it("jobs no connected ant serves are left PENDING and do not stop the server from claiming its own", async () => {
    // With max_parallel_tasks 1 the engine looks ahead two tasks: two waiting tasks used
    // to take that whole look-ahead, and nothing else was claimed until one timed out.
    // Now such jobs go back to PENDING (test/ants-deferral.test.ts) and hold nothing.
    const gpu = "job_type: gpu\ntasks:\n- task_type: train\n  method: WEBSOCKET\n  tags: [gpu]\n";
    const waiting = [];
    for (let i = 0; i < 3; i++) waiting.push(await s.submit(gpu));
    await waitUntil("two tasks wait", async () => (await s.ants()).waiting.length >= 2);
    const shell = await s.submit('job_type: here\ntasks:\n- task_type: t\n  script: ["true"]\n');
    const done = await Promise.race([
      s.finished(shell.id).then((f) => f.job.state),
      new Promise((resolve) => setTimeout(() => resolve("still not done after 10 s"), 10_000)),
    ]);
    assert.equal(done, "COMPLETED");
    // Nothing serves them: all three were claimed and handed back, and are listed.
    const view = await s.ants();
    assert.equal(view.waiting_total, 3);
    assert.deepEqual(
      view.waiting.map((w) => [w.job_request_id, w.execution_id, w.reason, w.left_pending]),
      waiting.map((j) => [j.id, null, "no_ant", true]),
    );
    for (const job of waiting) {
      const j = await http(`${s.url}/api/job-requests/${job.id}`, {
        headers: { authorization: s.adminToken },
      });
      assert.equal(j.json<{ state: string }>().state, "PENDING");
      assert.match(j.text, /COLONY_NO_ANT/);
    }
    const r = await runCli(["ants", "list", "--server", s.url, "--token", s.adminToken], {
      env: { NO_COLOR: "1" },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 tasks waiting for an ant:$/m);
    // The built-in ant has all six HTTP methods: one HTTP_* in the table, not six names.
    assert.match(r.stdout, /^colony\/builtin .*,SHELL,HTTP_\*,/m);
    assert.doesNotMatch(r.stdout, /HTTP_GET/);
    assert.match(r.stdout, /^JOB\s+UNIT\s+TASK\s+METHOD\s+TAGS\s+SINCE\s+WHY$/m);
    assert.match(
      r.stdout,
      new RegExp(
        `^${waiting[0]!.id}\\s+-\\s+train\\s+WEBSOCKET\\s+gpu\\s+\\S.*\\s+no connected ant serves it \\(job left PENDING\\)$`,
        "m",
      ),
    );
    const list = await runCli(
      ["jobs", "list", "--type", "gpu", "--server", s.url, "--token", s.adminToken],
      { env: { NO_COLOR: "1" } },
    );
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.match(/^\d+\s+gpu\s+PENDING \(no ant\)\s/gm)?.length, 3, list.stdout);
    // And /metrics has them by reason, for an alert on tasks no ant will ever take.
    const metrics = await http(`${s.url}/metrics`, { headers: { authorization: s.adminToken } });
    assert.match(metrics.text, /^colony_ant_tasks_waiting\{reason="no_ant"\} 3$/m);
    assert.match(metrics.text, /^colony_ant_tasks_waiting\{reason="busy"\} 0$/m);
    for (const job of waiting) await s.server.runtime.engine.cancel(job.id);
    for (const job of waiting) assert.equal((await s.finished(job.id)).job.state, "CANCELLED");
  });
});
