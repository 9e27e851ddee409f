/**
 * A messaging worker written with colony's worker SDK (the Node twin of the seed's
 * JavaScript sample): it consumes the request stream through the consumer group
 * `colony-workers` and replies on the reply stream with a task_context.
 *
 *   node examples/workers/messaging-worker.ts [request-queue] [reply-queue]
 *
 * (defaults: the seed's formicary-message-ant-request / -response; Redis from
 * COLONY_REDIS_URL or redis://127.0.0.1:6379).
 */
import { startMessagingWorker } from "../../src/worker/index.ts";

const worker = await startMessagingWorker({
  redisUrl: process.env.COLONY_REDIS_URL ?? "redis://127.0.0.1:6379",
  requestQueue: process.argv[2] ?? "formicary-message-ant-request",
  replyQueue: process.argv[3] ?? "formicary-message-ant-response",
  handle: (task) => ({ task_context: { key1: "value1", worker: "node", task: task.task_type } }),
  log: (line) => console.error(line),
});
console.log("messaging worker ready");
process.on("SIGTERM", () => void worker.close().then(() => process.exit(0)));
