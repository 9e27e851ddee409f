/**
 * WEBSOCKET no-op dispatch to 50 echo ants, against a raw `ws` echo between the same two
 * processes in the same run.
 *
 * Processes: a colony server (bench/ants-server.ts: auth on, SQLite, plus a raw echo
 * route `/bench/echo` in that same process) and an ants process (bench/ants-clients.ts:
 * 50 WebSocket clients). This process only drives them.
 *
 * - raw echo: the 50 clients each run a closed loop of TaskRequest-sized frames on
 *   /bench/echo (before, between and after the rounds below);
 * - dispatch: N tasks straight through the dispatcher (routing by method and tags,
 *   least load, max_capacity 1, the TaskRequest built, sent, the echo validated and
 *   matched), 64 at a time, no store;
 * - floor: the same N tasks through the least a dispatcher of JSON TaskRequests can do
 *   (stringify, send, parse the reply, settle the waiter by id: no routing, checks,
 *   store or events; bench/ants-server.ts), to the same number of echo ants, one task
 *   at a time each: what the dispatch line is measured against besides the echo;
 * - dispatch and floor each run one full round first (warm-up), then three rounds of
 *   both, each round between two echo phases and set against their mean; the round
 *   with the median ratio is printed;
 * - jobs: N single-task WEBSOCKET jobs submitted in-process to the server's engine and
 *   run to COMPLETED (everything: store writes for the job and the task, planning);
 * - TaskRequest text: the dispatch line's request made as colony sends it against
 *   JSON.stringify of the request object, in this process (taskRequestText).
 *
 * The machine is shared, so rates drift; the server's CPU time per task against its CPU
 * time per raw echo round trip is printed too, as it moves much less with the load.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ExecutionRequest } from "../src/core/executor.ts";
import { buildTaskRequest, encodeTaskRequest, taskDefinition } from "../src/ants/task-request.ts";
import { antsBenchRequest, tempDataDir, type BenchLine } from "./support.ts";
import { deepFreeze } from "../src/core/json.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Child {
  process: ChildProcess;
  next(): Promise<string>;
  send(line: string): void;
}

function child(args: string[]): Child {
  // BENCH_CPU_PROF=server (or clients): a V8 CPU profile of that process in ./bench-prof/.
  const prof = process.env.BENCH_CPU_PROF;
  const flags = prof && args[0]!.includes(prof) ? ["--cpu-prof", "--cpu-prof-dir=bench-prof"] : [];
  const p = spawn(process.execPath, [...flags, ...args], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiters: Array<{ resolve(l: string): void; reject(e: Error): void }> = [];
  createInterface({ input: p.stdout! }).on("line", (l) => {
    const w = waiters.shift();
    if (w) w.resolve(l);
    else lines.push(l);
  });
  p.once("exit", (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${args.join(" ")} exited with ${code}`));
  });
  return {
    process: p,
    next: () =>
      new Promise((resolve, reject) => {
        const ready = lines.shift();
        if (ready !== undefined) return resolve(ready);
        waiters.push({ resolve, reject });
      }),
    send: (line) => p.stdin!.write(`${line}\n`),
  };
}

interface Timed {
  rate: number;
  /** Server CPU µs per task (or per echo round trip). */
  cpuUs: number;
}

async function ask(c: Child, line: string): Promise<string[]> {
  c.send(line);
  return (await c.next()).split(" ");
}

/**
 * `n` dispatched tasks (20,000 by default: at ~10,000 a second that phase lasts about as
 * long as each 3 s echo phase, where 5000 gave half a second and a noisier figure) and
 * `jobsN` jobs through the engine.
 */
