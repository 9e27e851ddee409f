/**
 * Jobs whose first task no ant serves, or whose next task once started (docs/ants.md,
 * "When no ant serves a job's first task" and "... a later task"): they go back to
 * PENDING instead of waiting in a server's memory, so they hold none of its runners, an
 * ant that connects wakes them, their task's timeout still holds, a started one goes on
 * from its recorded tasks, and a second server sharing the store (PostgreSQL) that has
 * the ant runs them. In-process
 * runtimes with a real store; the ants are RemoteAntExecutors on an in-memory link that
 * answers each TaskRequest as the seed's workers do.
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { NO_ANT } from "../src/ants/dispatcher.ts";
import type { AntLink } from "../src/ants/remote-ant-executor.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import type { JobDefinition } from "../src/core/job-definition.ts";
import type { JobRequest } from "../src/core/job-request.ts";
import { openEmbedded, type Embedded } from "../src/runtime/embedded.ts";
import { postgres } from "./support/services.ts";
import { tempDir } from "./support/cli.ts";

// Before any describe(): a check still pending when the first suite ends comes too late.
const pg = await postgres();

const GPU = parseJobDefinition(
  "job_type: gpu\ntasks:\n- task_type: train\n  method: WEBSOCKET\n  tags: [gpu]\n",
);
const SHELL = parseJobDefinition('job_type: here\ntasks:\n- task_type: t\n  script: ["true"]\n');
/** A build here, then a deploy step for a `prod` ant. */
const SHIP = parseJobDefinition(
  'job_type: ship\ntasks:\n- task_type: build\n  script: ["true"]\n  on_completed: deploy\n' +
    "- task_type: deploy\n  method: WEBSOCKET\n  tags: [prod]\n",
);

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A gpu ant on `rt` that completes every task it gets. */
function connectGpuAnt(rt: Embedded, antId: string): void {
  connectAnt(rt, antId, ["gpu"]);
}

/** An ant with `tags` on `rt` that completes every task it gets. */
function connectAnt(rt: Embedded, antId: string, tags: string[]): void {
  const ants = rt.ants!;
  const link: AntLink = {
    remoteAddress: "test",
    send: (text) => {
      const request = JSON.parse(text) as Record<string, unknown>;
      setImmediate(() =>
        ants
          .list()
          .find((a) => a.antId === antId)
          ?.onResponse({ ...request, status: "COMPLETED" } as never),
      );
    },
    close: () => undefined,
  };
  ants.register({ ant_id: antId, tags, methods: ["WEBSOCKET"] }, link);
}

const runtimes: Embedded[] = [];
const dirs: Array<{ remove(): void }> = [];
async function open(
  options: {
    storeUrl?: string;
    maxParallelJobs?: number;
    start?: boolean;
    /** Another server of the same store, whose secret.key this one must share. */
    peer?: Embedded;
  } = {},
): Promise<Embedded> {
  const dir = tempDir("colony-deferral-");
  dirs.push(dir);
  if (options.peer) writeFileSync(join(dir.path, "secret.key"), options.peer.secretKey);
  const rt = await openEmbedded({
    dataDir: dir.path,
    ...(options.storeUrl ? { storeUrl: options.storeUrl } : {}),
    ants: {},
    engine: {
      pollMs: 20,
      log: () => undefined,
      ...(options.maxParallelJobs ? { maxParallelJobs: options.maxParallelJobs } : {}),
    },
  });
  runtimes.push(rt);
  if (options.start !== false) await rt.engine.start();
  return rt;
}

/**
 * Submits three jobs of `definition`, then a SHELL job, and checks that the SHELL job
 * COMPLETES within 10 s (on an engine of two runners: the three must not hold them).
 */
async function threeThenShell(rt: Embedded, definition: JobDefinition): Promise<JobRequest[]> {
  const jobs = [];
  for (let i = 0; i < 3; i++) jobs.push(await rt.engine.submit({ definition }));
  const shell = await rt.engine.submit({ definition: SHELL });
  const done = await Promise.race([
    rt.engine.waitFor(shell.id).then((j) => j.state),
    new Promise((resolve) => setTimeout(() => resolve("still not done after 10 s"), 10_000)),
  ]);
  assert.equal(done, "COMPLETED");
  return jobs;
}

