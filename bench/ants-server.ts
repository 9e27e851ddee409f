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
 *   floor N     N tasks through the floor dispatcher (below) to its ants, one at a time
 *               per ant -> `done <seconds> <completed>`
 *   cpu         this process's CPU time so far -> `cpu <microseconds>`
 *   quit
 * Usage: node bench/ants-server.ts <data dir>
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { WebSocket } from "ws";
import { loadConfig } from "../src/config/config.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import type { TaskExecution } from "../src/core/job-request.ts";
import { buildTaskRequest, taskDefinition } from "../src/ants/task-request.ts";
import type { RouteModule } from "../src/server/app.ts";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer } from "../src/server/server.ts";
import { newToken } from "../src/server/auth/token-authenticator.ts";
import { antsBenchRequest } from "./support.ts";
import { deepFreeze } from "../src/core/json.ts";

const dataDir = process.argv[2];
if (!dataDir) throw new Error("usage: node bench/ants-server.ts <data dir>");

const echoRoute: RouteModule = (app) => {
  app.get("/bench/echo", { websocket: true, schema: { hide: true } }, (socket) => {
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
};

/**
 * The floor: the least any dispatcher of JSON TaskRequests over these sockets does per
 * task (stringify a request, send it, parse the reply, find its waiter by id, settle a
 * promise, frames sent at the end of the turn), with no routing, validation, store or
 * events. Its ants connect here.
 */
const floorAnts: WebSocket[] = [];
const floorWaiters = new Map<string, () => void>();
const floorRoute: RouteModule = (app) => {
  app.get("/bench/floor", { websocket: true, schema: { hide: true } }, (socket) => {
    floorAnts.push(socket);
    socket.on("message", (data) => {
      const reply = JSON.parse(String(data)) as { task_execution_id: string; status: string };
      const waiter = floorWaiters.get(reply.task_execution_id);
      if (waiter && reply.status === "COMPLETED") {
        floorWaiters.delete(reply.task_execution_id);
        waiter();
      }
    });
  });
};

const config = loadConfig({
  env: {},
  overrides: { dataDir, port: 0, host: "127.0.0.1" },
});
const server = await startServer(
  { ...config, maxParallelTasks: 64 },
  { routes: [...ALL_ROUTES, echoRoute, floorRoute], log: () => undefined },
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
  // A job that did not complete is a finding, not noise: say why, on stderr.
  for (const job of finals.filter((j) => j.state !== "COMPLETED")) {
    const tasks = await server.runtime.store.listTaskExecutions(job.id);
    const why = tasks.map(
      (t) => `${t.taskType} ${t.state} ${t.errorCode ?? ""} ${t.errorMessage ?? ""}`,
    );
    process.stderr.write(
      `job ${job.id} ended ${job.state} ${job.errorCode ?? ""} ${job.errorMessage ?? ""}: ${why.join("; ")}\n`,
    );
  }
  return [seconds, finals.filter((j) => j.state === "COMPLETED").length];
}

let runs = 0;
async function dispatch(n: number, parallel = 64): Promise<[number, number]> {
  const run = ++runs;
  // Frozen, as the engine's tasks are (the SQLite store's definitions are deep-frozen).
  const task = deepFreeze(taskDefinition("t", { method: "WEBSOCKET", tags: ["bench"] }));
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
      await executor.start(antsBenchRequest(task, execution.id, `${units}/${execution.id}`));
      const result = await executor.wait(execution.id);
      if (result.status === "COMPLETED") completed++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return [(performance.now() - started) / 1000, completed];
}

/**
 * Frames leave at the end of the event-loop turn, as colony's do (ws-endpoint.ts): one
 * write per frame right away costs each frame a wake-up of the ants' process.
 */
let floorOutbox: Array<[WebSocket, string]> = [];
function floorSend(ant: WebSocket, frame: string): void {
  if (floorOutbox.length === 0) {
    setImmediate(() => {
      const frames = floorOutbox;
      floorOutbox = [];
      for (const [socket, text] of frames) socket.send(text);
    });
  }
  floorOutbox.push([ant, frame]);
}

/** N tasks through the floor dispatcher: one closed loop per floor ant. */
async function floor(n: number): Promise<[number, number]> {
  const run = ++runs;
  const task = taskDefinition("t", { method: "WEBSOCKET", tags: ["bench"] });
  const template = buildTaskRequest(antsBenchRequest(task, ""));
  let next = 0;
  let completed = 0;
  const started = performance.now();
  const lane = async (ant: WebSocket) => {
    while (next < n) {
      const id = `f${run}-${next++}`;
      const request = { ...template, task_execution_id: id, co_relation_id: randomUUID() };
      await new Promise<void>((resolve) => {
        floorWaiters.set(id, resolve);
        floorSend(ant, JSON.stringify(request));
      });
      completed++;
    }
  };
  await Promise.all(floorAnts.map(lane));
  return [(performance.now() - started) / 1000, completed];
}

process.stdout.write(`ready ${server.url} ${token}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "jobs") {
    const [s, c] = await jobs(Number(arg));
    process.stdout.write(`done ${s} ${c}\n`);
  } else if (command === "floor") {
    const [s, c] = await floor(Number(arg));
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
