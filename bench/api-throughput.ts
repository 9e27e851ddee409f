/**
 * The REST API under load, against the in-process engine measured in the same run:
 *
 * - accepted/s: `POST /api/job-requests {job_type, params, scheduled_at}` from 50
 *   concurrent keep-alive clients, against `engine.submitType` called in-process. The
 *   jobs are scheduled a day ahead so the figure is the cost of accepting (auth, body
 *   validation, durable insert, answer), not of running them.
 * - completed/s: N trivial shell jobs (`true`) submitted through the API by the same 50
 *   clients and run by the server's engine, until the last one completed, against
 *   colonyShellRate (the same N jobs submitted to the engine in-process).
 *
 * The server is a real `colony server` child process with auth on (the admin token),
 * SQLite in a temp dir, max_parallel_tasks as the in-process run.
 */
import { Agent } from "node:http";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { openEmbedded } from "../src/runtime/embedded.ts";
import { startServerProcess, send, type BenchServer } from "./server-process.ts";
import { colonyShellRate } from "./shell-throughput.ts";
import { tempDataDir, type BenchLine } from "./support.ts";

const DAY_AHEAD = () => new Date(Date.now() + 86_400_000);

/**
 * In-process accepts/s: engine.submitType of a saved type, scheduled a day ahead, with
 * the engine started as it is in the server (each submit wakes its scheduler).
 */
async function inProcessSubmitRate(n: number): Promise<number> {
  const dir = tempDataDir();
  const runtime = await openEmbedded({ dataDir: dir.path });
  try {
    const definition = parseJobDefinition(
      'job_type: bench-accept\ntasks:\n- task_type: t\n  script: ["true"]\n',
    );
    await runtime.engine.saveDefinition(definition, "bench");
    await runtime.engine.start();
    for (let i = 0; i < 200; i++) {
      await runtime.engine.submitType("bench-accept", { i }, { scheduledAt: DAY_AHEAD() });
    }
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      await runtime.engine.submitType("bench-accept", { i }, { scheduledAt: DAY_AHEAD() });
    }
    return n / ((performance.now() - started) / 1000);
  } finally {
    await runtime.close();
    dir.remove();
  }
}

/** `n` POSTs of `body(i)` from `clients` concurrent keep-alive connections; seconds taken. */
async function postMany(
  server: BenchServer,
  agent: Agent,
  n: number,
  clients: number,
  body: (i: number) => unknown,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < n) {
        const i = next++;
        const res = await send(agent, `${server.url}/api/job-requests`, {
          token: server.token,
          json: body(i),
        });
        if (res.status !== 201) throw new Error(`submit ${i}: ${res.status} ${res.body}`);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

async function count(server: BenchServer, agent: Agent, query: string): Promise<number> {
  const res = await send(agent, `${server.url}/api/job-requests?${query}&limit=500`, {
    token: server.token,
  });
  if (res.status !== 200) throw new Error(`list: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { items: unknown[] }).items.length;
}

export async function apiThroughput(n = 2000, clients = 50, parallel = 8): Promise<BenchLine[]> {
  const inProcessAccept = await inProcessSubmitRate(n);
  const inProcessShell = await colonyShellRate(n, parallel);

  const server = await startServerProcess(`max_parallel_tasks: ${parallel}\n`);
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  try {
    for (const type of ["bench-accept", "bench-true"]) {
      const res = await send(agent, `${server.url}/api/job-definitions`, {
        token: server.token,
        json: { job_type: type, tasks: [{ task_type: "t", script: ["true"] }] },
      });
      if (res.status !== 201) throw new Error(`definition: ${res.status} ${res.body}`);
    }
    const ahead = DAY_AHEAD().toISOString();
    const accept = (i: number) => ({
      job_type: "bench-accept",
      params: { i },
      scheduled_at: ahead,
    });
    await postMany(server, agent, 200, clients, accept); // warm up connections and caches
    const acceptSeconds = await postMany(server, agent, n, clients, accept);
    const acceptRate = n / acceptSeconds;

    const unfinished = "job_type=bench-true&state=PENDING,READY,STARTED,EXECUTING";
    const run = (i: number) => ({ job_type: "bench-true", params: { i } });
    await postMany(server, agent, 20, clients, run); // warm the spawner
    while ((await count(server, agent, unfinished)) > 0) await sleep(20);
    const started = performance.now();
    await postMany(server, agent, n, clients, run);
    while ((await count(server, agent, unfinished)) > 0) await sleep(20);
    const completeRate = n / ((performance.now() - started) / 1000);
    const failed = await count(server, agent, "job_type=bench-true&state=FAILED,CANCELLED");
    if (failed > 0) throw new Error(`${failed} API bench jobs did not complete`);

    return [
      {
        name: `API accepted/s (${n} jobs, ${clients} clients)`,
        value: `${acceptRate.toFixed(0)}/s`,
        baseline: `in-process submit ${inProcessAccept.toFixed(0)}/s`,
        ratio: acceptRate / inProcessAccept,
      },
      {
        name: `API submit→complete/s (${n}, P=${parallel})`,
        value: `${completeRate.toFixed(0)}/s`,
        baseline: `in-process ${inProcessShell.rate.toFixed(0)}/s`,
        ratio: completeRate / inProcessShell.rate,
      },
    ];
  } finally {
    agent.destroy();
    await server.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