/** Submits `yaml` (no ant serves it) and checks that it FAILED after 1 s, not 2. */
async function endsAfterOneSecond(yaml: string): Promise<{ rt: Embedded; finished: JobRequest }> {
  const rt = await open();
  const started = Date.now();
  const job = await rt.engine.submit({ definition: parseJobDefinition(yaml) });
  const finished = await rt.engine.waitFor(job.id);
  const elapsed = Date.now() - started;
  assert.equal(finished.state, "FAILED");
  assert.ok(elapsed >= 1000, `not before its timeout (${elapsed} ms)`);
  assert.ok(elapsed < 1900, `the wait is not counted twice (${elapsed} ms)`);
  return { rt, finished };
}

/** A start task, then `slow` (sleeping `seconds`) here and `deploy` for a prod ant at once. */
function fanOut(seconds: number): JobDefinition {
  return parseJobDefinition(
    'job_type: fan\ntasks:\n- task_type: start\n  script: ["true"]\n  on_completed: [slow, deploy]\n' +
      `- task_type: slow\n  script: ["sleep ${seconds}"]\n` +
      "- task_type: deploy\n  method: WEBSOCKET\n  tags: [prod]\n",
  );
}

/** Waits until job `id` is PENDING with NO_ANT (deferred, or sent back by its runner). */
function sentBack(rt: Embedded, id: number): Promise<JobRequest> {
  return until(`job ${id} sent back`, async () => {
    const j = await rt.store.getJobRequest(id);
    return j?.state === "PENDING" && j.errorCode === NO_ANT ? j : undefined;
  });
}

/** Checks that a SHIP job's build ran once, on the built-in ant, and its deploy on `antId`. */
async function assertShipped(rt: Embedded, id: number, antId: string): Promise<void> {
  assert.deepEqual(
    (await rt.store.listTaskExecutions(id)).map((e) => [e.taskType, e.state, e.handle?.ant_id]),
    [
      ["build", "COMPLETED", undefined],
      ["deploy", "COMPLETED", antId],
    ],
    "build ran once, on the built-in ant; deploy on the ant",
  );
}

/** Connects a prod ant `antId` to `rt` and checks that SHIP job `id` then completes there. */
async function shipsOnceAntConnects(rt: Embedded, id: number, antId: string): Promise<void> {
  connectAnt(rt, antId, ["prod"]);
  assert.equal((await rt.engine.waitFor(id)).state, "COMPLETED");
  await assertShipped(rt, id, antId);
}

after(async () => {
  for (const rt of runtimes.splice(0)) await rt.close({ graceMs: 0 });
  for (const dir of dirs.splice(0)) dir.remove();
});

