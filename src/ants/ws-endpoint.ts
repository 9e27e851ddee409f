/**
 * `GET /ws/ants` (SPEC section 5, seed 000 "Websockets") and `GET /api/ants`.
 *
 * The WebSocket: a colony token with role ant (or admin) in the Authorization header
 * (bare or `Bearer`), or in `?authorization=` for browsers, which cannot set headers.
 * The first frame is the registration `{ant_id, tags, methods, max_capacity?}`; then
 * colony sends TaskRequest frames and the ant answers each with a TaskResponse (the
 * request echoed with `status` set is enough). `colony ant` agents also send output
 * frames and receive registered / cancel / ack frames (docs/ants.md).
 *
 * Liveness: every connection is pinged every `ant.ping_interval`; one without a pong by
 * the next ping is closed, and its tasks go back to the queue (retried per policy).
 * Malformed, unknown, duplicate, stale and late frames are counted, logged (a few per
 * connection) and ignored; a bad registration closes the connection with code 1008 and
 * the reason.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import websocket from "@fastify/websocket";
import { Type, type Static } from "typebox";
import type { WebSocket } from "ws";
import type { RouteModule, ServerDeps } from "../server/app.ts";
import { authenticateRequest } from "../server/auth/auth-hook.ts";
import { errorResponses } from "../server/schemas.ts";
import type { AntRegistry } from "./ant-registry.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { AntLink, FrameVerdict, RemoteAntExecutor } from "./remote-ant-executor.ts";
import {
  parseJsonFrame,
  parseOutputFrame,
  parseRegistration,
  parseTaskResponse,
} from "./task-request.ts";

/** Waiting tasks GET /api/ants lists (the oldest; `waiting_total` counts them all). */
export const WAITING_LISTED = 500;

/** How long a new connection has to send its registration. */
const REGISTRATION_TIMEOUT_MS = 10_000;
/** Ignored frames logged per connection before only every 100th is. */
const LOGGED_PER_CONNECTION = 5;

const Timestamp = Type.String({ description: "ISO 8601 time (UTC)" });

export const AntViewSchema = Type.Object({
  ant_id: Type.String(),
  kind: Type.Union([Type.Literal("builtin"), Type.Literal("remote")]),
  state: Type.Union([Type.Literal("connected"), Type.Literal("disconnected")]),
  agent: Type.Boolean({ description: "A `colony ant` agent (streams output, reconnects)" }),
  tags: Type.Array(Type.String()),
  methods: Type.Array(Type.String()),
  load: Type.Integer({ description: "Tasks it runs now" }),
  max_capacity: Type.Union([Type.Integer(), Type.Null()], {
    description: "Tasks it may run at once (null: the built-in ant, bounded by max_parallel_tasks)",
  }),
  running: Type.Array(Type.String(), { description: "Unit ids of the tasks it runs" }),
  dispatched: Type.Integer({ description: "Requests sent to it since it registered" }),
  remote_address: Type.Union([Type.String(), Type.Null()]),
  connected_at: Type.Union([Timestamp, Type.Null()]),
  last_seen_at: Type.Union([Timestamp, Type.Null()]),
});
export type AntView = Static<typeof AntViewSchema>;

export const WaitingTaskSchema = Type.Object({
  job_request_id: Type.Integer(),
  execution_id: Type.Union([Type.String(), Type.Null()], {
    description:
      "The task's unit id; null for a job left PENDING before its first task was created",
  }),
  task_type: Type.String(),
  method: Type.String(),
  tags: Type.Array(Type.String()),
  since: Timestamp,
  reason: Type.Union([Type.Literal("busy"), Type.Literal("no_ant"), Type.Literal("reconnect")], {
    description:
      "busy: every ant that serves the task is at its max_capacity (it waits its turn); " +
      "no_ant: no connected ant serves its method and tags (start one, or check the tags); " +
      "reconnect: the server process before this one may have sent it to an agent, and it " +
      "waits for agents to reconnect (at most ant.reconnect_grace from this server's start) " +
      "before it is routed anew",
  }),
  left_pending: Type.Boolean({
    description:
      "true when the job was left PENDING in the store for want of an ant (its first task, " +
      "or the next one of a started job) and is tried again later; false when the task waits in this server",
  }),
});

export const AntListSchema = Type.Object({
  items: Type.Array(AntViewSchema),
  waiting: Type.Array(WaitingTaskSchema, {
    description: `Tasks waiting for an ant, oldest first (at most ${WAITING_LISTED}): for room on one that serves them, or for one that does`,
  }),
  waiting_total: Type.Integer({ description: "How many tasks wait for an ant in all" }),
});
export type AntListView = Static<typeof AntListSchema>;

export function remoteAntView(ant: RemoteAntExecutor): AntView {
  return {
    ant_id: ant.antId,
    kind: "remote",
    state: ant.state,
    agent: ant.agent,
    tags: [...ant.tags],
    methods: [...ant.methods],
    load: ant.load,
    max_capacity: ant.capacity,
    running: ant.runningIds(),
    dispatched: ant.dispatched,
    remote_address: ant.remoteAddress || null,
    connected_at: ant.connectedAt.toISOString(),
    last_seen_at: ant.lastSeenAt.toISOString(),
  };
}