export async function antsDispatch(
  n = 20_000,
  ants = 50,
  seconds = 3,
  jobsN = 5000,
  rounds = 3,
): Promise<BenchLine[]> {
  const dir = tempDataDir();
  const server = child(["bench/ants-server.ts", dir.path]);
  let clients: Child | undefined;
  try {
    const [, url, token] = (await server.next()).split(" ");
    clients = child(["bench/ants-clients.ts", url!, token!]);
    await clients.next();
    const cpu = async () => Number((await ask(server, "cpu"))[1]);
    // Echo frames of the size of the dispatch line's TaskRequest frames (~510 bytes).
    const bytes = Buffer.byteLength(encodeTaskRequest(dispatchRequest()(n >> 1)).text);
    const echo = async (): Promise<Timed> => {
      const before = await cpu();
      const [, count, secs, all] = await ask(clients!, `echo ${ants} ${seconds} ${bytes}`);
      return { rate: Number(count) / Number(secs), cpuUs: ((await cpu()) - before) / Number(all) };
    };
    const timed = async (command: string, count: number): Promise<Timed> => {
      const before = await cpu();
      const [, secs, done] = await ask(server, `${command} ${count}`);
      if (Number(done) !== count) throw new Error(`${command}: only ${done} of ${count} completed`);
      return { rate: count / Number(secs), cpuUs: ((await cpu()) - before) / count };
    };
    await ask(clients, `ants ${ants}`);
    await ask(clients, `floor ${ants}`);
    // A server runs for days: what counts is its steady state. One full round of each
    // first (the JIT and the heap settle: a single round after a short warm-up was up
    // to twice as slow as the next ones, and only the side that ran first paid it).
    await ask(server, `dispatch ${n}`);
    await ask(server, `floor ${n}`);
    // Then `rounds` rounds of dispatch and floor, each between two echo phases: the
    // machine's speed drifts (the echo alone moved by half within one run), so each
    // round is set against the mean of the echoes on either side of it, and the round
    // with the median ratio is printed.
    const echoes = [await echo()];
    const runs: Array<{ dispatch: Timed; floor: Timed; base: Timed }> = [];
    for (let r = 0; r < rounds; r++) {
      const dispatch = await timed("dispatch", n);
      const floor = await timed("floor", n);
      echoes.push(await echo());
      const [before, after] = [echoes[r]!, echoes[r + 1]!];
      const base = {
        rate: (before.rate + after.rate) / 2,
        cpuUs: (before.cpuUs + after.cpuUs) / 2,
      };
      runs.push({ dispatch, floor, base });
    }
    // In the order run (the first is often the slowest: bench/README.md), then sorted for
    // the median.
    const ratios = runs.map((r) => (r.dispatch.rate / r.base.rate).toFixed(2)).join(", ");
    runs.sort((a, b) => a.dispatch.rate / a.base.rate - b.dispatch.rate / b.base.rate);
    const { dispatch, floor, base: around } = runs[runs.length >> 1]!;
    const base = around.rate;
    const baseCpu = around.cpuUs;
    const jobs = await timed("jobs", jobsN);
    const text = taskRequestText();
    const all = echoes.reduce((sum, e) => sum + e.rate, 0) / echoes.length;
    return [
      {
        name: `ws dispatch to ${ants} echo ants (${n})`,
        value: `${dispatch.rate.toFixed(0)} tasks/s`,
        baseline: `raw ws echo ${base.toFixed(0)}/s (rounds in order: ${ratios})`,
        ratio: dispatch.rate / base,
        target: "≥ 0.5",
      },
      {
        name: "  server CPU per task",
        value: `${dispatch.cpuUs.toFixed(0)} µs`,
        baseline: `per raw echo ${baseCpu.toFixed(0)} µs`,
        ratio: baseCpu / dispatch.cpuUs,
      },
      text,
      {
        name: "  floor: a bare JSON dispatcher",
        value: `${floor.rate.toFixed(0)} tasks/s, ${floor.cpuUs.toFixed(0)} µs`,
        baseline: `raw ws echo ${base.toFixed(0)}/s`,
        ratio: floor.rate / base,
      },
      {
        name: "  colony against the floor",
        value: `${dispatch.rate.toFixed(0)} vs ${floor.rate.toFixed(0)} tasks/s`,
        ratio: dispatch.rate / floor.rate,
      },
      {
        name: `ws jobs to ${ants} echo ants (${jobsN})`,
        value: `${jobs.rate.toFixed(0)} jobs/s`,
        baseline: `raw ws echo ${all.toFixed(0)}/s (all ${echoes.length} echoes)`,
        ratio: jobs.rate / all,
      },
      {
        name: "  server CPU per job",
        value: `${jobs.cpuUs.toFixed(0)} µs`,
        baseline: `per raw echo ${baseCpu.toFixed(0)} µs`,
        ratio: baseCpu / jobs.cpuUs,
      },
    ];
  } finally {
    clients?.send("quit");
    server.send("quit");
    await Promise.all(
      [server, clients].map((c) => c && new Promise((resolve) => c.process.once("exit", resolve))),
    );
    dir.remove();
  }
}

/** The ExecutionRequest of the dispatch line's i-th task (bench/ants-server.ts `dispatch`). */
function dispatchRequest(): (i: number) => ExecutionRequest {
  const task = deepFreeze(taskDefinition("t", { method: "WEBSOCKET", tags: ["bench"] }));
  return (i) => antsBenchRequest(task, `b2-${i}`);
}

/**
 * The JSON text of the dispatch line's TaskRequest, made as colony sends it
 * (encodeTaskRequest: the task's parts kept as text) against JSON.stringify of the
 * request object (buildTaskRequest), in this process: µs per text, alternating rounds,
 * the median of each.
 */
export function taskRequestText(n = 100_000, rounds = 5): BenchLine {
  const request = dispatchRequest();
  const time = (make: (i: number) => string): number => {
    const started = performance.now();
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += make(i).length;
    if (bytes === 0) throw new Error("no text");
    return ((performance.now() - started) * 1000) / n;
  };
  const encoded: number[] = [];
  const plain: number[] = [];
  for (let r = 0; r < rounds; r++) {
    encoded.push(time((i) => encodeTaskRequest(request(i)).text));
    plain.push(time((i) => JSON.stringify(buildTaskRequest(request(i)))));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const [e, p] = [median(encoded), median(plain)];
  return {
    name: "  TaskRequest text per send",
    value: `${e.toFixed(2)} µs`,
    baseline: `JSON.stringify(buildTaskRequest) ${p.toFixed(2)} µs`,
    ratio: p / e,
  };
}