describe("jobs whose first task no ant serves", () => {
  it("go back to PENDING with the reason and hold none of the engine's runners", async () => {
    // Two runners: on the old code two gpu jobs held both, waiting in memory for an ant,
    // and the SHELL job submitted after them was never claimed.
    const rt = await open({ maxParallelJobs: 2 });
    const gpu = await threeThenShell(rt, GPU);
    for (const job of gpu) {
      const now = await until(`job ${job.id} deferred`, async () => {
        const j = await rt.store.getJobRequest(job.id);
        return j?.errorCode === NO_ANT ? j : undefined;
      });
      assert.equal(now.state, "PENDING");
      assert.equal(now.leaseExpiresAt, undefined, "no engine holds it");
      assert.match(
        now.errorMessage!,
        /waiting for an ant since .*: .*method WEBSOCKET and tags gpu/,
      );
      assert.deepEqual(await rt.store.listTaskExecutions(job.id), [], "no task created yet");
    }
    const waiting = rt.dispatcher.waiting();
    assert.deepEqual(
      waiting.map((w) => [w.jobRequestId, w.executionId, w.reason]),
      gpu.map((j) => [j.id, undefined, "no_ant"]),
    );
    for (const job of gpu) await rt.engine.cancel(job.id);
    for (const job of gpu) assert.equal((await rt.engine.waitFor(job.id)).state, "CANCELLED");
    assert.deepEqual(rt.dispatcher.waiting(), [], "cancelled jobs leave the list");
  });

  it("a later task no ant serves sends its started job back to the store; a cancel ends it", async () => {
    // Two runners: on the old code two jobs whose deploy step waited for an offline ant
    // held both, and nothing else was claimed.
    const rt = await open({ maxParallelJobs: 2 });
    const jobs = await threeThenShell(rt, SHIP);
    for (const job of jobs) {
      const now = await sentBack(rt, job.id);
      assert.ok(now.startedAt, "it had started");
      assert.equal(now.leaseExpiresAt, undefined, "no engine holds it");
      assert.match(now.errorMessage!, /method WEBSOCKET and tags prod/);
      assert.deepEqual(
        (await rt.store.listTaskExecutions(job.id)).map((e) => [e.taskType, e.state]),
        [
          ["build", "COMPLETED"],
          ["deploy", "READY"],
        ],
      );
    }
    assert.equal(rt.dispatcher.parkedJobs, 0, "no runner waits for an ant here");
    const deploys = await Promise.all(
      jobs.map(async (j) => (await rt.store.listTaskExecutions(j.id))[1]!.id),
    );
    assert.deepEqual(
      rt.dispatcher
        .waiting()
        .map((w) => [w.jobRequestId, w.executionId, w.taskType, w.reason, w.leftPending])
        .sort((a, b) => Number(a[0]) - Number(b[0])),
      jobs.map((j, i) => [j.id, deploys[i], "deploy", "no_ant", true]),
      "listed with the unit of the task that waits",
    );
    for (const job of jobs) await rt.engine.cancel(job.id);
    for (const job of jobs) {
      assert.equal((await rt.engine.waitFor(job.id)).state, "CANCELLED");
      const [build, deploy] = await rt.store.listTaskExecutions(job.id);
      assert.equal(build!.state, "COMPLETED");
      assert.equal(deploy!.state, "CANCELLED", "its unstarted task ends with it");
    }
  });

  it("a job sent back and then cancelled runs its always_run cleanup", async () => {
    const rt = await open();
    const marker = join(rt.dataDir, "torn-down");
    const job = await rt.engine.submit({
      definition: parseJobDefinition(
        'job_type: ship-clean\ntasks:\n- task_type: build\n  script: ["true"]\n  on_completed: deploy\n' +
          "- task_type: deploy\n  method: WEBSOCKET\n  tags: [prod]\n" +
          `- task_type: teardown\n  always_run: true\n  script: ["touch ${marker}"]\n`,
      ),
    });
    await sentBack(rt, job.id);
    const started = Date.now();
    await rt.engine.cancel(job.id);
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "CANCELLED");
    assert.ok(Date.now() - started < 5000, "ended at once, not at its next try");
    assert.deepEqual(
      (await rt.store.listTaskExecutions(job.id)).map((e) => [e.taskType, e.state]),
      [
        ["build", "COMPLETED"],
        ["deploy", "CANCELLED"],
        ["teardown", "COMPLETED"],
      ],
    );
    assert.ok(existsSync(marker), "the cleanup ran");
  });

  it("a later task no ant serves waits here, holding no share of the engine's runners, while another task of its job runs", async () => {
    // The job cannot go back to the store with a task running here: its deploy step
    // waits in memory, and on the old code three such jobs held both runners.
    const rt = await open({ maxParallelJobs: 2 });
    const parked = await threeThenShell(rt, fanOut(30));
    await until("three deploy steps waiting here", async () =>
      rt.dispatcher.parkedJobs === 3 ? true : undefined,
    );
    for (const job of parked) {
      assert.equal((await rt.store.getJobRequest(job.id))?.state, "EXECUTING");
    }
    for (const job of parked) await rt.engine.cancel(job.id);
    for (const job of parked) assert.equal((await rt.engine.waitFor(job.id)).state, "CANCELLED");
    assert.equal(rt.dispatcher.parkedJobs, 0);
  });

  it("a later task that waited beside another one sends its job back once that one ends", async () => {
    const rt = await open();
    const job = await rt.engine.submit({ definition: fanOut(1) });
    await until("the deploy step waiting here", async () =>
      rt.dispatcher.parkedJobs === 1 ? true : undefined,
    );
    const back = await sentBack(rt, job.id);
    assert.ok(back.startedAt);
    assert.equal(rt.dispatcher.parkedJobs, 0, "nothing waits here any more");
    assert.deepEqual(
      (await rt.store.listTaskExecutions(job.id)).map((e) => [e.taskType, e.state]),
      [
        ["start", "COMPLETED"],
        ["slow", "COMPLETED"],
        ["deploy", "READY"],
      ],
    );
    connectAnt(rt, "prod-2", ["prod"]);
    assert.equal((await rt.engine.waitFor(job.id)).state, "COMPLETED");
  });

  it("a job sent back at a later task is asked again before it starts, not started to go back each time", async () => {
    const rt = await open();
    const job = await rt.engine.submit({ definition: SHIP });
    await sentBack(rt, job.id);
    const states: string[] = [];
    rt.engine.events.on("job:state", (e) => {
      if (e.jobRequestId === job.id) states.push(e.state);
    });
    await until("two more tries", async () => {
      const j = await rt.store.getJobRequest(job.id);
      return /tried 3 time/.test(j?.errorMessage ?? "") ? j : undefined;
    });
    assert.deepEqual(new Set(states), new Set(["PENDING"]), "never EXECUTING again");
    await shipsOnceAntConnects(rt, job.id, "prod-3");
  });

  it("a job sent back at a later task goes on when its ant connects, without running done tasks again", async () => {
    const rt = await open();
    const job = await rt.engine.submit({ definition: SHIP });
    await sentBack(rt, job.id);
    await shipsOnceAntConnects(rt, job.id, "prod-1");
  });

  it("run as soon as an ant that serves them connects, before their next try is due", async () => {
    const rt = await open();
    const job = await rt.engine.submit({ definition: GPU });
    // Deferred twice: the next try is ~2 s away.
    const deferred = await until("a second deferral", async () => {
      const j = await rt.store.getJobRequest(job.id);
      return j && /tried 2 time/.test(j.errorMessage ?? "") && j.state === "PENDING"
        ? j
        : undefined;
    });
    const due = deferred.scheduledAt.getTime();
    assert.ok(due - Date.now() > 500, "the next try is still ahead");
    connectGpuAnt(rt, "gpu-1");
    const finished = await rt.engine.waitFor(job.id);
    assert.equal(finished.state, "COMPLETED");
    assert.equal(finished.errorCode, undefined, "the reason is cleared once it starts");
    const [task] = await rt.store.listTaskExecutions(job.id);
    assert.equal(task!.handle?.ant_id, "gpu-1");
    assert.ok(task!.startedAt!.getTime() < due, "woken by the ant, not by its next try");
  });

  it(
    "still time out with their job's timeout, counted from the first deferral",
    { timeout: 10_000 },
    async () => {
      const { finished } = await endsAfterOneSecond(
        "job_type: gpu-job-timeout\ntimeout: 1s\ntasks:\n- task_type: train\n  method: WEBSOCKET\n  tags: [gpu]\n",
      );
      assert.equal(finished.errorCode, "COLONY_JOB_TIMEOUT");
    },
  );

  it("run here, waiting for an ant in memory, when the store refuses to take them back", async () => {
    const rt = await open();
    rt.store.deferJobRequest = () => Promise.reject(new Error("disk full (test)"));
    const job = await rt.engine.submit({ definition: GPU });
    await until("its task to wait here", async () =>
      rt.dispatcher.waiting().some((w) => w.jobRequestId === job.id && w.executionId)
        ? true
        : undefined,
    );
    assert.equal((await rt.store.getJobRequest(job.id))?.state, "EXECUTING", "not left READY");
    connectGpuAnt(rt, "gpu-2");
    assert.equal((await rt.engine.waitFor(job.id)).state, "COMPLETED");
  });

  it("are woken once a second at most while ants connect in a burst", async () => {
    const rt = await open();
    let wakes = 0;
    const wake = rt.store.wakeDeferredJobRequests.bind(rt.store);
    rt.store.wakeDeferredJobRequests = (code, now) => {
      wakes++;
      return wake(code, now);
    };
    const job = await rt.engine.submit({ definition: GPU });
    await until("a deferral", async () => {
      const j = await rt.store.getJobRequest(job.id);
      return j?.errorCode === NO_ANT ? j : undefined;
    });
    const link: AntLink = { remoteAddress: "test", send: () => undefined, close: () => undefined };
    for (let i = 0; i < 8; i++) {
      rt.ants!.register({ ant_id: `cpu-${i}`, tags: ["cpu"], methods: ["WEBSOCKET"] }, link);
      await new Promise((r) => setImmediate(r));
    }
    connectGpuAnt(rt, "gpu-late");
    assert.equal((await rt.engine.waitFor(job.id)).state, "COMPLETED");
    // The first connection's wake, then at most one for the other eight (nine without
    // the limit; one when the job was claimed after the last ant connected).
    assert.ok(wakes >= 1 && wakes <= 2, `${wakes} wakes for nine ants`);
  });

  it("still fail with COLONY_NO_ANT once their task's timeout has passed, counted from the first deferral", async () => {
    const { rt, finished } = await endsAfterOneSecond(
      "job_type: gpu-timeout\ntasks:\n- task_type: train\n  method: WEBSOCKET\n  tags: [gpu]\n  timeout: 1s\n",
    );
    const [task] = await rt.store.listTaskExecutions(finished.id);
    assert.equal(task!.errorCode, NO_ANT);
    assert.match(task!.errorMessage!, /no ant took task train within its timeout \(1(\.0+)?s\)/);
  });
});

