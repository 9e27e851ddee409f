/**
 * What the shape of task ids costs the store: task executions through the real SQLite
 * store (its schema, indexes and statements) with colony's time-ordered unit ids
 * (src/core/ids.ts) against eight random characters, the ids colony made before, in the
 * same run. Each task is created, marked EXECUTING and finished (three writes, the
 * engine's), eleven at a time, so that each write shares its commit as in a busy
 * engine, on a store that already holds `prefill` tasks (a server's history).
 *
 * Random ids land all over the store's index on task ids: each commit dirties one index
 * page per task, and every write looks its task up in a different page. Ids made one
 * after another sort together and share the last pages. Rounds alternate the two
 * stores; the medians are printed.
 */
import { randomInt } from "node:crypto";
import { newUnitId } from "../src/core/ids.ts";
import { taskDefinition } from "../src/core/job-definition.ts";
import { openStore } from "../src/store/open-store.ts";
import type { Store } from "../src/store/store.ts";
import { tempDataDir, type BenchLine } from "./support.ts";

const CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BATCH = 11;

function randomId(): string {
  let id = "";
  for (let i = 0; i < 8; i++) id += CHARS[randomInt(62)];
  return id;
}

interface Side {
  name: string;
  store: Store;
  newId: () => string;
  jobId: number;
  attempt: number;
  cpuUs: number[];
}

async function open(name: string, newId: () => string): Promise<Side & { remove(): void }> {
  const dir = tempDataDir();
  const store = await openStore({ dataDir: dir.path });
  const job = await store.createJobRequest({
    jobType: "bench-ids",
    definition: {
      jobType: "bench-ids",
      retry: 0,
      delayBetweenRetriesMs: 0,
      variables: {},
      tasks: [taskDefinition("t", { method: "FUNCTION", function: "noop" })],
    },
    params: {},
    scheduledAt: new Date(),
  });
  return { name, store, newId, jobId: job.id, attempt: 0, cpuUs: [], remove: dir.remove };
}

/** `n` task executions through their three writes, BATCH at a time. */
async function tasks(side: Side, n: number, finish = true): Promise<void> {
  const { store } = side;
  for (let done = 0; done < n; done += BATCH) {
    const ids = Array.from({ length: Math.min(BATCH, n - done) }, () => side.newId());
    await Promise.all(
      ids.map((id) =>
        store.createTaskExecution({
          id,
          jobRequestId: side.jobId,
          jobAttempt: 0,
          taskType: "t",
          attempt: side.attempt++,
          method: "FUNCTION",
        }),
      ),
    );
    if (!finish) continue;
    await Promise.all(ids.map((id) => store.markTaskExecuting(id)));
    await Promise.all(ids.map((id) => store.finishTask(id, { state: "COMPLETED", exitCode: 0 })));
  }
}

async function round(side: Side, n: number): Promise<void> {
  const started = process.cpuUsage();
  await tasks(side, n);
  const cpu = process.cpuUsage(started);
  side.cpuUs.push((cpu.user + cpu.system) / n);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function unitIdsBench(
  n = 20_000,
  prefill = 100_000,
  rounds = 3,
): Promise<BenchLine[]> {
  const random = await open("random", randomId);
  const ordered = await open("time-ordered", newUnitId);
  try {
    for (const side of [random, ordered]) await tasks(side, prefill, false);
    for (let r = 0; r < rounds; r++) {
      const pair = r % 2 === 0 ? [random, ordered] : [ordered, random];
      for (const side of pair) await round(side, n);
    }
    const base = median(random.cpuUs);
    const ours = median(ordered.cpuUs);
    return [
      {
        name: `task rows by id, CPU per task (${n}; ${prefill / 1000}k stored)`,
        value: `${ours.toFixed(1)} µs`,
        baseline: `random ids ${base.toFixed(1)} µs`,
        ratio: base / ours,
      },
    ];
  } finally {
    await random.store.close();
    await ordered.store.close();
    random.remove();
    ordered.remove();
  }
}
