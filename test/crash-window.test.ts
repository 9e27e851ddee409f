/**
 * A crash between a task's start and the commit that records it: the store says READY
 * while the process runs under the dead engine's spawner. The engine that takes the job
 * over must follow that process, not start the task a second time.
 *
 * Two engines in this process share one SQLite data dir. The first, whose owner id
 * names a process that has exited (as a crashed `colony run` leaves it), starts a real
 * shell task and never gets its start recorded (its store's markTaskExecuting hangs);
 * the second recovers the job as it would after a restart.
 *
 * Also a crash after a cancel was asked and before the task's process stopped: the
 * engine that takes the job over stops that process, not only the record.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { StoreError } from "../src/core/errors.ts";
import {
  ExecutorRegistry,
  type ExecutionHandle,
  type ExecutionRequest,
  type Executor,
} from "../src/core/executor.ts";
import { hasExited, readProcStatSync } from "../src/core/proc-stat.ts";
import { Engine } from "../src/engine/engine.ts";
import { createShellExecutor } from "../src/executors/shell/shell-executor.ts";
import { openStore } from "../src/store/open-store.ts";
import type { Store } from "../src/store/store.ts";
import { tempDir } from "./support/cli.ts";

/** The real shell executor, with every start request and handle kept. */
function recordingShell() {
  const shell = createShellExecutor({ killGraceMs: 1000 });
  const requests: ExecutionRequest[] = [];
  const handles: ExecutionHandle[] = [];
  const executor: Executor = {
    ...shell,
    async start(request) {
      requests.push(request);
      const handle = await shell.start(request);
      handles.push(handle);
      return handle;
    },
  };
  const executors = new ExecutorRegistry();
  executors.register(executor);
  return { executors, requests, handles };
}

/** Whether process `pid` exists (and is not a zombie). */
function alive(pid: number): boolean {
  const stat = readProcStatSync(pid);
  return stat !== undefined && !hasExited(stat);
}

/** An owner id for this host whose process has exited: taken over at once. */
async function deadOwner(): Promise<string> {
  const child = spawn("true");
  await once(child, "exit");
  return `${hostname()}:${child.pid}:dead00`;
}

/**
 * Two engines on one data dir, each with a recording shell executor. The first, whose
 * owner id names an exited process, runs on `storeA` (the real store, or a wrapper of
 * it); crash() stops it the way a crash does (nothing more of it reaches the store, its
 * spawner runs its tasks on) and starts the second, which takes its jobs over.
 */
async function crashPair(dataDir: string, realStoreA: Store, storeA: Store = realStoreA) {
  const secretKey = randomBytes(32);
  const a = recordingShell();
  const b = recordingShell();
  const first = new Engine({
    store: storeA,
    executors: a.executors,
    dataDir,
    secretKey,
    owner: await deadOwner(),
    leaseMs: 60_000,
    pollMs: 20,
    log: () => undefined,
  });
  let storeB: Store | undefined;
  let second: Engine | undefined;
  const stopFirst = async () => {
    await first.stop({ graceMs: 0 });
    await a.executors.close();
    await realStoreA.close();
  };
  return {
    a,
    b,
    first,
    async crash(): Promise<{ engine: Engine; store: Store }> {
      await stopFirst();
      storeB = await openStore({ dataDir });
      second = new Engine({
        store: storeB,
        executors: b.executors,
        dataDir,
        secretKey,
        leaseMs: 3000,
        pollMs: 20,
        log: () => undefined,
      });
      await second.start();
      return { engine: second, store: storeB };
    },
    /** Stops both; what still runs is killed. */
    async close() {
      await first.stop({ graceMs: 0 });
      await a.executors.close({ killRunning: true });
      await realStoreA.close();
      await second?.stop();
      await b.executors.close({ killRunning: true });
      await storeB?.close();
    },
  };
}