/** Job `id` once it ended, as `rt`'s store has it (whichever server ran it). */
function ended(rt: Embedded, id: number): Promise<JobRequest> {
  return until(
    "the job to finish",
    async () => {
      const j = await rt.store.getJobRequest(id);
      return j && (j.state === "COMPLETED" || j.state === "FAILED") ? j : undefined;
    },
    15_000,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(await rt.store.getJobRequest(id))}`);
  });
}

describe("two servers on one PostgreSQL store", { skip: pg.url ? false : pg.reason }, () => {
  it("a job the first server cannot place runs on the server that has the ant", async () => {
    const storeUrl = `${pg.url}?schema=colony_deferral_${process.pid}_${Date.now()}`;
    const here = await open({ storeUrl });
    const there = await open({ storeUrl, peer: here });
    connectGpuAnt(there, "gpu-there");
    // Submitted to the server without the ant: it claims first (submit wakes its claims).
    const job = await here.engine.submit({ definition: GPU });
    const finished = await ended(here, job.id);
    assert.equal(finished.state, "COMPLETED");
    assert.equal(finished.owner, there.engine.owner);
    const [task] = await here.store.listTaskExecutions(job.id);
    assert.equal(task!.handle?.ant_id, "gpu-there");
  });

  it("a job whose later task the first server cannot place goes on at the server that has the ant", async () => {
    const storeUrl = `${pg.url}?schema=colony_handback_${process.pid}_${Date.now()}`;
    const here = await open({ storeUrl });
    // `there` claims nothing until `here` has run the build and sent the job back.
    const there = await open({ storeUrl, start: false, peer: here });
    connectAnt(there, "prod-there", ["prod"]);
    const job = await here.engine.submit({ definition: SHIP });
    const back = await sentBack(here, job.id);
    assert.equal(back.owner, here.engine.owner, "the build ran here");
    assert.deepEqual(
      (await here.store.listTaskExecutions(job.id)).map((e) => e.state),
      ["COMPLETED", "READY"],
    );
    await there.engine.start();
    const finished = await ended(here, job.id);
    assert.equal(finished.state, "COMPLETED");
    await assertShipped(here, job.id, "prod-there");
    assert.equal(finished.owner, there.engine.owner, "finished by the server with the ant");
  });
});
