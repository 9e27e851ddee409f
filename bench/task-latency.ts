/**
 * Task latency: submit -> process started (the executor reported it running), p50/p99
 * over single-task jobs submitted one after another.
 */
import type { JobDefinition } from "../src/core/job-definition.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { openEmbedded } from "../src/runtime/embedded.ts";
import { percentile, tempDataDir, type BenchLine } from "./support.ts";

export async function taskLatency(n = 1000): Promise<BenchLine[]> {
  const dir = tempDataDir();
  const runtime = await openEmbedded({ dataDir: dir.path, engine: { pollMs: 50 } });
  const definition: JobDefinition = parseJobDefinition(
    'job_type: bench-latency\ntasks:\n- task_type: t\n  script: ["true"]\n',
  );
  const samples: number[] = [];
  try {
    await runtime.engine.start();
    for (let i = 0; i < n + 20; i++) {
      const t0 = performance.now();
      const job = await runtime.engine.submit({ definition });
      const startedAt = await new Promise<number>((resolve) => {
        const on = (e: { jobRequestId: number; state: string }) => {
          if (e.jobRequestId === job.id && e.state === "EXECUTING") {
            runtime.engine.events.off("task:state", on);
            resolve(performance.now());
          }
        };
        runtime.engine.events.on("task:state", on);
      });
      await runtime.engine.waitFor(job.id);
      if (i >= 20) samples.push(startedAt - t0); // the first 20 warm up
    }
  } finally {
    await runtime.close();
    dir.remove();
  }
  samples.sort((a, b) => a - b);
  return [
    {
      name: `submit→started latency (${n} jobs)`,
      value: `p50 ${percentile(samples, 50).toFixed(2)} ms, p99 ${percentile(samples, 99).toFixed(2)} ms`,
    },
  ];
}
