/**
 * What the WebSocket and messaging workers share: the handler type, how a handler's
 * answer (or exception) becomes the TaskResponse.
 */
import type { createConnection as NetConnect } from "node:net";
import { hostname } from "node:os";
import type { ClientOptions } from "ws";
import { proxiesFromEnv, proxyFor, tunnel, type Proxies } from "../core/proxies.ts";
import {
  responseFor,
  type ResponseStatus,
  type TaskRequest,
  type TaskResponse,
} from "../ants/task-request.ts";

/** What a handler returns: response fields to set (status defaults to COMPLETED). */
export type WorkerReply = Partial<Omit<TaskResponse, "status">> & { status?: ResponseStatus };

/**
 * Does the work of one task. Return nothing for COMPLETED, or fields of the reply
 * (`task_context` for later tasks, `status: "FAILED"` with `error_message`, or
 * `status: "EXECUTING"` to be asked again later). A thrown error answers FAILED.
 */
export type TaskHandler = (
  request: TaskRequest,
) => WorkerReply | void | Promise<WorkerReply | void>;

export interface Worker {
  /** Tasks answered so far. */
  readonly answered: number;
  /** Stops taking tasks and disconnects. */
  close(): Promise<void>;
}

/** Runs the handler and turns its outcome into the reply. */
export async function answer(
  handle: TaskHandler,
  request: TaskRequest,
  extra: Partial<TaskResponse> = {},
): Promise<TaskResponse> {
  try {
    const reply = (await handle(request)) ?? {};
    return responseFor(request, { ...extra, ...reply, status: reply.status ?? "COMPLETED" });
  } catch (error) {
    return responseFor(request, {
      ...extra,
      status: "FAILED",
      error_code: (error as { code?: unknown }).code?.toString() || "ERR_WORKER",
      error_message: error instanceof Error ? error.message : String(error),
    });
  }
}

/** A default worker id: host, pid and a random tail. */
export function defaultWorkerId(prefix: string): string {
  return `${prefix}-${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Back-off before reconnect attempt `n` (1-based): doubling from `min`, capped, with jitter. */
export function backoff(n: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, n - 1));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * The `ws` options of a connection to `/ws/ants` at `url` (an agent's or a worker's): the
 * token, no compression, a CA to trust for wss://, and a CONNECT tunnel through the proxy
 * HTTPS_PROXY (wss://) or HTTP_PROXY (ws://) names unless NO_PROXY or loopback exempts the
 * server (core/proxies.ts).
 */
export function antSocketOptions(
  url: string,
  token: string,
  ca?: string,
  proxies: Proxies = proxiesFromEnv(),
): ClientOptions {
  const target = new URL(url);
  const proxy = proxyFor(proxies, target);
  return {
    headers: { authorization: token },
    perMessageDeflate: false,
    ...(ca ? { ca } : {}),
    // ws types this as net.createConnection; http.request, which calls it, also takes
    // this callback form (the socket comes once the proxy opened the tunnel).
    ...(proxy
      ? {
          createConnection: tunnel(
            proxy,
            target.protocol === "wss:",
          ) as unknown as typeof NetConnect,
        }
      : {}),
  };
}
