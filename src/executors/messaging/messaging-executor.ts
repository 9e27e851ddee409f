/**
 * The MESSAGING executor (SPEC section 6, seed 000 "Customized"): the task's
 * TaskRequest goes to a Redis stream named by `messaging_request_queue`; any worker, in
 * any language, that reads it through the consumer group `colony-workers` and puts a
 * TaskResponse on the stream named by `messaging_reply_queue` completes the task.
 *
 * Wire format (so workers interoperate):
 * - request: `XADD <request_queue> * payload <TaskRequest JSON>`; colony creates the
 *   group first (`XGROUP CREATE <request_queue> colony-workers $ MKSTREAM`);
 * - worker: `XREADGROUP GROUP colony-workers <consumer> ... STREAMS <request_queue> >`,
 *   then `XADD <reply_queue> * payload <TaskResponse JSON>`, then `XACK`. A worker that
 *   dies before acking loses nothing: its entry stays pending, and another consumer
 *   takes it over with XAUTOCLAIM (the worker SDK does, src/worker/messaging-worker.ts);
 * - colony reads every reply stream it waits on (XREAD, not a group, so several colony
 *   servers can share one reply queue) and matches replies by `task_execution_id`;
 *   unknown, duplicate and malformed replies are ignored; a matched reply is deleted.
 *
 * A reply with status EXECUTING sends the request again after a delay, with task_retry
 * + 1. Redis is connected on the first MESSAGING task (config `messaging.redis_url`).
 * The task's `timeout` bounds the wait; cancel and timeout delete the request entry if
 * no worker took it yet. A start with `mayHaveStarted` (an earlier colony process may
 * have sent the request and died before recording it) looks for that request among the
 * newest EARLIER_SCAN entries of its queue and, found, awaits its reply (perhaps there
 * already) instead of sending it again.
 */
import { createWriteStream } from "node:fs";
import { Redis } from "ioredis";
import { ColonyError, ExecutionExistsError, ExecutorError } from "../../core/errors.ts";
import {
  notStarted,
  type ExecutionHandle,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
  type LogStreamRequest,
} from "../../core/executor.ts";
import {
  encodeTaskRequest,
  parseJsonFrame,
  parseTaskResponse,
  resultOf,
  stdoutOf,
  type TaskResponse,
} from "../../ants/task-request.ts";
import { redactUrl } from "../../core/urls.ts";
import {
  ensureUnitDir,
  ExecutionTable,
  failTracked,
  newTracked,
  type TrackedExecution,
} from "../execution-table.ts";

export const WORKER_GROUP = "colony-workers";
/**
 * Where reading a reply stream starts to see every reply to the request with stream id
 * `requestId`: the millisecond before it. (XREAD answers entries after the id it is
 * given, and a reply sent within the request's millisecond has the same id in its own
 * stream; older replies there are to other requests and are passed over.)
 */
function repliesFrom(requestId: string): string {
  const ms = Number(requestId.split("-")[0]);
  return ms > 0 ? `${ms - 1}-0` : "0-0";
}

/** How many of a request queue's newest entries a mayHaveStarted start looks through. */
const EARLIER_SCAN = 1000;
export const MESSAGING_UNAVAILABLE = "COLONY_MESSAGING_UNAVAILABLE";

/**
 * Connects lazily-made clients. ioredis rejects a failed connect with "Connection is
 * closed." and tells the reason (ECONNREFUSED, a DNS failure, NOAUTH...) only to its
 * `error` listeners: the rejection carries that reason instead, and the clients are
 * disconnected (no retries in the background).
 */
export async function connectAll(clients: Redis[]): Promise<void> {
  let reason: Error | undefined;
  for (const c of clients) c.on("error", (error: Error) => (reason ??= error));
  try {
    await Promise.all(clients.map((c) => c.connect()));
  } catch (error) {
    for (const c of clients) c.disconnect();
    throw reason ?? error;
  }
}

