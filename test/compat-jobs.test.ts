/**
 * The process-jobs API (/jobs, SPEC section 8, seed 003) on the real server with real
 * tokens, real processes and real `curl`: the seed's three sessions exactly as
 * docs/compat-jobs.md shows them (also over mutual TLS), every error status, exit
 * reasons, many followers of one job's output, and restarts: a graceful stop
 * (`Service Shutdown`) and a kill -9 of a `colony server` child process.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { watchedPathCount } from "../src/core/output-follow.ts";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { http, testConfig, waitUntil, type HttpAnswer } from "./support/server-harness.ts";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.ts";

const quiet = { log: () => undefined };
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NODE = process.execPath;

interface Job {
  id: string;
  command: string;
  status: string;
  logs: string;
  reasonForExit: string;
}

interface JobsServer {
  server: RunningServer;
  url: string;
  writer: string;
  reader: string;
  admin: string;
  close(): Promise<void>;
}

async function makeToken(url: string, admin: string, role: string, ca?: string) {
  const res = await http(`${url}/api/tokens`, {
    headers: { authorization: admin },
    json: { role, name: `seed-${role}` },
    ...(ca ? { ca } : {}),
  });
  assert.equal(res.status, 201, res.text);
  return res.json<{ token: string }>().token;
}

/** A real server (startServer) on a fresh data dir with a writer and a reader token. */
async function jobsServer(
  options: { yaml?: string; tls?: TestCerts; base?: string } = {},
): Promise<JobsServer> {
  const dir = options.base ? undefined : tempDir("colony-jobs-");
  const base = options.base ?? dir!.path;
  const tls = options.tls;
  const config = testConfig(base, {
    ...(options.yaml === undefined ? {} : { yaml: options.yaml }),
    overrides: tls
      ? { tlsCert: tls.serverCert, tlsKey: tls.serverKey, tlsClientCa: tls.caCert }
      : {},
  });
  const server = await startServer(config, { ...quiet, routes: ALL_ROUTES });
  try {
    const admin = readFileSync(server.adminTokenFile!, "utf8").trim();
    if (tls) {
      // Every request must present a client certificate the CA signed.
      const client = tls.client("seed-client");
      const ca = tls.caCert;
      const token = (role: string) =>
        http(`${server.url}/api/tokens`, {
          headers: { authorization: admin },
          json: { role, name: `seed-${role}` },
          ca,
          ...client,
        }).then((r) => r.json<{ token: string }>().token);
      return {
        server,
        url: server.url.replace("127.0.0.1", "localhost"),
        admin,
        writer: await token("writer"),
        reader: await token("reader"),
        close: async () => {
          await server.close({ graceMs: 0 });
          dir?.remove();
        },
      };
    }
    return {
      server,
      url: server.url,
      admin,
      writer: await makeToken(server.url, admin, "writer"),
      reader: await makeToken(server.url, admin, "reader"),
      close: async () => {
        await server.close({ graceMs: 0 });
        dir?.remove();
      },
    };
  } catch (error) {
    await server.close({ graceMs: 0 });
    dir?.remove();
    throw error;
  }
}

// -- the seed's sessions, from the docs --------------------------------------------------

interface Session {
  script: string;
  /** The JSON answers after `# =>`, in order. */
  expected: Record<string, unknown>[];
}

function docSession(name: string): Session {
  const doc = readFileSync(new URL("../docs/compat-jobs.md", import.meta.url), "utf8");
  const match = new RegExp(`<!-- session: ${name} -->\\n\`\`\`shell\\n([\\s\\S]*?)\`\`\``).exec(
    doc,
  );
  assert.ok(match, `docs/compat-jobs.md has no session '${name}'`);
  const script = match[1]!;
  const expected = script
    .split("\n")
    .filter((line) => line.startsWith("# => "))
    .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);
  return { script, expected };
}

/**
 * Runs a session with bash and real curl. Each curl answer is followed by a newline so
 * the answers can be told apart; over TLS every curl presents the client certificate.
 */
