/**
 * colony's Prometheus metrics (prom-client), one registry per server (so two servers
 * in one process, as in tests, do not mix). What is measured, and how it stays cheap:
 *
 * - job and task state transitions, running tasks, durations and dispatch latency come
 *   from the engine's event bus: a counter or histogram update per event, no store reads;
 * - jobs by state and queue depth are read from the store at scrape time (the unfinished
 *   requests only), once per scrape (the gauges of one scrape share one read);
 * - store operation latency times every Store method of the server's store instance;
 * - HTTP request durations by route pattern; default Node process metrics.
 *
 * Features built later (ants, the hook) register their own metrics on the same registry
 * through `counter()`, `gauge()` and `histogram()` (see docs/metrics.md).
 */
import { QuickHistogram, type QuickHistogramConfig } from "./quick-histogram.ts";
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from "prom-client";
import type { ColonyEventBus, ColonyEvents } from "../../core/events.ts";
import { isFinal } from "../../core/states.ts";
import type { Store } from "../../store/store.ts";

/** Seconds; tasks run from milliseconds (no-op) to hours. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Seconds; a dispatch is milliseconds when all is well. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];
const UNFINISHED_STATES = ["PENDING", "READY", "STARTED", "EXECUTING", "PAUSED"] as const;

export interface ColonyMetrics {
  readonly registry: Registry;
  /** A counter on colony's registry; the existing one when `name` is registered already. */
  counter<L extends string>(config: Omit<CounterConfiguration<L>, "registers">): Counter<L>;
  gauge<L extends string>(config: Omit<GaugeConfiguration<L>, "registers">): Gauge<L>;
  histogram<L extends string>(config: Omit<HistogramConfiguration<L>, "registers">): Histogram<L>;
  /** Records one HTTP request (called by the metrics route module's onResponse hook). */
  observeHttp(method: string, route: string, status: number, seconds: number): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  scrape(): Promise<string>;
  readonly contentType: string;
  /** Stops listening to the engine and empties the registry. */
  close(): void;
}

export interface MetricsOptions {
  store: Store;
  events: ColonyEventBus;
  /** Node process metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
  /** Times every method of `store` (default true). */
  instrumentStore?: boolean;
  /** Extra gauges read at scrape time: name -> [help, read]. */
  gauges?: Record<string, [string, () => number]>;
  now?: () => number;
}

type TaskEvent = ColonyEvents["task:state"][0] & { method?: string };
type JobEvent = ColonyEvents["job:state"][0];

