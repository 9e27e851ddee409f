/**
 * Wires an engine for one process: the store (SQLite in the data dir unless a URL says
 * otherwise), the executors available here, and the secret key. `colony run`,
 * `colony server` and the library all start from this.
 */
import { ensureDataDir, loadOrCreateServerId } from "../core/disk.ts";
import { resolve } from "node:path";
import { ExecutorRegistry, type Executor } from "../core/executor.ts";
import { checkKeyMatches, hasKey, loadOrCreateKey } from "../core/secrets.ts";
import { DEFAULT_MAX_PARALLEL_TASKS, Engine, type EngineOptions } from "../engine/engine.ts";
import { createShellExecutor } from "../executors/shell/shell-executor.ts";
import { createHttpExecutor, type HttpTls } from "../executors/http/http-executor.ts";
import { lazyExecutor } from "../executors/lazy-executor.ts";
import type { ContainerExecutorsOptions } from "./container-executors.ts";
import type { AntRegistry, AntRegistryOptions } from "../ants/ant-registry.ts";
import { Dispatcher, NO_ANT, type BuiltinAnt } from "../ants/dispatcher.ts";
import { openStore } from "../store/open-store.ts";
import { ColonyEventBus } from "../core/events.ts";
import {
  createAsyncRuntime,
  type AsyncRuntime,
  type AsyncRuntimeOptions,
} from "./async-runtime.ts";
import type { Store } from "../store/store.ts";

export interface EmbeddedOptions {
  dataDir: string;
  /** Store URL (sqlite: or postgres://); default SQLite at {dataDir}/colony.db. */
  storeUrl?: string;
  maxParallelTasks?: number;
  /** Extra executors (registered after the built-in ones, so they may replace them). */
  executors?: Executor[];
  engine?: Partial<Omit<EngineOptions, "store" | "executors" | "dataDir" | "secretKey">>;
  killGraceMs?: number;
  /** The shell for SHELL tasks (default /bin/bash when present, else /bin/sh). */
  shell?: string;
  /** Redis for MESSAGING tasks (default redis://127.0.0.1:6379), connected on first use. */
  redisUrl?: string;
  /**
   * Remote ants (the server's /ws/ants) and the built-in ant's tags and methods. Without
   * it (`colony run`), every task runs here and tags do not restrict anything.
   */
  ants?: Partial<BuiltinAnt> & AntRegistryOptions;
  /** The job hook, artifacts and FUNCTION executor (runtime/async-runtime.ts). */
  asyncActions?: AsyncRuntimeOptions;
  /** DOCKER and KUBERNETES (the `docker:` and `kubernetes:` config); both connect on first use. */
  containers?: ContainerExecutorsOptions;
  /** TLS of HTTP tasks (the `http:` config, config.ts readHttpTls). */
  httpTls?: HttpTls;
  /**
   * Load the MESSAGING, DOCKER and KUBERNETES executors' modules on their first task
   * instead of at open (`colony run`: a quicker start; see executors/lazy-executor.ts).
   */
  lazyExecutors?: boolean;
  /**
   * Start the SHELL executor's launcher (its python check and spawner processes) at
   * open, alongside the store, instead of at the first SHELL task: the server and
   * `colony run`, whose first task should not wait for it (~50 ms; ~350 ms behind a
   * pyenv shim).
   */
  warmShell?: boolean;
}

export interface Embedded {
  dataDir: string;
  /** The data dir's id (core/disk.ts loadOrCreateServerId): executions run here record it. */
  serverId: string;
  /** The data dir's secret key (core/secrets.ts); the same for every server of a store. */
  secretKey: Buffer;
  store: Store;
  executors: ExecutorRegistry;
  engine: Engine;
  /** Picks each task's ant (docs/ants.md). */
  dispatcher: Dispatcher;
  /** Remote ants, when this runtime accepts them (the server). */
  ants?: AntRegistry;
  /** The job hook, the artifact store and the FUNCTION executor (SPEC section 9). */
  asyncActions: AsyncRuntime;
  /** Stops the engine (leaving running tasks to a later recovery unless cancelRunning). */
  close(options?: { graceMs?: number; cancelRunning?: boolean }): Promise<void>;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.COLONY_DATA_DIR || ".colony"); // empty is unset, as for the server
}

