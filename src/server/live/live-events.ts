/**
 * The server's live event log: every change worth showing live (job and task states
 * from the engine's bus; ant and unit events published by those features) gets an id
 * and goes into a bounded in-memory ring buffer, then to every subscriber (the SSE
 * streams of GET /api/events).
 *
 * Ids are `<boot>-<seq>`: `boot` is random per server process, `seq` counts up from 1.
 * A client that reconnects with the last id it saw gets exactly what it missed, as long
 * as that is still in the buffer and the server did not restart; otherwise `since()`
 * says so and the stream tells the client to reload its state (event `reset`). Nothing
 * here is durable: the store is the truth, events only say when to look again.
 */
import { randomBytes } from "node:crypto";
import type { ColonyEventBus } from "../../core/events.ts";
import { ValidationError } from "../../core/errors.ts";

/**
 * Every event type the stream carries (besides `hello` and `reset`): `<family>:<what>`.
 * publish() takes only these, so a `types` filter (parseTypeFilters) knows them all.
 */
export const EVENT_TYPES = [
  "job:state",
  "task:state",
  "unit:state",
  "unit:released",
  "ant:connected",
  "ant:disconnected",
  "ant:lost",
  "ant:gone",
] as const;
export type LiveEventType = (typeof EVENT_TYPES)[number];

export interface LiveEvent {
  /** `<boot>-<seq>`: what a client sends back as Last-Event-ID. */
  readonly id: string;
  readonly type: LiveEventType;
  /** The payload (snake_case keys, like the REST API); always has `at`, the server's time. */
  readonly data: Record<string, unknown> & { at: string };
  /**
   * The same event as an SSE frame, made on first use (most events are never sent: no
   * dashboard is open) and then shared by every stream.
   */
  readonly frame: string;
}

export type LiveListener = (event: LiveEvent) => void;

export interface LiveEventsOptions {
  /** Events kept for resuming (default 10 000). */
  capacity?: number;
  now?: () => number;
}

/**
 * A published event. Its id, payload and frame are made on first use: most events are
 * never read (no dashboard open, nobody resuming), and building them on every publish
 * was most of an event's cost on a busy server.
 */
class RecordedEvent implements LiveEvent {
  readonly #boot: string;
  readonly #seq: number;
  readonly type: LiveEventType;
  readonly #fields: Record<string, unknown>;
  readonly #at: number;
  #data: (Record<string, unknown> & { at: string }) | undefined;
  #frame: string | undefined;

  constructor(
    boot: string,
    seq: number,
    type: LiveEventType,
    fields: Record<string, unknown>,
    at: number,
  ) {
    this.#boot = boot;
    this.#seq = seq;
    this.type = type;
    this.#fields = fields;
    this.#at = at;
  }

  get id(): string {
    return `${this.#boot}-${this.#seq}`;
  }