function runSession(
  script: string,
  env: { url: string; writer: string; reader: string },
  tls?: { ca: string; cert: string; key: string },
): Promise<{ answers: Record<string, unknown>[]; stderr: string }> {
  const flags = tls ? `--cert "${tls.cert}" --key "${tls.key}" --cacert "${tls.ca}" ` : "";
  const prelude =
    "set -e\n" + `curl() { command curl ${flags}"$@"; local rc=$?; echo; return $rc; }\n`;
  return new Promise((resolve, reject) => {
    execFile(
      "bash",
      ["-c", prelude + script],
      {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          COLONY_URL: env.url,
          WRITER: env.writer,
          READER: env.reader,
        },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`session failed: ${error.message}\n${stderr}`));
        const answers = stdout
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        resolve({ answers, stderr });
      },
    );
  });
}

/** Deep equality where an expected string ending in `...` matches any string it starts. */
function matches(expected: unknown, actual: unknown): boolean {
  if (typeof expected === "string" && expected.endsWith("...")) {
    return typeof actual === "string" && actual.startsWith(expected.slice(0, -3));
  }
  if (expected && typeof expected === "object") {
    if (!actual || typeof actual !== "object") return false;
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    const keys = Object.keys(e);
    return (
      keys.length === Object.keys(a).length && keys.every((k) => k in a && matches(e[k], a[k]))
    );
  }
  return expected === actual;
}

/** Every expected answer appears among the answers, in order. */
function assertAnswers(session: Session, answers: Record<string, unknown>[]): void {
  let at = 0;
  for (const expected of session.expected) {
    const found = answers.findIndex((a, i) => i >= at && matches(expected, a));
    assert.ok(
      found >= 0,
      `expected ${JSON.stringify(expected)} among the answers ${JSON.stringify(answers, null, 1)}`,
    );
    at = found + 1;
  }
}

describe("process jobs: the seed's curl sessions", () => {
  it("creates and starts `ls -lah`; 3 s later it is stopped with its output and `process finished`", async () => {
    const s = await jobsServer();
    try {
      const session = docSession("create-start-logs");
      const { answers } = await runSession(session.script, s);
      assertAnswers(session, answers);
      const last = answers.at(-1) as unknown as Job;
      assert.equal(last.id, "0000");
      assert.match(last.logs, /^total \d/);
      assert.match(last.logs, / package\.json\n/);
    } finally {
      await s.close();
    }
  });

  it("stops `sleep 60` with reason `timeout` (default timeout set to 1 s)", async () => {
    const s = await jobsServer({ yaml: "jobs_api:\n  default_timeout: 1s\n" });
    try {
      const session = docSession("timeout");
      assert.match(session.script, /sleep 35 &&/);
      const { answers } = await runSession(session.script.replace("sleep 35", "sleep 2"), s);
      assertAnswers(session, answers);
    } finally {
      await s.close();
    }
  });

  it("stops `sleep 20` through the API with reason `API`", async () => {
    const s = await jobsServer();
    try {
      const session = docSession("stop");
      const { answers } = await runSession(session.script, s);
      assertAnswers(session, answers);
      assert.equal(session.expected.length, 2);
    } finally {
      await s.close();
    }
  });

  it("runs over TLS with a verified client certificate, as the seed's `--cert` meant", async () => {
    const dir = tempDir("colony-jobs-tls-");
    const certs = makeTestCerts(dir.path);
    const s = await jobsServer({ tls: certs, base: dir.path });
    try {
      const client = certs.client("seed-client");
      const tls = { ca: certs.caCert, ...client };
      const session = docSession("create-start-logs");
      const { answers } = await runSession(session.script, s, tls);
      assertAnswers(session, answers);
      // Without a client certificate the TLS handshake or the request is refused.
      const refused = await runSession(
        `curl -s --cacert "${certs.caCert}" -o /dev/null -w '{"status": "%{http_code}"}' ` +
          `-X POST $COLONY_URL/jobs -H "Authorization: $WRITER" -d '{"command": "true"}' || ` +
          `echo '{"status": "refused"}'`,
        s,
      );
      assert.notEqual(refused.answers[0]?.status, "201", JSON.stringify(refused.answers));
    } finally {
      await s.close();
      dir.remove();
    }
  });
});

