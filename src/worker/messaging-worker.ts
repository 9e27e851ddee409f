/**
 * A messaging worker in a few lines (SPEC section 6): it reads TaskRequests from a
 * Redis stream through the consumer group `colony-workers`, runs your handler, puts the
 * TaskResponse on the reply stream, then acknowledges the request.
 *
 *   const worker = await startMessagingWorker({
 *     requestQueue: "formicary-message-ant-request",
 *     replyQueue: "formicary-message-ant-response",
 *     handle: (task) => ({ task_context: { key1: "value1" } }),
 *   });
 *
 * A worker that dies after reading a request and before acking it loses nothing:
 * requests pending longer than `claimIdleMs` with any consumer of the group are taken
 * over (XAUTOCLAIM) by a live one. That may run a request twice; colony keeps the first
 * reply and ignores the duplicate.
 */
import { Redis } from "ioredis";
import { parseJsonFrame, parseTaskRequest } from "../ants/task-request.ts";
import { ColonyError } from "../core/errors.ts";
import {
  connectAll,
  MESSAGING_UNAVAILABLE,
  WORKER_GROUP,
} from "../executors/messaging/messaging-executor.ts";
import { answer, defaultWorkerId, type TaskHandler, type Worker } from "./worker-common.ts";
import { redactUrl } from "../core/urls.ts";

export { WORKER_GROUP };

export interface MessagingWorkerOptions {
  /** Default redis://127.0.0.1:6379. */
  redisUrl?: string;
  requestQueue: string;
  replyQueue: string;
  /** Default colony-workers (the group colony creates). */
  group?: string;
  /** This worker's consumer name in the group (default host-pid-random). */
  consumer?: string;
  /** Take over requests other consumers read but did not ack for this long (default 30 s). */
  claimIdleMs?: number;
  handle: TaskHandler;
  log?: (message: string) => void;
}

type Entries = [id: string, fields: string[]][];

function payloadOf(fields: string[]): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === "payload") return fields[i + 1];
  return undefined;
}

export async function startMessagingWorker(options: MessagingWorkerOptions): Promise<Worker> {
  const url = options.redisUrl ?? "redis://127.0.0.1:6379";
  const group = options.group ?? WORKER_GROUP;
  const consumer = options.consumer ?? defaultWorkerId("worker");
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  const queue = options.requestQueue;
  // Blocking reads on one connection, replies and acks on the other.
  const reader = new Redis(url, { lazyConnect: true, connectionName: `colony-worker-${consumer}` });
  const writer = new Redis(url, { lazyConnect: true });
  try {
    await connectAll([reader, writer]);
  } catch (error) {
    throw new ColonyError(
      MESSAGING_UNAVAILABLE,
      `worker ${consumer}: cannot reach Redis at ${redactUrl(url)}: ${(error as Error).message}; start Redis or pass redisUrl`,
      { status: 503, cause: error },
    );
  }
  try {
    await writer.xgroup("CREATE", queue, group, "$", "MKSTREAM");
  } catch (error) {
    if (!/BUSYGROUP/.test((error as Error).message)) throw error;
  }
  let closed = false;
  let answered = 0;
  let lastClaim = 0;

  async function handleEntry(id: string, fields: string[]): Promise<void> {
    const text = payloadOf(fields);
    const json = text === undefined ? undefined : parseJsonFrame(text, "request payload");
    const request = json === undefined ? undefined : json.ok ? parseTaskRequest(json.value) : json;
    if (!request?.ok) {
      // It can never be answered: ack it so it is not delivered again and again.
      log(`worker ${consumer}: ${queue} ${id}: ${request?.error ?? "no payload field"}; dropped`);
      await writer.xack(queue, group, id);
      return;
    }
    const reply = await answer(options.handle, request.value, { ant_id: consumer });
    await writer.xadd(options.replyQueue, "*", "payload", JSON.stringify(reply));
    await writer.xack(queue, group, id);
    answered++;
  }

  async function claimStale(): Promise<void> {
    const [, entries] = (await writer.xautoclaim(
      queue,
      group,
      consumer,
      claimIdleMs,
      "0-0",
      "COUNT",
      10,
    )) as [string, Entries];
    for (const [id, fields] of entries) if (fields) await handleEntry(id, fields);
  }

  async function loop(): Promise<void> {
    while (!closed) {
      try {
        if (Date.now() - lastClaim >= Math.min(claimIdleMs, 5000)) {
          lastClaim = Date.now();
          await claimStale();
        }
        const got = (await reader.xreadgroup(
          "GROUP",
          group,
          consumer,
          "COUNT",
          10,
          "BLOCK",
          1000,
          "STREAMS",
          queue,
          ">",
        )) as [string, Entries][] | null;
        for (const [, entries] of got ?? []) {
          for (const [id, fields] of entries) await handleEntry(id, fields);
        }
      } catch (error) {
        if (closed) return;
        log(`worker ${consumer}: ${(error as Error).message}; retrying`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  const running = loop();
  return {
    get answered() {
      return answered;
    },
    async close() {
      closed = true;
      reader.disconnect();
      await running;
      writer.disconnect();
    },
  };
}
