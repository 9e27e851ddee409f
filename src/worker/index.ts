/**
 * The worker SDK: write a colony worker in any Node program (docs/ants.md).
 *
 * Both workers load their implementation (the `ws` client and the TaskRequest checks,
 * or the Redis client) when first started, not when `colony` is imported: those
 * modules are most of what the package's entry would load (typebox alone is ~680
 * files), and a program that only runs jobs never needs them.
 */
import type { WebSocketWorker, WebSocketWorkerOptions } from "./websocket-worker.ts";
import type { MessagingWorkerOptions } from "./messaging-worker.ts";
import type { Worker } from "./worker-common.ts";
import { antsEndpoint } from "./endpoint.ts";

export type { WebSocketWorker, WebSocketWorkerOptions, MessagingWorkerOptions };
export type { TaskHandler, Worker, WorkerReply } from "./worker-common.ts";
export type { TaskRequest, TaskResponse } from "../ants/task-request.ts";

/** Connects to a colony server's /ws/ants and answers its TaskRequests (websocket-worker.ts). */
export function startWebSocketWorker(options: WebSocketWorkerOptions): WebSocketWorker {
  antsEndpoint(options.server); // a server that is no URL throws here, as it always did
  const started = import("./websocket-worker.ts").then((m) => m.startWebSocketWorker(options));
  let worker: WebSocketWorker | undefined;
  const ready = started.then((w) => {
    worker = w;
    return w.ready;
  });
  ready.catch(() => undefined); // as the worker's own: rejected only for whoever waits on it
  return {
    ready,
    get answered() {
      return worker?.answered ?? 0;
    },
    async close() {
      await (await started).close();
    },
  };
}

/** Consumes a Redis request stream and answers on the reply stream (messaging-worker.ts). */
export async function startMessagingWorker(options: MessagingWorkerOptions): Promise<Worker> {
  return (await import("./messaging-worker.ts")).startMessagingWorker(options);
}