// -- the rest of SPEC section 8 ----------------------------------------------------------

describe("process jobs: statuses, errors and output", () => {
  let s: JobsServer;
  before(async () => {
    s = await jobsServer({ yaml: "jobs_api:\n  stop_grace: 1s\n" });
  });
  after(async () => {
    await s?.close();
  });

  const call = (
    method: string,
    path: string,
    options: { token?: string; body?: string; type?: string } = {},
  ): Promise<HttpAnswer> =>
    http(`${s.url}${path}`, {
      method,
      headers: {
        ...(options.token === undefined ? {} : { authorization: options.token }),
        ...(options.type === undefined ? {} : { "content-type": options.type }),
      },
      ...(options.body === undefined ? {} : { body: options.body }),
    });
  const create = async (command: string, extra: Record<string, unknown> = {}) => {
    const res = await call("POST", "/jobs", {
      token: s.writer,
      body: JSON.stringify({ command, ...extra }),
      type: "application/json",
    });
    assert.equal(res.status, 201, res.text);
    return res.json<Job>();
  };
  const put = (id: string, status: string, token = s.writer) =>
    call("PUT", `/jobs/${id}`, { token, body: JSON.stringify({ status }) });
  const get = async (id: string) => {
    const res = await call("GET", `/jobs/${id}`, { token: s.reader });
    assert.equal(res.status, 200, res.text);
    return res.json<Job>();
  };
  const finished = async (id: string) => {
    let job: Job | undefined;
    await waitUntil(`job ${id} to stop`, async () => (job = await get(id)).status === "stopped");
    return job!;
  };
  const code = (res: HttpAnswer) => res.json<{ error: { code: string } }>().error.code;

  it("answers 201 with the created job and its Location, for JSON, form-encoded and untyped bodies", async () => {
    const res = await call("POST", "/jobs", {
      token: s.writer,
      body: '{"command": "echo hi"}',
      type: "application/json",
    });
    assert.equal(res.status, 201);
    const job = res.json<Job>();
    assert.match(job.id, /^\d{4}$/);
    assert.equal(res.headers.location, `/jobs/${job.id}`);
    assert.deepEqual(job, {
      id: job.id,
      command: "echo hi",
      status: "created",
      logs: "",
      reasonForExit: "",
    });
    assert.deepEqual(await get(job.id), job);
    assert.deepEqual(await get(String(Number(job.id))), job, "/jobs/7 is /jobs/0007");
    const none = await call("GET", `/jobs/${job.id}/logs?follow=0`, { token: s.reader });
    assert.equal(none.status, 200);
    assert.equal(none.text, "", "a job not started has no output yet");
    for (const [type, body, command] of [
      ["application/x-www-form-urlencoded", '{"command": "echo form"}', "echo form"],
      ["application/x-www-form-urlencoded", "command=echo+plain+form", "echo plain form"],
      ["text/plain", '{"command": "echo text"}', "echo text"],
      [undefined, '{"command": "echo untyped"}', "echo untyped"],
    ] as const) {
      const r = await call("POST", "/jobs", { token: s.writer, body, ...(type ? { type } : {}) });
      assert.equal(r.status, 201, `${type}: ${r.text}`);
      assert.equal(r.json<Job>().command, command);
    }
  });

  it("answers 400 for malformed JSON, a missing or empty command, unknown fields and bad timeouts", async () => {
    const cases: Array<[string, string | undefined, RegExp]> = [
      ['{"command": "ls"', "COLONY_MALFORMED_JSON", /position \d+/],
      ["{}", "COLONY_VALIDATION", /command/],
      ['{"command": ""}', "COLONY_VALIDATION", /^.*"body.command: must not be empty"/],
      ['{"command": "   "}', "COLONY_VALIDATION", /command: is empty/],
      ['{"command": "ls", "user": "root"}', "COLONY_VALIDATION", /user/],
      ['{"command": "ls", "timeout": "soon"}', "COLONY_VALIDATION", /timeout: 'soon'/],
      ['{"command": "ls", "timeout": "0s"}', "COLONY_VALIDATION", /positive/],
      ['["ls"]', "COLONY_VALIDATION", /object/],
    ];
    for (const [body, expectedCode, message] of cases) {
      const res = await call("POST", "/jobs", { token: s.writer, body, type: "application/json" });
      assert.equal(res.status, 400, `${body}: ${res.text}`);
      assert.equal(code(res), expectedCode, body);
      assert.match(res.text, message, body);
    }
    // curl -d sends application/x-www-form-urlencoded; the body is still read as JSON, so
    // the message is about the field, not about the Content-Type.
    const formExtra = await call("POST", "/jobs", {
      token: s.writer,
      body: '{"command": "ls", "user": "root"}',
      type: "application/x-www-form-urlencoded",
    });
    assert.equal(formExtra.status, 400);
    assert.equal(
      formExtra.json<{ error: { message: string } }>().error.message,
      "body: unknown field 'user'",
    );
    const job = await create("true");
    const bad = await put(job.id, "running");
    assert.equal(bad.status, 400);
    assert.match(
      bad.json<{ error: { message: string } }>().error.message,
      /"started" or "stopped"/,
    );
    const malformed = await call("PUT", `/jobs/${job.id}`, { token: s.writer, body: "{status" });
    assert.equal(malformed.status, 400);
    assert.equal(code(malformed), "COLONY_MALFORMED_JSON");
    assert.equal((await get(job.id)).status, "created", "bad input changes nothing");
  });

  it("answers 404 for unknown ids on every route", async () => {
    for (const [method, path, token, body] of [
      ["GET", "/jobs/9999", s.reader, undefined],
      ["GET", "/jobs/abc", s.reader, undefined],
      ["GET", "/jobs/9999/logs", s.reader, undefined],
      ["PUT", "/jobs/9999", s.writer, '{"status": "started"}'],
      ["PUT", "/jobs/-1", s.writer, '{"status": "stopped"}'],
    ] as const) {
      const res = await call(method, path, { token, ...(body ? { body } : {}) });
      assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
      assert.equal(code(res), "COLONY_UNKNOWN_PROCESS_JOB");
    }
  });

  it("answers 422 for a wrong transition and changes nothing", async () => {
    const job = await create("sleep 30");
    const stopCreated = await put(job.id, "stopped");
    assert.equal(stopCreated.status, 422);
    assert.match(stopCreated.text, /is created; only a started job can be stopped/);
    assert.equal((await put(job.id, "started")).status, 200);
    const startStarted = await put(job.id, "started");
    assert.equal(startStarted.status, 422);
    assert.match(startStarted.text, /is started; only a created job can be started/);
    const stopped = await put(job.id, "stopped");
    assert.equal(stopped.status, 200);
    assert.equal(stopped.json<Job>().reasonForExit, "API");
    for (const status of ["started", "stopped"]) {
      const res = await put(job.id, status);
      assert.equal(res.status, 422, status);
      assert.equal(code(res), "COLONY_WRONG_TRANSITION");
    }
    assert.equal((await get(job.id)).reasonForExit, "API");
  });

  it("answers 401 without or with an unknown token and 403 when a reader writes", async () => {
    const job = await create("true");
    for (const token of [undefined, "writer", "reader", `Bearer ${s.writer}x`]) {
      const res = await call("GET", `/jobs/${job.id}`, token === undefined ? {} : { token });
      assert.equal(res.status, 401, `token ${token}`);
      assert.equal(code(res), "COLONY_UNAUTHENTICATED");
    }
    const post = await call("POST", "/jobs", { token: s.reader, body: '{"command": "id"}' });
    assert.equal(post.status, 403);
    assert.equal(code(post), "COLONY_FORBIDDEN");
    assert.equal((await put(job.id, "started", s.reader)).status, 403);
    assert.equal((await get(job.id)).status, "created");
    // Bearer works as well as the bare token, and writers and admins may read.
    for (const token of [`Bearer ${s.reader}`, s.writer, s.admin]) {
      assert.equal((await call("GET", `/jobs/${job.id}`, { token })).status, 200);
    }
  });

  it("says why a process ended: exit status, signal, not found, and bash -c semantics", async () => {
    const cases: Array<[string, string, string]> = [
      ["echo oops >&2; exit 1", "process finished with error: exit status 1", "oops\n"],
      ["kill -9 $$", "process finished with error: signal: killed", ""],
      ["no-such-command-here", "process finished with error: exit status 127", "not found"],
      // Plain bash -c: no `set -e`, so the last command's status counts.
      ["false; echo still here", "process finished", "still here\n"],
      ["printf 'ü\\n'; echo $COLONY_PROCESS_JOB_ID", "process finished", "ü\n"],
    ];
    const jobs = [];
    for (const [command] of cases) {
      const job = await create(command);
      assert.equal((await put(job.id, "started")).status, 200);
      jobs.push(job);
    }
    for (const [i, [command, reason, logs]] of cases.entries()) {
      const job = await finished(jobs[i]!.id);
      assert.equal(job.reasonForExit, reason, command);
      assert.ok(job.logs.includes(logs), `${command}: ${JSON.stringify(job.logs)}`);
    }
    assert.equal((await get(jobs[4]!.id)).logs, `ü\n${jobs[4]!.id}\n`);
  });

  it("applies a job's own timeout and kills a process that ignores SIGTERM", async () => {
    const job = await create("trap '' TERM; echo stubborn; sleep 30", { timeout: "300ms" });
    const started = Date.now();
    assert.equal((await put(job.id, "started")).status, 200);
    const stopped = await finished(job.id);
    assert.equal(stopped.reasonForExit, "timeout");
    assert.equal(stopped.logs, "stubborn\n");
    // The output ends once SIGKILL (after the 1 s stop grace) ended the whole group.
    const res = await call("GET", `/jobs/${job.id}/logs`, { token: s.reader });
    assert.equal(res.text, "stubborn\n");
    assert.ok(Date.now() - started < 15_000);
  });

  it("keeps `logs` to the last 1 MiB and says how much it left out; /logs has all of it", async () => {
    const job = await create("head -c 1100000 /dev/zero | tr '\\0' x; echo; echo tail-end");
    assert.equal((await put(job.id, "started")).status, 200);
    await finished(job.id);
    const res = await call("GET", `/jobs/${job.id}`, { token: s.reader });
    const logs = res.json<Job>().logs;
    assert.equal(logs.length, 1024 * 1024);
    assert.ok(logs.endsWith("x\ntail-end\n"));
    assert.equal(Number(res.headers["x-colony-logs-omitted-bytes"]), 1100010 - 1024 * 1024);
    const all = await call("GET", `/jobs/${job.id}/logs?follow=0`, { token: s.reader });
    assert.equal(all.text.length, 1100010);
  });

  it("streams the whole output to 10 concurrent followers, attached before and during the run", async () => {
    // About 1.3 MB written over about a second, in 20 bursts.
    const command =
      "for i in $(seq 0 19); do seq $((i*10000)) $((i*10000+9999)); sleep 0.05; done; echo end";
    let expected = "";
    for (let i = 0; i < 200_000; i++) expected += `${i}\n`;
    expected += "end\n";
    const job = await create(command);
    const follow = () =>
      new Promise<{ bytes: string; status: number }>((resolve, reject) => {
        const req = httpRequest(
          `${s.url}/jobs/${job.id}/logs`,
          { headers: { authorization: s.reader }, agent: false },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("error", reject);
            res.on("end", () =>
              resolve({ bytes: Buffer.concat(chunks).toString(), status: res.statusCode ?? 0 }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });
    const early = Array.from({ length: 5 }, follow);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await put(job.id, "started")).status, 200);
    await new Promise((r) => setTimeout(r, 300));
    const late = Array.from({ length: 5 }, follow);
    const results = await Promise.all([...early, ...late]);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200);
      assert.equal(r.bytes.length, expected.length, `follower ${i} byte count`);
      assert.ok(r.bytes === expected, `follower ${i} got every byte in order`);
    }
    assert.equal((await get(job.id)).reasonForExit, "process finished");
    await waitUntil("the followers to release their file watch", () => watchedPathCount() === 0);
  });

  it("lists the routes in the OpenAPI document", async () => {
    const res = await call("GET", "/api/openapi.json", { token: s.reader });
    const paths = res.json<{ paths: Record<string, Record<string, unknown>> }>().paths;
    assert.ok(paths["/jobs"]?.post);
    assert.ok(paths["/jobs/{id}"]?.put && paths["/jobs/{id}"]?.get);
    assert.ok(paths["/jobs/{id}/logs"]?.get);
  });
});

