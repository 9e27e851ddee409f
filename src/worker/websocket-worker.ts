/**
 * A WebSocket worker in a few lines (SPEC section 5): it connects to a colony server's
 * /ws/ants, registers, and answers every TaskRequest with your handler's reply.
 *
 *   const worker = startWebSocketWorker({
 *     server: "http://127.0.0.1:7777", token: process.env.COLONY_TOKEN!,
 *     antId: "resizer", tags: ["images"],
 *     handle: async (task) => ({ task_context: { size: await resize(task.variables) } }),
 *   });
 *
 * It reconnects with back-off when the connection drops (tasks in flight then are
 * retried by colony per their policy). Up to `maxCapacity` handlers run at once.
 */
import WebSocket from "ws";
import { ColonyError } from "../core/errors.ts";
import type { Method } from "../core/job-definition.ts";
import type { Proxies } from "../core/proxies.ts";
import { parseJsonFrame, parseTaskRequest, type TaskRequest } from "../ants/task-request.ts";
import { antsEndpoint } from "./endpoint.ts";
import {
  antSocketOptions,
  answer,
  backoff,
  defaultWorkerId,
  type TaskHandler,
  type Worker,
} from "./worker-common.ts";

export interface WebSocketWorkerOptions {
  /** The colony server: http(s)://host:port or ws(s)://host:port[/ws/ants]. */
  server: string;
  /** A token with role ant (colony token create --role ant). */
  token: string;
  antId?: string;
  tags?: string[];
  /** Default ["WEBSOCKET"]. */
  methods?: Method[];
  /** Tasks handled at once (default 1). */
  maxCapacity?: number;
  handle: TaskHandler;
  /** PEM of a CA to trust for wss:// (a self-signed server). */
  ca?: string;
  /** The proxy to reach the server through (core/proxies.ts); default: HTTPS_PROXY, HTTP_PROXY, NO_PROXY. */
  proxies?: Proxies;
  /** Reconnect back-off bounds (default 500 ms .. 30 s). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  log?: (message: string) => void;
}

export interface WebSocketWorker extends Worker {
  /**
   * Resolves once connected the first time; rejects (COLONY_ANT_REFUSED) when the server
   * refuses the first connection with 401 or 403 (a wrong token), and the worker stops.
   */
  readonly ready: Promise<void>;
}

export function startWebSocketWorker(options: WebSocketWorkerOptions): WebSocketWorker {
  const url = antsEndpoint(options.server);
  const antId = options.antId ?? defaultWorkerId("worker");
  const log = options.log ?? (() => undefined);
  const minMs = options.reconnectMinMs ?? 500;
  const maxMs = options.reconnectMaxMs ?? 30_000;
  const ready = Promise.withResolvers<void>();
  ready.promise.catch(() => undefined);
  let socket: WebSocket | undefined;
  let closed = false;
  let attempts = 0;
  let answered = 0;
  let connectedOnce = false;
  let retry: NodeJS.Timeout | undefined;

  async function onTask(ws: WebSocket, request: TaskRequest): Promise<void> {
    const reply = await answer(options.handle, request, { ant_id: antId });
    answered++;
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(reply));
  }

  function connect(): void {
    if (closed) return;
    const ws = new WebSocket(
      url,
      antSocketOptions(url, options.token, options.ca, options.proxies),
    );
    socket = ws;
    ws.on("open", () => {
      attempts = 0;
      connectedOnce = true;
      ws.send(
        JSON.stringify({
          ant_id: antId,
          tags: options.tags ?? [],
          methods: options.methods ?? ["WEBSOCKET"],
          max_capacity: options.maxCapacity ?? 1,
        }),
      );
      ready.resolve();
    });
    ws.on("message", (data) => {
      const json = parseJsonFrame(data.toString());
      const request = json.ok ? parseTaskRequest(json.value) : json;
      if (!request.ok) {
        log(`worker ${antId}: ignored a frame: ${request.error}`);
        return;
      }
      void onTask(ws, request.value);
    });
    ws.on("unexpected-response", (_req, res) => {
      const why = `${url} answered ${res.statusCode}; check the token (role ant)`;
      log(`worker ${antId}: ${why}`);
      // Refused before ever connecting: a wrong token, not a server restarting. `ready`
      // rejects and the worker stops rather than retrying forever.
      if (!connectedOnce && (res.statusCode === 401 || res.statusCode === 403)) {
        closed = true;
        ready.reject(
          new ColonyError("COLONY_ANT_REFUSED", `worker ${antId}: ${why}`, { status: 401 }),
        );
      }
      ws.terminate();
    });
    ws.on("error", (error) => {
      if (!closed) log(`worker ${antId}: ${error.message}`);
    });
    ws.on("close", () => {
      if (closed) return;
      attempts++;
      const wait = backoff(attempts, minMs, maxMs);
      log(`worker ${antId}: disconnected; reconnecting in ${wait} ms`);
      retry = setTimeout(connect, wait);
    });
  }

  connect();
  return {
    ready: ready.promise,
    get answered() {
      return answered;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      const ws = socket;
      if (!ws || ws.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000, "worker closing");
      });
    },
  };
}
