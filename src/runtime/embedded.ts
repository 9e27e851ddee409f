/**
 * Wires an engine for one process: the store (SQLite in the data dir unless a URL says
 * otherwise), the executors available here, and the secret key. `colony run`,
 * `colony server` and the library all start from this.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { ExecutorRegistry, type Executor } from "../core/executor.ts";
import { loadOrCreateKey } from "../core/secrets.ts";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { createShellExecutor } from "../executors/shell/shell-executor.ts";
import { openStore } from "../store/open-store.ts";
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
}

export interface Embedded {
  dataDir: string;
  store: Store;
  executors: ExecutorRegistry;
  engine: Engine;
  /** Stops the engine (leaving running tasks to a later recovery unless cancelRunning). */
  close(options?: { graceMs?: number; cancelRunning?: boolean }): Promise<void>;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.COLONY_DATA_DIR ?? ".colony");
}

export async function openEmbedded(options: EmbeddedOptions): Promise<Embedded> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const store = await openStore({ url: options.storeUrl, dataDir });
  const executors = new ExecutorRegistry();
  executors.register(
    createShellExecutor({ killGraceMs: options.killGraceMs, shell: options.shell }),
  );
  for (const e of options.executors ?? []) executors.register(e);
  const engine = new Engine({
    store,
    executors,
    dataDir,
    secretKey: loadOrCreateKey(dataDir),
    maxParallelTasks: options.maxParallelTasks,
    ...options.engine,
  });
  return {
    dataDir,
    store,
    executors,
    engine,
    async close(closeOptions = {}) {
      await engine.stop(closeOptions);
      await executors.close({ killRunning: closeOptions.cancelRunning });
      await store.close();
    },
  };
}
