/**
 * Job hook status reports per second (POST /async/status with X-Job-Id/Time/Hash, each
 * verified and recorded on the task) against an unauthenticated POST of the same body
 * to a no-op route of the same server, in the same run. Clients sign every request
 * afresh, as the seed's Python does.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../src/config/config.ts";
import { hookHeaders } from "../src/hook/hook-auth.ts";
import type { RouteModule } from "../src/server/app.ts";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer } from "../src/server/server.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { tempDataDir, type BenchLine } from "./support.ts";

const echoRoute: RouteModule = (app) => {
  app.post("/bench/echo", { schema: { hide: true } }, async (request) => ({
    ok: true,
    got: typeof request.body,
  }));
};

async function rate(
  n: number,
  clients: number,
  send: (i: number) => Promise<Response>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = next++; i < n; i = next++) {
        const res = await send(i);
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`bench request answered ${res.status}`);
      }
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

export async function hookThroughput(n = 5000, clients = 16): Promise<BenchLine[]> {
  const dir = tempDataDir();
  const config = loadConfig({
    env: {},
    overrides: { dataDir: dir.path, host: "127.0.0.1", port: 0, insecureNoAuth: true },
  });
  const server = await startServer(config, {
    log: () => undefined,
    routes: [...ALL_ROUTES, echoRoute],
  });
  try {
    const { engine } = server.runtime;
    const job = await engine.submit({
      definition: parseJobDefinition(
        "job_type: bench-hook\ntasks:\n- task_type: wait\n  script: ['echo key=$JOB_SECRET_KEY', 'sleep 600']\n",
      ),
    });
    let execution: { id: string } | undefined;
    for (let i = 0; i < 200 && !execution; i++) {
      execution = (await engine.getJob(job.id)).tasks.find((t) => t.state === "EXECUTING");
      if (!execution) await new Promise((r) => setTimeout(r, 25));
    }
    if (!execution) throw new Error("the bench task did not start");
    const id = execution.id;
    // The task's process holds its JOB_SECRET_KEY (derived, never written to disk): it prints it.
    let key = "";
    for (let i = 0; i < 200 && !key; i++) {
      const out = readFileSync(join(dir.path, "units", id, "stdout"), {
        encoding: "utf8",
        flag: "a+",
      });
      key = /^key=([0-9a-f]{64})$/m.exec(out)?.[1] ?? "";
      if (!key) await new Promise((r) => setTimeout(r, 25));
    }
    if (!key) throw new Error("the bench task did not print its JOB_SECRET_KEY");
    const body = (i: number) =>
      JSON.stringify({ status: "RUNNING", statusDetails: { progress: i % 100 } });
    const hook = (i: number) =>
      fetch(`${server.url}/async/status`, {
        method: "POST",
        headers: { ...hookHeaders(id, key), "content-type": "application/json" },
        body: body(i),
      });
    const plain = (i: number) =>
      fetch(`${server.url}/bench/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body(i),
      });
    await rate(500, clients, hook); // warm up both paths
    await rate(500, clients, plain);
    const hookRate = await rate(n, clients, hook);
    const plainRate = await rate(n, clients, plain);
    await engine.cancel(job.id);
    await engine.waitFor(job.id);
    return [
      {
        name: `hook status reports/s (${n}, ${clients} clients)`,
        value: `${hookRate.toFixed(0)}/s`,
        baseline: `unauthenticated no-op POST ${plainRate.toFixed(0)}/s`,
        ratio: hookRate / plainRate,
      },
    ];
  } finally {
    await server.close({ graceMs: 0 });
    dir.remove();
  }
}
