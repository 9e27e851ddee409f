/**
 * `colony ant` as a second process (the real CLI) against a real server: tasks with its
 * tags run there and their output streams into the server while they run; a short
 * disconnect (a TCP proxy dropping the connection) loses nothing; killing the ant
 * mid-task sends its task to another ant and the job completes.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { join } from "node:path";
import { ROOT, runCli, startCli, tempDir } from "./support/cli.ts";
import { startFakeKubeApi } from "./support/fake-kube-api.ts";
import { docker } from "./support/services.ts";
import { makeTestCerts } from "./support/tls-certs.ts";
import {
  startAntServer,
  untilAntConnected,
  waitUntil,
  type AntTestServer,
} from "./support/ants.ts";
import { freePort } from "./support/nodes.ts";
import { http } from "./support/server-harness.ts";

/** A TCP proxy to `port` whose connections the test can cut. */
async function startProxy(
  port: number,
): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const cut = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    port: (server.address() as AddressInfo).port,
    cut,
    close() {
      cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const dockerService = await docker();

/** A task execution's whole output on the server. */
async function outputOf(s: AntTestServer, executionId: string): Promise<string> {
  let text = "";
  for await (const c of await s.server.runtime.engine.outputStream(executionId))
    text += (c as Buffer).toString();
  return text;
}

describe("colony ant (a second process)", () => {
  let s: AntTestServer;
  const dir = tempDir("colony-agent-");
  const children: ChildProcess[] = [];
  const pids: number[] = [];

  async function startAnt(
    id: string,
    server: string,
    extra: string[] = [],
  ): Promise<{ child: ChildProcess; stderr: () => string }> {
    const run = startCli([
      "ant",
      "--server",
      server,
      "--token",
      s.antToken,
      "--ant-id",
      id,
      "--data-dir",
      `${dir.path}/${id}`,
      ...extra,
    ]);
    children.push(run.child);
    await untilAntConnected(s, run, id);
    return { child: run.child, stderr: run.stderr };
  }

  /** Submits a job (its YAML lines), waits for its end, asserts it COMPLETED: its tasks. */
  async function completed(lines: string[]) {
    const job = await s.submit(lines.join("\n"));
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
    return tasks;
  }

  before(async () => {
    s = await startAntServer({
      yaml: "ant:\n  ping_interval: 1s\n  reconnect_grace: 2s\n",
    });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const pid of pids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await s.close();
    dir.remove();
  });

  it("runs tasks with its tags, streams their output live, and reports results and outputs", async () => {
    await startAnt("builder", s.url, [
      "--tags",
      "linux,build",
      "--methods",
      "SHELL,HTTP_GET",
      "--max-capacity",
      "2",
    ]);
    const job = await s.submit(
      [
        "job_type: build",
        "tasks:",
        "- task_type: compile",
        "  tags: [linux, build]",
        "  script:",
        "    - echo start",
        "    - sleep 1",
        "    - echo ::set-output name=artifact::app-1.0",
        "    - echo end",
        "  on_completed: here",
        "- task_type: here",
        "  script: ['echo built {{.artifact}} here']",
      ].join("\n"),
    );
    const engine = s.server.runtime.engine;
    let compileId = "";
    await waitUntil("compile runs", async () => {
      const t = (await engine.getJob(job.id)).tasks.find((x) => x.taskType === "compile");
      compileId = t?.state === "EXECUTING" ? t.id : "";
      return compileId !== "";
    });
    // Follow its output on the server while it runs: "start" arrives before the end.
    const stream = await engine.outputStream(compileId, { follow: true });
    let text = "";
    let sawStartWhileRunning = false;
    for await (const chunk of stream) {
      text += (chunk as Buffer).toString();
      if (/start\n/.test(text) && !/end\n/.test(text)) {
        const t = (await engine.getJob(job.id)).tasks.find((x) => x.id === compileId);
        if (t?.state === "EXECUTING") sawStartWhileRunning = true;
      }
    }
    assert.equal(text, "start\n::set-output name=artifact::app-1.0\nend\n");
    assert.ok(sawStartWhileRunning, "output arrived while the task ran");
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
    const compile = tasks.find((t) => t.taskType === "compile")!;
    assert.equal(compile.handle?.ant_id, "builder");
    assert.equal(compile.context.artifact, "app-1.0");
    const here = tasks.find((t) => t.taskType === "here")!;
    assert.equal(here.handle?.ant_id, undefined, "a task without tags runs on the built-in ant");
    const out = await engine.outputStream(here.id);
    let hereText = "";
    for await (const c of out) hereText += (c as Buffer).toString();
    assert.equal(hereText, "built app-1.0 here\n");
  });

  it("moves artifacts and dependencies itself: a remote task's files reach later tasks there and here", async () => {
    await startAnt("artisan", s.url, ["--tags", "art"]);
    const tasks = await completed([
      "job_type: art",
      "tasks:",
      "- task_type: build",
      "  tags: [art]",
      "  script:",
      '    - pwd; echo "work dir $COLONY_WORK_DIR"',
      "    - mkdir -p out && echo hello > out/app.txt",
      "    - printf '#!/bin/sh\\necho tool ran\\n' > tool.sh && chmod +x tool.sh",
      "  artifacts:",
      "    paths: [out, tool.sh, missing.txt]",
      "    expires_after: 1h",
      "  on_completed: use-there",
      "- task_type: use-there",
      "  tags: [art]",
      "  dependencies: [build]",
      "  script: ['cat out/app.txt', './tool.sh']",
      "  on_completed: use-here",
      "- task_type: use-here",
      "  dependencies: [build]",
      "  script: ['cat out/app.txt', './tool.sh']",
    ]);
    const output = async (taskType: string) => {
      const t = tasks.find((x) => x.taskType === taskType)!;
      return { t, text: await outputOf(s, t.id) };
    };
    const build = await output("build");
    assert.equal(build.t.handle?.ant_id, "artisan");
    // It ran in its own work dir on the ant, not in the server's.
    const workDir = `${dir.path}/artisan/units/${build.t.id}/work`;
    assert.match(build.text, new RegExp(`^${workDir}\nwork dir ${workDir}\n`));
    assert.match(build.text, /colony: stored 2 artifacts: out\/app\.txt, tool\.sh\n/);
    assert.match(build.text, /colony: artifacts path 'missing\.txt' matched no file\n/);
    const stored = await s.server.runtime.store.asyncActions.listArtifacts({
      taskExecutionId: build.t.id,
      limit: 10,
    });
    assert.deepEqual(stored.items.map((a) => a.name).sort(), ["out/app.txt", "tool.sh"]);
    for (const a of stored.items) {
      const left = a.expiresAt!.getTime() - Date.now();
      assert.ok(left > 50 * 60_000 && left <= 3600_000, `${a.name} expires after its task's 1h`);
    }
    const there = await output("use-there");
    assert.equal(there.t.handle?.ant_id, "artisan");
    assert.match(there.text, /^colony: fetched 2 artifact files into .*\nhello\ntool ran\n$/);
    const here = await output("use-here");
    assert.equal(here.t.handle?.ant_id, undefined);
    assert.match(here.text, /hello\ntool ran\n$/);
  });

  /** `colony ant` against the test server with this token and data dir, to its end. */
  const antWith = (token: string, dataDir: string) =>
    runCli(["ant", "--server", s.url, "--token", token, "--data-dir", dataDir]);

  it("a SIGTERM sent the moment it says it is connected disconnects it cleanly", async () => {
    // Its handler is installed before that line: a supervisor that signals on seeing it
    // must get a clean stop, not a process killed by the signal (exit code null).
    for (let i = 0; i < 3; i++) {
      const run = startCli([
        "ant",
        "--server",
        s.url,
        "--token",
        s.antToken,
        "--ant-id",
        `early-term-${i}`,
        "--data-dir",
        `${dir.path}/early-term-${i}`,
      ]);
      children.push(run.child);
      run.child.stdout!.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("connected to")) run.child.kill("SIGTERM");
      });
      const exit = await run.result;
      assert.equal(exit.code, 0, exit.stderr);
      assert.match(exit.stderr, /SIGTERM: cancelling running tasks and disconnecting/);
    }
  });

  it("a wrong token stops it at once with one line that says so (no reconnecting)", async () => {
    const r = await antWith("not-a-token", `${dir.path}/wrong-token`);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.stderr.trim().split("\n"), [
      `colony ant: ${s.url.replace(/^http/, "ws")}/ws/ants answered HTTP 401 (check the token: it needs role ant)`,
    ]);
  });

  it("refuses a server that is not a URL, and a method it cannot run, saying what it takes", async () => {
    const notUrl = await runCli(["ant", "--server", "colony-host", "--token", "t"]);
    assert.equal(notUrl.code, 2, notUrl.stderr);
    assert.equal(
      notUrl.stderr,
      "colony ant: 'colony-host' is not a URL of a colony server; write e.g. http://host:7777 or ws://host:7777\n",
    );
    // HTTP_* (as colony ants list writes them) names the six HTTP methods.
    const fn = await runCli([
      "ant",
      "--server",
      s.url,
      "--token",
      "t",
      "--methods",
      "HTTP_*,FUNCTION",
    ]);
    assert.equal(fn.code, 2, fn.stderr);
    assert.match(
      fn.stderr,
      /^colony ant: this agent cannot run FUNCTION; it runs SHELL, HTTP_GET, .*HTTP_DELETE, and DOCKER and KUBERNETES when asked for\n$/,
    );
  });

  it("a data dir it cannot use stops it at once, saying which and why", async () => {
    const r = await antWith(s.antToken, join(ROOT, "package.json", "ant"));
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^colony ant: cannot use .*package\.json\/ant as the data dir: a part of the path is a file, not a directory \(ENOTDIR\);.*\[COLONY_DATA_DIR\]\n$/,
    );
  });

  it("offers DOCKER only where an engine answers, and says where it looked", async () => {
    const r = await runCli(
      [
        "ant",
        "--server",
        s.url,
        "--token",
        s.antToken,
        "--methods",
        "SHELL,DOCKER",
        "--data-dir",
        `${dir.path}/no-engine`,
      ],
      { env: { DOCKER_HOST: `unix://${dir.path}/no-such.sock`, COLONY_CONFIG: "" } },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot offer DOCKER here: no Docker engine answers/);
    // And why: the engine's address and the error, from the executor's own check.
    assert.match(
      r.stderr,
      /the Docker engine cannot be used: cannot reach the Docker engine at unix:\/\/\S+\/no-such\.sock \(ENOENT\)/,
    );
  });

  it(
    "runs DOCKER tasks with this machine's engine, output streamed like a shell task's",
    { skip: dockerService.url ? false : dockerService.reason },
    async () => {
      await startAnt("docker-ant", s.url, ["--tags", "dock", "--methods", "SHELL,DOCKER"]);
      const tasks = await completed([
        "job_type: dock",
        "tasks:",
        "- task_type: boxed",
        "  method: DOCKER",
        "  tags: [dock]",
        "  container:",
        `    image: ${dockerService.image}`,
        "  script: ['echo in a container', 'echo ::set-output name=where::box']",
      ]);
      const boxed = tasks[0]!;
      assert.equal(boxed.handle?.ant_id, "docker-ant");
      assert.equal(boxed.context.where, "box");
      assert.equal(await outputOf(s, boxed.id), "in a container\n::set-output name=where::box\n");
    },
  );

  it("runs KUBERNETES tasks against the cluster its --config names (fake API server)", async () => {
    const certs = makeTestCerts(mkdtempSync(`${dir.path}/certs-`));
    const fake = await startFakeKubeApi({
      token: "kube-token",
      cert: certs.serverCert,
      key: certs.serverKey,
    });
    try {
      const config = `${dir.path}/kube-ant.yaml`;
      writeFileSync(
        config,
        [
          "kubernetes:",
          `  host: ${fake.url}`,
          "  bearer_token: kube-token",
          `  ca_file: ${certs.caCert}`,
          "  namespace: colony-test",
        ].join("\n"),
      );
      await startAnt("kube-ant", s.url, [
        "--tags",
        "kube",
        "--methods",
        "KUBERNETES",
        "--config",
        config,
      ]);
      const tasks = await completed([
        "job_type: kube",
        "tasks:",
        "- task_type: podded",
        "  method: KUBERNETES",
        "  tags: [kube]",
        "  container:",
        "    image: busybox:1.36",
        "  script: ['echo in a pod']",
      ]);
      assert.equal(tasks[0]!.handle?.ant_id, "kube-ant");
      assert.ok(
        fake.requests.some(
          (r) => r.method === "POST" && r.url.includes("/namespaces/colony-test/pods"),
        ),
        "the pod was created through the configured API server",
      );
      assert.equal(await outputOf(s, tasks[0]!.id), "in a pod\n");
    } finally {
      await fake.close();
    }
  });

  it("a short disconnect loses nothing: the task goes on and its output arrives whole", async () => {
    const proxy = await startProxy(s.port);
    try {
      await startAnt("roamer", `http://127.0.0.1:${proxy.port}`, ["--tags", "roam"]);
      const job = await s.submit(
        [
          "job_type: roam",
          "tasks:",
          "- task_type: t",
          "  tags: [roam]",
          "  script: ['for i in 1 2 3 4 5 6; do echo line $i; sleep 0.25; done']",
        ].join("\n"),
      );
      const engine = s.server.runtime.engine;
      await waitUntil("it runs", async () =>
        (await engine.getJob(job.id)).tasks.some((t) => t.state === "EXECUTING"),
      );
      await new Promise((r) => setTimeout(r, 400));
      proxy.cut();
      const { job: done, tasks } = await s.finished(job.id);
      assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
      assert.equal(tasks.length, 1, "no retry was needed");
      assert.equal(
        await outputOf(s, tasks[0]!.id),
        [1, 2, 3, 4, 5, 6].map((i) => `line ${i}\n`).join(""),
      );
      assert.ok(
        s.logs.some((l) => /ant roamer disconnected/.test(l)),
        s.logs.join("\n"),
      );
    } finally {
      await proxy.close();
    }
  });

  it("killing an ant mid-task re-queues its task on another ant and the job completes", async () => {
    const pidFile = `${dir.path}/victim.pid`;
    const first = await startAnt("victim", s.url, ["--tags", "kill"]);
    const job = await s.submit(
      [
        "job_type: kill",
        "tasks:",
        "- task_type: t",
        "  tags: [kill]",
        "  retry: 1",
        "  script:",
        `    - 'if [ "$COLONY_TASK_ATTEMPT" = 0 ]; then echo $$ > ${pidFile}; sleep 30; fi'`,
        "    - echo finished on attempt $COLONY_TASK_ATTEMPT",
      ].join("\n"),
    );
    await waitUntil("the first attempt runs", () => {
      try {
        pids.push(Number(readFileSync(pidFile, "utf8")));
        return true;
      } catch {
        return false;
      }
    });
    await startAnt("survivor", s.url, ["--tags", "kill"]);
    const killedAt = Date.now();
    first.child.kill("SIGKILL");
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
    assert.deepEqual(
      tasks.map((t) => [t.state, t.errorCode ?? null, t.handle?.ant_id]),
      [
        ["FAILED", "COLONY_ANT_LOST", "victim"],
        ["COMPLETED", null, "survivor"],
      ],
    );
    assert.ok(Date.now() - killedAt < 10_000, "re-queued within seconds");
  });
});