// -- restarts ------------------------------------------------------------------------------

describe("process jobs: restarts", () => {
  it("stops running jobs with `Service Shutdown` on a graceful stop; followers get all output; state survives", async () => {
    const dir = tempDir("colony-jobs-restart-");
    let s: JobsServer | undefined = await jobsServer({ base: dir.path });
    try {
      const headers = { authorization: s.writer, "content-type": "application/json" };
      const post = async (command: string) =>
        (await http(`${s!.url}/jobs`, { headers, body: JSON.stringify({ command }) })).json<Job>();
      const running = await post("echo begin; trap 'echo got TERM; exit 3' TERM; sleep 60 & wait");
      const waiting = await post("echo never started");
      const put = await http(`${s.url}/jobs/${running.id}`, {
        method: "PUT",
        headers,
        body: '{"status": "started"}',
      });
      assert.equal(put.status, 200);
      await waitUntil("the job's first output", async () => {
        const r = await http(`${s!.url}/jobs/${running.id}`, { headers });
        return r.json<Job>().logs === "begin\n";
      });
      const follower = http(`${s.url}/jobs/${running.id}/logs`, { headers });
      const idle = http(`${s.url}/jobs/${waiting.id}/logs`, { headers });
      await new Promise((r) => setTimeout(r, 200));
      await s.server.close();
      s = undefined;
      assert.equal((await follower).text, "begin\ngot TERM\n");
      assert.equal((await idle).text, "");

      s = await jobsServer({ base: dir.path });
      const after = await http(`${s.url}/jobs/${running.id}`, {
        headers: { authorization: s.reader },
      });
      assert.deepEqual(after.json<Job>(), {
        id: running.id,
        command: running.command,
        status: "stopped",
        logs: "begin\ngot TERM\n",
        reasonForExit: "Service Shutdown",
      });
      const still = await http(`${s.url}/jobs/${waiting.id}`, {
        headers: { authorization: s.reader },
      });
      assert.equal(still.json<Job>().status, "created");
    } finally {
      await s?.server.close({ graceMs: 0 });
      dir.remove();
    }
  });

  it("after kill -9: re-attaches a live process, records exits that happened meanwhile, and never leaves a job started", async () => {
    const dir = tempDir("colony-jobs-crash-");
    const dataDir = `${dir.path}/data`;
    const children: ChildProcess[] = [];
    /** Process groups of the jobs, killed at the end whatever happened. */
    const groups: number[] = [];
    const serve = async () => {
      const child = spawn(NODE, ["bin/colony.js", "server", "--data-dir", dataDir, "--port", "0"], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
      });
      children.push(child);
      let out = "";
      child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
      await waitUntil("the server to listen", () => /listening on (http\S+)/.test(out));
      return { child, url: /listening on (http\S+)/.exec(out)![1]! };
    };
    /** Running (not gone, not a zombie nobody reaped yet). */
    const alive = (pid: number) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]!);
      } catch {
        return false;
      }
    };
    let first = await serve();
    try {
      const admin = readFileSync(`${dataDir}/admin.token`, "utf8").trim();
      const writer = await makeToken(first.url, admin, "writer");
      const run = async (url: string, command: string, extra = {}) => {
        const headers = { authorization: writer, "content-type": "application/json" };
        const job = (
          await http(`${url}/jobs`, { headers, body: JSON.stringify({ command, ...extra }) })
        ).json<Job>();
        const res = await http(`${url}/jobs/${job.id}`, {
          method: "PUT",
          headers,
          body: '{"status": "started"}',
        });
        assert.equal(res.status, 200, res.text);
        return job.id;
      };
      const live = await run(first.url, "echo one; sleep 1.5; echo two; sleep 60");
      const quick = await run(first.url, "sleep 0.3; echo quick");
      const vanished = await run(first.url, "sleep 60");
      const late = await run(first.url, "sleep 60", { timeout: "1s" });
      await new Promise((r) => setTimeout(r, 200));

      // Crash: the server dies at once; its spawner lives on and records exits.
      first.child.kill("SIGKILL");
      await new Promise((r) => first.child.once("exit", r));
      const db = new DatabaseSync(`${dataDir}/colony.db`);
      const rows = db.prepare("SELECT id, unit_id, handle FROM process_jobs").all() as Array<{
        id: number;
        unit_id: string;
        handle: string;
      }>;
      // The exit file is in the job's unit dir (the handle holds the pid).
      const handles = new Map(
        rows.map((r) => [
          String(r.id).padStart(4, "0"),
          {
            pid: (JSON.parse(r.handle) as { pid: number }).pid,
            exitPath: `${dataDir}/units/${r.unit_id}/exit`,
          },
        ]),
      );
      db.close();
      for (const h of handles.values()) groups.push(h.pid);
      // `quick` ends while no server runs; the spawner records its exit.
      const exited = () => {
        try {
          return readFileSync(handles.get(quick)!.exitPath, "utf8") !== "";
        } catch {
          return false;
        }
      };
      await waitUntil("the quick job's recorded exit", exited);
      // `vanished` leaves no trace: its spawner and its process die without a record.
      const spawners = await new Promise<string>((resolve) =>
        execFile("pgrep", ["-f", "spawner\\.p[ly]"], (_e, stdout) => resolve(stdout)),
      );
      const vanishedPid = handles.get(vanished)!.pid;
      for (const pid of spawners.split("\n").filter(Boolean).map(Number)) {
        // Only the spawner that is the parent of our processes.
        const stat = readFileSync(`/proc/${vanishedPid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (pid === ppid) process.kill(pid, "SIGKILL");
      }
      process.kill(-vanishedPid, "SIGKILL");
      await new Promise((r) => setTimeout(r, 1200)); // `late` passes its timeout meanwhile

      const second = await serve();
      first = second;
      const read = async (id: string) =>
        (
          await http(`${second.url}/jobs/${id}`, { headers: { authorization: writer } })
        ).json<Job>();
      assert.equal((await read(live)).status, "started", "a live process is re-attached");
      assert.equal((await read(quick)).reasonForExit, "process finished");
      assert.equal((await read(quick)).logs, "quick\n");
      assert.equal((await read(vanished)).status, "stopped");
      assert.equal((await read(vanished)).reasonForExit, "Service Shutdown");
      await waitUntil(
        "the late job to time out",
        async () => (await read(late)).status === "stopped",
      );
      assert.equal((await read(late)).reasonForExit, "timeout");
      // The stop is recorded, then the process is signalled: it dies right after.
      await waitUntil(
        "the late job's process to die",
        () => !alive(handles.get(late)!.pid),
        10_000,
      );
      // The re-attached job is followed to its output's end and stopped by the API.
      await waitUntil(
        "the live job's later output",
        async () => (await read(live)).logs === "one\ntwo\n",
      );
      const stop = await http(`${second.url}/jobs/${live}`, {
        method: "PUT",
        headers: { authorization: writer },
        body: '{"status": "stopped"}',
      });
      assert.equal(stop.status, 200, stop.text);
      assert.equal(stop.json<Job>().reasonForExit, "API");
      assert.ok(!alive(handles.get(live)!.pid), "the re-attached process was stopped");
    } finally {
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          await new Promise((r) => child.once("exit", r));
        }
      }
      for (const pgid of groups) {
        try {
          process.kill(-pgid, "SIGKILL");
        } catch {
          // gone, as it should be
        }
      }
      dir.remove();
    }
  });
});
