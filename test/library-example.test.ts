/**
 * The library (SPEC section 12) and the FUNCTION method: examples/library-thumbnails.ts
 * runs as a user would run it (a child process importing "colony"); then in-process:
 * the same states, retries and timeouts as any task, cancel through the AbortSignal,
 * logs in the task output, typed events, unknown functions, saved types with params,
 * a cron definition through define(), and a function lost to a restart being retried.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ColonyError, JobFailedError, startColony, type Colony } from "../src/index.ts";
import { taskDefinition } from "../src/core/job-definition.ts";
import { executorConformance } from "../src/executors/executor-conformance.ts";
import { FunctionExecutor } from "../src/executors/function/function-executor.ts";
import { hookHeaders } from "../src/hook/hook-auth.ts";
import { startWebSocketWorker } from "../src/worker/index.ts";
import { ROOT, tempDir } from "./support/cli.ts";

describe("examples/library-thumbnails.ts", () => {
  it("runs as written: retries, progress, events, results", () => {
    const dir = tempDir("colony-example-");
    try {
      const r = spawnSync(
        process.execPath,
        ["--conditions=colony-source", "examples/library-thumbnails.ts"],
        {
          cwd: ROOT,
          env: { ...process.env, COLONY_DATA_DIR: dir.path },
          encoding: "utf8",
          timeout: 60_000,
        },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^task resize try 1 failed: the image service is warming up$/m);
      assert.match(
        r.stdout,
        /^task resize 25%\ntask resize 50%\ntask resize 75%\ntask resize 100%$/m,
      );
      assert.match(r.stdout, /^job 1 \(thumbnails\) completed$/m);
      assert.match(
        r.stdout,
        /^results \{"resize":\{"thumbnail":"cat\.png-128\.jpg"\},"publish":\{"url":"https:\/\/cdn\.example\/cat\.png-128\.jpg"\}\}$/m,
      );
    } finally {
      dir.remove();
    }
  });
});

const fn = (name: string, extra: Record<string, unknown> = {}) => ({
  job_type: `fn-${name}`,
  tasks: [{ task_type: "only", method: "FUNCTION", function: name, ...extra }],
});

describe("startColony and FUNCTION tasks", () => {
  const dir = tempDir("colony-library-");
  let colony: Colony;

  before(async () => {
    colony = await startColony({ dataDir: dir.path, log: () => undefined });
  });
  after(async () => {
    await colony?.close({ graceMs: 0, cancelRunning: true });
    dir.remove();
  });

  it("timeouts abort the handler's signal and fail the task", async () => {
    let aborted: unknown;
    colony.register("slow", async (ctx) => {
      await sleep(10_000, undefined, { signal: ctx.signal }).catch((e: unknown) => (aborted = e));
      return { late: true };
    });
    const run = await colony.submit(fn("slow", { timeout: "200ms" }));
    await assert.rejects(run.result(), (error: unknown) => {
      assert.ok(error instanceof JobFailedError);
      assert.equal(error.result.state, "FAILED");
      assert.equal(error.result.tasks[0]?.errorCode, "COLONY_TASK_TIMEOUT");
      return true;
    });
    assert.equal((aborted as Error | undefined)?.name, "AbortError");
  });

  it("cancel aborts the signal; the job ends CANCELLED", async () => {
    const started = Promise.withResolvers<void>();
    colony.register("waits", async (ctx) => {
      started.resolve();
      await sleep(10_000, undefined, { signal: ctx.signal });
    });
    const run = await colony.submit(fn("waits"));
    await started.promise;
    await run.cancel();
    const done = await run.done();
    assert.equal(done.state, "CANCELLED");
  });

  it("a handler may destructure ctx; a signal it first reads after a cancel is aborted", async () => {
    const progress: string[] = [];
    const off = colony.on("task:progress", (e) => progress.push(`${e.progress} ${e.message}`));
    colony.register("destructures", async ({ log, progress, taskType, params }) => {
      progress(40, "started");
      log("task", taskType, "sees", params.Name);
      return { ok: true };
    });
    const run = await colony.submit(fn("destructures"), { params: { Name: "ada" } });
    const result = await run.result();
    off();
    assert.deepEqual(result.results, { only: { ok: true } });
    assert.deepEqual(progress, ["40 started"]);
    let text = "";
    for await (const c of await colony.engine.outputStream(result.tasks[0]!.id)) text += String(c);
    assert.equal(text, "task only sees ada\n");

    // A handler that reads its signal only after the cancel (here: once the job ended).
    const started = Promise.withResolvers<void>();
    const ended = Promise.withResolvers<void>();
    let aborted: boolean | undefined;
    colony.register("looks-late", async (ctx) => {
      started.resolve();
      await ended.promise;
      aborted = ctx.signal.aborted;
    });
    const late = await colony.submit(fn("looks-late"));
    await started.promise;
    await late.cancel();
    assert.equal((await late.done()).state, "CANCELLED");
    ended.resolve();
    await sleep(20);
    assert.equal(aborted, true);
  });

  it("thrown errors fail the task with their message; retries run it again", async () => {
    let calls = 0;
    colony.register("flaky", () => {
      calls++;
      throw new Error(`nope ${calls}`);
    });
    const run = await colony.submit(fn("flaky", { retry: 2 }));
    const done = await run.done();
    assert.equal(done.state, "FAILED");
    assert.equal(calls, 3);
    assert.deepEqual(
      done.tasks.map((t) => [t.attempt, t.state, t.errorCode, t.errorMessage]),
      [
        [0, "FAILED", "COLONY_FUNCTION_FAILED", "nope 1"],
        [1, "FAILED", "COLONY_FUNCTION_FAILED", "nope 2"],
        [2, "FAILED", "COLONY_FUNCTION_FAILED", "nope 3"],
      ],
    );
  });

  it("ctx.log goes to the task output; events are typed and ordered", async () => {
    const seen: string[] = [];
    const off = [
      colony.on("job:submitted", (e) => seen.push(`job:submitted ${e.jobType}`)),
      colony.on("job:started", () => seen.push("job:started")),
      colony.on("task:started", (e) => seen.push(`task:started ${e.taskType}`)),
      colony.on("task:progress", (e) =>
        seen.push(`task:progress ${e.progress} ${e.message ?? ""}`),
      ),
      colony.on("task:completed", (e) => seen.push(`task:completed ${e.taskType}`)),
      colony.on("job:completed", () => seen.push("job:completed")),
    ];
    colony.register("chatty", (ctx) => {
      ctx.log("hello from", { a: 1 });
      ctx.progress(150, "clamped");
      return 7;
    });
    const run = await colony.submit(fn("chatty"));
    const result = await run.result();
    for (const o of off) o();
    assert.deepEqual(result.results, { only: { result: 7 } });
    assert.deepEqual(seen, [
      "job:submitted fn-chatty",
      "job:started",
      "task:started only",
      "task:progress 100 clamped",
      "task:completed only",
      "job:completed",
    ]);
    const out = await colony.engine.outputStream(result.tasks[0]!.id);
    let text = "";
    for await (const c of out) text += String(c);
    assert.equal(text, "hello from { a: 1 }\n");
  });

  it("::set-output lines a handler logs reach later tasks; a silent one leaves no output", async () => {
    colony.register("announces", (ctx) => ctx.log("::set-output name=color::blue"));
    colony.register("silent", () => undefined);
    colony.register("reads", (ctx) => ({ saw: ctx.params.color ?? null }));
    const run = await colony.submit({
      job_type: "fn-outputs",
      tasks: [
        { task_type: "a", method: "FUNCTION", function: "announces", on_completed: "b" },
        { task_type: "b", method: "FUNCTION", function: "silent", on_completed: "c" },
        { task_type: "c", method: "FUNCTION", function: "reads" },
      ],
    });
    const result = await run.result();
    assert.deepEqual(result.results.c, { saw: "blue" });
    const [a, b] = result.tasks;
    assert.deepEqual(a?.context, { color: "blue" });
    assert.deepEqual(b?.context ?? {}, {});
    const silentOut = join(dir.path, "units", b!.id, "stdout");
    assert.equal(existsSync(silentOut), false, "a handler that never logs writes no output file");
    // Its output reads as empty (it failed with ENOENT before), without and with follow.
    for (const follow of [false, true]) {
      let text = "";
      for await (const c of await colony.engine.outputStream(b!.id, { follow })) text += String(c);
      assert.equal(text, "", `follow: ${follow}`);
    }
  });

  it("a fan-out of 1,500 tasks (created over several turns) runs each once, then its join", async () => {
    const ran = new Map<string, number>();
    colony.register("counts", (ctx) => {
      ran.set(ctx.taskType, (ran.get(ctx.taskType) ?? 0) + 1);
    });
    const wide = Array.from({ length: 1500 }, (_, i) => `w${i}`);
    const run = await colony.submit({
      job_type: "fn-wide",
      tasks: [
        { task_type: "start", method: "FUNCTION", function: "counts", on_completed: wide },
        ...wide.map((w) => ({ task_type: w, method: "FUNCTION", function: "counts" })),
        { task_type: "join", method: "FUNCTION", function: "counts", depends_on: wide },
      ],
    });
    const result = await run.result();
    assert.equal(result.state, "COMPLETED");
    assert.equal(ran.size, 1502);
    assert.deepEqual(
      [...ran].filter(([, n]) => n !== 1),
      [],
    );
    assert.equal(result.tasks.length, 1502);
  });

  it("params that are not an object (or not JSON) and invalid dates are refused; nothing is written", async () => {
    const typed = "fn-refused";
    await colony.define({
      job_type: typed,
      tasks: [{ task_type: "a", method: "FUNCTION", function: "x" }],
    });
    const before = (await colony.engine.store.listJobRequests({ limit: 1000 })).items.length;
    const refuse = async (submit: () => Promise<unknown>, message: RegExp) =>
      assert.rejects(submit, (e: unknown) => {
        assert.ok(e instanceof ColonyError && e.code === "COLONY_VALIDATION", String(e));
        assert.match(e.message, message);
        return true;
      });
    const definition = fn("never");
    await refuse(
      () => colony.submit(definition, { params: "Name=ada" as never }),
      /^params must be an object of NAME: value .* got string$/,
    );
    await refuse(() => colony.submit(definition, { params: [1] as never }), /got an array$/);
    await refuse(
      () => colony.submit({ job_type: typed, params: "x" as never }),
      /^submit\(\{job_type, params\}\): params must be an object .* got string$/,
    );
    await refuse(() => colony.submit(typed, { params: 7 as never }), /got number$/);
    await refuse(
      () => colony.submit(definition, { params: { n: 10n } as never }),
      /^params cannot be stored as JSON \(Do not know how to serialize a BigInt\)/,
    );
    await refuse(
      () => colony.submit(definition, { scheduledAt: new Date("not a date") }),
      /^scheduledAt must be a valid Date, got an invalid Date$/,
    );
    const after = (await colony.engine.store.listJobRequests({ limit: 1000 })).items.length;
    assert.equal(after, before, "no job request was written");
  });

  it("a result JSON cannot hold (a BigInt, a cycle) fails the task saying why", async () => {
    colony.register("big", () => ({ n: 10n }));
    colony.register("cycle", () => {
      const node: Record<string, unknown> = {};
      node.self = node;
      return node;
    });
    for (const [name, why] of [
      ["big", /serialize a BigInt/],
      ["cycle", /circular structure/],
    ] as const) {
      const done = await (await colony.submit(fn(name))).done();
      assert.equal(done.state, "FAILED", name);
      assert.equal(done.tasks[0]?.errorCode, "COLONY_FUNCTION_RESULT", name);
      assert.match(
        done.tasks[0]!.errorMessage!,
        new RegExp(`^function '${name}' returned what cannot be stored as JSON`),
      );
      assert.match(done.tasks[0]!.errorMessage!, why);
    }
  });

  it("an unknown function fails with the names that are registered", async () => {
    const done = await (await colony.submit(fn("nobody"))).done();
    assert.equal(done.state, "FAILED");
    assert.equal(done.tasks[0]?.errorCode, "COLONY_UNKNOWN_FUNCTION");
    assert.match(
      done.tasks[0]!.errorMessage!,
      /no function 'nobody' is registered in this process \(registered: .*flaky/,
    );
  });

  it("saved types take params by name; YAML definitions work too", async () => {
    colony.register("double", (ctx) => ({ value: Number(ctx.params.n) * 2 }));
    await colony.define(
      "job_type: doubler\ntasks:\n- task_type: d\n  method: FUNCTION\n  function: double\n",
    );
    const byName = await (await colony.submit("doubler", { params: { n: 21 } })).result();
    assert.deepEqual(byName.results.d, { value: 42 });
    const byObject = await (
      await colony.submit({ job_type: "doubler", params: { n: 5 } })
    ).result();
    assert.deepEqual(byObject.results.d, { value: 10 });
    await assert.rejects(colony.submit("no-such-type"), /no job type 'no-such-type'/);
  });

  it("define() with a cron_trigger schedules the job type at once", async () => {
    let runs = 0;
    colony.register("tick", () => void runs++);
    await colony.define({
      job_type: "ticker",
      cron_trigger: "* * * * * *",
      tasks: [{ task_type: "t", method: "FUNCTION", function: "tick" }],
    });
    const deadline = Date.now() + 5000;
    while (runs < 1 && Date.now() < deadline) await sleep(50);
    assert.ok(runs >= 1, "fired within 5 s");
    const [schedule] = (await colony.store.asyncActions.listSchedules()).filter(
      (s) => s.jobType === "ticker",
    );
    assert.equal(schedule?.cron, "* * * * * *");
    await colony.store.asyncActions.setSchedulePaused("ticker", true, new Date());
  });
});

describe("startColony with a server", () => {
  it("serves the REST API and the job hook from the program", async () => {
    const dir = tempDir("colony-library-server-");
    const colony = await startColony({
      dataDir: dir.path,
      server: { port: 0, auth: false },
      functions: {
        hello: () => ({ greeting: "hi" }),
        reads: (ctx) => ({ via: ctx.params.via ?? null }),
      },
      log: () => undefined,
    });
    try {
      assert.match(colony.url ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
      const health = (await (await fetch(`${colony.url}/api/health`)).json()) as { status: string };
      assert.equal(health.status, "ok");
      const run = await colony.submit(
        [
          "job_type: mixed",
          "tasks:",
          "- task_type: fn",
          "  method: FUNCTION",
          "  function: hello",
          "  on_completed: [sh]",
          "- task_type: sh",
          "  script: ['echo \"{{.greeting}} $JOB_HOOK\"']",
        ].join("\n"),
      );
      const result = await run.result();
      const out = colony.engine.outputStream(result.tasks.find((t) => t.taskType === "sh")!.id);
      let text = "";
      for await (const c of await out) text += String(c);
      assert.equal(text, `hi ${colony.url}/async\n`);
      // A remote worker reports a `::set-output` line as hook `logs` and replies with no
      // output of its own: the value reaches the next task as that line printed would.
      const worker = startWebSocketWorker({
        server: colony.url!,
        token: "unused with auth off",
        tags: ["hook-logs"],
        handle: async (request) => {
          const env = (request.executor_opts?.environment ?? {}) as Record<string, string>;
          const response = await fetch(env.JOB_HOOK!, {
            method: "POST",
            headers: {
              ...hookHeaders(env.JOB_ID!, env.JOB_SECRET_KEY!),
              "content-type": "application/json",
            },
            body: JSON.stringify({ status: "RUNNING", logs: ["::set-output name=via::hook"] }),
          });
          assert.equal(response.status, 200);
          return { status: "COMPLETED" };
        },
      });
      try {
        await worker.ready;
        const viaHook = await (
          await colony.submit({
            job_type: "hook-logs",
            tasks: [
              { task_type: "a", method: "WEBSOCKET", tags: ["hook-logs"], on_completed: "b" },
              { task_type: "b", method: "FUNCTION", function: "reads" },
            ],
          })
        ).result();
        assert.deepEqual(viaHook.results.b, { via: "hook" });
      } finally {
        await worker.close();
      }
    } finally {
      await colony.close({ graceMs: 0 });
      dir.remove();
    }
  });
});

describe("a function lost to a crash", () => {
  it("is failed as lost and retried per its policy by the next start", async () => {
    const dir = tempDir("colony-library-crash-");
    const child = spawn(
      process.execPath,
      ["--conditions=colony-source", "test/fixtures/library/long-function.ts", dir.path],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      let out = "";
      const id = await new Promise<number>((resolve, reject) => {
        child.stdout!.on("data", (c: Buffer) => {
          out += c.toString();
          const m = /started (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once("exit", (code) =>
          reject(new Error(`the program exited ${code} before its function ran`)),
        );
      });
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("close", resolve));
      const second = await startColony({ dataDir: dir.path, log: () => undefined });
      try {
        second.register("long", (ctx) => ({ attempt: ctx.attempt }));
        await second.engine.waitFor(id);
        const job = await second.engine.getJob(id);
        assert.equal(job.state, "COMPLETED");
        assert.deepEqual(
          job.tasks.map((t) => [t.attempt, t.state, t.errorCode ?? null]),
          [
            [0, "FAILED", "COLONY_TASK_LOST"],
            [1, "COMPLETED", null],
          ],
        );
        // It says what happened to an in-process task, and what keeps the job going.
        assert.match(
          job.tasks[0]!.errorMessage ?? "",
          /^it ran inside the colony process that stopped before it ended \(a FUNCTION task does not outlive that process\); set retry on the task/,
        );
      } finally {
        await second.close({ graceMs: 0, cancelRunning: true });
      }
    } finally {
      child.kill("SIGKILL");
      dir.remove();
    }
  });
});

executorConformance("function executor", async () => {
  const executor = new FunctionExecutor();
  const dir = tempDir("colony-function-conformance-");
  const request = (id: string, name: string, params: Record<string, unknown> = {}) => ({
    executionId: id,
    method: "FUNCTION" as const,
    task: taskDefinition("t", { method: "FUNCTION", function: name }),
    env: {},
    variables: Object.fromEntries(
      Object.entries(params).map(([name, value]) => [name, { name, value, secret: false }]),
    ),
    unitDir: `${dir.path}/${id}`,
  });
  executor.register("quick", (ctx) => ctx.log(`conformance quick ${ctx.executionId}`));
  executor.register("failing", () => {
    throw new Error("failing on purpose");
  });
  executor.register("long", async (ctx) => {
    ctx.log("grandchild 0");
    await sleep(300_000, undefined, { signal: ctx.signal });
  });
  executor.register("chatty", async (ctx) => {
    const lines = Number(ctx.params.lines);
    for (let i = 1; i <= lines; i++) {
      ctx.log(`line ${i}`);
      await sleep(1000 / lines);
    }
  });
  return {
    executor,
    requests: {
      quick: (id) => request(id, "quick"),
      failing: (id) => request(id, "failing"),
      long: (id) => request(id, "long"),
      chatty: (id, lines) => request(id, "chatty", { lines }),
      failingExitCode: () => 1,
    },
    async teardown() {
      await executor.close();
      dir.remove();
    },
  };
});

describe("function executor: a handler that never logged", () => {
  it("has no output file, and its logStream is empty (with and without tail)", async () => {
    const executor = new FunctionExecutor();
    const dir = tempDir("colony-function-silent-");
    try {
      executor.register("silent", () => undefined);
      const unitDir = join(dir.path, "x1");
      await executor.start({
        executionId: "x1",
        method: "FUNCTION",
        task: taskDefinition("t", { method: "FUNCTION", function: "silent" }),
        env: {},
        variables: {},
        unitDir,
      });
      const result = await executor.wait("x1");
      assert.equal(result.exitCode, 0);
      assert.equal(result.wroteOutput, false);
      assert.equal(existsSync(join(unitDir, "stdout")), false);
      for (const tail of [false, true]) {
        let text = "";
        for await (const c of await executor.logStream({ executionId: "x1", tail })) {
          text += String(c);
        }
        assert.equal(text, "", `tail: ${tail}`);
      }
    } finally {
      await executor.close();
      dir.remove();
    }
  });
});

describe("a closed colony", () => {
  it("refuses submit and define with COLONY_CLOSED, and close() again is a no-op", async () => {
    const dir = tempDir("colony-closed-");
    try {
      const colony = await startColony({ dataDir: dir.path, log: () => undefined });
      await colony.close({ graceMs: 0 });
      await colony.close({ graceMs: 0 });
      const closed = (e: unknown) => {
        assert.ok(e instanceof ColonyError, String(e));
        assert.equal(e.code, "COLONY_CLOSED");
        assert.match(e.message, /start another with startColony\(\)/);
        return true;
      };
      await assert.rejects(colony.submit(fn("any")), closed);
      await assert.rejects(colony.define(fn("any")), closed);
    } finally {
      dir.remove();
    }
  });
});

describe("startColony options", () => {
  it("refuses what its types forbid, and a data dir it cannot use, saying what to give", async () => {
    const refused = async (options: unknown, code: string, message: RegExp) =>
      assert.rejects(startColony(options as never), (e: unknown) => {
        assert.ok(e instanceof ColonyError, String(e));
        assert.equal(e.code, code);
        assert.match(e.message, message);
        return true;
      });
    await refused(undefined, "COLONY_VALIDATION", /needs an options object/);
    await refused({}, "COLONY_VALIDATION", /dataDir is required/);
    await refused({ dataDir: 5 }, "COLONY_VALIDATION", /dataDir must be a string, got number/);
    await refused(
      { datadir: "/tmp/x" },
      "COLONY_VALIDATION",
      /unknown option 'datadir'; did you mean 'dataDir'\?/,
    );
    await refused(
      { dataDir: "/tmp/x", maxParallelTasks: 0 },
      "COLONY_VALIDATION",
      /maxParallelTasks must be a whole number from 1, got 0/,
    );
    await refused(
      { dataDir: join(ROOT, "package.json", "data") },
      "COLONY_DATA_DIR",
      /cannot use .*package\.json\/data as the data dir: a part of the path is a file, not a directory \(ENOTDIR\)/,
    );
  });

  it("with a server, maxParallelTasks still bounds the tasks running at once", async () => {
    const dir = tempDir("colony-server-slots-");
    const colony = await startColony({
      dataDir: dir.path,
      server: { port: 0 },
      maxParallelTasks: 1,
      schedules: false,
      log: () => undefined,
    });
    try {
      let running = 0;
      let most = 0;
      colony.register("hold", async () => {
        most = Math.max(most, ++running);
        await sleep(150);
        running--;
      });
      const runs = await Promise.all([1, 2, 3].map(() => colony.submit(fn("hold"))));
      await Promise.all(runs.map((r) => r.result()));
      assert.equal(most, 1, "one task at a time");
    } finally {
      await colony.close({ graceMs: 0 });
      dir.remove();
    }
  });
});
