/**
 * No-op FUNCTION jobs on the embedded store (startColony, SQLite in a temp dir) against
 * BullMQ on the local Redis doing the same no-op jobs with the same concurrency, in the
 * same run (SPEC section 11: no-op tasks faster than the popular Node.js queues).
 *
 * - throughput: N jobs enqueued at once (every enqueue call issued without waiting for
 *   the previous one), the clock stopping when the last one has completed; then the same
 *   again ("warm"): the first run grows the process's heap to hold N jobs in flight, and
 *   on this kind of VM every page a process touches for the first time is expensive
 *   (bench/README.md, issue 6). Page faults per job are printed for both runs;
 * - latency: jobs enqueued one at a time, each waited for before the next: enqueue call
 *   to "completed" event, p50 and p99.
 *
 * Both sides keep their defaults for what they persist (colony: every job and task
 * execution in SQLite; BullMQ: every job hash and its completed entry in Redis) and
 * learn of completion in-process (colony's event bus, the BullMQ Worker's "completed").
 */
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { startColony } from "../src/index.ts";
import { percentile, tempDataDir, type BenchLine } from "./support.ts";

interface Figures {
  rate: number;
  /** The same throughput run again, right after: the process's heap has grown to fit it. */
  warmRate: number;
  /** Minor page faults of this process per job in each throughput run (see bench/README.md). */
  faults: [number, number];
  p50: number;
  p99: number;
}

/** Runs the same pattern against one side; `completion(id)` resolves when that job completed. */
async function measure(
  enqueue: () => Promise<string>,
  completion: (id: string) => Promise<void>,
  n: number,
  latencyN: number,
): Promise<Figures> {
  // Warm up (JIT, connections, prepared statements).
  await Promise.all(Array.from({ length: 200 }, async () => completion(await enqueue())));
  // Throughput: every enqueue issued at once; twice.
  const throughput = async (): Promise<[number, number]> => {
    const faults = process.resourceUsage().minorPageFault;
    const started = performance.now();
    const done = await Promise.all(
      Array.from({ length: n }, () => enqueue().then((id) => ({ wait: completion(id) }))),
    );
    await Promise.all(done.map((d) => d.wait));
    const rate = n / ((performance.now() - started) / 1000);
    return [rate, (process.resourceUsage().minorPageFault - faults) / n];
  };
  const [rate, faults] = await throughput();
  const [warmRate, warmFaults] = await throughput();
  // Latency: one job at a time.
  const samples: number[] = [];
  for (let i = 0; i < latencyN; i++) {
    const t0 = performance.now();
    await completion(await enqueue());
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return {
    rate,
    warmRate,
    faults: [faults, warmFaults],
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
  };
}

/** Completion events may arrive before enqueue() has returned the id: early ones are kept. */
function completions() {
  const waiting = new Map<string, () => void>();
  const early = new Set<string>();
  return {
    wait(id: string): Promise<void> {
      if (early.delete(id)) return Promise.resolve();
      return new Promise((resolve) => waiting.set(id, resolve));
    },
    done(id: string): void {
      const resolve = waiting.get(id);
      if (resolve) {
        waiting.delete(id);
        resolve();
      } else early.add(id);
    },
  };
}

async function colonySide(concurrency: number, n: number, latencyN: number): Promise<Figures> {
  const dir = tempDataDir();
  const colony = await startColony({
    dataDir: dir.path,
    maxParallelTasks: concurrency,
    schedules: false,
    functions: { noop: () => undefined },
    log: () => undefined,
  });
  const registry = completions();
  colony.on("job:completed", (e) => registry.done(String(e.id)));
  let failed = 0;
  colony.on("job:failed", () => failed++);
  const definition = {
    job_type: "bench-noop",
    tasks: [{ task_type: "noop", method: "FUNCTION", function: "noop" }],
  };
  const parsed = (await import("../src/core/definition-parser.ts")).parseJobDefinition(
    JSON.stringify(definition),
  );
  try {
    // engine.submit with the parsed definition: what colony.submit does after parsing.
    const enqueue = async () => String((await colony.engine.submit({ definition: parsed })).id);
    const figures = await measure(enqueue, (id) => registry.wait(id), n, latencyN);
    if (failed > 0) throw new Error(`${failed} colony bench jobs failed`);
    return figures;
  } finally {
    await colony.close({ graceMs: 0 });
    dir.remove();
  }
}

async function bullmqSide(
  redisUrl: string,
  concurrency: number,
  n: number,
  latencyN: number,
): Promise<Figures> {
  const name = `colony-bench-${process.pid}-${Date.now()}`;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(name, { connection });
  const worker = new Worker(name, async () => undefined, {
    connection: workerConnection,
    concurrency,
  });
  const registry = completions();
  worker.on("completed", (job) => registry.done(String(job.id)));
  let failed = 0;
  worker.on("failed", () => failed++);
  await worker.waitUntilReady();
  try {
    const enqueue = async () => String((await queue.add("noop", {})).id);
    const figures = await measure(enqueue, (id) => registry.wait(id), n, latencyN);
    if (failed > 0) throw new Error(`${failed} BullMQ bench jobs failed`);
    return figures;
  } finally {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
    workerConnection.disconnect();
  }
}

async function redisReachable(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await probe.connect();
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

export async function functionThroughput(
  n = 5000,
  concurrency = 16,
  latencyN = 500,
  redisUrl = process.env.COLONY_REDIS_URL ?? "redis://127.0.0.1:6379",
): Promise<BenchLine[]> {
  const colony = await colonySide(concurrency, n, latencyN);
  if (!(await redisReachable(redisUrl))) {
    return [
      {
        name: `FUNCTION no-op jobs/s (${n}, C=${concurrency})`,
        value: `${colony.rate.toFixed(0)}/s  (BullMQ skipped: no Redis at ${redisUrl})`,
      },
    ];
  }
  const bull = await bullmqSide(redisUrl, concurrency, n, latencyN);
  const ms = (f: Figures) => `p50 ${f.p50.toFixed(2)} ms, p99 ${f.p99.toFixed(2)} ms`;
  return [
    {
      name: `FUNCTION no-op jobs/s (${n}, C=${concurrency})`,
      value: `${colony.rate.toFixed(0)}/s`,
      baseline: `BullMQ ${bull.rate.toFixed(0)}/s`,
      ratio: colony.rate / bull.rate,
      target: "≥ 2",
    },
    {
      name: "  the same again, warm",
      value: `${colony.warmRate.toFixed(0)}/s`,
      baseline: `BullMQ ${bull.warmRate.toFixed(0)}/s`,
      ratio: colony.warmRate / bull.warmRate,
    },
    {
      name: "  page faults per job, cold / warm",
      value: `${colony.faults.map((f) => f.toFixed(1)).join(" / ")}`,
      baseline: `BullMQ ${bull.faults.map((f) => f.toFixed(1)).join(" / ")} (its Node side)`,
    },
    {
      name: `FUNCTION no-op latency (${latencyN} serial)`,
      value: ms(colony),
      baseline: `BullMQ ${ms(bull)}`,
      ratio: bull.p50 / colony.p50,
    },
  ];
}