export function antList(dispatcher: Dispatcher, ants: AntRegistry | undefined): AntListView {
  const builtin: AntView = {
    ant_id: dispatcher.builtin.id,
    kind: "builtin",
    state: "connected",
    agent: false,
    tags: [...dispatcher.builtin.tags],
    methods: dispatcher.builtinMethods(),
    load: dispatcher.builtinLoad,
    max_capacity: null,
    running: [],
    dispatched: 0,
    remote_address: null,
    connected_at: null,
    last_seen_at: null,
  };
  const counts = dispatcher.waitingCounts();
  return {
    items: [builtin, ...(ants?.list() ?? []).map(remoteAntView)],
    waiting_total: counts.busy + counts.noAnt + counts.reconnect,
    waiting: dispatcher.waiting(WAITING_LISTED).map((w) => ({
      job_request_id: w.jobRequestId,
      execution_id: w.executionId ?? null,
      task_type: w.taskType,
      method: w.method,
      tags: w.tags,
      since: w.since.toISOString(),
      reason: w.reason,
      left_pending: w.leftPending,
    })),
  };
}

/**
 * Frames to ants leave together at the end of the event-loop turn (setImmediate runs
 * after every socket that was readable in this turn has been handled), not one by one
 * as replies are processed. An ant idle between tasks is woken by each frame; sent in
 * a burst, one wake-up of the ants' process serves many frames, where one by one each
 * write paid for waking it again (measured: `npm run bench -- ants`, bench/README.md).
 * Per connection, frames keep their order.
 */
class Outbox {
  #pending: Array<{ socket: WebSocket; text: string }> = [];
  #scheduled = false;

  send(socket: WebSocket, text: string): void {
    this.#pending.push({ socket, text });
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    for (const { socket, text } of pending) {
      try {
        socket.send(text);
      } catch {
        // the connection is going away; its close handler takes over
      }
    }
  }
}

interface Connection {
  socket: WebSocket;
  link: AntLink;
  ant?: RemoteAntExecutor;
  alive: boolean;
  /** Why colony closed it (ping timeout), for the log. */
  why?: string;
  ignored: number;
}

function antMetrics(deps: ServerDeps, ants: AntRegistry, dispatcher: Dispatcher) {
  const m = deps.metrics;
  m.gauge({
    name: "colony_ants_connected",
    help: "Remote ants connected to /ws/ants",
    collect() {
      this.set(ants.list().filter((a) => a.state === "connected").length);
    },
  });
  m.gauge({
    name: "colony_ant_tasks_in_flight",
    help: "Tasks on remote ants now",
    collect() {
      this.set(ants.list().reduce((n, a) => n + a.load, 0));
    },
  });
  m.gauge({
    name: "colony_ant_tasks_waiting",
    help:
      "Tasks waiting for an ant, by reason: busy (every ant that serves them is full), " +
      "no_ant (no connected ant serves them) or reconnect (an agent may hold them: " +
      "waiting for agents to reconnect after a server restart)",
    labelNames: ["reason"] as const,
    collect() {
      const counts = dispatcher.waitingCounts();
      this.set({ reason: "busy" }, counts.busy);
      this.set({ reason: "no_ant" }, counts.noAnt);
      this.set({ reason: "reconnect" }, counts.reconnect);
    },
  });
  let counted = 0;
  m.counter({
    name: "colony_ant_dispatches_total",
    help: "TaskRequests sent to remote ants (EXECUTING re-sends included)",
    collect() {
      const total = ants.dispatchedTotal;
      if (total > counted) this.inc(total - counted);
      counted = total;
    },
  });
  return {
    lost: m.counter({
      name: "colony_ant_tasks_lost_total",
      help: "Tasks failed with COLONY_ANT_LOST (an ant disconnected or went silent)",
    }),
    ignored: m.counter({
      name: "colony_ant_frames_ignored_total",
      help: "Frames from ants that changed nothing, by reason",
      labelNames: ["reason"] as const,
    }),
  };
}

