/**
 * npm run bench:ab -- <revision> [function|shell]
 *
 * An in-process A/B of one workload: an earlier revision of colony (checked out into a
 * temporary git worktree that shares this checkout's node_modules) against this working
 * tree, both loaded into one process, in alternating rounds (A B, B A, A B, ...). On a
 * shared machine whose speed moves by 2× between runs, a ratio taken round by round
 * between two versions that see the same moments is what tells a 5 % change apart;
 * `npm run bench` compares colony with other systems, this compares colony with itself.
 *
 * - function: AB_N (3000) no-op FUNCTION jobs submitted at once to the engine (as the
 *   FUNCTION bench does), 16 task slots;
 * - shell: AB_N (500) single-task `/bin/sh -c true` jobs submitted one after another, 8
 *   task slots, real spawners and shells.
 *
 * Per round: jobs/s and this process's CPU per job (and, for shell, the spawners' own
 * CPU per job, from /proc, in 10 ms ticks). Printed: each side's medians, and the
 * median over rounds of B/A (this tree against the revision) with its 90 % confidence
 * interval (medianInterval in support.ts; "no difference shown" when it holds 1: with
 * the same tree on both sides this VM reads medians between 0.96 and 1.09, so use 16
 * rounds or more and trust an interval, not a median). AB_ROUNDS (12) sets the
 * rounds; BENCH_DIR the disk of the data dirs. The revision must have the entry points
 * used here (src/index.ts startColony, src/runtime/embedded.ts openEmbedded).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { medianInterval, tempDataDir } from "./support.ts";
import { noopColony } from "./noop-colony.ts";
import type * as Library from "../src/index.ts";
import type * as Embedded from "../src/runtime/embedded.ts";
import type * as Parser from "../src/core/definition-parser.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WORKLOADS = ["function", "shell"] as const;
type Workload = (typeof WORKLOADS)[number];

interface Side {
  name: string;
  round(n: number): Promise<void>;
  close(): Promise<void>;
  rounds: Array<{ rate: number; cpuUs: number; spawnerUs: number }>;
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: npm run bench:ab -- <revision> [${WORKLOADS.join("|")}]` +
      `   (env: AB_ROUNDS, AB_N, BENCH_DIR)\n`,
  );
  process.exit(2);
}

/** A detached worktree of `revision` next to nothing else, removed at exit. */
function checkout(revision: string): string {
  const dir = mkdtempSync(join(tmpdir(), "colony-ab-"));
  try {
    execFileSync("git", ["-C", ROOT, "worktree", "add", "--detach", "--quiet", dir, revision], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const detail = String((error as { stderr?: Buffer }).stderr ?? error).trim();
    usage(`cannot check out '${revision}' (${detail})`);
  }
  process.once("exit", () => {
    execFileSync("git", ["-C", ROOT, "worktree", "remove", "--force", dir], { stdio: "ignore" });
  });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

async function load<T>(root: string, path: string): Promise<T> {
  return (await import(pathToFileURL(join(root, path)).href)) as T;
}

async function functionSide(name: string, root: string): Promise<Side> {
  const { startColony } = await load<typeof Library>(root, "src/index.ts");
  const { parseJobDefinition } = await load<typeof Parser>(root, "src/core/definition-parser.ts");
  const { colony, close } = await noopColony(startColony);
  // As the FUNCTION bench does: engine.submit with the definition parsed once.
  const definition = parseJobDefinition(
    '{"job_type":"ab-noop","tasks":[{"task_type":"noop","method":"FUNCTION","function":"noop"}]}',
  );
  const { engine } = colony;
  return {
    name,
    rounds: [],
    async round(n) {
      const jobs = await Promise.all(
        Array.from({ length: n }, () => engine.submit({ definition })),
      );
      await Promise.all(jobs.map((job) => engine.waitFor(job.id)));
    },
    close,
  };
}

async function shellSide(name: string, root: string): Promise<Side> {
  const { openEmbedded } = await load<typeof Embedded>(root, "src/runtime/embedded.ts");
  const { parseJobDefinition } = await load<typeof Parser>(root, "src/core/definition-parser.ts");
  const dir = tempDataDir();
  const runtime = await openEmbedded({
    dataDir: dir.path,
    maxParallelTasks: 8,
    shell: "/bin/sh",
    engine: { pollMs: 50 },
  });
  await runtime.engine.start();
  const definition = parseJobDefinition(
    'job_type: ab-true\ntasks:\n- task_type: t\n  script: ["true"]\n',
  );
  return {
    name,
    rounds: [],
    async round(n) {
      const ids: number[] = [];
      for (let i = 0; i < n; i++) ids.push((await runtime.engine.submit({ definition })).id);
      await Promise.all(ids.map((id) => runtime.engine.waitFor(id)));
    },
    async close() {
      await runtime.close();
      dir.remove();
    },
  };
}

/** CPU (µs) of this process's spawner children so far, from /proc; 0 where there is none. */
function spawnersCpuUs(): number {
  if (!existsSync("/proc/self/stat")) return 0;
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== process.pid) continue;
      if (!readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("spawner")) continue;
      ticks += Number(fields[11]) + Number(fields[12]); // utime + stime
    } catch {
      // gone meanwhile
    }
  }
  return ticks * 10_000; // USER_HZ is 100 on Linux
}

