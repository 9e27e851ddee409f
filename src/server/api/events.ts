/**
 * GET /api/events: the live event stream (Server-Sent Events) of server/live. One
 * connection carries every family (job:*, task:*, ant:*, unit:*...) unless `types`
 * narrows it. Resuming: the browser's EventSource sends `Last-Event-ID` when it
 * reconnects; other clients send that header or `?last_event_id=`. What was missed is
 * replayed from the ring buffer, or, when it is gone, one `reset` event tells the client
 * to reload its state from the REST API. `?follow=0` sends that and ends (polling).
 *
 * A client too slow to keep up (more than MAX_BUFFERED bytes waiting in its socket) is
 * disconnected rather than buffered without bound; it reconnects and resumes.
 */
import type { ServerResponse } from "node:http";
import { Type } from "typebox";
import type { RouteModule } from "../app.ts";
import { parseTypeFilters, typeMatches, type LiveEvent } from "../live/live-events.ts";
import { errorResponses } from "../schemas.ts";

const HEARTBEAT_MS = 15_000;
const RETRY_MS = 2000;
const MAX_BUFFERED = 8 * 1024 * 1024;

const EventsQuery = Type.Object(
  {
    types: Type.Optional(
      Type.String({
        description:
          "Comma-separated families or types to receive, e.g. `job,task` or `task:state,ant:*` (default: all)",
      }),
    ),
    last_event_id: Type.Optional(
      Type.String({ description: "Resume after this event id (as the Last-Event-ID header)" }),
    ),
    follow: Type.Optional(
      Type.Boolean({
        description:
          "false: send what was missed since the last id, then `hello`, and end (polling); default true",
      }),
    ),
  },
  { additionalProperties: false },
);

export const eventRoutes: RouteModule = (app, deps) => {
  const live = deps.live;
  const open = new Set<ServerResponse>();
  // Streams never end by themselves: end them when the server closes, or close() would
  // wait for them.
  app.addHook("preClose", async () => {
    for (const res of open) res.end();
  });

  app.get(
    "/api/events",
    {
      config: { role: "reader" },
      schema: {
        summary: "Live events (Server-Sent Events): job:*, task:*, ant:*, unit:*",
        description:
          "A text/event-stream. Each event has an `id` (send it back as Last-Event-ID to " +
          "resume), an `event` type and JSON `data` with `at` (the server's time). The " +
          "first event, `hello`, carries the current id; `reset` means events were lost " +
          "(server restart, or too far behind): reload state from the REST API. See docs/api.md.",
        tags: ["events"],
        querystring: EventsQuery,
        response: {
          200: {
            description: "An event stream",
            content: { "text/event-stream": { schema: Type.String() } },
          },
          ...errorResponses(400),
        },
      },
    },
    (request, reply) => {
      const filters = parseTypeFilters(request.query.types ?? "");
      const header = request.headers["last-event-id"];
      const lastId = (Array.isArray(header) ? header[0] : header) ?? request.query.last_event_id;

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
        "x-content-type-options": "nosniff",
        connection: "keep-alive",
      });
      open.add(res);
      request.raw.socket.setNoDelay(true);
      request.raw.socket.setTimeout(0);

      // Node corks the socket on a chunked write and sends on the next tick; a busy
      // event loop (a burst of task changes) would hold every event back until it is
      // free. Uncorking at once puts each event on the wire as it is published.
      const flush = () => {
        if (res.socket?.writableCorked) res.socket.uncork();
      };
      const send = (event: LiveEvent) => {
        if (!typeMatches(event.type, filters)) return;
        if (res.writableLength > MAX_BUFFERED) {
          // Too far behind: hang up; the client resumes from its last id.
          res.destroy();
          return;
        }
        res.write(event.frame);
        flush();
      };

      let head = `retry: ${RETRY_MS}\n\n`;
      const missed = lastId ? live.since(lastId) : [];
      if (missed === undefined) {
        head += frame("reset", live.lastId, {
          reason: "the events after your last id are no longer available; reload",
        });
      } else {
        for (const e of missed) if (typeMatches(e.type, filters)) head += e.frame;
      }
      head += frame("hello", live.lastId, { boot: live.boot, resumed: !!lastId && !!missed });
      if (request.query.follow === false) {
        open.delete(res);
        res.end(head);
        return;
      }
      res.write(head);
      flush();
      const unsubscribe = live.subscribe(send);
      const heartbeat = setInterval(() => res.write(": ping\n\n"), HEARTBEAT_MS);
      heartbeat.unref();
      const done = () => {
        unsubscribe();
        clearInterval(heartbeat);
        open.delete(res);
      };
      res.once("close", done);
      res.once("error", done);
    },
  );
};

function frame(type: string, id: string, data: Record<string, unknown>): string {
  const payload = { ...data, at: new Date().toISOString() };
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(payload)}\n\n`;
}
