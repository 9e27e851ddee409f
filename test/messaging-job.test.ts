/**
 * The seed's `messaging-job` (method MESSAGING on the seed's queue names) against a real
 * Redis, answered by workers in other processes: the Node worker of
 * examples/workers/messaging-worker.ts (the worker SDK) and the Python one of
 * examples/workers/messaging_worker.py (Debian's python3-redis, no colony code).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { openEmbedded, type Embedded } from "../src/runtime/embedded.ts";
import { ROOT, tempDir } from "./support/cli.ts";
import { redis } from "./support/services.ts";
import { waitUntil } from "./support/server-harness.ts";

const service = await redis();
const CI = process.env.CI === "true" || process.env.CI === "1";
const PYTHON = "/usr/bin/python3";

async function pythonHasRedis(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  const r = spawn(PYTHON, ["-c", "import redis"], { stdio: "ignore" });
  return new Promise((resolve) => r.on("close", (code) => resolve(code === 0)));
}
const hasPython = await pythonHasRedis();
if (!hasPython && CI) throw new Error("CI=true but /usr/bin/python3 with python3-redis is missing");

const QUEUES = ["formicary-message-ant-request", "formicary-message-ant-response"];

describe("the seed's messaging-job", { skip: service.url ? false : service.reason }, () => {
  const dir = tempDir("colony-messaging-");
  let runtime: Embedded;
  let r: Redis;
  const workers: ChildProcess[] = [];
  const seed = readFileSync(new URL("./fixtures/seed/messaging-job.yaml", import.meta.url), "utf8");

  function startWorker(command: string, args: string[]): Promise<ChildProcess> {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, COLONY_REDIS_URL: service.url! },
      stdio: ["ignore", "pipe", "pipe"],
    });
    workers.push(child);
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    return waitUntil(`${args.join(" ")} ready`, () => /ready/.test(out)).then(
      () => child,
      (error: Error) => {
        throw new Error(`${error.message}: ${out}`);
      },
    );
  }

  async function stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }

  async function runSeedJob(): Promise<Record<string, unknown>> {
    const job = await runtime.engine.submit({ definition: parseJobDefinition(seed) });
    const done = await runtime.engine.waitFor(job.id);
    const tasks = (await runtime.engine.getJob(job.id)).tasks;
    assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
    return tasks[0]!.context;
  }

  before(async () => {
    r = new Redis(service.url!);
    await r.del(...QUEUES);
    runtime = await openEmbedded({ dataDir: dir.path, redisUrl: service.url! });
    await runtime.engine.start();
  });
  after(async () => {
    for (const w of workers) await stop(w);
    await runtime.close({ graceMs: 0 });
    await r.del(...QUEUES);
    r.disconnect();
    dir.remove();
  });

  it("completes with the task_context of a Node worker (the worker SDK) in another process", async () => {
    const worker = await startWorker(process.execPath, ["examples/workers/messaging-worker.ts"]);
    try {
      assert.deepEqual(await runSeedJob(), { key1: "value1", worker: "node", task: "trigger" });
    } finally {
      await stop(worker);
    }
  });

  it(
    "completes with the task_context of a Python worker (python3-redis) in another process",
    { skip: hasPython ? false : "needs /usr/bin/python3 with python3-redis" },
    async () => {
      const worker = await startWorker(PYTHON, ["-u", "examples/workers/messaging_worker.py"]);
      try {
        assert.deepEqual(await runSeedJob(), { key1: "value1", worker: "python" });
      } finally {
        await stop(worker);
      }
    },
  );
});