export async function openEmbedded(options: EmbeddedOptions): Promise<Embedded> {
  const dataDir = resolve(options.dataDir);
  ensureDataDir(dataDir);
  const log = options.engine?.log;
  // First, so that with warmShell its launcher starts while the store opens.
  const shell = createShellExecutor({
    killGraceMs: options.killGraceMs,
    shell: options.shell,
    warm: options.warmShell ?? false,
  });
  let store: Store;
  try {
    store = await openStore({ url: options.storeUrl, dataDir, ...(log ? { log } : {}) });
  } catch (error) {
    await shell.close();
    throw error;
  }
  const created = !hasKey(dataDir);
  const secretKey = loadOrCreateKey(dataDir);
  const serverId = loadOrCreateServerId(dataDir);
  try {
    await checkKeyMatches(store, secretKey, dataDir, created);
  } catch (error) {
    await store.close();
    await shell.close();
    throw error;
  }
  const executors = new ExecutorRegistry();
  // Async actions: one event bus shared with the engine, the FUNCTION executor first so
  // that `options.executors` may replace it.
  const events = options.engine?.events ?? new ColonyEventBus();
  const asyncActions = createAsyncRuntime({
    store,
    dataDir,
    serverId,
    secretKey,
    events,
    ...(options.asyncActions ? { options: options.asyncActions } : {}),
    ...(options.engine?.log ? { log: options.engine.log } : {}),
  });
  executors.register(asyncActions.functions);
  executors.register(shell);
  executors.register(createHttpExecutor(options.httpTls ? { tls: options.httpTls } : {}));
  const messaging = async () =>
    (await import("../executors/messaging/messaging-executor.ts")).createMessagingExecutor({
      redisUrl: options.redisUrl,
      log,
    });
  const container = async (method: "DOCKER" | "KUBERNETES") =>
    (await import("./container-executors.ts")).createContainerExecutor(method, {
      dataDir,
      store,
      storeUrl: options.storeUrl,
      killGraceMs: options.killGraceMs,
      log,
      ...options.containers,
    });
  if (options.lazyExecutors) {
    // Each honours adoptOnly (Executor.adopts).
    const adopts = { adopts: true };
    executors.register(lazyExecutor(["MESSAGING"], messaging, adopts));
    executors.register(lazyExecutor(["DOCKER"], () => container("DOCKER"), adopts));
    executors.register(lazyExecutor(["KUBERNETES"], () => container("KUBERNETES"), adopts));
  } else {
    executors.register(await messaging());
    executors.register(await container("DOCKER"));
    executors.register(await container("KUBERNETES"));
  }
  for (const e of options.executors ?? []) {
    executors.register(e);
    // Replaced: its launcher (made at open with warmShell) must not outlive it.
    if (e.methods.includes("SHELL")) void shell.close();
  }
  // Remote ants (the server): their module and its schemas load only then.
  const ants = options.ants
    ? new (await import("../ants/ant-registry.ts")).AntRegistry({ ...options.ants, log })
    : undefined;
  // Hook logs of a task an agent runs join its output on the agent (the output's one writer).
  if (ants) asyncActions.hook.useOutputSink((id, bytes) => ants.appendLogs(id, bytes));
  const dispatcher = new Dispatcher({
    local: executors,
    builtin: {
      id: options.ants?.id ?? "builtin",
      tags: options.ants?.tags ?? [],
      ...(options.ants?.methods ? { methods: options.ants.methods } : {}),
      capacity: options.maxParallelTasks ?? DEFAULT_MAX_PARALLEL_TASKS,
    },
    ...(ants ? { ants } : {}),
    ...(log ? { log } : {}),
  });
  const engine = new Engine({
    store,
    executors,
    dispatch: dispatcher,
    dataDir,
    serverId,
    secretKey,
    maxParallelTasks: options.maxParallelTasks,
    events,
    extraEnv: asyncActions.extraEnv,
    around: asyncActions.lifecycle,
    ...options.engine,
  });
  dispatcher.observe(engine.events);
  if (ants) {
    // Tasks in flight: the built-in ant's maxParallelTasks plus every remote ant's
    // max_capacity (an ant in its reconnect grace still holds its tasks).
    const recount = () => {
      let capacity = 0;
      for (const ant of ants.all()) capacity += ant.capacity;
      engine.setRemoteCapacity(capacity);
    };
    ants.on("connected", recount);
    ants.on("gone", recount);
    // Jobs left PENDING because no ant served their first task: this one may.
    ants.on("connected", () => engine.wakeDeferred(NO_ANT));
  }
  return {
    dataDir,
    serverId,
    secretKey,
    store,
    executors,
    engine,
    dispatcher,
    ...(ants ? { ants } : {}),
    asyncActions,
    async close(closeOptions = {}) {
      await engine.stop(closeOptions);
      await asyncActions.close();
      dispatcher.close();
      await ants?.close();
      await executors.close({ killRunning: closeOptions.cancelRunning });
      await store.close();
    },
  };
}
