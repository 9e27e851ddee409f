/**
 * The server process of the ants bench (bench/ants-dispatch.ts): a real colony server
 * (SQLite in a temp dir, auth on) plus one extra route, `/bench/echo`, a raw WebSocket
 * echo served by this same process, so the baseline and colony share processes.
 *
 * Commands on stdin, one per line, each answered with one line on stdout:
 *   jobs N      submit N single-task WEBSOCKET jobs (tags [bench]) in-process, wait for
 *               all -> `done <seconds> <completed>`
 *   dispatch N  N no-op tasks straight through the dispatcher to the ants (no store),
 *               64 at a time -> `done <seconds> <completed>`
 *   cpu         this process's CPU time so far -> `cpu <microseconds>`
 *   quit
 * Usage: node bench/ants-server.ts <data dir>
 */
import { join } from "node:path";
import { createInterface } from "node:readline";
import { loadConfig } from "../src/config/config.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import type { TaskExecution } from "../src/core/job-request.ts";
import { taskDefinition } from "../src/ants/task-request.ts";
import type { RouteModule } from "../src/server/app.ts";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer } from "../src/server/server.ts";
import { newToken } from "../src/server/auth/token-authenticator.ts";

const dataDir = process.argv[2];
if (!dataDir) throw new Error("usage: node bench/ants-server.ts <data dir>");

const echoRoute: RouteModule = (app) => {
  app.get("/bench/echo", { websocket: true, schema: { hide: true } }, (socket) => {
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
};

const config = loadConfig({
  env: {},
  overrides: { dataDir, port: 0, host: "127.0.0.1" },
});
const server = await startServer(
  { ...config, maxParallelTasks: 64 },
  { routes: [...ALL_ROUTES, echoRoute], log: () => undefined },
);
const { token, hash } = newToken();
await server.runtime.store.createToken({
  name: "bench-ants",
  role: "ant",
  hash,
  createdBy: "bench",
});

const engine = server.runtime.engine;
const definition = parseJobDefinition(
  "job_type: bench-ws\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [bench]\n",
);

async function jobs(n: number): Promise<[number, number]> {
  const started = performance.now();
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push((await engine.submit({ definition })).id);
  const finals = await Promise.all(ids.map((id) => engine.waitFor(id)));
  const seconds = (performance.now() - started) / 1000;
  return [seconds, finals.filter((j) => j.state === "COMPLETED").length];
}

let runs = 0;
async function dispatch(n: number, parallel = 64): Promise<[number, number]> {
  const run = ++runs;
  const task = taskDefinition("t", { method: "WEBSOCKET", tags: ["bench"] });
  const dispatcher = server.runtime.dispatcher;
  let next = 0;
  let completed = 0;
  const started = performance.now();
  const units = join(dataDir!, "units");
  const lane = async () => {
    const signal = new AbortController().signal;
    while (next < n) {
      const i = next++;
      const execution = { id: `b${run}-${i}`, state: "READY" } as TaskExecution;
      const found = dispatcher.executorFor(task, execution, signal);
      const executor = found instanceof Promise ? await found : found;
      if (!executor) throw new Error("no ant for the bench task");
      await executor.start({
        executionId: execution.id,
        method: "WEBSOCKET",
        task,
        env: {},
        variables: {},
        unitDir: `${units}/${execution.id}`,
        jobRequestId: 1,
        jobType: "bench-ws",
      });
      const result = await executor.wait(execution.id);
      if (result.status === "COMPLETED") completed++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return [(performance.now() - started) / 1000, completed];
}

process.stdout.write(`ready ${server.url} ${token}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "jobs") {
    const [s, c] = await jobs(Number(arg));
    process.stdout.write(`done ${s} ${c}\n`);
  } else if (command === "dispatch") {
    const [s, c] = await dispatch(Number(arg));
    process.stdout.write(`done ${s} ${c}\n`);
  } else if (command === "cpu") {
    const cpu = process.cpuUsage();
    process.stdout.write(`cpu ${cpu.user + cpu.system}\n`);
  } else if (command === "quit") break;
}
await server.close({ graceMs: 0 });
process.exit(0);
