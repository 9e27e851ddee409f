/**
 * Whether a job's cost per task stays flat as the job grows: one job fanning out from a
 * first task to `tasks` no-op FUNCTION tasks joined by a last one, on the embedded
 * store, against the same job with `small` tasks, in the same run. FUNCTION tasks keep
 * processes out of it, so what is measured is the engine and the store. Also the event
 * loop's worst stall while the large job runs (a server's requests wait that long).
 *
 * The runner once planned each step from scratch over the whole job: a 5,000-task
 * fan-out took 12 ms a task (a ratio near 10 against 100 tasks) and stalled the loop
 * for 15 s; dag-planner.ts's DagState keeps the plan instead.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { noopColony } from "./noop-colony.ts";
import type { BenchLine } from "./support.ts";

/** A fan-out and join job of `tasks` FUNCTION tasks (plus the two ends). */
function fanOutJob(tasks: number): string {
  const names = Array.from({ length: tasks }, (_, i) => `t${i}`);
  const lines = [
    `job_type: wide-${tasks}`,
    "tasks:",
    "- task_type: start",
    "  method: FUNCTION",
    "  function: noop",
    `  on_completed: [${names.join(", ")}]`,
  ];
  for (const name of names)
    lines.push(`- task_type: ${name}`, "  method: FUNCTION", "  function: noop");
  lines.push("- task_type: join", "  method: FUNCTION", "  function: noop");
  lines.push(`  depends_on: [${names.join(", ")}]`);
  return lines.join("\n") + "\n";
}

export async function dagScaling(tasks = 5000, small = 100): Promise<BenchLine[]> {
  const { colony, close } = await noopColony();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  /** µs per task of one job of `n` middle tasks. */
  const run = async (n: number): Promise<number> => {
    const definition = parseJobDefinition(fanOutJob(n));
    const started = performance.now();
    const job = await colony.engine.submit({ definition });
    const done = await colony.engine.waitFor(job.id);
    if (done.state !== "COMPLETED") throw new Error(`the ${n}-task job ended ${done.state}`);
    return ((performance.now() - started) * 1000) / (n + 2);
  };
  try {
    await run(small); // warm up
    const smallUs: number[] = [];
    for (let r = 0; r < 3; r++) smallUs.push(await run(small));
    loop.enable();
    const largeUs = await run(tasks);
    loop.disable();
    const s = [...smallUs].sort((a, b) => a - b)[1]!;
    return [
      {
        name: `fan-out of ${tasks} FUNCTION tasks`,
        value: `${largeUs.toFixed(0)} µs a task`,
        baseline: `${small} tasks ${s.toFixed(0)} µs a task`,
        ratio: largeUs / s,
        target: "≈ 1: linear",
      },
      { name: "  event-loop max stall", value: `${(loop.max / 1e6).toFixed(1)} ms` },
    ];
  } finally {
    await close();
  }
}