  get data(): Record<string, unknown> & { at: string } {
    return (this.#data ??= { ...this.#fields, at: new Date(this.#at).toISOString() });
  }

  get frame(): string {
    return (this.#frame ??= `id: ${this.id}\nevent: ${this.type}\ndata: ${JSON.stringify(this.data)}\n\n`);
  }
}

export class LiveEvents {
  /** Random per process: ids from another run of the server are recognised as such. */
  readonly boot: string;
  readonly #capacity: number;
  readonly #ring: (LiveEvent | undefined)[];
  readonly #listeners = new Set<LiveListener>();
  readonly #now: () => number;
  readonly #detach: Array<() => void> = [];
  /** The seq of the newest event (0 before the first). */
  #seq = 0;

  constructor(options: LiveEventsOptions = {}) {
    this.#capacity = Math.max(1, options.capacity ?? 10_000);
    this.#ring = new Array<LiveEvent | undefined>(this.#capacity);
    this.#now = options.now ?? Date.now;
    this.boot = randomBytes(4).toString("hex");
  }

  /** The id of the newest event (`<boot>-0` before the first). */
  get lastId(): string {
    return `${this.boot}-${this.#seq}`;
  }

  get subscriberCount(): number {
    return this.#listeners.size;
  }

  /** Records an event and hands it to every subscriber. Returns it (with its id). */
  publish(type: LiveEventType, data: Record<string, unknown>): LiveEvent {
    const seq = ++this.#seq;
    const event = new RecordedEvent(this.boot, seq, type, data, this.#now());
    this.#ring[seq % this.#capacity] = event;
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // One broken subscriber must not stop the others (or the engine that published).
      }
    }
    return event;
  }

  /**
   * The events after `lastId`, oldest first; `undefined` when they cannot all be given
   * (an id from another server run, from the future, or older than the buffer), in
   * which case the client must reload its state.
   */
  since(lastId: string): LiveEvent[] | undefined {
    const match = /^([0-9a-f]+)-(\d{1,15})$/.exec(lastId.trim());
    if (!match || match[1] !== this.boot) return undefined;
    const after = Number(match[2]);
    if (after > this.#seq) return undefined;
    if (this.#seq - after > this.#capacity) return undefined;
    const out: LiveEvent[] = [];
    for (let seq = after + 1; seq <= this.#seq; seq++) {
      const event = this.#ring[seq % this.#capacity];
      if (!event) return undefined;
      out.push(event);
    }
    return out;
  }

  subscribe(listener: LiveListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Publishes the engine's job and task state changes (until close()). */
  attach(bus: ColonyEventBus): void {
    const onJob = (e: {
      jobRequestId: number;
      jobType: string;
      state: string;
      attempt: number;
      error?: string;
    }) =>
      this.publish("job:state", {
        id: e.jobRequestId,
        job_type: e.jobType,
        state: e.state,
        attempt: e.attempt,
        ...(e.error === undefined ? {} : { error: e.error }),
      });
    const onTask = (e: {
      jobRequestId: number;
      taskType: string;
      executionId: string;
      state: string;
      attempt: number;
      method?: string;
      exitCode?: number;
      error?: string;
    }) =>
      this.publish("task:state", {
        job_request_id: e.jobRequestId,
        task_type: e.taskType,
        execution_id: e.executionId,
        state: e.state,
        attempt: e.attempt,
        ...(e.method === undefined ? {} : { method: e.method }),
        ...(e.exitCode === undefined ? {} : { exit_code: e.exitCode }),
        ...(e.error === undefined ? {} : { error: e.error }),
      });
    bus.on("job:state", onJob);
    bus.on("task:state", onTask);
    this.#detach.push(() => {
      bus.off("job:state", onJob);
      bus.off("task:state", onTask);
    });
  }

  /** Stops publishing the engine's events and drops every subscriber. */
  close(): void {
    for (const detach of this.#detach.splice(0)) detach();
    this.#listeners.clear();
  }
}

/**
 * The filters of a `types` query (`job,task:state,ant:*`), each a family or an exact
 * type the stream carries; throws on one it never carries (`jobs`, a typo), which
 * would otherwise receive nothing, silently.
 */
export function parseTypeFilters(text: string): string[] {
  const filters = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const families = new Set(EVENT_TYPES.map((t) => t.slice(0, t.indexOf(":"))));
  for (const f of filters) {
    const family = f.endsWith(":*") ? f.slice(0, -2) : f;
    const known = family.includes(":")
      ? (EVENT_TYPES as readonly string[]).includes(family)
      : families.has(family);
    if (!known) {
      throw new ValidationError(
        `querystring.types: no event is of type '${f}'; use families ${[...families].join(", ")} ` +
          `(or family:*) or types ${EVENT_TYPES.join(", ")}`,
      );
    }
  }
  return filters;
}

/** Whether an event type passes a `types` filter (`job`, `task:state`, `ant:*`...). */
export function typeMatches(type: string, filters: readonly string[]): boolean {
  if (filters.length === 0) return true;
  return filters.some((f) => {
    const family = f.endsWith(":*") ? f.slice(0, -2) : f;
    return family.includes(":") ? type === family : type.startsWith(`${family}:`);
  });
}