describe("colony ant across a server crash (both real processes)", () => {
  const dir = tempDir("colony-agent-crash-");
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    dir.remove();
  });

  type Job = { state: string; tasks: { id: string; state: string }[] };

  /**
   * A `colony server` process on `{dir}/{name}` that a test kills (SIGKILL) and starts
   * again on the same port and data dir, with the admin API and an ant token.
   */
  async function crashableServer(name: string) {
    const data = `${dir.path}/${name}`;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const start = async () => {
      const run = startCli(["server", "--data-dir", data, "--port", String(port)]);
      children.push(run.child);
      await waitUntil("the server listens", () => /listening on/.test(run.stdout()), 20_000);
      return run.child;
    };
    let child = await start();
    const admin = readFileSync(`${data}/admin.token`, "utf8").trim();
    const api = async <T>(path: string, json?: unknown): Promise<T> => {
      const res = await http(`${url}${path}`, {
        headers: { authorization: admin },
        ...(json === undefined ? {} : { json }),
      });
      assert.ok(res.status < 300, `${path}: ${res.status} ${res.text}`);
      return res.json<T>();
    };
    const { token } = await api<{ token: string }>("/api/tokens", { role: "ant", name });
    return {
      data,
      url,
      admin,
      api,
      /** A `colony ant` with `tags`, in its own folder (a task's `pwd` says which ran it). */
      agent(id: string, tags: string) {
        mkdirSync(`${dir.path}/${id}-cwd`);
        const run = startCli(
          [
            "ant",
            "--server",
            url,
            "--token",
            token,
            "--ant-id",
            id,
            "--tags",
            tags,
            "--data-dir",
            `${dir.path}/${id}`,
          ],
          { cwd: `${dir.path}/${id}-cwd` },
        );
        children.push(run.child);
        return run;
      },
      async connected(run: { stdout: () => string }, what: string) {
        await waitUntil(`${what} connects`, () => /connected to/.test(run.stdout()), 20_000);
      },
      /** SIGKILL: nothing of the server's own shutdown runs. */
      async kill() {
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("exit", resolve));
      },
      async restart() {
        child = await start();
      },
      /** The job once it ended, asserted COMPLETED. */
      async completed(id: number): Promise<Job> {
        await waitUntil(
          "the job ends",
          async () =>
            ["COMPLETED", "FAILED"].includes((await api<Job>(`/api/job-requests/${id}`)).state),
          30_000,
        );
        const done = await api<Job>(`/api/job-requests/${id}`);
        assert.equal(done.state, "COMPLETED", JSON.stringify(done));
        return done;
      },
      async output(id: number, task: string): Promise<string> {
        const res = await http(`${url}/api/job-requests/${id}/tasks/${task}/output`, {
          headers: { authorization: admin },
        });
        return res.text;
      },
    };
  }

  it("an agent's running task is re-attached by the restarted server: no retry, whole output", async () => {
    const server = await crashableServer("data");
    await server.connected(server.agent("keeper", "keep"), "the ant");
    // After line 2 the task also sends a line as job hook `logs`: it joins the output
    // on the agent, so the byte offsets the restarted server resumes from stay whole.
    const hookLog = `${dir.path}/hook-log.py`;
    writeFileSync(
      hookLog,
      [
        "import hashlib, hmac, json, os, time, urllib.request as u",
        "t = str(int(time.time() * 1000))",
        "h = hmac.new(os.environ['JOB_SECRET_KEY'].encode(), t.encode(), hashlib.sha256).hexdigest()",
        "body = json.dumps({'status': 'RUNNING', 'logs': ['hook says hi']}).encode()",
        "headers = {'X-Job-Id': os.environ['JOB_ID'], 'X-Job-Time': t, 'X-Job-Hash': h,",
        "           'content-type': 'application/json'}",
        "u.urlopen(u.Request(os.environ['JOB_HOOK'] + '/status', data=body, headers=headers))",
      ].join("\n"),
    );
    const yaml = [
      "job_type: keep",
      "tasks:",
      "- task_type: t",
      "  tags: [keep]",
      "  script:",
      `  - 'for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; [ $i = 2 ] && /usr/bin/python3 ${hookLog}; sleep 0.3; done'`,
    ].join("\n");
    const job = await server.api<{ id: number }>("/api/job-requests", { definition: yaml });
    await waitUntil("it runs on the ant", async () =>
      (await server.api<Job>(`/api/job-requests/${job.id}`)).tasks.some(
        (t) => t.state === "EXECUTING",
      ),
    );
    await waitUntil("the hook's line is in its output", async () =>
      /hook says hi\n/.test(await server.output(job.id, "t")),
    );
    await server.kill();
    await server.restart();
    const done = await server.completed(job.id);
    assert.equal(done.tasks.length, 1, "re-attached, not retried");
    const lines = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => `line ${i}\n`);
    lines.splice(2, 0, "hook says hi\n");
    assert.equal(await server.output(job.id, "t"), lines.join(""));
  });

  it("a task sent just before the crash, not yet recorded as started, runs once: on the agent that holds it", async () => {
    // The window: the server sent the TaskRequest and died before recording it started.
    // It is opened wide by a trigger that makes the store refuse that record (the
    // server keeps retrying), then the server is killed. After the restart another ant
    // with the same tags connects first; the task must wait for the agent that runs it.
    const server = await crashableServer("window");
    const keeper = server.agent("window-keeper", "window");
    await server.connected(keeper, "the keeper");
    const db = new DatabaseSync(`${server.data}/colony.db`);
    db.exec(`CREATE TRIGGER test_crash_window BEFORE UPDATE OF state ON task_executions
             WHEN NEW.state = 'EXECUTING'
             BEGIN SELECT RAISE(ABORT, 'test: the crash window'); END`);
    const runs = `${dir.path}/window-runs`;
    const yaml = [
      "job_type: window",
      "tasks:",
      "- task_type: t",
      "  tags: [window]",
      "  script:",
      `  - 'pwd >> ${runs}; for i in $(seq 1 30); do echo line $i; sleep 0.2; done'`,
    ].join("\n");
    const job = await server.api<{ id: number }>("/api/job-requests", { definition: yaml });
    await waitUntil("it runs on the keeper", () => existsSync(runs), 20_000);
    const before = await server.api<Job>(`/api/job-requests/${job.id}`);
    assert.equal(before.tasks[0]?.state, "READY");
    keeper.child.kill("SIGSTOP"); // it comes back only after the other ant is in
    await server.kill();
    db.exec("DROP TRIGGER test_crash_window");
    db.close();
    await server.restart();
    await server.connected(server.agent("window-other", "window"), "the other ant");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Meanwhile GET /api/ants lists it as waiting for an agent to reconnect.
    const ants = await server.api<{
      waiting: Array<{ execution_id: string; reason: string; tags: string[] }>;
      waiting_total: number;
    }>("/api/ants");
    assert.deepEqual(
      ants.waiting.map((w) => [w.execution_id, w.reason, w.tags]),
      [[before.tasks[0]!.id, "reconnect", ["window"]]],
    );
    assert.equal(ants.waiting_total, 1);
    const listed = await runCli(["ants", "list", "--server", server.url, "--token", server.admin]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(
      listed.stdout,
      new RegExp(
        `\\b${before.tasks[0]!.id}\\s+t\\s+SHELL\\s+window\\s+.*an agent may hold it: waiting for agents to reconnect`,
      ),
    );
    keeper.child.kill("SIGCONT");
    const done = await server.completed(job.id);
    assert.equal(done.tasks.length, 1, "not retried");
    const ran = readFileSync(runs, "utf8").trim().split("\n");
    assert.equal(ran.length, 1, `it ran once, not on each ant: ${ran.join(", ")}`);
    assert.match(ran[0]!, /window-keeper/);
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join("");
    assert.equal(await server.output(job.id, "t"), lines);
  });
});