export const antRoutes: RouteModule = async (app, deps) => {
  const { dispatcher, ants } = deps.runtime;

  app.get(
    "/api/ants",
    {
      config: { role: "reader" },
      schema: {
        summary: "List ants (the built-in one and remote ones) and tasks waiting for one",
        tags: ["ants"],
        response: { 200: AntListSchema, ...errorResponses() },
      },
    },
    async () => antList(dispatcher, ants),
  );

  if (!ants) return;
  const log = (message: string) => ants.log(message);
  const metrics = antMetrics(deps, ants, dispatcher);
  ants.on("lost", (ant, count) => {
    metrics.lost.inc(count);
    deps.live.publish("ant:lost", { ant_id: ant.antId, tasks: count });
  });
  ants.on("connected", (ant, reconnect) =>
    deps.live.publish("ant:connected", { ...remoteAntView(ant), reconnect }),
  );
  ants.on("disconnected", (ant, why) =>
    deps.live.publish("ant:disconnected", { ant_id: ant.antId, why, state: ant.state }),
  );
  ants.on("gone", (ant) => deps.live.publish("ant:gone", { ant_id: ant.antId }));

  // Before the websocket plugin's own preClose, which closes every connection.
  app.addHook("preClose", async () => ants.stopping());
  if (!app.hasDecorator("websocketServer")) {
    await app.register(websocket, {
      options: { maxPayload: deps.config.bodyLimit, perMessageDeflate: false },
    });
  }

  const connections = new Set<Connection>();
  const outbox = new Outbox();
  const pinger = setInterval(() => {
    for (const c of connections) {
      if (!c.alive) {
        c.why = `stopped answering pings (none within ${deps.config.ant.pingIntervalMs} ms)`;
        c.socket.terminate();
        continue;
      }
      c.alive = false;
      try {
        c.socket.ping();
      } catch {
        // closing already
      }
    }
  }, deps.config.ant.pingIntervalMs);
  pinger.unref();
  app.addHook("onClose", async () => {
    clearInterval(pinger);
  });

  function ignore(c: Connection, reason: FrameVerdict | "malformed", detail: string): void {
    metrics.ignored.inc({ reason });
    c.ignored++;
    if (c.ignored <= LOGGED_PER_CONNECTION || c.ignored % 100 === 0) {
      const who = c.ant ? `ant ${c.ant.antId}` : `connection from ${c.link.remoteAddress}`;
      log(`/ws/ants: ${who}: ignored a ${reason} frame (${c.ignored} so far): ${detail}`);
    }
  }

  function onFrame(c: Connection, text: string): void {
    const json = parseJsonFrame(text);
    if (!json.ok) return ignore(c, "malformed", json.error);
    const value = json.value;
    if (!c.ant) {
      const reg = parseRegistration(value);
      if (!reg.ok) {
        log(`/ws/ants: refused a registration from ${c.link.remoteAddress}: ${reg.error}`);
        c.socket.close(1008, reg.error.slice(0, 120));
        return;
      }
      c.ant = ants!.register(reg.value, c.link);
      return;
    }
    const ant = c.ant;
    if (
      typeof value === "object" &&
      value !== null &&
      (value as { type?: unknown }).type === "output"
    ) {
      const frame = parseOutputFrame(value);
      if (!frame.ok) return ignore(c, "malformed", frame.error);
      const verdict = ant.onOutput(frame.value);
      if (verdict !== "ok") ignore(c, verdict, `output for ${frame.value.task_execution_id}`);
      return;
    }
    const response = parseTaskResponse(value);
    if (!response.ok) return ignore(c, "malformed", response.error);
    const verdict = ant.onResponse(response.value);
    if (verdict !== "ok") {
      const id = response.value.task_execution_id ?? response.value.co_relation_id;
      ignore(c, verdict, `${response.value.status} reply for ${id}`);
    }
  }

  async function authenticate(request: FastifyRequest, reply: FastifyReply) {
    // Browsers cannot set headers on a WebSocket: the token may come in the query string.
    const query = request.query as { authorization?: unknown } | undefined;
    if (!request.headers.authorization && typeof query?.authorization === "string") {
      request.headers.authorization = query.authorization;
    }
    return authenticateRequest(deps.auth, request, reply, "ant");
  }

  app.route({
    method: "GET",
    url: "/ws/ants",
    websocket: true,
    schema: { hide: true },
    onRequest: authenticate,
    handler: (socket, request) => {
      const link: AntLink = {
        send: (text) => outbox.send(socket, text),
        close: (code, reason) => {
          outbox.flush(); // what was sent before the close goes first
          socket.close(code, reason);
        },
        remoteAddress: request.ip,
      };
      const c: Connection = { socket, link, alive: true, ignored: 0 };
      connections.add(c);
      const registration = setTimeout(() => {
        if (!c.ant) socket.close(1008, "send the registration frame {ant_id, tags, methods} first");
      }, REGISTRATION_TIMEOUT_MS);
      registration.unref();
      socket.on("pong", () => {
        c.alive = true;
        c.ant?.touch();
      });
      socket.on("message", (data, isBinary) => {
        c.alive = true;
        const text = Buffer.isBuffer(data)
          ? data.toString("utf8")
          : Array.isArray(data)
            ? Buffer.concat(data).toString("utf8")
            : Buffer.from(data).toString("utf8");
        try {
          onFrame(c, text);
        } catch (error) {
          ignore(c, "malformed", `${isBinary ? "binary " : ""}frame: ${(error as Error).message}`);
        }
      });
      socket.on("error", () => undefined);
      socket.on("close", (code, reason) => {
        clearTimeout(registration);
        connections.delete(c);
        if (!c.ant) return;
        const why =
          c.why ??
          `disconnected (code ${code}${reason.length > 0 ? `: ${reason.toString()}` : ""})`;
        log(`/ws/ants: ant ${c.ant.antId} ${why}`);
        ants!.disconnect(c.ant, link, why);
      });
    },
  });
};
