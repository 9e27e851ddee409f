/**
 * Container task overhead: a trivial DOCKER task (`true` in colony-test/busybox) run
 * through colony (submit -> COMPLETED, on the embedded engine with the SQLite store)
 * versus `docker run --rm` of the same image and command, alternated one by one in the
 * same run so both see the same engine load; ratio of the medians. Also the executor
 * alone (start -> result, no engine) to show where the time goes.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import { createDockerApi } from "../src/executors/docker/docker-api.ts";
import { createDockerExecutor } from "../src/executors/docker/docker-executor.ts";
import { openEmbedded } from "../src/runtime/embedded.ts";
import { percentile, tempDataDir, type BenchLine } from "./support.ts";

const IMAGE = process.env.COLONY_TEST_DOCKER_IMAGE ?? "colony-test/busybox:latest";

function median(samples: number[]): number {
  return percentile(
    [...samples].sort((a, b) => a - b),
    50,
  );
}

function dockerRun(): number {
  const t0 = performance.now();
  const r = spawnSync("docker", ["run", "--rm", IMAGE, "true"], { stdio: "ignore" });
  if (r.status !== 0)
    throw new Error(`docker run --rm ${IMAGE} true failed (${r.status ?? r.signal})`);
  return performance.now() - t0;
}

export async function dockerOverhead(n = 20): Promise<BenchLine[]> {
  const api = createDockerApi();
  try {
    await api.call("GET", `/images/${encodeURIComponent(IMAGE)}/json`, { timeoutMs: 3000 });
  } catch {
    return [
      {
        name: "DOCKER task overhead",
        value: `skipped: no Docker engine with ${IMAGE} (scripts/test-docker.sh)`,
      },
    ];
  } finally {
    api.close();
  }
  const dir = tempDataDir();
  const owner = `colony-bench-${process.pid}`;
  const executor = createDockerExecutor({ owner, reapIntervalMs: 0 });
  const runtime = await openEmbedded({
    dataDir: dir.path,
    executors: [executor],
    engine: { pollMs: 20 },
  });
  const definition = parseJobDefinition(
    `job_type: bench-docker\ntasks:\n- task_type: t\n  method: DOCKER\n  container: {image: ${IMAGE}}\n  script: ["true"]\n`,
  );
  const viaColony: number[] = [];
  const viaExecutor: number[] = [];
  const viaDocker: number[] = [];
  try {
    await runtime.engine.start();
    const colonyOnce = async () => {
      const t0 = performance.now();
      const job = await runtime.engine.submit({ definition });
      const final = await runtime.engine.waitFor(job.id);
      if (final.state !== "COMPLETED") throw new Error(`bench job ended ${final.state}`);
      return performance.now() - t0;
    };
    let k = 0;
    const executorOnce = async () => {
      const id = `bench${String(++k).padStart(3, "0")}`;
      const request: ExecutionRequest = {
        executionId: id,
        method: "DOCKER",
        task: { ...definition.tasks[0]! },
        env: {},
        variables: {},
        unitDir: join(dir.path, "direct", id),
      };
      const t0 = performance.now();
      const r = await executor.run(request);
      if (r.exitCode !== 0) throw new Error(`bench container exited ${r.exitCode}`);
      return performance.now() - t0;
    };
    // Warm up both paths (image layers in the page cache, the store, the client).
    await colonyOnce();
    dockerRun();
    for (let i = 0; i < n; i++) {
      viaDocker.push(dockerRun());
      viaColony.push(await colonyOnce());
      viaExecutor.push(await executorOnce());
    }
  } finally {
    await runtime.close({ cancelRunning: true });
    dir.remove();
  }
  const c = median(viaColony);
  const d = median(viaDocker);
  const e = median(viaExecutor);
  return [
    {
      name: `DOCKER task, submit→done (${n}, p50)`,
      value: `${c.toFixed(0)} ms`,
      baseline: `docker run --rm ${d.toFixed(0)} ms`,
      ratio: c / d,
      target: "≤ 1.2",
    },
    {
      name: `  docker executor alone (p50)`,
      value: `${e.toFixed(0)} ms`,
      baseline: `docker run --rm ${d.toFixed(0)} ms`,
      ratio: e / d,
    },
  ];
}