export interface MessagingExecutorOptions {
  /** Default redis://127.0.0.1:6379 (config messaging.redis_url, env COLONY_REDIS_URL). */
  redisUrl?: string;
  /** Delay before re-sending a request answered EXECUTING (default 1 s). */
  pollDelayMs?: number;
  retainFinishedMs?: number;
  log?: (message: string) => void;
}

interface MessagingExecution extends TrackedExecution {
  request: ExecutionRequest;
  requestQueue: string;
  replyQueue: string;
  taskRetry: number;
  /** The stream entry id and co_relation_id of the request last sent. */
  entryId?: string;
  correlationId?: string;
  replied: boolean;
  pollTimer?: NodeJS.Timeout;
}

export interface MessagingHandle extends ExecutionHandle {
  request_queue: string;
  reply_queue: string;
  entry_id: string;
}

type StreamReply = [stream: string, entries: [id: string, fields: string[]][]][] | null;

/** Compares stream ids `ms-seq`. */
function idBefore(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am < bm || (am === bm && as < bs);
}

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

export function createMessagingExecutor(options: MessagingExecutorOptions = {}): Executor {
  // colony run and the library have no config file: the variable the docs name applies.
  const url = options.redisUrl ?? (process.env.COLONY_REDIS_URL || "redis://127.0.0.1:6379");
  const pollDelayMs = options.pollDelayMs ?? 1000;
  const log = options.log ?? (() => undefined);
  const table = new ExecutionTable<MessagingExecution>("messaging", options.retainFinishedMs);
  let commands: Redis | undefined;
  let reader: Redis | undefined;
  let readerId: number | undefined;
  let connecting: Promise<void> | undefined;
  let reading = false;
  let closed = false;
  /** Reply stream -> the id read up to. */
  const replyFrom = new Map<string, string>();
  /** Request queues whose consumer group exists. */
  const groups = new Map<string, Promise<void>>();

  function unavailable(error: unknown): ColonyError {
    return new ColonyError(
      MESSAGING_UNAVAILABLE,
      `cannot use Redis at ${redactUrl(url)}: ${(error as Error).message}; start Redis or set messaging.redis_url (COLONY_REDIS_URL)`,
      { status: 503, retryable: true, cause: error },
    );
  }

  async function connect(): Promise<void> {
    connecting ??= (async () => {
      const settings = {
        lazyConnect: true,
        maxRetriesPerRequest: 2,
        connectTimeout: 5000,
        connectionName: "colony-messaging",
      };
      commands = new Redis(url, settings);
      reader = new Redis(url, settings);
      try {
        await connectAll([commands, reader]);
        readerId = Number(await reader.client("ID"));
      } catch (error) {
        commands.disconnect();
        reader.disconnect();
        commands = reader = undefined;
        connecting = undefined;
        throw unavailable(error);
      }
    })();
    return connecting;
  }

  function ensureGroup(queue: string): Promise<void> {
    let made = groups.get(queue);
    if (!made) {
      made = commands!.xgroup("CREATE", queue, WORKER_GROUP, "$", "MKSTREAM").then(
        () => undefined,
        (error: Error) => {
          if (!/BUSYGROUP/.test(error.message)) {
            groups.delete(queue);
            throw unavailable(error);
          }
        },
      );
      groups.set(queue, made);
    }
    return made;
  }

  function waitingOn(queue: string): number {
    return table.running().filter((e) => e.replyQueue === queue && !e.replied).length;
  }

  /** Reads `queue` from what it holds now (replies to requests sent after this). */
  async function follow(queue: string, from?: string): Promise<void> {
    const known = replyFrom.get(queue);
    if (from !== undefined) {
      if (known === undefined || idBefore(from, known)) replyFrom.set(queue, from);
    } else if (known === undefined || waitingOn(queue) <= 1) {
      const last = (await commands!.xrevrange(queue, "+", "-", "COUNT", 1)) as [string, string[]][];
      const id = last[0]?.[0] ?? "0-0";
      // Another task may have started following meanwhile: never move past its replies.
      const now = replyFrom.get(queue);
      if (now === undefined || waitingOn(queue) <= 1) replyFrom.set(queue, id);
    }
    wakeReader();
  }

  function wakeReader(): void {
    if (reading) {
      // The reader is blocked on the old list of streams: unblock it to read the new one.
      if (readerId !== undefined) void commands?.client("UNBLOCK", readerId).catch(() => undefined);
      return;
    }
    reading = true;
    void readLoop().finally(() => (reading = false));
  }

  async function readLoop(): Promise<void> {
    while (!closed && reader && table.running().some((e) => !e.replied)) {
      const queues = [...new Set(table.running().map((e) => e.replyQueue))];
      const ids = queues.map((q) => replyFrom.get(q) ?? "$");
      let reply: StreamReply;
      try {
        reply = (await reader.xread(
          "COUNT",
          100,
          "BLOCK",
          1000,
          "STREAMS",
          ...queues,
          ...ids,
        )) as StreamReply;
      } catch (error) {
        if (closed) return;
        log(`messaging: reading replies failed (${(error as Error).message}); retrying`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [stream, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          replyFrom.set(stream, id);
          take(stream, id, fields);
        }
      }
    }
  }

  /** A reply entry: completes the task it names, if it is ours and still waits. */
  function take(stream: string, id: string, fields: string[]): void {
    const text = fieldOf(fields, "payload");
    if (text === undefined) {
      log(`messaging: ${stream} ${id} has no payload field; ignored`);
      return;
    }
    const json = parseJsonFrame(text, "reply payload");
    const parsed = json.ok ? parseTaskResponse(json.value) : json;
    if (!parsed.ok) {
      log(`messaging: ${stream} ${id}: ${parsed.error}; ignored`);
      return;
    }
    const response = parsed.value;
    const e =
      response.task_execution_id !== undefined
        ? table.get(response.task_execution_id)
        : table.running().find((x) => x.correlationId === response.co_relation_id);
    if (!e || e.replyQueue !== stream) return; // another server's task, or an old one
    if (e.result || e.replied || e.pollTimer) {
      log(`messaging: duplicate or late reply ${id} for task ${e.id}; ignored`);
      return;
    }
    if (typeof response.task_retry === "number" && response.task_retry !== e.taskRetry) {
      log(
        `messaging: stale reply ${id} for task ${e.id} (task_retry ${response.task_retry}); ignored`,
      );
      return;
    }
    void commands?.xdel(stream, id).catch(() => undefined);
    if (response.status === "EXECUTING") {
      e.pollTimer = setTimeout(() => {
        e.pollTimer = undefined;
        if (e.result || e.cancelled) return;
        e.taskRetry++;
        void send(e).catch((error: unknown) => table.finish(e, failure(error)));
      }, pollDelayMs);
      return;
    }
    e.replied = true;
    void finishWithReply(e, response);
  }

  async function finishWithReply(e: MessagingExecution, response: TaskResponse): Promise<void> {
    const text = stdoutOf(response);
    if (text) {
      await new Promise<void>((resolve) => {
        const out = createWriteStream(e.outPath, { flags: "a", mode: 0o600 });
        out.on("error", () => resolve());
        out.end(text, () => resolve());
      });
    }
    table.finish(e, resultOf(response, `messaging worker on ${e.requestQueue}`));
  }

  function failure(error: unknown): ExecutionResult {
    const e = error instanceof ColonyError ? error : unavailable(error);
    return { exitCode: null, killed: false, errorCode: e.code, error: e.message };
  }

  async function send(e: MessagingExecution): Promise<void> {
    const { text, correlationId } = encodeTaskRequest(e.request, { taskRetry: e.taskRetry });
    e.correlationId = correlationId;
    const id = await commands!.xadd(e.requestQueue, "*", "payload", text);
    e.entryId = id ?? undefined;
  }

  /**
   * The request an earlier colony process sent for `e` (see the header): found, it is
   * followed as attach() follows one, its task_retry taken, and true is answered.
   */
  async function resumeEarlier(e: MessagingExecution): Promise<boolean> {
    const needle = `"task_execution_id":${JSON.stringify(e.id)},`;
    const newest = (await commands!.xrevrange(e.requestQueue, "+", "-", "COUNT", EARLIER_SCAN)) as [
      string,
      string[],
    ][];
    for (const [id, fields] of newest) {
      const payload = fieldOf(fields, "payload");
      if (!payload?.includes(needle)) continue;
      const sent = parseJsonFrame(payload, "request payload");
      const retry = sent.ok ? (sent.value as { task_retry?: unknown }).task_retry : undefined;
      if (typeof retry === "number") e.taskRetry = retry;
      e.entryId = id;
      await follow(e.replyQueue, repliesFrom(id));
      return true;
    }
    return false;
  }

  async function start(request: ExecutionRequest): Promise<MessagingHandle> {
    const task = request.task;
    const requestQueue = task.messagingRequestQueue;
    const replyQueue = task.messagingReplyQueue;
    if (!requestQueue || !replyQueue) {
      throw new ExecutorError(
        "COLONY_MESSAGING_QUEUES",
        `task ${task.taskType} needs messaging_request_queue and messaging_reply_queue`,
      );
    }
    const e = table.add({
      ...newTracked(request.executionId, request.unitDir),
      request,
      requestQueue,
      replyQueue,
      taskRetry: request.attempt ?? 0,
      replied: false,
    });
    let earlier = false;
    try {
      await ensureUnitDir(request.unitDir);
      await connect();
      await ensureGroup(requestQueue);
      if (request.mayHaveStarted) earlier = await resumeEarlier(e);
      if (!earlier && request.mayHaveStarted && request.adoptOnly) throw notStarted(e.id);
      if (!earlier) {
        await follow(replyQueue);
        await send(e);
      }
    } catch (error) {
      table.remove(e.id);
      failTracked(e, error as Error);
      throw error instanceof ColonyError ? error : unavailable(error);
    }
    const handle = {
      request_queue: requestQueue,
      reply_queue: replyQueue,
      entry_id: e.entryId ?? "",
    };
    if (earlier) {
      throw new ExecutionExistsError(
        `execution '${e.id}' was sent by an earlier colony process (entry ${e.entryId} of ` +
          `${requestQueue}); its reply is awaited, the request is not sent again`,
        handle,
      );
    }
    return handle;
  }

  return {
    methods: ["MESSAGING"],
    adopts: true,
    async isInstalled() {
      try {
        await connect();
        return (await commands!.ping()) === "PONG";
      } catch {
        return false;
      }
    },
    start,
    wait: (id) => table.wait(id),
    async run(request) {
      await start(request);
      return table.wait(request.executionId);
    },
    async cancel(id) {
      const e = table.requireRunning(id);
      e.cancelled = true;
      clearTimeout(e.pollTimer);
      table.finish(e, { exitCode: null, killed: true, error: "cancelled" });
      // Not taken by a worker yet: take the request back.
      if (e.entryId) await commands?.xdel(e.requestQueue, e.entryId).catch(() => undefined);
    },
    logStream: (request: LogStreamRequest) => table.logStream(request),
    async attach(request, handle) {
      const h = handle as Partial<MessagingHandle>;
      if (typeof h.reply_queue !== "string" || typeof h.request_queue !== "string") return false;
      if (table.get(request.executionId)) return false;
      const e = table.add({
        ...newTracked(request.executionId, request.unitDir),
        request,
        requestQueue: h.request_queue,
        replyQueue: h.reply_queue,
        taskRetry: request.attempt ?? 0,
        replied: false,
        ...(typeof h.entry_id === "string" && h.entry_id ? { entryId: h.entry_id } : {}),
      });
      try {
        await connect();
        // Replies that came while colony was away are after the request's own id.
        const from = e.entryId ? repliesFrom(e.entryId) : "0-0";
        await follow(e.replyQueue, from);
      } catch {
        table.remove(e.id);
        return false;
      }
      return true;
    },
    async close() {
      closed = true;
      for (const e of table.running()) clearTimeout(e.pollTimer);
      table.close();
      commands?.disconnect();
      reader?.disconnect();
    },
  };
}
