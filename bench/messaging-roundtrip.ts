/**
 * MESSAGING round trips through Redis, against raw XADD / XREADGROUP round trips in the
 * same run, both with a worker in another process and the same number in flight.
 *
 * - raw: this process XADDs a small payload to a request stream and waits for the reply
 *   on a reply stream (one XREAD loop for all lanes); the worker process
 *   (bench/messaging-raw-worker.ts) reads through a consumer group, XADDs the reply and
 *   XACKs: the least any request/reply protocol on Redis streams does;
 * - colony: the MESSAGING executor (TaskRequest JSON, group created, replies matched by
 *   task_execution_id) with the worker SDK (examples/workers/messaging-worker.ts) in the
 *   worker process.
 * Redis: COLONY_REDIS_URL or redis://127.0.0.1:6379.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { taskDefinition } from "../src/ants/task-request.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import { createMessagingExecutor } from "../src/executors/messaging/messaging-executor.ts";
import { tempDataDir, type BenchLine } from "./support.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function startWorker(args: string[], url: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, COLONY_REDIS_URL: url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

/** `n` raw round trips, `lanes` in flight. */
async function rawRate(url: string, n: number, lanes: number): Promise<number> {
  const tag = randomBytes(4).toString("hex");
  const req = `bench-raw-req-${tag}`;
  const rep = `bench-raw-rep-${tag}`;
  const worker = await startWorker(["bench/messaging-raw-worker.ts", req, rep], url);
  const writer = new Redis(url);
  const reader = new Redis(url);
  const waiting = new Map<string, () => void>();
  let reading = true;
  let last = "$";
  const loop = (async () => {
    while (reading) {
      const got = (await reader.xread("COUNT", 100, "BLOCK", 200, "STREAMS", rep, last)) as
        [string, [string, string[]][]][] | null;
      for (const [, entries] of got ?? []) {
        for (const [id, fields] of entries) {
          last = id;
          waiting.get(fields[1]!)?.();
        }
      }
    }
  })();
  try {
    await new Promise((r) => setTimeout(r, 100));
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (next < n) {
          const key = `k${next++}`;
          const done = new Promise<void>((resolve) => waiting.set(key, resolve));
          await writer.xadd(req, "*", "payload", key);
          await done;
          waiting.delete(key);
        }
      }),
    );
    return n / ((performance.now() - started) / 1000);
  } finally {
    reading = false;
    await loop;
    await stop(worker);
    await writer.del(req, rep);
    writer.disconnect();
    reader.disconnect();
  }
}

/** `n` MESSAGING tasks through the executor and the SDK worker, `lanes` in flight. */
async function colonyRate(url: string, n: number, lanes: number): Promise<number> {
  const tag = randomBytes(4).toString("hex");
  const req = `bench-colony-req-${tag}`;
  const rep = `bench-colony-rep-${tag}`;
  const dir = tempDataDir();
  const executor = createMessagingExecutor({ redisUrl: url });
  const worker = await startWorker(["examples/workers/messaging-worker.ts", req, rep], url);
  const task = taskDefinition("trigger", {
    method: "MESSAGING",
    messagingRequestQueue: req,
    messagingReplyQueue: rep,
  });
  const request = (id: string): ExecutionRequest => ({
    executionId: id,
    method: "MESSAGING",
    task,
    env: {},
    variables: {},
    unitDir: join(dir.path, id),
    jobRequestId: 1,
    jobType: "bench-messaging",
  });
  try {
    await executor.run(request("warm"));
    let next = 0;
    let completed = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (next < n) {
          const result = await executor.run(request(`m${next++}`));
          if (result.status === "COMPLETED") completed++;
        }
      }),
    );
    const rate = n / ((performance.now() - started) / 1000);
    if (completed !== n) throw new Error(`only ${completed} of ${n} messaging tasks completed`);
    return rate;
  } finally {
    await stop(worker);
    await executor.close();
    const r = new Redis(url);
    await r.del(req, rep);
    r.disconnect();
    dir.remove();
  }
}

export async function messagingRoundTrip(n = 3000, lanes = 16): Promise<BenchLine[]> {
  const url = process.env.COLONY_REDIS_URL ?? "redis://127.0.0.1:6379";
  const before = await rawRate(url, n, lanes);
  const colony = await colonyRate(url, n, lanes);
  const after = await rawRate(url, n, lanes);
  const base = (before + after) / 2;
  return [
    {
      name: `messaging round trips (${n}, ${lanes} in flight)`,
      value: `${colony.toFixed(0)}/s`,
      baseline: `raw XADD/XREADGROUP ${base.toFixed(0)}/s (${before.toFixed(0)}, ${after.toFixed(0)})`,
      ratio: colony / base,
    },
  ];
}