async function measure(side: Side, n: number): Promise<void> {
  const cpu = process.cpuUsage();
  const spawners = spawnersCpuUs();
  const started = performance.now();
  await side.round(n);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  side.rounds.push({
    rate: n / seconds,
    cpuUs: (used.user + used.system) / n,
    spawnerUs: (spawnersCpuUs() - spawners) / n,
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

async function main(): Promise<void> {
  const [revision, workload = "function"] = process.argv.slice(2);
  if (!revision) usage("which revision to compare with?");
  if (!(WORKLOADS as readonly string[]).includes(workload)) usage(`no workload '${workload}'`);
  const rounds = Number(process.env.AB_ROUNDS ?? 12);
  const n = Number(process.env.AB_N ?? (workload === "shell" ? 500 : 3000));
  const open = (workload as Workload) === "shell" ? shellSide : functionSide;
  const sides = [await open(revision, checkout(revision)), await open("this tree", ROOT)];
  process.stdout.write(
    `bench:ab · ${workload} · ${rounds} rounds of ${n} jobs · A = ${revision}, B = this tree\n`,
  );
  for (const side of sides) await side.round(Math.min(n, 500)); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse()) await measure(side, n);
  }
  for (const side of sides) await side.close();
  const [a, b] = sides as [Side, Side];
  const line = (label: string, pick: (s: Side["rounds"][number]) => number, unit: string) => {
    const ratios = b.rounds.map((round, i) => pick(round) / pick(a.rounds[i]!));
    const interval = medianInterval(ratios);
    const shown = interval
      ? ` (90 % CI ${interval[0].toFixed(3)}–${interval[1].toFixed(3)}` +
        (interval[0] > 1 || interval[1] < 1 ? ")" : ", no difference shown)")
      : "";
    process.stdout.write(
      `${label.padEnd(22)} A ${median(a.rounds.map(pick)).toFixed(0)}${unit}  ` +
        `B ${median(b.rounds.map(pick)).toFixed(0)}${unit}  B/A per round: median ` +
        `${median(ratios).toFixed(3)}${shown} [${ratios.map((x) => x.toFixed(2)).join(" ")}]\n`,
    );
  };
  line("jobs/s", (s) => s.rate, "/s");
  line("CPU per job (process)", (s) => s.cpuUs, " µs");
  if (workload === "shell") line("CPU per job (spawners)", (s) => s.spawnerUs, " µs");
  process.exit(0);
}

await main();
