/**
 * A WebSocket worker written with colony's worker SDK: it registers with the tag `echo`
 * and answers every WEBSOCKET task with the task's `Message` variable in its context.
 *
 *   COLONY_SERVER=http://127.0.0.1:7777 COLONY_TOKEN=$(colony token create --role ant) \
 *     node examples/workers/echo-worker.ts
 *
 * then run a job with a task `{method: WEBSOCKET, tags: [echo], variables: {Message: hi}}`.
 */
import { startWebSocketWorker } from "../../src/worker/index.ts";

const worker = startWebSocketWorker({
  server: process.env.COLONY_SERVER ?? "http://127.0.0.1:7777",
  token: process.env.COLONY_TOKEN ?? "",
  antId: "echo-worker",
  tags: ["echo"],
  handle: (task) => ({
    task_context: { echoed: task.variables.Message?.value, by: "echo-worker" },
  }),
  log: (line) => console.error(line),
});
await worker.ready;
console.log("echo-worker ready");
process.on("SIGTERM", () => void worker.close().then(() => process.exit(0)));
