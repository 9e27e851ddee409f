/**
 * The tab's one connection to GET /api/events. It is read with fetch rather than
 * EventSource so that every event type arrives (EventSource only delivers the types one
 * listens for by name, and ant:*, unit:*... types are added by features over time),
 * while doing what EventSource does: reconnect with back-off, and resume with
 * Last-Event-ID. A `reset` from the server (a restart, or too far behind) tells every
 * page to reload what it shows.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { sessionEnded } from "./api.ts";

export type LiveStatus = "connecting" | "live" | "down";
type Listener = (type: string, data: Record<string, unknown>) => void;

interface Subscription {
  prefixes: string[];
  fn: Listener;
}

const subscriptions = new Set<Subscription>();
const resetListeners = new Set<() => void>();
const statusListeners = new Set<(s: LiveStatus) => void>();
let status: LiveStatus = "down";
let lastId: string | undefined;
let controller: AbortController | undefined;
let running = false;

function setStatus(s: LiveStatus): void {
  status = s;
  for (const l of statusListeners) l(s);
}

function dispatch(type: string, data: Record<string, unknown>): void {
  if (type === "hello") {
    setStatus("live");
    // A fresh stream (not a resume): what pages loaded before it may have missed changes.
    if (data.resumed !== true) for (const l of resetListeners) l();
    return;
  }
  if (type === "reset") {
    for (const l of resetListeners) l();
    return;
  }
  for (const s of subscriptions) {
    if (s.prefixes.some((p) => type === p || type.startsWith(p + ":"))) s.fn(type, data);
  }
}

async function readStream(body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      let data = "";
      let id: string | undefined;
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = v;
        else if (field === "data") data += (data ? "\n" : "") + v;
        else if (field === "id") id = v;
      }
      if (id !== undefined) lastId = id;
      if (!data) continue;
      try {
        dispatch(type, JSON.parse(data) as Record<string, unknown>);
      } catch {
        // a malformed event is skipped
      }
    }
  }
}

/** Opens the stream (once per tab) and keeps it open until stopLive(). */
export function startLive(): void {
  if (running) return;
  running = true;
  void (async () => {
    let backoff = 500;
    while (running) {
      controller = new AbortController();
      setStatus("connecting");
      try {
        const res = await fetch("/api/events", {
          headers: lastId ? { "last-event-id": lastId } : {},
          credentials: "same-origin",
          signal: controller.signal,
        });
        if (res.status === 401) {
          running = false;
          setStatus("down");
          sessionEnded();
          return;
        }
        if (res.ok && res.body) {
          backoff = 500;
          await readStream(res.body);
        }
      } catch {
        // dropped: reconnect below
      }
      if (!running) break;
      setStatus("down");
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10_000);
    }
    setStatus("down");
  })();
}

export function stopLive(): void {
  running = false;
  controller?.abort();
  lastId = undefined;
}

/** Calls `fn` for events whose type is or starts with one of `prefixes` (`job`, `task:state`). */
export function subscribe(prefixes: string[], fn: Listener): () => void {
  const s = { prefixes, fn };
  subscriptions.add(s);
  return () => subscriptions.delete(s);
}

export function onReset(fn: () => void): () => void {
  resetListeners.add(fn);
  return () => resetListeners.delete(fn);
}

/** Subscribes for the life of a component; `fn` may change between renders. */
export function useLive(prefixes: string[], fn: Listener, onResync?: () => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  const resync = useRef(onResync);
  resync.current = onResync;
  const key = prefixes.join(",");
  useEffect(() => {
    const off = subscribe(key.split(","), (t, d) => ref.current(t, d));
    const offReset = onReset(() => resync.current?.());
    return () => {
      off();
      offReset();
    };
  }, [key]);
}

export function useLiveStatus(): LiveStatus {
  const [s, set] = useState(status);
  useEffect(() => {
    statusListeners.add(set);
    set(status);
    return () => {
      statusListeners.delete(set);
    };
  }, []);
  return s;
}