export function createMetrics(options: MetricsOptions): ColonyMetrics {
  const registry = new Registry();
  const now = options.now ?? Date.now;

  function existing<T>(name: string): T | undefined {
    return registry.getSingleMetric(name) as T | undefined;
  }
  const counter = <L extends string>(config: Omit<CounterConfiguration<L>, "registers">) =>
    existing<Counter<L>>(config.name) ?? new Counter<L>({ ...config, registers: [registry] });
  const gauge = <L extends string>(config: Omit<GaugeConfiguration<L>, "registers">) =>
    existing<Gauge<L>>(config.name) ?? new Gauge<L>({ ...config, registers: [registry] });
  const histogram = <L extends string>(config: Omit<HistogramConfiguration<L>, "registers">) =>
    existing<Histogram<L>>(config.name) ?? new Histogram<L>({ ...config, registers: [registry] });

  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  // -- from the engine's events ---------------------------------------------------------
  const jobTransitions = counter({
    name: "colony_job_transitions_total",
    help: "Job request state changes, by the state entered",
    labelNames: ["state"] as const,
  });
  const taskTransitions = counter({
    name: "colony_task_transitions_total",
    help: "Task execution state changes, by the state entered and the task's method",
    labelNames: ["state", "method"] as const,
  });
  const tasksRunning = gauge({
    name: "colony_tasks_running",
    help: "Task executions this server is running now (READY to final), by method",
    labelNames: ["method"] as const,
  });
  // The histograms every job feeds are QuickHistograms (quick-histogram.ts): a fraction
  // of prom-client's cost per observation.
  const quick = <L extends string>(config: QuickHistogramConfig<L>) =>
    new QuickHistogram(config, registry);
  const taskDuration = quick({
    name: "colony_task_duration_seconds",
    help: "Task execution run time, from its start on an executor to its final state",
    labelNames: ["method", "state"] as const,
    buckets: DURATION_BUCKETS,
  });
  const jobDuration = quick({
    name: "colony_job_duration_seconds",
    help: "Job request run time, from being claimed to its final state",
    labelNames: ["state"] as const,
    buckets: DURATION_BUCKETS,
  });
  const dispatch = quick({
    name: "colony_task_dispatch_latency_seconds",
    help: "From a task becoming ready (its execution created) to running on its executor",
    labelNames: ["method"] as const,
    buckets: LATENCY_BUCKETS,
  });

  interface Running {
    method: string;
    readyAt: number;
    startedAt?: number;
  }
  const running = new Map<string, Running>();
  const jobStarted = new Map<number, number>();

  const onTask = (e: TaskEvent) => {
    const t = now();
    let r = running.get(e.executionId);
    const method = e.method ?? r?.method ?? "unknown";
    taskTransitions.inc({ state: e.state, method });
    if (!r && !isFinal(e.state)) {
      r = { method, readyAt: t };
      running.set(e.executionId, r);
      tasksRunning.inc({ method });
    }
    if (!r) return;
    if ((e.state === "EXECUTING" || e.state === "STARTED") && r.startedAt === undefined) {
      r.startedAt = t;
      dispatch.observe({ method: r.method }, (t - r.readyAt) / 1000);
    }
    if (isFinal(e.state)) {
      running.delete(e.executionId);
      tasksRunning.dec({ method: r.method });
      taskDuration.observe({ method: r.method, state: e.state }, (t - (r.startedAt ?? t)) / 1000);
    }
  };
  const onJob = (e: JobEvent) => {
    jobTransitions.inc({ state: e.state });
    if (e.state === "READY" || e.state === "EXECUTING") {
      if (!jobStarted.has(e.jobRequestId)) jobStarted.set(e.jobRequestId, now());
    } else if (isFinal(e.state)) {
      const started = jobStarted.get(e.jobRequestId);
      jobStarted.delete(e.jobRequestId);
      if (started !== undefined) jobDuration.observe({ state: e.state }, (now() - started) / 1000);
    } else if (e.state === "PENDING") {
      jobStarted.delete(e.jobRequestId); // a retry or restart: its next run is timed anew
    }
  };
  options.events.on("task:state", onTask);
  options.events.on("job:state", onJob);

  // -- from the store, at scrape time ----------------------------------------------------
  // The gauges of one scrape are collected concurrently: they share one read.
  let snapshot: { byState: Map<string, number>; due: number } | undefined;
  let reading: Promise<void> | undefined;
  const refresh = async () => {
    reading ??= (async () => {
      try {
        const jobs = await options.store.listUnfinishedJobRequests();
        const t = now();
        const byState = new Map<string, number>(UNFINISHED_STATES.map((s) => [s, 0]));
        let due = 0;
        for (const j of jobs) {
          byState.set(j.state, (byState.get(j.state) ?? 0) + 1);
          if (j.state === "PENDING" && j.scheduledAt.getTime() <= t) due++;
        }
        snapshot = { byState, due };
      } finally {
        reading = undefined;
      }
    })();
    await reading;
  };
  gauge({
    name: "colony_jobs",
    help: "Unfinished job requests by state (from the store; every server sharing it sees the same)",
    labelNames: ["state"] as const,
    async collect() {
      await refresh();
      for (const [state, n] of snapshot?.byState ?? []) this.set({ state }, n);
    },
  });
  gauge({
    name: "colony_queue_depth",
    help: "Job requests waiting to be claimed whose scheduled time has come",
    async collect() {
      await refresh();
      this.set(snapshot?.due ?? 0);
    },
  });
  for (const [name, [help, read]] of Object.entries(options.gauges ?? {})) {
    gauge({
      name,
      help,
      collect() {
        this.set(read());
      },
    });
  }

  // -- store operations and HTTP ---------------------------------------------------------
  let restoreStore: (() => void) | undefined;
  if (options.instrumentStore ?? true) {
    const storeOps = quick({
      name: "colony_store_operation_seconds",
      help: "Store operation latency, by operation",
      labelNames: ["op"] as const,
      buckets: STORE_BUCKETS,
    });
    restoreStore = instrumentStore(options.store, (op) => storeOps.observer({ op }));
  }
  const http = histogram({
    name: "colony_http_request_duration_seconds",
    help: "HTTP request duration by method, route pattern and status (streams excluded)",
    labelNames: ["method", "route", "status"] as const,
    buckets: LATENCY_BUCKETS,
  });

  return {
    registry,
    counter,
    gauge,
    histogram,
    observeHttp(method, route, status, seconds) {
      http.observe({ method, route, status: String(status) }, seconds);
    },
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
    close() {
      options.events.off("task:state", onTask);
      options.events.off("job:state", onJob);
      restoreStore?.();
      registry.clear();
    },
  };
}

/**
 * Times every method of a store instance, in place. In place because the engine already
 * holds this very object: wrapping it in a new one would need the runtime to be built
 * around the metrics. Returns a function that puts the original methods back.
 */
export function instrumentStore(
  store: Store,
  observerOf: (op: string) => (seconds: number) => void,
): () => void {
  const target = store as unknown as Record<string, unknown>;
  const names = new Set<string>();
  for (let proto: object | null = store; proto && proto !== Object.prototype;) {
    for (const name of Object.getOwnPropertyNames(proto)) names.add(name);
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  const patched: Array<[string, unknown, boolean]> = [];
  for (const name of names) {
    if (name === "constructor" || name === "close" || name === "migrate") continue;
    const original = target[name];
    if (typeof original !== "function") continue;
    const fn = original as (...args: unknown[]) => unknown;
    const own = Object.hasOwn(target, name);
    const observe = observerOf(name);
    target[name] = function timed(...args: unknown[]): unknown {
      const started = performance.now();
      const result = fn.apply(store, args);
      if (result instanceof Promise) {
        return result.then(
          (value: unknown) => {
            observe((performance.now() - started) / 1000);
            return value;
          },
          (error: unknown) => {
            observe((performance.now() - started) / 1000);
            throw error;
          },
        );
      }
      return result;
    };
    patched.push([name, original, own]);
  }
  return () => {
    for (const [name, original, own] of patched) {
      if (own) target[name] = original;
      else delete target[name];
    }
  };
}