/** Waits (up to 5 s) until `done()`. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
}

void describe("crashes while a task starts or stops", () => {
  const dir = tempDir("colony-window-");
  after(() => dir.remove());

  void it("the engine that takes the job over follows the running process: the task runs once", async () => {
    const dataDir = join(dir.path, "start");
    const runs = join(dir.path, "runs");
    const storeA = await openStore({ dataDir });
    let calls = 0;
    let release: (error: Error) => void = () => undefined;
    const stuck = new Promise<never>((_, reject) => (release = reject));
    stuck.catch(() => undefined);
    // The first engine dies, as far as the store knows, between the start and its record.
    const hung = new Proxy(storeA, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value !== "function") return value;
        if (key !== "markTaskExecuting") return (value as () => unknown).bind(target);
        return () => {
          calls++;
          return stuck;
        };
      },
    });
    const pair = await crashPair(dataDir, storeA, hung);
    try {
      await pair.first.start();
      const job = await pair.first.submit({
        definition: parseJobDefinition(
          `job_type: window\ntasks:\n- task_type: work\n  script: ['echo run >> ${runs}', 'echo started', 'sleep 1', 'echo done', 'exit 3']\n  on_exit_code:\n    "3": COMPLETED\n`,
        ),
      });
      await until(() => calls > 0 && existsSync(runs));
      assert.ok(calls > 0 && existsSync(runs), "the first engine started the task");
      const [before] = await storeA.listTaskExecutions(job.id);
      assert.equal(before?.state, "READY", "its start is not recorded");

      const { engine, store } = await pair.crash();
      const final = await engine.waitFor(job.id);
      assert.equal(final.state, "COMPLETED", final.errorMessage);
      assert.equal(readFileSync(runs, "utf8"), "run\n", "the task ran once");
      const [task] = await store.listTaskExecutions(job.id);
      assert.equal(task?.exitCode, 3, "its own exit code");
      assert.deepEqual(
        pair.b.requests.map((r) => r.mayHaveStarted),
        [true],
        "the recovering engine said it may have started",
      );
      assert.equal(pair.a.requests[0]?.mayHaveStarted, undefined, "a new task's start does not");
      if (process.platform === "linux") {
        // Found by its COLONY_EXECUTION_ID: recorded as if this engine had started it.
        assert.equal(task?.handle?.["pid"], pair.a.handles[0]?.["pid"]);
      }
      let text = "";
      for await (const chunk of await engine.outputStream(task!.id)) text += String(chunk);
      assert.equal(text, "started\ndone\n", "the whole output, once");
    } finally {
      release(new StoreError("the first engine's store went away with it"));
      await pair.close();
    }
  });

  void it("a cancel asked while its start was unrecorded stops the process the engine finds", async () => {
    const dataDir = join(dir.path, "cancel-unrecorded");
    const runs = join(dir.path, "cancel-unrecorded-runs");
    const storeA = await openStore({ dataDir });
    const hung = new Proxy(storeA, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value !== "function") return value;
        if (key !== "markTaskExecuting") return (value as () => unknown).bind(target);
        return () => new Promise<never>(() => undefined); // dies before recording the start
      },
    });
    const pair = await crashPair(dataDir, storeA, hung);
    try {
      await pair.first.start();
      const job = await pair.first.submit({
        definition: parseJobDefinition(
          `job_type: deaf\ntasks:\n- task_type: work\n  script: ['echo run >> ${runs}', 'sleep 60']\n`,
        ),
      });
      await until(() => pair.a.handles.length > 0 && existsSync(runs));
      const pid = Number(pair.a.handles[0]?.["pid"]);
      assert.ok(pid > 0 && alive(pid), "the first engine started the task");
      assert.equal((await storeA.listTaskExecutions(job.id))[0]?.state, "READY");
      await storeA.requestCancel(job.id);
      const { engine, store } = await pair.crash();
      const final = await engine.waitFor(job.id);
      assert.equal(final.state, "CANCELLED");
      const [task] = await store.listTaskExecutions(job.id);
      assert.equal(task?.state, "CANCELLED");
      assert.doesNotMatch(task?.errorMessage ?? "", /before start/, "it was found running");
      assert.equal(alive(pid), false, "the process was stopped, not left running");
      assert.deepEqual(
        pair.b.requests.map((r) => [r.mayHaveStarted, r.adoptOnly]),
        [[true, true]],
        "the engine taking over only looked for it",
      );
      assert.equal(readFileSync(runs, "utf8"), "run\n", "it was not started again");
    } finally {
      await pair.close();
    }
  });

  void it("a cancelled task an earlier process never started is not started to be stopped", async () => {
    const dataDir = join(dir.path, "cancel-never");
    const runs = join(dir.path, "cancel-never-runs");
    const storeA = await openStore({ dataDir });
    const pair = await crashPair(dataDir, storeA);
    // The first engine's shell never starts anything: it dies first.
    pair.a.executors.get("SHELL")!.start = (request) => {
      pair.a.requests.push(request);
      return new Promise<never>(() => undefined);
    };
    try {
      await pair.first.start();
      const job = await pair.first.submit({
        definition: parseJobDefinition(
          `job_type: never\ntasks:\n- task_type: work\n  script: ['echo run >> ${runs}']\n`,
        ),
      });
      await until(() => pair.a.requests.length > 0);
      assert.equal(pair.a.requests.length, 1, "the first engine was starting it");
      await storeA.requestCancel(job.id);
      const { engine, store } = await pair.crash();
      assert.equal((await engine.waitFor(job.id)).state, "CANCELLED");
      const [task] = await store.listTaskExecutions(job.id);
      assert.match(task?.errorMessage ?? "", /before start/);
      assert.deepEqual(
        pair.b.requests.map((r) => r.adoptOnly),
        [true],
        "it looked for the task, and started nothing",
      );
      assert.equal(existsSync(runs), false);
    } finally {
      await pair.close();
    }
  });

  void it("a cancel asked before the crash stops the process the engine re-attaches to", async () => {
    const dataDir = join(dir.path, "cancel");
    const storeA = await openStore({ dataDir });
    const pair = await crashPair(dataDir, storeA);
    try {
      await pair.first.start();
      // It ignores SIGTERM: only the SIGKILL after the grace stops it.
      const job = await pair.first.submit({
        definition: parseJobDefinition(
          "job_type: deaf\ntasks:\n- task_type: work\n  script: [\"trap '' TERM\", 'echo started', 'sleep 60']\n",
        ),
      });
      await until(() => pair.a.handles.length > 0);
      const pid = Number(pair.a.handles[0]?.["pid"]);
      assert.ok(pid > 0, "the first engine started the task");
      await storeA.requestCancel(job.id);
      assert.equal(alive(pid), true, "it ignored the SIGTERM");
      // It dies before the kill grace ends: the process runs on, the job cancel-asked.
      const { engine, store } = await pair.crash();
      const final = await engine.waitFor(job.id);
      assert.equal(final.state, "CANCELLED");
      const [task] = await store.listTaskExecutions(job.id);
      assert.equal(task?.state, "CANCELLED");
      assert.doesNotMatch(task?.errorMessage ?? "", /before start/);
      assert.equal(alive(pid), false, "the process was stopped, not left running");
    } finally {
      await pair.close();
    }
  });
});
