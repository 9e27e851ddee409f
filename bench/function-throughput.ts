/**
 * No-op FUNCTION jobs on the embedded store (startColony, SQLite in a temp dir) against
 * BullMQ on the local Redis doing the same no-op jobs with the same concurrency, in the
 * same run (SPEC section 11: no-op tasks faster than the popular Node.js queues).
 *
 * Each side runs in a fresh Node process of its own (this file, `--side colony|bullmq`),
 * the two alternately, in `pairs` pairs whose first side alternates too; the figures
 * printed are the medians over the pairs, with each pair's ratio. Run in one process one
 * after the other, the second side found the heap and the code the first had warmed, and
 * on this VM one measurement of each side moved by up to 1.7x between runs of the bench.
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
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
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

type Side = "colony" | "bullmq";

interface SideArgs {
  n: number;
  concurrency: number;
  latencyN: number;
  redisUrl: string;
}

/** One side's figures, measured in a fresh Node process running this file. */
function runSide(side: Side, args: SideArgs): Figures {
  const r = spawnSync(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      "--side",
      side,
      String(args.n),
      String(args.concurrency),
      String(args.latencyN),
      args.redisUrl,
    ],
    { encoding: "utf8", timeout: 10 * 60_000 },
  );
  if (r.status !== 0) {
    throw new Error(`the ${side} side exited ${r.status ?? r.signal}: ${r.stderr.slice(-2000)}`);
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Figures;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function functionThroughput(
  n = 5000,
  concurrency = 16,
  latencyN = 500,
  pairs = 3,
  redisUrl = process.env.COLONY_REDIS_URL ?? "redis://127.0.0.1:6379",
): Promise<BenchLine[]> {
  const args = { n, concurrency, latencyN, redisUrl };
  if (!(await redisReachable(redisUrl))) {
    const colony = runSide("colony", args);
    return [
      {
        name: `FUNCTION no-op jobs/s (${n}, C=${concurrency})`,
        value: `${colony.rate.toFixed(0)}/s  (BullMQ skipped: no Redis at ${redisUrl})`,
      },
    ];
  }
  const colony: Figures[] = [];
  const bull: Figures[] = [];
  for (let i = 0; i < pairs; i++) {
    const order: Side[] = i % 2 === 0 ? ["colony", "bullmq"] : ["bullmq", "colony"];
    for (const side of order) (side === "colony" ? colony : bull).push(runSide(side, args));
  }
  const line = (
    name: string,
    pick: (f: Figures) => number,
    format: (v: number) => string,
    better: "higher" | "lower",
    target?: string,
  ): BenchLine => {
    const ratios = colony.map((c, i) =>
      better === "higher" ? pick(c) / pick(bull[i]!) : pick(bull[i]!) / pick(c),
    );
    return {
      name,
      value: format(median(colony.map(pick))),
      baseline: `BullMQ ${format(median(bull.map(pick)))} (pairs ${ratios.map((r) => r.toFixed(2)).join(", ")})`,
      ratio: median(ratios),
      ...(target ? { target } : {}),
    };
  };
  const perSecond = (v: number) => `${v.toFixed(0)}/s`;
  const ms = (v: number) => `${v.toFixed(2)} ms`;
  return [
    line(
      `FUNCTION no-op jobs/s (${n}, C=${concurrency})`,
      (f) => f.rate,
      perSecond,
      "higher",
      "≥ 2",
    ),
    line("  the same again, warm", (f) => f.warmRate, perSecond, "higher"),
    {
      name: "  page faults per job, cold / warm",
      value: `${median(colony.map((f) => f.faults[0])).toFixed(1)} / ${median(colony.map((f) => f.faults[1])).toFixed(1)}`,
      baseline: `BullMQ ${median(bull.map((f) => f.faults[0])).toFixed(1)} / ${median(bull.map((f) => f.faults[1])).toFixed(1)} (its Node side)`,
    },
    line(`FUNCTION no-op latency p50 (${latencyN} serial)`, (f) => f.p50, ms, "lower"),
    line("  p99", (f) => f.p99, ms, "lower"),
  ];
}

/** `node bench/function-throughput.ts --side colony|bullmq N C LATENCY_N REDIS_URL`: one side, figures as JSON. */
if (import.meta.main && process.argv[2] === "--side") {
  const [side, n, c, latencyN, url] = process.argv.slice(3);
  const figures =
    side === "colony"
      ? await colonySide(Number(c), Number(n), Number(latencyN))
      : await bullmqSide(url!, Number(c), Number(n), Number(latencyN));
  console.log(JSON.stringify(figures));
  process.exit(0);
}
